"""Streamlit AppTest over every page of the dashboard, plus interactions a user does.

Synthetic run directories (tests/fixtures_runs.py) give the broken and frozen states; the
launch and cancel tests start the real trainer and are skipped until `python -m rnnreg train`
exists.
"""

from __future__ import annotations

import base64
import json
import re
import os
import shlex
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fixtures_runs import (STANDARD_IDS, train_tiny_runs, write_corrupt_run, write_half_written_run,
                           write_run)

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGES = ["runs", "launch", "perplexity", "gradients", "gates", "compare", "export", "sweeps"]
CHART_PAGES = {"perplexity": 3, "gradients": 2, "gates": 1, "compare": 1}  # secondary views: lazy tabs


@lru_cache(maxsize=1)
def trainer_available() -> bool:
    try:
        out = subprocess.run([sys.executable, "-m", "rnnreg", "train", "--help"], cwd=REPO, capture_output=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


needs_trainer = pytest.mark.skipif("not trainer_available()",
                                   reason="the trainer CLI (python -m rnnreg train) is not there yet")


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Real runs from the trainer, made once per session (synthetic ones if there is no trainer yet)."""
    root = tmp_path_factory.mktemp("trained")
    if trainer_available():
        return root, train_tiny_runs(root)
    write_run(root, STANDARD_IDS["overfit"], placement="none", name="no dropout", seed=1)
    write_run(root, STANDARD_IDS["zaremba"], placement="zaremba", dropout=0.5, name="zaremba 0.5", seed=2)
    return root, {"overfit": STANDARD_IDS["overfit"], "zaremba": STANDARD_IDS["zaremba"]}


@pytest.fixture
def ids(trained) -> dict[str, str]:
    return {**STANDARD_IDS, **trained[1]}


@pytest.fixture
def store(trained, tmp_path, monkeypatch) -> Path:
    """The trained runs, a reference copy of one, and synthetic states no real run can be frozen in."""
    root = tmp_path / "runs"
    shutil.copytree(trained[0], root, ignore=shutil.ignore_patterns(".*", "checkpoint*"))
    shutil.copytree(root / trained[1]["overfit"], root / "reference" / "20261101-000000-ref-small")
    reference_config = root / "reference" / "20261101-000000-ref-small" / "config.json"
    doc = json.loads(reference_config.read_text())
    doc["config"]["name"] = "reference small"
    reference_config.write_text(json.dumps(doc))
    write_run(root, STANDARD_IDS["running"], placement="zaremba", dropout=0.3, name="in progress", seed=3,
              epochs_done=3, state="running")
    write_corrupt_run(root, STANDARD_IDS["corrupt"])
    write_half_written_run(root, STANDARD_IDS["half"])
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    return root


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(array) -> list:
    """A trace's x/y as a list (Plotly sends numeric arrays as base64 `bdata`)."""
    if isinstance(array, dict) and "bdata" in array:
        return list(np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]))
    return list(array)


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(store, page):
    at = app(page)
    assert_no_exception(at)
    assert at.title[0].value  # the page drew its heading
    assert len(at.get("plotly_chart")) >= CHART_PAGES.get(page, 0)
    assert at.sidebar.multiselect(key="picked_runs")  # the shared picker is on every page


def test_empty_store_points_to_launch_and_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(tmp_path / "nothing-here"))
    for page in PAGES:
        at = app(page)
        assert_no_exception(at)
    at = app("runs")
    text = " ".join(i.body for i in at.info)
    assert "python -m rnnreg train" in text and "Launch" in text
    assert at.get("page_link")


def test_plotly_prefetch_is_sent_once_per_session_and_gone_when_the_run_ends(tmp_path, monkeypatch):
    def script():
        from pages.shared.warmup import prefetch_plotly

        prefetch_plotly()  # left in place here, to see it

    at = AppTest.from_function(script).run()
    blank = [json.loads(c.proto.spec) for c in at.sidebar.get("plotly_chart")]
    assert len(blank) == 1 and blank[0]["layout"]["height"] == 10
    at.run()
    assert not at.sidebar.get("plotly_chart")  # a session compiles Plotly once
    # in the app it is removed at the end of the run, also when the page stops early (empty store)
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(tmp_path / "nothing-here"))
    at = app()
    assert_no_exception(at)
    assert not at.get("plotly_chart") and at.session_state["_plotly_prefetched"]


def test_the_picker_names_a_run_s_state_only_where_it_is_not_finished(store, ids):
    at = app()
    picker = at.sidebar.multiselect(key="picked_runs")  # its options as the chips show them
    assert "zaremba 0.5" in picker.options and "in progress · running" in picker.options
    assert not any(o.endswith("· finished") for o in picker.options)


def test_parallel_coordinates_on_request(store):
    at = app("runs")
    assert not at.get("plotly_chart")  # off by default: it is most of the page's time in a browser
    at.toggle(key="runs_parcoords_on").set_value(True).run()
    assert_no_exception(at)
    figure = figures(at)[0]
    assert figure["data"][0]["type"] == "parcoords"
    dimensions = {d["label"]: d for d in figure["data"][0]["dimensions"]}
    assert "placement" in dimensions and "best valid ppl" in dimensions
    # the corrupt run has a valid perplexity (480) but no readable config: its rates are unknown, not 0
    corrupt = STANDARD_IDS["corrupt"]
    assert 480.0 not in dimensions["best valid ppl"]["values"]
    assert "?" not in dimensions["placement"]["ticktext"]
    assert any(corrupt in c.value and "settings unreadable" in c.value for c in at.caption)


def test_runs_table_puts_own_runs_first_then_the_papers_models_and_shows_recall(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_run(root, "20261205-000000-mine", name="mine", seed=9)
    write_run(root / "reference", "20261210-000000-ref-demo", name="ref demo", seed=1)
    write_run(root / "reference", "20261201-000000-ref-medium", preset="medium", placement="zaremba",
              epochs_total=2, name="ref medium", seed=2)
    recall = write_run(root / "reference", "20261211-000000-ref-memory", preset="memory", epochs_total=2,
                       name="ref memory", seed=3)
    with (recall / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "test", "test_ppl": 3.1, "test_accuracy": 0.25}) + "\n")
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = app("runs")
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["mine", "ref medium", "ref memory", "ref demo"]  # then newest first
    assert table.set_index("name").loc["ref memory", "test recall"] == 25.0
    assert table["test recall"].isna().sum() == 3
    assert at.dataframe[0].proto.placeholder == "—"  # a language model's recall is not "None"
    picker = at.sidebar.multiselect(key="picked_runs")  # the sidebar lists them in the same order
    assert picker.options[:4] == [picker.format_func(r) for r in table["id"]]


def one_run_tested_with_dropout_on(tmp_path, monkeypatch) -> Path:
    """A store of two runs, "plain" and "evaluated", the latter with an MC test as `rnnreg evaluate
    --mc-masks window` records it; the app reads it.  Returns the evaluated run's directory."""
    root = tmp_path / "runs"
    write_run(root, "20261205-000000-plain", name="plain", seed=1)
    evaluated = write_run(root, "20261206-000000-evaluated", name="evaluated", seed=2)
    with (evaluated / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "mc_test", "samples": 20, "mc_test_ppl": 101.5, "test_ppl": 140.1,
                            "masks": "window", "word_dropout": False}) + "\n")
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    return evaluated


def test_runs_table_shows_the_test_with_dropout_on_where_a_run_has_one(tmp_path, monkeypatch):
    evaluated = one_run_tested_with_dropout_on(tmp_path, monkeypatch)
    at = app("runs")
    assert_no_exception(at)
    table = at.dataframe[0].value.set_index("name")
    assert list(table.columns[list(table.columns).index("test"):][:3]) == ["test", "MC test", "MC passes"]
    assert table.loc["evaluated", "MC test"] == 101.5 and table.loc["evaluated", "MC passes"] == "N=20, masks per window"
    assert pd.isna(table.loc["plain", "MC test"]) and pd.isna(table.loc["plain", "MC passes"])
    (evaluated / "metrics.jsonl").write_text("")  # no run evaluated so: no such columns
    at = app("runs")
    assert "MC test" not in at.dataframe[0].value.columns


def test_a_row_selection_never_outlives_the_rows_it_chose(store, ids):
    import hashlib

    def select(at, rows):
        listed = list(at.dataframe[0].value["id"])
        key = "runs_table_" + hashlib.blake2b("\n".join(listed).encode(), digest_size=8).hexdigest()
        at.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
        return [listed[i] for i in rows]

    at = app("runs")
    rows = len(at.dataframe[0].value)
    chosen = select(at, [rows - 2, rows - 1])
    at.run()
    show = [b for b in at.button if b.label.startswith("Show the")][0]
    assert show.label == "Show the 2 selected run(s) on the chart pages"
    show.click().run()
    assert at.session_state["picked_runs"] == chosen
    select(at, [rows - 2, rows - 1])
    at.text_input(key="runs_search").set_value("zaremba").run()  # fewer rows: old positions mean nothing
    assert_no_exception(at)
    assert [b for b in at.button if b.label.startswith("Show the")][0].label.startswith("Show the 0 ")


def test_the_runs_search_finds_what_the_table_shows(store, ids):
    at = app("runs")
    at.text_input(key="runs_search").set_value("(reference)").run()
    assert list(at.dataframe[0].value["name"]) == ["reference small"]


def test_run_names_show_as_typed_never_as_markdown(store, ids):
    name = "<b>x</b> *a* _b_ $y$ `c` [d](http://e) # f"
    write_run(store, "20261207-000000-odd-name", name=name, seed=8, state="failed", epochs_done=2)
    (store / "20261207-000000-odd-name" / "status.json").write_text('{"state": "failed", "message": "boom *x*"}')
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value(["20261207-000000-odd-name"]).run()
    from pages.shared.common import escape_markdown

    assert escape_markdown(name) == r"&lt;b&gt;x&lt;/b&gt; \*a\* \_b\_ \$y\$ \`c\` \[d\](http://e) # f"
    assert any(escape_markdown(name) in m.value for m in at.sidebar.markdown)
    at.switch_page("pages/runs.py").run()
    at.selectbox(key="manage_run").set_value("20261207-000000-odd-name").run()
    assert any(f"Delete **{escape_markdown(name)}**" in m.value for m in at.markdown)


def test_what_a_run_s_files_say_shows_as_text_in_errors_and_tooltips(store):
    # status.json's message reaches the Resume button's help through the refusal; a copied-in run's
    # markdown there loaded remote images (a beacon) before
    beacon = "![x](https://evil.example/beacon.png)"
    write_run(store, "20261207-000000-beacon", seed=9, state="finished")
    status = store / "20261207-000000-beacon" / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "message": beacon}))
    at = app("runs")
    at.selectbox(key="manage_run").set_value("20261207-000000-beacon").run()
    help_text = at.button(key="resume_button").help
    assert help_text.startswith("Cannot resume: it already finished") and "evil.example" in help_text
    assert r"!\[x\](https" in help_text and not re.search(r"(?<!\\)[\[\]]", help_text), help_text


def test_broken_runs_are_listed_with_their_reason(store, ids):
    at = app("runs")
    warnings = " ".join(w.body for w in at.warning)
    assert ids["corrupt"] in warnings and "config.json" in warnings
    assert ids["half"] in warnings
    table = at.dataframe[0].value
    assert set(table["id"]) >= set(ids.values())
    assert "reference small" in set(table["name"])



def test_the_code_fingerprint_changes_with_any_python_file_the_app_runs(tmp_path):
    from pages.shared.code_version import fingerprint

    for name in ("app.py", "rnnreg/runs/summary.py", "pages/runs.py", "runs/x/notes.py", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    before = fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("not code")
    (tmp_path / "runs/x/notes.py").write_text("not the app's")
    assert fingerprint(tmp_path) == before
    os.utime(tmp_path / "rnnreg/runs/summary.py", ns=(1, 1))  # a pull rewrites files
    assert fingerprint(tmp_path) != before


@pytest.mark.real_code_check
def test_the_dashboard_says_to_restart_when_its_code_changed_under_it(store, monkeypatch):
    from pages.shared import code_version

    at = app("runs")
    assert not at.warning or "code changed" not in at.warning[0].body
    assert at.dataframe  # the page ran
    monkeypatch.setattr(code_version, "fingerprint", lambda: "after a git pull")
    at.run()
    assert at.warning[0].body.startswith("The dashboard's code changed on disk since this server started")
    assert not at.dataframe and not at.exception  # no page drawn by old modules and caches: no traceback


def test_the_runs_table_shows_the_final_models_valid_beside_the_best_epochs(store, ids):
    from rnnreg import runs

    run_dir = write_run(store, "20261206-000000-overfits", name="overfits")  # no dropout: valid turns upward
    at = app("runs")
    table = at.dataframe[0].value.set_index("id")
    columns = list(table.columns)
    assert columns[columns.index("best valid"):columns.index("test") + 1] == ["best valid", "final valid", "test"]
    # the figures before the long columns (rates, other settings): in view at 1024 px without a scroll
    assert columns[:6] == ["name", "preset", "placement", "best valid", "final valid", "test"]
    assert json.loads(at.dataframe[0].proto.columns)["name"]["pinned"]  # in view while a narrow window scrolls
    overfit = runs.summarize_run(run_dir)
    assert overfit.last_valid_ppl > overfit.best_valid_ppl + 10  # best and final differ: both shown
    assert table.at[run_dir.name, "final valid"] == overfit.last_valid_ppl
    assert table.at[run_dir.name, "best valid"] == overfit.best_valid_ppl


def test_the_runs_table_says_why_a_run_stopped_early(store, ids):
    half = app("runs").dataframe[0].value.set_index("id").loc[ids["half"]]  # died before writing its config
    assert half["state"] == "interrupted" and half["why it stopped"].startswith("its process ended without a word")
    shutil.rmtree(store / ids["half"])
    assert "why it stopped" not in app("runs").dataframe[0].value.columns  # none stopped early: no such column
    diverged = write_run(store, "20261206-000000-diverged", placement="zaremba", dropout=0.5, name="blew up",
                         epochs_done=2, state="diverged")
    status = json.loads((diverged / "status.json").read_text())
    (diverged / "status.json").write_text(json.dumps({**status, "message": "loss is nan at step 61"}))
    crashed = write_run(store, "20261206-000001-crashed", name="no torch", epochs_done=0, state="running")
    status = json.loads((crashed / "status.json").read_text())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (crashed / "status.json").write_text(json.dumps({**status, "pid": gone.pid, "pid_start": None}))
    (crashed / "train.log").write_text("Traceback (most recent call last):\n  File \"x\", line 1\n"
                                       "ModuleNotFoundError: No module named 'torch'\n")
    at = app("runs")
    table = at.dataframe[0].value.set_index("name")
    columns = list(table.columns)
    assert columns[columns.index("problems") - 1] == "why it stopped"  # after the figures: it is long
    assert table.at["blew up", "why it stopped"] == "loss is nan at step 61"
    assert table.at["no torch", "state"] == "interrupted"
    assert table.at["no torch", "why it stopped"] == "its trainer died: ModuleNotFoundError: No module named 'torch'"
    assert table["why it stopped"].notna().sum() == 2  # finished and running runs have nothing to explain
    at.text_input(key="runs_search").set_value("nan at step").run()
    assert list(at.dataframe[0].value["name"]) == ["blew up"]  # the reason is searchable
    status = json.loads((diverged / "status.json").read_text())
    (diverged / "status.json").write_text(json.dumps({**status, "state": "finished"}))
    at.run()  # a finished run's last message is no reason, shown nowhere: no search finds it
    assert at.dataframe[0].value.empty
    (diverged / "status.json").write_text(json.dumps(status))
    at.run()
    at.selectbox(key="manage_run").set_value("20261206-000001-crashed").run()
    assert at.code[0].value.endswith("ModuleNotFoundError: No module named 'torch'")  # its whole log, as text
    (crashed / "train.log").write_bytes(b"".join(b"line %d\n" % i for i in range(1000)))
    at.run()
    assert at.code[0].value.splitlines() == [f"line {i}" for i in range(960, 1000)]  # the last 40 lines

def test_broken_runs_picked_never_raise(store, ids):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["corrupt"], ids["half"]]).run()
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert_no_exception(at)


def _edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _edit_lines(path: Path, change) -> None:
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    for doc in docs:
        change(doc)
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))


# Valid JSON with values no trainer writes: each must show as the run's problem or be ignored, never crash a page.
OUT_OF_RANGE = {
    "epochs_total of 10**20": ("status.json", lambda d: d.update(epochs_total=10**20)),
    "epoch of 10**20": ("status.json", lambda d: d.update(epoch=10**20)),
    "train section null": ("config.json", lambda d: d["config"].update(train=None)),
    "clip as text": ("config.json", lambda d: d["config"]["train"].update(clip="five")),
    "an epoch record of 10**400": ("metrics.jsonl", lambda d: d.update(epoch=10**400) if d["kind"] == "epoch" else 0),
    "probes at epoch 1e999": ("probes.jsonl", lambda d: d.update(epoch=float("inf"))),
    "probes in layer 1e999": ("probes.jsonl", lambda d: d.update(layer=float("inf"))),
    "probes without an epoch": ("probes.jsonl", lambda d: d.pop("epoch", None)),
}


@pytest.mark.parametrize("case", OUT_OF_RANGE)
def test_a_run_with_out_of_range_values_breaks_no_page(store, ids, case):
    name, change = OUT_OF_RANGE[case]
    odd = store / "20261208-000000-odd-values"
    shutil.copytree(store / ids["overfit"], odd)
    path = odd / name
    (_edit_lines if name.endswith(".jsonl") else _edit_json)(path, change)
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([odd.name, ids["zaremba"]]).run()
    for page in [*PAGES, "lecture", "poke"]:
        at.switch_page(f"pages/{page}.py").run()
        assert_no_exception(at)
    for page, key, views in (("gates", "gates_view", GATES_VIEWS), ("gradients", "grad_view", GRADIENT_VIEWS)):
        at.switch_page(f"pages/{page}.py").run()
        for view in views:  # the lazy tabs: each computed only when open
            at.session_state[key] = view
            at.run()
            assert_no_exception(at)
    if case == "clip as text":  # a config the trainer would refuse is the run's problem, on the Runs page too
        at.switch_page("pages/runs.py").run()
        assert "config.json: not a valid run config (--clip (train.clip)" in " ".join(w.body for w in at.warning)


GATES_VIEWS = ("Histograms at an epoch", "Saturation over epochs", "One gate over epochs")
GRADIENT_VIEWS = ("Per layer", "Steps clipped per epoch", "Gradient through time")


def test_a_run_copied_beside_its_shipped_original_breaks_no_page(store):
    shipped = "20261101-000000-ref-small"
    shutil.copytree(store / "reference" / shipped, store / shipped)  # one id, two directories
    at = app("runs")
    table = at.dataframe[0].value.set_index("id")
    assert table.at[f"reference/{shipped}", "state"].startswith("corrupt")
    assert "the same run id as" in " ".join(w.body for w in at.warning)
    at.sidebar.multiselect(key="picked_runs").set_value([shipped, f"reference/{shipped}"]).run()
    for page in [*PAGES, "lecture", "poke"]:
        at.switch_page(f"pages/{page}.py").run()
        assert_no_exception(at)


def test_picking_runs_keeps_each_runs_colour_on_every_page(store, ids):
    at = app()
    picker = at.sidebar.multiselect(key="picked_runs")
    picker.set_value([ids["overfit"], ids["zaremba"]]).run()
    at.switch_page("pages/perplexity.py").run()
    curves = figures(at)[0]
    names = {t["name"] for t in curves["data"]}
    assert names == {"no dropout · train", "no dropout · valid", "zaremba 0.5 · train", "zaremba 0.5 · valid"}
    colour = {t["name"]: t["line"]["color"] for t in curves["data"]}
    at.switch_page("pages/gradients.py").run()
    grad = {t["name"]: t["line"]["color"] for t in figures(at)[0]["data"]}
    assert grad["no dropout"] == colour["no dropout · valid"]
    assert grad["zaremba 0.5"] == colour["zaremba 0.5 · valid"]
    # unpicking one run does not recolour the other
    at.sidebar.multiselect(key="picked_runs").set_value([ids["zaremba"]]).run()
    runs_traces = [t for t in figures(at)[0]["data"] if not t["name"].startswith("clip")]
    assert {t["line"]["color"] for t in runs_traces} == {colour["zaremba 0.5 · valid"]}


def test_perplexity_follows_a_picked_run_while_it_trains(store, ids):
    at = app("perplexity")
    at.sidebar.multiselect(key="picked_runs").set_value([ids["zaremba"]]).run()
    assert not [c for c in at.caption if "is training" in c.value]  # finished: drawn once
    at.sidebar.multiselect(key="picked_runs").set_value([ids["zaremba"], ids["running"]]).run()
    assert_no_exception(at)
    assert any(c.value == "A picked run is training: these charts redraw every 3 s." for c in at.caption)
    with (store / ids["running"] / "metrics.jsonl").open("a") as f:  # its next epoch ends
        f.write(json.dumps({"kind": "epoch", "epoch": 4, "train_ppl": 150.0, "valid_ppl": 190.0, "lr": 1.0,
                            "seconds": 40.0, "words": 240_000, "time": 160.0}) + "\n")
    at.run()  # as a fragment's tick draws it (AppTest does not tick): the new epoch is on the chart
    valid = next(t for t in figures(at)[0]["data"] if t["name"] == "in progress · valid")
    assert values(valid["x"])[-1] == 4 and values(valid["y"])[-1] == 190.0


def test_perplexity_axes_log_toggle_and_paper_lines(store):
    at = app("perplexity")
    at.segmented_control(key="ppl_x").set_value("words").run()
    fig = figures(at)[0]
    assert fig["layout"]["xaxis"]["title"]["text"] == "words seen"
    assert fig["layout"]["yaxis"]["type"] == "log"
    at.toggle(key="ppl_log").set_value(False).run()
    assert figures(at)[0]["layout"]["yaxis"].get("type") != "log"
    # a run of the paper's small preset gets the Table 1 lines (120.7 valid, 114.5 test)
    write_run(store, "20261203-000000-small", preset="small", epochs_total=2, name="small run", seed=5)
    at.run()  # the new run shows up in the picker
    at.sidebar.multiselect(key="picked_runs").set_value(["20261203-000000-small"]).run()
    paper = {t["name"] for t in figures(at)[0]["data"] if t["name"].startswith("paper")}
    assert paper == {"paper small valid 120.7", "paper small test 114.5"}
    # whose models the lines are: a medium run without dropout is not the paper's medium
    help_text = at.toggle(key="ppl_paper").help
    assert "small without dropout, medium with zaremba dropout 0.5, large with zaremba dropout 0.65" in help_text


def test_running_run_shows_partial_curves(store, ids):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["running"]]).run()
    at.switch_page("pages/perplexity.py").run()
    valid = [t for t in figures(at)[0]["data"] if t["name"].endswith("valid")][0]
    assert values(valid["x"]) == [1, 2, 3]  # 3 of 8 epochs so far
    at.switch_page("pages/launch.py").run()
    assert_no_exception(at)
    assert any("in progress" in m.value for m in at.markdown)  # listed as running, with a Cancel button
    assert at.button(key=f"cancel_{STANDARD_IDS['running']}")


def test_runs_table_says_how_long_a_running_run_still_needs(store, ids):
    at = app("runs")
    assert_no_exception(at)
    table = at.dataframe[0].value.set_index("id")
    columns = list(table.columns)
    assert columns[columns.index("epochs") + 1] == "time left (min)"
    records = [json.loads(line) for line in (store / ids["running"] / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in records if r["kind"] == "epoch"]  # 3 of 8 epochs: 5 to go at their pace
    assert table.at[ids["running"], "time left (min)"] == pytest.approx(sum(seconds) / 3 * 5 / 60)
    assert table["time left (min)"].dtype.kind == "f"  # a number, so the column sorts by duration
    assert table["time left (min)"].isna().sum() == len(table) - 1  # only a running run has one
    assert any(c.value.startswith("1 run(s) queued or training: the bars above follow them live; this table is as of ")
               for c in at.caption)
    assert at.button(key="runs_refresh")  # its rerun reads the store again
    # above the table, a bar per run in training, redrawn every few seconds (a fragment; AppTest does not tick it)
    [bar] = at.get("progress")
    assert bar.proto.value == 37 and bar.proto.text.startswith(f"**{table.at[ids['running'], 'name']}** · running · "
                                                               "epoch 3 / 8 · valid ")
    shutil.rmtree(store / ids["running"])  # nothing running: no such column, nothing to refresh
    at = app("runs")
    assert "time left (min)" not in at.dataframe[0].value.columns
    assert not [b for b in at.button if b.key == "runs_refresh"] and not at.get("progress")


def test_the_runs_page_says_where_each_queued_run_stands_in_line(tmp_path, monkeypatch):
    from rnnreg import line
    from rnnreg.runs import RunWriter

    root = tmp_path / "runs"
    config = {"preset": "demo", "name": None, "dropout": {"placement": "none", "rates": {}}, "train": {"epochs": 2}}
    waiting = []
    for name in ("first queued", "second queued"):  # waiting for a slot, each by a live trainer (this process)
        writer = RunWriter.create(root, config, name=name, pid=os.getpid())
        line.join(root, writer.dir, 1)
        waiting.append(writer)
    waiting[0].set_status("running")  # it got its slot; the other is next now
    RunWriter.create(root, config, name="third queued", pid=os.getpid())  # by an older rnnreg: in no line
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = app("runs")
    assert_no_exception(at)
    bars = sorted(bar.proto.text for bar in at.get("progress"))
    assert bars[0].startswith("**first queued** · running · ")
    assert bars[1].startswith("**second queued** · queued (1st in line) · ")
    assert bars[2].startswith("**third queued** · queued · ")
    at.switch_page("pages/launch.py").run()  # where runs are started and cancelled: the same place
    assert_no_exception(at)
    assert any(m.value.startswith("queued (1st in line)") for m in at.markdown)


def test_a_run_folder_named_as_no_run_id_is_said_not_listed_not_silently_left_out(tmp_path, monkeypatch, capsys):
    from fixtures_runs import write_run
    from rnnreg.cli import main

    root = tmp_path / "runs"
    write_run(root, "20261001-000000-fine", name="fine")
    copied = root / "run (copy)"  # a file manager's copy: a space and brackets, which no run id has
    shutil.copytree(root / "20261001-000000-fine", copied)
    (root / "notes").mkdir()  # a folder of the user's own, no run: not named
    shutil.copytree(root / "20261001-000000-fine", root / "reference" / "fine copy")  # in a group too
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = app("runs")
    assert_no_exception(at)
    assert any("Not listed, their folder names are no run id" in w.value and "`run (copy)`" in w.value
               for w in at.warning), [w.value for w in at.warning]
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("rename them to list them): 'reference/fine copy', 'run (copy)'")
    assert "notes" not in out


def test_perplexity_says_when_a_picked_runs_curve_lies_under_anothers(store, ids):
    at = app()
    at.switch_page("pages/perplexity.py").run()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], "20261101-000000-ref-small"]).run()
    assert_no_exception(at)
    said = [c.value for c in at.caption if c.value.startswith("Drawn on top of each other")]
    assert said == ["Drawn on top of each other, their curves being identical to the last digit: **no dropout** and "
                    "**reference small** (the same settings and seed train alike)."], said
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    assert not [c for c in at.caption if c.value.startswith("Drawn on top of each other")]




def test_a_trainer_killed_outright_shows_as_interrupted_on_the_next_rerun(store):
    # SIGKILL or the OOM killer: status.json still says running and no file changes; only the pid tells
    from rnnreg.runs import process_start_time

    run_dir = write_run(store, "20261206-000000-killed", placement="zaremba", dropout=0.5, name="killed",
                        epochs_done=2, state="running")
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        status = json.loads((run_dir / "status.json").read_text())
        status.update(pid=trainer.pid, pid_start=process_start_time(trainer.pid))
        (run_dir / "status.json").write_text(json.dumps(status))
        at = app("runs")
        states = at.dataframe[0].value.set_index("name")["state"]
        assert states["killed"] == "running"
    finally:
        trainer.kill()
        trainer.wait()
    at.run()
    assert at.dataframe[0].value.set_index("name").at["killed", "state"] == "interrupted"
    at.switch_page("pages/launch.py").run()  # no Cancel button for a run that is over
    assert not [b for b in at.button if b.key == "cancel_20261206-000000-killed"]
    fresh = AppTest.from_file(APP, default_timeout=60).run()  # a new session
    assert_no_exception(fresh)
    assert app("runs").dataframe[0].value.set_index("name").at["killed", "state"] == "interrupted"


def test_gates_page_epoch_and_layer(store):
    at = app("gates")
    at.select_slider(key="gates_epoch").set_value(0).run()
    assert_no_exception(at)
    assert "epoch 0" in figures(at)[0]["layout"]["title"]["text"]
    at.selectbox(key="gates_layer").set_value(1).run()  # the records' layer 1: the second, "layer 2" to a user
    assert "layer 2" in figures(at)[0]["layout"]["title"]["text"]


def test_gates_page_names_a_trained_run_whose_probes_file_is_gone_or_damaged(store, ids):
    """Before, it said the trainer writes them after every epoch, as of a run not yet trained."""
    (store / ids["overfit"] / "probes.jsonl").write_bytes(b"\x00garbage\n")
    at = app()
    at.switch_page("pages/gates.py").run()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    assert_no_exception(at)
    [warning] = at.warning
    assert warning.value.startswith("No readable gate statistics in the probes.jsonl of **no dropout** (")
    assert "missing or damaged" in warning.value and figures(at)  # the other run's gates are still drawn
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"]]).run()
    assert at.warning and not figures(at)
    config_path = store / ids["overfit"] / "config.json"  # trained with the probes off: no damage to report
    doc = json.loads(config_path.read_text())
    doc["config"]["train"]["gate_probe"] = False
    config_path.write_text(json.dumps(doc))
    (store / ids["overfit"] / "probes.jsonl").unlink()
    at = app()
    at.switch_page("pages/gates.py").run()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    assert_no_exception(at)
    assert not at.warning and figures(at)
    assert any(c.value == "Trained without gate probes (`gate_probe` off): **no dropout**." for c in at.caption)


@pytest.mark.parametrize(("page", "tab_key", "views"), [
    ("gates", "gates_view", {"Histograms at an epoch": "Gate activations", "Saturation over epochs": "Saturation",
                             "One gate over epochs": "forget gate f over epochs"}),
    ("gradients", "grad_view", {"Per layer": "per layer", "Steps clipped per epoch": "clipped",
                                "Gradient through time": "Gradient through time"}),
])
def test_lazy_tabs_draw_only_the_open_view(store, ids, page, tab_key, views):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    at.switch_page(f"pages/{page}.py").run()
    always = 1 if page == "gradients" else 0  # the global norm stays above the tabs
    for tab, title in views.items():
        at.session_state[tab_key] = tab
        at.run()
        assert_no_exception(at)
        titles = [f["layout"]["title"]["text"] for f in figures(at)]
        assert len(titles) == always + 1, (tab, titles)  # the closed tabs' charts are not even built
        assert title.lower() in titles[-1].lower(), (tab, titles)


def test_compare_lists_config_differences(store, ids):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    at.switch_page("pages/compare.py").run()
    diff = at.dataframe[0].value
    assert "dropout.placement" in set(diff["setting"])
    assert "train.seed" in set(diff["setting"])
    [run_a, run_b] = at.selectbox
    run_b.set_value(ids["running"]).run()  # a choice on the page holds ...
    assert at.selectbox[1].value == ids["running"]
    at.sidebar.multiselect(key="picked_runs").set_value([ids["zaremba"], ids["overfit"]]).run()
    assert [box.value for box in at.selectbox] == [ids["zaremba"], ids["overfit"]]  # ... until a new pick


def test_compare_gives_run_b_its_difference_from_run_a(store, ids):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    at.switch_page("pages/compare.py").run()
    assert_no_exception(at)
    metrics = {(m.label, i // 3): m for i, m in enumerate(at.metric)}  # three per run: A's, then B's
    from rnnreg import runs

    summaries = {s.id: s for s in runs.list_runs(store)}
    a, b = summaries[ids["overfit"]], summaries[ids["zaremba"]]
    assert not metrics[("best valid", 0)].delta  # A is what B is measured against
    assert metrics[("best valid", 1)].value == f"{b.best_valid_ppl:.2f}"  # as the README's tables
    assert metrics[("best valid", 1)].delta == f"{b.best_valid_ppl - a.best_valid_ppl:+.2f}"
    assert metrics[("test", 1)].delta == f"{b.test_ppl - a.test_ppl:+.2f}"
    assert [c.value for c in at.caption if "against run A" in c.value] == [
        "Differences against run A; green where B is better."]  # said once, not in every delta
    # two figures a row in each run's half: three a row cut "114.52" to "11…" at 1024 px
    assert {round(c.weight, 3) for c in at.columns} == {0.5}
    assert metrics[("best valid", 1)].help.endswith(f"after the last epoch: {b.last_valid_ppl:.2f}")
    assert not any(w.body.startswith("One run is a memory-task run") for w in at.warning)
    better = b.test_ppl < a.test_ppl  # lower perplexity: green
    test_b = metrics[("test", 1)].proto
    assert test_b.color == test_b.MetricColor.Value("GREEN" if better else "RED")
    assert "test recall" not in {m.label for m in at.metric}  # language models: no recall to compare
    assert not any(c.value.startswith(("diverged:", "interrupted:")) for c in at.caption)  # both finished
    diverged = write_run(store, "20261206-000000-diverged", placement="zaremba", dropout=0.5, name="blew up",
                         epochs_done=2, state="diverged")
    status = json.loads((diverged / "status.json").read_text())
    (diverged / "status.json").write_text(json.dumps({**status, "message": "loss is nan at step 61"}))
    at.run()  # the store read again: the new run is among the picker's options
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], diverged.name]).run()
    assert at.selectbox[1].value == diverged.name
    said = [c.value for c in at.caption if c.value.startswith(("diverged:", "interrupted:"))]
    assert said == ["diverged: loss is nan at step 61"]  # why B's curve stops at epoch 2; A finished

def test_compare_shows_the_recall_of_memory_task_runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for run_id, recalled in (("20261211-000000-short-gap", 0.95), ("20261211-000001-long-gap", 0.25)):
        run = write_run(root, run_id, preset="memory", epochs_total=2, name=run_id[16:], seed=3)
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for r in records:  # recall per epoch, as the memory task records it
            if r["kind"] == "epoch":
                r["valid_accuracy"] = recalled * r["epoch"] / 2
        records.append({"kind": "test", "test_ppl": 3.1, "test_accuracy": recalled})
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value(["20261211-000000-short-gap", "20261211-000001-long-gap"]).run()
    at.switch_page("pages/compare.py").run()
    assert_no_exception(at)
    recall = [m for m in at.metric if m.label == "test recall"]
    assert [m.value for m in recall] == ["95.0%", "25.0%"]
    assert recall[1].delta == "-70.0 pp"  # percentage points, not 70% fewer
    assert recall[1].proto.color == recall[1].proto.MetricColor.RED  # fewer keys recalled: worse
    [chart] = [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Validation recall")]
    assert [values(trace["y"]) for trace in chart["data"]] == [[0.475, 0.95], [0.125, 0.25]]  # what they are judged by
    assert not at.warning
    lm = write_run(root, "20261211-000002-lm", name="language model")
    at.run()
    at.sidebar.multiselect(key="picked_runs").set_value(["20261211-000000-short-gap", lm.name]).run()
    assert at.warning[0].body.startswith("One run is a memory-task run, the other a language model")
    assert not [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Validation recall")]


def test_the_perplexity_page_says_when_memory_task_runs_share_it_with_language_models(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    memory = [write_run(root, f"20261211-00000{i}-gap", preset="memory", epochs_total=2, name=f"gap {i}").name
              for i in range(2)]
    lm = write_run(root, "20261211-000009-lm", name="language model").name
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value(memory).run()
    at.switch_page("pages/perplexity.py").run()
    assert_no_exception(at)
    assert not at.warning  # memory runs alone compare with each other
    at.sidebar.multiselect(key="picked_runs").set_value([*memory, lm]).run()
    assert [w.body for w in at.warning] == ["2 of the 3 runs are memory-task runs, the others language models: "
                                            "their perplexities are over different vocabularies and do not compare."]


def test_compare_shows_the_test_with_dropout_on_where_either_run_has_one(tmp_path, monkeypatch):
    one_run_tested_with_dropout_on(tmp_path, monkeypatch)
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value(["20261206-000000-evaluated", "20261205-000000-plain"]).run()
    at.switch_page("pages/compare.py").run()
    assert_no_exception(at)
    mc = [m for m in at.metric if m.label == "MC test"]
    assert [m.value for m in mc] == ["101.50", "—"] and not mc[1].delta  # nothing to take a difference of
    assert mc[0].help == "N=20, masks per window" and mc[1].help == "not evaluated with dropout on"


def test_export_tables_and_csv(store, ids):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["overfit"], ids["zaremba"]]).run()
    at.switch_page("pages/export.py").run()
    code = [c.value for c in at.code]
    assert any("| no dropout | demo | none |" in c for c in code)
    assert any(r"\begin{tabular}" in c for c in code)
    assert len(at.get("download_button")) == 5
    # the commands that train the picked runs again: the trained runs' tiny settings all come back
    [commands] = [c for c in code if c.startswith("#!/bin/sh")]
    assert [c.proto.wrap_lines for c in at.code if c.value == commands] == [True]  # long commands read whole
    assert f"# no dropout ({ids['overfit']})" in commands and f"# zaremba 0.5 ({ids['zaremba']})" in commands
    assert ("python -m rnnreg train --preset demo --placement zaremba --epochs 2 --max-train-tokens "
            "4000 --max-eval-tokens 2000 --log-every 2 --device cpu --seed 2") in commands
    assert "no option sets" not in commands
    at.sidebar.multiselect(key="picked_runs").set_value([ids["corrupt"]]).run()
    assert_no_exception(at)
    assert any(f"# {ids['corrupt']}: its config.json holds no readable run config" in c.value for c in at.code)


def select_rows(at: AppTest, names: list[str]) -> None:
    """Tick the Runs table's rows of these run names (as a click on their checkboxes does)."""
    import hashlib

    table = at.dataframe[0].value
    listing = hashlib.blake2b("\n".join(table["id"]).encode(), digest_size=8).hexdigest()
    rows = [i for i, name in enumerate(table["name"]) if name in names]
    at.session_state[f"runs_table_{listing}"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def test_delete_the_selected_runs_at_once_but_never_a_shipped_or_running_one(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for i, name in enumerate(["live 1", "live 2", "keep me"]):
        write_run(root, f"2026120{i + 1}-000000-run{i}", name=name, seed=i)
    write_run(root, "20261204-000000-busy", name="busy", seed=5, epochs_done=2, state="running")
    write_run(root / "reference", "20261101-000000-shipped", name="shipped", seed=7)
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = app("runs")
    select_rows(at, ["shipped"])
    [popover] = [p for p in at.get("popover") if p.proto.popover.label.startswith("Delete the")]
    assert popover.proto.popover.label == "Delete the 0 selected…" and popover.proto.popover.disabled
    select_rows(at, ["live 1", "live 2", "busy", "shipped"])
    [popover] = [p for p in at.get("popover") if p.proto.popover.label.startswith("Delete the")]
    assert popover.proto.popover.label == "Delete the 2 selected…" and not popover.proto.popover.disabled
    assert any("2 other selected run(s) stay" in c.value for c in popover.caption)
    at.button(key="delete_selected_yes").click().run()
    assert_no_exception(at)
    assert sorted(at.dataframe[0].value["name"]) == ["busy", "keep me", "shipped"]
    assert any(t.value == "Deleted 2 run(s)" for t in at.toast)


def test_rename_and_delete_with_confirmation_reference_read_only(store, ids):
    at = app("runs")
    assert not any("ref-small" in o for o in at.selectbox(key="manage_run").options)  # reference: read-only
    target = ids["zaremba"]
    at.selectbox(key="manage_run").set_value(target).run()
    assert at.text_input(key=f"rename_{target}").value == "zaremba 0.5"  # the name itself, not a label
    at.text_input(key=f"rename_{target}").set_value("renamed run").run()
    at.button(key="rename_button").click().run()
    assert_no_exception(at)
    assert json.loads((store / target / "config.json").read_text())["config"]["name"] == "renamed run"
    [confirm] = [p for p in at.get("popover") if p.proto.popover.label == "Delete…"]  # Yes waits inside it
    assert any(b.key == "delete_yes" for b in confirm.button)
    assert (store / target).exists()
    at.button(key="delete_yes").click().run()
    assert_no_exception(at)
    assert not (store / target).exists()
    assert any(t.value == "Deleted renamed run" for t in at.toast)
    # closed after the click; were it left open, it offers no "Yes" for the next run until opened again
    assert at.session_state["delete_popover"] is False
    [confirm] = [p for p in at.get("popover") if p.proto.popover.label == "Delete…"]
    assert not [b for b in confirm.button if b.key == "delete_yes"]
    assert [c.value for c in confirm.caption] == ["Deleted renamed run. Open this again to delete another run."]
    del at.session_state["deleted_run"]  # what opening it again does (delete_popover_toggled)
    at.selectbox(key="manage_run").set_value(ids["running"]).run()
    at.button(key="delete_yes").click().run()  # a run still training is not deleted: the page says why
    assert (store / ids["running"]).exists()
    assert [e.value for e in at.error] and "cancel it first" in at.error[0].value, [e.value for e in at.error]


def interrupted(root: Path, run_id: str) -> Path:
    """A run whose trainer died mid-run: status.json says running, its pid is gone."""
    run_dir = write_run(root, run_id, name="cut short", epochs_done=3, state="running")
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "pid": 2 ** 22 + 12345}))
    return run_dir


def test_resume_is_offered_for_a_run_cut_short_and_refused_with_the_reason_otherwise(tmp_path, monkeypatch):
    from rnnreg import launch
    from rnnreg.runs import RunStoreError

    root = tmp_path / "runs"
    write_run(root, "20261205-000000-done", name="done", seed=1)
    write_half_written_run(root, "20261204-000000-half")  # interrupted, but no config.json to go on with
    cut = interrupted(root, "20261206-000000-cut")
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    calls = []
    monkeypatch.setattr(launch, "resume", lambda root_, run_id, **kw: calls.append((Path(root_), run_id, kw)) or 1)
    at = app("runs")
    picker = at.selectbox(key="manage_run")
    assert "cut short · interrupted (20261206-000000-cut)" in picker.options  # its state in the list
    picker.set_value("20261205-000000-done").run()
    assert at.button(key="resume_button").disabled
    assert at.button(key="resume_button").help == "Cannot resume: it already finished; start a new run to train longer"
    picker.set_value("20261204-000000-half").run()
    assert at.button(key="resume_button").disabled
    assert at.button(key="resume_button").help == "Cannot resume: config.json: missing"
    picker.set_value("20261206-000000-cut").run()
    button = at.button(key="resume_button")
    assert not button.disabled and "from the start" in button.help  # no checkpoint: it starts over
    (cut / "checkpoint.safetensors").write_bytes(b"weights")
    at.run()
    assert "from its last completed epoch (3 / 8)" in at.button(key="resume_button").help
    (cut / "checkpoint.json").write_text(json.dumps({"format": 1, "epoch": 2}))  # killed before epoch 3's
    at.run()
    assert "from its checkpoint after epoch 2 / 8" in at.button(key="resume_button").help
    (cut / "checkpoint.json").write_text(json.dumps({"format": 2, "epoch": 3, "within_epoch": {"windows": 1200}}))
    at.run()  # a checkpoint written within an epoch (--checkpoint-minutes, or a cancel)
    offer = at.button(key="resume_button").help
    assert "from its checkpoint partway into epoch 4, after 1200 of its minibatches" in offer
    for junk in ("{not json", json.dumps({"format": 2, "epoch": "3", "within_epoch": [1200]})):
        (cut / "checkpoint.json").write_text(junk)  # its readable copy unreadable: the plainer offer
        at.run()
        assert_no_exception(at)
        assert "from its last completed epoch (3 / 8)" in at.button(key="resume_button").help
    at.button(key="resume_button").click().run()
    assert_no_exception(at)
    assert calls == [(root, "20261206-000000-cut", {"wait": 60})]
    assert any("Resuming cut short" in t.value for t in at.toast)

    def refused(*args, **kwargs):
        raise RunStoreError("cannot resume 20261206-000000-cut: invalid config.json: hidden: must be >= 1")

    monkeypatch.setattr(launch, "resume", refused)
    at.button(key="resume_button").click().run()
    said = "cannot resume 20261206-000000-cut: invalid config.json: hidden: must be &gt;= 1"  # shown as text
    assert [e.value for e in at.error] == [said]
    # the Launch page's Resume, beside runs of this session, asks the same library check
    at.session_state["launched_runs"] = ["20261206-000000-cut", "20261204-000000-half"]
    at.switch_page("pages/launch.py").run()
    assert not at.button(key="resume_20261206-000000-cut").disabled
    half = at.button(key="resume_20261204-000000-half")
    assert half.disabled and half.help == "Cannot resume: config.json: missing"


# --- with the real trainer ------------------------------------------------------------------


def _start_tiny_run(at: AppTest, name: str, epochs: int, tokens: int) -> str:
    at.number_input(key="epochs_demo").set_value(epochs)
    at.number_input(key="tokens_demo").set_value(tokens)
    at.number_input(key="eval_tokens_demo").set_value(2000)
    at.text_input(key="launch_name").set_value(name)
    at.form_submit_button[0].click().run()
    assert_no_exception(at)
    started = [s.body for s in at.success]
    assert started, [e.body for e in at.error]
    return started[0].split()[-1].rstrip(".")


def _wait_for_state(at: AppTest, store: Path, run_id: str, states: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = json.loads((store / run_id / "status.json").read_text()).get("state", "")
        # run_every fragments do not tick under AppTest: rerun the page instead, after the state is read,
        # so the page drawn is at least as new as the state returned (else a Cancel button drawn while it
        # was running can outlive a 'cancelled' read a moment later: seen once in CI)
        at.run()
        if state in states:
            return state
        time.sleep(0.5)
    return state


@needs_trainer
def test_launch_a_tiny_cpu_run_and_watch_it_finish(store):
    at = app("launch")
    at.number_input(key="launch_weight_decay").set_value(1e-5)
    at.number_input(key="launch_decay_after_demo").set_value(0)
    at.number_input(key="launch_lr_decay_demo").set_value(1.5)
    run_id = _start_tiny_run(at, "tiny from test", epochs=1, tokens=3000)
    train = json.loads((store / run_id / "config.json").read_text())["config"]["train"]
    assert (train["weight_decay"], train["decay_after"], train["lr_decay"], train["lr"], train["clip"]) == (
        1e-5, 0, 1.5, 1.0, 5.0)  # what was set, and the demo preset's own for the rest
    # the same run from a terminal: that command builds this run's config.json, name included
    [command] = [c.value for c in at.code if c.value.startswith("python -m rnnreg train")]
    assert command == ("python -m rnnreg train --preset demo --epochs 1 --max-train-tokens 3000 --max-eval-tokens 2000 "
                       "--lr-decay 1.5 --decay-after 0 --weight-decay 1e-05 --seed 0 '--name=tiny from test'")
    from rnnreg.cli import build_parser
    from rnnreg.config import to_dict
    from rnnreg.cli import config_from_args
    again = to_dict(config_from_args(build_parser().parse_args(shlex.split(command)[3:])))
    assert again == json.loads((store / run_id / "config.json").read_text())["config"]
    at.form_submit_button[0].click().run()  # a double click: still one run
    assert sum(1 for p in store.iterdir() if (p / "config.json").exists()
               and "tiny from test" in (p / "config.json").read_text()) == 1
    assert _wait_for_state(at, store, run_id, {"finished", "failed"}, timeout=90) == "finished"
    assert_no_exception(at)
    assert any("tiny from test" in m.value for m in at.markdown)
    at.run()  # the page as it is now: _wait_for_state saw the status file change after its last rerun
    at.button(key="launch_dismiss").click().run()  # ended runs leave the list, and only the list
    assert not any("tiny from test" in m.value for m in at.markdown)
    assert (store / run_id / "config.json").exists()


def test_a_click_after_a_launch_that_failed_to_spawn_starts_a_new_run(store, monkeypatch):
    import subprocess as sp

    from rnnreg import launch as launch_mod

    attempts = []

    def spawn_fails_once(argv, log_path):  # e.g. no such interpreter, too many processes
        attempts.append(argv)
        if len(attempts) == 1:
            raise OSError(11, "Resource temporarily unavailable")
        return sp.Popen(["true"])

    monkeypatch.setattr(launch_mod, "_spawn", spawn_fails_once)
    at = app("launch")
    at.text_input(key="launch_name").set_value("second try")
    at.form_submit_button[0].click().run()
    assert "Could not start the run" in at.error[0].value and not at.success
    at.form_submit_button[0].click().run()
    assert_no_exception(at)
    [started] = [s.body for s in at.success]
    states = {p.name: json.loads((p / "status.json").read_text())["state"] for p in store.iterdir()
              if (p / "config.json").is_file() and "second try" in (p / "config.json").read_text()}
    assert len(attempts) == 2 and sorted(states.values()) == ["failed", "queued"], states
    assert started == f"Started run {next(r for r, s in states.items() if s == 'queued')}."


def test_launch_of_demo_on_the_whole_splits_trains_on_them_and_shows_its_command(store, monkeypatch):
    import subprocess as sp

    from rnnreg import launch as launch_mod

    monkeypatch.setattr(launch_mod, "_spawn", lambda argv, log_path: sp.Popen(["true"]))  # queued, never trained
    at = app("launch")
    at.number_input(key="tokens_demo").set_value(0)  # "0 = all": it kept demo's 30,000
    at.number_input(key="eval_tokens_demo").set_value(0)
    at.text_input(key="launch_name").set_value("demo on everything")
    at.form_submit_button[0].click().run()
    assert_no_exception(at)
    [run_id] = [s.body.split()[-1].rstrip(".") for s in at.success]
    train = json.loads((store / run_id / "config.json").read_text())["config"]["train"]
    assert (train["max_train_tokens"], train["max_eval_tokens"]) == (None, None)
    [command] = [c.value for c in at.code if c.value.startswith("python -m rnnreg train")]
    assert command == ("python -m rnnreg train --preset demo --max-train-tokens 0 --max-eval-tokens 0 --seed 0 "
                       "'--name=demo on everything'")


def test_launch_of_the_memory_task_sets_its_delay(store, monkeypatch):
    import subprocess as sp

    from rnnreg import launch as launch_mod

    monkeypatch.setattr(launch_mod, "_spawn", lambda argv, log_path: sp.Popen(["true"]))  # queued, never trained
    at = app("launch")
    at.selectbox(key="launch_preset").set_value("memory").run()
    assert "tokens_memory" not in [n.key for n in at.number_input]  # the delay in its place
    at.number_input(key="launch_delay").set_value(5)
    at.form_submit_button[0].click().run()
    assert_no_exception(at)
    [run_id] = [s.body.split()[-1].rstrip(".") for s in at.success]
    config = json.loads((store / run_id / "config.json").read_text())["config"]
    assert config["memory"]["delay"] == 5 and config["train"]["bptt"] == 9  # one window: the whole sequence
    # no name given: named after its settings, as a CLI run without --name is, so its command needs no --name
    assert config["name"] == "memory-none-delay5-s0" and "-memory-none-delay5-s0-" in run_id
    assert [c.value for c in at.code if c.value.startswith("python -m rnnreg train")] == [
        "python -m rnnreg train --preset memory --delay 5 --seed 0"]


def test_launch_picks_the_device_by_itself_unless_told(store):
    at = app("launch")
    assert_no_exception(at)
    device = at.selectbox(key="launch_device")
    assert device.value == "auto"  # the presets' own default: CUDA where there is a GPU, else the CPU
    assert "cpu" in device.options and "cuda" in device.options


def test_launch_says_how_long_the_shipped_runs_of_a_preset_took(tmp_path, monkeypatch):
    shipped = tmp_path / "runs" / "reference"
    write_run(shipped, "20261101-000000-demo-none", preset="demo", epochs_total=10)  # the preset's 10 epochs
    write_run(shipped, "20261101-000001-demo-short", preset="demo", epochs_total=3)  # not its own settings
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(tmp_path / "runs"))
    at = app("launch")
    assert_no_exception(at)
    how_long = [c.value for c in at.caption if c.value.startswith("How long")]
    assert len(how_long) == 1 and "the shipped `demo` runs took" in how_long[0] and "(1 run)" in how_long[0]
    at.selectbox(key="launch_preset").set_value("large").run()  # nothing of it shipped here: nothing said
    assert not [c.value for c in at.caption if c.value.startswith("How long")]


def test_the_preset_help_says_what_the_demo_trains_on(store):
    from rnnreg.config import PRESET_NAMES, PRESETS

    preset = app("launch").selectbox(key="launch_preset")
    assert preset.options == list(PRESET_NAMES)
    assert f"first {PRESETS['demo'].train.max_train_tokens:,} training tokens" in preset.help  # it once said 60k


def _cancel(at: AppTest, store: Path, run_id: str) -> str:
    """Click the run's Cancel button on the Launch page; the state it ends in."""
    at.switch_page("pages/launch.py").run()
    at.button(key=f"cancel_{run_id}").click().run()
    return _wait_for_state(at, store, run_id, {"cancelled", "finished", "failed"}, timeout=60)


def _assert_resumed(at: AppTest, store: Path, run_id: str) -> None:
    """The Resume click returned once the trainer had claimed the run; it trains again."""
    assert_no_exception(at)
    status = json.loads((store / run_id / "status.json").read_text())
    assert status["state"] in ("queued", "running"), status
    assert _wait_for_state(at, store, run_id, {"running"}, timeout=60) == "running"
    assert json.loads((store / run_id / "status.json").read_text()).get("resumed_at")


@needs_trainer
def test_cancel_a_running_run_then_resume_it_from_either_page(store):
    at = app("launch")
    run_id = _start_tiny_run(at, "to be cancelled", epochs=50, tokens=60_000)
    assert _wait_for_state(at, store, run_id, {"running"}, timeout=60) == "running"
    assert _cancel(at, store, run_id) == "cancelled"
    # this session's run stays listed on the Launch page, now with Resume where Cancel was
    assert not [b for b in at.button if b.key == f"cancel_{run_id}"]
    assert at.button(key=f"resume_{run_id}").help.startswith("train it on from its last checkpoint")
    at.button(key=f"resume_{run_id}").click().run()
    _assert_resumed(at, store, run_id)
    assert _cancel(at, store, run_id) == "cancelled"
    at.switch_page("pages/runs.py").run()
    at.selectbox(key="manage_run").set_value(run_id).run()
    at.button(key="resume_button").click().run()
    _assert_resumed(at, store, run_id)
    assert _cancel(at, store, run_id) == "cancelled"  # not left training behind the test


def test_the_url_names_the_picked_runs_so_a_reload_or_bookmark_shows_them_again(store, ids):
    at = app()
    at.sidebar.multiselect(key="picked_runs").set_value([ids["zaremba"], ids["overfit"]]).run()
    assert at.query_params["run"] == [ids["zaremba"], ids["overfit"]]
    reloaded = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)  # a new session, from that URL
    reloaded.query_params["run"] = [ids["overfit"], "20991231-000000-not-a-run", "../../etc"]
    reloaded.run()
    assert reloaded.sidebar.multiselect(key="picked_runs").value == [ids["overfit"]]  # only runs of this store
    reloaded.sidebar.multiselect(key="picked_runs").set_value([]).run()
    assert "run" not in reloaded.query_params


def test_the_default_pick_is_your_newest_runs_else_table_1_else_the_shipped_contrast():
    import pandas as pd

    from pages.shared.common import _default_pick

    def row(run, preset, placement, read_only, created, epochs=3, problems="", rates="—", seed=0, variant="", sweep=""):
        return {"run": run, "preset": preset, "placement": placement, "read_only": read_only, "created_at": created,
                "epochs_done": epochs, "problems": problems, "rates": rates, "seed": seed, "variant": variant,
                "sweep": sweep}

    zaremba = {"medium": "input 0.5, output 0.5", "large": "input 0.65, output 0.65"}
    shipped = [row("demo-none", "demo", "none", True, "3"), row("small-none-s1", "small", "none", True, "1", seed=1),
               row("small-none-s0", "small", "none", True, "2"),
               row("medium-zaremba", "medium", "zaremba", True, "1", rates=zaremba["medium"]),
               row("demo-zaremba", "demo", "zaremba", True, "3", rates=zaremba["medium"])]
    # One paper model only: the contrast of no dropout and Zaremba's, the largest model of each.
    assert _default_pick(pd.DataFrame(shipped[:3] + shipped[4:])) == ["small-none-s0", "demo-zaremba"]
    # Table 1 in its order, each model's own configuration and lowest seed; other rates, other
    # settings and sweeps of the same placement are passed over.
    others = [row("large-zaremba-0.5", "large", "zaremba", True, "0", rates=zaremba["medium"]),
              row("large-zaremba-mainlua", "large", "zaremba", True, "0", rates=zaremba["large"], variant="decay after 15"),
              row("large-zaremba-sweep", "large", "zaremba", True, "0", rates=zaremba["large"], sweep="grid")]
    large = row("large-zaremba", "large", "zaremba", True, "5", rates=zaremba["large"])
    assert _default_pick(pd.DataFrame(others + shipped)) == ["small-none-s0", "medium-zaremba"]
    assert _default_pick(pd.DataFrame(others + shipped + [large])) == ["small-none-s0", "medium-zaremba", "large-zaremba"]
    mine = [row("mine-2", "demo", "recurrent", False, "9"), row("mine-1", "demo", "none", False, "8"),
            row("broken", "demo", "none", False, "7", problems="bad json")]
    assert _default_pick(pd.DataFrame(mine + shipped + [large])) == ["mine-2", "mine-1"]
    only_demo = [r for r in shipped if r["preset"] == "demo"]
    assert _default_pick(pd.DataFrame(only_demo)) == ["demo-none", "demo-zaremba"]
