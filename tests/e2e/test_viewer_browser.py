"""Real browser: the diagram viewer pans, zooms, fits, selects, searches, compares and exports; legible on a projector."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import screenshot, wait_idle

pytestmark = pytest.mark.e2e

TIMEOUT = 60_000
PANE = '[data-pane="{}"]'


def open_app(page, app_url: str, query: str = "") -> None:
    page.goto(f"{app_url}/{query}")
    wait_idle(page, TIMEOUT)
    page.wait_for_selector('[data-testid="stTabs"]', timeout=TIMEOUT)


def ready(page, title: str, pane: str = "a", timeout: float = TIMEOUT):
    """Wait until pane `pane` shows a drawing whose text mentions `title`; return the pane's locator."""
    loc = page.locator(f'{PANE.format(pane)}[data-state="ready"]')
    loc.locator("svg text", has_text=title).first.wait_for(timeout=timeout)
    return page.locator(PANE.format(pane))


def attr(loc, name: str) -> str:
    return loc.get_attribute(name) or ""


def transform(page, pane: str = "a") -> str:
    """The drawing's current CSS transform (what pan and zoom change)."""
    return page.locator(f"{PANE.format(pane)} svg").first.evaluate(
        "(svg) => { let e = svg; while (e && !(e.style && e.style.transform)) e = e.parentElement;"
        " return e ? e.style.transform : ''; }")


def node(page, name: str, pane: str = "a"):
    return page.locator(f'{PANE.format(pane)} g.node[data-name="{name}"]').first


def test_wheel_zoom_and_drag_change_the_view_and_fit_brings_it_back(page, app_url):
    open_app(page, app_url, "?preset=resnet20")
    pane = ready(page, "ResNet-20 v1")
    box = pane.bounding_box()
    assert float(attr(pane, "data-min-text-px")) >= 12  # the first view is readable
    scale0, t0 = float(attr(pane, "data-scale")), transform(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(400)
    scale1 = float(attr(pane, "data-scale"))
    assert scale1 > scale0 * 1.1, (scale0, scale1)
    t1 = transform(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 80, steps=8)
    page.mouse.up()
    t2 = transform(page)
    assert t1 != t0 and t2 != t1
    page.locator("button[aria-label='Fit']").first.click()
    page.wait_for_timeout(400)
    # the whole block view is in the pane
    svg = page.locator(f"{PANE.format('a')} svg").first.bounding_box()
    pane_box = pane.bounding_box()
    assert svg["x"] >= pane_box["x"] - 1 and svg["x"] + svg["width"] <= pane_box["x"] + pane_box["width"] + 1
    assert svg["y"] >= pane_box["y"] - 1 and svg["y"] + svg["height"] <= pane_box["y"] + pane_box["height"] + 1
    page.locator("button[aria-label='Readable']").first.click()
    page.wait_for_timeout(400)
    assert float(attr(pane, "data-min-text-px")) >= 12


def test_clicking_the_broken_add_shows_both_inputs_and_the_fix(page, app_url):
    open_app(page, app_url, "?preset=resnet20&shortcut=identity")
    ready(page, "ResNet-20 v1")
    search = page.locator("input[aria-label='Search nodes']").first
    search.fill("stage2_block1_add")  # brings it into view (the pane does not scroll)
    search.press("Escape")
    node(page, "stage2_block1_add").click()
    page.get_by_text("from stage1_block3_out").first.wait_for(timeout=TIMEOUT)
    panel = page.locator('[class*="st-key-details_panel"]')
    text = panel.inner_text()
    assert "16×16×32" in text and "32×32×16" in text
    assert panel.get_by_role("button", name=re.compile("Apply: shortcut")).count() >= 1
    page.wait_for_function("() => location.search.includes('node=stage2_block1_add')", timeout=TIMEOUT)
    assert attr(page.locator(PANE.format("a")), "data-selected") == "stage2_block1_add"
    screenshot(page, "viewer_clicked_mismatch")


def test_the_node_in_the_link_is_selected_on_load(page, app_url):
    open_app(page, app_url, "?preset=resnet56&node=stage3_block2_add")
    ready(page, "ResNet-56 v1")
    page.locator(f'{PANE.format("a")}[data-selected="stage3_block2_add"]').wait_for(timeout=TIMEOUT)
    selected = node(page, "stage3_block2_add")
    assert "selected" in (selected.get_attribute("class") or "")
    box, pane_box = selected.bounding_box(), page.locator(PANE.format("a")).bounding_box()
    assert pane_box["y"] <= box["y"] and box["y"] + box["height"] <= pane_box["y"] + pane_box["height"]  # centred on it
    assert page.locator('[class*="st-key-details_panel"]').inner_text().count("stage3_block2_add") >= 1


def test_search_highlights_matches_and_enter_steps_through_them(page, app_url):
    open_app(page, app_url, "?preset=resnet20")
    pane = ready(page, "ResNet-20 v1")
    box = page.locator("input[aria-label='Search nodes']").first
    box.fill("add")
    page.wait_for_timeout(300)
    matches = page.locator(f"{PANE.format('a')} g.node.match")
    assert matches.count() == 9  # one add per block
    t0 = transform(page)
    box.press("Enter")
    box.press("Enter")
    page.wait_for_timeout(400)
    assert transform(page) != t0  # the view moved to the next match
    box.fill("stage3_block2")
    page.wait_for_timeout(300)
    assert 1 <= page.locator(f"{PANE.format('a')} g.node.match").count() <= 2
    assert pane.is_visible()


def test_compare_view_colours_the_differences_and_syncs_selection(page, app_url):
    open_app(page, app_url, "?preset=resnet56")
    ready(page, "ResNet-56 v1")
    page.get_by_text("Compare networks", exact=True).click()
    ready(page, "ResNet-56", pane="a")
    ready(page, "ResNet-56", pane="b")
    marked = page.locator(f'{PANE.format("a")} g.node.mark-changed')
    assert marked.count() >= 9  # the blocks' adds (+ ReLU): the plain network keeps only the ReLU
    search = page.locator("input[aria-label='Search nodes']").first
    search.fill("stage2_block1 ")
    search.press("Escape")
    node(page, "stage2_block1", pane="a").click()
    page.locator(f'{PANE.format("b")}[data-selected="stage2_block1"]').wait_for(timeout=TIMEOUT)
    screenshot(page, "viewer_compare")


def test_projector_1024x768_presentation_mode_keeps_controls_whole_and_text_legible(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1024, "height": 768})
    page = ctx.new_page()
    try:
        open_app(page, app_url, "?preset=resnet20&present=1")
        pane = ready(page, "ResNet-20 v1")
        assert float(attr(pane, "data-min-text-px")) >= 12  # the first view
        # the smallest rendered text, measured on screen, not only the viewer's own figure
        smallest = page.locator(f"{PANE.format('a')} svg").first.evaluate(
            "(svg) => Math.min(...[...svg.querySelectorAll('text')].filter(t => t.getBoundingClientRect().height > 0)"
            ".map(t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a))")
        assert smallest >= 12, smallest
        cut = page.locator("[role='toolbar'] button").evaluate_all(
            "(bs) => bs.filter(b => b.offsetParent && (b.scrollWidth > b.clientWidth + 1 || b.scrollHeight > b.clientHeight + 1))"
            ".map(b => b.getAttribute('aria-label') || b.textContent)")
        assert cut == []
        screenshot(page, "viewer_projector_1024")
    finally:
        ctx.close()


def test_the_layer_view_of_preact_resnet1001_draws(page, app_url):
    open_app(page, app_url, "?preset=preact-resnet1001")
    ready(page, "ResNet-1001 v2")
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"] input[aria-label="View"]').click()
    page.get_by_role("option", name="layer", exact=True).click()
    pane = page.locator(f'{PANE.format("a")}[data-state="ready"]')
    pane.locator("svg text", has_text="layer view").first.wait_for(timeout=180_000)
    assert int(attr(pane.first, "data-nodes")) >= 3341


def test_svg_download_is_the_drawing_without_graphviz_installed(page, app_url):
    open_app(page, app_url, "?preset=resnet20")
    ready(page, "ResNet-20 v1")
    with page.expect_download() as info:
        page.locator("button[aria-label='Download SVG']").first.click()
    text = open(info.value.path(), encoding="utf-8").read()
    assert "<svg" in text and "ResNet-20 v1" in text and "stage2_block1" in text
    with page.expect_download() as info:
        page.locator("button[aria-label='Download PNG']").first.click()
    assert open(info.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_recolouring_keeps_the_zoom_and_position(page, app_url):
    open_app(page, app_url, "?preset=resnet56")
    pane = ready(page, "ResNet-56 v1")
    page.locator("button[aria-label='Zoom in']").first.click()
    page.locator("button[aria-label='Zoom in']").first.click()
    page.wait_for_timeout(300)
    scale, where, renders = attr(pane, "data-scale"), transform(page), int(attr(pane, "data-renders"))
    page.locator('[data-testid="stPopover"] button').first.click()
    page.locator('[data-testid="stSelectbox"] input[aria-label="Colour by"]').click()
    page.get_by_role("option", name="parameters", exact=True).click()
    page.locator(f'{PANE.format("a")}[data-renders="{renders + 1}"][data-state="ready"]').wait_for(timeout=TIMEOUT)
    assert attr(pane, "data-scale") == scale and transform(page) == where  # recoloured in place
