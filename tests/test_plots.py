"""Unit tests of rnnreg.plots: pure DataFrame -> Figure functions (no Streamlit, no torch)."""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys
from collections import Counter

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from rnnreg import plots
from rnnreg.plots import layout as plot_layout


def epochs_frame() -> pd.DataFrame:
    rows = []
    for run, label, valid in (("a", "no dropout", [300, 200, 190, 220]), ("b", "zaremba", [350, 260, 200, 170])):
        for e, v in enumerate(valid, start=1):
            rows.append({"run": run, "label": label, "epoch": e, "train_ppl": v * 0.7 - 10 * e, "valid_ppl": v,
                         "words": e * 1000, "wall_s": e * 10.0, "clipped_fraction": 0.1 * e})
    return pd.DataFrame(rows)


def steps_frame() -> pd.DataFrame:
    rows = []
    for run in ("a", "b"):
        for s in range(1, 21):
            rows.append({"run": run, "label": run.upper(), "step": s, "loss": 6 - s * 0.1 + (s % 3) * 0.2,
                         "grad_norm": 2 + (s % 5), "clipped": (2 + s % 5) > 5})
    return pd.DataFrame(rows)


def gates_frame() -> pd.DataFrame:
    rows = []
    for run in ("a", "b"):
        for epoch in (0, 1, 2):
            for gate in plots.GATES:
                rows.append({"run": run, "label": run.upper(), "epoch": epoch, "layer": 0, "gate": gate,
                             "bin_edges": [0.0, 0.25, 0.5, 0.75, 1.0], "counts": [1, 2, 3, 4 + epoch],
                             "saturation": 0.1 * epoch, "mean": 0.5})
    return pd.DataFrame(rows)


COLORS = {"a": "#111111", "b": "#222222"}


def traces(fig: go.Figure, name_part: str) -> list:
    return [t for t in fig.data if name_part in (t.name or "")]


def test_assign_colors_keeps_existing_and_never_repeats():
    first = plots.assign_colors(["a", "b"])
    assert first["a"] != first["b"]
    second = plots.assign_colors(["b", "c"], first)
    assert second["b"] == first["b"]  # unpicking a does not recolour b
    assert second["c"] != second["b"]
    many = plots.assign_colors([f"r{i}" for i in range(len(plots.PALETTE))])
    assert len(set(many.values())) == len(plots.PALETTE)
    twice = plots.assign_colors([f"r{i}" for i in range(2 * len(plots.PALETTE))])  # past the palette: spread evenly
    assert set(Counter(twice.values()).values()) == {2}


def test_runs_that_share_a_colour_get_other_marker_shapes_in_the_order_they_got_the_colour():
    colors = plots.assign_colors([f"r{i}" for i in range(len(plots.PALETTE) + 2)])  # r16, r17 share r0's, r1's
    symbols = plots.marker_symbols(colors, ["r17", "r1", "r16", "r0", "r5"])  # the figure's order does not matter
    assert symbols == {"r0": "circle", "r1": "circle", "r5": "circle", "r16": "square", "r17": "square"}
    assert plots.marker_symbols(colors, ["r17", "r16"]) == {"r16": "circle", "r17": "circle"}  # alone in a figure
    frame = pd.concat([epochs_frame().assign(run=run, label=run) for run in colors])
    fig = plots.perplexity_figure(frame, colors)
    looks = {(t.line.color, t.line.dash, t.marker.symbol) for t in fig.data}
    assert len(looks) == len(fig.data) == 2 * len(colors)  # no two lines alike


def test_perplexity_figure_train_dashed_valid_solid_in_run_colour():
    fig = plots.perplexity_figure(epochs_frame(), COLORS)
    train = traces(fig, "no dropout · train")[0]
    valid = traces(fig, "no dropout · valid")[0]
    assert train.line.dash == "dash" and valid.line.dash == "solid"
    assert train.line.color == valid.line.color == "#111111"
    assert list(valid.y) == [300, 200, 190, 220]


@pytest.mark.parametrize("x, expected", [("epoch", [1, 2, 3, 4]), ("words", [1000, 2000, 3000, 4000]),
                                         ("wall_s", [10.0, 20.0, 30.0, 40.0])])
def test_perplexity_figure_x_axis_choice(x, expected):
    fig = plots.perplexity_figure(epochs_frame(), COLORS, x=x)
    assert list(fig.data[0].x) == expected
    assert fig.layout.xaxis.title.text == plots.X_AXES[x]


def test_perplexity_figure_log_y_and_paper_reference_lines():
    fig = plots.perplexity_figure(epochs_frame(), COLORS, log_y=True, reference_presets=["small", "demo"])
    assert fig.layout.yaxis.type == "log"
    lines = {t.name: list(t.y) for t in traces(fig, "paper")}
    assert lines == {"paper small valid 120.7": [120.7, 120.7], "paper small test 114.5": [114.5, 114.5]}
    assert list(traces(fig, "paper small valid")[0].x) == [1, 4]  # across the data, not off the log axis
    # labelled right of the plot, where no curve runs (on a log axis an annotation's y is log10)
    labels = {a.text: a for a in fig.layout.annotations}
    # "paper" once, as the labels' heading: at 1024 px each label's characters are taken from the plot
    assert set(labels) == {"small valid 120.7", "small test 114.5", "paper, Table 1"}
    heading = labels.pop("paper, Table 1")
    assert (heading.xref, heading.x, heading.yref, heading.y, heading.showarrow) == ("paper", 1, "paper", 1, False)
    assert labels["small valid 120.7"].xref == "paper" and labels["small valid 120.7"].x == 1
    assert labels["small valid 120.7"].y == pytest.approx(math.log10(120.7))
    assert -labels["small valid 120.7"].ay > 0 > -labels["small test 114.5"].ay  # pixels up
    assert labels["small valid 120.7"].showarrow and labels["small valid 120.7"].ax == heading.xshift  # aligned
    assert 8 * len("small valid 120.7") <= fig.layout.margin.r < 8 * len("paper small valid 120.7") + 40
    assert traces(fig, "paper small valid")[0].line.dash != traces(fig, "paper small test")[0].line.dash
    linear = plots.perplexity_figure(epochs_frame(), COLORS, reference_presets=["small"])
    assert {a.y for a in linear.layout.annotations if a.yref == "y"} == {120.7, 114.5}
    assert not plots.perplexity_figure(epochs_frame(), COLORS).layout.annotations


def test_spread_apart_moves_crowded_positions_apart_as_little_as_needed_and_keeps_their_order():
    assert plots.spread_apart([0, 100, 50], gap=16) == [0, 100, 50]  # far enough apart: untouched
    assert plots.spread_apart([10, 12], gap=16) == [3, 19]  # around their mean
    placed = plots.spread_apart([40, 30, 31, 29, 200], gap=16)
    assert placed[4] == 200 and sorted(placed[:4]) == [placed[3], placed[1], placed[2], placed[0]]
    ordered = sorted(placed)
    assert all(b - a >= 16 - 1e-9 for a, b in zip(ordered, ordered[1:]))
    assert sum(placed[:4]) / 4 == pytest.approx((40 + 30 + 31 + 29) / 4)  # the crowd stays where it was
    # a crowd that grows into its neighbour takes it in
    assert plots.spread_apart([0, 1, 2, 30], gap=16) == pytest.approx([-15.75, 0.25, 16.25, 32.25])


def test_table_1s_six_paper_lines_get_labels_that_do_not_overlap():
    """medium valid 86.2, large valid 82.2 and medium test 82.7 lie a few pixels apart on a log axis."""
    fig = plots.perplexity_figure(epochs_frame(), COLORS, log_y=True, reference_presets=["small", "medium", "large"])
    labels = [a for a in fig.layout.annotations if a.yref == "y"]  # the heading aside
    assert len(labels) == 6
    ys = [a.y for a in labels]
    low, high = fig.layout.yaxis.range  # set (log10 units), so that each label's pixel is known
    every_y = [v for trace in fig.data for v in trace.y]
    assert low < math.log10(min(every_y)) and high > math.log10(max(every_y))  # every point shows
    px = plots.PERPLEXITY_PLOT_PX / (high - low)
    at = sorted((y - low) * px - a.ay for y, a in zip(ys, labels))  # ay: pixels down from the line's end
    assert all(b - a >= plots.FONT_SIZE + 2 - 1e-6 for a, b in zip(at, at[1:])), at
    by_text = {a.text: a for a in labels}  # far from the rest, a label keeps its own side of its line
    assert -by_text["small valid 120.7"].ay > 0 > -by_text["small test 114.5"].ay


def test_the_perplexity_legend_sits_below_the_plot_clear_of_the_title():
    fig = plots.perplexity_figure(epochs_frame(), COLORS, reference_presets=["small"])
    assert fig.layout.legend.yanchor == "top" and fig.layout.legend.y < 0
    assert fig.layout.height == plots.PERPLEXITY_PLOT_PX + fig.layout.margin.t + fig.layout.margin.b


def test_perplexity_figure_rejects_unknown_axis_and_handles_empty():
    with pytest.raises(ValueError, match="x axis"):
        plots.perplexity_figure(epochs_frame(), COLORS, x="parsecs")
    empty = plots.perplexity_figure(pd.DataFrame(), COLORS)
    assert not empty.data and "No finished epoch" in empty.layout.annotations[0].text


def test_the_perplexity_chart_says_what_its_train_curve_is():
    # an epoch's average as it trained, not the final weights' fit (README: medium none, 6.05 vs 11.96)
    fig = plots.perplexity_figure(epochs_frame(), COLORS)
    assert "train: the epoch's average, dropout on" in fig.layout.title.text


def test_gap_is_valid_minus_train():
    df = epochs_frame()
    fig = plots.gap_figure(df, COLORS)
    a = df[df.run == "a"]
    assert list(fig.data[0].y) == pytest.approx(list(a.valid_ppl - a.train_ppl))
    assert "train: the epoch's average, dropout on" in fig.layout.title.text


def test_the_gap_chart_scales_to_the_epochs_after_the_first():
    # epoch 1's train perplexity averages a model still learning: a gap of -300 would squeeze the rest
    df = pd.DataFrame({"run": "a", "label": "a", "epoch": [1, 2, 3, 4], "train_ppl": [700.0, 150.0, 120.0, 100.0],
                       "valid_ppl": [400.0, 160.0, 140.0, 150.0]})
    fig = plots.gap_figure(df, COLORS)
    assert list(fig.layout.yaxis.range) == pytest.approx([-4.0, 54.0])  # 0..50, padded by 10% of that span
    assert "epoch 1 (still learning) off the scale" in fig.layout.title.text
    df.loc[0, "valid_ppl"] = 720.0  # epoch 1 within the later gaps' range: Plotly's own range
    fig = plots.gap_figure(df, COLORS)
    assert fig.layout.yaxis.range is None and "off the scale" not in fig.layout.title.text


def test_smooth_is_debiased_ema():
    s = pd.Series([1.0, 1.0, 1.0])
    assert list(plots.smooth(s, 0.9)) == pytest.approx([1.0, 1.0, 1.0])
    assert list(plots.smooth(pd.Series([0.0, 10.0]), 0.5)) == pytest.approx([0.0, 10 * 0.5 / 0.75])
    with pytest.raises(ValueError):
        plots.smooth(s, 1.0)


def test_loss_figure_raw_always_visible():
    raw_only = plots.loss_figure(steps_frame(), COLORS, smoothing=0.0)
    assert len(raw_only.data) == 2
    smoothed = plots.loss_figure(steps_frame(), COLORS, smoothing=0.8)
    assert len(smoothed.data) == 4
    raw = traces(smoothed, "raw")
    assert len(raw) == 2 and all(t.visible in (None, True) for t in raw)


def test_loss_figure_leaves_an_untrained_models_first_steps_off_its_scale():
    # the large preset's first logged loss is 15 nats, the rest 4-6: the curves kept the bottom third
    rows = [{"run": "a", "label": "A", "step": s, "loss": 15.0 if s == 1 else 4 + (s % 7) / 6} for s in range(1, 501)]
    fig = plots.loss_figure(pd.DataFrame(rows), COLORS, smoothing=0.6)
    low, high = fig.layout.yaxis.range
    assert 3.5 < low < 4 and 5 < high < 5.5 and "(up to 15.0, a model's first steps) off" in fig.layout.title.text
    assert max(traces(fig, "raw")[0].y) == 15.0  # still drawn, and in the hover: only the scale leaves it out
    # a short run beside it (too few steps to have outliers of its own) stays in view, all of it
    short = [{"run": "b", "label": "B", "step": s, "loss": 5.8 + (s % 3) / 30} for s in range(1, 41)]
    low, high = plots.loss_figure(pd.DataFrame(rows + short), COLORS, smoothing=0.6).layout.yaxis.range
    assert low < 4 and high > max(r["loss"] for r in short)
    # no such outlier, or too few steps to tell one: the scale holds every loss
    for steps in (steps_frame(), pd.DataFrame(rows[:60])):
        plain = plots.loss_figure(steps, COLORS, smoothing=0.6)
        assert plain.layout.yaxis.range is None and "off the scale" not in plain.layout.title.text


def test_grad_norm_figure_draws_each_clip_threshold_once():
    fig = plots.grad_norm_figure(steps_frame(), COLORS, {"a": 5.0, "b": 5.0})
    assert [t.y[0] for t in traces(fig, "clip")] == [5.0]
    fig = plots.grad_norm_figure(steps_frame(), COLORS, {"a": 5.0, "b": 10.0, "c": None})
    assert [t.y[0] for t in traces(fig, "clip")] == [5.0, 10.0]
    assert fig.layout.yaxis.type == "log"


def test_layer_grad_figure_one_panel_per_layer():
    df = pd.DataFrame([{"run": "a", "label": "A", "step": s, "layer": n, "norm": 1.0 + s}
                       for s in range(5) for n in ("embedding", "lstm.0", "lstm.1", "decoder")])
    fig = plots.layer_grad_figure(df, COLORS)
    assert len(fig.data) == 4
    assert [a.text for a in fig.layout.annotations][:4] == ["embedding", "LSTM layer 1", "LSTM layer 2", "decoder"]


def test_clipped_fraction_bars():
    fig = plots.clipped_fraction_figure(epochs_frame(), COLORS)
    assert {t.type for t in fig.data} == {"bar"} and len(fig.data) == 2


def test_gate_histograms_side_by_side_and_normalised():
    fig = plots.gate_histogram_figure(gates_frame(), COLORS, layer=0, epoch=1)
    assert len(fig.data) == 2 * len(plots.GATES)  # one bar trace per (run, gate)
    assert sum(fig.data[0].y) == pytest.approx(1.0)
    missing = plots.gate_histogram_figure(gates_frame(), COLORS, layer=3, epoch=1)
    assert not missing.data
    partial = gates_frame()
    partial = partial[(partial.run == "a") | (partial.epoch < 2)]  # b is still running: no epoch 2 yet
    fig = plots.gate_histogram_figure(partial, COLORS, layer=0, epoch=2, states={"b": "running"})
    assert len(fig.data) == len(plots.GATES)
    assert "no epoch 2 yet" in [a.text for a in fig.layout.annotations]


@pytest.mark.parametrize("rows, cols, kwargs", [
    (6, 2, {"shared_x": "rows", "v_spacing": 0.06, "h_spacing": 0.04,
            "column_titles": ["run a", "run b"], "row_titles": [plots.GATE_NAMES[g] for g in plots.GATES]}),
    (1, 3, {"shared_x": "rows", "v_spacing": 0.06, "h_spacing": 0.04, "column_titles": ["a", "", "c"],
            "row_titles": ["only gate"]}),
    (2, 2, {"shared_x": True, "shared_y": True, "v_spacing": 0.14, "subplot_titles": ["i", "f", "o"]}),
    (2, 2, {"shared_x": True, "v_spacing": 0.12, "subplot_titles": ["embedding", "lstm.0", "lstm.1", "decoder"]}),
    (1, 1, {"shared_x": True, "v_spacing": 0.0, "subplot_titles": ["decoder"]}),
    (3, 2, {"shared_y": "columns"}),
])
def test_grid_lays_out_panels_as_make_subplots_does(rows, cols, kwargs):
    from plotly.subplots import make_subplots  # the trusted oracle

    names = {"shared_x": "shared_xaxes", "shared_y": "shared_yaxes", "h_spacing": "horizontal_spacing",
             "v_spacing": "vertical_spacing"}
    oracle = make_subplots(rows=rows, cols=cols, **{names.get(k, k): v for k, v in kwargs.items()})
    ours = go.Figure(layout=plot_layout.Grid(rows, cols, **kwargs).layout)
    for fig in (oracle, ours):
        fig.layout.template = None
    assert ours.layout.to_plotly_json() == oracle.layout.to_plotly_json()


def test_gate_histogram_puts_each_run_and_gate_in_its_panel():
    fig = plots.gate_histogram_figure(gates_frame(), COLORS, layer=0, epoch=2)
    cols = 2  # runs a, b
    for trace in fig.data:
        run = "a" if trace.marker.color == COLORS["a"] else "b"
        gate = trace.hovertemplate.split(" ")[1].split(":")[0]
        n = plots.GATES.index(gate) * cols + (1 if run == "a" else 2)
        assert (trace.xaxis, trace.yaxis) == (("x", "y") if n == 1 else (f"x{n}", f"y{n}"))
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:2] == ["A", "B"] and texts[2:8] == [plots.GATE_NAMES[g] for g in plots.GATES]
    assert texts.count("saturated 20%") == 2 * len(plots.GATES)
    assert {a.font.size for a in fig.layout.annotations} == {plots.FONT_SIZE - 2}
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis12.tickformat == ".0%"


def test_layer_and_saturation_grids_title_the_bottom_row_only():
    layers = pd.DataFrame([{"run": r, "label": r.upper(), "step": s, "layer": n, "norm": 1.0 + s}
                           for r in ("a", "b") for s in range(5) for n in ("embedding", "lstm.0", "decoder")])
    fig = plots.layer_grad_figure(layers, COLORS)
    assert [t.xaxis for t in fig.data] == ["x", "x", "x2", "x2", "x3", "x3"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False, False, False]
    assert (fig.layout.xaxis3.title.text, fig.layout.xaxis4.title.text, fig.layout.xaxis.title.text) == \
        ("step", "step", None)
    assert fig.layout.yaxis4.type == "log"
    sat = plots.saturation_figure(gates_frame(), COLORS, layer=0)
    assert sat.layout.xaxis3.title.text.startswith("epoch") and sat.layout.yaxis2.matches == "y"
    assert list(sat.data[0].y) == [0.0, 0.1, 0.2]


def test_traces_follow_the_pick_order():
    df = epochs_frame()
    df = pd.concat([df[df.run == "b"], df[df.run == "a"]])
    fig = plots.perplexity_figure(df, COLORS)
    assert fig.data[0].name.startswith("zaremba")


def test_saturation_and_heatmap():
    sat = plots.saturation_figure(gates_frame(), COLORS, layer=0)
    assert len(sat.data) == 2 * 4
    heat = plots.gate_heatmap_figure(gates_frame(), run="a", layer=0, gate="f")
    assert heat.data[0].type == "heatmap"
    assert list(heat.data[0].x) == [0, 1, 2]
    assert len(heat.data[0].z) == 4  # one row per bin
    assert heat.data[0].zmax == pytest.approx(6 / 12)  # the trained epochs' largest share (epoch 2's last bin)
    at_init = gates_frame()
    at_init.loc[at_init["epoch"] == 0, "counts"] = pd.Series([[0, 0, 0, 90]] * (at_init["epoch"] == 0).sum()).values
    assert plots.gate_heatmap_figure(at_init, run="a", layer=0, gate="f").data[0].zmax == pytest.approx(0.5)


def test_parallel_coordinates_placement_is_a_category():
    runs = pd.DataFrame({"run": ["a", "b", "c"], "placement": ["none", "zaremba", "zaremba"],
                         "dropout": [0.0, 0.5, 0.3], "best_valid_ppl": [190.0, 150.0, None]})
    runs["epochs_done"] = [3, 8, 1]
    fig = plots.parallel_coordinates_figure(runs, ["placement", "dropout", "epochs_done"])
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == ["placement", "dropout", "epochs done", "best valid ppl"]  # words, not columns
    assert list(dims[0].ticktext) == ["none", "zaremba"]
    assert len(dims[3].values) == 2  # the run without a valid perplexity is left out
    runs["clip"], runs["seed"] = 5.0, [0, 0, 1]  # the same for both runs with a valid perplexity
    fig = plots.parallel_coordinates_figure(runs, ["placement", "clip", "seed", "dropout"])
    assert [d.label for d in fig.data[0].dimensions] == ["placement", "dropout", "best valid ppl"]
    assert fig.layout.title.text.endswith("<sup>the same for every run: clip 5, seed 0</sup>")
    # the axis labels sit above the plot: the subtitle's line gets room of its own (it ran into them, seen
    # in Chromium), a figure without one keeps its margin
    plain = plots.parallel_coordinates_figure(runs, ["placement", "dropout"])
    assert "<sup>" not in plain.layout.title.text and fig.layout.margin.t >= plain.layout.margin.t + 20


def test_config_diff_lists_only_differences():
    a = {"preset": "demo", "dropout": {"placement": "none", "rates": {}}, "train": {"seed": 0}}
    b = {"preset": "demo", "dropout": {"placement": "zaremba", "rates": {"input": 0.5}}, "train": {"seed": 0}}
    diff = plots.config_diff(a, b, names=("x", "y"))
    # no "dropout.rates: {} vs —" row: the rates the other run has are listed one by one
    assert list(diff["setting"]) == ["dropout.placement", "dropout.rates.input"]
    assert diff.set_index("setting").loc["dropout.rates.input", "x"] == "—"
    both_empty = plots.config_diff({"rates": {}, "seed": 0}, {"rates": {}, "seed": 1})
    assert list(both_empty["setting"]) == ["seed"]
    one_sided = plots.config_diff({"extra": {}}, {})  # nothing on the other side spells it out
    assert one_sided.iloc[0].tolist() == ["extra", "{}", "—"]


def test_results_tables():
    runs = pd.DataFrame([{"label": "a_b", "preset": "demo", "placement": "none", "rates": "",
                          "epochs_done": 8, "best_valid_ppl": 181.234, "last_valid_ppl": 190.0, "test_ppl": None}])
    md = plots.results_markdown(runs)
    assert "| best valid | final valid | test |" in md  # the best epoch's, and the final model's the test is of
    assert "| a_b | demo | none |  | 8 | 181.23 | 190.00 | — |" in md  # two decimals, as the README's tables
    tex = plots.results_latex(runs)
    assert r"a\_b" in tex and r"\toprule" in tex and "181.23" in tex
    assert "other settings" not in md + tex  # only where some run has settings other than its preset's
    varied = pd.concat([runs.assign(variant=""), runs.assign(label="c", variant="decay_after=7")], ignore_index=True)
    md = plots.results_markdown(varied)
    assert "| dropout | other settings | epochs |" in md and "|---|---|---|---|---|---:|---:|---:|---:|" in md
    assert "| a_b | demo | none |  | — | 8 |" in md and "| c | demo | none |  | decay_after=7 | 8 |" in md
    tex = plots.results_latex(varied)
    assert r"\begin{tabular}{lllllrrrr}" in tex and r"decay\_after=7" in tex
    broken = runs.assign(label="two\nlines\r\x1b[31m")  # a name from a hand-edited config.json
    for render in (plots.results_markdown, plots.results_latex):  # one line a run, as for any other name
        assert len(render(broken).splitlines()) == len(render(runs).splitlines())
        assert "two lines [31m" in render(broken)
    piped = plots.results_markdown(runs.assign(label=r"a\|b|c"))  # the name's own backslash, then two pipes
    row = piped.splitlines()[2]
    assert row.startswith(r"| a\\\|b\|c | demo |"), row
    plain_row = plots.results_markdown(runs).splitlines()[2]
    assert len(re.findall(r"(?<!\\)\|", row)) == len(re.findall(r"(?<!\\)\|", plain_row))
    # a test with dropout on and a memory run's recall, as the Runs page shows them, where some run has one
    more = pd.concat([runs.assign(mc_test_ppl=101.5, mc_samples=20, mc_protocol="window", test_accuracy=float("nan")),
                      runs.assign(label="m", mc_test_ppl=float("nan"), mc_samples=float("nan"), test_accuracy=0.094)],
                     ignore_index=True)
    md = plots.results_markdown(more)
    assert "| test | MC test | test recall |" in md and "|---|---|---|---|---:|---:|---:|---:|---:|---:|" in md
    assert "| 190.00 | — | 101.50 (N=20, masks per window) | — |" in md  # as the Runs page says it
    assert "| m | demo | none |  | 8 | 181.23 | 190.00 | — | — | 9.4% |" in md
    assert r"\begin{tabular}{llllrrrrrr}" in plots.results_latex(more) and r"9.4\%" in plots.results_latex(more)


def test_figure_html_is_standalone():
    html = plots.figure_html(plots.perplexity_figure(epochs_frame(), COLORS))
    assert "<html>" in html[:100] and "plotly" in html.lower()


def test_plots_imports_neither_streamlit_nor_torch():
    code = "import sys, rnnreg.plots; print('streamlit' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_log_axes_label_whole_numbers_not_leading_digits():
    # Plotly's own labels between decades print "2" for 200: on a projector that reads as 2
    epochs = pd.DataFrame({"run": "a", "label": "a", "epoch": [1, 2, 3], "train_ppl": [900.0, 150.0, 45.0],
                           "valid_ppl": [700.0, 160.0, 130.0]})
    axis = plots.perplexity_figure(epochs, COLORS, log_y=True, reference_presets=["small"]).layout.yaxis
    assert axis.type == "log" and axis.tickmode == "array"
    assert list(axis.ticktext) == [f"{v:g}" for v in axis.tickvals]
    assert {"50", "100", "200", "500"} <= set(axis.ticktext)
    assert min(axis.tickvals) <= 45.0 * 1.5 and max(axis.tickvals) >= 900.0 / 1.5  # the data's range
    layers = pd.DataFrame([{"run": "a", "label": "a", "step": s, "layer": n, "norm": scale * (1 + s)}
                           for s in range(5) for n, scale in (("embedding", 0.01), ("decoder", 10.0))])
    fig = plots.layer_grad_figure(layers, COLORS)
    small, large = fig.layout.yaxis.tickvals, fig.layout.yaxis2.tickvals  # each panel its own range
    assert max(small) < 0.2 and min(large) >= 5
    assert plots.log_ticks(0.0, 10.0) == []  # no log axis through zero
    # a plateau spanning less than a decade still gets several labels, evenly spaced round numbers
    assert plots.log_ticks(80.0, 95.0) == [80.0, 85.0, 90.0, 95.0]
    assert plots.log_ticks(140.0, 330.0) == [100.0, 150.0, 200.0, 250.0, 300.0, 350.0]
    # a small panel spanning 2.3 decades: powers of ten only, not eight crowded labels
    assert plots.log_ticks(0.05, 10.0, max_ticks=5) == [0.1, 1.0, 10.0]
    assert len(plots.log_ticks(0.05, 10.0)) == 8


def _dashboard_figures() -> dict[str, go.Figure]:
    epochs, steps, gates = epochs_frame(), steps_frame(), gates_frame()
    return {
        "perplexity": plots.perplexity_figure(epochs, COLORS, reference_presets=["small"]),
        "gap": plots.gap_figure(epochs, COLORS),
        "loss": plots.loss_figure(steps, COLORS, smoothing=0.6),
        "grad_norm": plots.grad_norm_figure(steps, COLORS, {"a": 5.0, "b": 10.0}),
        "clipped": plots.clipped_fraction_figure(epochs, COLORS),
        "gate_histograms": plots.gate_histogram_figure(gates, COLORS, layer=0, epoch=2),
        "saturation": plots.saturation_figure(gates, COLORS, layer=0),
        "heatmap": plots.gate_heatmap_figure(gates, run="a", layer=0, gate="f"),
        "empty": plots.empty_figure("Nothing", "No runs"),
    }


def _wire_json(fig: go.Figure) -> dict:
    return json.loads(pio.to_json(fig.to_dict(), validate=False))  # what st.plotly_chart sends to the browser


def test_the_suite_validates_figures_the_dashboard_skips_that_and_sends_the_same_json(monkeypatch):
    bogus = [{"type": "scatter", "y": [1, 2], "colour": "red"}]
    with pytest.raises(ValueError, match="colour"):  # the suite (conftest) checks every property name
        plot_layout.build_figure(bogus, {})
    validated = {name: _wire_json(fig) for name, fig in _dashboard_figures().items()}

    monkeypatch.delenv(plots.VALIDATE_ENV)  # as in the dashboard
    plot_layout.build_figure(bogus, {})  # not checked: that is the time saved
    assert {name: _wire_json(fig) for name, fig in _dashboard_figures().items()} == validated


def test_epoch_axes_tick_whole_epochs_never_halves():
    few = epochs_frame()  # 4 epochs: Plotly's own ticks would be 1, 1.5, 2, ...
    for fig in (plots.perplexity_figure(few, COLORS), plots.gap_figure(few, COLORS),
                plots.clipped_fraction_figure(few, COLORS)):
        assert (fig.layout.xaxis.tickmode, fig.layout.xaxis.dtick) == ("linear", 1)
    gates = gates_frame()
    assert plots.gate_heatmap_figure(gates, run="a", layer=0, gate="f").layout.xaxis.dtick == 1
    assert all(fig_axis.dtick == 1 for fig_axis in plots.saturation_figure(gates, COLORS, layer=0).select_xaxes())
    assert plots.perplexity_figure(few, COLORS, x="words").layout.xaxis.dtick is None  # words are not epochs
    long = pd.DataFrame({"run": "a", "label": "a", "epoch": range(1, 40), "train_ppl": 100.0, "valid_ppl": 120.0})
    assert plots.perplexity_figure(long, COLORS).layout.xaxis.dtick is None  # 39 epochs: Plotly's own 5, 10, ...


def test_a_legend_above_the_plot_moves_below_it_in_a_margin_grown_for_its_rows():
    # above the plot, a legend that wraps grows into the title (the gap chart's, under its subtitle)
    many = epochs_frame().assign(label=lambda df: df["run"] + "-a-long-run-name-seed-0")
    fig = plots.gap_figure(many, COLORS)
    before_b, names = fig.layout.margin.b, [t.name for t in fig.data]
    plots.legend_below(fig)
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0  # the figure's bottom edge
    grown = 30 * math.ceil(sum(9 * len(n) + 50 for n in names) / 600)
    assert fig.layout.margin.b == before_b + grown and fig.layout.height == 450 + grown  # the plot keeps its size
    assert plots.legend_below(fig).layout.margin.b == before_b + grown  # once only
    own = plots.perplexity_figure(epochs_frame(), COLORS)  # placed its legend itself
    placed = (own.layout.legend.to_plotly_json(), own.layout.margin.b)
    assert (plots.legend_below(own).layout.legend.to_plotly_json(), own.layout.margin.b) == placed
    single = plots.gap_figure(epochs_frame()[lambda df: df.run == "a"], COLORS)  # one trace: no legend drawn
    assert plots.legend_below(single).layout.legend.yref is None
    runs = pd.DataFrame({"placement": ["none", "zaremba"], "best_valid_ppl": [120.0, 110.0]})
    coords = plots.parallel_coordinates_figure(runs, ["placement"])  # a Parcoords trace has no `showlegend`
    assert plots.legend_below(coords).layout.legend.yref is None


def test_a_run_name_is_shown_as_typed_never_as_plotly_markup():
    # Plotly reads <a href>, <b> and <br> in trace names and hover text: a copied-in run named so
    # put a link in the legend.  Escaped, Plotly shows the characters themselves.
    named = epochs_frame().assign(label=lambda df: df["label"].where(df["run"] != "a", "<a href='http://e'>x</a>"))
    for fig in (plots.perplexity_figure(named, COLORS), plots.gap_figure(named, COLORS)):
        shown = " ".join(f"{t.name} {t.hovertemplate}" for t in fig.data)
        assert "&lt;a href='http://e'&gt;x&lt;/a&gt;" in shown and "<a href" not in shown, shown
    # hover templates read %{y} as the point's value: a name "50%{y}" would show "50152.2"
    percent = epochs_frame().assign(label=lambda df: df["label"].where(df["run"] != "a", "lr 50%{y}"))
    for fig in (plots.perplexity_figure(percent, COLORS), plots.gap_figure(percent, COLORS)):
        templates = [t.hovertemplate for t in fig.data if t.name and t.name.startswith("lr 50")]
        assert templates and all("lr 50&#37;{y}" in t and "50%{y}" not in t for t in templates), templates


def test_a_wrapped_name_breaks_between_the_characters_it_shows_never_inside_an_escape():
    from rnnreg.plots.layout import plot_text, wrap_label

    wrapped = wrap_label(plot_text("R&D<test>-" + "x" * 20), 6, max_lines=4)
    lines = wrapped.split("<br>")
    assert all(re.fullmatch(r"([^&<>]|&amp;|&lt;|&gt;)*", line) for line in lines), wrapped  # whole entities only
    assert html.unescape(lines[0]).startswith("R&D") and max(len(html.unescape(l)) for l in lines) <= 6
    assert wrap_label("plain-name", 20) == "plain-name"
