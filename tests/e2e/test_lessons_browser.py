"""Real browser: each Lessons view draws for a real network; screenshots of each saved to test-artifacts/."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import screenshot, wait_idle

pytestmark = pytest.mark.e2e

TIMEOUT = 120_000


def test_every_lesson_view_draws(page, app_url):
    page.goto(f"{app_url}/?preset=resnet20&tab=Lessons")
    wait_idle(page, TIMEOUT)
    page.get_by_role("button", name="Measure gradient flow").first.click(timeout=TIMEOUT)
    page.get_by_text("first-conv gradient is").first.wait_for(timeout=TIMEOUT)
    assert page.locator(".js-plotly-plot").count() >= 1
    assert page.get_by_text("plain twin").first.is_visible()
    screenshot(page, "lesson_gradflow")

    page.get_by_role("tab", name="Receptive field").click()
    page.get_by_text("sees a", exact=False).first.wait_for(timeout=TIMEOUT)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=TIMEOUT)
    screenshot(page, "lesson_receptive_field")

    page.get_by_role("tab", name="Block anatomy").click()
    page.locator('[data-pane="a"][data-state="ready"] svg text', has_text="v2 basic").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "lesson_anatomy")

    page.get_by_role("tab", name="Degradation").click()
    page.get_by_role("button", name="Run the degradation lesson").wait_for(timeout=TIMEOUT)
    screenshot(page, "lesson_degradation")
    assert not page.locator('[data-testid="stException"]').count()
