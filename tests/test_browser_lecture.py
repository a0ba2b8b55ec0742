"""The lecture and poke pages in Chromium: every lecture step (normal and presentation mode) and a poke.

Screenshots go to artifacts/screenshots/lecture-*.png (git-ignored) for a person to look at: the
lecture is projected.  Skipped without /usr/bin/chromium unless RNNREG_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnreg import lecture
from test_browser import SCREENSHOTS, dashboard_in_chromium, wait_until_settled
from tests.fixtures_lecture import lecture_runs


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return lecture_runs(tmp_path_factory)["none"].parent.parent


def check(page, name: str, charts: int) -> None:
    wait_until_settled(page, charts)
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()}"
    assert page.locator(".js-plotly-plot").count() >= charts, f"{name}: charts missing"
    page.screenshot(path=str(SCREENSHOTS / f"lecture-{name}.png"))


def test_lecture_steps_and_poke_in_chromium(runs_dir, tmp_path):
    log_path = tmp_path / "streamlit.log"
    with dashboard_in_chromium(runs_dir, log_path) as (url, browser):
        errors: list[str] = []
        for mode, viewport in (("normal", {"width": 1600, "height": 1300}),
                               ("present", {"width": 1920, "height": 1080})):  # a projector
            page = browser.new_page(viewport=viewport)
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{url}/lecture")
            wait_until_settled(page, 1)
            if mode == "present":
                page.get_by_text("Presentation mode").click()
                wait_until_settled(page, 1)
                assert not page.locator("[data-testid='stSidebar']").is_visible()
            for index, step in enumerate(lecture.STEPS):
                page.get_by_role("heading", name=step.title).wait_for(timeout=30_000)
                check(page, f"{mode}-{index + 1}-{step.key}", 2 if step.key == "memory" else 1)
                if index < len(lecture.STEPS) - 1:
                    page.get_by_role("button", name="Next").first.click()
            page.close()
        page = browser.new_page(viewport={"width": 1600, "height": 2200})
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{url}/poke")
        wait_until_settled(page, 2)
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("In bold: your words").wait_for(timeout=30_000)  # under the text it wrote
        check(page, "poke", 2)
        assert not errors, errors
    assert "Traceback" not in log_path.read_text()


# The lecture on a projector: what a 1024 x 768 or 1280 x 720 screen must still show in presentation mode.
FITS_JS = {
    # the selected placement's name in the selectbox (Streamlit 1.67: a combobox input), in px
    "select_font": "parseFloat(getComputedStyle(document.querySelector("
                   "\"[data-testid='stSelectbox'] input\")).fontSize)",
    # the selectbox's text taller than its box, which hides what sticks out ('weight-drop' without its descenders)
    "select_clipped": """(() => { const i = document.querySelector("[data-testid='stSelectbox'] input");
        return i.scrollHeight > i.parentElement.getBoundingClientRect().height + 0.5
               || i.getBoundingClientRect().bottom > i.parentElement.getBoundingClientRect().bottom + 0.5; })()""",
    # per chart: [svg width, right end of the title, plot area width]
    "charts": """[...document.querySelectorAll('.js-plotly-plot')].map(p => {
        const svg = p.querySelector('svg.main-svg'), title = p.querySelector('.gtitle'),
              plot = p.querySelector('.nsewdrag');
        return [svg.getBoundingClientRect().width, title ? title.getBoundingClientRect().right -
                svg.getBoundingClientRect().left : 0, plot ? plot.getBoundingClientRect().width : 0]; })""",
    # [bottom of the step's sentence, top of its first chart, lowest bottom of that chart's plot area and
    # x axis (ticks and title)], in px from the top of the window
    "slide": """(() => { const plot = document.querySelector('.js-plotly-plot'),
        alert = document.querySelector("[data-testid='stAlert']");
        const parts = [plot.querySelector('.nsewdrag'), ...plot.querySelectorAll('.xtick text, .xtitle')];
        return [alert.getBoundingClientRect().bottom, plot.getBoundingClientRect().top,
                Math.max(...parts.map(e => e.getBoundingClientRect().bottom))]; })()""",
    # button labels cut short: an ellipsis, or a button past the edge of its column or of the page ('units rea')
    "cut": """[...document.querySelectorAll("[data-testid='stMain'] button")].filter(b => {
        const p = b.querySelector('p'), box = b.getBoundingClientRect(),
              column = b.closest("[data-testid='stColumn']") || document.querySelector("[data-testid='stMain']");
        return (p && p.scrollWidth > p.clientWidth + 1) || box.right > column.getBoundingClientRect().right + 1
               || box.right > window.innerWidth; }).map(b => b.textContent)""",
}


# Bar labels (at each bar's base) against published markers, their numbers and MC circles: the
# pairs whose drawn boxes overlap by more than a pixel.
LABEL_COLLISIONS_JS = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  const box = e => e.getBoundingClientRect();
  const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
                          && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const labels = [...plot.querySelectorAll('text.bartext')].filter(t => t.textContent.trim());
  const marks = [...plot.querySelectorAll('.scatterlayer .point, .scatterlayer .textpoint text')]
    .filter(m => box(m).width > 0);
  return labels.flatMap(l => marks.filter(m => overlap(box(l), box(m)))
    .map(m => `${l.textContent} / ${m.textContent || 'marker'}`));
}"""


@pytest.fixture(scope="module")
def shipped_dir(tmp_path_factory) -> Path:
    import shutil

    root = tmp_path_factory.mktemp("shipped") / "runs"
    shutil.copytree(Path(__file__).resolve().parent.parent / "runs" / "reference", root / "reference")
    return root


@pytest.mark.parametrize("width,height,present", [(1024, 768, True), (1280, 800, True), (1024, 768, False)])
def test_the_lecture_fits_a_projector(shipped_dir, tmp_path, width, height, present):
    """Presentation mode at projector resolutions, and the page with its sidebar on a small screen.
    On a 1280 x 800 projector (WXGA) each step is one slide: its sentence above its chart, and the
    chart down to its x axis, with no scrolling (the evidence chart's rows go on below)."""
    with dashboard_in_chromium(shipped_dir, tmp_path / "streamlit.log") as (url, browser):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{url}/lecture")
        wait_until_settled(page, 1, 60_000)
        if present:
            page.get_by_text("Presentation mode").click()
            wait_until_settled(page, 1)
        for index, step in enumerate(lecture.STEPS):
            page.get_by_role("heading", name=step.title).wait_for(timeout=60_000)  # a loaded 2-core CPU: slow reruns
            charts = 2 if step.key == "memory" else 1
            check(page, f"{'projector' if present else 'small'}-{width}x{height}-{index + 1}-{step.key}", charts)
            assert not page.evaluate(FITS_JS["cut"]), f"{step.key}: labels cut"
            for svg, title, plot in page.evaluate(FITS_JS["charts"]):
                assert title <= svg, f"{step.key}: a chart title runs past its chart ({title} > {svg} px)"
            sentence, chart_top, axis = page.evaluate(FITS_JS["slide"])
            assert sentence <= chart_top, f"{step.key}: the step's sentence is under its chart"
            if present and height >= 800 and step.key != "evidence":
                assert axis <= height, f"{step.key}: the chart's x axis is below the screen ({axis} > {height} px)"
            if step.key == "masks" and present:
                assert page.evaluate(FITS_JS["select_font"]) >= 24  # as large as the page's other text
                assert not page.evaluate(FITS_JS["select_clipped"])
            if step.key == "evidence":  # the bars, not the legend and labels, take the chart's width
                svg, _title, plot = page.evaluate(FITS_JS["charts"])[0]
                assert plot >= 0.4 * svg, f"evidence bars {plot} px of {svg}"
                assert page.evaluate(LABEL_COLLISIONS_JS) == []  # the rows below the fold too
            if index < len(lecture.STEPS) - 1:
                page.get_by_role("button", name="Next").first.click()
        page.close()
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()


def test_the_whole_evidence_chart_of_the_shipped_runs_reads_without_collisions(shipped_dir, tmp_path):
    """The evidence step at its full height (the projector test's screenshots stop at the top rows):
    no bar's number under a published marker, its number or an MC circle."""
    with dashboard_in_chromium(shipped_dir, tmp_path / "streamlit.log") as (url, browser):
        page = browser.new_page(viewport={"width": 1400, "height": 2600})
        page.goto(f"{url}/lecture")
        wait_until_settled(page, 1, 60_000)
        for step in lecture.STEPS[1:]:
            page.get_by_role("button", name="Next").first.click()
            page.get_by_role("heading", name=step.title).wait_for(timeout=60_000)
        check(page, "evidence-whole", 1)
        chart = page.locator(".js-plotly-plot").first.bounding_box()
        assert chart["y"] + chart["height"] <= 2600, "the screenshot does not hold the whole chart"
        assert page.evaluate(LABEL_COLLISIONS_JS) == []
        page.close()
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()


def test_the_live_pair_says_it_finished_without_a_click(tmp_path):
    """Step 1's chart refreshes in a fragment while the live pair trains; once both have ended,
    the whole page reruns by itself: the caption says finished and the Run button is offered again."""
    from playwright.sync_api import expect

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    with dashboard_in_chromium(runs_dir, tmp_path / "streamlit.log") as (url, browser):
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        page.goto(f"{url}/lecture")
        wait_until_settled(page, 1)
        button = page.get_by_role("button", name="Run both live on this CPU")
        button.click()
        page.get_by_text("Live runs:").wait_for(timeout=30_000)  # drawn above the button: it is redrawn a moment later
        expect(button).to_be_disabled(timeout=30_000)
        # two trainers at once, about 36 s on 2 free cores; nothing is clicked meanwhile
        page.get_by_text("lecture demo, dropout 0.5: finished").wait_for(timeout=300_000)
        assert "running" not in page.get_by_text("Live runs:").inner_text()
        expect(button).to_be_enabled(timeout=30_000)  # the page reruns by itself once its fragment saw them end
        page.screenshot(path=str(SCREENSHOTS / "lecture-live-pair-finished.png"))
