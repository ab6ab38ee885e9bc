"""Real browser: the diagram draws and redraws, shared links apply, 'break it' shows red diagnostics; screenshots saved."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import screenshot, wait_idle

pytestmark = pytest.mark.e2e

SVG = '[data-pane="a"][data-state="ready"] svg'  # the diagram viewer's first pane (Playwright pierces its shadow root)
TIMEOUT = 60_000


def open_app(page, app_url: str, query: str = "") -> None:
    page.goto(f"{app_url}/{query}")
    wait_idle(page, TIMEOUT)
    page.wait_for_selector('[data-testid="stTabs"]', timeout=TIMEOUT)


def wait_diagram(page, title: str) -> int:
    """Wait until the drawn diagram's title mentions `title`; return its number of nodes."""
    page.locator(f"{SVG} text", has_text=title).first.wait_for(timeout=TIMEOUT)
    return page.locator(f"{SVG} g.node").count()


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def no_exception(page) -> None:
    assert not page.locator('[data-testid="stException"]').count()


def test_diagram_draws_and_redraws_on_preset_and_depth_change(page, app_url):
    open_app(page, app_url)
    nodes20 = wait_diagram(page, "ResNet-20 v1")
    assert nodes20 > 10
    # a deeper network: the slider moves to the next valid depth (6n+2: 20 → 26) and the diagram gains a node
    page.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]').first.focus()
    page.keyboard.press("ArrowRight")
    nodes26 = wait_diagram(page, "ResNet-26 v1")
    assert nodes26 > nodes20
    assert "depth=26" in page.url
    # another preset from the select box
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.keyboard.type("preact-resnet164")
    page.keyboard.press("Enter")
    wait_diagram(page, "ResNet-164 v2")
    wait_idle(page, TIMEOUT)
    assert metric(page, "Depth") == "164"
    assert "preset=preact-resnet164" in page.url
    no_exception(page)
    screenshot(page, "app_preset_change")


def test_shared_link_applies_its_settings(page, app_url):
    open_app(page, app_url, "?preset=resnet56&depth=110&shortcut=B&colour=red")
    wait_diagram(page, "ResNet-110 v1")
    assert metric(page, "Depth") == "110"
    assert page.get_by_role("radio", name="B · project when needed").is_checked()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="colour")
    assert alert.count() == 1  # the unknown parameter is named in a visible warning
    page.wait_for_function("() => !location.search.includes('colour')", timeout=TIMEOUT)
    assert re.search(r"shortcut=B", page.url) and "depth=110" in page.url
    no_exception(page)


def test_snapped_depth_warns(page, app_url):
    open_app(page, app_url, "?preset=resnet56&depth=111")
    wait_diagram(page, "ResNet-110 v1")
    page.locator('[data-testid="stAlert"]').filter(has_text="using depth 110").wait_for(timeout=TIMEOUT)
    no_exception(page)


def test_architecture_screenshot(page, app_url):
    page.set_viewport_size({"width": 1400, "height": 1050})
    open_app(page, app_url, "?preset=resnet56")
    wait_diagram(page, "ResNet-56 v1")
    no_exception(page)
    path = screenshot(page, "app_architecture")
    assert path.stat().st_size > 20_000


def test_break_it_shows_red_diagnostics_and_fix_repairs(page, app_url):
    open_app(page, app_url)
    page.get_by_role("tab", name="Debug").click()
    page.get_by_text("Every shape fits").wait_for(timeout=TIMEOUT)
    page.locator('[data-testid="stButton"]').filter(has_text="Break it").first.click()
    page.get_by_text("stage2_block1_add").first.wait_for(timeout=TIMEOUT)
    wait_idle(page, TIMEOUT)
    assert page.get_by_text("ERROR").count() >= 2
    assert "shortcut=identity" in page.url and "tab=Debug" in page.url
    screenshot(page, "app_debug")
    page.get_by_role("tab", name="Architecture").click()
    wait_diagram(page, "2 errors")
    red = page.locator(f'{SVG} [stroke="#d62728"]')
    assert red.count() >= 2  # the adds that cannot add, and the paths that break
    page.get_by_role("button", name="Open the debugger").click()
    page.get_by_role("button", name="Apply: shortcut = B").first.click()
    page.get_by_text("Every shape fits").wait_for(timeout=TIMEOUT)
    assert "shortcut=B" in page.url
    no_exception(page)


def test_layers_tab_screenshot(page, app_url):
    open_app(page, app_url, "?preset=resnet20&tab=Layers")
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=TIMEOUT)
    wait_idle(page, TIMEOUT)
    no_exception(page)
    screenshot(page, "app_layers")


def test_train_controls_keep_the_recipe_values_after_the_data_source_hid_them(page, app_url, tmp_path):
    """Controls hidden while the image folder is chosen (not drawn for some runs) come back with the recipe's values."""
    from tests.helpers import write_folders

    root = write_folders(tmp_path / "images", junk=False)
    open_app(page, app_url, "?preset=resnet20&tab=Train")
    page.get_by_text("Image folders", exact=True).first.click()
    wait_idle(page, TIMEOUT)
    box = page.get_by_role("textbox", name="Image folder")
    box.fill(str(root))
    box.press("Enter")
    wait_idle(page, TIMEOUT)
    page.get_by_text("Adapt to the folders", exact=False).first.click()
    wait_idle(page, TIMEOUT)
    batch = page.get_by_role("combobox", name="Batch size")
    batch.wait_for(timeout=TIMEOUT)
    assert batch.input_value() == "64"  # the short recipe's batch, not the select box's first option (32)
    assert page.get_by_role("checkbox", name="Random flips").is_checked()
    no_exception(page)
