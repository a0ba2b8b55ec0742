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

import math
import re
from typing import Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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

X_AXES: Mapping[str, str] = {"epoch": "epoch", "words": "words seen", "wall_s": "wall time (s)"}
GATES: tuple[str, ...] = ("i", "f", "o", "g", "c", "h")
GATE_NAMES: Mapping[str, str] = {
    "i": "input gate i", "f": "forget gate f", "o": "output gate o",
    "g": "cell update g", "c": "cell state c", "h": "hidden state h",
}

FONT_SIZE = 16
LINE_WIDTH = 3


# --- colours -----------------------------------------------------------------------------


def assign_colors(run_ids: Iterable[str], previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """A colour for every run in `run_ids`, keeping each run's `previous` colour.

    New runs take the first palette colour no kept run uses, so picking or unpicking one run
    never recolours the others.  Runs not in `run_ids` are kept too (so a run picked again
    later gets its old colour back when it is still free).
    """
    colors = dict(previous or {})
    wanted = list(dict.fromkeys(run_ids))
    in_use = {colors[r] for r in wanted if r in colors}
    for run in wanted:
        if run in colors:
            continue
        free = [c for c in PALETTE if c not in in_use]
        color = free[0] if free else PALETTE[len(in_use) % len(PALETTE)]
        colors[run] = color
        in_use.add(color)
    return colors


def _color(colors: Mapping[str, str], run: str) -> str:
    return colors.get(run) or PALETTE[sum(map(ord, run)) % len(PALETTE)]


# --- common layout ------------------------------------------------------------------------


def _style(fig: go.Figure, title: str, x_title: str | None = None, y_title: str | None = None) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.01, "xanchor": "left"},
        font={"size": FONT_SIZE},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        margin={"l": 70, "r": 20, "t": 90, "b": 60},
        hovermode="x unified",
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def _style_subplots(fig: go.Figure, title: str, *, height: int) -> go.Figure:
    """`_style` for panel grids: the legend sits above the panel titles instead of on them."""
    _style(fig, title)
    top, bottom = 130, 60
    plot_height = max(height - top - bottom, 1)
    fig.update_layout(height=height, margin={"t": top, "b": bottom}, legend={"y": 1 + 40 / plot_height})
    return fig


def _hline(fig: go.Figure, x: pd.Series, y: float, name: str, *, color: str = "#555555", dash: str = "dot",
           label_position: str = "top left", **subplot) -> None:
    """A labelled horizontal line across the x range of the data, as a trace (works on log axes)."""
    lo, hi = (x.min(), x.max()) if len(x) else (0, 1)
    fig.add_trace(go.Scatter(
        x=[lo, hi], y=[y, y], mode="lines+text", name=name, text=["", name], textposition=label_position,
        textfont={"size": FONT_SIZE - 3, "color": color}, line={"color": color, "dash": dash, "width": 2},
        hovertemplate=f"{name}<extra></extra>", showlegend=False,
    ), **subplot)


def empty_figure(title: str, message: str) -> go.Figure:
    """A figure that says why there is nothing to draw (instead of an empty grid)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": FONT_SIZE + 2}, x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, title)


def _runs(df: pd.DataFrame, sort_by: str | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """(run, label, rows) for each run in order of first appearance (the pick order), rows sorted by `sort_by`."""
    out = []
    for run in dict.fromkeys(df["run"]):
        rows = df[df["run"] == run]
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
    fig = go.Figure()
    for run, label, rows in _runs(epochs, "epoch"):
        color = _color(colors, run)
        for column, dash, name in (("train_ppl", "dash", "train"), ("valid_ppl", "solid", "valid")):
            if column not in rows or rows[column].isna().all():
                continue
            fig.add_trace(go.Scatter(
                x=rows[xcol], y=rows[column], mode="lines+markers", name=f"{label} · {name}",
                legendgroup=run, line={"color": color, "dash": dash, "width": LINE_WIDTH},
                marker={"size": 7}, hovertemplate=f"{label} {name}: %{{y:.1f}}<extra></extra>",
            ))
    for preset in dict.fromkeys(reference_presets):
        if preset not in PAPER_PERPLEXITY:
            continue
        valid, test = PAPER_PERPLEXITY[preset]
        # valid above its line, test (lower) below its own: the two labels never overlap
        for value, what, where in ((valid, "valid", "top left"), (test, "test", "bottom left")):
            _hline(fig, epochs[xcol], value, f"paper {preset} {what} {value}", label_position=where)
    _style(fig, title, X_AXES[xcol], "perplexity" + (" (log scale)" if log_y else ""))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def gap_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, x: str = "epoch") -> go.Figure:
    """The generalisation gap, valid minus train perplexity: it grows when a model overfits."""
    title = "Generalisation gap: valid − train perplexity"
    if not _has(epochs, "run", "epoch", "train_ppl", "valid_ppl"):
        return empty_figure(title, "No finished epoch yet")
    xcol = _x_column(epochs, x)
    fig = go.Figure()
    for run, label, rows in _runs(epochs, "epoch"):
        fig.add_trace(go.Scatter(
            x=rows[xcol], y=rows["valid_ppl"] - rows["train_ppl"], mode="lines+markers", name=label,
            line={"color": _color(colors, run), "width": LINE_WIDTH}, marker={"size": 7},
            hovertemplate=f"{label}: %{{y:.1f}}<extra></extra>",
        ))
    fig.add_hline(y=0, line={"color": "#888888", "width": 1})
    return _style(fig, title, X_AXES[xcol], "valid − train perplexity")


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
    fig = go.Figure()
    for run, label, rows in _runs(steps, "step"):
        color = _color(colors, run)
        fig.add_trace(go.Scatter(
            x=rows[xcol], y=rows["loss"], mode="lines", name=f"{label} · raw", legendgroup=run,
            line={"color": color, "width": 1.5}, opacity=0.35 if smoothing > 0 else 1.0,
            showlegend=smoothing == 0, hovertemplate=f"{label} raw: %{{y:.3f}}<extra></extra>",
        ))
        if smoothing > 0:
            fig.add_trace(go.Scatter(
                x=rows[xcol], y=smooth(rows["loss"], smoothing), mode="lines", name=label,
                legendgroup=run, line={"color": color, "width": LINE_WIDTH},
                hovertemplate=f"{label} smoothed: %{{y:.3f}}<extra></extra>",
            ))
    return _style(fig, title, {"step": "step", **X_AXES}.get(xcol, xcol), "loss (nats/token)")


# --- gradients ----------------------------------------------------------------------------


def grad_norm_figure(
    steps: pd.DataFrame, colors: Mapping[str, str], clips: Mapping[str, float], *, log_y: bool = True,
) -> go.Figure:
    """Global gradient norm per step before clipping, with each run's clip threshold drawn."""
    title = "Gradient norm before clipping (dotted: clip threshold)"
    if not _has(steps, "run", "step", "grad_norm"):
        return empty_figure(title, "No gradient norms logged yet")
    fig = go.Figure()
    for run, label, rows in _runs(steps, "step"):
        color = _color(colors, run)
        fig.add_trace(go.Scatter(
            x=rows["step"], y=rows["grad_norm"], mode="lines", name=label, legendgroup=run,
            line={"color": color, "width": 2}, hovertemplate=f"{label}: %{{y:.2f}}<extra></extra>",
        ))
    for clip in sorted({float(c) for c in clips.values() if c is not None and not pd.isna(c)}):
        _hline(fig, steps["step"], clip, f"clip {clip:g}", color="#222222")
    _style(fig, title, "step", "‖gradient‖ (L2)")
    if log_y:
        fig.update_yaxes(type="log", dtick="D2")
    return fig


def layer_grad_figure(layers: pd.DataFrame, colors: Mapping[str, str], *, log_y: bool = True) -> go.Figure:
    """Per-layer gradient norms: one panel per layer (parameter group), one colour per run."""
    title = "Gradient norm per layer"
    if not _has(layers, "run", "step", "layer", "norm"):
        return empty_figure(title, "No per-layer gradient norms logged")
    names = list(dict.fromkeys(layers["layer"]))
    cols = min(len(names), 2)
    nrows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=names, shared_xaxes=True,
                        vertical_spacing=0.12 if nrows > 1 else 0.0)
    for i, name in enumerate(names):
        for run, label, rows in _runs(layers[layers["layer"] == name], "step"):
            fig.add_trace(go.Scatter(
                x=rows["step"], y=rows["norm"], mode="lines", name=label, legendgroup=run,
                showlegend=i == 0, line={"color": _color(colors, run), "width": 2},
                hovertemplate=f"{label}: %{{y:.3f}}<extra></extra>",
            ), row=i // cols + 1, col=i % cols + 1)
    _style_subplots(fig, title, height=max(400, 280 * nrows))
    fig.update_xaxes(title_text="step", row=nrows)
    if log_y:
        fig.update_yaxes(type="log", dtick="D2")  # label 1, 2, 5 only: readable in small panels
    return fig


def clipped_fraction_figure(epochs: pd.DataFrame, colors: Mapping[str, str]) -> go.Figure:
    """Fraction of steps whose gradient was clipped, per epoch (grouped bars, one per run)."""
    title = "Fraction of steps clipped per epoch"
    if not _has(epochs, "run", "epoch", "clipped_fraction") or epochs["clipped_fraction"].isna().all():
        return empty_figure(title, "No clipping statistics logged yet")
    fig = go.Figure()
    for run, label, rows in _runs(epochs, "epoch"):
        fig.add_trace(go.Bar(x=rows["epoch"], y=rows["clipped_fraction"], name=label,
                             marker_color=_color(colors, run),
                             hovertemplate=f"{label}: %{{y:.1%}}<extra></extra>"))
    _style(fig, title, "epoch", "fraction clipped")
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def grad_through_time_figure(gtt: pd.DataFrame, colors: Mapping[str, str], *, epoch: int) -> go.Figure:
    """‖∂loss_t / ∂state_{t-k}‖ against k at one epoch: how far back the gradient reaches."""
    title = f"Gradient through time at epoch {epoch}"
    if not _has(gtt, "run", "epoch", "k", "norm"):
        return empty_figure(title, "No gradient-through-time probes logged")
    part = gtt[gtt["epoch"] == epoch]
    if part.empty:
        return empty_figure(title, f"No probe at epoch {epoch}")
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot")
    keys = list(dict.fromkeys(zip(part.get("layer", 0), part.get("wrt", ""))))
    for run, label, rows in _runs(part, "k"):
        for j, (layer, wrt) in enumerate(keys):
            sel = rows[(rows.get("layer", 0) == layer) & (rows.get("wrt", "") == wrt)]
            if sel.empty:
                continue
            fig.add_trace(go.Scatter(
                x=sel["k"], y=sel["norm"], mode="lines+markers", name=f"{label} · layer {layer} {wrt}",
                line={"color": _color(colors, run), "dash": dashes[j % len(dashes)], "width": LINE_WIDTH},
            ))
    _style(fig, title, "steps back k", "gradient norm")
    fig.update_yaxes(type="log")
    return fig


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
    fig = make_subplots(
        rows=len(present), cols=len(runs), shared_xaxes="rows", vertical_spacing=0.06, horizontal_spacing=0.04,
        column_titles=[label for _, label, _ in runs], row_titles=[GATE_NAMES.get(g, g) for g in present],
    )
    for c, (run, label, rows) in enumerate(runs, start=1):
        rows = rows[rows["epoch"] == epoch]
        if rows.empty:
            fig.add_annotation(text=f"no epoch {epoch} yet", xref="x domain", yref="y domain", x=0.5, y=0.5,
                               showarrow=False, font={"size": FONT_SIZE}, row=1, col=c)
        for r, gate in enumerate(present, start=1):
            sel = rows[rows["gate"] == gate]
            if sel.empty:
                continue
            row = sel.iloc[0]
            edges = list(row["bin_edges"])
            widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
            sat = row.get("saturation")
            fig.add_trace(go.Bar(
                x=_bin_centers(edges), y=_fractions(row["counts"]), width=widths, name=label,
                marker_color=_color(colors, run), showlegend=False,
                hovertemplate=f"{label} {gate}: %{{x:.2f}} → %{{y:.1%}}<extra></extra>",
            ), row=r, col=c)
            if sat is not None and not pd.isna(sat):
                fig.add_annotation(text=f"saturated {float(sat):.0%}", xref="x domain", yref="y domain",
                                   x=0.5, y=1.0, yanchor="top", showarrow=False, bgcolor="rgba(255,255,255,0.8)",
                                   font={"size": FONT_SIZE - 4}, row=r, col=c)
    _style(fig, title)
    fig.update_layout(height=max(420, 170 * len(present) + 120), bargap=0, hovermode="closest",
                      margin={"t": 110, "r": 60})
    fig.update_yaxes(tickformat=".0%", nticks=3)
    fig.update_annotations(font_size=FONT_SIZE - 2)
    return fig


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
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[GATE_NAMES.get(g, g) for g in present],
                        shared_xaxes=True, shared_yaxes=True, vertical_spacing=0.14)
    for i, gate in enumerate(present):
        for run, label, rows in _runs(part[part["gate"] == gate], "epoch"):
            fig.add_trace(go.Scatter(
                x=rows["epoch"], y=rows["saturation"], mode="lines+markers", name=label, legendgroup=run,
                showlegend=i == 0, line={"color": _color(colors, run), "width": LINE_WIDTH},
                hovertemplate=f"{label}: %{{y:.1%}}<extra></extra>",
            ), row=i // cols + 1, col=i % cols + 1)
    _style_subplots(fig, title, height=max(420, 300 * nrows))
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="epoch (0 = before training)", row=nrows)
    return fig


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
    fig = go.Figure(go.Heatmap(
        x=list(part["epoch"]), y=_bin_centers(edges)[:width], z=transposed, colorscale="Viridis",
        colorbar={"title": {"text": "share"}, "tickformat": ".0%"},
        hovertemplate="epoch %{x}, value %{y:.2f}: %{z:.1%}<extra></extra>",
    ))
    _style(fig, title, "epoch (0 = before training)", "activation")
    fig.update_layout(hovermode="closest")
    return fig


# --- runs overview ------------------------------------------------------------------------


def sweep_matrix_figure(results: pd.DataFrame) -> go.Figure:
    """Placement x dropout rate heat map of best validation perplexity, mean (and sd) over seeds.

    `results`: one row per finished run with placement, dropout, best_valid_ppl.
    """
    title = "Best validation perplexity: placement x rate (mean over seeds)"
    if not _has(results, "placement", "dropout", "best_valid_ppl") or results["best_valid_ppl"].dropna().empty:
        return empty_figure(title, "No finished runs in this sweep yet")
    done = results.dropna(subset=["best_valid_ppl"])
    stats = done.groupby(["placement", "dropout"])["best_valid_ppl"].agg(["mean", "std", "count"]).reset_index()
    placements = sorted(stats["placement"].unique())
    rates = sorted(stats["dropout"].unique())
    z, text = [], []
    for placement in placements:
        row_z, row_text = [], []
        for rate in rates:
            cell = stats[(stats["placement"] == placement) & (stats["dropout"] == rate)]
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
        z=z, x=[f"{r:g}" for r in rates], y=placements, text=text, texttemplate="%{text}",
        colorscale="Viridis", reversescale=True, colorbar={"title": {"text": "valid ppl"}},
        hovertemplate="%{y} at %{x}: %{text}<extra></extra>",
    ))
    _style(fig, title, "dropout rate (primary sites)", "placement")
    fig.update_xaxes(type="category")
    fig.update_layout(height=max(320, 70 * len(placements) + 160), hovermode="closest")
    return fig


def sweep_bands_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, y: str = "valid_ppl",
                       log_y: bool = True) -> go.Figure:
    """Validation perplexity per epoch for each config of a sweep: mean over seeds and a ±1 sd band.

    `epochs`: columns group (a config's label, the same for its seeds), run, epoch and `y`;
    `colors`: group -> colour.
    """
    title = "Validation perplexity by config: mean ± sd over seeds"
    if not _has(epochs, "group", "run", "epoch", y) or epochs.empty:
        return empty_figure(title, "No epochs recorded in this sweep yet")
    fig = go.Figure()
    for group, part in epochs.groupby("group", sort=True):
        stats = part.groupby("epoch")[y].agg(["mean", "std", "count"]).reset_index().sort_values("epoch")
        stats["std"] = stats["std"].fillna(0.0)
        color = colors.get(group, "#555555")
        x = list(stats["epoch"])
        upper = list(stats["mean"] + stats["std"])
        lower = list((stats["mean"] - stats["std"]).clip(lower=1e-9))
        fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=color,
                                 opacity=0.18, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=str(group)))
        seeds = int(part["run"].nunique())
        fig.add_trace(go.Scatter(x=x, y=list(stats["mean"]), mode="lines+markers", line={"color": color},
                                 name=f"{group} (n={seeds})", legendgroup=str(group)))
    _style(fig, title, "epoch", "validation perplexity" + (" (log scale)" if log_y else ""))
    # one legend entry per config can be long: below the plot, clear of the title
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0},
                      margin={"b": 60 + 28 * epochs["group"].nunique()},
                      height=460 + 28 * epochs["group"].nunique())
    if epochs["epoch"].max() <= 20:  # whole epochs
        fig.update_xaxes(tickmode="linear", dtick=1)
    if log_y:
        fig.update_yaxes(type="log", dtick="D2")  # label 1, 2, 5 only
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
            dimensions.append({"label": column, "values": filled})
        else:
            cats = sorted(map(str, values.fillna("—").unique()))
            codes = {c: i for i, c in enumerate(cats)}
            dimensions.append({
                "label": column, "values": [codes[str(v)] for v in values.fillna("—")],
                "tickvals": list(range(len(cats))), "ticktext": cats,
                "range": [-0.5, len(cats) - 0.5] if len(cats) > 1 else [-1, 1],
            })
    ppl = data["best_valid_ppl"].astype(float)
    dimensions.append({"label": "best valid ppl", "values": ppl})
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
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, "—"), fb.get(key, "—")
        if va != vb:
            rows.append({"setting": key, names[0]: _cell(va), names[1]: _cell(vb)})
    return pd.DataFrame(rows, columns=["setting", *names])


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Mapping) and not value:
        return "{}"
    return str(value)


RESULT_COLUMNS = (("label", "run"), ("preset", "preset"), ("placement", "placement"), ("rates", "dropout"),
                  ("epochs_done", "epochs"), ("best_valid_ppl", "best valid"), ("test_ppl", "test"))


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def results_markdown(runs: pd.DataFrame) -> str:
    """A Markdown table of the runs' results (one row per run), ready to paste into notes."""
    header = [title for _, title in RESULT_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * 3) + "|"]
    for _, row in runs.iterrows():
        cells = [_fmt(row.get(col)).replace("|", "\\|") for col, _ in RESULT_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def results_latex(runs: pd.DataFrame) -> str:
    """A LaTeX `tabular` (booktabs) of the runs' results."""
    lines = [r"\begin{tabular}{llllrrr}", r"\toprule",
             " & ".join(title for _, title in RESULT_COLUMNS) + r" \\", r"\midrule"]
    for _, row in runs.iterrows():
        lines.append(" & ".join(_latex_escape(_fmt(row.get(col))) for col, _ in RESULT_COLUMNS) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML page of the figure (plotly.js inlined, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
