"""Benchmark of the degradation lesson as the app runs it, on real CIFAR-10: the four final training errors, per-network
throughput and the wall time of the whole lesson.

    .venv/bin/python benchmarks/bench_degradation.py --data-dir /tmp/cifar10 [--steps 600] [--subset 2000]
        [--batch-size 64] [--widths 8,16,32] [--in-turn] [--worker process] [--test] [--html FILE]

Runs `explorer.degradation.DegradationLesson` with the app's defaults (override any of them) on the app's training
worker (default "process": one spawned process per network, as the server does), polling it like the page does.
With --test, each final model is also evaluated on the CIFAR-10 test set afterwards (here, not in the lesson's
time). Prints figures and one JSON line; asserts nothing. The machine may be shared: quote img/s and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_flags() -> list[str]:
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # pragma: no cover
        return []
    return sorted(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in words)


def test_accuracy(job, data) -> float | None:
    """The final model's accuracy on the CIFAR-10 test set (inference mode), or None without a model."""
    if not job.has_model:
        return None
    from explorer.data import make_datasets
    from explorer.training import evaluate_model

    pipes = make_datasets(data, batch_size=256, val_split=0.0, flip=False)
    return evaluate_model(job.model, pipes.test, data.y_test, tta=False).test_accuracy


def main() -> None:
    # the lesson's four trainings at once need four of the server's slots (EXPLORER_MAX_TRAININGS, read when
    # explorer.training is first imported)
    in_turn = "--in-turn" in sys.argv
    os.environ.setdefault("EXPLORER_MAX_TRAININGS", "1" if in_turn else "4")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from explorer import degradation as D

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, metavar="DIR")
    p.add_argument("--steps", type=int, default=D.DEFAULT_STEPS)
    p.add_argument("--subset", type=int, default=D.DEFAULT_SUBSET)
    p.add_argument("--batch-size", type=int, default=D.DEFAULT_BATCH)
    p.add_argument("--widths", default=",".join(map(str, D.DEFAULT_WIDTHS)), help="per-stage widths, or 'paper'")
    p.add_argument("--in-turn", action="store_true", help="one network after another (default: at once)")
    p.add_argument("--worker", choices=("process", "thread", "ray"), default="process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", action="store_true", help="also evaluate each final model on the test set (afterwards)")
    p.add_argument("--html", metavar="FILE", help="also write the lesson's chart (training error and loss against steps)")
    args = p.parse_args()
    parallel = not args.in_turn

    from explorer.data import load_cifar10

    widths = None if args.widths == "paper" else tuple(int(w) for w in args.widths.split(","))
    data = load_cifar10(args.data_dir, allow_download=False)
    lesson = D.DegradationLesson(data, steps=args.steps, subset=args.subset, batch_size=args.batch_size,
                                 networks=D.lesson_networks(widths), worker=args.worker, parallel=parallel,
                                 idle_timeout=None, seed=args.seed)
    print(f"cpu flags: {' '.join(cpu_flags()) or '-'} · cores {os.cpu_count()} · load {os.getloadavg()[0]:.2f}")
    print(f"lesson: {args.steps} steps × batch {args.batch_size} on {lesson.train_images:,} training images "
          f"({args.steps * args.batch_size / lesson.train_images:.1f} epochs), widths {widths or 'paper'}, "
          f"{'at once' if parallel else 'in turn'}, worker {args.worker}, "
          f"EXPLORER_MAX_TRAININGS={os.environ['EXPLORER_MAX_TRAININGS']}")
    started = time.perf_counter()
    lesson.start()
    ends: dict[str, float] = {}
    shown = 0.0
    while not lesson.join(1.0):
        now = time.perf_counter() - started
        rows = lesson.poll()
        for name, snap in rows:
            if snap is not None and not snap.active and name not in ends:
                ends[name] = now
        if now - shown >= 30:
            shown = now
            print(f"[{now:4.0f}s] " + " · ".join(f"{name} {'-' if snap is None else f'{snap.steps} steps'}"
                                                 for name, snap in rows), flush=True)
    wall = time.perf_counter() - started
    for name, _ in lesson.poll():
        ends.setdefault(name, wall)
    results = lesson.results()
    jobs = {job.name: job for job in lesson.jobs}
    tests = {r.name: test_accuracy(jobs[r.name], data) for r in results} if args.test else {}
    print(f"{'network':<10} {'status':<8} {'steps':>5} {'train err (eval)':>16} {'last 10 %':>9} {'img/s':>7} "
          f"{'ended at':>8}" + ("  test acc" if args.test else ""))
    for r in results:
        line = (f"{r.name:<10} {r.status:<8} {r.steps:>5} {r.train_error:>16.1%} {r.tail_error:>9.1%} "
                f"{r.images_per_second or 0:>7.0f} {ends[r.name]:>7.0f}s")
        if args.test:
            line += f"  {tests[r.name]:.1%}" if tests[r.name] is not None else "  -"
        print(line)
    for name, snap in lesson.poll():
        if snap is None or snap.status == "failed" or not snap.batches:
            print(f"{name:<10} {'not started' if snap is None else snap.status}: {'' if snap is None else snap.error}")
    print(f"wall {wall:.0f} s for all four (load {os.getloadavg()[0]:.2f})")
    if args.html:
        from explorer.teaching_charts import degradation_figure

        configs = dict(lesson.networks)
        series = [(n, configs[n].resolved_depth, configs[n].shortcut == "none", snap.batches)
                  for n, snap in lesson.poll() if snap is not None and snap.batches]
        degradation_figure(series).write_html(args.html, include_plotlyjs="cdn")
        print(f"chart: {args.html}")
    for sentence in D.verdict(results):
        print("·", sentence.replace("**", "").replace("*", ""))
    print(json.dumps({
        "steps": args.steps, "subset": lesson.train_images, "batch_size": args.batch_size, "widths": widths,
        "parallel": parallel, "worker": args.worker, "cpu_flags": cpu_flags(), "wall_seconds": round(wall, 1),
        "results": [{"name": r.name, "status": r.status, "steps": r.steps, "train_error": r.train_error,
                     "measured": r.measured, "tail_error": r.tail_error,
                     "images_per_second": r.images_per_second, "ended_seconds": round(ends[r.name], 1),
                     "test_accuracy": tests.get(r.name)} for r in results],
        "stop_reason": lesson.stop_reason,
    }))


if __name__ == "__main__":
    main()
