"""The trainer: learns, is deterministic on CPU, scales the loss like the paper, stops on divergence."""

import math

import pytest
import torch

from rnnreg.data import load_corpus
from rnnreg.train import Diverged, Trainer
from tests.conftest import tiny_config


class Collect:
    def __init__(self):
        self.steps, self.epochs, self.tests = [], [], []

    def on_step(self, trainer, event):
        self.steps.append(event)

    def on_epoch_end(self, trainer, event):
        self.epochs.append(event)

    def on_test(self, trainer, event):
        self.tests.append(event)


def _train(corpus_dir, **kwargs):
    config = tiny_config(corpus_dir, **kwargs)
    collect = Collect()
    Trainer(config, load_corpus(corpus_dir), torch.device("cpu"), [collect]).run()
    return collect


def test_a_tiny_run_lowers_perplexity(tiny_corpus):
    run = _train(tiny_corpus, epochs=4, hidden=64, layers=1)
    first, last = run.epochs[0], run.epochs[-1]
    assert last.train_ppl < first.train_ppl and last.valid_ppl < first.valid_ppl
    # 18 types: a unigram model scores ~15; the text's bigram structure allows ~2.5
    assert last.valid_ppl < 4
    assert len(run.tests) == 1 and math.isfinite(run.tests[0].test_ppl)


@pytest.mark.parametrize("placement", ["zaremba", "variational", "zoneout", "weight-drop"])
def test_same_seed_gives_identical_metrics(tiny_corpus, placement):
    a = _train(tiny_corpus, placement=placement, epochs=2)
    b = _train(tiny_corpus, placement=placement, epochs=2)
    assert [(e.train_ppl, e.valid_ppl) for e in a.epochs] == [(e.train_ppl, e.valid_ppl) for e in b.epochs]
    assert [s.loss for s in a.steps] == [s.loss for s in b.steps]
    c = _train(tiny_corpus, placement=placement, epochs=2, seed=1)
    assert [e.train_ppl for e in c.epochs] != [e.train_ppl for e in a.epochs]


def test_loss_is_summed_over_steps_and_averaged_over_the_batch(tiny_corpus):
    """The gradient the trainer clips is that of sum_t CE_t / B (the paper's scale, which the clip assumes)."""
    config = tiny_config(tiny_corpus, epochs=1, log_every=1, clip=1e9)
    corpus = load_corpus(tiny_corpus)
    trainer = Trainer(config, corpus, torch.device("cpu"))
    inputs, targets = trainer.train_data[: config.train.bptt], trainer.train_data[1 : config.train.bptt + 1]
    model = trainer.model
    out = model(inputs, model.init_state(config.train.batch_size), path="fused")
    loss = torch.nn.functional.cross_entropy(out.logits.view(-1, len(corpus.vocab)), targets.reshape(-1), reduction="sum")
    loss = loss / config.train.batch_size
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    collect = Collect()
    trainer.listeners.append(collect)
    torch.manual_seed(config.train.seed)
    trainer.train_epoch(1)
    assert collect.steps[0].grad_norm == pytest.approx(expected_norm, rel=1e-5)
    assert collect.steps[0].loss == pytest.approx(loss.item() * config.train.batch_size / inputs.numel(), rel=1e-5)


def test_clipping_is_counted_per_epoch(tiny_corpus):
    run = _train(tiny_corpus, epochs=1, clip=1e-6)
    assert run.epochs[0].clipped_fraction == 1.0 and all(s.clipped for s in run.steps)
    run = _train(tiny_corpus, epochs=1, clip=1e9)
    assert run.epochs[0].clipped_fraction == 0.0


def test_a_non_finite_loss_stops_training_naming_step_and_lr(tiny_corpus):
    with pytest.raises(Diverged) as err:
        _train(tiny_corpus, epochs=2, lr=1e38, clip=1e38)
    assert "step" in str(err.value) and "lr 1e+38" in str(err.value) and "hint" in str(err.value)
    assert err.value.step >= 1


def test_a_loss_that_blows_up_but_stays_finite_stops_training_too(tiny_corpus):
    """lr 100 on the demo once 'finished' at perplexity 1e304: a finite loss of 170,000 nats a word."""
    with pytest.raises(Diverged) as err:
        _train(tiny_corpus, epochs=2, lr=100.0)
    assert "blew up" in str(err.value) and "times a uniform guess's" in str(err.value) and "lr 100" in str(err.value)
    assert _train(tiny_corpus, epochs=1, lr=1.0).epochs  # the paper's lr trains on


def test_lr_follows_the_schedule_during_training(tiny_corpus):
    run = _train(tiny_corpus, epochs=3, lr_decay=2.0, decay_after=1)
    assert [e.lr for e in run.epochs] == [1.0, 0.5, 0.25]


def test_runs_sharing_the_cpu_queue_get_a_core_share_each(tiny_corpus):
    from rnnreg.training_run import share_cores

    config = tiny_config(tiny_corpus)
    assert share_cores(config, 1, 8) is config  # alone: torch's default
    assert share_cores(config, 2, 8).train.threads == 4
    assert share_cores(config, 4, 2).train.threads == 1
    pinned = tiny_config(tiny_corpus, threads=3)
    assert share_cores(pinned, 4, 8).train.threads == 3
