"""Load test (not part of the default run): many students on one server, in real Chromium tabs.

Run: .venv/bin/python benchmarks/loadtest.py [--sessions 30] [--changes 10] [--trainers 5] [--cap 2]

Starts `streamlit run explorer/app.py` (with a generated CIFAR-10 fixture and a cap of `--cap`
concurrent trainings), opens `--sessions` browser contexts that each load a preset (up to
ResNet-110) and move the depth slider `--changes` times, timing each change until the page shows
the new depth; meanwhile `--trainers` more contexts press Train (a 10-second budget), and every
other one of them presses Stop. Prints errors, p50/p95 change→updated-page times, and how the
trainings ended; checks that every session ends on its own network (no shared state).

With 30 tabs on a 2-core machine the tabs' own diagram layout takes the CPU, so its figures are the
browser's, not the server's: `benchmarks/ws_loadtest.py` measures the server with light websocket clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PRESETS = ["resnet20", "resnet32", "resnet56", "resnet110", "preact-resnet110", "keras-resnet20v1", "keras-resnet56v2"]
TITLE = 'h3:has-text("ResNet-")'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, cap: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CIFAR10_DIR": str(data_dir), "EXPLORER_MAX_TRAININGS": str(cap)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "explorer" / "app.py"), "--server.port", str(port),
         "--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("streamlit did not start")


def stop_server(proc: subprocess.Popen) -> None:
    """End the server started by `start_server` (killed if it does not stop within 20 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scenario_parser(description: str) -> argparse.ArgumentParser:
    """The command line shared by both load tests: how many students, changes and trainers, the cap, the timeout."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--trainers", type=int, default=5)
    parser.add_argument("--cap", type=int, default=2)
    parser.add_argument("--task-timeout", type=float, default=600.0, help="seconds after which a session counts as hung")
    return parser


async def title(page) -> str:
    return (await page.locator(TITLE).first.inner_text()).strip()


async def student(browser, url: str, index: int, changes: int, times: list[float], errors: list[str]) -> None:
    preset = PRESETS[index % len(PRESETS)]
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    try:
        await page.goto(f"{url}/?preset={preset}", timeout=120_000)
        await page.wait_for_selector(TITLE, timeout=120_000)
        slider = page.locator(".st-key-w_depth input[type=range]")  # react-aria: a visually hidden range input
        await slider.wait_for(state="attached", timeout=60_000)
        for k in range(changes):
            before = await title(page)
            await slider.focus()
            await page.keyboard.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")
            t = time.perf_counter()
            await page.wait_for_function(
                "([sel, old]) => { const e = document.querySelector(sel); return e && e.innerText.trim() !== old; }",
                arg=["h3", before], timeout=60_000)
            times.append(time.perf_counter() - t)
        final = await title(page)
        if not final.startswith(preset):
            errors.append(f"session {index}: ended on {final!r}, not on its own preset {preset}")
        if await page.locator('[data-testid="stException"]').count():
            errors.append(f"session {index}: a traceback was shown")
    except Exception as exc:  # noqa: BLE001 - a load test reports every failure
        errors.append(f"session {index}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await ctx.close()


async def trainer(browser, url: str, index: int, outcomes: list[str], errors: list[str]) -> None:
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()
    try:
        await page.goto(f"{url}/?preset=resnet20&depth=8&tab=Train", timeout=120_000)
        seconds = page.locator(".st-key-train_seconds input")
        await seconds.fill("10", timeout=120_000)
        await seconds.press("Enter")
        await page.wait_for_timeout(1500)
        await page.locator(".st-key-train_start button").click(timeout=120_000)
        saw_waiting = False
        if index % 2:
            await page.wait_for_timeout(4000)
            await page.locator(".st-key-train_stop button:not([disabled])").click(timeout=120_000)
        for _ in range(600):
            text = await page.locator("[data-testid='stMain']").first.inner_text()
            saw_waiting = saw_waiting or "waiting for a slot" in text.lower()
            if "Stopped after" in text:
                outcomes.append("stopped")
                break
            if "Training failed" in text:
                outcomes.append("failed")
                break
            if "Test accuracy" in text:
                outcomes.append("finished")
                break
            await page.wait_for_timeout(500)
        else:
            outcomes.append("unfinished")
            shot = Path(tempfile.gettempdir()) / f"loadtest-trainer-{index}.png"
            await page.screenshot(path=str(shot), full_page=True)
            status = [line for line in text.splitlines() if line.strip()][-3:]
            errors.append(f"trainer {index}: no end seen; last lines {status}; screenshot {shot}")
        if saw_waiting:
            outcomes.append("queued (saw 'waiting for a slot')")
    except Exception as exc:  # noqa: BLE001
        errors.append(f"trainer {index}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await ctx.close()


async def run(args: argparse.Namespace, url: str) -> None:
    from playwright.async_api import async_playwright

    times: list[float] = []
    errors: list[str] = []
    outcomes: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        started = time.perf_counter()
        async def bounded(name: str, coro) -> None:
            try:
                await asyncio.wait_for(coro, args.task_timeout)
            except TimeoutError:
                errors.append(f"{name}: did not end within {args.task_timeout:g} s")
            print(f"[{time.perf_counter() - started:5.0f} s] {name} ended ({len(errors)} errors so far)", flush=True)

        tasks = [bounded(f"session {i}", student(browser, url, i, args.changes, times, errors)) for i in range(args.sessions)]
        tasks += [bounded(f"trainer {i}", trainer(browser, url, i, outcomes, errors)) for i in range(args.trainers)]
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        await browser.close()
    print(f"sessions: {args.sessions} × {args.changes} changes, {args.trainers} trainers (cap {args.cap}); {wall:.0f} s")
    print(f"errors: {len(errors)}")
    for e in errors[:20]:
        print("  " + e)
    if times:
        q = statistics.quantiles(times, n=20)
        print(f"change → updated page: n={len(times)} p50={statistics.median(times):.2f} s p95={q[18]:.2f} s "
              f"max={max(times):.2f} s")
    print("trainings: " + ", ".join(f"{o}: {outcomes.count(o)}" for o in sorted(set(outcomes))))


def main() -> None:
    args = scenario_parser(__doc__.splitlines()[0]).parse_args()
    from benchmarks.bench_memory import write_fixture

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_fixture(Path(tmp), per_file=500)
        proc, url = start_server(data_dir, args.cap)
        try:
            asyncio.run(run(args, url))
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
