"""DropConnect on a weight matrix (Merity et al. 2017, AWD-LSTM's WeightDrop).

One mask per forward pass: every time step of the window, and every sequence of the
batch, sees the same dropped hidden-to-hidden weights.
"""

from __future__ import annotations

import torch

from rnnreg.dropout.masks import held_mask


def drop_connect(weight: torch.Tensor, p: float) -> torch.Tensor:
    """`weight` with each entry zeroed with probability p (kept entries scaled by 1/(1-p))."""
    return weight * held_mask(tuple(weight.shape), p, weight)
