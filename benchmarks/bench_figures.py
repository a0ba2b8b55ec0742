"""Server-side cost of the dashboard's charts, validated by Plotly against as the dashboard builds them
(a benchmark, not a test).

    python benchmarks/bench_figures.py [--store runs/] [--repeat 20]

For the runs a fresh install opens on (the default pick of `--store`), builds the charts each chart
page draws first (Perplexity: 3, Gradients: 1, Gates: the 12-panel histogram grid) twice in the same
process, alternating: once with Plotly's property validation (what `rnnreg.plots` did before, and
what the test suite still does: `$RNNREG_VALIDATE_FIGURES=1`) and once without, as the dashboard
does now.  Each time includes what `st.plotly_chart` then does with the figure (`to_dict`, then
`plotly.io.to_json`).  Prints the median milliseconds side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import plotly.io as pio
from streamlit.logger import get_logger

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

get_logger("streamlit.runtime.caching.cache_data_api").setLevel("ERROR")  # "no runtime": there is none here
from pages.shared import store  # noqa: E402
from pages.shared.common import _default_pick  # noqa: E402
from rnnreg import plots  # noqa: E402


def picked_frames(root: Path) -> tuple[list[str], dict[str, pd.DataFrame], dict[str, float]]:
    table = store.run_table(root)
    picked = _default_pick(table)
    per_run = {r: store.run_frames(root, r) for r in picked}
    frames = {kind: pd.concat([per_run[r][kind].assign(run=r, label=r) for r in picked], ignore_index=True)
              for kind in ("epochs", "steps", "gates")}
    clips = {r: per_run[r]["config"].get("train", {}).get("clip") for r in picked}
    return picked, frames, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=REPO / "runs")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    picked, frames, clips = picked_frames(args.store)
    colors = plots.assign_colors(picked)
    last_epoch = int(frames["gates"].groupby("run")["epoch"].max().min())
    pages = {
        "Perplexity": [
            lambda: plots.perplexity_figure(frames["epochs"], colors, reference_presets=["small"]),
            lambda: plots.gap_figure(frames["epochs"], colors),
            lambda: plots.loss_figure(frames["steps"], colors, smoothing=0.6),
        ],
        "Gradients": [lambda: plots.grad_norm_figure(frames["steps"], colors, clips)],
        "Gates": [lambda: plots.gate_histogram_figure(frames["gates"], colors, layer=0, epoch=last_epoch)],
    }

    def page_ms(builders: list) -> float:
        t = time.perf_counter()
        for build in builders:
            pio.to_json(build().to_dict(), validate=False)  # as st.plotly_chart does
        return (time.perf_counter() - t) * 1000

    print(f"runs: {', '.join(picked)} (the default pick of {args.store}); {args.repeat} rounds, modes alternating")
    print(f"{'page':<12} {'validated ms':>13} {'as built ms':>12} {'ratio':>6}")
    for page, builders in pages.items():
        times: dict[str, list[float]] = {"1": [], "0": []}
        for i in range(args.repeat + 1):
            for mode in ("1", "0") if i % 2 else ("0", "1"):
                os.environ[plots.VALIDATE_ENV] = mode
                ms = page_ms(builders)
                if i:  # the first round warms caches
                    times[mode].append(ms)
        validated, built = statistics.median(times["1"]), statistics.median(times["0"])
        print(f"{page:<12} {validated:>13.1f} {built:>12.1f} {validated / built:>5.1f}x")


if __name__ == "__main__":
    main()
