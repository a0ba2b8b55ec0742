"""Resuming within an epoch (rnnreg.train.EpochProgress): the trainer goes on from the next
window, with the carried state, the epoch's totals and the RNG where they were, so the run ends
bit for bit as if it had never stopped.  In-process trainers on the CPU; the forked-trainer
tests of the same through `rnnreg train --resume` are in tests/test_resume.py.
"""

from __future__ import annotations

import pytest
import torch

from rnnreg.data import load_corpus
from rnnreg.train import Cancelled, Trainer
from tests.conftest import tiny_config


class Collect:
    """Epoch events, and what a mid-epoch checkpoint would hold at a cancel."""

    def __init__(self) -> None:
        self.epochs = []
        self.saved = None

    def on_epoch_end(self, trainer, event) -> None:
        self.epochs.append(event)

    def on_cancel(self, trainer) -> None:
        self.saved = dict(
            weights={k: v.clone() for k, v in trainer.model.state_dict().items()}, rng=trainer.rng_states(),
            progress=trainer.epoch_progress(), epoch=trainer.epoch, step=trainer.step, words=trainer.words,
        )


def trainer(corpus_dir, placement: str, stop_at: int | None = None) -> tuple[Trainer, Collect]:
    config = tiny_config(corpus_dir, placement=placement, epochs=3, log_every=1000)
    collect = Collect()
    made = Trainer(config, load_corpus(corpus_dir), torch.device("cpu"), [collect])
    if stop_at is not None:
        made.should_stop = lambda: made.step >= stop_at
    return made, collect


def events(collect: Collect) -> list[tuple]:
    return [(e.epoch, e.train_ppl, e.valid_ppl, e.lr, e.clipped_fraction, e.words) for e in collect.epochs]


# Masks of every kind draw from the RNG: per step (zaremba, zoneout), per sequence and window
# (variational), on the weights per window (weight-drop).
@pytest.mark.parametrize("placement", ["zaremba", "variational", "zoneout", "weight-drop"])
def test_a_run_stopped_within_an_epoch_and_restored_ends_as_if_never_stopped(tiny_corpus, placement):
    whole, collect_whole = trainer(tiny_corpus, placement)
    whole.run()
    per_epoch = whole.batches_per_epoch
    stop_at = per_epoch + per_epoch // 2  # halfway into epoch 2
    stopped, collect_stopped = trainer(tiny_corpus, placement, stop_at=stop_at)
    with pytest.raises(Cancelled, match=f"during epoch 2 at step {stop_at}"):
        stopped.run()
    saved = collect_stopped.saved
    assert saved["epoch"] == 1 and saved["progress"].windows == per_epoch // 2 > 0
    assert saved["progress"].state[0].abs().sum() > 0  # a real carried state, not the zero an epoch starts from

    resumed, collect_resumed = trainer(tiny_corpus, placement)
    resumed.restore(saved["weights"], epoch=saved["epoch"], step=saved["step"], words=saved["words"], elapsed=1.0,
                    rng=saved["rng"], progress=saved["progress"])
    resumed.run()

    assert events(collect_stopped) + events(collect_resumed) == events(collect_whole)
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], weight), name


def test_each_part_of_the_progress_matters(tiny_corpus):
    """Restored without its carried state, or without the epoch's totals, the run is another run."""
    import dataclasses

    whole, collect_whole = trainer(tiny_corpus, "zaremba")
    whole.run()
    stopped, collect_stopped = trainer(tiny_corpus, "zaremba", stop_at=whole.batches_per_epoch + 3)
    with pytest.raises(Cancelled):
        stopped.run()
    saved = collect_stopped.saved
    progress = saved["progress"]
    zero_state = (torch.zeros_like(progress.state[0]), torch.zeros_like(progress.state[1]))
    for wrong in (dataclasses.replace(progress, state=zero_state), dataclasses.replace(progress, nats=0.0)):
        resumed, collect_resumed = trainer(tiny_corpus, "zaremba")
        resumed.restore(saved["weights"], epoch=1, step=saved["step"], words=saved["words"], elapsed=0.0,
                        rng=saved["rng"], progress=wrong)
        resumed.train_epoch(2)
        assert collect_resumed.epochs[0].train_ppl != collect_whole.epochs[1].train_ppl


def test_a_position_outside_the_epoch_is_refused(tiny_corpus):
    made, _ = trainer(tiny_corpus, "zaremba", stop_at=3)
    with pytest.raises(Cancelled):
        made.run()
    progress = made.epoch_progress()
    import dataclasses

    weights = made.model.state_dict()
    too_far = dataclasses.replace(progress, windows=made.batches_per_epoch + 1)
    with pytest.raises(ValueError, match="after .* windows of an epoch of"):
        made.restore(weights, epoch=0, step=made.batches_per_epoch + 1, words=0, elapsed=0.0, rng=made.rng_states(),
                     progress=too_far)
