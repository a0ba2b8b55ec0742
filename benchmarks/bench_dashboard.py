"""Dashboard timings in a real browser with 50 runs in the store (a benchmark, not a test).

    python benchmarks/bench_dashboard.py [--runs 50] [--repeat 3] [--store runs/] [--baseline REV]

Writes 50 synthetic finished runs (8 epochs, 320 logged steps and gate probes each) to a
temporary runs directory, starts `streamlit run app.py` headless, and measures in Chromium:
cold open (fresh server, first load until the first Plotly chart is drawn), warm reload, and
each page switch through the sidebar (click until the page's charts are drawn and the script
has stopped).

`--baseline REV` serves the dashboard of commit REV (its app.py, pages/ and rnnreg/, from
`git archive`) beside this working tree's, over the same store, and alternates the rounds of
page switches between the two, so that the shared machine's drift falls on both alike; the
medians are printed side by side.  Cold open and warm reload are taken once each, the
baseline's first: compare those over several runs of the command.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
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
APP_PATHS = ("app.py", "pages", "rnnreg", ".streamlit")  # what a dashboard server runs


def settle(page, title: str, charts: int) -> None:
    page.wait_for_function(
        "([title, charts]) => [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === title)"
        f" && {CHARTS} >= charts",
        arg=[TITLES.get(title, title), charts], timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)


TITLES = {"Launch": "Launch a run"}


def export_app(rev: str, into: Path) -> Path:
    """The dashboard's files at commit `rev`, written under `into`."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "--", *APP_PATHS], cwd=REPO,
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {rev}: git archive failed: {archive.stderr.decode().strip()}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


class Dashboard:
    """One dashboard server and the browser page on it, with the timings taken there."""

    def __init__(self, name: str, url: str, browser):
        self.name, self.url = name, url
        self.page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        self.cold = self.cold_idle = self.warm = float("nan")
        self.switches: dict[str, list[float]] = {page: [] for page, _ in PAGES}

    def open_cold_then_warm(self) -> None:
        t = time.perf_counter()
        self.page.goto(self.url)
        self.page.wait_for_function(FIRST_CHART, timeout=120_000)
        self.cold = time.perf_counter() - t
        settle(self.page, "Perplexity", 3)
        self.cold_idle = time.perf_counter() - t
        t = time.perf_counter()
        self.page.reload()
        self.page.wait_for_function(FIRST_CHART, timeout=60_000)
        self.warm = time.perf_counter() - t
        settle(self.page, "Perplexity", 3)

    def switch_round(self) -> None:
        for name, charts in PAGES:
            t = time.perf_counter()
            self.page.locator("[data-testid='stSidebarNav'] a", has_text=name).first.click()
            settle(self.page, name, charts)
            self.switches[name].append(time.perf_counter() - t)


def report(dashboards: list[Dashboard]) -> None:
    if len(dashboards) == 1:
        d = dashboards[0]
        print(f"cold open to first chart: {d.cold:.2f} s (page idle after {d.cold_idle:.2f} s)")
        print(f"warm reload to first chart: {d.warm:.2f} s")
        for name, times in d.switches.items():
            print(f"switch to {name:<17} median {statistics.median(times):.2f} s  max {max(times):.2f} s")
        return
    base, new = dashboards
    print(f"{'seconds':<36} {base.name:>16} {new.name:>16} {'ratio':>6}")
    rows = [("cold open to first chart", base.cold, new.cold), ("warm reload to first chart", base.warm, new.warm)]
    rows += [(f"switch to {name} (median)", statistics.median(base.switches[name]),
              statistics.median(new.switches[name])) for name, _ in PAGES]
    for what, b, n in rows:
        print(f"{what:<36} {b:>16.2f} {n:>16.2f} {n / b:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of page switches")
    parser.add_argument("--store", type=Path, help="time a copy of this runs directory instead (e.g. runs/,"
                        " what a fresh install opens on) of --runs synthetic runs")
    parser.add_argument("--baseline", metavar="REV", help="also time the dashboard of this commit, rounds alternating")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp) / "runs"
        t = time.perf_counter()
        if args.store:
            shutil.copytree(args.store, root, ignore=shutil.ignore_patterns(".*"))
            print(f"store: a copy of {args.store}")
        else:
            make_many(root, args.runs)
            print(f"store: {args.runs} runs written in {time.perf_counter() - t:.1f} s")
        apps = [("working tree", REPO)]
        if args.baseline:
            rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO, capture_output=True,
                                 text=True, check=False).stdout.strip() or args.baseline
            apps.insert(0, (f"baseline {rev}", export_app(args.baseline, Path(tmp) / "baseline")))
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        dashboards = []
        for i, (name, app_dir) in enumerate(apps):
            url = stack.enter_context(dashboard(root, Path(tmp) / f"streamlit-{i}.log", app_dir=app_dir))
            dashboards.append(Dashboard(name, url, browser))
        for d in dashboards:
            d.open_cold_then_warm()
        for round_ in range(args.repeat):
            for d in dashboards if round_ % 2 == 0 else reversed(dashboards):
                d.switch_round()
        report(dashboards)


if __name__ == "__main__":
    main()
