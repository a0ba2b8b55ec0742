"""Word-level embedding dropout (Gal & Ghahramani 2016; AWD-LSTM's embedded_dropout).

Drops whole word types: every occurrence of a dropped word in the batch sees a zero
embedding for this forward pass; kept rows are scaled by 1/(1-p).
"""

from __future__ import annotations

import torch

from rnnreg.dropout.masks import keep_mask


def embedding_dropout(weight: torch.Tensor, p: float) -> torch.Tensor:
    """The (V, E) embedding matrix with each row kept with probability 1 - p."""
    return weight * keep_mask((weight.size(0), 1), p, weight)
