"""The lecture: its data helpers (from rnnreg.placements, no hand-written tables) and the stepped page."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from rnnreg import config as cfg
from rnnreg import lecture, lecture_evidence, lecture_memory, lecture_plots
from rnnreg.placements import PER_SEQUENCE, PER_STEP, PLACEMENT_NAMES, PLACEMENTS
from tests.fixtures_lecture import REPO, lecture_runs


def test_the_lecture_modules_import_neither_streamlit_nor_torch():
    """The lecture's data and figures come from the run store alone: their modules load without the trainer."""
    modules = "rnnreg.lecture, rnnreg.lecture_memory, rnnreg.lecture_evidence, rnnreg.lecture_plots"
    code = f"import sys, {modules}; print('streamlit' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def masked(placement: str) -> pd.DataFrame:
    elements = lecture.schematic(placement)
    return elements[(elements["site"] != "") & ~elements["optional"]]


def test_survival_and_the_per_step_carried_rates():
    carried = lecture_memory.per_step_carried_rates
    assert lecture_memory.survival(0.5, range(4)) == [1.0, 0.5, 0.25, 0.125]
    assert carried("both", {"input": 0.5, "output": 0.5, "hidden": 0.3}) == {"hidden": 0.3}
    assert carried("recurrent", {"hidden": 0.25}) == {"hidden": 0.25}
    assert carried("zaremba", {"input": 0.5, "output": 0.5}) == {}
    assert carried("variational", {"hidden": 0.5, "input": 0.5}) == {}  # one mask per sequence
    assert carried("semeniuta", {"cell_update": 0.5}) == {}  # memory is never erased
    assert lecture_memory.per_step_carried_rates("no-such", {}) == {}


def test_zaremba_masks_only_vertical_connections_with_a_fresh_draw_each_step():
    rows = masked("zaremba")
    assert set(rows["connection"]) == {"layer input", "softmax input"}
    assert (rows["x0"] == rows["x1"]).all()  # vertical: never from one step to the next
    for (_site, _layer), part in rows.groupby(["site", "layer"]):
        assert part["draw"].nunique() == len(part)  # a new mask at every step


def test_variational_masks_the_recurrence_with_one_draw_per_sequence():
    rows = masked("variational")
    hidden = rows[rows["site"] == "hidden"]
    assert set(hidden["connection"]) == {"recurrent h"} and (hidden["x1"] - hidden["x0"] == 1).all()
    assert hidden.groupby("layer")["draw"].nunique().eq(1).all()  # the same mask at every step
    assert set(rows["sampling"]) == {PER_SEQUENCE, "forward"}  # + word dropout once per forward pass


@pytest.mark.parametrize("placement", PLACEMENT_NAMES)
def test_every_placement_draws_its_sites_as_in_rnnreg_placements(placement):
    elements = lecture.schematic(placement, layers=2, steps=4)
    spec = PLACEMENTS[placement]
    assert set(elements.loc[elements["site"] != "", "site"]) == set(spec.site_names)
    for site in spec.sites:
        part = elements[elements["site"] == site.name]
        assert set(part["sampling"]) == {site.sampling}
        if site.sampling == PER_STEP and part["step"].nunique() > 1:
            assert part["draw"].nunique() > part["layer"].nunique()
    fig = lecture_plots.schematic_figure(elements, placement)
    assert len(fig.data) >= 4
    assert lecture.placement_caption(placement).startswith(f"**{placement}**")


def test_the_caption_says_when_each_gate_gets_its_own_mask():
    caption = lecture.placement_caption("variational-untied")
    assert "`hidden` on the recurrent path: one mask for the whole sequence for each of the four gates" in caption
    assert "four gates" not in lecture.placement_caption("variational")


def test_evidence_without_reference_runs_still_marks_the_published_numbers():
    empty = lecture_evidence.evidence_frame(pd.DataFrame())
    assert empty.empty
    fig = lecture_plots.evidence_figure(empty)
    points = [(t.name, list(t.x)) for t in fig.data]  # horizontal: perplexity along x
    assert ("Zaremba et al. 2014 · valid", [120.7, 86.2, 82.2]) in points
    assert ("Gal & Ghahramani 2016 · test", [79.7]) in points


def test_memory_frame_is_relative_to_k0_at_the_last_epoch():
    gtt = pd.DataFrame({"run": "r", "label": "r", "epoch": [1, 1, 1, 2, 2, 2], "layer": 0, "wrt": "c",
                        "k": [0, 1, 2] * 2, "norm": [2.0, 1.0, 0.5, 4.0, 1.0, 0.25]})
    table = pd.DataFrame({"run": ["r"], "placement": ["both"], "rate hidden": [0.5]})
    memory = lecture_memory.memory_frame(gtt, table)
    assert memory["value"].tolist() == [1.0, 0.25, 0.0625] and memory["epoch"].eq(2).all()
    two = pd.concat([gtt, gtt.assign(run="s", label="s")[gtt["epoch"] == 1]])
    assert lecture_memory.memory_frame(two, table)["epoch"].eq(1).all()  # compared at the epoch both have
    assert memory["carried_p"].eq(0.5).all()
    assert lecture_memory.memory_frame(None, table).empty


def test_the_memory_chart_names_the_epoch_once_when_all_runs_share_it():
    frame = pd.DataFrame({"run": ["a", "a", "b", "b"], "label": ["a", "a", "b", "b"], "placement": "none",
                          "epoch": [3, 3, 3, 3], "k": [0, 1, 0, 1], "value": [1.0, 0.5, 1.0, 0.25],
                          "carried_p": 0.0})
    same = lecture_plots.memory_figure(frame)
    assert same.layout.title.subtitle.text.endswith("at epoch 3")  # under a title short enough for a projector
    assert [t.name for t in same.data if not t.name.startswith("(1-p)")] == ["none · a", "none · b"]
    mixed = lecture_plots.memory_figure(frame.assign(epoch=[3, 3, 5, 5]))  # no epoch both have
    assert "epoch" not in mixed.layout.title.subtitle.text
    assert [t.name for t in mixed.data if not t.name.startswith("(1-p)")] == ["none · a (epoch 3)",
                                                                               "none · b (epoch 5)"]


def test_the_memory_chart_shows_units_reached_as_a_share_and_norms_on_a_log_axis():
    frame = pd.DataFrame({"run": "a", "label": "a", "placement": "recurrent", "epoch": 3, "k": [0, 1, 2],
                          "value": [1.0, 0.9, 0.8], "carried_p": 0.5})
    share = lecture_plots.memory_figure(frame, measure="nonzero", rates={0.5: ["recurrent"]})
    assert share.layout.yaxis.type != "log" and list(share.layout.yaxis.range) == [0, 1.05]
    assert share.layout.yaxis.tickformat == ".0%"  # (1-p)^k at 0.25 no longer stretches the axis to 0.0001
    norm = lecture_plots.memory_figure(frame, measure="norm", rates={0.5: ["recurrent"]})
    assert norm.layout.yaxis.type == "log"


def test_live_demo_configs_are_valid_and_small():
    pairs = lecture.live_demo_configs()
    assert [c["dropout"]["placement"] for _name, c in pairs] == ["none", "zaremba"]
    for _name, doc in pairs:
        config = cfg.from_dict(doc)
        assert config.preset == "demo" and config.train.device == "cpu"
        assert config.train.max_train_tokens * config.train.epochs <= 150_000


# --------------------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return lecture_runs(tmp_path_factory)


def open_lecture(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    return at.switch_page("pages/lecture.py").run()


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def walk(at: AppTest) -> list[str]:
    """Next through every step, then Back to the first; the headers seen on the way."""
    seen = []
    for _ in lecture.STEPS:
        assert not at.exception, [e.value for e in at.exception]
        figures = 2 if at.header[0].value == lecture.STEPS[2].title else 1  # memory: gradient and recall
        assert len(at.get("plotly_chart")) == figures and at.success  # the figures and the takeaway
        seen.append(at.header[0].value)
        if len(seen) < len(lecture.STEPS):
            at.button(key="lecture_next_top").click().run()
    assert at.button(key="lecture_next_top").disabled
    for _ in lecture.STEPS[1:]:
        at.button(key="lecture_back_top").click().run()
    assert at.header[0].value == lecture.STEPS[0].title and at.button(key="lecture_back_top").disabled
    return seen


def test_walk_all_steps_with_an_empty_store(tmp_path, monkeypatch):
    at = open_lecture(tmp_path, monkeypatch)
    assert at.title[0].value == "Why recurrent dropout hurts"
    assert walk(at) == [s.title for s in lecture.STEPS]
    assert "No finished runs of the demo preset" in at.info[0].value
    at.button(key="lecture_next_top").click().run().button(key="lecture_next_top").click().run()
    at.button(key="lecture_next_top").click().run()
    assert "No reference runs yet" in at.info[0].value
    # its detail does not point at reference runs as if the chart showed them
    assert at.success[0].value == lecture.STEPS[-1].takeaway
    assert at.main.caption[-1].value.endswith("reference runs (`runs/reference/`, not in this run store) show all of it.")


def test_walk_with_real_runs_shows_their_curves(runs, monkeypatch):
    at = open_lecture(runs["none"].parent.parent, monkeypatch)
    overfit = charts(at)[0]["data"]
    assert {t["name"].split(" · ")[-1] for t in overfit} == {"train", "valid"} and len(overfit) == 4
    at.button(key="lecture_next_top").click().run()
    assert at.success[0].value == lecture.STEPS[1].takeaway  # zaremba, the default placement
    at.selectbox(key="lecture_placement").set_value("variational").run()
    assert "variational" in charts(at)[0]["layout"]["title"]["text"]
    assert at.success[0].value == lecture.masks_takeaway("variational")  # the takeaway follows the placement
    at.button(key="lecture_next_top").click().run()
    memory = charts(at)[0]["data"]
    names = [t["name"] for t in memory]
    assert re.search(r"at epoch \d+$", charts(at)[0]["layout"]["title"]["subtitle"]["text"])  # one epoch: said once
    assert not any("(epoch" in n for n in names)
    assert "(1-p)^k, p = 0.5 (recurrent)" in names  # the recurrent run's per-step rate on h_{t-1}, and whose it is
    # in the lecture's order, not the table's
    assert [n.split(" · ")[0] for n in names if not n.startswith("(1-p)")] == ["none", "zaremba", "recurrent"]
    # the placements the step is about that this store has no run of are named, not silently missing
    assert any("variational: no demo language-model run" in c.value for c in at.caption)
    # these tiny runs are not at the demo preset's own settings: drawn all the same, and said so
    [other] = [c.value for c in at.caption if c.value.startswith("Drawn at other settings: ")]
    assert all(f"{name}: " in other for name in ("none", "zaremba", "recurrent")), other
    at.segmented_control(key="lecture_measure").set_value("nonzero").run()
    assert not at.exception
    reached = [t for t in charts(at)[0]["data"] if not t["name"].startswith("(1-p)")]
    assert len(reached) == 3  # the share of units reached is read from probes.jsonl too
    at.button(key="lecture_next_top").click().run()
    evidence = charts(at)[0]["data"]
    # these runs trained on a tiny corpus, not the vendored Penn Treebank: no bars, and a caption says why
    assert not [t for t in evidence if t["type"] == "bar"]
    assert any("3 run(s) trained on another corpus" in c.value for c in at.caption)
    assert [b.label for b in at.get("download_button")] == ["Download chart (HTML)"]  # for slides, as elsewhere
    assert json.loads(at.get("plotly_chart")[0].proto.config)["toImageButtonOptions"]["filename"] == "lecture-evidence"
    at.toggle(key="lecture_present").set_value(True).run()
    assert not at.exception
    assert any("stSidebar" in m.value for m in at.markdown)  # the sidebar is hidden for the projector
    assert not at.title  # and the page title: the step's heading is the slide's
    assert charts(at)[0]["layout"]["font"]["size"] == lecture_plots.PRESENTATION_FONT
    assert not at.get("download_button")  # a projector's screen is for the chart


def test_the_evidence_step_shows_the_shipped_penn_treebank_runs(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(REPO / "runs" / "reference", tmp_path / "runs" / "reference")
    at = open_lecture(tmp_path / "runs", monkeypatch)
    for _ in lecture.STEPS[1:]:
        at.button(key="lecture_next_top").click().run()
    assert not at.exception
    bars = [t for t in charts(at)[0]["data"] if t["type"] == "bar"]
    assert len(bars) == 2 and {"small · none", "medium · zaremba"} <= set(bars[0]["y"])
    assert not {c for c in bars[0]["y"] if c.startswith("demo")}  # beside paper-size runs, the demo is left out
    assert any("configuration(s) of the CPU `demo` preset" in c.value for c in at.caption)
    assert not any("another corpus" in c.value for c in at.caption)
    masks_on = next(t for t in charts(at)[0]["data"] if t["name"].endswith("with dropout on (MC)"))
    assert "small · moon" in masks_on["y"]  # the shipped moon run evaluated with its masks, and a caption says how
    assert any("Green circles" in c.value and "rnnreg evaluate" in c.value for c in at.caption)
    assert at.success[0].value == lecture.STEPS[-1].takeaway
    assert at.main.caption[-1].value == lecture.STEPS[-1].detail  # the runs it names are in the chart
    # the rows say their dropout rate: small's recurrent runs at 0.5, medium's at 0.25
    axis = charts(at)[0]["layout"]["yaxis"]
    rows = dict(zip(axis["tickvals"], axis["ticktext"]))
    assert rows["small · recurrent"] == "small · recurrent 0.5"
    assert rows["medium · recurrent"] == "medium · recurrent 0.25"
    assert rows["large · zaremba"] == "large · zaremba 0.65" and rows["small · none"] == "small · none"
    # a long label breaks before what sets it apart: the bars keep the width
    assert rows["small · none (main.lua's schedule)"] == "small · none<br>(main.lua's schedule)"
    own = at.toggle(key="lecture_own")  # shipped runs only: a toggle that would change nothing says so
    assert own.disabled and own.help.startswith("no finished runs of your own yet")
    from fixtures_runs import write_run

    write_run(tmp_path / "runs", "20261206-000000-mine", name="mine")
    at.run()
    assert not at.toggle(key="lecture_own").disabled


def test_run_both_live_launches_the_pair_once(tmp_path, monkeypatch):
    import rnnreg.launch

    calls = []

    def fake_launch(root, config, *, name=None, request_id=None, max_concurrent=1, live=False, **_):
        calls.append((config["dropout"]["placement"], name, request_id, max_concurrent, live))
        return f"fake-{len(calls)}"

    monkeypatch.setattr(rnnreg.launch, "launch", fake_launch)  # no real trainer in this test
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})  # 2 CPUs to use
    at = open_lecture(tmp_path, monkeypatch)
    at.button(key="lecture_live").click().run()
    assert not at.exception
    # queued, both at once on 2 CPUs (a core each: benchmarks/live_pair.py), ahead of runs waiting in the background
    assert [c[0] for c in calls] == ["none", "zaremba"] and all(c[3] == 2 and c[4] is True for c in calls)
    assert len({c[2] for c in calls}) == 2  # one request id each: a rerun cannot start them twice


def test_the_live_pair_is_drawn_as_it_trains_not_the_shipped_pair(tmp_path, monkeypatch):
    import rnnreg.launch
    from fixtures_runs import write_run

    root = tmp_path / "runs"
    write_run(root / "reference", "20261101-000000-ref-none", name="shipped none")
    write_run(root / "reference", "20261101-000001-ref-z", placement="zaremba", dropout=0.5, name="shipped z")
    live = ["20261208-000000-live-none", "20261208-000001-live-z"]
    write_run(root, live[0], name="lecture demo, no dropout", state="running", epochs_done=2, epochs_total=8)
    write_run(root, live[1], placement="zaremba", dropout=0.5, name="lecture demo, dropout 0.5", state="queued",
              epochs_done=0, epochs_total=8)
    ids = iter(live)
    monkeypatch.setattr(rnnreg.launch, "launch", lambda *args, **kwargs: next(ids))  # the pair, as if just started
    at = open_lecture(root, monkeypatch)
    assert {t["name"] for t in charts(at)[0]["data"]} == {"no dropout · train", "no dropout · valid",
                                                          "zaremba dropout 0.5 · train", "zaremba dropout 0.5 · valid"}
    before = [t["x"] for t in charts(at)[0]["data"]]
    at.button(key="lecture_live").click().run()
    assert not at.exception and not at.warning
    figure = charts(at)[0]
    # the live run two epochs in, alone: its partner has no epoch yet, and no shipped run stands in for it
    assert [t["name"] for t in figure["data"]] == ["no dropout · train", "no dropout · valid"]
    assert [len(t["x"]) for t in figure["data"]] == [2, 2] and before[0] != figure["data"][0]["x"]
    assert figure["layout"]["xaxis"]["range"] == [0.5, 8.5]  # a frame of all its epochs to grow into
    # not the demo preset the size control names: the chart says what these runs are (captions leave the projector)
    assert figure["layout"]["title"]["subtitle"]["text"] == (
        "trained live: the demo model (2 × 200) on a 10,000-word prefix, 8 epochs at batch size 5")
    assert any("lecture demo, no dropout" in c.value for c in at.caption)


def test_evidence_averages_the_seeds_of_a_configuration_instead_of_picking_the_best():
    table = pd.DataFrame({
        "run": ["a", "b", "c", "own"], "preset": ["small"] * 4, "placement": ["none", "none", "zaremba", "none"],
        "state": "finished", "problems": "", "best_valid_ppl": [110.0, 120.0, 130.0, 90.0],
        "test_ppl": [100.0, 104.0, 125.0, 85.0], "read_only": [True, True, True, False],
    })
    evidence = lecture_evidence.evidence_frame(table).set_index("placement")
    assert evidence.loc["none", "valid"] == 115.0 and evidence.loc["none", "test"] == 102.0
    assert evidence.loc["none", "seeds"] == 2 and round(evidence.loc["none", "test_sd"], 3) == 2.828
    assert evidence.loc["zaremba", "seeds"] == 1 and evidence.loc["zaremba", "test_sd"] == 0.0
    assert lecture_evidence.evidence_frame(table, include_own=True).set_index("placement").loc["none", "seeds"] == 3
    bars = [t for t in lecture_plots.evidence_figure(lecture_evidence.evidence_frame(table)).data if t.type == "bar"]
    assert bars[0].error_x.visible and list(bars[0].error_x.array) == list(evidence.reset_index()["valid_sd"])


def test_a_finished_run_without_a_test_figure_is_no_seed_of_its_configuration():
    table = pd.DataFrame({  # three seeds finished; one's test is not finite (the store reads it as none)
        "run": ["a", "b", "c"], "preset": "small", "placement": "none", "state": "finished", "problems": "",
        "best_valid_ppl": [120.0, 122.0, 124.0], "test_ppl": [115.0, math.nan, math.nan], "read_only": True,
    })
    row = lecture_evidence.evidence_frame(table).iloc[0]
    assert (row["seeds"], row["valid"], row["test"], row["test_sd"]) == (1, 120.0, 115.0, 0.0)  # not "± 0 over 3"


def test_evidence_sets_the_test_with_dropout_on_beside_the_same_seeds_test_with_it_off():
    # two seeds of moon, one of them also tested with its masks on; none has no such evaluation
    table = pd.DataFrame({
        "run": ["m0", "m1", "n0"], "preset": "small", "placement": ["moon", "moon", "none"], "state": "finished",
        "problems": "", "read_only": True, "best_valid_ppl": [148.0, 147.0, 117.0], "test_ppl": [140.2, 140.0, 112.6],
        "mc_test_ppl": [math.nan, 101.5, math.nan], "mc_protocol": ["", "window", ""], "mc_samples": [None, 20, None],
    })
    evidence = lecture_evidence.evidence_frame(table).set_index("placement")
    assert evidence.loc["moon", "test"] == 140.1 and evidence.loc["moon", "seeds"] == 2
    assert evidence.loc["moon", "mc_test"] == 101.5 and evidence.loc["moon", "mc_seeds"] == 1
    assert evidence.loc["moon", "mc_off_test"] == 140.0  # like for like: the evaluated seed's own test
    assert evidence.loc["moon", "mc_protocol"] == "window" and evidence.loc["moon", "mc_samples"] == "20"
    assert evidence.loc["none", "mc_seeds"] == 0 and math.isnan(evidence.loc["none", "mc_test"])
    fig = lecture_plots.evidence_figure(evidence.reset_index())
    masks_on = next(t for t in fig.data if t.name == "this project · test with dropout on (MC)")
    assert list(masks_on.y) == ["small · moon"] and list(masks_on.x) == [101.5]
    assert masks_on.offsetgroup == "test" and tuple(masks_on.customdata[0]) == ("20", "window", 1, 2, 140.0)
    assert "over %{customdata[2]} of %{customdata[3]} seed(s)" in masks_on.hovertemplate
    test_bar = next(t for t in fig.data if t.type == "bar" and t.name.endswith("test"))
    assert list(test_bar.text) == ["112.6", "140.1 · MC 101.5"]  # the number, where no marker covers it
    before_mc = lecture_evidence.evidence_frame(table.drop(columns="mc_test_ppl"))
    assert not [t for t in lecture_plots.evidence_figure(before_mc).data
                if t.name.endswith("(MC)")]  # a table from before MC was recorded: no marker, no error


def test_evidence_puts_the_tested_models_valid_beside_its_test_and_the_best_epoch_in_the_hover():
    # an overfitting run: its best epoch (118.6) is another model than the one tested (157.6)
    table = pd.DataFrame({
        "run": ["over", "fine"], "preset": "medium", "placement": ["recurrent", "zaremba"], "state": "finished",
        "problems": "", "read_only": True, "best_valid_ppl": [118.6, 86.8], "last_valid_ppl": [161.5, 86.9],
        "test_ppl": [157.6, 83.4],
    })
    evidence = lecture_evidence.evidence_frame(table).set_index("placement")
    assert evidence.loc["recurrent", "valid"] == 161.5 and evidence.loc["recurrent", "best_valid"] == 118.6
    assert evidence.loc["zaremba", "valid"] == 86.9
    valid_bar = next(t for t in lecture_plots.evidence_figure(evidence.reset_index()).data
                     if t.type == "bar" and t.name.endswith("valid"))
    row = list(valid_bar.y).index("medium · recurrent")
    assert valid_bar.x[row] == 161.5 and valid_bar.customdata[row][2] == 118.6
    assert "final model; best epoch %{customdata[2]:.1f}" in valid_bar.hovertemplate


def test_the_evidence_rows_rank_each_size_by_test_with_unrun_published_rows_by_their_own():
    table = pd.DataFrame({
        "run": list("abc"), "preset": ["small", "small", "medium"], "placement": ["moon", "zoneout", "recurrent"],
        "state": "finished", "problems": "", "read_only": True, "best_valid_ppl": [148.0, 105.0, 118.6],
        "last_valid_ppl": [148.0, 105.0, 161.5], "test_ppl": [140.2, 100.3, 157.6],
    })
    order = list(lecture_plots.evidence_figure(lecture_evidence.evidence_frame(table)).layout.yaxis.categoryarray)
    # a published row without a run ranks by the paper's test: small none 114.5, medium variational 79.7
    # the largest size first: the models dropout makes possible are what a projector shows without scrolling
    assert order == ["large · zaremba", "medium · variational", "medium · zaremba", "medium · recurrent",
                     "small · zoneout", "small · none", "small · moon"]


def test_the_evidence_is_at_the_papers_sizes_once_there_are_runs_of_them():
    evidence = pd.DataFrame({"preset": ["demo", "small", "medium", "demo"], "category": list("abcd")})
    shown, left_out = lecture_evidence.at_paper_sizes(evidence)
    assert list(shown["category"]) == ["b", "c"] and left_out == 2
    demo_only = evidence[evidence["preset"] == "demo"]
    shown, left_out = lecture_evidence.at_paper_sizes(demo_only)
    assert list(shown["category"]) == ["a", "d"] and left_out == 0


def test_the_evidence_chart_has_a_row_per_configuration_and_grows_with_them():
    few = lecture_evidence.evidence_frame(pd.DataFrame({
        "run": ["a"], "preset": "medium", "placement": "zaremba", "state": "finished", "problems": "",
        "read_only": True, "best_valid_ppl": [86.0], "test_ppl": [83.0]}))
    many = pd.concat([few.assign(category=f"medium · placement {i}") for i in range(12)], ignore_index=True)
    small, large = lecture_plots.evidence_figure(few), lecture_plots.evidence_figure(many)
    assert large.layout.height > small.layout.height
    bars = [t for t in large.data if t.type == "bar"]
    assert all(t.orientation == "h" for t in bars) and len(set(bars[0].y)) == 12
    order = list(large.layout.yaxis.categoryarray)  # large, then medium, then small, top to bottom
    assert order.index("large · zaremba") < order.index("medium · placement 0") < order.index("small · none")
    assert large.layout.yaxis.autorange == "reversed"


def test_evidence_is_penn_treebank_runs_and_runs_that_did_not_record_their_corpus():
    table = pd.DataFrame({
        "run": list("abc"), "preset": "small", "placement": ["none", "zaremba", "both"], "state": "finished",
        "problems": "", "read_only": True, "best_valid_ppl": 120.0, "test_ppl": 115.0,
        "corpus": ["penn-treebank", "other", ""],
    })
    assert sorted(lecture_evidence.evidence_frame(table)["placement"]) == ["both", "none"]
    assert lecture_evidence.off_corpus(table) == 1 and lecture_evidence.off_corpus(table.drop(columns="corpus")) == 0


def test_evidence_keeps_configurations_apart_that_differ_in_more_than_the_seed():
    # medium zaremba: two seeds of the preset, one on main.lua's schedule, one clipped harder;
    # variational: two rate sets
    table = pd.DataFrame({
        "run": list("abcdef"), "preset": "medium", "state": "finished", "problems": "", "read_only": True,
        "placement": ["zaremba", "zaremba", "zaremba", "variational", "variational", "zaremba"],
        "rates": ["input 0.5, output 0.5"] * 3 + ["hidden 0.5", "hidden 0.3", "input 0.5, output 0.5"],
        "variant": ["", "", "decay_after=7", "", "", "clip=2.5"],
        "best_valid_ppl": [86.0, 88.0, 80.0, 87.0, 84.0, 90.0], "test_ppl": [83.0, 85.0, 77.0, 84.0, 81.0, 88.0],
    })
    evidence = lecture_evidence.evidence_frame(table).set_index("category")
    assert evidence.loc["medium · zaremba", "seeds"] == 2 and evidence.loc["medium · zaremba", "test"] == 84.0
    # not averaged in as further seeds; main.lua's one-epoch-later cut (medium: 6 + 1) named as such
    assert evidence.loc["medium · zaremba (main.lua's schedule)", "test"] == 77.0
    assert evidence.loc["medium · zaremba (clip=2.5)", "test"] == 88.0
    assert evidence.loc["medium · variational [hidden 0.3]", "test"] == 81.0
    assert evidence.loc["medium · variational [hidden 0.5]", "seeds"] == 1
    alone = lecture_evidence.evidence_frame(table[table["run"].isin(["a", "d"])])
    assert sorted(alone["category"]) == ["medium · variational", "medium · zaremba"]  # nothing to tell apart


# --------------------------------------------------------------------------- the memory task in step 3


def memory_table(**columns) -> pd.DataFrame:
    base = {"run": ["ref-cell-2", "ref-cell-10", "ref-zaremba-10", "own-cell-10", "ptb", "broken", "half"],
            "label": ["a", "b", "c", "d", "e", "f", "g"],
            "preset": ["memory"] * 4 + ["small", "memory", "memory"],
            "placement": ["recurrent-cell", "recurrent-cell", "zaremba", "recurrent-cell", "none",
                          "recurrent-cell", "zaremba"],
            "dropout": [0.25, 0.25, 0.25, 0.25, 0.0, 0.25, 0.25],
            "task": ["memory"] * 4 + ["lm", "memory", "memory"],
            "delay": [2, 10, 10, 10, None, 5, 5],
            "test_accuracy": [1.0, 0.16, 0.99, 0.2, None, 0.5, None],
            "state": ["finished"] * 6 + ["running"], "problems": ["", "", "", "", "", "torn", ""],
            "read_only": [True, True, True, False, True, False, False],
            "best_valid_ppl": [2.0, 9.0, 2.1, 8.0, 120.0, 5.0, 6.0], "test_ppl": [2.0, 9.0, 2.1, 8.0, 115.0, 5.0, 6.0],
            "epochs_done": [30, 30, 30, 30, 13, 30, 3]}
    return pd.DataFrame({**base, **columns})


def test_recall_frame_takes_finished_memory_runs_and_lets_own_runs_replace_shipped_points():
    recall = lecture_memory.recall_frame(memory_table())
    assert list(zip(recall["placement"], recall["delay"], recall["accuracy"], recall["source"])) == [
        ("zaremba", 10, 0.99, "reference run"),  # placements in rnnreg.placements order, then by delay
        ("recurrent-cell", 2, 1.0, "reference run"),
        ("recurrent-cell", 10, 0.2, "own run"),  # the live run, not the shipped 0.16
    ]
    assert lecture_memory.recall_frame(pd.DataFrame(columns=["run"])).empty


def test_recall_figure_draws_a_line_per_placement_in_percent_over_chance():
    fig = lecture_plots.recall_figure(lecture_memory.recall_frame(memory_table()), chance=lecture_memory.MEMORY_CHANCE)
    assert [t.name for t in fig.data] == ["zaremba 0.25", "recurrent-cell 0.25"]
    assert list(fig.data[1].x) == [2, 10] and list(fig.data[1].y) == [100.0, 20.0]
    assert fig.layout.shapes[0].y0 == 100 / 8  # chance among 8 keys
    empty = lecture_plots.recall_figure(lecture_memory.recall_frame(pd.DataFrame()))
    assert not empty.data and "memory-sweep.json" in empty.layout.annotations[0].text


def test_memory_task_runs_are_not_penn_treebank_evidence():
    evidence = lecture_evidence.evidence_frame(memory_table(), include_own=True)
    assert list(evidence["category"]) == ["small · none"]


def test_gradient_probe_step_compares_language_model_runs_and_names_the_placements_it_lacks():
    table = memory_table(placement=["recurrent-cell", "recurrent-cell", "none", "zaremba", "none",
                                    "zaremba", "zaremba"])
    pick = lecture_memory.memory_runs(table)
    assert pick.preset == "small" and pick.runs == ("ptb",)  # none from PTB, not a memory-task run beside it
    # recurrent-cell has memory-task runs only: not mixed into a chart of language models, but said so
    assert "recurrent-cell: no small language-model run (its memory-task runs are in the recall chart below)." \
        in pick.left_out
    assert "recurrent: no small language-model run (none in this run store)." in pick.left_out


def test_steps_show_a_finished_run_before_a_newer_one_still_training():
    table = pd.DataFrame({
        "run": ["own-running-z", "own-done-z", "own-done-none", "ref-running-none"],
        "preset": ["demo"] * 4, "placement": ["zaremba", "zaremba", "none", "none"], "dropout": [0.3, 0.5, 0.0, 0.0],
        "state": ["running", "finished", "finished", "running"], "problems": [""] * 4,
        "read_only": [False, False, False, True], "epochs_done": [3, 8, 8, 2], "task": ["lm"] * 4})
    assert lecture.overfitting_pair(table) == ("own-done-none", "own-done-z")
    # the pair launched live is drawn from the start, as it trains, and never beside a finished run of other settings
    assert lecture.overfitting_pair(table, prefer=["own-running-z"]) == (None, "own-running-z")
    queued = pd.concat([table, pd.DataFrame({
        "run": ["live-none", "live-z"], "preset": ["demo"] * 2, "placement": ["none", "zaremba"], "dropout": [0.0, 0.5],
        "state": ["running", "queued"], "problems": [""] * 2, "read_only": [False] * 2, "epochs_done": [0, 0],
        "task": ["lm"] * 2})], ignore_index=True)
    assert lecture.overfitting_pair(queued, prefer=["live-none", "live-z"]) == ("live-none", "live-z")
    assert lecture.overfitting_pair(queued, prefer=["live-none", "live-z"], preset="medium") == (None, None)
    # a live pair that failed before its first epoch leaves the chart to the finished runs, not to nothing
    failed = queued.assign(state=queued["state"].where(~queued["run"].str.startswith("live"), "failed"))
    assert lecture.overfitting_pair(failed, prefer=["live-none", "live-z"]) == ("own-done-none", "own-done-z")
    assert lecture_memory.memory_runs(table).runs == ("own-done-none", "own-done-z")  # none first, finished first


def step_one_table() -> pd.DataFrame:
    """Shipped runs of three sizes, newest first as the run table lists them."""
    rows = [  # run, preset, placement, dropout, seed, variant
        ("medium-none-mainlua-s0", "medium", "none", 0.0, 0, "decay_after=7"),
        ("medium-none-s1", "medium", "none", 0.0, 1, ""),
        ("medium-none-s0", "medium", "none", 0.0, 0, ""),
        ("medium-variational-s0", "medium", "variational", 0.5, 0, ""),
        ("medium-zaremba-s1", "medium", "zaremba", 0.5, 1, ""),
        ("medium-zaremba-s0", "medium", "zaremba", 0.5, 0, ""),
        ("small-none-s0", "small", "none", 0.0, 0, ""),
        ("small-zaremba-s0", "small", "zaremba", 0.5, 0, ""),
        ("demo-none", "demo", "none", 0.0, 0, ""),
        ("demo-zaremba", "demo", "zaremba", 0.5, 0, ""),
    ]
    table = pd.DataFrame(rows, columns=["run", "preset", "placement", "dropout", "seed", "variant"])
    return table.assign(state="finished", problems="", read_only=True, epochs_done=13, task="lm")


def test_step_one_offers_the_papers_sizes_where_it_trains_with_dropout():
    table = step_one_table()
    # small has both sides too, but the paper trains it without dropout and zaremba 0.5 costs it
    # validation perplexity: no picture of overfitting cured, so not offered
    assert lecture.overfitting_presets(table) == ["demo", "medium"]
    # the preset's own settings (not main.lua's schedule), the lowest seed, zaremba's placement
    assert lecture.overfitting_pair(table, preset="medium") == ("medium-none-s0", "medium-zaremba-s0")
    assert lecture.overfitting_pair(table) == ("demo-none", "demo-zaremba")  # the demo stays the default
    no_zaremba = table[~table["run"].str.startswith("medium-zaremba")]
    assert lecture.overfitting_pair(no_zaremba, preset="medium") == ("medium-none-s0", None)
    assert lecture.overfitting_presets(no_zaremba) == ["demo"]  # variational is not the story of step 1
    assert lecture.overfitting_presets(pd.DataFrame()) == ["demo"]
    other_rate = pd.concat([table.iloc[:4], pd.DataFrame([{**table.iloc[5].to_dict(), "run": "medium-zaremba0.3-s0",
                                                             "dropout": 0.3}]), table.iloc[4:]], ignore_index=True)
    other_rate["rates"] = [f"input {p:g}, output {p:g}" if p else "—" for p in other_rate["dropout"]]
    # the lowest seed at the preset's own rate (0.5), not a seed-0 run at another
    assert lecture.overfitting_pair(other_rate, preset="medium") == ("medium-none-s0", "medium-zaremba-s0")
    assert lecture.size_label("medium") == "medium · 2 × 650, 39 epochs"
    assert lecture.size_label("demo") == "demo · 2 × 200, 10 epochs on 30,000 words"


def test_step_one_switches_to_the_medium_pair_and_back_to_the_demo_for_a_live_run(tmp_path, monkeypatch):
    import rnnreg.launch
    from tests.fixtures_runs import write_run

    monkeypatch.setattr(rnnreg.launch, "launch", lambda *a, **k: "fake")  # no real trainer in this test
    shipped = tmp_path / "runs" / "reference"
    for run_id, preset, placement, dropout in [("20261101-000000-demo-none", "demo", "none", None),
                                               ("20261101-000001-demo-zaremba", "demo", "zaremba", 0.5),
                                               ("20261101-000002-medium-none", "medium", "none", None),
                                               ("20261101-000003-medium-zaremba", "medium", "zaremba", 0.5)]:
        write_run(shipped, run_id, preset=preset, placement=placement, dropout=dropout, name=run_id[16:],
                  epochs_total=cfg.PRESETS[preset].train.epochs)  # the preset's own settings, as shipped
    at = open_lecture(tmp_path / "runs", monkeypatch)
    size = at.segmented_control(key="lecture_size")
    assert size.options == [lecture.size_label("demo"), lecture.size_label("medium")] and size.value == "demo"
    assert "demo-none" in at.caption[0].value
    size.set_value("medium").run()
    assert not at.exception
    names = {t["name"] for t in charts(at)[0]["data"]}
    assert names == {f"{side} · {curve}" for side in ("no dropout", "zaremba dropout 0.5") for curve in ("train", "valid")}
    assert "medium-none" in at.caption[0].value and "medium-zaremba" in at.caption[0].value
    at.button(key="lecture_live").click().run()  # the live pair is the demo's: the chart goes back to it
    assert at.segmented_control(key="lecture_size").value == "demo" and "demo-none" in at.caption[0].value


def test_the_overfitting_chart_labels_every_epoch_of_the_demo_and_every_fifth_of_a_long_run():
    def axis(epochs: int) -> dict:
        frame = pd.DataFrame({"run": "r", "epoch": range(1, epochs + 1), "train_ppl": 100.0, "valid_ppl": 120.0})
        return lecture_plots.overfitting_figure(frame, {"r": "no dropout"}).layout.xaxis

    assert axis(10).dtick == 1 and list(axis(10).range) == [0.5, 10.5]
    assert axis(39).dtick == 5 and list(axis(39).range) == [0.5, 39.5]  # not 39 crowded ticks, nor one at -1


def test_step_one_has_no_size_choice_without_a_pair_at_the_papers_sizes(runs, monkeypatch):
    at = open_lecture(runs["none"].parent.parent, monkeypatch)
    assert not at.get("segmented_control") and len(charts(at)[0]["data"]) == 4


def test_live_memory_configs_are_valid_cpu_runs_of_both_placements_at_each_delay():
    configs = lecture_memory.live_memory_configs()
    parsed = [cfg.from_dict(doc) for _name, doc in configs]
    assert {(c.dropout.placement, c.memory.delay) for c in parsed} == {
        (p, d) for p in ("recurrent-cell", "zaremba") for d in (2, 5, 10, 20)}
    assert all(c.task == "memory" and c.train.device == "cpu" and c.dropout.rates for c in parsed)


def test_memory_step_shows_real_memory_runs_and_launches_the_live_set_once(tmp_path, monkeypatch):
    import dataclasses

    import rnnreg.launch
    from rnnreg.cli import main
    from rnnreg.runs import RunWriter

    for placement in ("recurrent-cell", "zaremba"):
        config = dataclasses.replace(
            cfg.build_run_config("memory", placement=placement, dropout=0.25, delay=2, epochs=2, device="cpu"),
            name=f"tiny memory {placement}")
        writer = RunWriter.create(tmp_path, cfg.to_dict(config))
        writer.close()
        assert main(["train", "--run-dir", str(writer.dir)]) == 0
    calls = []

    def fake_launch(root, config, *, name=None, request_id=None, max_concurrent=1, **_):
        calls.append((config["dropout"]["placement"], config["memory"]["delay"], request_id, max_concurrent))
        return f"fake-{len(calls)}"

    monkeypatch.setattr(rnnreg.launch, "launch", fake_launch)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})  # 2 CPUs to use
    at = open_lecture(tmp_path, monkeypatch)
    at.button(key="lecture_next_top").click().run().button(key="lecture_next_top").click().run()
    assert not at.exception and at.header[0].value == lecture.STEPS[2].title
    recall = charts(at)[1]
    assert "memory task" in recall["layout"]["title"]["text"]
    assert sorted(t["name"] for t in recall["data"]) == ["recurrent-cell 0.25", "zaremba 0.25"]
    assert all("T = %{x}" in t["hovertemplate"] for t in recall["data"])  # values: the pure figure test
    at.button(key="lecture_memory_live").click().run()
    assert not at.exception and len(calls) == 8 and all(c[3] == 2 for c in calls)  # queued, two at a time on 2 CPUs
    assert len({c[2] for c in calls}) == 8  # a request id each: a rerun or double click cannot start them twice
    at.button(key="lecture_memory_live").click().run()
    assert len(calls) == 16 and len({c[2] for c in calls}) == 16  # a second click is a second, new set


def test_poke_offers_a_language_model_first_not_the_newest_memory_run(tmp_path):
    from rnnreg.lecture import CHECKPOINT_FILES

    rows = []
    for run, preset, task, state, read_only in (
        ("memory-new", "memory", "memory", "finished", True),   # newest first, as the table lists them
        ("demo-ref", "demo", "lm", "finished", True),
        ("small-ref", "small", "lm", "finished", True),
        ("mine-running", "demo", "lm", "running", False),
        ("mine", "demo", "lm", "finished", False),
        ("no-checkpoint", "small", "lm", "finished", False),
    ):
        path = tmp_path / run
        path.mkdir()
        for name in CHECKPOINT_FILES if run != "no-checkpoint" else ():
            (path / name).write_text("x")
        rows.append({"run": run, "path": str(path), "preset": preset, "task": task, "state": state,
                     "read_only": read_only, "problems": ""})
    assert lecture.checkpoint_runs(pd.DataFrame(rows)) == ["mine", "small-ref", "demo-ref", "memory-new",
                                                           "mine-running"]


def test_the_evidence_takeaway_quotes_the_published_figures_and_the_small_runs_bear_it_out():
    step = next(step for step in lecture.STEPS if step.key == "evidence")
    assert step.takeaway.count(". ") == 0 and len(step.takeaway) < 330  # one sentence, for the projector
    takeaway = f"{step.takeaway} {step.detail}"  # and the rest beside it
    published = lecture_evidence.PUBLISHED
    paper = published[published["source"] == "Zaremba et al. 2014"].set_index("preset")["test"]
    assert f"reach {paper['medium']} and {paper['large']} test" in takeaway and f"stays at {paper['small']}" in takeaway
    from pages.shared import store  # the shipped small runs: 0.5 at zaremba's sites scores worse than none

    evidence = lecture_evidence.evidence_frame(store.run_table(Path(__file__).resolve().parent.parent / "runs"))
    own_settings = evidence[evidence["variant"] == ""]  # not the runs on main.lua's schedule (`--decay-after`)
    small = own_settings[own_settings["preset"] == "small"].set_index("placement")["test"]
    assert "underfits" in takeaway and small["zaremba"] > small["none"]
    helped = {"recurrent": "per-step dropout on h", "zoneout": "zoneout", "weight-drop": "weight drop",
              "semeniuta": "dropout on the cell update"}
    for placement, words in helped.items():  # each one the takeaway names as helping beats no dropout
        assert words in takeaway and small[placement] < small["none"], placement
    assert "a mask on the memory c itself, one per window, scores worst with dropout off" in takeaway
    assert small["moon"] == small.max()
    from rnnreg import runs

    shipped = Path(__file__).resolve().parent.parent / "runs"
    masked = [s.mc_test_ppl for s in runs.list_runs(shipped)  # tested with training's masks (`rnnreg evaluate`)
              if s.preset == "small" and s.placement == "moon" and s.mc_protocol == "window"]
    assert "yet ahead of no dropout when tested with its masks on" in takeaway
    assert masked and max(masked) < small["none"]
    medium = own_settings[own_settings["preset"] == "medium"].set_index("placement")
    assert "per-step dropout on h alone, or zoneout alone, lets the model overfit" in takeaway
    for alone in ("recurrent", "zoneout"):  # worse than zaremba, and overfit: train far below valid, valid turned up
        assert medium.at[alone, "test"] > medium.at["zaremba", "test"], alone
        curves = runs.load_run(shipped, medium.at[alone, "run"]).epochs_frame()
        last = curves.iloc[-1]
        assert last["train_ppl"] < last["valid_ppl"] / 5 and last["valid_ppl"] > curves["valid_ppl"].min() * 1.2, alone
    assert "added to zaremba's sites the dropout on h tests better than they do alone" in takeaway
    assert medium.at["both", "test"] < medium.at["zaremba", "test"]


def test_a_published_number_our_bar_covers_moves_right_of_it_with_its_symbol():
    # medium variational: our bars (87.4 valid, 83.6 test with its MC circle at 88.4) end past Gal's 81.9 / 79.7
    table = pd.DataFrame({
        "run": ["v", "n"], "preset": ["medium", "small"], "placement": ["variational", "none"], "state": "finished",
        "problems": "", "read_only": True, "best_valid_ppl": [87.4, 117.0], "test_ppl": [83.6, 112.6],
        "mc_test_ppl": [88.4, math.nan], "mc_protocol": ["window", ""], "mc_samples": [20, None],
    })
    fig = lecture_plots.evidence_figure(lecture_evidence.evidence_frame(table))
    gal_test = next(t for t in fig.data if t.name == "Gal & Ghahramani 2016 · test")
    assert list(gal_test.x) == [79.7] and list(gal_test.text) == [""]  # the marker stays on its value
    moved = next(t for t in fig.data if t.name == "Gal & Ghahramani 2016 · test (number)")
    assert list(moved.x) == [88.4] and list(moved.text) == ["  ★ 79.7"] and moved.offsetgroup == "test"
    assert next(t for t in fig.data if t.name == "Gal & Ghahramani 2016 · valid (number)").x == (87.4,)
    # small none: our bars end short of the paper's 120.7 / 114.5, so the numbers stay on their markers
    paper = next(t for t in fig.data if t.name == "Zaremba et al. 2014 · test")
    assert dict(zip(paper.y, paper.text))["small · none"] == "114.5"
    assert not any(t.name == "Zaremba et al. 2014 · test (number)" and "small · none" in t.y for t in fig.data)


def test_a_run_far_past_the_published_numbers_runs_off_the_evidence_chart_labelled_so():
    # medium without dropout (639 valid) would squeeze every other bar into a fifth of the width
    table = pd.DataFrame({
        "run": ["n", "z", "r"], "preset": "medium", "placement": ["none", "zaremba", "recurrent"],
        "state": "finished", "problems": "", "read_only": True, "best_valid_ppl": [639.0, 86.8, 161.5],
        "test_ppl": [617.6, 83.3, 157.6], "mc_test_ppl": [math.nan, math.nan, 240.0], "mc_protocol": "",
        "mc_samples": None,
    })
    fig = lecture_plots.evidence_figure(lecture_evidence.evidence_frame(table))
    highest_published = max(lecture_evidence.PUBLISHED["valid"].max(), lecture_evidence.PUBLISHED["test"].max())
    assert 240.0 <= 2 * highest_published  # an MC circle within the limit still sets the scale ...
    assert list(fig.layout.xaxis.range) == pytest.approx([0, 1.12 * 240.0])
    for column, off in (("valid", "639.0"), ("test", "617.6")):
        bar = next(t for t in fig.data if t.name == f"this project · {column}")
        texts = dict(zip(bar.y, bar.text))
        assert texts["medium · none"] == f"{off} · off the scale ▸"  # ... the run past it does not
        assert not [t for c, t in texts.items() if c != "medium · none" and "off the scale" in t]
    within = lecture_plots.evidence_figure(lecture_evidence.evidence_frame(table[table["run"] != "n"]))
    assert within.layout.xaxis.range == fig.layout.xaxis.range  # nothing off the scale: the same edge
    table.loc[table["run"] == "z", "best_valid_ppl"] = 300.0  # off the scale where the paper has a number
    fig = lecture_plots.evidence_figure(lecture_evidence.evidence_frame(table))
    paper = next(t for t in fig.data if t.name == "Zaremba et al. 2014 · valid")
    assert dict(zip(paper.y, paper.text))["medium · zaremba"] == "86.2"  # by its marker, not moved past the edge


# --------------------------------------------------------------------------- dashboard findings: lecture


SHIPPED = REPO / "runs"


@pytest.fixture(scope="module")
def shipped_table() -> pd.DataFrame:
    from pages.shared import store

    return store.run_table(SHIPPED)


def test_step_one_says_dropout_narrows_the_gap_the_shipped_demo_pair_still_shows(shipped_table):
    from rnnreg import runs

    assert "narrows that gap" in lecture.STEPS[0].takeaway and "closes" not in lecture.STEPS[0].takeaway
    without, with_dropout = lecture.overfitting_pair(shipped_table)  # the demo pair step 1 opens with
    last = {run: runs.load_run(SHIPPED, run).epochs_frame().iloc[-1] for run in (without, with_dropout)}
    gap = {run: row["valid_ppl"] - row["train_ppl"] for run, row in last.items()}
    assert 0 < gap[with_dropout] < gap[without] and gap[with_dropout] > 100  # narrower, not closed


def test_step_three_picks_its_runs_by_configuration_from_the_shipped_store(shipped_table):
    pick = lecture_memory.memory_runs(shipped_table)
    rows = shipped_table.set_index("run").loc[list(pick.runs)]
    # one size, the step's placements first, then others, up to six lines
    assert pick.preset == "small" and set(rows["preset"]) == {"small"}
    assert list(rows["placement"]) == ["none", "zaremba", "recurrent", "variational", "both", "semeniuta"]
    # the preset's own settings (not main.lua's schedule, newer in the table) and the lowest seed
    assert (rows["variant"] == "").all() and (rows["seed"] == 0).all()
    assert "recurrent-cell: no small language-model run (its memory-task runs are in the recall chart below)." \
        in pick.left_out
    assert "moon, weight-drop, zoneout: 6 lines at most (the Gradients page draws any run)." \
        in pick.left_out


def test_step_three_prefers_the_own_settings_and_the_lowest_seed_over_the_newest_run():
    table = pd.DataFrame({
        "run": ["none-mainlua-s0", "zaremba-s1", "none-s1", "none-s0", "zaremba-s0", "medium-none", "medium-zaremba"],
        "preset": ["small"] * 5 + ["medium"] * 2,
        "placement": ["none", "zaremba", "none", "none", "zaremba", "none", "zaremba"],
        "variant": ["decay_after=5", "", "", "", "", "", ""], "seed": [0, 1, 1, 0, 0, 0, 0],
        "state": "finished", "problems": "", "read_only": True, "epochs_done": 13, "task": "lm",
    })  # newest first, as the run table lists them; small and medium tie on placements: the smaller first
    pick = lecture_memory.memory_runs(table)
    assert pick.preset == "small" and pick.runs == ("none-s0", "zaremba-s0")
    only_variant = table[table["run"] != "none-s0"][lambda t: t["run"] != "none-s1"]
    fallback = lecture_memory.memory_runs(only_variant)
    assert fallback.runs == ("none-mainlua-s0", "zaremba-s0")  # better than no line, and it says so
    assert fallback.other_settings == ("none: none-mainlua-s0 (main.lua's schedule), no run at the preset's own.",)
    assert pick.other_settings == ()
    assert lecture_memory.memory_runs(pd.DataFrame()) == lecture_memory.MemoryPick(None, (), ())


def test_step_three_says_why_zoneout_has_no_line_for_the_cell():
    # zoneout's h_t reads the cell before it is zoned out: the loss at t does not depend on the zoned c_t
    gtt = pd.DataFrame({"run": ["z"] * 3 + ["n"] * 3, "label": ["z"] * 3 + ["n"] * 3, "epoch": 13, "layer": 0,
                        "wrt": "c", "k": [0, 1, 2] * 2, "norm": [0.0, 2.0, 1.0, 4.0, 2.0, 1.0],
                        "nonzero": [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]})
    table = pd.DataFrame({"run": ["z", "n"], "placement": ["zoneout", "none"]})
    for measure in ("norm", "nonzero"):
        assert set(lecture_memory.memory_frame(gtt, table, measure=measure)["run"]) == {"n"}
        gaps = lecture_memory.memory_gaps(gtt, ["n", "z"], table, measure=measure)
        assert len(gaps) == 1 and gaps[0].startswith("zoneout: its gradient at k = 0 is 0 (zoneout computes h_t")
    assert lecture_memory.memory_gaps(gtt, ["n", "gone"], table.assign(run=["gone", "n"])) == [
        "zoneout: its run recorded no gradient-through-time probe."]
    assert lecture_memory.memory_gaps(gtt, ["n"], table, layer=1) == ["none: no probe of layer 2 (c) in its run."]


def test_a_profile_without_a_finite_k0_is_left_out_with_its_reason_not_shifted_a_step():
    gtt = pd.DataFrame({"run": ["v"] * 4 + ["n"] * 4, "label": ["v"] * 4 + ["n"] * 4, "epoch": 13, "layer": 0,
                        "wrt": "c", "k": [0, 1, 2, 3] * 2,
                        "norm": [math.nan, 0.5, 0.25, 0.125, 4.0, 2.0, 1.0, 0.5]})
    table = pd.DataFrame({"run": ["v", "n"], "placement": ["variational", "none"]})
    drawn = lecture_memory.memory_frame(gtt, table)
    assert set(drawn["run"]) == {"n"}  # before: k = 1's 0.5 taken as its k = 0, every point one step early
    assert lecture_memory.memory_gaps(gtt, ["n", "v"], table) == [
        "variational: its gradient at k = 0 is not a finite number (or was not recorded): nothing to read the "
        "steps back against."]


def test_the_survival_line_names_the_placements_whose_rate_it_draws():
    memory = pd.DataFrame({"run": ["a", "a", "b", "b", "c", "c"], "label": list("aabbcc"),
                           "placement": ["none", "none", "recurrent", "recurrent", "both", "both"], "epoch": 13,
                           "k": [0, 1] * 3, "value": [1.0, 0.5] * 3, "carried_p": [0, 0, 0.25, 0.25, 0.5, 0.5]})
    rates = lecture_memory.survival_rates(memory)
    assert rates == {0.25: ["recurrent"], 0.5: ["both"]}
    names = [t.name for t in lecture_plots.memory_figure(memory, rates=rates).data]
    assert names[:2] == ["(1-p)^k, p = 0.25 (recurrent)", "(1-p)^k, p = 0.5 (both)"]
    assert lecture_memory.survival_rates(memory[memory["placement"] == "none"]) == {}
    assert lecture_plots.memory_figure(memory, rates=[0.5]).data[0].name == "(1-p)^k, p = 0.5 (illustration)"


def test_step_three_takeaway_says_what_its_recall_chart_shows(shipped_table):
    recall = lecture_memory.recall_frame(shipped_table)
    recall = recall.pivot_table(index="placement", columns="delay", values="accuracy")
    step = lecture.STEPS[2]
    assert step.takeaway.count(". ") == 0  # one sentence, for the projector; the rest as its detail
    takeaway = f"{step.takeaway} {step.detail}"
    assert "on the cell c" in takeaway and "recall collapses as the gap grows" in takeaway
    assert recall.loc["recurrent-cell", 20] < 0.2  # a fresh mask on c every step
    assert "(zaremba) keep recall at every gap" in takeaway and recall.loc["zaremba"].min() > 0.99
    assert "A per-step mask on h alone is routed around through c" in takeaway and recall.loc["recurrent"].min() > 0.99
    # one mask per sequence collapses too, at 10 and 20, and the takeaway says why (presentation mode hides captions)
    assert "(variational)" in takeaway and "slow learning, not forgetting" in takeaway
    assert recall.loc["variational", 5] > 0.99 and recall.loc["variational", [10, 20]].max() < 0.3


@pytest.mark.parametrize("placement", PLACEMENT_NAMES)
def test_step_two_takeaway_follows_the_placement(placement):
    takeaway = lecture.masks_takeaway(placement)
    assert takeaway and takeaway.endswith(".")
    if placement == "zaremba":
        assert takeaway == lecture.STEPS[1].takeaway
    else:
        assert takeaway != lecture.STEPS[1].takeaway and (placement == "none" or f"**{placement}**" in takeaway)
    says = {"recurrent-cell": "(1-p)^k", "recurrent": "fresh mask on h", "variational": "whole sequence",
            "moon": "whole sequence", "semeniuta": "never erased", "zoneout": "previous value",
            "weight-drop": "W_hh", "none": "nothing is masked", "both": "besides the vertical connections",
            "variational-untied": "whole sequence", "zaremba": "non-recurrent"}
    assert says[placement] in takeaway  # every placement has its words: a new one must add them here


def test_the_schematic_legend_explains_its_dotted_optional_sites():
    moon = {t.name for t in lecture_plots.schematic_figure(lecture.schematic("moon"), "moon").data
            if t.showlegend is not False and t.name}
    assert "dotted: optional site, rate 0 unless set" in moon
    zaremba = {t.name for t in lecture_plots.schematic_figure(lecture.schematic("zaremba"), "zaremba").data}
    assert not any(name and name.startswith("dotted") for name in zaremba)


def test_recall_lines_that_coincide_at_100_percent_each_keep_a_visible_marker(shipped_table):
    fig = lecture_plots.recall_figure(lecture_memory.recall_frame(shipped_table), chance=lecture_memory.MEMORY_CHANCE)
    on_top = [t for t in fig.data if min(t.y) == 100.0]  # none, zaremba at T = 2 and 5, recurrent: one point
    assert {t.name for t in on_top} >= {"none", "recurrent 0.25"}
    shapes = [(t.marker.symbol, t.marker.size) for t in fig.data]
    assert len(set(s for s, _size in shapes)) == len(shapes)  # a shape each
    sizes = [size for _symbol, size in shapes]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)  # drawn later, smaller: nested
    assert all(t.marker.symbol.endswith("open") or "-open" in t.marker.symbol for t in fig.data)  # outlines


def test_the_evidence_rows_say_their_dropout_rate():
    table = pd.DataFrame({
        "run": list("abcd"), "preset": ["small", "medium", "medium", "small"],
        "placement": ["recurrent", "recurrent", "zaremba", "none"], "state": "finished", "problems": "",
        "read_only": True, "best_valid_ppl": 100.0, "test_ppl": 95.0, "dropout": [0.5, 0.25, 0.3, 0.0],
        "rate hidden": [0.5, 0.25, None, None], "rate input": [None, None, 0.3, None],
        "rate output": [None, None, 0.3, None],
    })
    evidence = lecture_evidence.evidence_frame(table)
    assert dict(zip(evidence["category"], evidence["rate"])) == {
        "small · recurrent": "0.5", "medium · recurrent": "0.25", "medium · zaremba": "0.3", "small · none": ""}
    axis = lecture_plots.evidence_figure(evidence).layout.yaxis
    rows = {row: tick.replace("<br>", " ") for row, tick in zip(axis.tickvals, axis.ticktext)}
    assert rows["small · recurrent"] == "small · recurrent 0.5"
    assert rows["medium · recurrent"] == "medium · recurrent 0.25"
    assert rows["medium · zaremba"] == "medium · zaremba 0.3 (paper: 0.5)"  # the paper's marker on this row is 0.5's
    assert rows["large · zaremba"] == "large · zaremba 0.65"  # a published row alone: the paper's rate
    assert rows["small · none"] == "small · none" and rows["medium · variational"] == "medium · variational"
    # the bars keep the category as their y: published markers land on the same rows
    assert "small · recurrent" in next(t for t in lecture_plots.evidence_figure(evidence).data if t.type == "bar").y
    # the rate goes after the placement, before what else sets a configuration apart
    clipped = table.iloc[[2]].assign(run="e", variant="clip=2.5")
    variants = lecture_evidence.evidence_frame(pd.concat([table, clipped], ignore_index=True))
    labels = lecture_evidence.evidence_row_labels(variants)
    assert labels["medium · zaremba (clip=2.5)"] == "medium · zaremba 0.3 (clip=2.5)"


def test_the_evidence_chart_keeps_its_legend_under_the_plot_and_a_title_a_projector_can_show(shipped_table):
    evidence, _left_out = lecture_evidence.at_paper_sizes(lecture_evidence.evidence_frame(shipped_table))
    font = lecture_plots.PRESENTATION_FONT
    fig = lecture_plots.evidence_figure(evidence, font_size=font)
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container"
    assert len(fig.layout.title.text) <= 45  # about one line of projector type at 1024 pixels
    entries = [t for t in fig.data if t.showlegend is not False]
    # beside row labels as long as "small · none (main.lua's schedule)", one entry a row: room for all below
    assert len(entries) == 7 and fig.layout.margin.b >= 80 + 7 * (lecture_plots.legend_font(font) + 12)
    rows = len(fig.layout.yaxis.tickvals)
    assert fig.layout.height >= 160 + 3 * font * rows + 7 * (lecture_plots.legend_font(font) + 12)


def test_presentation_mode_enlarges_the_selectbox_value_too(tmp_path, monkeypatch):
    at = open_lecture(tmp_path, monkeypatch)
    at.toggle(key="lecture_present").set_value(True).run()
    css = next(m.value for m in at.markdown if "stSidebar" in m.value)
    # Streamlit 1.67's selectbox is a combobox input, no longer a baseweb select
    assert re.search(r'\[data-testid="stSelectbox"\] input\s*\{font-size: 1.6rem', css)
