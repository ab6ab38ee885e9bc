"""Benchmark of the diagram views: DOT generation time and size per level, and drawing time in headless Chromium.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_diagram.py                 # DOT timings + browser timings
    .venv/bin/python benchmarks/bench_diagram.py --no-browser    # DOT timings only
    .venv/bin/python benchmarks/bench_diagram.py --screenshots   # also write assets/diagram_*.png

It prints figures and asserts nothing. The browser part starts `streamlit run benchmarks/diagram_page.py` on a
free port and drives Chromium (Playwright) against it: the page first draws a tiny warm-up chart (so the
WebAssembly Graphviz is loaded), then the benchmark presses "draw" and times how long the second
`st.graphviz_chart` takes from the moment its element is mounted until its SVG is in the page and painted
("layout"), and from the click until then ("click→svg", which adds the Streamlit round trip).
Goals: DOT ≤ 50 ms for any default view; drawn ≤ 1 s for ResNet-110 and ≤ 2 s for ResNet-1001.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer import diagram  # noqa: E402
from explorer.annotate import build  # noqa: E402
from explorer.presets import PRESETS  # noqa: E402

BENCH_PRESETS = ("resnet110", "preact-resnet1001", "resnet152v2", "resnet1202")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WARMUP_DOT = 'digraph warmup { a [label="warm-up"]; a -> b }'

# Records when the second graphviz chart is mounted and when its SVG appears (then painted, one frame later).
OBSERVER_JS = """
() => {
  window.__bench = {t0: null, t1: null, t2: null, nodes: 0};
  const sel = '[data-testid="stGraphVizChart"]';
  const check = () => {
    const charts = document.querySelectorAll(sel);
    if (charts.length < 2) return;
    const b = window.__bench;
    if (b.t0 === null) b.t0 = performance.now();
    const svg = charts[1].querySelector('svg');
    if (svg && b.t1 === null && svg.querySelector('g.node')) {
      b.t1 = performance.now();
      b.nodes = svg.querySelectorAll('g.node').length;
      requestAnimationFrame(() => requestAnimationFrame(() => { b.t2 = performance.now(); }));
    }
  };
  new MutationObserver(check).observe(document.body, {childList: true, subtree: true});
  check();
}
"""


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_dot(repeat: int) -> dict[str, str]:
    """Print DOT timings per preset and level; return the default view of each preset (name → DOT)."""
    defaults: dict[str, str] = {}
    print("== DOT generation (median of", repeat, "runs; build = expand + annotate, not included in to_dot) ==")
    print(f"{'preset':20} {'layers':>6} {'build ms':>9}  {'view':30} ", end="")
    print(f"{'to_dot ms':>9} {'nodes':>6} {'DOT KiB':>8} {'dot -Tsvg ms':>12}")
    for name in BENCH_PRESETS:
        config = PRESETS[name].config
        build_ms = _median_ms(lambda c=config: build(c), max(1, repeat // 2))
        ag = build(config)
        default = diagram.default_level(ag)
        views = [
            (f"stage{' (default)' if default == 'stage' else ''}", {"level": "stage"}),
            (f"block{' (default)' if default == 'block' else ''}", {"level": "block"}),
            ("block, no roll-up", {"level": "block", "rollup": False}),
            ("block, --expand stage2", {"level": "block", "expand": "stage2"}),
            ("layer", {"level": "layer"}),
        ]
        first = True
        for label, kwargs in views:
            try:
                source = diagram.to_dot(ag, **kwargs)
            except diagram.DiagramError as exc:
                print(f"{'':20} {'':>6} {'':>9}  {label:30} refused: {exc.message[:70]}…")
                continue
            ms = _median_ms(lambda a=ag, k=kwargs: diagram.to_dot(a, **k), repeat)
            nodes = diagram.view_size(ag, **{k: v for k, v in kwargs.items() if k != "legend"})
            layout = ""
            if diagram.dot_available() and nodes <= 2000:
                start = time.perf_counter()
                diagram.render(source, "svg")
                layout = f"{(time.perf_counter() - start) * 1000:.0f}"
            head = f"{name:20} {len(ag.graph):>6} {build_ms:>9.1f}" if first else f"{'':20} {'':>6} {'':>9}"
            print(f"{head}  {label:30} {ms:>9.1f} {nodes:>6} {len(source.encode()) / 1024:>8.1f} {layout:>12}")
            first = False
            if kwargs.get("level") == default and len(kwargs) == 1:
                defaults[name] = source
    return defaults


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_streamlit(folder: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, DIAGRAM_PAGE_DIR=str(folder), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "benchmarks" / "diagram_page.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start: " + (proc.stderr.read() or b"").decode()[-2000:])


def _draw_once(page, base: str, name: str) -> dict[str, float]:
    page.goto(f"{base}/?dot={name}")
    page.wait_for_selector('[data-testid="stGraphVizChart"] svg', timeout=60_000)
    page.evaluate(OBSERVER_JS)
    clicked = page.evaluate("() => performance.now()")
    page.get_by_role("button", name="draw").click()
    page.wait_for_function("() => window.__bench && window.__bench.t2 !== null", timeout=120_000)
    b = page.evaluate("() => window.__bench")
    return {"layout": b["t2"] - b["t0"], "click": b["t2"] - clicked, "nodes": b["nodes"]}


def bench_browser(dots: dict[str, str], repeat: int, shots: dict[str, str]) -> None:
    """Time st.graphviz_chart in headless Chromium for each DOT; save screenshots of `shots` (path → DOT)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        print("no Chromium at", CHROMIUM, "— browser timings skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "warmup.dot").write_text(WARMUP_DOT, encoding="utf-8")
        for name, source in dots.items():
            (folder / f"{name}.dot").write_text(source, encoding="utf-8")
        shot_names = {}
        for i, (path, source) in enumerate(shots.items()):
            shot_names[path] = f"shot{i}"
            (folder / f"shot{i}.dot").write_text(source, encoding="utf-8")
        port = _free_port()
        proc = _start_streamlit(folder, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                _draw_once(page, base, "warmup")  # first page load: Streamlit bundle and WASM into the cache
                baseline = [_draw_once(page, base, "warmup")["click"] for _ in range(repeat)]
                print()
                print(f"== st.graphviz_chart in headless Chromium (median of {repeat}; Streamlit {_st_version()}) ==")
                print(f"round trip for a 2-node chart (click→svg): {statistics.median(baseline):.0f} ms")
                print(f"{'view':40} {'svg nodes':>9} {'layout ms':>10} {'click→svg ms':>13}")
                for name in dots:
                    runs = [_draw_once(page, base, name) for _ in range(repeat)]
                    layout = statistics.median(r["layout"] for r in runs)
                    click = statistics.median(r["click"] for r in runs)
                    print(f"{name:40} {runs[0]['nodes']:>9} {layout:>10.0f} {click:>13.0f}")
                page.close()
                if shots:
                    shot_page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=2)
                    for path, name in shot_names.items():
                        _screenshot(shot_page, f"{base}/?dot={name}&mode=shot", path)
                        print("screenshot:", path)
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _screenshot(page, url: str, path: str) -> None:
    """Screenshot the chart's SVG at its natural size (the viewport grows to fit it; Streamlit's header hidden)."""
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(url)
    chart = page.wait_for_selector('[data-testid="stGraphVizChart"] svg', timeout=60_000)
    page.add_style_tag(content='[data-testid="stHeader"], [data-testid="stToolbar"] { display: none !important; }')
    box = chart.bounding_box() or {"width": 1100, "height": 800}
    page.set_viewport_size({"width": max(1200, int(box["width"]) + 200), "height": int(box["height"]) + 300})
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stGraphVizChart"] svg', timeout=60_000).screenshot(path=path)


def _st_version() -> str:
    import streamlit

    return streamlit.__version__


def screenshot_dots() -> dict[str, str]:
    """The README screenshots: block views of tutorial (depth 11), resnet56 and a broken config."""
    from explorer.config import ResNetConfig

    configs = {
        "diagram_tutorial11.png": PRESETS["tutorial"].config.replace(depth=11),
        "diagram_resnet56.png": PRESETS["resnet56"].config,
        "diagram_broken.png": ResNetConfig(shortcut="identity"),
    }
    return {str(ROOT / "assets" / f): diagram.to_dot(build(c), level="block") for f, c in configs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--no-browser", action="store_true", help="DOT timings only")
    parser.add_argument("--screenshots", action="store_true", help="write assets/diagram_*.png from the browser")
    parser.add_argument("--heavy", action="store_true", help="also time big views in the browser (layer levels)")
    args = parser.parse_args()
    defaults = bench_dot(args.repeat)
    if args.no_browser:
        return
    dots = {f"{name} default view": source for name, source in defaults.items()}
    if args.heavy:
        r110 = build(PRESETS["resnet110"].config)
        dots["resnet110 layer view"] = diagram.to_dot(r110, level="layer")
        r152 = build(PRESETS["resnet152v2"].config)
        dots["resnet152v2 layer view"] = diagram.to_dot(r152, level="layer")
        r1202 = build(PRESETS["resnet1202"].config)
        dots["resnet1202 block, --expand stage2"] = diagram.to_dot(r1202, expand="stage2")
        dots["resnet1202 block, no roll-up"] = diagram.to_dot(r1202, rollup=False)
    dots = {name.replace(" ", "_").replace(",", "").replace("-", "_"): s for name, s in dots.items()}
    bench_browser(dots, args.repeat, screenshot_dots() if args.screenshots else {})


if __name__ == "__main__":
    main()
