"""Real browser: the app loads in Chromium and shows the network's totals and layer table."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import screenshot, wait_idle

pytestmark = pytest.mark.e2e


def test_app_loads_and_shows_totals(page, app_url):
    page.goto(app_url)
    wait_idle(page)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=30_000)
    page.get_by_text("271k", exact=True).wait_for(timeout=30_000)
    metrics = page.locator('[data-testid="stMetric"]').all_inner_texts()
    assert any("Depth" in m and "20" in m for m in metrics), metrics
    assert any("271k" in m for m in metrics), metrics
    page.get_by_role("tab", name="Layers").click()  # the table lives in its own tab (drawn when opened)
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
    assert not page.locator('[data-testid="stException"]').count()
    path = screenshot(page, "app_default")
    assert path.stat().st_size > 10_000
