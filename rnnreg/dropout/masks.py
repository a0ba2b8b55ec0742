"""Bernoulli dropout masks drawn per time step or once per sequence.

Masks are "inverted": kept units are scaled by 1/(1-p) during training, so evaluation
needs no rescaling (the expectation of the masked value equals the unmasked value).
All masks for a window are drawn in one call, shape (T, B, H) (or (T, B, 4H), one block per
gate): per-step sampling draws T independent masks, per-sequence sampling draws one (1, B, H)
mask shared by every step.  For Monte-Carlo evaluation over a whole test stream, masks held
over a window (`held_mask`) come from a `FrozenMasks` store instead (`frozen_masks`), drawn
once and reused by every later window.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Iterator

import torch

from rnnreg.placements import PER_SEQUENCE, PER_STEP


def keep_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli(1 - p) keep-mask scaled by 1 / (1 - p), with `like`'s dtype and device."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p).div_(1.0 - p)


@dataclass
class FrozenMasks:
    """Masks held over a window, drawn once and reused by every later window (Monte-Carlo evaluation).

    Gal & Ghahramani's MC test draws one mask per sample for the whole test stream, where
    training draws one per window.  Inside `frozen_masks(store)`, every mask held over a window
    (`held_mask`: per-sequence sites, DropConnect, per-column word masks) comes from the store:
    the first window draws them, in the order the forward pass asks, and `rewind()` before each
    later window hands the same ones out again.  Per-step masks stay fresh at every step.
    """

    masks: list[torch.Tensor] = field(default_factory=list)
    cursor: int = 0

    def rewind(self) -> None:
        self.cursor = 0

    def take(self, shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
        if self.cursor == len(self.masks):
            self.masks.append(keep_mask(shape, p, like))
        mask = self.masks[self.cursor]
        if mask.shape != shape:
            raise RuntimeError(f"frozen mask {self.cursor}: drawn as {tuple(mask.shape)}, asked for {shape}")
        self.cursor += 1
        return mask


_FROZEN: contextvars.ContextVar[FrozenMasks | None] = contextvars.ContextVar("rnnreg_frozen_masks", default=None)


@contextlib.contextmanager
def frozen_masks(store: FrozenMasks) -> Iterator[FrozenMasks]:
    """Within the block, masks drawn by `held_mask` come from `store` (see FrozenMasks)."""
    token = _FROZEN.set(store)
    try:
        yield store
    finally:
        _FROZEN.reset(token)


def held_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """A mask held over a whole window (per sequence, per forward pass, per word type): fresh,
    or from the active FrozenMasks store, so that it holds over the whole stream instead."""
    store = _FROZEN.get()
    return store.take(shape, p, like) if store is not None else keep_mask(shape, p, like)


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
        return held_mask((1, batch, width), self.p, like).expand(steps, batch, width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Mask a whole (T, B, H) sequence at once (for sites outside the recurrence)."""
        if self.gates != 1:
            raise ValueError("masks per gate act inside a layer's projections (rnnreg.lstm), not on a sequence")
        steps, batch, size = x.shape
        return x * self.masks(steps, batch, size, x)
