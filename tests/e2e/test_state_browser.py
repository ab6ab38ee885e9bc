"""Real browser: a tab's controls show the values they were given after another tab was open (not their defaults)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import wait_idle
from tests.e2e.test_layout_browser import settle

pytestmark = pytest.mark.e2e

TIMEOUT = 60_000


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    wait_idle(page, TIMEOUT)
    settle(page)


def test_expand_and_seconds_of_training_survive_other_tabs(page, app_url):
    page.goto(f"{app_url}/?preset=resnet20")
    wait_idle(page, TIMEOUT)
    settle(page)
    expand = page.get_by_role("combobox", name="Expand")
    expand.click()
    page.get_by_role("option", name="stage2", exact=True).click()
    settle(page)
    assert page.get_by_role("combobox", name="Expand").input_value() == "stage2"
    open_tab(page, "Debug")
    open_tab(page, "Architecture")
    assert page.get_by_role("combobox", name="Expand").input_value() == "stage2"

    open_tab(page, "Train")
    seconds = page.get_by_role("spinbutton", name="Seconds, Train → result")
    seconds.fill("30")
    seconds.press("Enter")
    settle(page)
    open_tab(page, "Compare")
    open_tab(page, "Train")
    assert page.get_by_role("spinbutton", name="Seconds, Train → result").input_value() == "30"
    batch = page.get_by_role("combobox", name="Batch size")
    batch.click()
    page.get_by_role("option", name="256", exact=True).click()
    settle(page)
    open_tab(page, "Lessons")
    open_tab(page, "Train")
    assert page.get_by_role("combobox", name="Batch size").input_value() == "256"
    assert page.get_by_role("spinbutton", name="Seconds, Train → result").input_value() == "30"
