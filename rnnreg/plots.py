"""Figures for the dashboard: pure functions from DataFrames to Plotly figures (no Streamlit, no torch).

Every figure takes *long* DataFrames with one row per (run, x) and a ``run`` column (the run
id) plus a ``label`` column (what the legend shows), and a ``colors`` mapping run id -> colour
so that a run keeps its colour on every page.  Nothing here reads files or session state; the
pages load data (``rnnreg.runs``) and pass it in.

Frames the figures expect (extra columns are ignored, missing optional ones are tolerated):

    epochs  run, label, epoch, train_ppl, valid_ppl, [words, wall_s, clipped_fraction, lr]
    steps   run, label, step, loss, grad_norm, [clipped, words, wall_s, epoch]
    layers  run, label, step, layer, norm                     (per-layer gradient norms)
    gates   run, label, epoch, layer, gate, bin_edges, counts, saturation, [mean]
    gtt     run, label, epoch, layer, wrt, k, norm            (gradient through time, exploded)
    runs    one row per run: run, label, preset, placement, rates, best_valid_ppl, ...

The styling is for a projector: large fonts, thick lines, white background, and the same
look in the dashboard and in the downloaded HTML.
"""

from __future__ import annotations

from collections import Counter
import functools
import math
import os
import re
from typing import Iterable, Mapping, Sequence

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio

# Zaremba et al. 2014, Table 1: (valid, test) perplexity of the single models on PTB.
PAPER_PERPLEXITY: Mapping[str, tuple[float, float]] = {
    "small": (120.7, 114.5),
    "medium": (86.2, 82.7),
    "large": (82.2, 78.4),
}

# Okabe-Ito (colour-blind safe) first, then Plotly's defaults for larger comparisons.
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
)

# line dashes for configs that share a colour (more configs than PALETTE has colours)
DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot")

X_AXES: Mapping[str, str] = {"epoch": "epoch", "words": "words seen", "wall_s": "wall time (s)"}
GATES: tuple[str, ...] = ("i", "f", "o", "g", "c", "h")
GATE_NAMES: Mapping[str, str] = {
    "i": "input gate i", "f": "forget gate f", "o": "output gate o",
    "g": "cell update g", "c": "cell state c", "h": "hidden state h",
}

FONT_SIZE = 16
VIRIDIS = plotly.colors.get_colorscale("Viridis")  # as a list: plotly.py and plotly.js name scales differently
LINE_WIDTH = 3
PERPLEXITY_PLOT_PX = 320  # the perplexity chart's plot area, whatever its legend takes
LEGEND_ROW_PX, LEGEND_CHAR_PX, LEGEND_WIDTH_PX = 30, 9, 600  # legend rows counted for a narrow chart


# --- colours -----------------------------------------------------------------------------


def natural_key(text: object) -> tuple:
    """Sort key that orders the numbers inside labels by value: "none · T=2" before "none · T=10"."""
    return tuple((0, float(part), "") if re.fullmatch(r"\d+(\.\d+)?", part) else (1, 0.0, part)
                 for part in re.split(r"(\d+(?:\.\d+)?)", str(text)) if part)


def assign_colors(run_ids: Iterable[str], previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """A colour for every run in `run_ids`, keeping each run's `previous` colour.

    New runs take the first palette colour no kept run uses, so picking or unpicking one run
    never recolours the others.  Runs not in `run_ids` are kept too (so a run picked again
    later gets its old colour back when it is still free).
    """
    colors = dict(previous or {})
    wanted = list(dict.fromkeys(run_ids))
    uses = Counter(colors[r] for r in wanted if r in colors)
    for run in wanted:
        if run in colors:
            continue
        # a free colour first; past the palette, the least used one (figures tell sharers apart by dash)
        color = min(PALETTE, key=lambda c: uses[c])
        colors[run] = color
        uses[color] += 1
    return colors


def _color(colors: Mapping[str, str], run: str) -> str:
    return colors.get(run) or PALETTE[sum(map(ord, run)) % len(PALETTE)]


# --- common layout ------------------------------------------------------------------------
#
# Figures are assembled as plain dicts (traces and one layout) and wrapped once by `_figure`.
# Building them step by step (`add_trace(row=, col=)`, `add_annotation`, `update_*axes`)
# validates at every step and costs ten times as much on a grid of panels; the dashboard
# redraws these on every page switch.


@functools.cache
def _template(name: str) -> dict:
    """Plotly's named template as plain data (each figure copies it: this one is never changed)."""
    return pio.templates[name].to_plotly_json()


def _layout(title: str, x_title: str | None = None, y_title: str | None = None) -> dict:
    """The projector look as a layout dict (large fonts, white background, legend above the plot)."""
    layout = {
        "template": _template("plotly_white"),  # as data: plotly.js knows no template names
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "font": {"size": FONT_SIZE},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        "margin": {"l": 70, "r": 20, "t": 90, "b": 60},
        "hovermode": "x unified",
    }
    if x_title is not None:
        layout["xaxis"] = {"title": {"text": x_title}}
    if y_title is not None:
        layout["yaxis"] = {"title": {"text": y_title}}
    return layout


def _style(fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None) -> go.Figure:
    """`_layout` applied to a figure built trace by trace (one x and one y axis)."""
    return fig.update_layout(_layout(title, x_title, y_title))


def log_ticks(low: float, high: float, max_ticks: int = 10) -> list[float]:
    """1-2-5 tick values covering [low, high] (a log axis with readable, uncluttered labels);
    finer steps (1, 1.5, 2, 3, ...) where the data spans too little of a decade for three,
    powers of ten only where 1-2-5 would give more than `max_ticks`."""
    if not (low > 0 and high > 0):
        return []
    low, high = min(low, high), max(low, high)

    def ticks(mantissas: Sequence[float]) -> list[float]:
        out, decade = [], math.floor(math.log10(low))
        while 10.0 ** decade <= high * 10:
            out += [float(f"{m * 10.0 ** decade:.6g}") for m in mantissas]
            decade += 1
        return [t for t in out if low / 1.5 <= t <= high * 1.5]

    if high / low < 3:  # a narrow band (a perplexity plateau): evenly spaced round numbers
        step = next(m * 10.0 ** e for e in range(math.floor(math.log10(high - low or high)) - 1, 400)
                    for m in (1, 2, 5) if (high - low) / (m * 10.0 ** e) <= 5)
        first = math.floor(low / step)
        return [float(f"{k * step:.6g}") for k in range(first, math.ceil(high / step) + 1) if k > 0]
    coarse = ticks((1, 2, 5))
    if sum(low <= t <= high for t in coarse) < 3:
        fine = ticks((1, 1.5, 2, 3, 4, 5, 6, 7, 8))
        return fine if len(fine) <= max_ticks else fine[::2]
    if len(coarse) > max_ticks:
        coarse = ticks((1,))
        while len(coarse) > max_ticks:
            coarse = coarse[::2]
    return coarse


def log_axis(*values: Iterable, max_ticks: int = 10) -> dict:
    """Layout keys of a log axis over `values` whose labels are whole numbers (20, 50, 100, 200).

    Plotly's own log labels print only the leading digit between decades ("2" for 200),
    which reads as the wrong number on a projector.
    """
    finite = [float(v) for series in values for v in series
              if v is not None and not isinstance(v, str) and math.isfinite(float(v)) and float(v) > 0]
    ticks = log_ticks(min(finite), max(finite), max_ticks) if finite else []
    axis: dict = {"type": "log"}
    if ticks:
        axis.update(tickmode="array", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return axis


def epoch_axis(epochs: Iterable) -> dict:
    """Layout keys of an epoch axis: a tick at every epoch while there are at most 20, never "1.5"."""
    values = [float(v) for v in epochs if v is not None and not pd.isna(v)]
    return {"tickmode": "linear", "tick0": 0, "dtick": 1} if values and max(values) - min(values) <= 20 else {}


VALIDATE_ENV = "RNNREG_VALIDATE_FIGURES"  # "1": check every property name and value (the test suite sets it)


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """The figure of `data` (trace dicts) and `layout`.

    Plotly's validation (plus a deep copy of the template) costs 10-20 ms per figure, a third
    of a page switch's server time with three charts; the dicts are fixed code, so the test
    suite validates them (`$RNNREG_VALIDATE_FIGURES=1`) and the dashboard skips it.  The JSON
    sent to the browser is the same either way (tests/test_plots.py).
    """
    return go.Figure(data=data, layout=layout, _validate=os.environ.get(VALIDATE_ENV) == "1")


class _Grid:
    """A rows x cols grid of x/y panels laid out exactly as `plotly.subplots.make_subplots` does.

    The same axes (`xaxis`, `xaxis2`, ... numbered row by row from the top left), domains,
    shared-axis `matches` and title annotations, as a plain layout dict: `make_subplots` costs
    tens of milliseconds per grid, this costs none.  `shared_x`/`shared_y` take True, "rows" or
    "columns" as `make_subplots` does (True shares x down a column and y along a row).
    """

    def __init__(self, rows: int, cols: int, *, shared_x: bool | str = False, shared_y: bool | str = False,
                 h_spacing: float | None = None, v_spacing: float | None = None,
                 subplot_titles: Sequence[str] = (), column_titles: Sequence[str] = (),
                 row_titles: Sequence[str] = (), title_size: int = 16):
        self.rows, self.cols = rows, cols
        h = 0.2 / cols if h_spacing is None else h_spacing
        v = 0.3 / rows if v_spacing is None else v_spacing
        right = 0.98 if row_titles else 1.0  # room for the row titles
        width = (right - h * (cols - 1)) / cols
        height = (1.0 - v * (rows - 1)) / rows
        self.layout: dict = {}
        domains = {}
        for r in range(rows):  # r = 0 is the top row
            for c in range(cols):
                # summed, not multiplied, and clamped to [0, 1]: the very floats make_subplots gives
                x0 = sum([width] * c) + c * h
                y0 = sum([height] * (rows - 1 - r)) + (rows - 1 - r) * v
                domains[r, c] = ([x0, x0 + width], [min(max(y0, 0.0), 1.0), min(max(y0 + height, 0.0), 1.0)])
                x, y = self.axes(r + 1, c + 1)
                self.layout[_axis_key(x)] = {"anchor": y, "domain": domains[r, c][0]}
                self.layout[_axis_key(y)] = {"anchor": x, "domain": domains[r, c][1]}
        self._share("x", shared_x)
        self._share("y", shared_y)

        def title(text: str, x: float, y: float, **where) -> dict:
            return {"font": {"size": title_size}, "showarrow": False, "text": text, "x": x, "xref": "paper",
                    "y": y, "yref": "paper", **where}

        top = {"xanchor": "center", "yanchor": "bottom"}
        cells = [domains[r, c] for r in range(rows) for c in range(cols)]
        self.layout["annotations"] = (
            [title(t, sum(xd) / 2, yd[1], **top) for t, (xd, yd) in zip(subplot_titles, cells) if t]
            + [title(t, sum(domains[0, c][0]) / 2, domains[0, c][1][1], **top)
               for c, t in enumerate(column_titles) if t]
            + [title(t, domains[r, cols - 1][0][1], sum(domains[r, cols - 1][1]) / 2, xanchor="left",
                     yanchor="middle", textangle=90) for r, t in enumerate(row_titles) if t]
        )

    def axes(self, row: int, col: int) -> tuple[str, str]:
        """('x3', 'y3'): the axis ids of the panel at 1-based (row, col)."""
        n = (row - 1) * self.cols + col
        return ("x", "y") if n == 1 else (f"x{n}", f"y{n}")

    def _share(self, xy: str, shared: bool | str) -> None:
        i = "xy".index(xy)
        if shared == "columns" or (xy == "x" and shared is True):  # the bottom panel leads its column
            groups = [[self.axes(r, c)[i] for r in range(self.rows, 0, -1)] for c in range(1, self.cols + 1)]
            hide_labels = xy == "x"
        elif shared == "rows" or (xy == "y" and shared is True):  # the left panel leads its row
            groups = [[self.axes(r, c)[i] for c in range(1, self.cols + 1)] for r in range(self.rows, 0, -1)]
            hide_labels = xy == "y"
        else:
            return
        for first, *others in groups:
            for axis in others:
                self.layout[_axis_key(axis)]["matches"] = first
                if hide_labels:
                    self.layout[_axis_key(axis)]["showticklabels"] = False

    def axis_keys(self, xy: str, row: int | None = None) -> list[str]:
        """Layout keys of every x (or y) axis, or only those of panels in `row` (1-based)."""
        rows = range(1, self.rows + 1) if row is None else [row]
        return [_axis_key(self.axes(r, c)["xy".index(xy)]) for r in rows for c in range(1, self.cols + 1)]

    def on(self, row: int, col: int) -> dict:
        """The trace keys that put a trace on panel (row, col)."""
        x, y = self.axes(row, col)
        return {"xaxis": x, "yaxis": y}

    def domain_refs(self, row: int, col: int) -> dict:
        """Annotation keys that place x/y in the panel's own 0..1 box."""
        x, y = self.axes(row, col)
        return {"xref": f"{x} domain", "yref": f"{y} domain"}


def _axis_key(axis_id: str) -> str:
    """'x3' -> 'xaxis3', 'y' -> 'yaxis'."""
    return f"{axis_id[0]}axis{axis_id[1:]}"


def _grid_layout(title: str, grid: _Grid, *, height: int) -> dict:
    """`_layout` for panel grids: the legend sits above the panel titles instead of on them."""
    layout = {**_layout(title), **grid.layout}
    top, bottom = 130, 60
    plot_height = max(height - top - bottom, 1)
    layout["height"] = height
    layout["margin"].update(t=top, b=bottom)
    layout["legend"]["y"] = 1 + 40 / plot_height
    return layout


def _hline(x: pd.Series, y: float, name: str, *, color: str = "#555555", dash: str = "dot",
           label_position: str = "top left") -> dict:
    """A labelled horizontal line across the x range of the data, as a trace (works on log axes)."""
    lo, hi = (x.min(), x.max()) if len(x) else (0, 1)
    return {
        "type": "scatter", "x": [lo, hi], "y": [y, y], "mode": "lines+text", "name": name, "text": ["", name],
        "textposition": label_position, "textfont": {"size": FONT_SIZE - 3, "color": color},
        "line": {"color": color, "dash": dash, "width": 2}, "hovertemplate": f"{name}<extra></extra>",
        "showlegend": False,
    }


def empty_figure(title: str, message: str) -> go.Figure:
    """A figure that says why there is nothing to draw (instead of an empty grid)."""
    layout = _layout(title)
    layout.update(
        annotations=[{"text": message, "showarrow": False, "font": {"size": FONT_SIZE + 2}, "x": 0.5, "y": 0.5,
                      "xref": "paper", "yref": "paper"}],
        xaxis={"visible": False}, yaxis={"visible": False},
    )
    return _figure([], layout)


def _runs(df: pd.DataFrame, sort_by: str | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(run, label, rows) for each run in order of first appearance (the pick order), rows sorted by `sort_by`."""
    out = []
    for run, rows in df.groupby("run", sort=False):
        if sort_by is not None:
            rows = rows.sort_values(sort_by, kind="stable")
        label = str(rows["label"].iloc[0]) if "label" in rows else str(run)
        out.append((run, label, rows))
    return out


def _has(df: pd.DataFrame | None, *columns: str) -> bool:
    return df is not None and not df.empty and all(c in df.columns for c in columns)


def _x_column(df: pd.DataFrame, x: str) -> str:
    if x not in X_AXES:
        raise ValueError(f"x axis must be one of {sorted(X_AXES)}, got {x!r}")
    return x if x in df.columns and df[x].notna().any() else "epoch"


# --- perplexity ---------------------------------------------------------------------------


def perplexity_figure(
    epochs: pd.DataFrame,
    colors: Mapping[str, str],
    *,
    x: str = "epoch",
    log_y: bool = False,
    reference_presets: Sequence[str] = (),
    title: str = "Perplexity: train (dashed) and validation (solid)",
) -> go.Figure:
    """Train (dashed) and valid (solid) perplexity per epoch, one colour per run.

    `reference_presets` draws the paper's Table 1 valid/test perplexity of those presets as
    dotted horizontal lines.
    """
    if not _has(epochs, "run", "epoch"):
        return empty_figure(title, "No finished epoch yet")
    xcol = _x_column(epochs, x)
    data = []
    for run, label, rows in _runs(epochs, "epoch"):
        color = _color(colors, run)
        for column, dash, name in (("train_ppl", "dash", "train"), ("valid_ppl", "solid", "valid")):
            if column not in rows or rows[column].isna().all():
                continue
            data.append({
                "type": "scatter", "x": rows[xcol], "y": rows[column], "mode": "lines+markers",
                "name": f"{label} · {name}", "legendgroup": run,
                "line": {"color": color, "dash": dash, "width": LINE_WIDTH}, "marker": {"size": 7},
                "hovertemplate": f"{label} {name}: %{{y:.1f}}<extra></extra>",
            })
    labels: list[tuple[float, str, int]] = []  # (value, text, vertical shift in px)
    for preset in dict.fromkeys(reference_presets):
        if preset not in PAPER_PERPLEXITY:
            continue
        valid, test = PAPER_PERPLEXITY[preset]
        for value, what in ((valid, "valid"), (test, "test")):
            line = _hline(epochs[xcol], value, f"paper {preset} {what} {value}")
            line.update(mode="lines", text=None)  # labelled beside the plot (below): a run that
            data.append(line)                     # reproduces the paper ends on its line
            labels.append((value, f"paper {preset} {what} {value}", 7 if what == "valid" else -7))
    layout = _layout(title, X_AXES[xcol], "perplexity" + (" (log scale)" if log_y else ""))
    # Two legend entries per run: beside the title they would wrap onto it from three runs on, so
    # they flow below the plot, in a bottom margin sized for them generously (a margin too small
    # would be widened by Plotly at the plot's expense, and the labels below need its height).
    names = [trace["name"] for trace in data if trace.get("showlegend", True)]
    rows = math.ceil(sum(LEGEND_CHAR_PX * len(name) + 50 for name in names) / LEGEND_WIDTH_PX)
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
        layout["annotations"] = [
            {"text": text, "x": 1, "xref": "paper", "xanchor": "left", "y": y, "yref": "y",
             "yshift": shift + (at - want), "yanchor": "middle", "showarrow": False,
             "font": {"size": FONT_SIZE - 3, "color": "#555555"}}
            for (value, text, shift), y, want, at in zip(labels, ys, wanted, placed)]
        layout["margin"]["r"] = max(layout["margin"].get("r", 0), 10 + 8 * max(len(text) for _, text, _ in labels))
    if xcol == "epoch":
        layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    if log_y:
        layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    if labels:
        layout["yaxis"]["range"] = y_range
    return _figure(data, layout)


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


def gap_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, x: str = "epoch") -> go.Figure:
    """The generalisation gap, valid minus train perplexity: it grows when a model overfits."""
    title = "Generalisation gap: valid − train perplexity"
    if not _has(epochs, "run", "epoch", "train_ppl", "valid_ppl"):
        return empty_figure(title, "No finished epoch yet")
    xcol = _x_column(epochs, x)
    data = [{
        "type": "scatter", "x": rows[xcol], "y": rows["valid_ppl"] - rows["train_ppl"], "mode": "lines+markers",
        "name": label, "line": {"color": _color(colors, run), "width": LINE_WIDTH}, "marker": {"size": 7},
        "hovertemplate": f"{label}: %{{y:.1f}}<extra></extra>",
    } for run, label, rows in _runs(epochs, "epoch")]
    layout = _layout(title, X_AXES[xcol], "valid − train perplexity")
    if xcol == "epoch":
        layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    layout["shapes"] = [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": 0, "y1": 0,
                         "line": {"color": "#888888", "width": 1}}]  # the zero line
    return _figure(data, layout)


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
    if not _has(steps, "run", "step", "loss"):
        return empty_figure(title, "No training steps logged yet")
    xcol = x if x in steps.columns and steps[x].notna().any() else "step"
    data = []
    for run, label, rows in _runs(steps, "step"):
        color = _color(colors, run)
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
    return _figure(data, _layout(title, {"step": "step", **X_AXES}.get(xcol, xcol), "loss (nats/token)"))


# --- gradients ----------------------------------------------------------------------------


def grad_norm_figure(
    steps: pd.DataFrame, colors: Mapping[str, str], clips: Mapping[str, float], *, log_y: bool = True,
) -> go.Figure:
    """Global gradient norm per step before clipping, with each run's clip threshold drawn."""
    title = "Gradient norm before clipping (dotted: clip threshold)"
    if not _has(steps, "run", "step", "grad_norm"):
        return empty_figure(title, "No gradient norms logged yet")
    data = [{
        "type": "scatter", "x": rows["step"], "y": rows["grad_norm"], "mode": "lines", "name": label,
        "legendgroup": run, "line": {"color": _color(colors, run), "width": 2},
        "hovertemplate": f"{label}: %{{y:.2f}}<extra></extra>",
    } for run, label, rows in _runs(steps, "step")]
    for clip in sorted({float(c) for c in clips.values() if c is not None and not pd.isna(c)}):
        data.append(_hline(steps["step"], clip, f"clip {clip:g}", color="#222222"))
    layout = _layout(title, "step", "‖gradient‖ (L2)")
    if log_y:
        layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    return _figure(data, layout)


def layer_grad_figure(layers: pd.DataFrame, colors: Mapping[str, str], *, log_y: bool = True) -> go.Figure:
    """Per-layer gradient norms: one panel per layer (parameter group), one colour per run."""
    title = "Gradient norm per layer"
    if not _has(layers, "run", "step", "layer", "norm"):
        return empty_figure(title, "No per-layer gradient norms logged")
    names = list(dict.fromkeys(layers["layer"]))
    cols = min(len(names), 2)
    nrows = math.ceil(len(names) / cols)
    grid = _Grid(nrows, cols, subplot_titles=names, shared_x=True, v_spacing=0.12 if nrows > 1 else 0.0)
    by_layer = dict(iter(layers.groupby("layer", sort=False)))
    data = []
    for i, name in enumerate(names):
        for run, label, rows in _runs(by_layer[name], "step"):
            data.append({
                "type": "scatter", "x": rows["step"], "y": rows["norm"], "mode": "lines", "name": label,
                "legendgroup": run, "showlegend": i == 0, "line": {"color": _color(colors, run), "width": 2},
                "hovertemplate": f"{label}: %{{y:.3f}}<extra></extra>", **grid.on(i // cols + 1, i % cols + 1),
            })
    layout = _grid_layout(title, grid, height=max(400, 280 * nrows))
    for key in grid.axis_keys("x", row=nrows):
        layout[key]["title"] = {"text": "step"}
    if log_y:
        for key in grid.axis_keys("y"):  # each panel's own range
            y_id = "y" + key[len("yaxis"):]
            layout[key].update(log_axis(*(t["y"] for t in data if t["yaxis"] == y_id), max_ticks=5))
    return _figure(data, layout)


def clipped_fraction_figure(epochs: pd.DataFrame, colors: Mapping[str, str]) -> go.Figure:
    """Fraction of steps whose gradient was clipped, per epoch (grouped bars, one per run)."""
    title = "Fraction of steps clipped per epoch"
    if not _has(epochs, "run", "epoch", "clipped_fraction") or epochs["clipped_fraction"].isna().all():
        return empty_figure(title, "No clipping statistics logged yet")
    data = [{
        "type": "bar", "x": rows["epoch"], "y": rows["clipped_fraction"], "name": label,
        "marker": {"color": _color(colors, run)}, "hovertemplate": f"{label}: %{{y:.1%}}<extra></extra>",
    } for run, label, rows in _runs(epochs, "epoch")]
    layout = _layout(title, "epoch", "fraction clipped")
    layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    layout["barmode"] = "group"
    layout["yaxis"].update(range=[0, 1], tickformat=".0%")
    return _figure(data, layout)


def grad_through_time_figure(gtt: pd.DataFrame, colors: Mapping[str, str], *, epoch: int) -> go.Figure:
    """‖∂loss_t / ∂state_{t-k}‖ against k at one epoch: how far back the gradient reaches."""
    title = f"Gradient through time at epoch {epoch}"
    if not _has(gtt, "run", "epoch", "k", "norm"):
        return empty_figure(title, "No gradient-through-time probes logged")
    part = gtt[gtt["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No probe at epoch {epoch}")
    keys = list(dict.fromkeys(zip(part.get("layer", 0), part.get("wrt", ""))))
    data = []
    for run, label, rows in _runs(part, "k"):
        for j, (layer, wrt) in enumerate(keys):
            sel = rows[(rows.get("layer", 0) == layer) & (rows.get("wrt", "") == wrt)]
            if sel.empty:
                continue
            data.append({
                "type": "scatter", "x": sel["k"], "y": sel["norm"], "mode": "lines+markers",
                "name": f"{label} · layer {layer} {wrt}",
                "line": {"color": _color(colors, run), "dash": DASHES[j % len(DASHES)], "width": LINE_WIDTH},
            })
    layout = _layout(title, "steps back k", "gradient norm")
    layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    return _figure(data, layout)


# --- gates --------------------------------------------------------------------------------


def _bin_centers(edges: Sequence[float]) -> list[float]:
    return [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]


def _fractions(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts)) or 1.0
    return [c / total for c in counts]


def gate_histogram_figure(
    gates: pd.DataFrame, colors: Mapping[str, str], *, layer: int, epoch: int, gate_names: Sequence[str] = GATES,
) -> go.Figure:
    """Histograms of gate activations at one epoch: one row per gate, one column per run."""
    title = f"Gate activations, layer {layer}, epoch {epoch}"
    if not _has(gates, "run", "epoch", "layer", "gate", "bin_edges", "counts"):
        return empty_figure(title, "No gate statistics logged")
    layer_rows = gates[(gates["layer"] == layer) & gates["gate"].isin(gate_names)]
    part = layer_rows[layer_rows["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No gate statistics for layer {layer} at epoch {epoch}")
    present = [g for g in gate_names if g in set(part["gate"])]
    runs = _runs(layer_rows)  # every run gets its column; one without this epoch yet says so
    small = FONT_SIZE - 2  # every label on the grid: panel titles and saturation notes
    grid = _Grid(len(present), len(runs), shared_x="rows", v_spacing=0.06, h_spacing=0.04, title_size=small,
                 column_titles=[label for _, label, _ in runs], row_titles=[GATE_NAMES.get(g, g) for g in present])
    data, notes = [], []
    for c, (run, label, rows) in enumerate(runs, start=1):
        at_epoch = rows[rows["epoch"] == epoch].drop_duplicates("gate").set_index("gate")
        if at_epoch.empty:
            notes.append({"text": f"no epoch {epoch} yet", "x": 0.5, "y": 0.5, "showarrow": False,
                          "font": {"size": small}, **grid.domain_refs(1, c)})
        for r, gate in enumerate(present, start=1):
            if gate not in at_epoch.index:
                continue
            row = at_epoch.loc[gate]
            edges = list(row["bin_edges"])
            data.append({
                "type": "bar", "x": _bin_centers(edges), "y": _fractions(row["counts"]),
                "width": [b - a for a, b in zip(edges[:-1], edges[1:])], "name": label,
                "marker": {"color": _color(colors, run)}, "showlegend": False,
                "hovertemplate": f"{label} {gate}: %{{x:.2f}} → %{{y:.1%}}<extra></extra>", **grid.on(r, c),
            })
            sat = row.get("saturation")
            if sat is not None and not pd.isna(sat):
                notes.append({"text": f"saturated {float(sat):.0%}", "x": 0.5, "y": 1.0, "yanchor": "top",
                              "showarrow": False, "bgcolor": "rgba(255,255,255,0.8)", "font": {"size": small},
                              **grid.domain_refs(r, c)})
    layout = {**_layout(title), **grid.layout}
    layout["annotations"] = grid.layout["annotations"] + notes
    layout.update(height=max(420, 170 * len(present) + 120), bargap=0, hovermode="closest")
    layout["margin"].update(t=110, r=60)
    for key in grid.axis_keys("y"):
        layout[key].update(tickformat=".0%", nticks=3)
    return _figure(data, layout)


def saturation_figure(gates: pd.DataFrame, colors: Mapping[str, str], *, layer: int,
                      gate_names: Sequence[str] = ("i", "f", "o", "g")) -> go.Figure:
    """Fraction of saturated units (near 0/1 for sigmoids, ±1 for tanh) over epochs, per gate."""
    title = f"Saturation over epochs, layer {layer}"
    if not _has(gates, "run", "epoch", "layer", "gate", "saturation"):
        return empty_figure(title, "No gate statistics logged")
    part = gates[(gates["layer"] == layer) & gates["gate"].isin(gate_names)]
    present = [g for g in gate_names if g in set(part["gate"])]
    if not present:
        return empty_figure(title, f"No gate statistics for layer {layer}")
    cols = min(len(present), 2)
    nrows = math.ceil(len(present) / cols)
    grid = _Grid(nrows, cols, subplot_titles=[GATE_NAMES.get(g, g) for g in present], shared_x=True,
                 shared_y=True, v_spacing=0.14)
    by_gate = dict(iter(part.groupby("gate", sort=False)))
    data = []
    for i, gate in enumerate(present):
        for run, label, rows in _runs(by_gate[gate], "epoch"):
            data.append({
                "type": "scatter", "x": rows["epoch"], "y": rows["saturation"], "mode": "lines+markers",
                "name": label, "legendgroup": run, "showlegend": i == 0,
                "line": {"color": _color(colors, run), "width": LINE_WIDTH},
                "hovertemplate": f"{label}: %{{y:.1%}}<extra></extra>", **grid.on(i // cols + 1, i % cols + 1),
            })
    layout = _grid_layout(title, grid, height=max(420, 300 * nrows))
    for key in grid.axis_keys("y"):
        layout[key].update(tickformat=".0%", rangemode="tozero")
    for key in grid.axis_keys("x"):
        layout[key].update(epoch_axis(part["epoch"]))
    for key in grid.axis_keys("x", row=nrows):
        layout[key]["title"] = {"text": "epoch (0 = before training)"}
    return _figure(data, layout)


def gate_heatmap_figure(gates: pd.DataFrame, *, run: str, layer: int, gate: str) -> go.Figure:
    """One run's histogram of one gate over epochs: epoch on x, activation on y, share as colour."""
    part = gates[(gates["run"] == run) & (gates["layer"] == layer) & (gates["gate"] == gate)] \
        if _has(gates, "run", "layer", "gate", "bin_edges", "counts") else pd.DataFrame()
    label = str(part["label"].iloc[0]) if not part.empty and "label" in part else run
    title = f"{GATE_NAMES.get(gate, gate)} over epochs, layer {layer}: {label}"
    if part.empty:
        return empty_figure(title, "No gate statistics for this run")
    part = part.sort_values("epoch")
    edges = list(part.iloc[-1]["bin_edges"])
    z = [_fractions(c) for c in part["counts"]]
    width = max(len(row) for row in z)
    z = [row + [0.0] * (width - len(row)) for row in z]
    transposed = [list(col) for col in zip(*z)]  # (bins, epochs)
    layout = _layout(title, "epoch (0 = before training)", "activation")
    layout["xaxis"].update(epoch_axis(part["epoch"]))
    layout["hovermode"] = "closest"
    return _figure([{
        "type": "heatmap", "x": list(part["epoch"]), "y": _bin_centers(edges)[:width], "z": transposed,
        "colorscale": VIRIDIS, "colorbar": {"title": {"text": "share"}, "tickformat": ".0%"},
        "hovertemplate": "epoch %{x}, value %{y:.2f}: %{z:.1%}<extra></extra>",
    }], layout)


# --- runs overview ------------------------------------------------------------------------


# What a sweep's runs are judged by: (name in titles, colour-bar title, higher is better, scale).
SWEEP_METRICS: Mapping[str, tuple[str, str, bool, float]] = {
    "best_valid_ppl": ("Best validation perplexity", "valid ppl", False, 1.0),
    "test_accuracy": ("Test recall (memory task)", "recall %", True, 100.0),
}
# A sweep's second axis: (name in the title, axis title).
SWEEP_COLUMNS: Mapping[str, tuple[str, str]] = {"dropout": ("rate", "dropout rate (primary sites)"),
                                                "delay": ("delay T", "delay T (memory task)")}


def sweep_matrix_figure(results: pd.DataFrame, *, column: str = "dropout", value: str = "best_valid_ppl") -> go.Figure:
    """Placement x `column` (dropout rate, or the memory task's delay) heat map of `value`, mean
    (and sd) over the runs of a cell - the seeds, when the sweep varies nothing else.

    `results`: one row per run with placement, `column` and `value`; with a `state` column,
    only finished runs count (a running run's best validation perplexity so far is no result).
    """
    name, bar_title, higher_is_better, scale = SWEEP_METRICS[value]
    short, axis_title = SWEEP_COLUMNS.get(column, (column, column))
    title = f"{name}: placement x {short} (mean over seeds)"
    if "state" in results:
        results = results[results["state"] == "finished"]
    if not _has(results, "placement", column, value) or results[value].dropna().empty:
        return empty_figure(title, "No finished runs in this sweep yet")
    done = results.dropna(subset=[value]).assign(_value=lambda d: d[value] * scale)
    stats = done.groupby(["placement", column])["_value"].agg(["mean", "std", "count"]).reset_index()
    placements = sorted(stats["placement"].unique())
    columns = sorted(stats[column].unique())
    z, text = [], []
    for placement in placements:
        row_z, row_text = [], []
        for col in columns:
            cell = stats[(stats["placement"] == placement) & (stats[column] == col)]
            if cell.empty:
                row_z.append(None)
                row_text.append("")
                continue
            mean, sd, n = cell.iloc[0]["mean"], cell.iloc[0]["std"], int(cell.iloc[0]["count"])
            row_z.append(float(mean))
            row_text.append(f"{mean:.1f}" + (f" ± {sd:.1f}" if n > 1 else "") + f"<br>n={n}")
        z.append(row_z)
        text.append(row_text)
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{c:g}" for c in columns], y=placements, text=text, texttemplate="%{text}",
        colorscale="Viridis", reversescale=not higher_is_better,  # the better cells always light
        colorbar={"title": {"text": bar_title}}, hovertemplate="%{y} at %{x}: %{text}<extra></extra>",
    ))
    _style(fig, title, axis_title, "placement")
    fig.update_xaxes(type="category")
    fig.update_layout(height=max(320, 70 * len(placements) + 160), hovermode="closest")
    return fig


def sweep_bands_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, y: str = "valid_ppl",
                       log_y: bool = True) -> go.Figure:
    """Validation perplexity (or, `y="valid_accuracy"`, recall) per epoch for each config of a sweep:
    mean over seeds and a ±1 sd band.

    `epochs`: columns group (a config's label, the same for its seeds), run, epoch and `y`;
    `colors`: group -> colour.
    """
    what = "validation recall" if y == "valid_accuracy" else "validation perplexity"
    title = f"{what.capitalize()} by config: mean ± sd over seeds"
    if not _has(epochs, "group", "run", "epoch", y) or epochs.empty:
        return empty_figure(title, "No epochs recorded in this sweep yet")
    fig = go.Figure()
    shared: dict[str, int] = {}  # colour -> configs drawn in it so far: past the palette, a dash tells them apart
    for group in sorted(epochs["group"].unique(), key=natural_key):  # "T=2" before "T=10"
        part = epochs[epochs["group"] == group]
        stats = part.groupby("epoch")[y].agg(["mean", "std", "count"]).reset_index().sort_values("epoch")
        stats["std"] = stats["std"].fillna(0.0)
        color = colors.get(group, "#555555")
        dash = DASHES[shared.get(color, 0) % len(DASHES)]
        shared[color] = shared.get(color, 0) + 1
        x = list(stats["epoch"])
        upper = list(stats["mean"] + stats["std"])
        lower = list((stats["mean"] - stats["std"]).clip(lower=1e-9))
        fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=color,
                                 opacity=0.18, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=str(group)))
        seeds = int(part["run"].nunique())
        fig.add_trace(go.Scatter(x=x, y=list(stats["mean"]), mode="lines+markers",
                                 line={"color": color, "dash": dash},
                                 name=f"{group} (n={seeds})", legendgroup=str(group)))
    _style(fig, title, "epoch", what + (" (log scale)" if log_y else ""))
    if y == "valid_accuracy":
        fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    # one legend entry per config can be long: below the plot, clear of the title
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0},
                      margin={"b": 60 + 28 * epochs["group"].nunique()},
                      height=460 + 28 * epochs["group"].nunique())
    fig.update_xaxes(epoch_axis(epochs["epoch"]))
    if log_y:
        fig.update_yaxes(log_axis(*(trace.y for trace in fig.data)))
    return fig


def parallel_coordinates_figure(runs: pd.DataFrame, settings: Sequence[str]) -> go.Figure:
    """Settings against best validation perplexity; text settings (placement) become categories."""
    title = "Settings against best validation perplexity"
    if not _has(runs, "best_valid_ppl") or runs["best_valid_ppl"].notna().sum() == 0:
        return empty_figure(title, "No run has a validation perplexity yet")
    data = runs[runs["best_valid_ppl"].notna()]
    dimensions = []
    for column in settings:
        if column not in data:
            continue
        values = data[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            filled = values.astype(float).fillna(0.0)
            dimensions.append({"label": column.replace("_", " "), "values": filled})
        else:
            cats = sorted(map(str, values.fillna("—").unique()))
            codes = {c: i for i, c in enumerate(cats)}
            dimensions.append({
                "label": column.replace("_", " "), "values": [codes[str(v)] for v in values.fillna("—")],
                "tickvals": list(range(len(cats))), "ticktext": cats,
                "range": [-0.5, len(cats) - 0.5] if len(cats) > 1 else [-1, 1],
            })
    ppl = data["best_valid_ppl"].astype(float)
    dimensions.append({"label": "best valid ppl", "values": ppl, "tickformat": ".0f"})  # not 152.23
    fig = go.Figure(go.Parcoords(
        line={"color": ppl, "colorscale": "Viridis_r", "showscale": True,
              "colorbar": {"title": {"text": "valid ppl"}}},
        dimensions=dimensions, labelfont={"size": FONT_SIZE}, tickfont={"size": FONT_SIZE - 3},
    ))
    _style(fig, title)
    fig.update_layout(margin={"l": 90, "r": 90, "t": 110, "b": 40})
    return fig


# --- tables (presentation of numbers, also pure) ------------------------------------------


def flatten_config(config: Mapping, prefix: str = "") -> dict[str, object]:
    """{"model": {"layers": 2}} -> {"model.layers": 2}; lists and scalars are kept as leaves."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(a: Mapping, b: Mapping, *, names: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """The settings where two run configs differ (flattened keys), as a table with one row per key."""
    fa, fb = flatten_config(a), flatten_config(b)
    # An empty section ("dropout.rates": {}) whose entries the other run lists one by one is
    # left out: those rows already say "—" against each value.
    fa, fb = _without_empty_sections(fa, fb), _without_empty_sections(fb, fa)
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "—"), fb.get(key, "—")
        if va != vb:
            rows.append({"setting": key, names[0]: _cell(va), names[1]: _cell(vb)})
    return pd.DataFrame(rows, columns=["setting", *names])


def _without_empty_sections(flat: Mapping[str, object], other: Mapping[str, object]) -> dict[str, object]:
    return {key: value for key, value in flat.items()
            if not (value == {} and any(k.startswith(key + ".") for k in other))}


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Mapping) and not value:
        return "{}"
    return str(value)


RESULT_COLUMNS = (("label", "run"), ("preset", "preset"), ("placement", "placement"), ("rates", "dropout"),
                  ("epochs_done", "epochs"), ("best_valid_ppl", "best valid"), ("test_ppl", "test"))
NUMBER_COLUMNS = 3  # the last ones, right-aligned


def _result_columns(runs: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """RESULT_COLUMNS, and the settings that differ from the preset's where some run has any."""
    if "variant" in runs and runs["variant"].fillna("").astype(bool).any():
        return RESULT_COLUMNS[:4] + (("variant", "other settings"),) + RESULT_COLUMNS[4:]
    return RESULT_COLUMNS


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _result_cell(row: pd.Series, column: str) -> str:
    if column == "variant":  # '' is the preset's own settings
        return row.get(column) or "—"
    return _fmt(row.get(column))


def results_markdown(runs: pd.DataFrame) -> str:
    """A Markdown table of the runs' results (one row per run), ready to paste into notes."""
    columns = _result_columns(runs)
    header = [title for _, title in columns]
    align = ["---"] * (len(columns) - NUMBER_COLUMNS) + ["---:"] * NUMBER_COLUMNS
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for _, row in runs.iterrows():
        cells = [_result_cell(row, col).replace("|", "\\|") for col, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def results_latex(runs: pd.DataFrame) -> str:
    """A LaTeX `tabular` (booktabs) of the runs' results."""
    columns = _result_columns(runs)
    spec = "l" * (len(columns) - NUMBER_COLUMNS) + "r" * NUMBER_COLUMNS
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(title for _, title in columns) + r" \\", r"\midrule"]
    for _, row in runs.iterrows():
        lines.append(" & ".join(_latex_escape(_result_cell(row, col)) for col, _ in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML page of the figure (plotly.js inlined, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
