"""How long Plotly itself takes to draw the dashboard's charts, outside Streamlit (a benchmark, not a test).

    python benchmarks/bench_plotly_draw.py [--rounds 12]

Builds the charts a switch to Perplexity (3) and Gates (the 12-panel histogram grid) draws,
for two synthetic runs as `benchmarks/bench_dashboard.py` writes them, and times
`Plotly.newPlot` on each in headless Chromium (plotly.js from the plotly package, a bare page,
1140 px wide like the dashboard's main column).  The gate grid is also drawn without its
annotations, without shared-axis `matches`, without the template and as a static plot, to see
whether anything in the figure itself is expensive.  Rounds interleave every case (the order
reverses each round, the first two rounds warm up); medians in milliseconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd
import plotly
import plotly.io as pio

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures_runs import make_many  # noqa: E402
from test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from rnnreg import plots  # noqa: E402
from rnnreg.runs import load_run, list_runs  # noqa: E402

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DRAW = """async ([figure, config]) => {
  const div = document.getElementById('chart');
  Plotly.purge(div);
  const start = performance.now();
  await Plotly.newPlot(div, figure.data, Object.assign({}, figure.layout, {width: 1140}), config);
  div.getBoundingClientRect();  // layout included
  return performance.now() - start;
}"""


def dashboard_figures() -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_many(root, 2)
        frames: dict[str, list[pd.DataFrame]] = {"epochs": [], "steps": [], "gates": []}
        ids = []
        for summary in list_runs(root):
            ids.append(summary.id)
            run_frames = load_run(root, summary.id).frames()
            for kind in frames:
                frames[kind].append(run_frames[kind].assign(run=summary.id, label=summary.name or summary.id))
    epochs, steps, gates = (pd.concat(frames[k], ignore_index=True) for k in ("epochs", "steps", "gates"))
    colors = plots.assign_colors(ids)
    figures = {
        "perplexity": plots.perplexity_figure(epochs, colors, log_y=True),
        "gap": plots.gap_figure(epochs, colors),
        "training loss": plots.loss_figure(steps, colors, smoothing=0.6),
        "gate grid": plots.gate_histogram_figure(gates, colors, layer=0, epoch=int(gates["epoch"].max())),
    }
    return {name: json.loads(pio.to_json(fig.to_dict(), validate=False)) for name, fig in figures.items()}


def gate_grid_variants(grid: dict) -> dict[str, dict]:
    def variant(change) -> dict:
        figure = copy.deepcopy(grid)
        change(figure["layout"])
        return figure

    def drop_matches(layout: dict) -> None:
        for key, axis in layout.items():
            if key.startswith(("xaxis", "yaxis")):
                axis.pop("matches", None)

    return {
        "gate grid, no annotations": variant(lambda layout: layout.update(annotations=[])),
        "gate grid, no matches": variant(drop_matches),
        "gate grid, no template": variant(lambda layout: layout.update(template={"layout": {}})),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    figures = dashboard_figures()
    figures.update(gate_grid_variants(figures["gate grid"]))
    cases = [(name, figure, {"displaylogo": False}) for name, figure in figures.items()]
    cases.append(("gate grid, staticPlot", figures["gate grid"], {"staticPlot": True}))
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_content("<html><body><div id='chart'></div></body></html>")
        page.add_script_tag(path=str(PLOTLY_JS))
        version = page.evaluate("Plotly.version")
        for round_ in range(args.rounds + 2):
            for name, figure, config in cases if round_ % 2 else reversed(cases):
                ms = page.evaluate(DRAW, [figure, config])
                if round_ >= 2:
                    times[name].append(ms)
        browser.close()
    print(f"plotly.js {version} (from plotly {plotly.__version__}; Streamlit bundles its own copy),"
          f" Plotly.newPlot, median of {args.rounds} rounds:")
    for name, ms in times.items():
        print(f"  {name:<28} {statistics.median(ms):6.1f} ms")


if __name__ == "__main__":
    main()
