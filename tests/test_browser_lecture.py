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
        page.locator("blockquote").first.wait_for(timeout=30_000)
        check(page, "poke", 2)
        assert not errors, errors
    assert "Traceback" not in log_path.read_text()
