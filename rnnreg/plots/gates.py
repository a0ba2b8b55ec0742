"""Gates: activation histograms side by side, saturation over epochs, one gate over epochs."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from rnnreg.plots.colors import VIRIDIS, color_of
from rnnreg.plots.layout import (
    FONT_SIZE, LINE_WIDTH, Grid, base_layout, build_figure, by_run, empty_figure, epoch_axis, grid_layout, has_columns,
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


def gate_histogram_figure(
    gates: pd.DataFrame, colors: Mapping[str, str], *, layer: int, epoch: int, gate_names: Sequence[str] = GATES,
) -> go.Figure:
    """Histograms of gate activations at one epoch: one row per gate, one column per run."""
    title = f"Gate activations, layer {layer}, epoch {epoch}"
    if not has_columns(gates, "run", "epoch", "layer", "gate", "bin_edges", "counts"):
        return empty_figure(title, "No gate statistics logged")
    layer_rows = gates[(gates["layer"] == layer) & gates["gate"].isin(gate_names)]
    part = layer_rows[layer_rows["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No gate statistics for layer {layer} at epoch {epoch}")
    present = [g for g in gate_names if g in set(part["gate"])]
    runs = by_run(layer_rows)  # every run gets its column; one without this epoch yet says so
    small = FONT_SIZE - 2  # every label on the grid: panel titles and saturation notes
    grid = Grid(len(present), len(runs), shared_x="rows", v_spacing=0.06, h_spacing=0.04, title_size=small,
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
                "marker": {"color": color_of(colors, run)}, "showlegend": False,
                "hovertemplate": f"{label} {gate}: %{{x:.2f}} → %{{y:.1%}}<extra></extra>", **grid.on(r, c),
            })
            sat = row.get("saturation")
            if sat is not None and not pd.isna(sat):
                notes.append({"text": f"saturated {float(sat):.0%}", "x": 0.5, "y": 1.0, "yanchor": "top",
                              "showarrow": False, "bgcolor": "rgba(255,255,255,0.8)", "font": {"size": small},
                              **grid.domain_refs(r, c)})
    layout = {**base_layout(title), **grid.layout}
    layout["annotations"] = grid.layout["annotations"] + notes
    layout.update(height=max(420, 170 * len(present) + 120), bargap=0, hovermode="closest")
    layout["margin"].update(t=110, r=60)
    for key in grid.axis_keys("y"):
        layout[key].update(tickformat=".0%", nticks=3)
    return build_figure(data, layout)


def saturation_figure(gates: pd.DataFrame, colors: Mapping[str, str], *, layer: int,
                      gate_names: Sequence[str] = ("i", "f", "o", "g")) -> go.Figure:
    """Fraction of saturated units (near 0/1 for sigmoids, ±1 for tanh) over epochs, per gate."""
    title = f"Saturation over epochs, layer {layer}"
    if not has_columns(gates, "run", "epoch", "layer", "gate", "saturation"):
        return empty_figure(title, "No gate statistics logged")
    part = gates[(gates["layer"] == layer) & gates["gate"].isin(gate_names)]
    present = [g for g in gate_names if g in set(part["gate"])]
    if not present:
        return empty_figure(title, f"No gate statistics for layer {layer}")
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
    layout = base_layout(title, "epoch (0 = before training)", "activation")
    layout["xaxis"].update(epoch_axis(part["epoch"]))
    layout["hovermode"] = "closest"
    return build_figure([{
        "type": "heatmap", "x": list(part["epoch"]), "y": _bin_centers(edges)[:width], "z": transposed,
        "colorscale": VIRIDIS, "colorbar": {"title": {"text": "share"}, "tickformat": ".0%"},
        "hovertemplate": "epoch %{x}, value %{y:.2f}: %{z:.1%}<extra></extra>",
    }], layout)
