"""Figures for the lecture and the poke page: pure functions of DataFrames (no Streamlit, no torch).

Styled like rnnreg.plots (white, thick lines) with a `font_size` so that presentation mode can
blow everything up for a projector.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rnnreg import lecture, lecture_evidence, lecture_memory
from rnnreg.plots import PALETTE, empty_figure, log_axis, plot_text

FONT = 18
PRESENTATION_FONT = 26
# The evidence chart's scale is the paper's: a bar past this many times the highest published number
# (medium without dropout, 639) runs off the right edge with its number in it, instead of squeezing
# every other bar into a fifth of the width where its labels collide with the published markers.
OFF_SCALE = 2.0
LINE = 3
GREY = "#c7c7c7"
TRAIN_DASH, VALID_DASH = "dash", "solid"
# One colour per time step for per-step masks (a new draw each step), one colour for each
# slower sampling: the eye sees at once whether the mask changes along the sequence.
STEP_COLORS = ("#D55E00", "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SEQUENCE_COLOR = "#7B2D8E"
FORWARD_COLOR = "#444444"


def _style(fig: go.Figure, title: str, font_size: int, x_title: str | None = None,
           y_title: str | None = None, *, legend_below: bool = False) -> go.Figure:
    fig.update_layout(
        template="plotly_white", title={"text": title, "x": 0.01, "xanchor": "left"},
        font={"size": font_size}, margin={"l": 80, "r": 30, "t": 70, "b": 70}, height=chart_height(font_size),
        # right of the plot: above it collides with the title; below it (`legend_below`, where long
        # labels would leave the plot too narrow on a 1024-pixel projector) at the foot of the figure,
        # under the axis title, in a smaller type
        legend=({"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0, "xref": "container",
                 "xanchor": "left", "x": 0,
                 "font": {"size": legend_font(font_size)}} if legend_below else
                {"orientation": "v", "yanchor": "top", "y": 1, "xanchor": "left", "x": 1.02}),
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def legend_font(font_size: int) -> int:
    """A legend's type: a key to the chart, so a step below the chart's own (projector: 22 for 26)."""
    return font_size - 4 if font_size > FONT else font_size - 2


CHART_WIDTH = 900  # px: a chart's width on a 1024-pixel projector, the narrowest screen it is laid out for


def chart_height(font_size: int) -> int:
    """A lecture chart's height in px, before its legend: in projector type lower, so that a step's
    sentence, its controls and the chart's x axis show at once on a 1280 x 800 screen."""
    return 540 if font_size <= FONT else 460


def _text_width(text: str, size: float) -> float:
    """About how wide `text` is at `size` px: 0.55 em a character."""
    return 0.55 * size * len(text)


def _legend_height(fig: go.Figure, font_size: int, plot_width: float) -> int:
    """Pixels a horizontal legend of `fig`'s entries takes under a plot `plot_width` wide: plotly
    puts them on one row where they fit, else in columns as wide as the widest entry (one column
    where that is wider than half the plot)."""
    size = legend_font(font_size)
    entries = [_text_width(t.name, size) + 50 for t in fig.data if t.showlegend is not False and t.name]
    if not entries:
        return 0
    columns = len(entries) if sum(entries) <= plot_width else max(1, int(plot_width // max(entries)))
    return -(-len(entries) // columns) * (size + 12)


def _log_y(fig: go.Figure, values: Sequence[float]) -> None:
    fig.update_yaxes(log_axis(values))


# --------------------------------------------------------------------------- 1 overfitting


def overfitting_figure(epochs: pd.DataFrame, names: Mapping[str, str], *, font_size: int = FONT,
                       epochs_planned: int | None = None, empty: str | None = None,
                       subtitle: str | None = None) -> go.Figure:
    """Train (dashed) and valid (solid) perplexity per epoch for the runs in `names` (run -> legend).

    `epochs_planned`: runs still training, drawn on an axis of all their epochs, so the curves grow
    into a fixed frame; `empty`: what to say before any of them has finished an epoch; `subtitle`:
    what runs these are where the size control above the chart does not say it (the live pair)."""
    title = "Train vs validation perplexity"
    if epochs is None or epochs.empty or not epochs["run"].isin(list(names)).any():
        return empty_figure(title, empty or "No demo runs yet: launch both below")
    fig = go.Figure()
    for i, (run, name) in enumerate(names.items()):
        rows = epochs[epochs["run"] == run].sort_values("epoch")
        if rows.empty:
            continue
        color = PALETTE[i % len(PALETTE)]
        for column, dash, kind in (("train_ppl", TRAIN_DASH, "train"), ("valid_ppl", VALID_DASH, "valid")):
            fig.add_trace(go.Scatter(x=rows["epoch"], y=rows[column], mode="lines+markers", name=f"{name} · {kind}",
                                     line={"color": color, "dash": dash, "width": LINE + 1}))
    _style(fig, title, font_size, "epoch", "perplexity (log)", legend_below=True)  # the plot the width of the slide
    legend = _legend_height(fig, font_size, plot_width=CHART_WIDTH - 110)
    fig.update_layout(height=chart_height(font_size) + legend, margin={"b": 80 + legend})
    if subtitle:  # in the figure: presentation mode hides captions
        fig.update_layout(title={"subtitle": {"text": plot_text(subtitle), "font": {"size": legend_font(font_size)}}},
                          margin={"t": 110})
    shown = epochs[epochs["run"].isin(list(names))]
    _log_y(fig, list(shown["train_ppl"]) + list(shown["valid_ppl"]))
    first, last = shown["epoch"].min(), max(shown["epoch"].max(), epochs_planned or 0)
    # every epoch labelled for the demo's 10; every 5th for the paper's 39 or 55 (one a tick: a blur)
    fig.update_xaxes(dtick=1 if last <= 15 else 5, range=[first - 0.5, last + 0.5])
    return fig


# --------------------------------------------------------------------------- 2 schematic


def _mask_color(sampling: str, draw_step: int) -> str:
    if sampling == "step":
        return STEP_COLORS[draw_step % len(STEP_COLORS)]
    return SEQUENCE_COLOR if sampling == "sequence" else FORWARD_COLOR


def schematic_figure(elements: pd.DataFrame, placement: str, *, layers: int = 2,
                     font_size: int = FONT) -> go.Figure:
    """The unrolled LSTM of `lecture.schematic`: masked connections coloured by their mask draw."""
    fig = go.Figure()
    edges = elements[elements["element"] == "edge"]
    plain = edges[edges["site"] == ""]
    xs, ys = [], []
    for row in plain.itertuples():
        xs += [row.x0, row.x1, None]
        ys += [row.y0, row.y1, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": GREY, "width": 3}, hoverinfo="skip",
                             name="not masked"))
    masked = edges[edges["site"] != ""]
    legend_seen: set[str] = set()
    for row in masked.itertuples():
        draw_step = int(row.step) - (1 if row.site == "cell" else 0)
        color = _mask_color(row.sampling, draw_step)
        legend = lecture.sampling_text(row.sampling)
        fig.add_trace(go.Scatter(
            x=[row.x0, row.x1], y=[row.y0, row.y1], mode="lines",
            line={"color": color, "width": 3 if row.optional else 8, "dash": "dot" if row.optional else "solid"},
            name=legend, legendgroup=legend,
            showlegend=legend not in legend_seen and row.sampling != "step" and not row.optional,
            hovertemplate=f"{row.site}: {row.connection}, {legend}"
                          + (" (optional site: rate 0 unless set)" if row.optional else "")
                          + f"<br>draw {row.draw}<extra></extra>",
        ))
        if row.sampling != "step" and not row.optional:
            legend_seen.add(legend)
    if (masked["sampling"] == "step").any():  # one legend entry for all the step colours
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line={"color": STEP_COLORS[0], "width": 8},
                                 name="fresh mask each step (colour = step)"))
    for sampling in masked.loc[masked["optional"] & (masked["sampling"] != "step"), "sampling"].unique():
        if lecture.sampling_text(sampling) not in legend_seen:  # an optional site's colour, said once
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=lecture.sampling_text(sampling),
                                     line={"color": _mask_color(sampling, 0), "width": 8}))
    if masked["optional"].any():  # what a dotted line means (its colour still says how the mask is drawn)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line={"color": "#555", "width": 3, "dash": "dot"},
                                 name="dotted: optional site, rate 0 unless set"))
    nodes = elements[elements["element"] == "node"]
    steps = int(elements["step"].max()) + 1
    for kind, symbol, size, text in (("word", "circle", 34, "w"), ("lstm", "square", 52, "L"),
                                     ("softmax", "diamond", 40, "y")):
        part = nodes[nodes["connection"] == kind]
        labels = [f"{text}{int(l) + 1}" if kind == "lstm" else f"{text}<sub>{int(t) + 1}</sub>"
                  for l, t in zip(part["layer"], part["step"])]
        fig.add_trace(go.Scatter(
            x=part["x0"], y=part["y0"], mode="markers+text", text=labels, textfont={"size": font_size - 2},
            marker={"symbol": symbol, "size": size, "color": "white", "line": {"color": "#333", "width": 2}},
            hoverinfo="skip", showlegend=False,
        ))
    for kind, symbol in (("cell update", "circle"), ("word embedding", "circle-open")):
        part = nodes[(nodes["connection"] == kind) & (nodes["site"] != "")]
        if part.empty:
            continue
        colors = [_mask_color(s, int(t)) for s, t in zip(part["sampling"], part["step"])]
        offset = -0.32 if kind == "cell update" else 0.0
        fig.add_trace(go.Scatter(
            x=part["x0"], y=part["y0"] + offset, mode="markers",
            marker={"symbol": symbol, "size": 22 if kind == "cell update" else 50, "color": colors,
                    "line": {"color": colors, "width": 5}},
            name=f"{kind} masked", hovertemplate=f"{kind}<extra></extra>",
        ))
    # lane labels on the left of the first recurrent edge
    annotations = []
    for layer in range(layers):
        annotations += [
            {"x": 0.5, "y": layer + 1 + 0.17, "text": "h", "showarrow": False, "yshift": 14},
            {"x": 0.5, "y": layer + 1 - 0.17, "text": "c", "showarrow": False, "yshift": -14},
        ]
    fig.update_layout(annotations=[{**a, "font": {"size": font_size - 2, "color": "#555"}} for a in annotations])
    _style(fig, f"Where <b>{placement}</b> puts its masks", font_size)  # short: one line on a small screen
    fig.update_layout(title={"subtitle": {"text": f"an unrolled {layers}-layer LSTM, {steps} steps",
                                          "font": {"size": legend_font(font_size)}}}, margin={"t": 100})
    fig.update_xaxes(visible=False, range=[-0.6, steps - 0.4])
    fig.update_yaxes(visible=False, range=[-0.6, layers + 1.6])
    fig.update_layout(height=520 if font_size <= FONT else 580, hovermode="closest",
                      legend={"y": -0.02, "yanchor": "top", "x": 0, "xanchor": "left"},
                      margin={"b": 90})
    return fig


# --------------------------------------------------------------------------- 3 memory


def memory_figure(memory: pd.DataFrame, *, measure: str = "norm",
                  rates: Mapping[float, Sequence[str]] | Sequence[float] = (0.25, 0.5),
                  font_size: int = FONT) -> go.Figure:
    """Relative gradient through time per run (log y), beside the (1-p)^k curves.

    `memory` is `lecture_memory.memory_frame(...)`; `rates` maps each p whose (1-p)^k is drawn to the
    placements drawn with a per-step mask of that rate on the carried path (`lecture_memory.survival_rates`),
    named in its legend entry; a plain list of p's (no such run) is labelled an illustration.
    """
    # axis titles short enough for a chart of projector height; the subtitle says what is measured
    what = "gradient norm" if measure == "norm" else "units reached"
    title = "How far back does the gradient reach?"
    fig = go.Figure()
    k_max = int(memory["k"].max()) if not memory.empty else 20
    ks = list(range(k_max + 1))
    named = dict(rates) if isinstance(rates, Mapping) else {float(p): () for p in rates}
    for p in sorted(named):
        whose = ", ".join(named[p]) or "illustration"
        fig.add_trace(go.Scatter(x=ks, y=lecture_memory.survival(p, ks), mode="lines",
                                 name=f"(1-p)^k, p = {p:g} ({whose})",
                                 line={"color": "#777", "dash": "dot", "width": LINE}))
    epochs = sorted({int(e) for e in memory["epoch"]}) if not memory.empty else []
    for i, (run, rows) in enumerate(memory.groupby("run", sort=False)):
        placement = rows["placement"].iloc[0]
        at_epoch = "" if len(epochs) == 1 else f" (epoch {int(rows['epoch'].iloc[0])})"
        fig.add_trace(go.Scatter(
            x=rows["k"], y=rows["value"].clip(lower=1e-12), mode="lines+markers",
            name=f"{placement} · {plot_text(rows['label'].iloc[0])}{at_epoch}",
            line={"color": PALETTE[i % len(PALETTE)], "width": LINE + 1},
        ))
    _style(fig, title, font_size, "steps back k", what, legend_below=True)
    # the formula under a short title: one line of projector type is about 50 characters at 1024 pixels
    gradient = "∂L<sub>t</sub> / ∂state<sub>t-k</sub>"
    subtitle = (f"‖{gradient}‖ relative to k = 0" if measure == "norm"
                else f"share of the units of state<sub>t-k</sub> with {gradient} ≠ 0")
    if len(epochs) == 1:  # one epoch for all (runs at the same stage): said once, legend entries stay short
        subtitle += f", at epoch {epochs[0]}"
    fig.update_layout(title={"subtitle": {"text": subtitle, "font": {"size": legend_font(font_size)}}},
                      margin={"t": 110})
    if measure == "norm":  # norms fall by decades
        _log_y(fig, [v for trace in fig.data for v in trace.y])
    else:  # a share: on a log axis the (1-p)^k curves stretched it to 0.0001 while the runs sat at 50-100%
        fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(dtick=max(1, k_max // 10), range=[-0.5, k_max + 0.5])
    legend = _legend_height(fig, font_size, plot_width=CHART_WIDTH - 110)  # the plot keeps its height
    fig.update_layout(height=chart_height(font_size) + legend, margin={"b": 80 + legend})
    if memory.empty:
        fig.add_annotation(text="No gradient-through-time probes in the store yet: the curves show (1-p)^k only",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.05, font={"size": font_size - 2})
    return fig


RECALL_MARKER_MAX, RECALL_MARKER_MIN = 36, 12  # px: the first line's markers, the last line's


def recall_figure(recall: pd.DataFrame, *, chance: float | None = None, font_size: int = FONT) -> go.Figure:
    """Memory-task recall accuracy (%) against the delay T, one line per placement and rate.

    `recall` is `lecture_memory.recall_frame(...)`; `chance` (1 / number of keys) is drawn as a floor.
    """
    fig = go.Figure()
    if chance is not None:
        fig.add_hline(y=100 * chance, line={"color": "#777", "dash": "dot", "width": LINE},
                      annotation_text="chance", annotation_position="bottom left")
    # Lines that coincide (several placements at 100%) stay visible: each a dash, and an open marker
    # of a shape and size of its own, the first drawn largest, so the outlines of points that coincide
    # nest inside one another instead of covering each other.
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    symbols = ("circle-open", "square-open", "diamond-open", "triangle-up-open", "circle-open-dot", "star-open",
               "cross-open", "triangle-down-open")
    groups = list(recall.groupby(["placement", "rate"], sort=False))
    for i, ((placement, rate), rows) in enumerate(groups):
        label = placement if placement == "none" else f"{placement} {rate:g}"
        fig.add_trace(go.Scatter(
            x=rows["delay"], y=100 * rows["accuracy"], mode="lines+markers", name=label,
            line={"color": PALETTE[i % len(PALETTE)], "width": LINE + 1, "dash": dashes[i % len(dashes)]},
            marker={"size": RECALL_MARKER_MAX - (RECALL_MARKER_MAX - RECALL_MARKER_MIN) * i // max(len(groups) - 1, 1),
                    "symbol": symbols[i % len(symbols)], "line": {"width": 3}},
            customdata=list(zip(rows["label"].map(plot_text), rows["source"])),
            hovertemplate="%{customdata[0]} (%{customdata[1]}): %{y:.1f}% at T = %{x}<extra></extra>"))
    _style(fig, "Recall after a gap of up to T steps (memory task)", font_size,
           "longest gap T (steps)", "test recall accuracy (%)")
    fig.update_yaxes(range=[0, 105])
    if not recall.empty:
        fig.update_xaxes(tickvals=sorted(set(recall["delay"])))
    else:
        fig.add_annotation(text="No finished memory-task runs yet: run them live below, or `rnnreg sweep "
                                "benchmarks/memory-sweep.json`", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font={"size": font_size - 2})
    return fig


# --------------------------------------------------------------------------- 4 evidence


def evidence_figure(runs: pd.DataFrame, published: pd.DataFrame = lecture_evidence.PUBLISHED, *,
                    font_size: int = FONT) -> go.Figure:
    """Valid / test perplexity of the final model per configuration as horizontal bars (mean over
    seeds, ± sd where there are several; the best epoch's valid in the hover); published numbers
    as markers on their configuration's bars, each number right of its marker, or, where this
    project's bar or MC circle reaches past the marker and would cover it, right of that with the
    marker's symbol ('★ 79.7').  The scale is set by the published numbers and the runs near them: a
    bar past OFF_SCALE times the highest published number runs off the right edge, labelled so.

    One row per configuration, large then medium then small (the models dropout makes possible come
    first, where a projector shows them without scrolling), the best test first within each, so
    long labels ('medium · zaremba (main.lua's schedule)') read level and the chart grows with the runs
    instead of crowding.
    """
    fig = go.Figure()
    categories = list(dict.fromkeys(
        lecture_evidence.category(published["preset"], published["placement"])
        + (list(runs["category"]) if not runs.empty else [])))
    # by size, largest first, then best test first within a size: the ranking reads top to bottom
    test = dict(zip(lecture_evidence.category(published["preset"], published["placement"]), published["test"]))
    if not runs.empty:
        test.update({c: t for c, t in zip(runs["category"], runs["test"]) if pd.notna(t)})
    order = {"large": 0, "medium": 1, "small": 2}
    categories.sort(key=lambda c: (order.get(c.split(" · ")[0], 3), test.get(c, math.inf), c))
    labels = lecture_evidence.evidence_row_labels(runs, published)  # the rows named with their dropout rates
    top = _evidence_top(runs, published)
    if not runs.empty:
        for column, color in (("valid", "#0072B2"), ("test", "#56B4E9")):
            sd = runs.get(f"{column}_sd", pd.Series(0.0, index=runs.index))
            seeds = runs.get("seeds", pd.Series(1, index=runs.index))
            fig.add_trace(go.Bar(y=runs["category"], x=runs[column], orientation="h", name=f"this project · {column}",
                                 marker_color=color, text=_bar_labels(runs, column, top),
                                 # at the bar's base (its end is where a published marker sits);
                                 # right of a bar too short to hold it, never turned on its side
                                 textposition="auto", insidetextanchor="start", textangle=0, offsetgroup=column,
                                 textfont={"color": "white" if column == "valid" else "#08306b"},
                                 error_x={"type": "data", "array": list(sd), "visible": bool((seeds > 1).any())},
                                 customdata=list(zip(seeds, sd, runs.get("best_valid", runs[column]),
                                                     [labels[c] for c in runs["category"]])),
                                 hovertemplate=_evidence_hover(column)))
        _add_masks_on(fig, runs)
    cats = lecture_evidence.category(published["preset"], published["placement"])
    for source, symbol in (("Zaremba et al. 2014", "diamond"), ("Gal & Ghahramani 2016", "star")):
        mask = published["source"] == source
        for column, color in (("valid", "#D55E00"), ("test", "#E69F00")):
            rows, values = [c for c, m in zip(cats, mask) if m], list(published.loc[mask, column])
            reach = [_reach(runs, row, column) for row in rows]
            # our bar, error bar or MC circle ends past the marker (or within 0.5 short of it, where the
            # marker's number would still start on the bar's end), but not off the scale, where the
            # moved number could not be seen: it stays by its marker, over the bar
            covered = [r is not None and v - 0.5 < r <= top for r, v in zip(reach, values)]
            fig.add_trace(go.Scatter(
                y=rows, x=values, mode="markers+text", orientation="h", name=f"{source} · {column}",
                marker={"symbol": symbol, "size": 18, "color": color, "line": {"color": "#333", "width": 1}},
                text=["" if c else f"{v:.1f}" for v, c in zip(values, covered)], textposition="middle right",
                textfont={"color": "#333"},
                offsetgroup=column, hovertemplate=f"%{{y}} {column}, {source}: %{{x:.1f}}<extra></extra>",
            ))
            if any(covered):  # its number right of what covers it, with its symbol to say whose it is
                glyph = {"diamond": "◆", "star": "★"}[symbol]
                fig.add_trace(go.Scatter(
                    y=[r for r, c in zip(rows, covered) if c], x=[x for x, c in zip(reach, covered) if c],
                    mode="text", orientation="h", showlegend=False, hoverinfo="skip", offsetgroup=column,
                    text=[f"  {glyph} {v:.1f}" for v, c in zip(values, covered) if c], textposition="middle right",
                    textfont={"color": "#333"}, name=f"{source} · {column} (number)"))
    # a short title and the legend under the plot: on a 1024-pixel projector a legend on the right
    # left the bars 30 pixels wide and cut the title
    _style(fig, "Penn Treebank perplexity (lower is better)", font_size, "perplexity", None, legend_below=True)
    ticks = [_two_lines(labels.get(c, c)) for c in categories]  # "small · none<br>(main.lua's schedule)"
    fig.update_yaxes(categoryorder="array", categoryarray=categories, autorange="reversed",
                     tickvals=categories, ticktext=ticks)
    fig.update_xaxes(range=[0, top])
    # a row per configuration: two bars of the type's height and a gap, whatever their number
    row = 3 * font_size
    longest = max(_text_width(line, font_size) for tick in ticks for line in tick.split("<br>"))  # left of the plot
    legend = _legend_height(fig, font_size, plot_width=CHART_WIDTH - longest - 50)  # under the axis title
    fig.update_layout(barmode="group", scattermode="group", height=int(160 + row * len(categories) + legend),
                      margin={"l": 20, "b": 80 + legend}, yaxis={"automargin": True})
    return fig


def _evidence_top(runs: pd.DataFrame, published: pd.DataFrame) -> float:
    """The evidence chart's right edge: 12% past its highest number (room for a published number right
    of its marker), not counting this project's numbers above OFF_SCALE x the highest published one."""
    paper = [*published["valid"], *published["test"]]
    ours = [*(runs["valid"] if not runs.empty else []), *(runs["test"].dropna() if not runs.empty else []),
            *(runs["mc_test"].dropna() if "mc_test" in runs else [])]
    limit = OFF_SCALE * max(paper) if paper else math.inf
    return 1.12 * max([*paper, *(v for v in ours if v <= limit)] or [1.0])


def _two_lines(label: str, longest: int = 24) -> str:
    """A row label longer than `longest` characters with what sets it apart ('(main.lua's schedule)',
    '[hidden 0.3]') on a line of its own: the bars keep the width."""
    for mark in (" (", " ["):
        if len(label) > longest and mark in label:
            head, tail = label.split(mark, 1)
            return f"{head}<br>{mark[1:]}{tail}"
    return label


def _reach(runs: pd.DataFrame, category: str, column: str) -> float | None:
    """How far right this project's row for `category` draws in `column`: the bar's end, its error
    bar, and on the test bar the MC circle; None where the project has no such run."""
    if runs.empty:
        return None
    row = runs[runs["category"] == category]
    if row.empty or pd.isna(row[column].iloc[0]):
        return None
    sd = row[f"{column}_sd"].iloc[0] if f"{column}_sd" in row else 0.0
    ends = [float(row[column].iloc[0]) + (0.0 if pd.isna(sd) else float(sd))]
    if column == "test" and "mc_test" in row and pd.notna(row["mc_test"].iloc[0]):
        ends.append(float(row["mc_test"].iloc[0]))
    return max(ends)


def _bar_labels(runs: pd.DataFrame, column: str, top: float) -> list[str]:
    """'140.2', and on a test bar whose runs were also tested with dropout on, '140.2 · MC 101.5': in the
    bar, where no published marker's number can cover it, and short enough to end before the green
    circle does at a projector's type size; '639.0 · off the scale ▸' on a bar past the chart's edge."""
    labels = [f"{v:.1f}" for v in runs[column]]
    if column == "test" and "mc_test" in runs:
        labels = [label + (f" · MC {mc:.1f}" if pd.notna(mc) else "") for label, mc in zip(labels, runs["mc_test"])]
    return [label + (" · off the scale ▸" if v > top else "") for label, v in zip(labels, runs[column])]


def _add_masks_on(fig: go.Figure, runs: pd.DataFrame) -> None:
    """A marker on a configuration's test bar where its runs were also tested with their dropout on
    (`rnnreg evaluate`, the mean of Monte-Carlo passes): where it sits far left of the bar (moon),
    the model works only with its masks on, and a test with dropout off undersells it."""
    if "mc_test" not in runs:
        return
    tested = runs[runs["mc_test"].notna()]
    if tested.empty:
        return
    fig.add_trace(go.Scatter(
        y=tested["category"], x=tested["mc_test"], mode="markers", orientation="h",
        name="this project · test with dropout on (MC)", offsetgroup="test",
        marker={"symbol": "circle", "size": 11, "color": "#009E73", "line": {"color": "#333", "width": 1}},
        customdata=list(zip(tested["mc_samples"], tested["mc_protocol"], tested["mc_seeds"], tested["seeds"],
                            tested["mc_off_test"])),
        hovertemplate="%{y} test with dropout on: %{x:.1f}, the mean of %{customdata[0]} Monte-Carlo passes "
                      "(masks per %{customdata[1]}) over %{customdata[2]} of %{customdata[3]} seed(s); "
                      "the same seed(s) with dropout off: %{customdata[4]:.1f}<extra></extra>"))


def _evidence_hover(column: str) -> str:
    """'medium · recurrent 0.25 valid: 161.5 ± 0.0 over 1 seed(s), final model; best epoch 118.6'."""
    spread = f"%{{customdata[3]}} {column}: %{{x:.1f}} ± %{{customdata[1]:.1f}} over %{{customdata[0]}} seed(s)"
    if column == "valid":  # the model that was tested; a best epoch far below it means overfitting
        return spread + ", final model; best epoch %{customdata[2]:.1f}<extra></extra>"
    return spread + "<extra></extra>"


# --------------------------------------------------------------------------- poke: gates per word


SIGNED_STATES = ("g", "c", "h")  # tanh'd or unbounded, around 0; the gates i, f, o are sigmoids in (0, 1)


def gate_means_figure(means: pd.DataFrame, *, layer: int, font_size: int = FONT) -> go.Figure:
    """Heat maps words x gates of the mean activation of each gate at each word (one layer).

    Two panels, each with its own colour scale: the gates i, f, o (0 to 1) above, the signed g, c, h
    (red below 0, blue above, white at 0) below.  On one shared scale the signed rows, near 0 against
    gates near 0.4, were a single dark band whatever the word."""
    part = means[means["layer"] == layer]
    title = f"Mean gate activation per word, layer {layer + 1}"
    if part.empty:
        return empty_figure(title, "No words")
    table = part.pivot_table(index="gate", columns="position", values="mean", sort=False)
    words = part.drop_duplicates("position").sort_values("position")["word"].tolist()
    x = [f"{i + 1}. {w}" for i, w in enumerate(words)]
    panels = [(rows, signed) for rows, signed in (
        (table.loc[[g for g in table.index if g not in SIGNED_STATES]], False),
        (table.loc[[g for g in table.index if g in SIGNED_STATES]], True)) if not rows.empty]
    if not panels:  # every mean NaN (pivot_table drops them): nothing to draw
        return empty_figure(title, "No finite activations")
    fig = go.Figure()
    gap = 0.08
    height = (1 - gap * (len(panels) - 1)) / sum(len(rows) for rows, _signed in panels)  # a row's share
    top = 1.0
    for n, (rows, signed) in enumerate(panels, start=1):
        bottom = max(0.0, top - height * len(rows))
        fig.add_trace(go.Heatmap(
            z=rows.values, x=x, y=list(rows.index), yaxis="y" if n == 1 else f"y{n}",
            colorscale="RdBu" if signed else "Viridis", zmid=0 if signed else None,
            colorbar={"title": {"text": "g, c, h" if signed else "i, f, o"}, "y": bottom, "yanchor": "bottom",
                      "len": 0.75 * (top - bottom)},  # the rest of the panel's height for the bar's title
            text=np.round(rows.values, 2), texttemplate="%{text}",
            hovertemplate="%{y} at %{x}: %{z:.3f}<extra></extra>",
        ))
        fig.update_layout({f"yaxis{n if n > 1 else ''}": {"domain": [bottom, top], "autorange": "reversed",
                                                          "anchor": "x"}})
        top = bottom - gap
    fig.update_layout(xaxis={"anchor": "y" if len(panels) == 1 else f"y{len(panels)}"})  # the words at the foot
    _style(fig, title, font_size)
    return fig


def gate_units_figure(units: np.ndarray, words: Sequence[str], *, gate: str, layer: int,
                      font_size: int = FONT) -> go.Figure:
    """Heat map units x words of one gate's activation (one layer)."""
    title = f"Gate {gate}, every unit, layer {layer + 1}"
    if units.size == 0:
        return empty_figure(title, "No words")
    signed = gate in ("g", "h", "c")
    fig = go.Figure(go.Heatmap(
        z=np.asarray(units).T, x=[f"{i + 1}. {w}" for i, w in enumerate(words)], colorscale="RdBu" if signed else "Viridis",
        zmid=0 if signed else None, colorbar={"title": gate}, hovertemplate="unit %{y} at %{x}: %{z:.3f}<extra></extra>",
    ))
    _style(fig, title, font_size, None, "unit")
    fig.update_layout(height=520)
    return fig
