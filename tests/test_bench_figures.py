"""The benchmark scripts run and print their tables (shape, not speed)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_figures_prints_validated_beside_as_built_for_each_chart_page():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_figures.py"), "--repeat", "1"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x$", out, re.M)}
    assert set(rows) == {"Perplexity", "Gradients", "Gates"}, out
    assert all(validated > 0 and built > 0 for validated, built in rows.values())


def test_bench_plotly_draw_times_each_chart_in_chromium():
    from test_browser import browser_or_skip

    browser_or_skip()
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_plotly_draw.py"), "--rounds", "1"],
                         capture_output=True, text=True, check=True, timeout=180).stdout
    rows = dict(re.findall(r"^  (.+?)\s+([\d.]+) ms$", out, re.M))
    assert {"perplexity", "gap", "training loss", "gate grid", "gate grid, staticPlot"} <= set(rows), out
    assert all(float(ms) > 0 for ms in rows.values())
