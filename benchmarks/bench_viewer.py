"""Benchmark: the interactive diagram viewer beside the static `st.graphviz_chart`, on the same pages, in one run.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_viewer.py              # both, every scenario
    .venv/bin/python benchmarks/bench_viewer.py --only viewer --screenshots   # also write assets/viewer_*.png

Starts the real app twice on free ports — `EXPLORER_DIAGRAM=static` (today's `st.graphviz_chart`) and the default
(the viewer component: Graphviz WebAssembly in a web worker) — and drives headless Chromium (Playwright) through
the same steps on each, as a user would: open ResNet-110, switch *View* to layer (first draw), step the depth
slider (redraw), recolour by parameters, step the depth in the block view, open the layer view of
preact-resnet1001, and open *Compare networks* (resnet56 beside its plain twin). Each figure is the wall time from
the input (click or key press) to the new drawing on screen, and the longest gap between two animation frames
meanwhile (how long the page stopped answering input). Prints a table and the ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from deploy.replicas import wait_healthy  # noqa: E402

APP = ROOT / "explorer" / "app.py"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Finds elements through open shadow roots (the viewer lives in one), marks drawings present before an input,
# and measures the longest gap between animation frames until the next drawing is on screen.
HELPERS_JS = """
(() => {
  const all = (sel, root = document, out = []) => {
    root.querySelectorAll(sel).forEach((e) => out.push(e));
    root.querySelectorAll('*').forEach((e) => { if (e.shadowRoot) all(sel, e.shadowRoot, out); });
    return out;
  };
  window.__deep = all;
  // A drawing is new when its <svg> was not there before the input, or its content changed since:
  // st.graphviz_chart redraws into the same <svg> (compare its markup), the viewer counts its drawings.
  window.__drawings = () => {
    const charts = all('[data-testid="stGraphVizChart"] svg').map((svg) => ({svg, sig: svg.innerHTML}));
    const panes = all('[data-pane]').filter((p) => p.dataset.state === 'ready' && p.querySelector('svg'))
      .map((p) => ({svg: p.querySelector('svg'), sig: p.dataset.renders}));
    return charts.concat(panes);
  };
  window.__mark = () => {
    window.__old = new Map(window.__drawings().map((d) => [d.svg, d.sig]));
    window.__gap = 0; let last = performance.now(); window.__frames = true;
    const tick = (t) => { window.__gap = Math.max(window.__gap, t - last); last = t; if (window.__frames) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  };
  window.__done = (title, count) => {
    const fresh = window.__drawings().filter((d) => window.__old.get(d.svg) !== d.sig
      && [...d.svg.querySelectorAll('text')].some((t) => t.textContent.includes(title)));
    if (fresh.length >= count) { window.__frames = false; return window.__gap; }
    return null;
  };
  window.__mark();
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(mode: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXPLORER_DIAGRAM": "static" if mode == "static" else "viewer"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=60)
    except RuntimeError as exc:
        proc.kill()
        raise SystemExit(f"the {mode} app did not start: {exc}") from None
    return proc, url


class Page:
    """One browser page on one app, with the timed steps."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url
        self.last: dict = {}

    def timed(self, action, title: str, *, count: int = 1, timeout: float = 120.0,
              navigates: bool = False) -> tuple[float, float]:
        """Do `action`, wait for `count` new drawings whose text includes `title`: (seconds, longest frame gap in s).

        `action` may be a pair (prepare, act): only `act` (the last click or key press) is timed."""
        if isinstance(action, tuple):
            prepare, action = action
            prepare()
        if not navigates:  # a new document marks itself (the init script)
            self.page.evaluate("() => window.__mark()")
        t0 = time.perf_counter()
        action()
        handle = self.page.wait_for_function("([t, c]) => window.__done(t, c)", arg=[title, count],
                                             timeout=timeout * 1000, polling=20)
        took = time.perf_counter() - t0, float(handle.json_value()) / 1000
        self.settle()
        self.last = self.page.evaluate(
            "() => (window.__deep('[data-pane]')[0] || {dataset: {}}).dataset")  # the viewer's own figures
        return took

    def settle(self, quiet_frames: int = 15) -> None:
        """Wait until the page draws frames smoothly again (the last drawing's own work has finished)."""
        self.page.evaluate("""(n) => new Promise((done) => {
          let last = performance.now(), calm = 0;
          const tick = (t) => { calm = t - last < 50 ? calm + 1 : 0; last = t; calm >= n ? done() : requestAnimationFrame(tick); };
          requestAnimationFrame(tick);
        })""", quiet_frames)

    def load(self, query: str, title: str, *, count: int = 1) -> tuple[float, float]:
        self.page.goto("about:blank")
        return self.timed(lambda: self.page.goto(f"{self.url}/?{query}"), title, count=count, navigates=True)

    def choose(self, label: str, option: str):
        """(open the select box, pick the option): the pick is what `timed` times."""
        def prepare() -> None:
            box = self.page.locator(f'[data-testid="stSelectbox"] input[aria-label="{label}"]')
            if not box.is_visible():  # Colour by lives in the diagram's "Style" popover
                self.page.locator('[data-testid="stPopover"] button').first.click()
            box.click()

        return prepare, lambda: self.page.get_by_role("option", name=option, exact=True).click()

    def depth_key(self, key: str) -> None:
        slider = self.page.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]').first
        slider.focus()
        self.page.keyboard.press(key)


def title_of(preset: str, depth: int | None = None) -> str:
    sys.path.insert(0, str(ROOT))
    from explorer.presets import PRESETS

    cfg = PRESETS[preset].config
    return f"ResNet-{depth or cfg.resolved_depth} v{cfg.version}"


def depth_steps(p: Page, steps: int, deeper: int) -> tuple[float, float]:
    """ResNet-110 ↔ the next valid depth with the slider's arrow keys: (median seconds, longest frame gap)."""
    redraws = []
    for k in range(steps):
        forward = k % 2 == 0
        redraws.append(p.timed(lambda f=forward: p.depth_key("ArrowRight" if f else "ArrowLeft"),
                               title_of("resnet110", deeper if forward else 110)))
    return statistics.median(r[0] for r in redraws), max(r[1] for r in redraws)


class Results(dict):
    """step → (seconds, longest frame gap); `split` keeps the viewer's own layout / draw figures per step."""

    def __init__(self, page: Page) -> None:
        super().__init__()
        self.page, self.split = page, {}

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        d = self.page.last or {}
        if d.get("drawMs"):
            self.split[key] = f"layout {d.get('layoutMs', '?')} ms{' (cached)' if d.get('cached') == 'true' else ''}, " \
                              f"drawn {d.get('drawMs')} ms after the data arrived"


def scenario(p: Page, mode: str, steps: int, shots: Path | None) -> dict[str, tuple[float, float]]:
    out = Results(p)
    p.load("preset=resnet20", title_of("resnet20"))  # warm: bundle, WebAssembly, the server's caches
    sys.path.insert(0, str(ROOT))
    from explorer.config import valid_depths
    from explorer.presets import PRESETS

    deeper = next(d for d in valid_depths("basic", 3, limit=200) if d > 110)
    out["ResNet-110 block view, page load"] = p.load("preset=resnet110", title_of("resnet110"))
    out["ResNet-110 layer view, first draw"] = p.timed(p.choose("View", "layer"), title_of("resnet110"))
    out["ResNet-110 layer view, depth step"] = depth_steps(p, steps, deeper)
    out["ResNet-110 layer view, recolour"] = p.timed(p.choose("Colour by", "parameters"), title_of("resnet110"))
    if shots is not None:
        p.page.screenshot(path=str(shots / f"viewer_{mode}_r110_layer.png"))
    p.page.keyboard.press("Escape")
    p.timed(p.choose("Colour by", "plain"), title_of("resnet110"))
    p.page.keyboard.press("Escape")
    p.timed(p.choose("View", "block"), title_of("resnet110"))
    out["ResNet-110 block view, depth step"] = depth_steps(p, steps, deeper)
    p.load("preset=preact-resnet1001", title_of("preact-resnet1001"))
    # the lazy alternative: the block view with one stage opened at layer level
    out["preact-resnet1001 block view, stage 2 expanded"] = p.timed(p.choose("Expand", "stage2"),
                                                                    title_of("preact-resnet1001"), timeout=240)
    if mode == "viewer":
        p.page.keyboard.press("Escape")
        p.timed(p.choose("Expand", "—"), title_of("preact-resnet1001"))
        out["preact-resnet1001 layer view"] = p.timed(p.choose("View", "layer"),
                                                      title_of("preact-resnet1001"), timeout=240)
        p.load("preset=resnet1202", title_of("resnet1202"))
        out["resnet1202 layer view"] = p.timed(p.choose("View", "layer"), title_of("resnet1202"), timeout=240)
    p.load("preset=resnet56", title_of("resnet56"))
    count = 2
    out["resnet56 vs plain twin, compare view"] = p.timed(
        lambda: p.page.get_by_text("Compare networks", exact=True).click(), "ResNet-56", count=count)
    if shots is not None:
        p.page.screenshot(path=str(shots / f"viewer_{mode}_compare.png"))
    del PRESETS
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("static", "viewer"))
    parser.add_argument("--steps", type=int, default=4, help="depth-slider steps per view (median reported)")
    parser.add_argument("--screenshots", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    flags = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_bf16")})
    print(f"# bench_viewer — {os.cpu_count()} CPUs ({', '.join(flags)}), headless Chromium, 1400×900\n")
    modes = [args.only] if args.only else ["static", "viewer"]
    results: dict[str, dict] = {}
    shots = ROOT / "assets" if args.screenshots else None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for mode in modes:
            proc, url = start(mode)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.add_init_script(HELPERS_JS)
                results[mode] = scenario(Page(page, url), mode, args.steps, shots)
                page.close()
            finally:
                proc.terminate()
                proc.wait(timeout=20)
        browser.close()
    rows = list(dict.fromkeys(k for r in results.values() for k in r))
    head = " | ".join(f"{m}: drawn (longest frame gap)" for m in modes)
    print(f"| step | {head} |" + (" static ÷ viewer |" if len(modes) == 2 else ""))
    print("|---|" + "---|" * len(modes) + ("---|" if len(modes) == 2 else ""))
    for row in rows:
        cells = []
        for m in modes:
            v = results[m].get(row)
            cells.append(f"{v[0]:.2f} s ({v[1]:.2f} s)" if v else "refused (> 600 nodes)")
        ratio = ""
        if len(modes) == 2:
            a, b = results["static"].get(row), results["viewer"].get(row)
            ratio = f" {a[0] / b[0]:.1f}× |" if a and b else " — |"
        print(f"| {row} | " + " | ".join(cells) + " |" + ratio)
    if "viewer" in results:
        print("\nIn the viewer (its own figures, for the last drawing of each step):")
        for row, text in results["viewer"].split.items():
            print(f"* {row}: {text}")


if __name__ == "__main__":
    main()
