"""The Gates and Gradients pages with many runs, runs of different lengths, and zoneout's zero norm.

Figure-level tests build the frames by hand; the page tests write synthetic run directories
(tests/fixtures_runs.py) and drive the dashboard through Streamlit's AppTest.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fixtures_runs import write_run
from rnnreg import plots
from rnnreg.plots.gates import MAX_HISTOGRAM_RUNS, missing_epoch_note
from rnnreg.plots.gradients import missing_probes_note, zero_norms_note
from rnnreg.plots.layout import wrap_label

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def gates_frame(runs: dict[str, int], label_of=str.upper) -> pd.DataFrame:
    """Gate histograms of two layers for each run, epochs 0 .. runs[run]."""
    return pd.DataFrame([
        {"run": run, "label": label_of(run), "epoch": epoch, "layer": layer, "gate": gate,
         "bin_edges": [0.0, 0.25, 0.5, 0.75, 1.0], "counts": [1, 2, 3, 4 + epoch], "saturation": 0.1 * epoch}
        for run, last in runs.items() for epoch in range(last + 1) for layer in (0, 1) for gate in plots.GATES
    ])


def gtt_frame(zero_at_k0: bool = False) -> pd.DataFrame:
    rows = []
    for run, label in (("z", "zoneout run"), ("a", "A")):
        for layer in (0, 1):
            for wrt in ("c", "h"):
                for k in range(4):
                    norm = 0.0 if zero_at_k0 and run == "z" and wrt == "c" and k == 0 else 0.5 ** k
                    rows.append({"run": run, "label": label, "epoch": 2, "layer": layer, "wrt": wrt, "k": k,
                                 "norm": norm})
    return pd.DataFrame(rows)


def x_domains(fig) -> list[list[float]]:
    return [list(axis.domain) for axis in fig.select_xaxes()]


# --- figures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, MAX_HISTOGRAM_RUNS, 9, 27, 56])
def test_gate_histogram_grid_fits_any_number_of_runs(n):
    # 27 columns with a fixed gap of 0.04 each gave a negative panel width: Plotly's ValueError
    frame = gates_frame({f"r{i:02d}": 1 for i in range(n)})
    fig = plots.gate_histogram_figure(frame, {}, layer=0, epoch=1)  # validated (conftest): no negative domain
    columns = sorted({tuple(d) for d in x_domains(fig)})
    assert len(columns) == n
    assert all(0 <= x0 < x1 <= 1 for x0, x1 in columns)
    widths = [x1 - x0 for x0, x1 in columns]
    assert min(widths) > 0.5 / n  # the gaps take at most a third of the width, whatever n


def test_a_run_without_the_epoch_is_noted_in_its_own_column_by_its_state():
    frame = gates_frame({"done": 1, "long": 3, "live": 1, "cut": 1})
    states = {"done": "finished", "long": "finished", "live": "running", "cut": "interrupted"}
    fig = plots.gate_histogram_figure(frame, {}, layer=0, epoch=3, states=states)
    columns = {run: fig.layout["xaxis" + (str(c) if c > 1 else "")].domain  # the top row's axes: x, x2, ...
               for c, run in enumerate(["done", "long", "live", "cut"], start=1)}
    notes = {a.text.replace("<br>", " "): a for a in fig.layout.annotations if a.xref == "paper" and "epoch" in a.text}
    assert set(notes) == {"ended at epoch 1", "no epoch 3 yet", "stopped at epoch 1"}
    for text, run in (("ended at epoch 1", "done"), ("no epoch 3 yet", "live"), ("stopped at epoch 1", "cut")):
        x0, x1 = columns[run]
        assert x0 < notes[text].x < x1 and notes[text].xanchor == "center", (text, run)  # over its own column
    # the only run with epoch 3 is in column 2: its panels label the y axis of each row
    assert fig.layout.yaxis2.showticklabels is True and fig.layout.yaxis.showticklabels is None


@pytest.mark.parametrize(("last", "state", "note"), [
    (13, "finished", "ended at epoch 13"), (13, "failed", "stopped at epoch 13"), (13, "running", "no epoch 55 yet"),
    (13, "queued", "no epoch 55 yet"), (13, None, "no epoch 55"), (60, "finished", "no epoch 55"),
])
def test_missing_epoch_note_says_yet_only_while_training(last, state, note):
    assert missing_epoch_note(55, last, state) == note


def test_histogram_rows_share_y_and_long_names_wrap():
    labels = {f"r{i}": f"small-variational-0.{i}-s{i}" for i in range(MAX_HISTOGRAM_RUNS)}
    fig = plots.gate_histogram_figure(gates_frame(dict.fromkeys(labels, 1), label_of=labels.get), {}, layer=0,
                                      epoch=1)
    titles = [a.text for a in fig.layout.annotations if a.yanchor == "bottom" and a.yref == "paper"]
    assert len(titles) == MAX_HISTOGRAM_RUNS and all("<br>" in t for t in titles)  # too long for a column
    assert all(len(line) <= 14 for t in titles for line in t.split("<br>"))
    assert fig.layout.yaxis2.matches == "y" and fig.layout.yaxis2.showticklabels is False  # one scale a row
    assert fig.layout.yaxis.range[1] > 1.2 * max(max(t.y) for t in fig.data if t.yaxis == "y")  # room for the note
    notes = [a.text for a in fig.layout.annotations if a.yref.endswith("domain")]
    assert set(notes) == {"10%"} and "saturated" in fig.layout.title.subtitle.text  # too narrow for "saturated 10%"
    wide = plots.gate_histogram_figure(gates_frame({"a": 1, "b": 1}), {}, layer=0, epoch=1)
    assert "saturated 10%" in [a.text for a in wide.layout.annotations] and not wide.layout.title.subtitle.text


def test_wrap_label():
    assert wrap_label("small-zaremba-0.5-s0", 30) == "small-zaremba-0.5-s0"
    assert wrap_label("small-zaremba-0.5-s0", 10) == "small-<br>zaremba-<br>0.5-s0"
    assert wrap_label("memory-recall-recurrent-cell-delay20", 10, max_lines=2) == "memory-<br>recall-…"
    assert wrap_label("abcdefghijkl", 5) == "abcde<br>fghij<br>kl"


def test_gradient_through_time_leaves_a_zero_norm_out_of_the_log_axis():
    fig = plots.grad_through_time_figure(gtt_frame(zero_at_k0=True), {}, epoch=2)
    assert fig.layout.yaxis.type == "log"
    zoned = [t for t in fig.data if (t.name, t.meta) == ("zoneout run", "layer 1 c")][0]
    assert math.isnan(zoned.y[0]) and list(zoned.y[1:]) == [0.5, 0.25, 0.125]  # a gap, not a plunge to 0
    assert min(fig.layout.yaxis.tickvals) > 0
    assert [t.meta for t in fig.data][:4] == ["layer 1 c", "layer 1 h", "layer 2 c", "layer 2 h"]


def test_gradient_through_time_has_a_legend_entry_per_run_and_a_key_to_its_dashes():
    # 9 runs x 2 layers x (c, h) made 36 legend entries; a run's colour and a state's dash say it all
    gtt = pd.concat([gtt_frame().assign(run=f"r{i}", label=f"run {i}") for i in range(9)])
    fig = plots.grad_through_time_figure(gtt, {}, epoch=2)
    assert len(fig.data) == 36
    assert [t.name for t in fig.data if t.showlegend is not False] == [f"run {i}" for i in range(9)]
    assert all(t.legendgroup == t.name.replace("run ", "r") for t in fig.data)  # one click hides a run's lines
    dashes = {t.meta: t.line.dash for t in fig.data}
    assert len(set(dashes.values())) == 4
    assert fig.layout.title.subtitle.text == ("solid: layer 1 c · dashed: layer 1 h · dotted: layer 2 c · "
                                              "dash-dot: layer 2 h")
    assert [dashes[s] for s in ("layer 1 c", "layer 1 h", "layer 2 c", "layer 2 h")] == ["solid", "dash", "dot",
                                                                                       "dashdot"]
    assert "run 3 · layer 2 h" in [t for t in fig.data if t.name == "run 3"][3].hovertemplate


def test_zero_norm_note_names_the_probe_and_explains_zoneout():
    note = zero_norms_note(gtt_frame(zero_at_k0=True), 2, {"z": "zoneout", "a": "none"})
    assert "zoneout run (layer 1 c at k = 0, layer 2 c at k = 0)" in note
    assert "zoneout: at k = 0 the loss does not depend on the zoned cell" in note
    assert "A (" not in note
    other = zero_norms_note(gtt_frame(zero_at_k0=True), 2, {"z": "variational"})
    assert "zoneout run" in other and "does not depend" not in other  # only zoneout's reason is known
    assert zero_norms_note(gtt_frame(), 2, {"z": "zoneout"}) is None


def test_missing_probes_note_names_each_run_and_why():
    gtt = pd.concat([gtt_frame(), gtt_frame().assign(run="b", label="B", epoch=1)])
    note = missing_probes_note(gtt, {"z": "zoneout run", "b": "B", "old": "Old run"}, 2)
    assert note == "No probe at epoch 2: B (last probe at epoch 1), Old run (no probes)."
    assert missing_probes_note(gtt, {"z": "zoneout run", "a": "A"}, 2) is None


def test_layers_are_counted_from_one_in_every_label():
    frame = gates_frame({"a": 2})
    assert "layer 1" in plots.gate_histogram_figure(frame, {}, layer=0, epoch=1).layout.title.text
    assert "layer 2" in plots.saturation_figure(frame, {}, layer=1).layout.title.text
    assert "layer 1" in plots.gate_heatmap_figure(frame, run="a", layer=0, gate="f").layout.title.text
    layers = pd.DataFrame([{"run": "a", "label": "A", "step": s, "layer": n, "norm": 1.0 + s}
                           for s in range(3) for n in ("embedding", "lstm.0", "lstm.1", "decoder")])
    titles = [a.text for a in plots.layer_grad_figure(layers, {}).layout.annotations]
    assert titles == ["embedding", "LSTM layer 1", "LSTM layer 2", "decoder"]


# --- the pages -------------------------------------------------------------------------------


def app(root: Path, monkeypatch, pick: list[str], page: str) -> AppTest:
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.multiselect(key="picked_runs").set_value(pick).run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_gates_page_with_many_runs_shows_the_first_few_and_says_so(tmp_path, monkeypatch):
    ids = [write_run(tmp_path, f"20261203-{i:06d}-many", name=f"many {i}", seed=i, epochs_total=2,
                     steps_per_epoch=2).name for i in range(28)]
    at = app(tmp_path, monkeypatch, ids, "gates")
    assert f"Showing the first {MAX_HISTOGRAM_RUNS} of the 28 picked runs" in at.info[0].value
    [grid] = figures(at)
    titles = [a["text"] for a in grid["layout"]["annotations"] if a.get("yanchor") == "bottom"]
    assert titles == [f"many {i}" for i in range(MAX_HISTOGRAM_RUNS)]  # the first ones, in pick order
    assert at.selectbox(key="gates_layer").options == ["layer 1", "layer 2"]
    at.session_state["gates_view"] = "Saturation over epochs"  # the other views keep every run
    at.run()
    assert not at.exception and len({t["name"] for t in figures(at)[0]["data"]}) == 28


def test_past_the_palette_the_sidebar_says_colours_repeat(tmp_path, monkeypatch):
    ids = [write_run(tmp_path, f"20261203-{i:06d}-many", name=f"many {i}", seed=i, epochs_total=2,
                     steps_per_epoch=2).name for i in range(len(plots.PALETTE) + 1)]
    at = app(tmp_path, monkeypatch, ids[:-1], "perplexity")
    assert not [c for c in at.sidebar.caption if "colours repeat" in c.value]  # 16 runs: 16 colours
    at.sidebar.multiselect(key="picked_runs").set_value(ids).run()
    assert [c.value for c in at.sidebar.caption if "colours repeat" in c.value] == [
        "More than 16 runs: colours repeat. The perplexity charts give runs that share a colour other marker "
        "shapes; hovering names every line."]
    [curves] = [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Perplexity")]
    looks = {(t["line"]["color"], t["line"]["dash"], t["marker"]["symbol"]) for t in curves["data"]
             if t["name"].startswith("many")}
    assert len(looks) == 2 * len(ids)
    symbol = {t["name"].split(" · ")[0]: t["marker"]["symbol"] for t in curves["data"] if t["name"].startswith("many")}
    glyph = {m.value.split("</span> ")[1]: m.value.split(">")[1][0] for m in at.sidebar.markdown
             if "</span> many" in m.value}
    assert sorted(glyph.values()) == ["■"] + ["●"] * 16  # one run shares a colour ...
    assert glyph == {run: plots.GLYPHS[shape] for run, shape in symbol.items()}  # ... the list shows its markers


def test_gates_page_notes_a_shorter_run_in_its_own_column(tmp_path, monkeypatch):
    long = write_run(tmp_path, "20261203-000000-long", name="long", epochs_total=6).name
    short = write_run(tmp_path, "20261203-000001-short", name="short", epochs_total=2).name
    live = write_run(tmp_path, "20261203-000002-live", name="live", epochs_total=6, epochs_done=3,
                     state="running").name
    at = app(tmp_path, monkeypatch, [short, long, live], "gates")
    assert at.select_slider(key="gates_epoch").value == 2  # the last epoch all three have
    assert [c.value for c in at.caption if c.value.startswith("Epoch 2 for every run")] == [
        "Epoch 2 for every run; trained further, to the epoch in brackets: long (6), live (3). The slider shows "
        "later epochs."]
    at.select_slider(key="gates_epoch").set_value(3).run()  # short has no epoch 3: not "for every run"
    assert not [c for c in at.caption if c.value.startswith("Epoch 3 for every run")]
    at.select_slider(key="gates_epoch").set_value(6).run()
    texts = {a["text"].replace("<br>", " ") for a in figures(at)[0]["layout"]["annotations"]}
    assert {"ended at epoch 2", "no epoch 6 yet"} <= texts


def test_gradient_through_time_opens_at_the_last_common_epoch_and_names_the_missing(tmp_path, monkeypatch):
    long = write_run(tmp_path, "20261203-000000-long", name="long", epochs_total=6).name
    short = write_run(tmp_path, "20261203-000001-short", name="short", epochs_total=2).name
    old = write_run(tmp_path, "20261203-000002-old", name="old", epochs_total=2, probes=False).name
    at = app(tmp_path, monkeypatch, [long, short, old], "gradients")
    at.session_state["grad_view"] = "Gradient through time"
    at.run()
    assert at.select_slider(key="gtt_epoch").value == 2  # not 6: that would hide "short"
    assert {t["name"].split(" · ")[0] for t in figures(at)[-1]["data"]} == {"long", "short"}
    assert "No probe at epoch 2: old (no probes)." in [c.value for c in at.caption]
    at.select_slider(key="gtt_epoch").set_value(6).run()
    assert "No probe at epoch 6: short (last probe at epoch 2), old (no probes)." in [c.value for c in at.caption]


def test_gradients_page_explains_zoneouts_zero_norm(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path, "20261203-000000-zoneout", name="zoned", placement="zoneout", epochs_total=2)
    probes = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    for record in probes:  # as the real probe records it: k from 0, and the zoned cell's norm 0 there
        if record["kind"] == "grad_through_time":
            record["k"], record["norm"] = [0, *record["k"]], [0.0, *record["norm"]]
    (run_dir / "probes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in probes))
    at = app(tmp_path, monkeypatch, [run_dir.name], "gradients")
    at.session_state["grad_view"] = "Gradient through time"
    at.run()
    [caption] = [c.value for c in at.caption if "log axis" in c.value]
    assert "zoned (layer 1 c at k = 0)" in caption and "does not depend on the zoned cell" in caption
    [trace] = figures(at)[-1]["data"]
    assert (trace["name"], trace["meta"]) == ("zoned", "layer 1 c")  # the run in the legend, the state in hover
    y = np.frombuffer(base64.b64decode(trace["y"]["bdata"]), dtype=trace["y"]["dtype"])
    assert np.isnan(y[0]) and (y[1:] > 0).all()  # k = 0 left out of the log axis: a gap, not a plunge
