"""Zoneout (Krueger et al. 2016): units keep their previous value instead of updating.

Training:   new = d * previous + (1 - d) * candidate,  d ~ Bernoulli(p), fresh each step
Evaluation: new = p * previous + (1 - p) * candidate   (the expectation, as in the paper)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Zoneout:
    p: float

    def keep_previous(self, steps: int, batch: int, size: int, like: torch.Tensor) -> torch.Tensor:
        """(steps, batch, size) indicators d: 1 where a unit keeps its previous value."""
        return torch.empty((steps, batch, size), dtype=like.dtype, device=like.device).bernoulli_(self.p)

    @staticmethod
    def mix(previous: torch.Tensor, candidate: torch.Tensor, keep: torch.Tensor | float) -> torch.Tensor:
        return candidate + keep * (previous - candidate)  # = keep * previous + (1 - keep) * candidate
