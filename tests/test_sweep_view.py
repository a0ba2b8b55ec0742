"""The Sweeps view: figures as pure functions, and the page over a tiny sweep made by the real trainer."""

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from rnnreg import plots
from rnnreg.runs import list_runs
from rnnreg.sweeps import expand, run_local

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_matrix_is_mean_over_seeds_per_placement_and_rate():
    results = pd.DataFrame({"placement": ["zaremba", "zaremba", "none", "zaremba"], "dropout": [0.5, 0.5, 0.0, 0.3],
                            "best_valid_ppl": [100.0, 110.0, 150.0, 120.0]})
    fig = plots.sweep_matrix_figure(results)
    heat = fig.data[0]
    assert list(heat.y) == ["none", "zaremba"] and list(heat.x) == ["0", "0.3", "0.5"]
    assert heat.z[1][2] == 105.0 and heat.z[0][1] is None and heat.z[1][1] == 120.0
    assert "± 7.1" in heat.text[1][2] and "n=2" in heat.text[1][2]
    assert fig.layout.title.text == "Best validation perplexity: placement x rate"  # not cut at 1024 px
    assert fig.layout.title.subtitle.text == "mean ± sd over the seeds of a cell; n: its runs"
    one_each = plots.sweep_matrix_figure(results.drop_duplicates(["placement", "dropout"]))
    assert one_each.layout.title.subtitle.text == "one run a cell (n=1): no seeds to pool"


def test_runs_that_differ_in_more_than_the_seed_never_share_a_cell_or_a_band():
    results = pd.DataFrame({  # an lr axis, and a site axis under the same highest rate
        "placement": ["zaremba"] * 6, "dropout": [0.5] * 6, "best_valid_ppl": [100.0, 102.0, 160.0, 150.0, 120.0, 90.0],
        "variant": ["", "", "lr=2", "lr=2", "", ""],
        "rates": ["input 0.5, output 0.5"] * 4 + ["input 0.5, output 0.2", "input 0.5, output 0.5"],
    })
    heat = plots.sweep_matrix_figure(results.iloc[:4]).data[0]
    assert list(heat.y) == ["zaremba", "zaremba · lr=2"]  # the rate is the column: rows need not repeat it
    assert [row[0] for row in heat.text] == ["101.0 ± 1.4<br>n=2", "155.0 ± 7.1<br>n=2"]
    heat = plots.sweep_matrix_figure(results).data[0]  # two configs at highest rate 0.5: the rates tell them apart
    assert list(heat.y) == ["zaremba input 0.5, output 0.2", "zaremba input 0.5, output 0.5",
                            "zaremba input 0.5, output 0.5 · lr=2"]
    assert [row[0].split("<br>")[1] for row in heat.text] == ["n=1", "n=3", "n=2"]
    memory = pd.DataFrame({"placement": ["zaremba"] * 3, "delay": [10, 10, 20], "rates": ["input 0.1", "input 0.5",
                                                                                          "input 0.1"]})
    assert list(plots.sweep_configs(memory, column="delay")) == ["zaremba input 0.1", "zaremba input 0.5",
                                                                 "zaremba input 0.1"]
    assert list(plots.sweep_configs(memory)) == ["zaremba input 0.1 · T=10", "zaremba input 0.5 · T=10",
                                                 "zaremba input 0.1 · T=20"]


def test_a_log_band_stops_a_decade_under_its_mean_not_at_1e_9():
    epochs = pd.DataFrame({"group": "a", "run": ["r1", "r2", "r3"], "epoch": 1, "valid_ppl": [10.0, 20.0, 300.0]})
    band, mean = plots.sweep_bands_figure(epochs, {"a": "#123456"}, log_y=True).data
    assert min(band.y) == pytest.approx(110.0 / 10) and mean.customdata[0] == 3
    assert plots.sweep_bands_figure(epochs, {}, log_y=False).data[0].y[-1] < 0  # a linear axis keeps it


def test_matrix_counts_finished_runs_only():
    # a run still training (or one that failed) has a best validation perplexity so far: no result yet
    results = pd.DataFrame({"placement": ["zaremba"] * 4, "dropout": [0.5] * 4,
                            "best_valid_ppl": [152.2, 230.4, 400.0, 160.0],
                            "state": ["finished", "running", "diverged", "cancelled"]})
    heat = plots.sweep_matrix_figure(results).data[0]
    assert [list(row) for row in heat.z] == [[152.2]] and heat.text[0][0] == "152.2<br>n=1"
    assert plots.sweep_matrix_figure(results.iloc[1:]).layout.annotations[0].text == "No finished runs in this sweep yet"


def test_bands_are_mean_plus_minus_sd_over_the_runs_of_a_group():
    epochs = pd.DataFrame({"group": ["a", "a", "a", "a"], "run": ["r1", "r1", "r2", "r2"], "epoch": [1, 2, 1, 2],
                           "valid_ppl": [10.0, 8.0, 14.0, 12.0]})
    fig = plots.sweep_bands_figure(epochs, {"a": "#123456"}, log_y=False)
    band, mean = fig.data
    assert list(mean.y) == [12.0, 10.0] and mean.name == "a (n=2)"
    assert fig.layout.title.text.endswith("mean ± sd over seeds")
    sd = pd.Series([10.0, 14.0]).std()
    assert band.y[0] == pytest.approx(12.0 + sd) and band.y[-1] == pytest.approx(12.0 - sd)


def test_bands_list_the_configs_by_the_numbers_in_their_labels():
    groups = ["none · T=10", "none · T=2", "zaremba 0.5 · T=20", "none · T=20", "zaremba 0.5 · T=5"]
    epochs = pd.DataFrame({"group": groups, "run": [f"r{i}" for i in range(5)], "epoch": [1] * 5,
                           "valid_ppl": [10.0] * 5})
    fig = plots.sweep_bands_figure(epochs, {}, log_y=False)
    assert [t.name for t in fig.data if t.showlegend is not False] == [
        "none · T=2 (n=1)", "none · T=10 (n=1)", "none · T=20 (n=1)", "zaremba 0.5 · T=5 (n=1)", "zaremba 0.5 · T=20 (n=1)"]
    assert fig.layout.title.text.endswith("by config (one seed each)")  # no band: no "± sd" promised


def test_configs_past_the_palettes_colours_still_look_different():
    # the memory sweep has 20 configs, the palette 16 colours: the 17th shares the 1st's colour
    groups = [f"config {i}" for i in range(20)]
    colors = plots.assign_colors(groups)
    epochs = pd.DataFrame({"group": groups, "run": groups, "epoch": 1, "valid_ppl": 10.0})
    lines = [t for t in plots.sweep_bands_figure(epochs, colors, log_y=False).data if t.showlegend is not False]
    looks = [(t.line.color, t.line.dash) for t in lines]
    assert len(set(c for c, _ in looks)) == len(plots.PALETTE) and len(set(looks)) == 20
    assert looks[0] == (plots.PALETTE[0], "solid")  # within the palette: solid lines as before


def test_empty_inputs_give_a_readable_empty_figure():
    assert plots.sweep_matrix_figure(pd.DataFrame()).layout.annotations
    assert plots.sweep_bands_figure(pd.DataFrame(), {}).layout.annotations


@pytest.fixture
def sweep_store(tmp_path, tiny_corpus, monkeypatch):
    root = tmp_path / "runs"
    sweep = expand({"name": "tiny", "preset": "small",
                    "base": {"epochs": 2, "device": "cpu", "data": str(tiny_corpus), "batch_size": 4, "bptt": 8},
                    "axes": {"placement": ["none", "zaremba"], "seed": [0, 1]}})
    run_local(sweep, root, max_concurrent=2)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not all(s.state == "finished" for s in list_runs(root)):
        time.sleep(0.5)
    assert [s.state for s in list_runs(root)] == ["finished"] * 4
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    return root


def test_sweeps_page_shows_progress_matrix_and_bands(sweep_store):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception
    assert at.selectbox(key="sweep_name").value == "tiny"
    assert {m.label: m.value for m in at.metric}["finished"] == "4"
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert specs[0]["data"][0]["type"] == "heatmap"
    names = [t.get("name") for t in specs[1]["data"] if t.get("name")]
    assert len(names) == 2 and all("(n=2)" in n for n in names)  # two configs, two seeds each


def test_sweep_form_reports_a_bad_spec_and_launches_a_good_one_once(sweep_store, tiny_corpus):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/sweeps.py").run()
    at.text_area(key="sweep_spec").set_value('{"name": "x", "preset": "small", "axes": {"seed": []}}')
    at.form_submit_button[0].click().run()
    assert not at.exception and "non-empty list" in at.error[0].value
    again = {"name": "tiny", "preset": "small",
             "base": {"epochs": 2, "device": "cpu", "data": str(tiny_corpus), "batch_size": 4, "bptt": 8},
             "axes": {"placement": ["none", "zaremba"], "seed": [0, 1]}}
    at.text_area(key="sweep_spec").set_value(json.dumps(again))
    at.form_submit_button[0].click().run()
    assert "started 0" in at.success[0].value and "already there 4" in at.success[0].value
    assert len(list_runs(sweep_store)) == 4


def test_memory_sweep_matrix_is_recall_by_delay_with_the_best_cells_light():
    results = pd.DataFrame({"placement": ["zaremba", "zaremba", "recurrent-cell", "recurrent-cell"],
                            "delay": [2, 20, 2, 20], "test_accuracy": [1.0, 0.99, 1.0, 0.094]})
    fig = plots.sweep_matrix_figure(results, column="delay", value="test_accuracy")
    heat = fig.data[0]
    assert list(heat.x) == ["2", "20"] and list(heat.y) == ["recurrent-cell", "zaremba"]
    assert heat.z[0][1] == pytest.approx(9.4) and heat.z[1][0] == 100.0  # percent, one cell per delay
    assert "n=1" in heat.text[0][1]  # delays are not pooled as if they were seeds
    assert not heat.reversescale and fig.layout.title.text.startswith("Test recall")
    assert fig.layout.xaxis.title.text.startswith("delay T")
    ppl = plots.sweep_matrix_figure(pd.DataFrame({"placement": ["a"], "dropout": [0.5], "best_valid_ppl": [90.0]}))
    assert ppl.data[0].reversescale  # lower perplexity is better: light as well


def test_recall_bands_are_in_percent_without_a_log_axis():
    epochs = pd.DataFrame({"group": ["a", "a"], "run": ["r1", "r2"], "epoch": [1, 1], "valid_accuracy": [0.5, 0.7]})
    fig = plots.sweep_bands_figure(epochs, {"a": "#123456"}, y="valid_accuracy", log_y=False)
    assert fig.layout.title.text.startswith("Validation recall") and fig.layout.yaxis.tickformat == ".0%"
    assert list(fig.data[1].y) == [pytest.approx(0.6)]


def test_the_shipped_memory_sweep_shows_recall_per_placement_and_delay(tmp_path, monkeypatch):
    import shutil

    shipped = [d for d in (Path(APP).parent / "runs" / "reference").iterdir() if "memory-recall" in d.name]
    if not shipped:
        pytest.skip("the memory sweep is not shipped in this checkout")
    for run in shipped:
        shutil.copytree(run, tmp_path / "reference" / run.name)
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception
    matrix, bands = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [m.label for m in at.metric] == ["finished", "running", "queued", "interrupted", "failed"]  # fit 1024 px
    assert at.metric[-1].help == "failed, diverged or cancelled" and at.metric[0].value == str(len(shipped))
    heat = matrix["data"][0]
    assert matrix["layout"]["title"]["text"].startswith("Test recall")
    assert heat["x"] == ["2", "5", "10", "20"] and "recurrent-cell" in heat["y"]
    assert all("n=1" in cell for row in heat["text"] for cell in row if cell)  # one run per placement and delay
    assert bands["layout"]["title"]["text"].startswith("Validation recall")
    # a panel per delay, a line per placement in each: 20 lines in one chart had a 19-entry legend
    titles = [a["text"] for a in bands["layout"]["annotations"]]
    assert titles == ["T = 2", "T = 5", "T = 10", "T = 20"]
    lines = bands["data"]
    assert len(lines) == len(shipped) and {t["name"] for t in lines} == set(heat["y"])  # 'none', not 'none — · T=20'
    assert [t["name"] for t in lines if t["showlegend"]] == sorted(heat["y"], key=str.lower)  # each once in the legend
    for name in heat["y"]:  # one colour per placement, in every panel
        assert len({t["line"]["color"] for t in lines if t["name"] == name}) == 1, name
    assert len({t["line"]["color"] for t in lines}) == len(heat["y"])


def test_the_recall_panels_keep_to_a_readable_number_and_say_when_there_is_no_delay():
    from rnnreg import plots

    rows = [{"group": placement, "panel": float(delay), "run": f"{placement}{delay}", "epoch": epoch,
             "valid_accuracy": 0.5} for placement in ("none", "zaremba") for delay in range(1, 19)
            for epoch in (1, 2)]
    epochs = pd.DataFrame(rows)
    titles = [a.text for a in plots.sweep_panels_figure(epochs, {}).layout.annotations]
    assert titles == [f"T = {t}" for t in range(1, plots.MAX_SWEEP_PANELS + 1)]  # not 18 panels of no height
    no_delay = plots.sweep_panels_figure(epochs.assign(panel=float("nan")), {})
    assert "No delays recorded" in no_delay.layout.annotations[0].text
