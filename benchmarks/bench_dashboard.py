"""Dashboard timings in a real browser with 50 runs in the store (a benchmark, not a test).

    python benchmarks/bench_dashboard.py [--runs 50] [--repeat 3] [--store runs/]

Writes 50 synthetic finished runs (8 epochs, 320 logged steps and gate probes each) to a
temporary runs directory, starts `streamlit run app.py` headless, and measures in Chromium:
cold open (fresh server, first load until the first Plotly chart is drawn), warm reload, and
each page switch through the sidebar (click until the page's charts are drawn and the script
has stopped).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures_runs import make_many  # noqa: E402
from test_browser import CHROMIUM, CHROMIUM_ARGS, dashboard  # noqa: E402

PAGES = [("Gradients", 2), ("Gates", 1), ("Compare two runs", 1), ("Export", 0), ("Runs", 0), ("Launch", 0),
         ("Perplexity", 3)]  # the landing page last: a switch is measured from another page
CHARTS = "document.querySelectorAll('.js-plotly-plot .gtitle').length"  # titled: every real chart, not the prefetch
FIRST_CHART = f"{CHARTS} >= 1"
IDLE = ("!document.querySelector(\"[data-testid='stStatusWidget']\")"
        " || !document.querySelector(\"[data-testid='stStatusWidget']\").innerText.includes('Running')")


def settle(page, title: str, charts: int) -> None:
    page.wait_for_function(
        "([title, charts]) => [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === title)"
        f" && {CHARTS} >= charts",
        arg=[TITLES.get(title, title), charts], timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)


TITLES = {"Launch": "Launch a run"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of page switches")
    parser.add_argument("--store", type=Path, help="time a copy of this runs directory instead (e.g. runs/,"
                        " what a fresh install opens on) of --runs synthetic runs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        t = time.perf_counter()
        if args.store:
            shutil.copytree(args.store, root, ignore=shutil.ignore_patterns(".*"))
            print(f"store: a copy of {args.store}")
        else:
            make_many(root, args.runs)
            print(f"store: {args.runs} runs written in {time.perf_counter() - t:.1f} s")
        with dashboard(root, Path(tmp) / "streamlit.log") as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            t = time.perf_counter()
            page.goto(url)
            page.wait_for_function(FIRST_CHART, timeout=120_000)
            cold = time.perf_counter() - t
            settle(page, "Perplexity", 3)
            cold_idle = time.perf_counter() - t
            t = time.perf_counter()
            page.reload()
            page.wait_for_function(FIRST_CHART, timeout=60_000)
            warm = time.perf_counter() - t
            settle(page, "Perplexity", 3)
            switches: dict[str, list[float]] = {name: [] for name, _ in PAGES}
            for _ in range(args.repeat):
                for name, charts in PAGES:
                    t = time.perf_counter()
                    page.locator("[data-testid='stSidebarNav'] a", has_text=name).first.click()
                    settle(page, name, charts)
                    switches[name].append(time.perf_counter() - t)
            browser.close()
    print(f"cold open to first chart: {cold:.2f} s (page idle after {cold_idle:.2f} s)")
    print(f"warm reload to first chart: {warm:.2f} s")
    for name, times in switches.items():
        print(f"switch to {name:<17} median {statistics.median(times):.2f} s  max {max(times):.2f} s")


if __name__ == "__main__":
    main()
