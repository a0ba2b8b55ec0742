"""The trainer listener that writes a run directory: metrics, status, checkpoints.

Record keys are the run-directory contract (README "Run format"); the dashboard reads them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import torch

from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnreg.runs import RunWriter

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1  # the layout of the trainer state in a checkpoint's metadata


class RunRecorder:
    def __init__(self, writer: RunWriter) -> None:
        self.writer = writer
        self.best_valid_ppl = math.inf

    def on_step(self, trainer, event) -> None:
        self.writer.append_metric({"kind": "step", **dataclasses.asdict(event)})

    def on_epoch_end(self, trainer, event) -> None:
        self.best_valid_ppl = min(self.best_valid_ppl, event.valid_ppl)
        self.writer.append_metric({"kind": "epoch", **dataclasses.asdict(event)})
        self.writer.sync()
        save_checkpoint(self.writer.checkpoint_path, checkpoint_tensors(trainer), checkpoint_state(trainer))
        self.writer.update_status(epoch=event.epoch, message=f"epoch {event.epoch}: valid ppl {event.valid_ppl:.1f}")
        log.info(
            "epoch %d/%d: train ppl %.2f, valid ppl %.2f, lr %.4g, %.1f s, %.0f%% of steps clipped",
            event.epoch, trainer.config.train.epochs, event.train_ppl, event.valid_ppl, event.lr,
            event.seconds, 100 * event.clipped_fraction,
        )

    def on_test(self, trainer, event) -> None:
        self.writer.append_metric({"kind": "test", **dataclasses.asdict(event)})
        self.writer.sync()
        log.info("test ppl %.2f (final valid ppl %.2f)%s", event.test_ppl, event.valid_ppl,
                 "" if event.test_accuracy is None else f", test recall {event.test_accuracy:.1%}")


def checkpoint_tensors(trainer) -> dict[str, torch.Tensor]:
    """The model's weights plus the RNG states the next epoch starts from (to resume exactly)."""
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    rng = trainer.rng_state if trainer.rng_state is not None else trainer.rng_states()
    tensors.update({f"rng.{name}": state for name, state in rng.items()})
    return tensors


def checkpoint_state(trainer) -> dict[str, object]:
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": trainer.epoch,  # last completed epoch; the next starts from a zero state
        "step": trainer.step,
        "words": trainer.words,
        "time": time.perf_counter() - trainer.started,  # seconds of training so far
        "vocab_size": len(trainer.corpus.vocab),
    }


def restore_trainer(trainer, path: Path) -> int:
    """Load the checkpoint at `path` into `trainer` (the inverse of the two functions above).

    Returns the checkpoint's epoch.  Raises CheckpointError when the file is not an rnnreg
    checkpoint (nothing is ever unpickled) or does not fit this run's model and corpus.
    """
    tensors, state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    if state.get("weights_dtype", "float32") != "float32":
        raise CheckpointError(f"checkpoint {path}: weights were compacted to {state['weights_dtype']} for viewing; "
                              "a run cannot resume from them exactly")
    counters = {key: state.get(key) for key in ("epoch", "step", "words")}
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counters.values()):
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
    try:
        trainer.restore(weights, rng=rng, elapsed=elapsed, **counters)
    except RuntimeError as err:  # load_state_dict: missing/unexpected keys or wrong shapes
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path}: does not fit this run's model ({first})") from None
    return counters["epoch"]
