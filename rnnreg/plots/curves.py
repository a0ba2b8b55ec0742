"""Perplexity and loss: train against validation per epoch, the gap, the per-step loss."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from rnnreg.plots.colors import color_of, marker_symbols
from rnnreg.plots.layout import (
    FONT_SIZE, LEGEND_ROW_PX, LINE_WIDTH, X_AXES, base_layout, build_figure, by_run, empty_figure, epoch_axis,
    has_columns, hline, legend_rows, log_axis, x_column,
)

# Zaremba et al. 2014, Table 1: (valid, test) perplexity of the single models on PTB.
PAPER_PERPLEXITY: Mapping[str, tuple[float, float]] = {
    "small": (120.7, 114.5),
    "medium": (86.2, 82.7),
    "large": (82.2, 78.4),
}

LEADER_PX = 16  # a paper line's label sits this far right of the plot, joined to its line
PAPER_LINES_HEADING = "paper, Table 1"  # above the paper lines' labels, which leave out "paper"
PERPLEXITY_PLOT_PX = 320  # the perplexity chart's plot area, whatever its legend takes
# What a run's train perplexity is: the average over an epoch of each window's loss as it trained
# (the weights moving, dropout on), not the fit of the final weights (README, Results: medium `none`).
TRAIN_NOTE = "train: the epoch's average, dropout on"


def perplexity_figure(
    epochs: pd.DataFrame,
    colors: Mapping[str, str],
    *,
    x: str = "epoch",
    log_y: bool = False,
    reference_presets: Sequence[str] = (),
    title: str = f"Perplexity: train (dashed) and validation (solid)<br><sup>{TRAIN_NOTE}</sup>",
) -> go.Figure:
    """Train (dashed) and valid (solid) perplexity per epoch, one colour per run.

    `reference_presets` draws the paper's Table 1 valid/test perplexity of those presets as
    dotted horizontal lines.
    """
    if not has_columns(epochs, "run", "epoch"):
        return empty_figure(title, "No finished epoch yet")
    xcol = x_column(epochs, x)
    data = []
    runs = by_run(epochs, "epoch")
    symbols = marker_symbols(colors, [run for run, _label, _rows in runs])  # for runs sharing a colour
    for run, label, rows in runs:
        color = color_of(colors, run)
        for column, dash, name in (("train_ppl", "dash", "train"), ("valid_ppl", "solid", "valid")):
            if column not in rows or rows[column].isna().all():
                continue
            data.append({
                "type": "scatter", "x": rows[xcol], "y": rows[column], "mode": "lines+markers",
                "name": f"{label} · {name}", "legendgroup": run,
                "line": {"color": color, "dash": dash, "width": LINE_WIDTH},
                "marker": {"size": 7, "symbol": symbols[run]},
                "hovertemplate": f"{label} {name}: %{{y:.1f}}<extra></extra>",
            })
    labels: list[tuple[float, str, int]] = []  # (value, text, vertical shift in px)
    for preset in dict.fromkeys(reference_presets):
        if preset not in PAPER_PERPLEXITY:
            continue
        valid, test = PAPER_PERPLEXITY[preset]
        for value, what in ((valid, "valid"), (test, "test")):
            # valid dotted, test dash-dotted: told apart without hovering
            line = hline(epochs[xcol], value, f"paper {preset} {what} {value}",
                         dash="dot" if what == "valid" else "dashdot")
            line.update(mode="lines", text=None)  # labelled beside the plot (below): a run that
            data.append(line)                     # reproduces the paper ends on its line
            # "paper" said once, in the labels' heading: at 1024 px every character is taken from the plot
            labels.append((value, f"{preset} {what} {value}", 7 if what == "valid" else -7))
    layout = base_layout(title, X_AXES[xcol], "perplexity" + (" (log scale)" if log_y else ""))
    # Two legend entries per run: beside the title they would wrap onto it from three runs on, so
    # they flow below the plot, in a bottom margin sized for them generously (a margin too small
    # would be widened by Plotly at the plot's expense, and the labels below need its height).
    names = [trace["name"] for trace in data if trace.get("showlegend", True)]
    rows = legend_rows(names)
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -70 / PERPLEXITY_PLOT_PX, "xanchor": "left",
                        "x": 0, "traceorder": "normal"}  # normal: a run's two entries side by side, not stacked
    layout["margin"]["b"] = 80 + LEGEND_ROW_PX * rows
    layout["height"] = PERPLEXITY_PLOT_PX + layout["margin"]["t"] + layout["margin"]["b"]
    if labels:  # right of the plot area, where no curve runs; valid a little above its line, test below
        ys = [math.log10(value) if log_y else value for value, _text, _shift in labels]
        every_y = [float(v) for trace in data for v in trace["y"] if v is not None and math.isfinite(float(v))
                   and (float(v) > 0 or not log_y)]
        low, high = (min(every_y), max(every_y)) if every_y else (0.0, 1.0)
        if log_y:
            low, high = math.log10(low), math.log10(high)
        pad = 0.05 * (high - low) or 1.0  # the y range is set, so that a label's pixel is known
        low, high = low - pad, high + pad
        y_range = [low, high]  # on a log axis, in log10 units (Plotly's own)
        px_per_unit = PERPLEXITY_PLOT_PX / (high - low)
        wanted = [(y - low) * px_per_unit + shift for y, (_v, _t, shift) in zip(ys, labels)]
        placed = spread_apart(wanted, gap=FONT_SIZE + 2)  # lines a few pixels apart get labels that do not overlap
        # each label where it has room, a thin leader from it to the end of its own line
        layout["annotations"] = [
            {"text": text, "x": 1, "xref": "paper", "y": y, "yref": "y", "xanchor": "left", "yanchor": "middle",
             "showarrow": True, "arrowhead": 0, "arrowwidth": 1, "arrowcolor": "#999999", "standoff": 0,
             "ax": LEADER_PX, "ay": -(shift + (at - want)),  # pixels from the line's end; ay grows downwards
             "font": {"size": FONT_SIZE - 3, "color": "#555555"}}
            for (value, text, shift), y, want, at in zip(labels, ys, wanted, placed)]
        layout["annotations"].append({  # whose lines: the heading of the labels' column
            "text": PAPER_LINES_HEADING, "x": 1, "xref": "paper", "xshift": LEADER_PX, "y": 1, "yref": "paper",
            "xanchor": "left", "yanchor": "bottom", "showarrow": False,
            "font": {"size": FONT_SIZE - 3, "color": "#555555"}})
        layout["margin"]["r"] = max(layout["margin"].get("r", 0), 10 + LEADER_PX + 8 * max(
            len(text) for text in [PAPER_LINES_HEADING, *(text for _, text, _ in labels)]))
    if xcol == "epoch":
        layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    if log_y:
        layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    if labels:
        layout["yaxis"]["range"] = y_range
    return build_figure(data, layout)


def spread_apart(positions: Sequence[float], gap: float) -> list[float]:
    """`positions` (pixels, any order) moved as little as possible so that no two are closer than
    `gap`: each run of crowded ones is spaced `gap` apart around its own mean, order kept."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    groups: list[list[int]] = []  # bottom to top; each spaced around the mean of its wanted positions

    def span(group: list[int]) -> tuple[float, float]:
        centre = sum(positions[i] for i in group) / len(group)
        half = gap * (len(group) - 1) / 2
        return centre - half, centre + half

    for i in order:
        groups.append([i])
        while len(groups) > 1 and span(groups[-1])[0] - span(groups[-2])[1] < gap:
            groups[-2:] = [groups[-2] + groups[-1]]
    placed = [0.0] * len(positions)
    for group in groups:
        bottom, _top = span(group)
        for k, i in enumerate(group):
            placed[i] = bottom + k * gap
    return placed


def recall_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, x: str = "epoch",
                  title: str = "Validation recall (memory task)") -> go.Figure:
    """Validation recall per epoch, one colour per run: what a memory-task run is judged by
    (its perplexity, over a few dozen symbols, says little)."""
    if not has_columns(epochs, "run", "epoch", "valid_accuracy") or epochs["valid_accuracy"].isna().all():
        return empty_figure(title, "No recall recorded: not a memory-task run, or no finished epoch yet")
    xcol = x_column(epochs, x)
    data = [{
        "type": "scatter", "x": rows[xcol], "y": rows["valid_accuracy"], "mode": "lines+markers", "name": label,
        "line": {"color": color_of(colors, run), "width": LINE_WIDTH}, "marker": {"size": 7},
        "hovertemplate": f"{label}: %{{y:.1%}}<extra></extra>",
    } for run, label, rows in by_run(epochs, "epoch") if rows["valid_accuracy"].notna().any()]
    layout = base_layout(title, X_AXES[xcol], "keys recalled (validation)")
    layout["yaxis"].update({"tickformat": ".0%", "range": [0, 1.05]})
    if xcol == "epoch":
        layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    return build_figure(data, layout)


def gap_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, x: str = "epoch") -> go.Figure:
    """The generalisation gap, valid minus train perplexity: it grows when a model overfits."""
    title = "Generalisation gap: valid − train perplexity"
    if not has_columns(epochs, "run", "epoch", "train_ppl", "valid_ppl"):
        return empty_figure(title, "No finished epoch yet")
    xcol = x_column(epochs, x)
    data = [{
        "type": "scatter", "x": rows[xcol], "y": rows["valid_ppl"] - rows["train_ppl"], "mode": "lines+markers",
        "name": label, "line": {"color": color_of(colors, run), "width": LINE_WIDTH}, "marker": {"size": 7},
        "hovertemplate": f"{label}: %{{y:.1f}}<extra></extra>",
    } for run, label, rows in by_run(epochs, "epoch")]
    # train perplexity is the epoch's running average with dropout on: a regularised run can sit below 0
    note = TRAIN_NOTE
    gaps = epochs["valid_ppl"] - epochs["train_ppl"]
    later = gaps[epochs["epoch"] > 1].dropna()
    low, high = (later.min(), later.max()) if len(later) else (0.0, 0.0)
    pad = 0.1 * max(high - low, 1.0)
    first = gaps[epochs["epoch"] == 1].dropna()
    off_scale = len(later) > 0 and ((first < low - pad) | (first > high + pad)).any()
    if off_scale:  # epoch 1, the model still learning, would squeeze the gaps that tell the story
        note += "; epoch 1 (still learning) off the scale"
    layout = base_layout(f"{title}<br><sup>{note}</sup>", X_AXES[xcol], "valid − train perplexity")
    if off_scale:
        layout["yaxis"]["range"] = [min(low, 0.0) - pad, max(high, 0.0) + pad]  # the zero line in view
    if xcol == "epoch":
        layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    layout["shapes"] = [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": 0, "y1": 0,
                         "line": {"color": "#888888", "width": 1}}]  # the zero line
    return build_figure(data, layout)


def smooth(values: pd.Series, weight: float) -> pd.Series:
    """Exponential moving average with debiasing (TensorBoard's smoothing); weight in [0, 1)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight!r}")
    if weight == 0.0:
        return values.astype(float)
    out, last, n = [], 0.0, 0
    for v in values.astype(float):
        if math.isnan(v):
            out.append(float("nan"))
            continue
        n += 1
        last = weight * last + (1 - weight) * v
        out.append(last / (1 - weight**n))
    return pd.Series(out, index=values.index)


def loss_figure(
    steps: pd.DataFrame, colors: Mapping[str, str], *, smoothing: float = 0.0, x: str = "step",
) -> go.Figure:
    """Per-step training loss (nats/token); the raw curve always shows, faint under the smoothed one."""
    title = "Training loss per step"
    if not has_columns(steps, "run", "step", "loss"):
        return empty_figure(title, "No training steps logged yet")
    xcol = x if x in steps.columns and steps[x].notna().any() else "step"
    data = []
    for run, label, rows in by_run(steps, "step"):
        color = color_of(colors, run)
        data.append({
            "type": "scatter", "x": rows[xcol], "y": rows["loss"], "mode": "lines", "name": f"{label} · raw",
            "legendgroup": run, "line": {"color": color, "width": 1.5}, "opacity": 0.35 if smoothing > 0 else 1.0,
            "showlegend": smoothing == 0, "hovertemplate": f"{label} raw: %{{y:.3f}}<extra></extra>",
        })
        if smoothing > 0:
            data.append({
                "type": "scatter", "x": rows[xcol], "y": smooth(rows["loss"], smoothing), "mode": "lines",
                "name": label, "legendgroup": run, "line": {"color": color, "width": LINE_WIDTH},
                "hovertemplate": f"{label} smoothed: %{{y:.3f}}<extra></extra>",
            })
    span = loss_span(steps)
    if span is not None:  # a few first steps far above the rest would squeeze the curves that tell the story
        top = steps["loss"].max()
        title += f"<br><sup>the highest losses (up to {top:.1f}, a model's first steps) off the scale</sup>"
    layout = base_layout(title, {"step": "step", **X_AXES}.get(xcol, xcol), "loss (nats/token)")
    if span is not None:
        layout["yaxis"]["range"] = list(span)
    return build_figure(data, layout)


def loss_span(steps: pd.DataFrame, *, keep: float = 0.995) -> tuple[float, float] | None:
    """A y range for per-step losses that leaves out each run's few highest, or None where they are
    not far above the rest (TensorBoard's "ignore outliers in chart scaling"): an untrained model's
    first steps (the large preset's first logged loss is 15 nats, its later ones 4-6) would squeeze
    the curves that tell the story into the bottom third.  From the lowest loss to the highest of
    the runs' `keep` quantiles (a run of fewer than 100 steps: its highest), padded, so that every
    run keeps all but its outliers in view, a short one beside a long one too."""
    values = pd.to_numeric(steps["loss"], errors="coerce")
    finite = steps.assign(loss=values)[values.abs() < math.inf]  # NaN and infinities out
    if len(finite) < 100:  # too few steps to call any of them outliers
        return None
    per_run = finite.groupby("run")["loss"]
    tops = per_run.quantile(keep).where(per_run.size() >= 100, per_run.max())
    low, high, top = float(finite["loss"].min()), float(tops.max()), float(finite["loss"].max())
    pad = 0.08 * max(high - low, 0.1)
    return (low - pad, high + pad) if top > high + 4 * pad else None
