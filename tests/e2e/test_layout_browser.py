"""Real browser at projector sizes: no label, metric, option or button is cut ("Para…") or broken inside a word.

Measured on the elements' boxes in Chromium, not on pictures: an element whose text is wider than its box while
it clips (overflow hidden or an ellipsis) is cut; a word whose characters lie on more than one line is broken.
Screenshots of every tab at 1024×768 in Presentation mode are saved in test-artifacts/.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import screenshot, wait_idle

pytestmark = pytest.mark.e2e

TIMEOUT = 60_000
SIZES = ((1024, 768), (1280, 720))
TABS = ("Architecture", "Layers", "Debug", "Lessons", "Train", "Compare", "Export")
PAGE = ('[data-testid="stSidebar"]', '[data-testid="stMain"]')
ARCHITECTURE = ('[data-testid="stSidebar"]', '[data-testid="stMetric"]', ".st-key-banner_debug")
"""On the Architecture tab: the sidebar, the metrics row and the banner's button (the diagram has its own scaling)."""

MEASURE = """
(roots) => {
  const kinds = ['[data-testid="stMetricLabel"]', '[data-testid="stMetricValue"]', '[data-testid="stWidgetLabel"]',
    'button', '[data-baseweb="select"]', '[data-baseweb="tab"]', '[role="radiogroup"] label',
    '[data-testid="stCheckbox"] label', '[data-testid="stMarkdownContainer"] p', '[data-testid="stCaptionContainer"]',
    '[data-testid="stExpander"] summary'].join(',');
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const shown = (e) => visible(e) && !e.closest('details:not([open]) > :not(summary)');
  const elements = new Set();
  for (const root of roots.flatMap(r => [...document.querySelectorAll(r)])) {
    if (root.matches(kinds)) elements.add(root);
    root.querySelectorAll(kinds).forEach(e => elements.add(e));
  }
  const found = [];
  for (const el of elements) {
    if (!shown(el)) continue;
    const where = el.closest('[data-testid="stSidebar"]') ? 'sidebar' : 'main';
    for (const e of [el, ...el.querySelectorAll('*')]) {
      if (!visible(e) || !(e.innerText || '').trim()) continue;
      const cs = getComputedStyle(e);
      const clips = cs.overflowX !== 'visible' || cs.textOverflow === 'ellipsis';
      if (clips && e.scrollWidth > e.clientWidth + 1) {
        found.push(`cut (${where}): "${e.innerText.trim().slice(0, 50)}" needs ${e.scrollWidth}px, has ${e.clientWidth}px`);
        break;
      }
    }
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node, broken = null;
    while (!broken && (node = walker.nextNode())) {
      const words = /[^\\s\\u00a0·—–\\-\\/]{2,}/g;  // (a hyphen or a slash is a fair place to break)
      let m;
      while ((m = words.exec(node.textContent))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter(r => r.width > 0.5).map(r => Math.round(r.top)));
        if (lines.size > 1) { broken = m[0]; break; }
      }
    }
    if (broken) found.push(`broken mid-word (${where}): "${broken}" in "${(el.innerText || '').trim().slice(0, 50)}"`);
  }
  return [...new Set(found)];
}
"""


def open_tab(page, app_url: str, tab: str, *, present: bool) -> None:
    query = f"?tab={tab}" + ("&present=1" if present else "")
    if tab == "Architecture":
        query += "&shortcut=identity"  # a network that does not fit together: the banner and its button show
    page.goto(f"{app_url}/{query}")
    wait_idle(page, TIMEOUT)
    page.wait_for_selector('[data-testid="stTabs"]', timeout=TIMEOUT)
    page.wait_for_selector('[data-testid="stMetric"]' if tab == "Architecture" else '[data-testid="stTab"]', timeout=TIMEOUT)
    settle(page)


def settle(page, quiet: float = 1.0) -> None:
    """Wait until the page shows no loading placeholder and its elements stayed the same for `quiet` seconds."""
    count = "() => document.querySelectorAll('[data-testid]').length"
    deadline, last, since = time.monotonic() + TIMEOUT / 1000, None, time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=TIMEOUT)
        now = page.evaluate(count)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)
    raise AssertionError("the page did not settle")


@pytest.mark.parametrize("present", [False, True], ids=["plain", "present"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_label_metric_or_button_is_cut_or_broken_mid_word(browser, app_url, size, present):
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = ctx.new_page()
    try:
        problems = {}
        for tab in TABS:
            open_tab(page, app_url, tab, present=present)
            assert not page.locator('[data-testid="stException"]').count(), tab
            measured = page.evaluate(MEASURE, list(ARCHITECTURE if tab == "Architecture" else PAGE))
            if measured:
                problems[tab] = measured
            if size == (1024, 768) and present:
                screenshot(page, f"layout-1024x768-present-{tab.lower()}")
        assert problems == {}, problems
    finally:
        ctx.close()


def test_the_measure_finds_a_cut_label_and_a_broken_word(browser, app_url):
    """The check itself: squeezed on purpose, a metric label is cut and a word breaks."""
    ctx = browser.new_context(viewport={"width": 1024, "height": 768})
    page = ctx.new_page()
    try:
        open_tab(page, app_url, "Architecture", present=True)
        page.add_style_tag(content=(
            '.st-key-banner_debug button [data-testid="stMarkdownContainer"] { max-width: 2em !important; '
            'overflow: hidden !important; white-space: nowrap !important; text-overflow: ellipsis !important; } '
            '[data-testid="stSidebar"] [data-testid="stWidgetLabel"] [data-testid="stMarkdownContainer"] '
            '{ width: 1.5em !important; } [data-testid="stSidebar"] [data-testid="stWidgetLabel"] p '
            '{ overflow-wrap: anywhere !important; }'))
        found = page.evaluate(MEASURE, list(ARCHITECTURE))
        assert any(f.startswith('cut (main): "Open the debugger"') for f in found), found
        assert any(f.startswith("broken mid-word (sidebar)") for f in found), found
    finally:
        ctx.close()
