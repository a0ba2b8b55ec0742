"""Checkpoints: tensors in one safetensors file, trainer state as JSON in its metadata.

One file holds both, written to a temporary file, fsynced and renamed, so a reader sees the
previous checkpoint or the new one, never a torn one.  Loading goes through safetensors
only: nothing is ever unpickled from a run directory.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from rnnreg.runs import atomic_write_bytes, atomic_write_json

STATE_KEY = "rnnreg_state"  # metadata key holding the trainer state as JSON


class CheckpointError(ValueError):
    """A checkpoint that is missing, not safetensors, or not written by rnnreg."""


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    data = save_safetensors(
        {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()},
        metadata={STATE_KEY: json.dumps(state)},
    )
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), state)  # a readable copy; the metadata is the truth


def load_checkpoint(path: Path, *, max_bytes: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors on the CPU, trainer state). Raises CheckpointError for anything unexpected,
    a file larger than `max_bytes` (if given) among it: a reader that knows the model's size
    need not read a planted 4 GB file into memory."""
    try:  # a symlink is not followed (a run directory must not read files from elsewhere), nor
        # anything but a regular file: opening a FIFO planted in its place would block for ever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise CheckpointError(f"checkpoint {path}: not a regular file")
            if max_bytes is not None and os.fstat(handle.fileno()).st_size > max_bytes:
                raise CheckpointError(f"checkpoint {path}: larger than its model's {max_bytes} bytes "
                                      "could make; not this run's")
            data = handle.read()
    except OSError as err:
        reason = "a symlink, not followed" if os.path.islink(path) else err.strerror
        raise CheckpointError(f"checkpoint {path}: cannot read ({reason})") from None
    try:
        tensors = load_safetensors(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        state = json.loads(metadata[STATE_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise CheckpointError(f"checkpoint {path}: not an rnnreg safetensors checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: trainer state is not a JSON object")
    return tensors, state


def compact_checkpoint(path: Path) -> tuple[int, int]:
    """Store a checkpoint's float32 weights as float16 (half the bytes), for shipping a run.

    Viewing (poke, generate) loads the weights back into float32 parameters; resuming from a
    compacted checkpoint is refused, since float16 weights would not continue the run exactly.
    Returns (bytes before, bytes after).
    """
    tensors, state = load_checkpoint(path)  # (a missing or odd file: CheckpointError)
    before = Path(path).stat().st_size
    tensors = {name: t.half() if name.startswith("model.") and t.dtype == torch.float32 else t
               for name, t in tensors.items()}
    save_checkpoint(Path(path), tensors, {**state, "weights_dtype": "float16"})
    return before, Path(path).stat().st_size


def load_error_text(err: RuntimeError) -> str:
    """torch's load_state_dict error on one line: 'size mismatch for embedding.weight: copying a param
    with shape torch.Size([10000, 200]) from checkpoint, the shape in current model is ...'; missing
    and unexpected keys likewise, the first two of them."""
    lines = [line.strip().rstrip(".") for line in str(err).splitlines()[1:] if line.strip()]
    return "; ".join(lines[:2]) + ("; ..." if len(lines) > 2 else "") if lines else str(err).strip()
