"""Benchmark of training budgets as wall time: press → first curve point and press → result, in the app and the CLI.

    .venv/bin/python benchmarks/bench_budget.py --data-dir /tmp/cifar10 [--budgets 30,60,90] [--skip-app]
        [--skip-cli] [--screens assets/]

CLI: `python -m explorer train --preset resnet20 --seconds B --json`, timed from before the command starts to its
exit, with the parts of its wall time from the JSON. App: a headless Streamlit server (training processes,
warm workers) and Chromium (Playwright, /usr/bin/chromium); the Train tab is opened, the warm worker gets the time a
reader spends on the page (--read, 15 s), then Train is pressed; timed are the first curve on the page and the test
accuracy on the page. One after the other, so that they share the machine equally. Prints figures and one JSON
line; asserts nothing. The machine may be shared: quote the load average and the CPU flags with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.replicas import stop, wait_healthy  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "?"
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2/avx512"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cli_run(data_dir: str, seconds: float) -> dict:
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "explorer", "train", "--preset", "resnet20", "--seconds", f"{seconds:g}",
                          "--data-dir", data_dir, "--json"], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.time() - started
    r = json.loads(out.stdout.strip().splitlines()[-1])
    first = r["history"]["batches"][0]["seconds"] if r["history"]["batches"] else None
    before_training = sum(v for k, v in r["timings"].items() if k in ("starting", "waiting", "data", "model",
                                                                      "first batch"))
    return {"where": "cli", "budget": seconds, "press_to_result": round(wall, 1),
            "press_to_first_point": round(before_training + (first or 0.0), 1), "accounted": r["wall_seconds"],
            "test_accuracy": r["test_accuracy"], "steps": r["steps"], "images_per_second": r["train_images_per_second"],
            "test_views": r.get("test_views"), "timings": r["timings"], "load": load()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_runs(data_dir: str, budgets: list[float], read: float, screens: Path | None) -> list[dict]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CIFAR10_DIR": data_dir}
    env.pop("EXPLORER_TRAIN_WORKER", None)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "explorer" / "app.py"),
                               "--server.port", str(port), "--server.headless", "true",
                               "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    out = []
    try:
        wait_healthy(url, server, timeout=120)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            page.goto(f"{url}/?preset=resnet20&tab=Train&present=1")
            page.get_by_role("spinbutton", name="Seconds, Train → result").wait_for(timeout=120_000)
            time.sleep(read)  # (a reader on the page: the warm worker imports TensorFlow and reads CIFAR-10)
            try:
                out += _press_and_time(page, budgets, read, screens)
            except Exception:
                page.screenshot(path="/tmp/bench_budget_failed.png")
                print("failed: the page as it was is in /tmp/bench_budget_failed.png", file=sys.stderr)
                raise
            browser.close()
    finally:
        stop([server])
    return out


def _press_and_time(page, budgets: list[float], read: float, screens: Path | None) -> list[dict]:
    out = []
    for i, seconds in enumerate(budgets):
        box = page.get_by_role("spinbutton", name="Seconds, Train → result")
        box.fill(f"{seconds:g}")
        box.press("Enter")
        time.sleep(2.0)  # the rerun with the new value
        pressed = time.time()
        page.locator('[data-testid="stBaseButton-primary"]', has_text="Train").first.click()
        # (the running page first: the last run's charts and metrics are gone from it)
        page.get_by_text(re.compile("since Train")).first.wait_for(timeout=600_000)
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=600_000)
        first = time.time() - pressed
        if screens is not None and i == len(budgets) - 1:
            time.sleep(min(5.0, seconds / 4))
            page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
            page.screenshot(path=str(screens / "train_running_1024.png"))
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Test accuracy").first
        metric.wait_for(timeout=600_000)
        result = time.time() - pressed
        value = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
        caption = page.locator('[data-testid="stCaptionContainer"]').filter(
            has_text="from Train to this result").first.inner_text()
        if screens is not None and i == len(budgets) - 1:
            time.sleep(1.0)
            metric.scroll_into_view_if_needed()
            page.screenshot(path=str(screens / "train_result_1024.png"))
        out.append({"where": "app", "budget": seconds, "press_to_first_point": round(first, 1),
                    "press_to_result": round(result, 1), "test_accuracy": value, "page_says": caption,
                    "load": load()})
        print(json.dumps(out[-1]), flush=True)
        time.sleep(read)  # (the next warm worker)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "/tmp/cifar10"))
    parser.add_argument("--budgets", default="30,60,90")
    parser.add_argument("--read", type=float, default=15.0, help="seconds on the page before each press")
    parser.add_argument("--skip-app", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--screens", type=Path, help="save Train-tab screenshots (1024×768, presentation) here")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    print(f"CPU flags: {cpu_flags()}; {os.cpu_count()} cores; load {load()}", flush=True)
    rows = []
    if not args.skip_app:
        rows += app_runs(args.data_dir, budgets, args.read, args.screens)
    if not args.skip_cli:
        for seconds in budgets:
            rows.append(cli_run(args.data_dir, seconds))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "timings"}), flush=True)
    print(f"{'where':5s} {'budget':>6s} {'first point':>11s} {'result':>7s} {'accuracy':>9s}")
    for r in rows:
        acc = r["test_accuracy"] if isinstance(r["test_accuracy"], str) else f"{r['test_accuracy']:.1%}"
        print(f"{r['where']:5s} {r['budget']:6.0f} {r['press_to_first_point']:10.1f}s {r['press_to_result']:6.1f}s "
              f"{acc:>9s}")
    print(json.dumps({"cpu_flags": cpu_flags(), "rows": rows}))


if __name__ == "__main__":
    main()
