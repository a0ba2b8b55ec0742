"""Bernoulli dropout masks drawn per time step or once per sequence.

Masks are "inverted": kept units are scaled by 1/(1-p) during training, so evaluation
needs no rescaling (the expectation of the masked value equals the unmasked value).
All masks for a window are drawn in one call, shape (T, B, H): per-step sampling draws T
independent masks, per-sequence sampling draws one (1, B, H) mask shared by every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnreg.placements import PER_SEQUENCE, PER_STEP


def keep_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli(1 - p) keep-mask scaled by 1 / (1 - p), with `like`'s dtype and device."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p).div_(1.0 - p)


@dataclass(frozen=True)
class SiteDropout:
    """Dropout at one site with rate `p`, resampled per step or per sequence; `gates` = 4 draws a
    separate mask for each gate's copy of the value (rnnreg.fused_cell.gatewise_matmul applies them)."""

    p: float
    sampling: str  # PER_STEP or PER_SEQUENCE
    gates: int = 1  # 1: one mask for all four gates; 4: one per gate, in torch's order i, f, g, o

    def __post_init__(self) -> None:
        if self.sampling not in (PER_STEP, PER_SEQUENCE):
            raise ValueError(f"SiteDropout sampling must be {PER_STEP!r} or {PER_SEQUENCE!r}, got {self.sampling!r}")
        if self.gates not in (1, 4):
            raise ValueError(f"SiteDropout gates must be 1 or 4, got {self.gates!r}")

    def masks(self, steps: int, batch: int, size: int, like: torch.Tensor) -> torch.Tensor:
        """(steps, batch, gates * size) masks, gate-major; per-sequence masks are one mask expanded over steps."""
        width = self.gates * size
        if self.sampling == PER_STEP:
            return keep_mask((steps, batch, width), self.p, like)
        return keep_mask((1, batch, width), self.p, like).expand(steps, batch, width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Mask a whole (T, B, H) sequence at once (for sites outside the recurrence)."""
        if self.gates != 1:
            raise ValueError("masks per gate act inside a layer's projections (rnnreg.lstm), not on a sequence")
        steps, batch, size = x.shape
        return x * self.masks(steps, batch, size, x)
