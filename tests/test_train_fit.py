"""benchmarks/train_fit.py: the fixed weights' fit of a split, and windows scored with online steps."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rnnreg.cli import main as rnnreg_main
from rnnreg.config import to_dict
from rnnreg.data import batchify, load_corpus
from rnnreg.inspect_model import load_run_model
from rnnreg.runs import RunWriter, read_jsonl
from tests.conftest import load_benchmark, tiny_config, write_tiny_corpus

train_fit = load_benchmark("train_fit")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("fit")
    corpus = write_tiny_corpus(base / "corpus", lines=400)
    config = dataclasses.replace(tiny_config(corpus, placement="none", epochs=3, hidden=24), name="fit none")
    writer = RunWriter.create(base / "runs", to_dict(config))
    writer.close()
    assert rnnreg_main(["train", "--run-dir", str(writer.dir)]) == 0
    return writer.dir


def _model_and_splits(run_dir):
    run = load_run_model(run_dir)
    t = run.config.train
    corpus = load_corpus(run.config.data_dir)
    return run, batchify(corpus.train, t.batch_size), batchify(corpus.valid, t.batch_size)


def test_fixed_weights_on_valid_give_the_trainers_own_validation_figure(run_dir):
    run, _train, valid = _model_and_splits(run_dir)
    nats = train_fit.fixed_nats(run.model, valid, run.config.train.bptt)
    recorded = read_jsonl(run_dir / "metrics.jsonl", kind="epoch")[-1]["valid_ppl"]
    assert math.exp(nats.mean().item()) == pytest.approx(recorded, rel=1e-5)
    assert nats.size(0) % run.config.train.bptt == 0  # full windows only, as the trainer reads valid


def test_online_steps_at_lr_0_score_the_fixed_weights(run_dir):
    run, train, _valid = _model_and_splits(run_dir)
    bptt, n = run.config.train.bptt, 6
    online = train_fit.online_nats(run.model, train, bptt, run.config.train.clip, 0.0, n)
    fixed = train_fit.fixed_nats(run.model, train, bptt)[: n * bptt]  # (n * bptt, B)
    per_window = fixed.view(n, bptt, -1).mean((1, 2))
    torch.testing.assert_close(online, per_window, rtol=1e-5, atol=1e-5)


def test_online_steps_score_each_window_before_its_own_update_and_leave_the_model_alone(run_dir):
    run, train, _valid = _model_and_splits(run_dir)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    t = run.config.train
    still = train_fit.online_nats(run.model, train, t.bptt, t.clip, 0.0, 4)
    moving = train_fit.online_nats(run.model, train, t.bptt, t.clip, 1.0, 4)
    assert moving[0].item() == pytest.approx(still[0].item(), rel=1e-6)  # no update before the first score
    assert (moving[1:] - still[1:]).abs().min().item() > 1e-4  # each later window sees the updates
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, before[name]), name  # a copy was trained, not the run's model


def test_online_steps_decay_the_weights_as_the_trainer_does_when_the_run_did(run_dir):
    run, train, _valid = _model_and_splits(run_dir)
    t = run.config.train
    plain = train_fit.online_nats(run.model, train, t.bptt, t.clip, 1.0, 3)
    decayed = train_fit.online_nats(run.model, train, t.bptt, t.clip, 1.0, 3, weight_decay=0.5)
    assert decayed[0].item() == pytest.approx(plain[0].item(), rel=1e-6)  # scored before its own update
    assert (decayed[1:] - plain[1:]).abs().min().item() > 1e-3  # every later window: half of each weight gone


def test_quarters_split_positions_into_four_in_order():
    nats = torch.log(torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0], [8.0]]))
    assert train_fit.quarters(nats) == pytest.approx([math.sqrt(2), math.sqrt(12), math.sqrt(30), math.sqrt(56)])


def test_command_prints_the_fit_beside_the_recorded_figures(run_dir, capsys):
    assert train_fit.main([str(run_dir), "--split", "valid", "--online-windows", "3", "--lr", "0.5"]) == 0
    out = capsys.readouterr().out
    epochs = read_jsonl(run_dir / "metrics.jsonl", kind="epoch")
    assert f"weights after epoch {len(epochs)}" in out
    recorded = f"recorded training perplexity of epoch {len(epochs)} (scored on the fly): {epochs[-1]['train_ppl']:.2f}"
    assert recorded in out
    assert f"fixed weights on valid: ppl {epochs[-1]['valid_ppl']:.2f}" in out
    assert "first 3 training windows, online steps at lr 0:" in out
    assert "first 3 training windows, online steps at lr 0.5:" in out


def test_command_names_what_is_wrong(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as bad:
        train_fit.main([str(run_dir), "--online-windows", "-1"])
    assert bad.value.code == 2 and "--online-windows" in capsys.readouterr().err
    for argv, name in ((["--threads", "0"], "--threads"), (["--lr", "-0.1"], "--lr")):
        with pytest.raises(SystemExit) as bad:
            train_fit.main([str(run_dir), *argv])
        assert bad.value.code == 2 and name in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        train_fit.main([str(run_dir), "--split", "test"])
    assert bad.value.code == 2 and "invalid choice" in capsys.readouterr().err
    other = write_tiny_corpus(tmp_path / "other", lines=40, seed=5)
    (other / "train.txt").write_text("completely different words here\n" * 20)
    assert train_fit.main([str(run_dir), "--data", str(other)]) == 2
    assert "vocabulary is not the one the run was trained on" in capsys.readouterr().err
    empty = tmp_path / "no-checkpoint"
    empty.mkdir()
    assert train_fit.main([str(empty)]) == 2
    assert "config.json: missing" in capsys.readouterr().err
    assert train_fit.main(["no-such-run", "--runs-dir", str(tmp_path)]) == 2
    assert "no-such-run" in capsys.readouterr().err
