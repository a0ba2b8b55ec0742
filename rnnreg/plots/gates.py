"""Gates: activation histograms side by side, saturation over epochs, one gate over epochs."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from rnnreg.plots.colors import VIRIDIS, color_of
from rnnreg.plots.layout import (
    FONT_SIZE, LINE_WIDTH, Grid, base_layout, build_figure, by_run, empty_figure, epoch_axis, grid_layout, has_columns,
    layer_name, plot_text, wrap_label,
)

GATES: tuple[str, ...] = ("i", "f", "o", "g", "c", "h")
GATE_NAMES: Mapping[str, str] = {
    "i": "input gate i", "f": "forget gate f", "o": "output gate o",
    "g": "cell update g", "c": "cell state c", "h": "hidden state h",
}


def _bin_centers(edges: Sequence[float]) -> list[float]:
    return [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]


def _fractions(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts)) or 1.0
    return [c / total for c in counts]


MAX_HISTOGRAM_RUNS = 6  # columns of the histogram grid a page draws: past that a panel is too narrow to read
PLOT_PX = 480  # the grid width titles are wrapped for (about 430 px in a 1024-px window, 1000 in a 1600-px one)
ACTIVE_STATES = ("queued", "running")  # may still reach a later epoch (rnnreg.runs.ACTIVE_STATES; no run store here)


def missing_epoch_note(epoch: int, last_epoch: int | None, state: str | None) -> str:
    """Why a run has no histogram at `epoch`: it has not got there yet, or it never will."""
    if state in ACTIVE_STATES:
        return f"no epoch {epoch} yet"
    if state is not None and last_epoch is not None and last_epoch < epoch:
        return f"{'ended' if state == 'finished' else 'stopped'} at epoch {last_epoch}"
    return f"no epoch {epoch}"  # its state unknown, or a gap in its records


def gate_histogram_figure(
    gates: pd.DataFrame, colors: Mapping[str, str], *, layer: int, epoch: int, gate_names: Sequence[str] = GATES,
    states: Mapping[str, str] | None = None,
) -> go.Figure:
    """Histograms of gate activations at one epoch: one row per gate, one column per run.

    A gate's panels share their axes along the row, so the runs compare at a glance and only the
    left panel needs y labels.  Titles wrap to the column width, the gaps between columns shrink
    with their number (any number fits; a page shows at most MAX_HISTOGRAM_RUNS).  `states` (run ->
    state) words the note of a run without this epoch: "no epoch 55 yet" while it trains, "ended
    at epoch 13" once it is over.
    """
    title = f"Gate activations, {layer_name(layer)}, epoch {epoch}"
    if not has_columns(gates, "run", "epoch", "layer", "gate", "bin_edges", "counts"):
        return empty_figure(title, "No gate statistics logged")
    layer_rows = gates[(gates["layer"] == layer) & gates["gate"].isin(gate_names)]
    part = layer_rows[layer_rows["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No gate statistics for {layer_name(layer)} at epoch {epoch}")
    present = [g for g in gate_names if g in set(part["gate"])]
    runs = by_run(layer_rows)  # every run gets its column; one without this epoch says why
    cols = len(runs)
    small = FONT_SIZE - 2  # every label on the grid: panel titles and saturation notes
    h_spacing = min(0.06, 0.3 / (cols - 1)) if cols > 1 else 0.0  # never more than 0.3 of the width in gaps
    column_px = PLOT_PX * (0.98 - h_spacing * (cols - 1)) / cols
    short = column_px < 0.55 * small * len("saturated 100%")  # then a panel says "51%", the title says of what
    if short:  # narrow columns: smaller run names, wrapped
        small -= 2
    chars = max(6, int(column_px / (0.55 * small)))  # per line of a run's name
    titles = [wrap_label(label, chars, max_lines=4) for _, label, _ in runs]
    grid = Grid(len(present), cols, shared_x="rows", shared_y="rows", v_spacing=0.06, h_spacing=h_spacing,
                title_size=small, column_titles=titles, row_titles=[GATE_NAMES.get(g, g) for g in present])
    data, notes, highest = [], [], dict.fromkeys(present, 0.0)
    first_drawn: dict[str, int] = {}  # gate -> the first column with its panel drawn (it shows the y labels)
    for c, (run, label, rows) in enumerate(runs, start=1):
        at_epoch = rows[rows["epoch"] == epoch].drop_duplicates("gate").set_index("gate")
        if at_epoch.empty:  # said once, where the column's top panel would be
            last = rows["epoch"].max()
            note = missing_epoch_note(epoch, None if pd.isna(last) else int(last), (states or {}).get(run))
            (x0, x1), (y0, y1) = grid.paper_box(1, c)
            notes.append({"text": wrap_label(note, chars), "x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "xref": "paper",
                          "yref": "paper", "xanchor": "center", "showarrow": False, "font": {"size": small},
                          "bgcolor": "rgba(255,255,255,0.8)"})
        for r, gate in enumerate(present, start=1):
            if gate not in at_epoch.index:
                continue
            first_drawn.setdefault(gate, c)
            row = at_epoch.loc[gate]
            edges, shares = list(row["bin_edges"]), _fractions(row["counts"])
            highest[gate] = max([highest[gate], *shares])
            data.append({
                "type": "bar", "x": _bin_centers(edges), "y": shares,
                "width": [b - a for a, b in zip(edges[:-1], edges[1:])], "name": label,
                "marker": {"color": color_of(colors, run)}, "showlegend": False,
                "hovertemplate": f"{label} {gate}: %{{x:.2f}} → %{{y:.1%}}<extra></extra>", **grid.on(r, c),
            })
            sat = row.get("saturation")
            if sat is not None and not pd.isna(sat):
                notes.append({"text": f"{float(sat):.0%}" if short else f"saturated {float(sat):.0%}",
                              "x": 0.5, "y": 1.0, "yanchor": "top", "showarrow": False,
                              "bgcolor": "rgba(255,255,255,0.8)", "font": {"size": small}, **grid.domain_refs(r, c)})
    layout = {**base_layout(title), **grid.layout}
    if short:
        layout["title"]["subtitle"] = {"text": "top of each panel: the share of units saturated"}
    for note in grid.layout["annotations"]:
        if note.get("textangle") == 90:  # a row title: clear of the last panel's edge
            note["xshift"] = 6
    layout["annotations"] = grid.layout["annotations"] + notes
    top = (90 if short else 70) + (small + 4) * max(t.count("<br>") + 1 for t in titles)
    height = max(420, 170 * len(present) + top + 60)
    layout.update(height=height, bargap=0, hovermode="closest")
    layout["title"].update(y=1 - 16 / height, yanchor="top")  # at the top: the wrapped run names sit below it
    layout["margin"].update(t=top, r=60)
    tick_font = {"size": FONT_SIZE - 4}
    for r, gate in enumerate(present, start=1):
        for c, key in enumerate(grid.axis_keys("y", row=r), start=1):  # headroom above the bars for the note
            layout[key].update(tickformat=".0%", nticks=3, tickfont=tick_font, range=[0, 1.3 * highest[gate] or 1])
            if c == first_drawn[gate]:  # plotly.js draws no axes for a panel without a trace (a run
                layout[key]["showticklabels"] = True  # without this epoch): the first one drawn labels the row
        edges = list(part[part["gate"] == gate]["bin_edges"].iloc[0])
        ticks = [edges[0], (edges[0] + edges[-1]) / 2, edges[-1]]  # low, middle, high: never tilted
        for key in grid.axis_keys("x", row=r):
            layout[key].update(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], tickangle=0, tickfont=tick_font)
    return build_figure(data, layout)


def saturation_figure(gates: pd.DataFrame, colors: Mapping[str, str], *, layer: int,
                      gate_names: Sequence[str] = ("i", "f", "o", "g")) -> go.Figure:
    """Fraction of saturated units (near 0/1 for sigmoids, ±1 for tanh) over epochs, per gate."""
    title = f"Saturation over epochs, {layer_name(layer)}"
    if not has_columns(gates, "run", "epoch", "layer", "gate", "saturation"):
        return empty_figure(title, "No gate statistics logged")
    part = gates[(gates["layer"] == layer) & gates["gate"].isin(gate_names)]
    present = [g for g in gate_names if g in set(part["gate"])]
    if not present:
        return empty_figure(title, f"No gate statistics for {layer_name(layer)}")
    cols = min(len(present), 2)
    nrows = math.ceil(len(present) / cols)
    grid = Grid(nrows, cols, subplot_titles=[GATE_NAMES.get(g, g) for g in present], shared_x=True,
                 shared_y=True, v_spacing=0.14)
    by_gate = dict(iter(part.groupby("gate", sort=False)))
    data = []
    for i, gate in enumerate(present):
        for run, label, rows in by_run(by_gate[gate], "epoch"):
            data.append({
                "type": "scatter", "x": rows["epoch"], "y": rows["saturation"], "mode": "lines+markers",
                "name": label, "legendgroup": run, "showlegend": i == 0,
                "line": {"color": color_of(colors, run), "width": LINE_WIDTH},
                "hovertemplate": f"{label}: %{{y:.1%}}<extra></extra>", **grid.on(i // cols + 1, i % cols + 1),
            })
    layout = grid_layout(title, grid, height=max(420, 300 * nrows))
    for key in grid.axis_keys("y"):
        layout[key].update(tickformat=".0%", rangemode="tozero")
    for key in grid.axis_keys("x"):
        layout[key].update(epoch_axis(part["epoch"]))
    for key in grid.axis_keys("x", row=nrows):
        layout[key]["title"] = {"text": "epoch (0 = before training)"}
    return build_figure(data, layout)


def gate_heatmap_figure(gates: pd.DataFrame, *, run: str, layer: int, gate: str) -> go.Figure:
    """One run's histogram of one gate over epochs: epoch on x, activation on y, share as colour."""
    part = gates[(gates["run"] == run) & (gates["layer"] == layer) & (gates["gate"] == gate)] \
        if has_columns(gates, "run", "layer", "gate", "bin_edges", "counts") else pd.DataFrame()
    label = plot_text(part["label"].iloc[0] if not part.empty and "label" in part else run)
    title = f"{GATE_NAMES.get(gate, gate)} over epochs, {layer_name(layer)}: {label}"
    if part.empty:
        return empty_figure(title, "No gate statistics for this run")
    part = part.sort_values("epoch")
    edges = list(part.iloc[-1]["bin_edges"])
    z = [_fractions(c) for c in part["counts"]]
    width = max(len(row) for row in z)
    z = [row + [0.0] * (width - len(row)) for row in z]
    transposed = [list(col) for col in zip(*z)]  # (bins, epochs)
    # the colour scale by the trained epochs: at epoch 0 (uniform init) most units share one bin,
    # and a scale up to that share would leave every later epoch near black; above it, the top colour
    trained = [share for row, epoch in zip(z, part["epoch"]) if epoch > 0 for share in row]
    zmax = max(trained) if trained and max(trained) > 0 else None
    layout = base_layout(title, "epoch (0 = before training)", "activation")
    layout["xaxis"].update(epoch_axis(part["epoch"]))
    layout["hovermode"] = "closest"
    return build_figure([{
        "type": "heatmap", "x": list(part["epoch"]), "y": _bin_centers(edges)[:width], "z": transposed,
        "colorscale": VIRIDIS, "colorbar": {"title": {"text": "share"}, "tickformat": ".0%"},
        **({"zmin": 0.0, "zmax": zmax} if zmax is not None else {}),
        "hovertemplate": "epoch %{x}, value %{y:.2f}: %{z:.1%}<extra></extra>",
    }], layout)
