"""Poking a trained model: predictions and gates per word, sampling, the CLI and the poke page."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rnnreg import inspect_model
from rnnreg.inspect_model import InspectError
from tests.fixtures_lecture import REPO, lecture_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return lecture_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(runs):
    return inspect_model.load_run_model(runs["zaremba"])


def test_every_word_gets_top_predictions_and_gates(loaded):
    inspection = inspect_model.inspect_text(loaded, "The cat sat on zebra", top=3)
    assert inspection.words == ["the", "cat", "sat", "on", "zebra"]
    assert inspection.known == [True, True, True, True, False]  # zebra is not in the tiny corpus
    preds = inspection.predictions
    assert len(preds) == 5 * 3 and set(preds["rank"]) == {1, 2, 3}
    for _position, part in preds.groupby("position"):
        assert list(part["prob"]) == sorted(part["prob"], reverse=True) and part["prob"].sum() <= 1 + 1e-6
    # after "the cat sat" a model trained on "the cat sat on a mat ..." expects "on"
    assert preds[(preds["position"] == 2) & (preds["rank"] == 1)]["next_word"].item() == "on"
    means = inspection.gate_means
    assert set(means["gate"]) == {"i", "f", "o", "g", "c", "h"} and set(means["layer"]) == {0, 1}
    assert means[means["gate"].isin(["i", "f", "o"])]["mean"].between(0, 1).all()
    assert inspection.units[(1, "f")].shape == (5, 32)
    table = inspect_model.prediction_table(inspection)
    assert list(table["word"]) == ["the", "cat", "sat", "on", "zebra → <unk>"]
    guesses = table.drop(columns="word").to_numpy().ravel()
    assert all(re.fullmatch(r".+ \((<1|[1-9]\d?|100)%\)", g) for g in guesses), guesses  # never "(0%)"
    assert [inspect_model._percent(p) for p in (0.004, 0.005, 0.0051, 0.42)] == ["<1%", "<1%", "1%", "42%"]


def test_the_gate_heat_map_gives_the_gates_and_the_signed_states_each_their_own_scale(loaded):
    from rnnreg import lecture_plots

    inspection = inspect_model.inspect_text(loaded, "the cat sat on a mat", top=1)
    fig = lecture_plots.gate_means_figure(inspection.gate_means, layer=1)
    gates, states = fig.data  # one shared scale made g, c, h (near 0) one dark band against gates near 0.4
    assert list(gates.y) == ["i", "f", "o"] and gates.zmid is None and gates.colorscale[0][1] == "#440154"
    assert list(states.y) == ["g", "c", "h"] and states.zmid == 0  # diverging: white at 0, red below, blue above
    assert states.colorscale != gates.colorscale
    assert (gates.yaxis, states.yaxis, fig.layout.xaxis.anchor) == ("y", "y2", "y2")  # the words under both
    assert fig.layout.yaxis2.domain[1] < fig.layout.yaxis.domain[0]  # apart, gates above
    means = inspection.gate_means[inspection.gate_means["layer"] == 1]
    assert gates.z[0][2] == pytest.approx(means[(means["gate"] == "i") & (means["position"] == 2)]["mean"].item())
    assert len(gates.x) == 6 and gates.x[0] == "1. the"


def test_a_word_is_looked_up_as_typed_then_lower_cased():
    from rnnreg.data import Vocabulary

    vocab = Vocabulary(("Alice", "met", "bob", "<eos>", "<unk>"))  # a corpus of your own may keep capitals
    words, ids, known = inspect_model.encode(vocab, "Alice Met Bob Carol <eos>")
    assert words == ["Alice", "met", "bob", "carol", "<eos>"] and known == [True, True, True, False, True]


def test_generate_is_seeded_and_checks_its_options(loaded, runs):
    a = inspect_model.generate(loaded, "the dog", 0.8, 12, seed=3)
    assert a == inspect_model.generate(runs["zaremba"], "the dog", 0.8, 12, seed=3)  # a path works too
    assert a.startswith("the dog") and len(a.split()) >= 2
    with pytest.raises(InspectError, match="prompt is empty"):
        inspect_model.generate(loaded, "   ")
    with pytest.raises(InspectError, match="temperature"):
        inspect_model.generate(loaded, "the", temperature=0)
    with pytest.raises(InspectError, match="temperature"):
        inspect_model.generate(loaded, "the", temperature=float("inf"))
    # so low the logits overflow float32: its limit, the likeliest word each time (no NaN into multinomial)
    greedy = inspect_model.generate(loaded, "the dog", 1e-40, 6, seed=1)
    assert greedy == inspect_model.generate(loaded, "the dog", 1e-40, 6, seed=2) and len(greedy.split()) >= 2
    with pytest.raises(InspectError, match="words"):
        inspect_model.generate(loaded, "the", n_words=0)


def test_a_run_without_checkpoint_is_a_clear_error(runs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runs["none"], broken)
    (broken / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(InspectError, match="not an rnnreg safetensors checkpoint"):
        inspect_model.load_run_model(broken)
    (broken / "vocab.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(InspectError, match="<unk>"):
        inspect_model.load_run_model(broken)


def test_the_weights_say_how_far_they_are_trained_even_from_within_an_epoch(runs, tmp_path):
    from rnnreg.checkpoint import load_checkpoint, save_checkpoint

    assert inspect_model.load_run_model(runs["none"]).trained() == "after epoch 2 of 2"
    partway = tmp_path / "partway"
    shutil.copytree(runs["none"], partway)
    path = partway / "checkpoint.safetensors"
    tensors, state = load_checkpoint(path)
    save_checkpoint(path, tensors, {**state, "epoch": 1, "within_epoch": {"windows": 7}})  # as the recorder writes it
    assert inspect_model.load_run_model(partway).trained() == "7 minibatches into epoch 2 of 2"
    for epoch, within in (("1", {"windows": "7"}), (-3, {"windows": True}), (None, [7])):  # labels only: no crash
        save_checkpoint(path, tensors, {**state, "epoch": epoch, "within_epoch": within})
        assert inspect_model.load_run_model(partway).trained() == "after epoch 0 of 2"


def test_cli_generate(runs):
    root = runs["none"].parent.parent
    run_id = runs["none"].name
    cmd = [sys.executable, "-m", "rnnreg", "generate", run_id, "--runs-dir", str(root), "--words", "5", "--seed", "1"]
    ok = subprocess.run(cmd + ["--prompt", "a bird"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("a bird") and len(ok.stdout.split()) >= 3
    empty = subprocess.run(cmd + ["--prompt", " "], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "prompt is empty" in empty.stderr and "Traceback" not in empty.stderr


def test_a_run_id_is_looked_up_in_the_runs_root_never_in_the_current_directory(runs, tmp_path, monkeypatch, capsys):
    from rnnreg.cli import main

    root, run_id = runs["none"].parent.parent, runs["none"].name
    shadow = tmp_path / run_id  # a folder of the run's name where the command is typed
    shutil.copytree(runs["none"], shadow)
    (shadow / "vocab.json").write_text("not json")
    monkeypatch.chdir(tmp_path)
    assert main(["generate", run_id, "--runs-dir", str(root), "--words", "2", "--prompt", "the"]) == 0
    assert capsys.readouterr().out.startswith("the")  # the store's run, not the folder here
    assert main(["generate", f"./{run_id}", "--words", "2", "--prompt", "the"]) == 2  # a path: that folder
    assert "vocab.json" in capsys.readouterr().err
    assert main(["generate", "./no-such-folder", "--words", "2", "--prompt", "the"]) == 2
    assert "no run directory ./no-such-folder" in capsys.readouterr().err


def test_poke_page_shows_predictions_gates_and_samples(runs, monkeypatch):
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(runs["none"].parent.parent))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/poke.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="poke_text").set_value("the red ball and").run()
    assert not at.exception
    shown = at.selectbox(key="poke_run").value
    assert "The weights of its checkpoint: after epoch 2 of 2." in [c.value for c in at.caption], shown
    assert at.dataframe[0].value["word"].tolist() == ["the", "red", "ball", "and"]
    assert len(at.get("plotly_chart")) == 2  # gate means and units heat maps
    at.selectbox(key="poke_gate").set_value("o").run()
    at.button(key="poke_generate").click().run()
    assert not at.exception
    yours = "**the** **red** **ball** **and** "  # the prompt in bold, then the model's words
    [written] = [m.value for m in at.markdown if m.value.startswith(yours)]
    theirs = written[len(yours):]
    assert len(theirs.split()) + theirs.count("\n") == 30 and "**" not in theirs, written  # <eos>: a line break
    at.number_input(key="poke_words").set_value(7).run()  # another request: the old sample is not its answer
    assert not any(yours in m.value for m in at.markdown)
    at.number_input(key="poke_words").set_value(30).run()  # back to what it was written for
    assert any(yours in m.value for m in at.markdown)
    at.text_input(key="poke_text").set_value("   ").run()
    assert at.warning and "at least one word" in at.warning[0].value


def test_poke_shows_a_hostile_vocabulary_as_words_never_as_markdown(runs, tmp_path, monkeypatch):
    # a run copied in whose vocab.json holds markdown: its words must not load images or make links
    root = tmp_path / "runs"
    copied = root / runs["none"].name
    shutil.copytree(runs["none"], copied)
    words = json.loads((copied / "vocab.json").read_text())
    beacon = "![x](https://evil.example/beacon.png)"
    words = [beacon if w not in ("<unk>", "the") else w for w in words]  # every sample word is the beacon
    (copied / "vocab.json").write_text(json.dumps(words))
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/poke.py").run()
    at.text_input(key="poke_text").set_value("the").run()
    at.button(key="poke_generate").click().run()
    assert not at.exception
    [sample] = [m.value for m in at.markdown if m.value.startswith("**the**")]
    assert "evil\\.example" in sample and "\\!\\[x\\]\\(" in sample, sample
    assert not re.search(r"(?<!\\)[\[\]]", sample), sample  # every bracket escaped: no image, no link


@pytest.mark.parametrize("word, shown", [
    ("#", "\\#"),  # a Penn Treebank word: at the start of a line it would make a heading
    ("-", "\\-"), ("1.", "1\\."), ("=", "\\="),  # a list, an ordered list, a heading's underline
    ("<b>", "\\<b\\>"), ("a&b", "a\\&b"),  # text, never HTML or an entity
    (":rocket:", "\\:\u200brocket\\:\u200b"),  # no emoji or icon code
    ("N", "N"), ("don't", "don\\'t"),
])
def test_a_written_word_is_markdown_for_itself(word, shown):
    from pages.shared import common

    assert common.word_markdown(word) == shown


@pytest.mark.parametrize("spoil, said", [
    (lambda d: (d / "vocab.json").unlink() or os.mkfifo(d / "vocab.json"), "not a regular file"),
    # millions of words (the limit lowered here from 16 GB to 1 GB: 3 M words x 32 units x 2 x 4 bytes)
    (lambda d: (d / "vocab.json").write_text(json.dumps(["<unk>", *map(str, range(3_000_000))])),
     "would take 1 GB; this viewer stops at 0 GB"),
    (lambda d: os.truncate(d / "checkpoint.safetensors", 4 << 30), "larger than its model's"),  # sparse: no disk
    (lambda d: _checkpoint_with_state(d, "[" * 100_000 + "]" * 100_000), "not an rnnreg safetensors checkpoint"),
])
def test_a_run_whose_files_would_hang_or_exhaust_the_viewer_is_refused(runs, tmp_path, monkeypatch, spoil, said):
    monkeypatch.setattr(inspect_model, "MAX_WEIGHT_BYTES", 10**8)
    copied = tmp_path / runs["none"].name
    shutil.copytree(runs["none"], copied)
    spoil(copied)
    with pytest.raises(InspectError, match=said):  # before: a blocked read, a RecursionError, a MemoryError
        inspect_model.load_run_model(copied)


def test_a_checkpoint_of_non_finite_weights_is_refused_by_poke_generate_and_evaluate(runs, tmp_path):
    """A bit-flipped or hand-made file: before, generate wrote 'aer aer aer', evaluate recorded a null
    MC figure, and the Poke page raised ZeroDivisionError drawing the gates."""
    import torch

    from rnnreg.checkpoint import load_checkpoint, save_checkpoint
    from rnnreg.mc_eval import EvaluateError, evaluate_run

    copied = tmp_path / runs["none"].name
    shutil.copytree(runs["none"], copied)
    tensors, state = load_checkpoint(copied / "checkpoint.safetensors")
    name = next(k for k in tensors if k.startswith("model.") and k.endswith("decoder.weight"))
    tensors[name][0, 0] = float("nan")
    save_checkpoint(copied / "checkpoint.safetensors", tensors, state)
    said = r"weights are not finite \(decoder.weight\): the run diverged, or the file is damaged"
    with pytest.raises(InspectError, match=said):
        inspect_model.load_run_model(copied)
    with pytest.raises(EvaluateError, match=said):
        evaluate_run(copied, samples=1, device=torch.device("cpu"))
    out = subprocess.run([sys.executable, "-m", "rnnreg", "generate", str(copied), "--prompt", "the"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and re.search(said, out.stderr) and not out.stdout


def test_a_checkpoint_of_another_shape_says_which_weight_on_one_line(runs, tmp_path):
    config_path = (copied := tmp_path / runs["none"].name) / "config.json"
    shutil.copytree(runs["none"], copied)
    doc = json.loads(config_path.read_text())
    doc["config"]["model"]["hidden"] += 1
    config_path.write_text(json.dumps(doc))
    with pytest.raises(InspectError) as err:
        inspect_model.load_run_model(copied)
    message = str(err.value)
    assert "\n" not in message and "size mismatch for " in message and "Error(s) in loading" not in message


def test_gate_means_of_a_model_of_nans_draw_an_empty_chart_not_a_division_by_zero():
    import pandas as pd

    from rnnreg import lecture_plots

    means = pd.DataFrame({"layer": 0, "gate": ["i", "f", "c"], "position": 0, "word": "the", "mean": float("nan")})
    fig = lecture_plots.gate_means_figure(means, layer=0)
    assert "No finite activations" in fig.layout.annotations[0].text


def _checkpoint_with_state(run_dir: Path, state_text: str) -> None:
    from safetensors.torch import save as save_safetensors

    from rnnreg.checkpoint import STATE_KEY, load_checkpoint

    tensors, _state = load_checkpoint(run_dir / "checkpoint.safetensors")
    data = save_safetensors(tensors, metadata={STATE_KEY: state_text})
    (run_dir / "checkpoint.safetensors").write_bytes(data)


def test_poke_offers_a_memory_run_a_sequence_of_its_own_symbols_and_it_recalls_the_key(monkeypatch):
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(REPO / "runs"))  # the shipped runs
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/poke.py").run()
    shipped_without_weights = [c.value for c in at.caption if "shipped runs are not listed" in c.value]
    assert shipped_without_weights and shipped_without_weights[0].split()[0].isdigit()
    [memory_run] = [p.name for p in (REPO / "runs" / "reference").glob("*-memory-recall-none-delay10-*")]
    at.selectbox(key="poke_run").set_value(memory_run).run()
    assert not at.exception
    assert at.text_input(key="poke_text_memory").value == "k3 d1 d4 d0 d6 d2 ="  # not an English sentence
    assert not [c.value for c in at.caption if c.value.startswith("Not in the vocabulary")]  # nothing is <unk>
    after_query = at.dataframe[0].value.iloc[-1]
    assert after_query["word"] == "=" and after_query["#1"].startswith("k3 ")  # it names the key, 5 steps back


def test_poke_page_without_checkpoints_points_to_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/poke.py").run()
    assert not at.exception and "No run with a checkpoint" in at.info[0].value


def test_a_compacted_checkpoint_still_pokes_but_refuses_to_resume(tmp_path, tiny_corpus):
    """`rnnreg compact` halves the weights to float16 for shipping; viewing works, resuming is refused."""
    import json
    import subprocess
    import sys

    runs = tmp_path / "runs"
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    made = subprocess.run([sys.executable, "-m", "rnnreg", "train", "--preset", "demo", "--epochs", "1", "--data",
                           str(tiny_corpus), "--device", "cpu", "--runs-dir", str(runs)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert made.returncode == 0, made.stderr
    run_id = Path(made.stdout.strip().splitlines()[-1]).name
    before = (runs / run_id / "checkpoint.safetensors").stat().st_size
    out = subprocess.run([sys.executable, "-m", "rnnreg", "compact", run_id, "--runs-dir", str(runs)],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (runs / run_id / "checkpoint.safetensors").stat().st_size < 0.6 * before
    assert json.loads((runs / run_id / "checkpoint.json").read_text())["weights_dtype"] == "float16"
    gen = subprocess.run([sys.executable, "-m", "rnnreg", "generate", run_id, "--prompt", "the cat", "--words", "3",
                          "--runs-dir", str(runs)], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert gen.returncode == 0, gen.stderr
    ev = subprocess.run([sys.executable, "-m", "rnnreg", "evaluate", run_id, "--mc-samples", "1", "--no-record",
                         "--device", "cpu", "--runs-dir", str(runs)], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert "note: these are the checkpoint's float16 weights (rnnreg compact); the trainer measured test" in ev.stdout
    from rnnreg.checkpoint import CheckpointError
    from rnnreg.config import from_dict
    from rnnreg.recording import restore_trainer
    from rnnreg.tasks import load_task_data
    from rnnreg.train import Trainer
    import torch

    config = from_dict(json.loads((runs / run_id / "config.json").read_text())["config"])
    trainer = Trainer(config, load_task_data(config), torch.device("cpu"))
    with pytest.raises(CheckpointError, match="compacted"):
        restore_trainer(trainer, runs / run_id / "checkpoint.safetensors")


def test_a_shipped_run_without_weights_says_so_not_that_it_has_yet_to_train():
    shipped = sorted(p for p in (REPO / "runs" / "reference").iterdir()
                     if (p / "vocab.json").exists() and not (p / "checkpoint.safetensors").exists())
    with pytest.raises(InspectError, match="a shipped run without its weights") as refused:
        inspect_model.load_run_model(shipped[0])
    assert f"`rnnreg show {shipped[0].name}` prints its command" in str(refused.value)  # how to train one like it
