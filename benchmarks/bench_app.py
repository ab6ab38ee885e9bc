"""Benchmark of the app: our code per rerun (cold and cached), AppTest reruns, and Chromium cold start / redraw.

Run `.venv/bin/python benchmarks/bench_app.py` (add `--no-browser` to skip the Chromium part). Prints tables;
asserts nothing. Figures depend on the machine: quote ratios, and compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from explorer import diagram  # noqa: E402
from explorer.annotate import build  # noqa: E402
from explorer.config import valid_depths  # noqa: E402
from explorer.presets import PRESETS  # noqa: E402
from explorer.tables import layer_table  # noqa: E402

PRESET_NAMES = ("resnet20", "resnet110", "preact-resnet1001")
APP = ROOT / "explorer" / "app.py"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def next_depth(name: str) -> int:
    cfg = PRESETS[name].config
    depths = valid_depths(cfg.block, cfg.stages, limit=max(1202, cfg.resolved_depth + 20))
    return depths[depths.index(cfg.resolved_depth) + 1]


def bench_core(repeat: int) -> None:
    """What one rerun costs in our code when nothing is cached: annotate, DOT and the layer table."""
    print("\n## Our code per config change, nothing cached (median of", repeat, "runs)\n")
    print("| preset | layers | annotate | DOT (default view) | layer table | total |")
    print("|---|---|---|---|---|---|")
    for name in PRESET_NAMES:
        cfg = PRESETS[name].config.replace(depth=next_depth(name))
        times = {"build": [], "dot": [], "table": []}
        for _ in range(repeat):
            t0 = time.perf_counter()
            ag = build(cfg)
            t1 = time.perf_counter()
            diagram.to_dot(ag, level=diagram.default_level(ag))
            t2 = time.perf_counter()
            layer_table(ag)
            t3 = time.perf_counter()
            times["build"].append(t1 - t0)
            times["dot"].append(t2 - t1)
            times["table"].append(t3 - t2)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {name} | {len(ag.graph):,} | {ms(med['build'])} | {ms(med['dot'])} | {ms(med['table'])} | "
              f"{ms(sum(med.values()))} |")


def bench_apptest(repeat: int) -> None:
    """A slider move as the app sees it: the app's own time per run (`_run_ms`) and AppTest's wall time."""
    from streamlit.testing.v1 import AppTest

    print("\n## Slider move → rerun, AppTest (median of", repeat, "moves; in-app time = our script from boot to the last tab)\n")
    print("| preset | tab | in-app, new depth (cold) | in-app, cached | AppTest wall, cached |")
    print("|---|---|---|---|---|")
    for name in PRESET_NAMES:
        for tab in ("Architecture", "Layers"):
            at = AppTest.from_file(str(APP), default_timeout=120)
            at.query_params["preset"] = name
            at.session_state["tab"] = tab
            at.run()
            assert not at.exception, at.exception
            base, other = PRESETS[name].config.resolved_depth, next_depth(name)
            cold, warm, wall = [], [], []
            for i in range(repeat):
                target = other if i % 2 == 0 else base
                if i < 2:  # the first visit of each depth computes everything
                    at.select_slider(key="w_depth").set_value(target).run()
                    cold.append(at.session_state["_run_ms"])
                    continue
                t0 = time.perf_counter()
                at.select_slider(key="w_depth").set_value(target).run()
                wall.append(time.perf_counter() - t0)
                warm.append(at.session_state["_run_ms"])
            print(f"| {name} | {tab} | {statistics.median(cold):.1f} ms | {statistics.median(warm):.1f} ms | "
                  f"{ms(statistics.median(wall))} |")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_title(page, text: str, timeout: float = 120_000) -> None:
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('[data-testid=\"stGraphVizChart\"] svg text')].some(e => e.textContent.includes(t))",
        arg=text, timeout=timeout,
    )


def bench_browser(moves: int = 5) -> None:
    """Cold start (server start → first diagram drawn) and slider change → diagram redrawn, in Chromium."""
    if not Path(CHROMIUM).exists():
        print(f"\n(no Chromium at {CHROMIUM}: browser benchmark skipped)")
        return
    from playwright.sync_api import sync_playwright

    print("\n## Chromium (headless), `streamlit run` on this machine\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    time.sleep(0.1)
            ready = time.perf_counter() - started
            print(f"| preset | first diagram drawn | slider → diagram redrawn (median of {moves}) | nodes |")
            print("|---|---|---|---|")
            for i, name in enumerate(PRESET_NAMES):
                cfg = PRESETS[name].config
                t0 = time.perf_counter()
                page.goto(f"{url}/?preset={name}")  # (the first load also fetches the JS bundle and WebAssembly Graphviz)
                _wait_title(page, f"ResNet-{cfg.resolved_depth} v{cfg.version}")
                first = time.perf_counter() - (started if i == 0 else t0)
                slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]').first
                redraws = []
                for k in range(moves):  # alternate between the preset's depth and the next valid one
                    forward = k % 2 == 0
                    slider.focus()
                    t1 = time.perf_counter()
                    page.keyboard.press("ArrowRight" if forward else "ArrowLeft")
                    _wait_title(page, f"ResNet-{next_depth(name) if forward else cfg.resolved_depth} v{cfg.version}")
                    redraws.append(time.perf_counter() - t1)
                    time.sleep(0.3)
                redraw = statistics.median(redraws)
                nodes = page.locator('[data-testid="stGraphVizChart"] svg g.node').count()
                what = f"cold: server start → drawn; server ready at {ready:.2f} s" if i == 0 else "page load → drawn"
                print(f"| {name} | {first:.2f} s ({what}) | {redraw:.2f} s | {nodes} |")
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    print(f"# bench_app — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    bench_core(args.repeat)
    bench_apptest(args.repeat)
    if not args.no_browser:
        bench_browser()


if __name__ == "__main__":
    main()
