"""The projector look every chart shares, its axes, and the figure builder.

Figures are assembled as plain dicts (traces and one layout) and wrapped once by `build_figure`.
Building them step by step (`add_trace(row=, col=)`, `add_annotation`, `update_*axes`)
validates at every step and costs ten times as much on a grid of panels; the dashboard
redraws these on every page switch.
"""

from __future__ import annotations

import functools
import html
import math
import os
from typing import Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

X_AXES: Mapping[str, str] = {"epoch": "epoch", "words": "words seen", "wall_s": "wall time (s)"}

FONT_SIZE = 16
LINE_WIDTH = 3


@functools.cache
def _template(name: str) -> dict:
    """Plotly's named template as plain data (each figure copies it: this one is never changed)."""
    return pio.templates[name].to_plotly_json()


# base_layout's legend, just above the plot; `legend_below` moves it where a chart left it there
LEGEND_ABOVE = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1}


def base_layout(title: str, x_title: str | None = None, y_title: str | None = None) -> dict:
    """The projector look as a layout dict (large fonts, white background, legend above the plot)."""
    layout = {
        "template": _template("plotly_white"),  # as data: plotly.js knows no template names
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "font": {"size": FONT_SIZE},
        "legend": dict(LEGEND_ABOVE),
        "margin": {"l": 70, "r": 20, "t": 90, "b": 60},
        "hovermode": "x unified",
    }
    if x_title is not None:
        layout["xaxis"] = {"title": {"text": x_title}}
    if y_title is not None:
        layout["yaxis"] = {"title": {"text": y_title}}
    return layout


LEGEND_ROW_PX, LEGEND_CHAR_PX, LEGEND_WIDTH_PX = 30, 9, 600  # legend rows counted for a narrow chart
DEFAULT_HEIGHT_PX = 450  # what Streamlit gives a figure that sets no height


def legend_rows(names: Sequence[str]) -> int:
    """How many rows a horizontal legend of these entries takes in a narrow chart."""
    return math.ceil(sum(LEGEND_CHAR_PX * len(name) + 50 for name in names) / LEGEND_WIDTH_PX)


def legend_below(fig: go.Figure) -> go.Figure:
    """Move `base_layout`'s legend from above the plot to the bottom of the figure, in a margin
    grown for its rows.  Above, a legend that wraps onto a second row grows into the title (from
    three runs on, or under a subtitle); a chart that placed its legend itself is left as it is."""
    legend = fig.layout.legend
    if (legend.y, legend.yanchor) != (LEGEND_ABOVE["y"], LEGEND_ABOVE["yanchor"]) or legend.yref == "container":
        return fig
    # (a Parcoords or Heatmap trace has no legend entry, some not even a `showlegend`)
    names = [t.name for t in fig.data if getattr(t, "showlegend", False) is not False and getattr(t, "name", None)]
    if len(names) < 2 and fig.layout.showlegend is not True:  # Plotly draws no legend for one trace
        return fig
    extra = LEGEND_ROW_PX * legend_rows(names)
    margin_b = fig.layout.margin.b if fig.layout.margin.b is not None else 60
    return fig.update_layout(
        legend={"yref": "container", "y": 0, "yanchor": "bottom", "xanchor": "left", "x": 0},
        margin={"b": margin_b + extra}, height=(fig.layout.height or DEFAULT_HEIGHT_PX) + extra)


def styled(fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None) -> go.Figure:
    """`base_layout` applied to a figure built trace by trace (one x and one y axis)."""
    return fig.update_layout(base_layout(title, x_title, y_title))


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


def build_figure(data: list[dict], layout: dict) -> go.Figure:
    """The figure of `data` (trace dicts) and `layout`.

    Plotly's validation (plus a deep copy of the template) costs 10-20 ms per figure, a third
    of a page switch's server time with three charts; the dicts are fixed code, so the test
    suite validates them (`$RNNREG_VALIDATE_FIGURES=1`) and the dashboard skips it.  The JSON
    sent to the browser is the same either way (tests/test_plots.py).
    """
    return go.Figure(data=data, layout=layout, _validate=os.environ.get(VALIDATE_ENV) == "1")


class Grid:
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
                self.layout[axis_key(x)] = {"anchor": y, "domain": domains[r, c][0]}
                self.layout[axis_key(y)] = {"anchor": x, "domain": domains[r, c][1]}
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
                self.layout[axis_key(axis)]["matches"] = first
                if hide_labels:
                    self.layout[axis_key(axis)]["showticklabels"] = False

    def axis_keys(self, xy: str, row: int | None = None) -> list[str]:
        """Layout keys of every x (or y) axis, or only those of panels in `row` (1-based)."""
        rows = range(1, self.rows + 1) if row is None else [row]
        return [axis_key(self.axes(r, c)["xy".index(xy)]) for r in rows for c in range(1, self.cols + 1)]

    def on(self, row: int, col: int) -> dict:
        """The trace keys that put a trace on panel (row, col)."""
        x, y = self.axes(row, col)
        return {"xaxis": x, "yaxis": y}

    def domain_refs(self, row: int, col: int) -> dict:
        """Annotation keys that place x/y in the panel's own 0..1 box."""
        x, y = self.axes(row, col)
        return {"xref": f"{x} domain", "yref": f"{y} domain"}

    def paper_box(self, row: int, col: int) -> tuple[list[float], list[float]]:
        """([x0, x1], [y0, y1]): the panel's box in paper coordinates (where an annotation can sit
        even when the panel has no trace: plotly.js draws no axes there, so "x3 domain" means nothing)."""
        x, y = self.axes(row, col)
        return self.layout[axis_key(x)]["domain"], self.layout[axis_key(y)]["domain"]


def axis_key(axis_id: str) -> str:
    """'x3' -> 'xaxis3', 'y' -> 'yaxis'."""
    return f"{axis_id[0]}axis{axis_id[1:]}"


def grid_layout(title: str, grid: Grid, *, height: int) -> dict:
    """`base_layout` for panel grids: the legend sits above the panel titles instead of on them, and
    below the figure's title (at 130 px a three-run legend ran into the title, seen in Chromium)."""
    layout = {**base_layout(title), **grid.layout}
    top, bottom = 155, 60
    plot_height = max(height - top - bottom, 1)
    layout["height"] = height
    layout["margin"].update(t=top, b=bottom)
    layout["legend"]["y"] = 1 + 40 / plot_height
    return layout


def hline(x: pd.Series, y: float, name: str, *, color: str = "#555555", dash: str = "dot",
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
    layout = base_layout(title)
    layout.update(
        annotations=[{"text": message, "showarrow": False, "font": {"size": FONT_SIZE + 2}, "x": 0.5, "y": 0.5,
                      "xref": "paper", "yref": "paper"}],
        xaxis={"visible": False}, yaxis={"visible": False},
    )
    return build_figure([], layout)


def by_run(df: pd.DataFrame, sort_by: str | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(run, label, rows) for each run in order of first appearance (the pick order), rows sorted by `sort_by`."""
    out = []
    for run, rows in df.groupby("run", sort=False):
        if sort_by is not None:
            rows = rows.sort_values(sort_by, kind="stable")
        label = plot_text(rows["label"].iloc[0]) if "label" in rows else plot_text(run)
        out.append((run, label, rows))
    return out


def plot_text(text: object) -> str:
    """A run's name as Plotly shows it: as typed.  Plotly reads <a href>, <b>, <br> in trace names,
    hover text and titles as markup, so a copied-in run named `<a href=...>` would put a link in
    the legend; its entities (&lt;) it shows as the characters.  A '%' becomes `&#37;`: a name is
    written into hover templates, where `%{y}` would be read as the point's value."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


def layer_name(layer: object) -> str:
    """'layer 1' for the records' layer 0: the records count from 0, every label a user reads from 1."""
    if layer is None or pd.isna(layer):
        return "layer ?"
    return f"layer {int(layer) + 1}"


def wrap_label(text: str, width: int, max_lines: int | None = None) -> str:
    """`text` broken into lines of about `width` characters ("<br>" between them), after a '-', '_',
    '·' or space where it can, so that a long run name fits a narrow panel's title; past `max_lines`
    the last line ends in '…'.  `text` may be escaped for Plotly (`plot_text`): it is wrapped as the
    characters it shows, each line escaped again, so that no line break cuts an `&lt;` in two."""
    text = html.unescape(text)
    if len(text) <= width:
        return plot_text(text)
    words, word = [], ""
    for ch in text:  # pieces that each end with their break character
        word += ch
        if ch in "-_· ":
            words.append(word)
            word = ""
    words.append(word)
    lines, line = [], ""
    for word in words:
        while len(word) > width:  # one piece too long for any line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if line and len(line) + len(word.rstrip()) > width:
            lines.append(line)
            line = ""
        line += word
    lines.append(line)
    lines = [piece.rstrip() for piece in lines if piece.strip()]
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:max(width - 1, 1)] + "…"
    return "<br>".join(plot_text(piece) for piece in lines)


def positive(values: pd.Series) -> pd.Series:
    """`values` for a log axis: non-positive ones become NaN, a gap in the line (plotly.js would
    otherwise draw a 0 as a plunge off the bottom of the axis)."""
    values = pd.to_numeric(values, errors="coerce")
    return values.where(values > 0)


def last_common_epoch(frame: pd.DataFrame) -> int | None:
    """The last epoch every run of `frame` has reached: the one to show first, where no run is missing."""
    if not has_columns(frame, "run", "epoch") or frame["epoch"].isna().all():
        return None
    return int(frame.groupby("run")["epoch"].max().min())


def has_columns(df: pd.DataFrame | None, *columns: str) -> bool:
    return df is not None and not df.empty and all(c in df.columns for c in columns)


def x_column(df: pd.DataFrame, x: str) -> str:
    if x not in X_AXES:
        raise ValueError(f"x axis must be one of {sorted(X_AXES)}, got {x!r}")
    return x if x in df.columns and df[x].notna().any() else "epoch"


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML page of the figure (plotly.js inlined, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
