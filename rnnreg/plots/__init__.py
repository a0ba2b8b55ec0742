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

One module per kind of chart: `curves` (perplexity, gap, loss), `gradients`, `gates`, `sweeps`
(and the run overview), `tables` (numbers as text); `colors` and `layout` are what they all
share.  Pages use the names re-exported here (`plots.perplexity_figure`).
"""

from rnnreg.plots.colors import DASHES, GLYPHS, PALETTE, VIRIDIS, assign_colors, marker_symbols, natural_key
from rnnreg.plots.curves import (
    PAPER_PERPLEXITY, PERPLEXITY_PLOT_PX, TRAIN_NOTE, gap_figure, loss_figure, perplexity_figure, recall_figure,
    smooth, spread_apart,
)
from rnnreg.plots.gates import GATE_NAMES, GATES, gate_heatmap_figure, gate_histogram_figure, saturation_figure
from rnnreg.plots.gradients import (
    clipped_fraction_figure, grad_norm_figure, grad_through_time_figure, layer_grad_figure,
)
from rnnreg.plots.layout import (
    FONT_SIZE, LINE_WIDTH, VALIDATE_ENV, X_AXES, empty_figure, epoch_axis, figure_html, legend_below, log_axis,
    log_ticks, plot_text,
)
from rnnreg.plots.sweeps import (
    MAX_SWEEP_PANELS, SWEEP_COLUMNS, SWEEP_METRICS, parallel_coordinates_figure, sweep_bands_figure, sweep_configs,
    sweep_matrix_figure, sweep_panels_figure,
)
from rnnreg.plots.tables import config_diff, flatten_config, results_latex, results_markdown

__all__ = [
    "DASHES", "GLYPHS", "PALETTE", "VIRIDIS", "assign_colors", "marker_symbols", "natural_key", "PAPER_PERPLEXITY",
    "PERPLEXITY_PLOT_PX", "TRAIN_NOTE", "gap_figure", "loss_figure", "perplexity_figure", "recall_figure", "smooth",
    "spread_apart", "GATE_NAMES", "GATES", "gate_heatmap_figure", "gate_histogram_figure", "saturation_figure",
    "clipped_fraction_figure", "grad_norm_figure", "grad_through_time_figure", "layer_grad_figure", "FONT_SIZE",
    "LINE_WIDTH", "VALIDATE_ENV", "legend_below", "X_AXES", "empty_figure", "epoch_axis", "figure_html", "log_axis",
    "log_ticks", "plot_text", "MAX_SWEEP_PANELS", "SWEEP_COLUMNS", "SWEEP_METRICS", "parallel_coordinates_figure",
    "sweep_bands_figure", "sweep_panels_figure", "sweep_configs", "sweep_matrix_figure", "config_diff",
    "flatten_config", "results_latex", "results_markdown",
]
