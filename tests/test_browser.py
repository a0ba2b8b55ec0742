"""The dashboard in a real browser: `streamlit run app.py` headless, every page in Chromium.

Asserts that Plotly charts render and that no Streamlit exception block shows, and saves one
screenshot per page under artifacts/screenshots/ (git-ignored) for a person to look at.
Skipped when /usr/bin/chromium is missing, unless RNNREG_REQUIRE_BROWSER=1 (then it fails).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from fixtures_runs import make_store, write_run

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
# url path -> charts the page must draw with the standard store and two runs picked
TABS = {  # page -> tab -> words of the chart title the tab draws
    "gates": {"Saturation over epochs": "saturation", "One gate over epochs": "forget gate f over epochs"},
    "gradients": {"Per layer": "per layer", "Steps clipped per epoch": "clipped", "Gradient through time": "through time"},
}
PAGES = {"": 3, "runs": 0, "launch": 2, "gradients": 2, "gates": 1, "compare": 1, "export": 0, "sweeps": 0}
# url path -> text that must be visible before the screenshot (besides the charts)
TEXTS = {"export": "| run | preset |", "runs": "Rename, resume or delete a run", "": "Generalisation gap"}


def browser_or_skip():
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "the playwright Python package is not installed"
    if missing:
        if os.environ.get("RNNREG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RNNREG_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard(runs_dir: Path, log_path: Path, app_dir: Path = REPO) -> Iterator[str]:
    """A headless Streamlit server of `app_dir`'s app.py on a free localhost port; stopped by its own pid."""
    port = free_port()
    env = {**os.environ, "RNNREG_RUNS_DIR": str(runs_dir)}
    env.pop("RNNREG_VALIDATE_FIGURES", None)  # the figures as users get them (AppTest runs validate them)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT,  # app_dir's rnnreg and pages too
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def dashboard_in_chromium(runs_dir: Path, log_path: Path) -> Iterator[tuple[str, object]]:
    """(url, browser): the dashboard served over `runs_dir`, and headless Chromium to open it."""
    sync_playwright = browser_or_skip()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with dashboard(runs_dir, log_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield url, browser
        finally:
            browser.close()


CHARTS_JS = "document.querySelectorAll('.js-plotly-plot').length"
RUNNING_JS = ("!!document.querySelector(\"[data-testid='stStatusWidget']\")"
              " && document.querySelector(\"[data-testid='stStatusWidget']\").innerText.includes('Running')")
# Elements left from the previous script run, shown faded until this run replaces or drops them: a
# click's rerun can start before the status widget says "Running" (seen taking a lecture screenshot).
STALE_JS = "document.querySelectorAll(\"[data-stale='true']\").length > 0"
BUSY_JS = f"({RUNNING_JS}) || ({STALE_JS})"
# Every page opens with a title or header: until the script has drawn it, nothing is settled.  A
# fresh server's first page was seen "settled" (no status widget, nothing stale) 0.7 s before its
# script drew anything, which made a screenshot of an empty page.
HEADING_JS = "!!document.querySelector(\"[data-testid='stMain'] h1, [data-testid='stMain'] h2\")"


def wait_until_settled(page, charts: int, timeout_ms: int = 30_000) -> None:
    """The app view is there, the page's heading is drawn, the script has stopped running (no stale
    element left), `charts` Plotly charts are drawn, and all of that still holds a moment later: a
    page may rerun once right after its first run (a widget reporting its initial value), and that
    rerun briefly replaces its charts; seen once on a loaded CI machine as '/gates: charts missing'
    after a single check."""
    page.wait_for_selector("[data-testid='stAppViewContainer']", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left_ms = max(1_000, int((deadline - time.monotonic()) * 1000))
        page.wait_for_function(f"{HEADING_JS} && {CHARTS_JS} >= {charts}", timeout=left_ms)
        page.wait_for_function(f"!({BUSY_JS})", timeout=left_ms)
        page.wait_for_timeout(600)  # let Plotly finish its transitions, and a rerun show itself
        if page.evaluate(f"{HEADING_JS} && {CHARTS_JS} >= {charts} && !({BUSY_JS})"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url}: not settled with {charts} charts within {timeout_ms} ms")


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    root = tmp_path / "runs"
    make_store(root)
    write_run(root / "reference", "20261101-000000-ref-medium", preset="demo", placement="zaremba", dropout=0.5,
              name="reference zaremba", seed=7)
    return root


def test_every_page_renders_in_chromium(runs_dir, tmp_path):
    log_path = tmp_path / "streamlit.log"
    with dashboard_in_chromium(runs_dir, log_path) as (url, browser):
        from playwright.sync_api import TimeoutError as PlaywrightTimeout  # there, since the browser is

        page = browser.new_page(viewport={"width": 1600, "height": 2000})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        for path, charts in PAGES.items():
            page.goto(f"{url}/{path}")
            wait_until_settled(page, charts)
            if path == "runs":  # the parallel coordinates are drawn on request
                page.get_by_text("Settings against best validation perplexity").first.click()
                wait_until_settled(page, 1)
                page.get_by_role("button", name="Delete…").click()  # the confirmation waits in a popover
                page.get_by_role("button", name="Yes, delete it").wait_for(state="visible", timeout=10_000)
                confirm = page.get_by_role("button", name="Yes, delete it")
                page.keyboard.press("Escape")
                try:  # (once in CI the popover did not take the key, pressed while it was still opening)
                    confirm.wait_for(state="hidden", timeout=5_000)
                except PlaywrightTimeout:  # a click outside closes it too, as a user would
                    page.get_by_role("heading", name="Runs").first.click()
                    confirm.wait_for(state="hidden", timeout=10_000)
            if path in TEXTS:
                page.get_by_text(TEXTS[path], exact=False).first.wait_for(timeout=30_000)
            exceptions = page.locator("[data-testid='stException']")
            assert exceptions.count() == 0, f"/{path}: {exceptions.first.inner_text()}"
            assert page.locator(".js-plotly-plot").count() >= charts, f"/{path}: charts missing"
            page.screenshot(path=str(SCREENSHOTS / f"{path or 'perplexity'}.png"))
            for tab in TABS.get(path, ()):  # lazy tabs: the view is computed and drawn when opened
                page.get_by_role("tab", name=tab).click()
                page.wait_for_function(
                    "([tab]) => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                    ".some(t => t.textContent.toLowerCase().includes(tab))", arg=[TABS[path][tab]], timeout=30_000)
                wait_until_settled(page, charts)
                assert page.locator("[data-testid='stException']").count() == 0, f"/{path} {tab}"
                page.screenshot(path=str(SCREENSHOTS / f"{path}-{TABS[path][tab].replace(' ', '-')}.png"))
        assert not errors, errors
    assert "Traceback" not in log_path.read_text()


def test_a_deep_link_on_a_fresh_server_gets_the_whole_app(runs_dir, tmp_path):
    """Streamlit's legacy pages/ discovery would run pages/gates.py without app.py here."""
    with dashboard_in_chromium(runs_dir, tmp_path / "streamlit.log") as (url, browser):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        elsewhere: list[str] = []  # a lecture hall may have no internet: the app asks nothing of it
        page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
        page.goto(f"{url}/gates")  # the very first request this server sees
        wait_until_settled(page, charts=0)
        page.get_by_role("heading", name="Gates").first.wait_for(timeout=30_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_text("Pick runs").first.wait_for(timeout=30_000)  # app.py's shared picker
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Compare two runs" in nav and "shared" not in nav, nav
        assert page.locator("[data-testid='stException']").count() == 0
        icons = page.eval_on_selector_all("link[rel~='icon']", "links => links.map(l => l.href)")
        assert icons and all(href.startswith(url) for href in icons), icons  # the app's own favicon.png
        assert not elsewhere, elsewhere


def test_the_run_picked_to_delete_is_the_run_deleted_after_its_state_changes(tmp_path):
    """A picker's value travels as its label, which names the run's state: when a run picked on the
    Runs page stopped training, Streamlit fell back to the first run of the list (seen in Chromium),
    and "Yes, delete it" deleted that one."""
    import json

    from rnnreg.runs import process_start_time

    root = tmp_path / "runs"
    trainers = {}
    for run_id in ("20261206-000001-one", "20261206-000000-two"):  # both training
        run_dir = write_run(root, run_id, name=run_id.rsplit("-", 1)[1], epochs_done=3, state="running")
        trainers[run_id] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        status = json.loads((run_dir / "status.json").read_text())
        status.update(pid=trainers[run_id].pid, pid_start=process_start_time(trainers[run_id].pid))
        (run_dir / "status.json").write_text(json.dumps(status))
    write_run(root, "20261205-000000-finished", name="finished", seed=2)
    try:
        with dashboard_in_chromium(root, tmp_path / "streamlit.log") as (url, browser):
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/runs")
            wait_until_settled(page, charts=0)
            picker = page.locator("[data-testid='stSelectbox']").filter(has_text="Run").last
            picker.click()
            options = page.get_by_role("option").all_inner_texts()
            # not the first: a fallback to the first would delete another run
            name, state = options[1].split(" · ")[0], options[1].split(" · ")[1].split(" ")[0]
            assert state == "running", options
            picked = next(r for r in trainers if r.endswith(f"-{name}"))
            page.get_by_role("option").nth(1).click()
            wait_until_settled(page, charts=0)
            trainers[picked].kill()  # its trainer dies: it reads interrupted from now on
            trainers[picked].wait()
            page.get_by_role("button", name="Refresh").click()
            page.wait_for_function(f"document.body.innerText.includes('{name} · interrupted')", timeout=30_000)
            wait_until_settled(page, charts=0)
            page.get_by_role("button", name="Delete…").click()
            page.get_by_role("button", name="Yes, delete it").click()  # at once, as a user might
            page.get_by_text(f"Deleted {name}").first.wait_for(timeout=30_000)
            wait_until_settled(page, charts=0)
            # the popover closes, or says what it deleted: a second click never meets another run's "Yes"
            assert page.get_by_role("button", name="Yes, delete it").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "runs-delete-after-state-change.png"))
    finally:
        for trainer in trainers.values():
            trainer.kill()
            trainer.wait()
    left = sorted(d.name for d in root.iterdir() if not d.name.startswith("."))
    assert left == sorted({"20261205-000000-finished", *trainers} - {picked})

def test_shipped_reference_runs_tell_the_story_at_once(tmp_path):
    """A fresh install opens on the shipped runs; this screenshot is the README's first picture."""
    import shutil

    browser_or_skip()
    shipped = REPO / "runs" / "reference"
    demo_runs = [d for d in shipped.iterdir() if d.is_dir() and "demo" in d.name] if shipped.is_dir() else []
    assert len(demo_runs) >= 2, "runs/reference/ should ship the demo runs without and with dropout"
    root = tmp_path / "runs"
    shutil.copytree(shipped, root / "reference")  # a copy: the app may write caches or slots
    with dashboard_in_chromium(root, tmp_path / "streamlit.log") as (url, browser):
        page = browser.new_page(viewport={"width": 1400, "height": 1150})
        page.goto(url)  # Perplexity is the landing page
        wait_until_settled(page, charts=3)
        assert page.locator("[data-testid='stException']").count() == 0
        legend = page.locator(".js-plotly-plot").first.inner_text()
        table_1 = [name for name in ("small-none-s0", "medium-zaremba-0.5-s0", "large-zaremba-0.65-s0")
                   if any(name in d.name for d in shipped.iterdir())]
        # The paper's Table 1 where the GPU reference runs ship, else the CPU demo pair.
        expected = table_1 if len(table_1) >= 2 else ("demo-no-dropout", "demo-zaremba-0.5")
        assert all(name in legend for name in expected), legend
        page.screenshot(path=str(SCREENSHOTS / "readme-dashboard.png"))
