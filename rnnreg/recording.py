"""The trainer listener that writes a run directory: metrics, status, checkpoints.

Record keys are the run-directory contract (README "Run format"); the dashboard reads them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import NamedTuple

import torch

from rnnreg.checkpoint import CheckpointError, load_checkpoint, load_error_text, save_checkpoint
from rnnreg.runs import RunWriter, count_or_none, finite_number, ppl_text
from rnnreg.train import EpochProgress

log = logging.getLogger(__name__)

# The layout of the trainer state in a checkpoint's metadata: 1 after a completed epoch, 2 within
# an epoch (format 1 plus `within_epoch` and the carried state; an rnnreg that knows only format 1
# refuses it rather than resume it as if the epoch were complete).
CHECKPOINT_FORMAT = 1
WITHIN_EPOCH_FORMAT = 2
DEFAULT_CHECKPOINT_MINUTES = 10.0  # `rnnreg train --checkpoint-minutes`


class ResumePoint(NamedTuple):
    epoch: int  # the last completed epoch
    step: int  # the global minibatch count
    windows: int | None  # trained windows of epoch + 1 (a mid-epoch checkpoint), else None
    seconds: float  # the training time the checkpoint had recorded


class RunRecorder:
    """Writes the records, and a checkpoint after every epoch, on a cancel, and, within an epoch,
    at the first logged step `checkpoint_seconds` after the last one (None: not within epochs)."""

    def __init__(self, writer: RunWriter, checkpoint_seconds: float | None = None) -> None:
        self.writer = writer
        self.checkpoint_seconds = checkpoint_seconds
        self.last_checkpoint = time.monotonic()

    def on_train_start(self, trainer) -> None:
        self.last_checkpoint = time.monotonic()

    def on_step(self, trainer, event) -> None:
        self.writer.append_metric({"kind": "step", **dataclasses.asdict(event)})
        if self.checkpoint_seconds is not None and time.monotonic() - self.last_checkpoint >= self.checkpoint_seconds:
            self._save_within_epoch(trainer, f"step {event.step}")

    def on_cancel(self, trainer) -> None:
        self._save_within_epoch(trainer, f"step {trainer.step}, where it was cancelled")

    def _save_within_epoch(self, trainer, where: str) -> None:
        self.writer.sync()  # the step records it keeps are on disk before it is
        progress = trainer.epoch_progress()
        save_checkpoint(self.writer.checkpoint_path, checkpoint_tensors(trainer, progress),
                        checkpoint_state(trainer, progress))
        self.last_checkpoint = time.monotonic()
        log.info("checkpoint at %s (epoch %d, window %d of %d)", where, trainer.epoch + 1, progress.windows,
                 trainer.batches_per_epoch)

    def on_epoch_end(self, trainer, event) -> None:
        self.writer.append_metric({"kind": "epoch", **dataclasses.asdict(event)})
        self.writer.sync()
        save_checkpoint(self.writer.checkpoint_path, checkpoint_tensors(trainer), checkpoint_state(trainer))
        self.last_checkpoint = time.monotonic()
        self.writer.update_status(epoch=event.epoch,
                                  message=f"epoch {event.epoch}: valid ppl {ppl_text(event.valid_ppl, 1)}")
        log.info(
            "epoch %d/%d: train ppl %s, valid ppl %s, lr %.4g, %.1f s, %.0f%% of steps clipped",
            event.epoch, trainer.config.train.epochs, ppl_text(event.train_ppl), ppl_text(event.valid_ppl), event.lr,
            event.seconds, 100 * event.clipped_fraction,
        )

    def on_test(self, trainer, event) -> None:
        self.writer.append_metric({"kind": "test", **dataclasses.asdict(event)})
        self.writer.sync()
        log.info("test ppl %s (final valid ppl %s)%s", ppl_text(event.test_ppl), ppl_text(event.valid_ppl),
                 "" if event.test_accuracy is None else f", test recall {event.test_accuracy:.1%}")


def checkpoint_tensors(trainer, progress: EpochProgress | None = None) -> dict[str, torch.Tensor]:
    """The model's weights plus the RNG states the next window starts from (to resume exactly);
    within an epoch (`progress`), also the state carried into that window."""
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    if progress is not None:
        rng = trainer.rng_states()  # as they are now, after the last trained window
        tensors.update({"carry.h": progress.state[0], "carry.c": progress.state[1]})
    else:
        rng = trainer.rng_state if trainer.rng_state is not None else trainer.rng_states()
    tensors.update({f"rng.{name}": state for name, state in rng.items()})
    return tensors


def checkpoint_state(trainer, progress: EpochProgress | None = None) -> dict[str, object]:
    state: dict[str, object] = {
        "format": CHECKPOINT_FORMAT if progress is None else WITHIN_EPOCH_FORMAT,
        "epoch": trainer.epoch,  # last completed epoch; the next starts from a zero state
        "step": trainer.step,
        "words": trainer.words,
        "time": time.perf_counter() - trainer.started,  # seconds of training so far
        "vocab_size": len(trainer.corpus.vocab),
    }
    if progress is not None:  # how far into epoch + 1 (its carried state is a tensor: carry.h, carry.c)
        state["within_epoch"] = {"windows": progress.windows, "seconds": progress.seconds,
                                 "nats": progress.nats, "clipped": progress.clipped}
    return state


def _progress(path: Path, state: dict, tensors: dict[str, torch.Tensor]) -> EpochProgress:
    """The `within_epoch` part of a format-2 checkpoint, checked."""
    within = state.get("within_epoch")
    within = within if isinstance(within, dict) else {}
    counts = [within.get(key) for key in ("windows", "clipped")]
    numbers = [within.get(key) for key in ("seconds", "nats")]
    if (any(count_or_none(v) is None for v in counts) or counts[1] > counts[0]
            or any(finite_number(v) is None or v < 0 for v in numbers)):
        raise CheckpointError(f"checkpoint {path}: within_epoch must hold windows >= clipped >= 0 and finite "
                              f"seconds, nats >= 0; got {within}")
    carry = (tensors.get("carry.h"), tensors.get("carry.c"))
    if any(t is None or t.dtype != torch.float32 for t in carry) or carry[0].shape != carry[1].shape:
        raise CheckpointError(f"checkpoint {path}: a mid-epoch checkpoint without its carried state "
                              "(carry.h, carry.c: float32 of one shape)")
    return EpochProgress(windows=counts[0], seconds=float(numbers[0]), nats=float(numbers[1]), clipped=counts[1],
                         state=(carry[0], carry[1]))


def restore_trainer(trainer, path: Path) -> ResumePoint:
    """Load the checkpoint at `path` into `trainer` (the inverse of the functions above).

    Returns where it resumes.  Raises CheckpointError when the file is not an rnnreg checkpoint
    (nothing is ever unpickled) or does not fit this run's model and corpus.
    """
    tensors, state = load_checkpoint(path)
    if state.get("format") not in (CHECKPOINT_FORMAT, WITHIN_EPOCH_FORMAT):
        raise CheckpointError(f"checkpoint {path}: format {state.get('format')!r}, expected "
                              f"{CHECKPOINT_FORMAT} or {WITHIN_EPOCH_FORMAT}")
    if state.get("weights_dtype", "float32") != "float32":
        raise CheckpointError(f"checkpoint {path}: weights were compacted to {state['weights_dtype']} for viewing; "
                              "a run cannot resume from them exactly")
    counters = {key: state.get(key) for key in ("epoch", "step", "words")}
    if any(count_or_none(v) is None for v in counters.values()):
        raise CheckpointError(f"checkpoint {path}: epoch/step/words must be whole numbers >= 0, got {counters}")
    if counters["epoch"] > trainer.config.train.epochs:
        raise CheckpointError(f"checkpoint {path}: epoch {counters['epoch']} is beyond the run's "
                              f"{trainer.config.train.epochs} epochs")
    if state.get("vocab_size") != len(trainer.corpus.vocab):
        raise CheckpointError(f"checkpoint {path}: vocabulary of {state.get('vocab_size')!r} words, "
                              f"the corpus has {len(trainer.corpus.vocab)}; was the data directory changed?")
    elapsed = state.get("time")
    elapsed = float(elapsed) if isinstance(elapsed, (int, float)) and math.isfinite(elapsed) else 0.0
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    if "cpu" not in rng or rng["cpu"].dtype != torch.uint8:
        raise CheckpointError(f"checkpoint {path}: no CPU random-number state (rng.cpu)")
    progress = _progress(path, state, tensors) if state["format"] == WITHIN_EPOCH_FORMAT else None
    if progress is not None:
        if counters["epoch"] >= trainer.config.train.epochs:
            raise CheckpointError(f"checkpoint {path}: within epoch {counters['epoch'] + 1} of a run of "
                                  f"{trainer.config.train.epochs} epochs")
        expected = tuple(trainer.training_step.state[0].shape)
        if tuple(progress.state[0].shape) != expected:
            raise CheckpointError(f"checkpoint {path}: its carried state is {tuple(progress.state[0].shape)}, "
                                  f"this run's model carries {expected}")
    try:
        trainer.restore(weights, rng=rng, elapsed=elapsed, progress=progress, **counters)
    except ValueError as err:  # restore: a mid-epoch position outside the epoch
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    except RuntimeError as err:  # load_state_dict: missing/unexpected keys or wrong shapes
        raise CheckpointError(f"checkpoint {path}: does not fit this run's model ({load_error_text(err)})") from None
    return ResumePoint(counters["epoch"], counters["step"], None if progress is None else progress.windows, elapsed)
