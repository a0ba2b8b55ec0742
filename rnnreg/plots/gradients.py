"""Gradients: the norm before clipping, per layer, clipped steps per epoch, through time."""

from __future__ import annotations

import math
import re
from typing import Mapping

import pandas as pd
import plotly.graph_objects as go

from rnnreg.plots.colors import DASHES, color_of
from rnnreg.plots.layout import (
    LINE_WIDTH, Grid, base_layout, build_figure, by_run, empty_figure, epoch_axis, grid_layout, has_columns, hline,
    layer_name, log_axis, positive,
)

DASH_WORDS = {"solid": "solid", "dash": "dashed", "dot": "dotted", "dashdot": "dash-dot"}  # for DASHES in a key

ZERO_AT_K0 = {  # placement -> why its probe is exactly 0 at k = 0 (the probe is right: only a log axis cannot show it)
    "zoneout": "at k = 0 the loss does not depend on the zoned cell c_t (h_t is computed from the un-zoned "
               "candidate cell), so that norm is exactly 0",
}


def parameter_group_name(name: str) -> str:
    """What a user reads for a parameter group: 'LSTM layer 1' for the records' 'lstm.0' (the model's
    module name, counted from 0); 'embedding' and 'decoder' as they are."""
    match = re.fullmatch(r"lstm\.(\d+)", str(name))
    return f"LSTM {layer_name(int(match[1]))}" if match else str(name)


def grad_norm_figure(
    steps: pd.DataFrame, colors: Mapping[str, str], clips: Mapping[str, float], *, log_y: bool = True,
) -> go.Figure:
    """Global gradient norm per step before clipping, with each run's clip threshold drawn."""
    title = "Gradient norm before clipping (dotted: clip threshold)"
    if not has_columns(steps, "run", "step", "grad_norm"):
        return empty_figure(title, "No gradient norms logged yet")
    data = [{
        "type": "scatter", "x": rows["step"], "y": positive(rows["grad_norm"]) if log_y else rows["grad_norm"],
        "mode": "lines", "name": label,
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
    grid = Grid(nrows, cols, subplot_titles=[parameter_group_name(n) for n in names], shared_x=True,
                v_spacing=0.12 if nrows > 1 else 0.0)
    by_layer = dict(iter(layers.groupby("layer", sort=False)))
    data = []
    for i, name in enumerate(names):
        for run, label, rows in by_run(by_layer[name], "step"):
            data.append({
                "type": "scatter", "x": rows["step"], "y": positive(rows["norm"]) if log_y else rows["norm"],
                "mode": "lines", "name": label,
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
    """‖∂loss_t / ∂state_{t-k}‖ against k at one epoch: how far back the gradient reaches.

    The y axis is logarithmic: a norm of 0 (zoneout's cell at k = 0, see ZERO_AT_K0) is left out,
    a gap in its line, rather than drawn as a plunge off the axis; `zero_norms_note` says which.
    """
    title = f"Gradient through time at epoch {epoch}"
    if not has_columns(gtt, "run", "epoch", "k", "norm"):
        return empty_figure(title, "No gradient-through-time probes logged")
    part = gtt[gtt["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No probe at epoch {epoch}")
    keys = list(dict.fromkeys(zip(part.get("layer", 0), part.get("wrt", ""))))
    states = [f"{layer_name(layer)} {wrt}" for layer, wrt in keys]
    data = []
    for run, label, rows in by_run(part, "k"):
        lines = []
        for j, (layer, wrt) in enumerate(keys):
            sel = rows[(rows.get("layer", 0) == layer) & (rows.get("wrt", "") == wrt)]
            if not sel.empty:
                lines.append({
                    "type": "scatter", "x": sel["k"], "y": positive(sel["norm"]), "mode": "lines+markers",
                    "name": label, "meta": states[j], "legendgroup": run,  # one legend entry hides a run's lines
                    "hovertemplate": f"{label} · {states[j]}: %{{y:.3g}}<extra></extra>",
                    "line": {"color": color_of(colors, run), "dash": DASHES[j % len(DASHES)], "width": LINE_WIDTH},
                })
        for line in lines[1:]:  # a legend entry per run, not per run and state (9 runs made 36)
            line["showlegend"] = False
        data += lines
    layout = base_layout(title, "steps back k", "gradient norm")
    # the line style says which state: a key under the title, as the perplexity chart's "dashed"
    layout["title"]["subtitle"] = {"text": " · ".join(
        f"{DASH_WORDS[DASHES[j % len(DASHES)]]}: {state}" for j, state in enumerate(states))}
    layout["yaxis"].update(log_axis(*(trace["y"] for trace in data)))
    return build_figure(data, layout)


def missing_probes_note(gtt: pd.DataFrame, labels: Mapping[str, str], epoch: int) -> str | None:
    """Which of the runs `labels` (run -> label, in pick order) have no probe at `epoch`, and why."""
    have = gtt if has_columns(gtt, "run", "epoch") else pd.DataFrame({"run": [], "epoch": []})
    last = have.groupby("run")["epoch"].max()
    at_epoch = set(have.loc[have["epoch"] == epoch, "run"])
    missing = [f"{label} ({f'last probe at epoch {int(last[run])}' if run in last.index else 'no probes'})"
               for run, label in labels.items() if run not in at_epoch]
    return f"No probe at epoch {epoch}: {', '.join(missing)}." if missing else None


def zero_norms_note(gtt: pd.DataFrame, epoch: int, placements: Mapping[str, str]) -> str | None:
    """Which probes at `epoch` are 0 (not drawn on the log axis), and why where the placement says
    (`placements`: run -> dropout placement)."""
    if not has_columns(gtt, "run", "epoch", "k", "norm"):
        return None
    zero = gtt[(gtt["epoch"] == epoch) & (pd.to_numeric(gtt["norm"], errors="coerce") <= 0)]
    if zero.empty:
        return None
    parts, reasons = [], {}
    zero = zero.assign(layer=zero.get("layer", 0), wrt=zero.get("wrt", ""))
    for run, label, rows in by_run(zero, "k"):
        where = ", ".join(f"{layer_name(layer)} {wrt} at k = {', '.join(f'{k:g}' for k in group['k'])}"
                          for (layer, wrt), group in rows.groupby(["layer", "wrt"], sort=False, dropna=False))
        parts.append(f"{label} ({where})")
        placement = placements.get(run)
        if placement in ZERO_AT_K0:
            reasons[placement] = ZERO_AT_K0[placement]
    why = "".join(f" {placement}: {reason}." for placement, reason in reasons.items())
    return f"Not drawn on the log axis, a gap in the line (a norm of exactly 0): {'; '.join(parts)}.{why}"
