"""Sweeps and the run overview: a config matrix, mean ± sd bands over seeds, parallel coordinates."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from rnnreg.plots.colors import DASHES, natural_key
from rnnreg.plots.layout import (FONT_SIZE, Grid, build_figure, empty_figure, epoch_axis, grid_layout, has_columns,
                                 log_axis, styled)


# What a sweep's runs are judged by: (name in titles, colour-bar title, higher is better, scale).
SWEEP_METRICS: Mapping[str, tuple[str, str, bool, float]] = {
    "best_valid_ppl": ("Best validation perplexity", "valid ppl", False, 1.0),
    "test_accuracy": ("Test recall (memory task)", "recall %", True, 100.0),
}
# A sweep's second axis: (name in the title, axis title).
SWEEP_COLUMNS: Mapping[str, tuple[str, str]] = {"dropout": ("rate", "dropout rate (the highest of its sites)"),
                                                "delay": ("delay T", "delay T (memory task)")}


def sweep_configs(members: pd.DataFrame, *, column: str | None = None) -> pd.Series:
    """Each run's configuration, as a label: runs with the same label differ in their seed only.

    `members`: a sweep's runs (placement, rates, variant; delay for memory-task runs).  With
    `column` (the matrix's other axis: `dropout` or `delay`), what that axis shows is left out of
    the label where it is all that tells two configurations apart, so that a cell holds the
    seeds of one configuration and its rows read "zaremba", not "zaremba input 0.5, output 0.5".
    """
    def text(name: str) -> pd.Series:
        values = members[name] if name in members else pd.Series("", index=members.index)
        return values.fillna("").astype(str).replace("—", "")

    placement, rates, variant = text("placement"), text("rates"), text("variant")
    delay = members["delay"].astype("Int64").astype(str).where(members["delay"].notna(), "") \
        if "delay" in members else pd.Series("", index=members.index)

    def label(with_rates: bool) -> pd.Series:
        out = placement + rates.where(rates == "", " " + rates) if with_rates else placement
        out = out + variant.where(variant == "", " · " + variant)
        if column == "delay" or delay.nunique() < 2:  # on the other axis, or the same for all
            return out
        return out + delay.where(delay == "", " · T=" + delay)

    if column is None:
        return label(True).rename("config")
    cell = members[column] if column in members else pd.Series(0, index=members.index)
    rows = label(False)  # a site:NAME axis under the highest rate: only the rates tell those configs apart
    pooled = pd.DataFrame({"row": rows, "cell": cell, "rates": rates}).groupby(["row", "cell"])["rates"].nunique()
    return (label(True) if (pooled > 1).any() else rows).rename("config")


def sweep_matrix_figure(results: pd.DataFrame, *, column: str = "dropout", value: str = "best_valid_ppl") -> go.Figure:
    """Configuration x `column` (dropout rate, or the memory task's delay) heat map of `value`,
    mean (and sd) over the runs of a cell: the seeds of one configuration.

    `results`: one row per run with placement, `column` and `value` (and rates, variant, delay:
    rows are `sweep_configs`, so runs that differ in more than the seed never share a cell);
    with a `state` column, only finished runs count (a running run's best validation
    perplexity so far is no result).
    """
    name, bar_title, higher_is_better, scale = SWEEP_METRICS[value]
    short, axis_title = SWEEP_COLUMNS.get(column, (column, column))
    title = f"{name}: placement x {short}"  # short enough for 1024 px; how cells pool, in the subtitle
    if "state" in results:
        results = results[results["state"] == "finished"]
    if not has_columns(results, "placement", column, value) or results[value].dropna().empty:
        return empty_figure(title, "No finished runs in this sweep yet")
    done = results.dropna(subset=[value]).assign(_value=lambda d: d[value] * scale)
    done = done.assign(_config=sweep_configs(done, column=column))
    stats = done.groupby(["_config", column])["_value"].agg(["mean", "std", "count"]).reset_index()
    placements = sorted(stats["_config"].unique(), key=natural_key)
    columns = sorted(stats[column].unique())
    z, text = [], []
    for placement in placements:
        row_z, row_text = [], []
        for col in columns:
            cell = stats[(stats["_config"] == placement) & (stats[column] == col)]
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
    styled(fig, title, axis_title, "configuration")
    fig.update_layout(title={"subtitle": {"text": "mean ± sd over the seeds of a cell; n: its runs"
                                          if stats["count"].max() > 1 else "one run a cell (n=1): no seeds to pool"}})
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
    if not has_columns(epochs, "group", "run", "epoch", y) or epochs.empty:
        return empty_figure(title, "No epochs recorded in this sweep yet")
    if epochs.groupby("group")["run"].nunique().max() == 1:  # no band to draw: say so, not "± sd"
        title = f"{what.capitalize()} by config (one seed each)"
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
        # on a log axis a band below 0 has no place: it stops a decade under the mean (a spread that
        # wide says enough), else its edge at 1e-9 would stretch the axis over nine empty decades
        lower = stats["mean"] - stats["std"]
        lower = list(lower.clip(lower=stats["mean"] / 10) if log_y else lower)
        fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=color,
                                 opacity=0.18, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=str(group)))
        seeds = int(part["run"].nunique())
        fig.add_trace(go.Scatter(x=x, y=list(stats["mean"]), mode="lines+markers",
                                 line={"color": color, "dash": dash}, customdata=list(stats["count"]),
                                 hovertemplate=f"{group}<br>epoch %{{x}}: %{{y:.4g}} (mean of %{{customdata}} "
                                               "runs)<extra></extra>",
                                 name=f"{group} (n={seeds})", legendgroup=str(group)))
    styled(fig, title, "epoch", what + (" (log scale)" if log_y else ""))
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


MAX_SWEEP_PANELS = 6  # delays a sweep's recall chart draws a panel each for; more go to one chart


def sweep_panels_figure(epochs: pd.DataFrame, colors: Mapping[str, str], *, panel_title: str = "T") -> go.Figure:
    """Validation recall per epoch, a panel per value of the sweep's other axis (the memory task's
    delay T), a line per configuration in each (mean over its seeds): 20 lines in one chart had a
    19-entry legend and repeated colours; here each panel holds a handful, and a configuration
    keeps its colour in all of them.

    `epochs`: columns group (a configuration without the panel's axis, e.g. 'zaremba'), panel,
    run, epoch and valid_accuracy; `colors`: group -> colour.
    """
    title = "Validation recall by delay and configuration"
    if not has_columns(epochs, "group", "panel", "run", "epoch", "valid_accuracy") or epochs.empty:
        return empty_figure(title, "No epochs recorded in this sweep yet")
    panels = sorted(epochs["panel"].dropna().unique())[:MAX_SWEEP_PANELS]
    if not panels:
        return empty_figure(title, "No delays recorded in this sweep's runs")
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    grid = Grid(rows, cols, shared_x=True, shared_y=True, v_spacing=0.14 if rows > 1 else 0.0,
                subplot_titles=[f"{panel_title} = {p:g}" for p in panels], title_size=FONT_SIZE)
    data, shown = [], set()
    for i, panel in enumerate(panels):
        part = epochs[epochs["panel"] == panel]
        for group in sorted(part["group"].unique(), key=natural_key):
            runs = part[part["group"] == group]
            stats = runs.groupby("epoch")["valid_accuracy"].mean().sort_index()
            seeds = int(runs["run"].nunique())
            data.append({
                "type": "scatter", "x": list(stats.index), "y": list(stats), "mode": "lines",
                "name": str(group), "legendgroup": str(group), "showlegend": group not in shown,
                "line": {"color": colors.get(group, "#555555"), "width": 3},
                "hovertemplate": f"{group}, {panel_title} = {panel:g}<br>epoch %{{x}}: %{{y:.0%}}"
                                 + (f" (mean of {seeds} runs)" if seeds > 1 else "") + "<extra></extra>",
                **grid.on(i // cols + 1, i % cols + 1),
            })
            shown.add(group)
    layout = grid_layout(title, grid, height=max(420, 300 * rows))
    for key in grid.axis_keys("y"):
        layout[key].update({"tickformat": ".0%", "range": [0, 1.05]})
    for key in grid.axis_keys("x", row=rows):
        layout[key]["title"] = {"text": "epoch"}
    for r in range(1, rows + 1):
        layout[grid.axis_keys("y", row=r)[0]]["title"] = {"text": "recall"}
    return build_figure(data, layout)


def parallel_coordinates_figure(runs: pd.DataFrame, settings: Sequence[str]) -> go.Figure:
    """Settings against best validation perplexity; text settings (placement) become categories."""
    title = "Settings against best validation perplexity"
    if not has_columns(runs, "best_valid_ppl") or runs["best_valid_ppl"].notna().sum() == 0:
        return empty_figure(title, "No run has a validation perplexity yet")
    data = runs[runs["best_valid_ppl"].notna()]
    dimensions, same = [], []
    for column in settings:
        if column not in data:
            continue
        values = data[column]
        if len(data) > 1 and values.fillna("—").astype(str).nunique() == 1:  # an axis with one tick says nothing
            same.append(f"{column.replace('_', ' ')} {_setting_text(values.iloc[0])}")
            continue
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
    styled(fig, title + (f"<br><sup>the same for every run: {', '.join(same)}</sup>" if same else ""))
    # the axis labels sit above the plot area: a subtitle's line needs room above them
    fig.update_layout(margin={"l": 90, "r": 90, "t": 135 if same else 110, "b": 40})
    return fig


def _setting_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)
