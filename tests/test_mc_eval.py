"""`rnnreg evaluate --mc-samples N`: Monte-Carlo dropout test perplexity (Gal & Ghahramani 2016)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys

import pytest
import torch

from rnnreg import mc_eval
from rnnreg.cli import main
from rnnreg.config import DEFAULT_DATA_DIR, to_dict
from rnnreg.data import batchify, load_corpus
from rnnreg.dropout.embedding import column_word_masks
from rnnreg.dropout.masks import FrozenMasks
from rnnreg.inspect_model import load_run_corpus, load_run_model
from rnnreg.runs import RunWriter, load_run, penn_treebank_checksums, read_jsonl
from tests.conftest import tiny_config, write_tiny_corpus


def _finished_run(root, corpus, placement, dropout=None, **train):
    config = dataclasses.replace(tiny_config(corpus, placement=placement, dropout=dropout, epochs=4, hidden=24,
                                             **train), name=f"mc {placement}")
    writer = RunWriter.create(root, to_dict(config))
    writer.close()
    assert main(["train", "--run-dir", str(writer.dir)]) == 0
    return writer.dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("mc")
    corpus = write_tiny_corpus(base / "corpus", lines=800)
    root = base / "runs"
    return {
        "corpus": corpus,
        "root": root,
        # four test streams, so that a sample mixed up with another stream would show
        "none": _finished_run(root, corpus, "none", test_batch_size=4),
        "variational": _finished_run(root, corpus, "variational", 0.5, test_batch_size=4),
        "weight-drop": _finished_run(root, corpus, "weight-drop", 0.5),
    }


def _model_and_test(run_dir):
    run = load_run_model(run_dir)
    t = run.config.train
    return run.model, batchify(load_corpus(run.config.data_dir).test, t.test_batch_size), t.bptt


def test_deterministic_figure_is_the_trainers_own_test_perplexity(runs):
    result = mc_eval.evaluate_run(runs["variational"], 4, torch.device("cpu"))
    recorded = load_run(runs["root"], runs["variational"].name).summary.test_ppl
    assert result.test_ppl == pytest.approx(recorded, rel=1e-5)
    assert result.tokens > 0 and result.samples == 4 and result.samples_per_pass == 4


def test_without_dropout_every_sample_is_the_deterministic_model(runs):
    """Samples are columns of one wide batch: a sample paired with the wrong stream would change the figure."""
    model, data, bptt = _model_and_test(runs["none"])
    assert data.size(1) == 4
    mc, det, _tokens, per_pass, single = mc_eval.mc_evaluate(model, data, bptt, 5)
    assert per_pass == 5 and mc == pytest.approx(det, rel=1e-9) and single == pytest.approx(det, rel=1e-9)


def test_mc_averages_probabilities_not_log_probabilities(runs):
    """log of the mean probability >= mean log probability (Jensen): MC perplexity <= the samples' geometric mean."""
    model, data, bptt = _model_and_test(runs["variational"])
    samples = 6
    mc, det, _tokens, _, single = mc_eval.mc_evaluate(model, data, bptt, samples, seed=3, per_pass=1)
    torch.manual_seed(3)  # the same masks, one sample at a time
    singles = [mc_eval._token_log_probs(model, data, bptt, 1, stochastic=True) for _ in range(samples)]
    expected = torch.stack(singles).logsumexp(0) - math.log(samples)
    assert mc == pytest.approx(math.exp(-expected.mean().item()), rel=1e-9)
    geometric = math.exp(-torch.stack(singles).mean().item())
    assert mc < geometric
    assert single == pytest.approx(geometric, rel=1e-9)  # the single-pass figure: one pass alone, on average
    assert len({round(s.sum().item(), 6) for s in singles}) == samples  # each pass drew its own masks
    assert mc != pytest.approx(det, rel=1e-3)


def test_with_a_tiny_rate_mc_approaches_the_deterministic_model(runs):
    """Masks that almost never drop anything (and rescale by 1/(1-p)) leave the trained model as it is."""
    model, data, bptt = _model_and_test(runs["variational"])
    placement = model.placement
    nearly_off = dataclasses.replace(
        placement, input=dataclasses.replace(placement.input, p=1e-4),
        hidden=dataclasses.replace(placement.hidden, p=1e-4), output=dataclasses.replace(placement.output, p=1e-4),
        embedding=1e-4)
    model.placement = nearly_off
    try:
        mc, det, _tokens, _, _single = mc_eval.mc_evaluate(model, data, bptt, 4)
    finally:
        model.placement = placement
    assert mc == pytest.approx(det, rel=2e-3)


def test_a_wide_pass_gives_each_sample_what_a_pass_of_its_own_gives_it(runs, monkeypatch):
    """Samples side by side, as columns of one wide batch, compute exactly what one pass per sample
    computes with the same masks: nothing passes between columns (state, masks, streams)."""
    model, data, bptt = _model_and_test(runs["variational"])
    batch, copies = data.size(1), 3
    stores = [FrozenMasks()]  # each pass below takes the last one: the wide pass draws, the rest replay
    monkeypatch.setattr(mc_eval, "FrozenMasks", lambda: stores[-1])
    torch.manual_seed(0)
    wide = mc_eval._token_log_probs(model, data, bptt, copies, stochastic=True)
    drawn = stores[0].masks  # (1, copies * B, H) each: column k * B + b is sample k of stream b
    assert len(drawn) == 5 and all(m.size(1) == copies * batch for m in drawn)  # input, hidden x 2 layers; output
    alone = []
    for k in range(copies):
        stores.append(FrozenMasks(masks=[m[:, k * batch:(k + 1) * batch].clone() for m in drawn]))
        alone.append(mc_eval._token_log_probs(model, data, bptt, 1, stochastic=True))
    assert torch.allclose(wide, torch.stack(alone).logsumexp(0), rtol=0, atol=1e-9)
    assert not torch.allclose(alone[0], alone[1], rtol=0, atol=1e-3)  # and the columns are different samples


def test_wide_passes_and_one_sample_passes_estimate_the_same_figure(runs):
    """mc_evaluate's chunking (per_pass) changes only which masks are drawn, not what is estimated.
    Two 200-sample figures of this model differ from seed to seed by about 0.8% (measured
    2026-11-27: 4.99-5.08 over eight seeds), so 3% is some 3.5 standard deviations."""
    model, data, bptt = _model_and_test(runs["variational"])
    wide, _det, _tokens, per_pass, _single = mc_eval.mc_evaluate(model, data, bptt, 200, seed=1)
    one_by_one, _det, _tokens, _, _single = mc_eval.mc_evaluate(model, data, bptt, 200, seed=2, per_pass=1)
    assert per_pass == 200
    assert wide == pytest.approx(one_by_one, rel=0.03)


def test_stream_masks_hold_for_the_whole_test_stream(runs):
    """Gal & Ghahramani's protocol (the default): each sample's masks are drawn once for the stream,
    so how the stream is cut into windows cannot matter; redrawn per window, it does."""
    model, data, bptt = _model_and_test(runs["variational"])
    rows = data.size(0)
    short, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, bptt, 3, seed=5)
    whole, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, rows, 3, seed=5)  # one window: one draw
    assert short == pytest.approx(whole, rel=1e-9)
    per_window, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, bptt, 3, seed=5, masks="window")
    assert per_window != pytest.approx(whole, rel=1e-6)
    whole_window, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, rows, 3, seed=5, masks="window")
    assert whole_window == pytest.approx(whole, rel=1e-9)  # one window is one draw either way


def test_word_dropout_is_off_in_the_stochastic_passes_unless_asked_for(runs):
    model, data, bptt = _model_and_test(runs["variational"])
    assert model.placement.embedding > 0
    default, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, bptt, 3, seed=7)
    placement = model.placement
    model.placement = dataclasses.replace(placement, embedding=0.0)
    try:
        without, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, bptt, 3, seed=7)
    finally:
        model.placement = placement
    assert default == pytest.approx(without, rel=1e-12)
    with_words, _det, _t, _p, _single = mc_eval.mc_evaluate(model, data, bptt, 3, seed=7, word_dropout=True)
    assert with_words != pytest.approx(default, rel=1e-6)


def test_frozen_masks_hand_out_the_same_masks_in_the_same_order():
    from rnnreg.dropout.masks import FrozenMasks, SiteDropout, frozen_masks

    like, site = torch.zeros(1), SiteDropout(0.5, "sequence")
    store = FrozenMasks()
    with frozen_masks(store):
        first = [site.masks(3, 4, 8, like), site.masks(5, 4, 16, like)]
        store.rewind()
        again = [site.masks(2, 4, 8, like), site.masks(5, 4, 16, like)]
        assert torch.equal(first[0][0], again[0][0]) and torch.equal(first[1][0], again[1][0])
        store.rewind()
        with pytest.raises(RuntimeError, match="drawn as"):
            site.masks(3, 4, 16, like)  # a different forward pass than the one that drew them
    assert not torch.equal(site.masks(3, 4, 8, like)[0], first[0][0])  # outside, masks are fresh again
    step = SiteDropout(0.5, "step")
    with frozen_masks(FrozenMasks()):
        fresh = step.masks(4, 4, 8, like)
    assert not torch.equal(fresh[0], fresh[1])  # per-step masks are never held


def test_word_masks_per_column_are_per_word_type_and_independent_across_columns():
    torch.manual_seed(0)
    tokens = torch.tensor([[3, 5]] * 6).repeat(1, 100)  # (6, 200): columns alternate words 3 and 5
    factors = column_word_masks(tokens, 0.5, 10, torch.zeros(1)).squeeze(-1)
    assert set(factors.unique().tolist()) <= {0.0, 2.0}
    assert (factors == factors[0]).all()  # a word keeps its factor along the column
    assert 60 < (factors[0] == 0).sum().item() < 140  # columns draw their own masks


def test_weight_drop_runs_one_sample_per_pass(runs):
    """One W_hh mask serves a whole batch, so weight-drop samples cannot share a pass."""
    model, data, bptt = _model_and_test(runs["weight-drop"])
    _mc, _det, _tokens, per_pass, _single = mc_eval.mc_evaluate(model, data, bptt, 3)
    assert per_pass == 1


def test_a_long_evaluation_says_how_far_it_is(runs, capsys, monkeypatch):
    """1000 passes of a medium model take minutes: a line every 10 s on stderr, not silence."""
    from rnnreg import cli

    model, data, bptt = _model_and_test(runs["variational"])
    seen = []
    mc_eval.mc_evaluate(model, data, bptt, 10, per_pass=3, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]
    clock = iter([0.0, 5.0, 12.0, 13.0, 30.0])  # started, then one reading per call
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    report = cli._progress_every(10.0)
    for done in (3, 6, 9, 10):  # at 5 s: too soon; at 12 s: said; at 13 s: too soon; at the end: the result says it
        report(done, 10)
    assert capsys.readouterr().err == "MC dropout: 6 of 10 passes, 12 s, about 8 s left\n"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # on a terminal: the bar training shows
    bar = cli._progress_every(10.0)
    for done in (3, 6, 10):
        bar(done, 10)
    drawn = capsys.readouterr().err
    assert "MC dropout" in drawn and "10/10" in drawn


def test_cli_evaluate_records_the_result(runs, capsys, monkeypatch):
    run_dir = runs["variational"]
    monkeypatch.setenv("RNNREG_GIT_COMMIT", "0123abc")  # the code that computed it, as a run's config records it
    assert main(["evaluate", run_dir.name, "--mc-samples", "8", "--runs-dir", str(runs["root"]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "with MC dropout over 8 samples" in out and "recorded" in out
    records = read_jsonl(run_dir / "metrics.jsonl", mc_eval.MC_KIND)
    assert records[-1]["samples"] == 8 and records[-1]["mc_test_ppl"] > 1 and records[-1]["device"] == "cpu"
    assert (records[-1]["masks"], records[-1]["word_dropout"]) == ("stream", False)  # Gal's protocol, recorded
    assert (records[-1]["git_commit"], records[-1]["torch_version"]) == ("0123abc", torch.__version__)
    assert "masks per stream, word dropout off" in out
    single = records[-1]["single_pass_ppl"]  # one pass alone scores worse than the average of 8
    assert single > records[-1]["mc_test_ppl"] and f"one pass alone: {single:.2f}" in out
    assert main(["evaluate", run_dir.name, "--mc-samples", "2", "--runs-dir", str(runs["root"]), "--device", "cpu",
                 "--mc-masks", "window", "--mc-word-dropout"]) == 0
    capsys.readouterr()
    last = read_jsonl(run_dir / "metrics.jsonl", mc_eval.MC_KIND)[-1]
    assert (last["samples"], last["masks"], last["word_dropout"]) == (2, "window", True)
    assert load_run(runs["root"], run_dir.name).summary.mc_protocol == "window, word dropout on"
    assert main(["list", "--runs-dir", str(runs["root"])]) == 0
    assert "(N=2, masks per window, word dropout on)" in capsys.readouterr().out
    assert main(["evaluate", run_dir.name, "--mc-samples", "8", "--runs-dir", str(runs["root"]),
                 "--device", "cpu"]) == 0  # the summary below reads the latest record
    capsys.readouterr()
    summary = load_run(runs["root"], run_dir.name).summary
    assert summary.mc_test_ppl == pytest.approx(records[-1]["mc_test_ppl"]) and summary.mc_samples == 8
    assert summary.mc_protocol == "stream"
    assert main(["list", "--runs-dir", str(runs["root"])]) == 0
    listing = capsys.readouterr().out
    assert "MC TEST" in listing.splitlines()[0] and "(N=8, masks per stream)" in listing


def test_records_from_before_the_protocol_was_recorded_read_as_the_old_protocol():
    from pathlib import Path

    from rnnreg.runs import list_runs

    shipped_runs = Path(__file__).resolve().parent.parent / "runs"
    [shipped] = [s for s in list_runs(shipped_runs) if s.name == "medium-variational-s0"]
    assert shipped.mc_samples == 1000 and shipped.mc_protocol == "window, word dropout on"


@pytest.mark.parametrize("argv, message", [
    (["--mc-samples", "0"], "--mc-samples: must be >= 1"),
    (["--mc-samples", "2", "--device", "tpu"], "--device: unknown 'tpu'; allowed: auto, cpu, cuda"),
    (["--mc-samples", "2", "--mc-masks", "step"], "--mc-masks: invalid choice: 'step'"),
])
def test_cli_evaluate_names_a_bad_option(runs, capsys, argv, message):
    assert main(["evaluate", runs["none"].name, "--runs-dir", str(runs["root"]), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_evaluate_refuses_unfinished_and_reference_runs(runs, tmp_path, capsys):
    config = tiny_config(runs["corpus"], placement="variational", dropout=0.5)
    queued = RunWriter.create(tmp_path, to_dict(config))
    queued.close()
    assert main(["evaluate", queued.dir.name, "--mc-samples", "2", "--runs-dir", str(tmp_path)]) == 2
    assert "is queued; only a finished run" in capsys.readouterr().err

    reference = tmp_path / "reference"
    shutil.copytree(runs["none"], reference / runs["none"].name)  # stands in for a shipped run
    before = (reference / runs["none"].name / "metrics.jsonl").read_bytes()
    assert main(["evaluate", runs["none"].name, "--mc-samples", "2", "--runs-dir", str(tmp_path)]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["evaluate", runs["none"].name, "--mc-samples", "2", "--runs-dir", str(tmp_path), "--no-record"]) == 0
    out = capsys.readouterr().out
    assert "with MC dropout over 2 samples" in out
    # a run without dropout: the passes are all one network, which the output says before they run
    assert f"note: {runs['none'].name} has no dropout (none): every pass is the same network" in out
    assert (reference / runs["none"].name / "metrics.jsonl").read_bytes() == before


def test_cli_evaluate_refuses_a_corpus_with_another_vocabulary(runs, tmp_path, capsys):
    other = write_tiny_corpus(tmp_path / "other", lines=40, seed=5)
    (other / "train.txt").write_text("completely different words here\n" * 20)
    assert main(["evaluate", runs["none"].name, "--mc-samples", "2", "--runs-dir", str(runs["root"]),
                 "--data", str(other)]) == 2
    assert "not the one the run was trained on" in capsys.readouterr().err
    assert json.loads((runs["none"] / "status.json").read_text())["state"] == "finished"


def _made_elsewhere(run_dir, tmp_path):
    """A copy of a run whose recorded corpus directory is not on this machine, as a shipped run's is not."""
    moved = tmp_path / "elsewhere" / run_dir.name
    shutil.copytree(run_dir, moved)
    doc = json.loads((moved / "config.json").read_text())
    doc["config"]["data_dir"] = str(tmp_path / "the-gpu-box" / "data" / "ptb")
    (moved / "config.json").write_text(json.dumps(doc))
    return moved


def test_a_run_made_elsewhere_on_another_corpus_names_the_missing_directory(runs, tmp_path, capsys):
    moved = _made_elsewhere(runs["none"], tmp_path)
    assert main(["evaluate", str(moved), "--mc-samples", "1", "--no-record"]) == 2
    err = capsys.readouterr().err
    assert "the-gpu-box" in err and "not on this machine" in err and "--data DIR" in err
    recorded = load_run(runs["root"], runs["none"].name).summary.test_ppl
    given = mc_eval.evaluate_run(moved, 1, torch.device("cpu"), data_dir=runs["corpus"])  # --data still serves
    assert given.test_ppl == pytest.approx(recorded, rel=1e-5)


def test_a_run_made_elsewhere_on_the_penn_treebank_reads_the_vendored_copy(tmp_path):
    # trained on the vendored PTB (a few hundred tokens of it), then as if copied from another machine
    config = dataclasses.replace(tiny_config(DEFAULT_DATA_DIR, placement="none", epochs=1, max_train_tokens=400,
                                             max_eval_tokens=400), name="ptb elsewhere")
    writer = RunWriter.create(tmp_path / "runs", to_dict(config))
    writer.close()
    assert main(["train", "--run-dir", str(writer.dir)]) == 0
    assert writer.read_config()["environment"]["data_sha256"] == penn_treebank_checksums()
    moved = _made_elsewhere(writer.dir, tmp_path)
    assert load_run_corpus(load_run_model(moved)).checksums == penn_treebank_checksums()
    recorded = load_run(tmp_path / "runs", writer.dir.name).summary.test_ppl
    assert mc_eval.evaluate_run(moved, 1, torch.device("cpu")).test_ppl == pytest.approx(recorded, rel=1e-5)


def test_the_readme_names_every_key_of_an_mc_test_record():
    """The run format section documents the record `rnnreg evaluate` appends, key by key."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split('- `kind: "mc_test"`', 1)[1].split("\n- ", 1)[0]
    keys = [field.name for field in dataclasses.fields(mc_eval.MCResult)] + ["evaluated_at"]
    assert [key for key in keys if f"`{key}`" not in section] == []
