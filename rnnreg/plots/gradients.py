"""Gradients: the norm before clipping, per layer, clipped steps per epoch, through time."""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd
import plotly.graph_objects as go

from rnnreg.plots.colors import DASHES, color_of
from rnnreg.plots.layout import (
    LINE_WIDTH, Grid, base_layout, build_figure, by_run, empty_figure, epoch_axis, grid_layout, has_columns, hline,
    log_axis,
)


def grad_norm_figure(
    steps: pd.DataFrame, colors: Mapping[str, str], clips: Mapping[str, float], *, log_y: bool = True,
) -> go.Figure:
    """Global gradient norm per step before clipping, with each run's clip threshold drawn."""
    title = "Gradient norm before clipping (dotted: clip threshold)"
    if not has_columns(steps, "run", "step", "grad_norm"):
        return empty_figure(title, "No gradient norms logged yet")
    data = [{
        "type": "scatter", "x": rows["step"], "y": rows["grad_norm"], "mode": "lines", "name": label,
        "legendgroup": run, "line": {"color": color_of(colors, run), "width": 2},
        "hovertemplate": f"{label}: %{{y:.2f}}<extra></extra>",
    } for run, label, rows in by_run(steps, "step")]
    for clip in sorted({float(c) for c in clips.values() if c is not None and not pd.isna(c)}):
        data.append(hline(steps["step"], clip, f"clip {clip:g}", color="#222222"))
    layout = base_layout(title, "step", "‖gradient‖ (L2)")
    if log_y:
        layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    return build_figure(data, layout)


def layer_grad_figure(layers: pd.DataFrame, colors: Mapping[str, str], *, log_y: bool = True) -> go.Figure:
    """Per-layer gradient norms: one panel per layer (parameter group), one colour per run."""
    title = "Gradient norm per layer"
    if not has_columns(layers, "run", "step", "layer", "norm"):
        return empty_figure(title, "No per-layer gradient norms logged")
    names = list(dict.fromkeys(layers["layer"]))
    cols = min(len(names), 2)
    nrows = math.ceil(len(names) / cols)
    grid = Grid(nrows, cols, subplot_titles=names, shared_x=True, v_spacing=0.12 if nrows > 1 else 0.0)
    by_layer = dict(iter(layers.groupby("layer", sort=False)))
    data = []
    for i, name in enumerate(names):
        for run, label, rows in by_run(by_layer[name], "step"):
            data.append({
                "type": "scatter", "x": rows["step"], "y": rows["norm"], "mode": "lines", "name": label,
                "legendgroup": run, "showlegend": i == 0, "line": {"color": color_of(colors, run), "width": 2},
                "hovertemplate": f"{label}: %{{y:.3f}}<extra></extra>", **grid.on(i // cols + 1, i % cols + 1),
            })
    layout = grid_layout(title, grid, height=max(400, 280 * nrows))
    for key in grid.axis_keys("x", row=nrows):
        layout[key]["title"] = {"text": "step"}
    if log_y:
        for key in grid.axis_keys("y"):  # each panel's own range
            y_id = "y" + key[len("yaxis"):]
            layout[key].update(log_axis(*(t["y"] for t in data if t["yaxis"] == y_id), max_ticks=5))
    return build_figure(data, layout)


def clipped_fraction_figure(epochs: pd.DataFrame, colors: Mapping[str, str]) -> go.Figure:
    """Fraction of steps whose gradient was clipped, per epoch (grouped bars, one per run)."""
    title = "Fraction of steps clipped per epoch"
    if not has_columns(epochs, "run", "epoch", "clipped_fraction") or epochs["clipped_fraction"].isna().all():
        return empty_figure(title, "No clipping statistics logged yet")
    data = [{
        "type": "bar", "x": rows["epoch"], "y": rows["clipped_fraction"], "name": label,
        "marker": {"color": color_of(colors, run)}, "hovertemplate": f"{label}: %{{y:.1%}}<extra></extra>",
    } for run, label, rows in by_run(epochs, "epoch")]
    layout = base_layout(title, "epoch", "fraction clipped")
    layout["xaxis"].update(epoch_axis(epochs["epoch"]))
    layout["barmode"] = "group"
    layout["yaxis"].update(range=[0, 1], tickformat=".0%")
    return build_figure(data, layout)


def grad_through_time_figure(gtt: pd.DataFrame, colors: Mapping[str, str], *, epoch: int) -> go.Figure:
    """‖∂loss_t / ∂state_{t-k}‖ against k at one epoch: how far back the gradient reaches."""
    title = f"Gradient through time at epoch {epoch}"
    if not has_columns(gtt, "run", "epoch", "k", "norm"):
        return empty_figure(title, "No gradient-through-time probes logged")
    part = gtt[gtt["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No probe at epoch {epoch}")
    keys = list(dict.fromkeys(zip(part.get("layer", 0), part.get("wrt", ""))))
    data = []
    for run, label, rows in by_run(part, "k"):
        for j, (layer, wrt) in enumerate(keys):
            sel = rows[(rows.get("layer", 0) == layer) & (rows.get("wrt", "") == wrt)]
            if sel.empty:
                continue
            data.append({
                "type": "scatter", "x": sel["k"], "y": sel["norm"], "mode": "lines+markers",
                "name": f"{label} · layer {layer} {wrt}",
                "line": {"color": color_of(colors, run), "dash": DASHES[j % len(DASHES)], "width": LINE_WIDTH},
            })
    layout = base_layout(title, "steps back k", "gradient norm")
    layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    return build_figure(data, layout)
