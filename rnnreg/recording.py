"""The trainer listener that writes a run directory: metrics, status, checkpoints.

Record keys are the run-directory contract (README "Run format"); the dashboard reads them.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import torch

from rnnreg.checkpoint import save_checkpoint
from rnnreg.runs import RunWriter

log = logging.getLogger(__name__)


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
        log.info("test ppl %.2f (final valid ppl %.2f)", event.test_ppl, event.valid_ppl)


def checkpoint_tensors(trainer) -> dict[str, torch.Tensor]:
    """The model's weights plus the RNG states needed to resume exactly."""
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    tensors["rng.cpu"] = torch.get_rng_state()
    if trainer.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
    return tensors


def checkpoint_state(trainer) -> dict[str, object]:
    return {
        "format": 1,
        "epoch": trainer.epoch,  # last completed epoch; the next starts from a zero state
        "step": trainer.step,
        "words": trainer.words,
        "vocab_size": len(trainer.corpus.vocab),
    }
