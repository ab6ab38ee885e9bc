"""Benchmark: config → annotated graph (the core) vs building the Keras model, in one run.

Run: .venv/bin/python benchmarks/bench_core.py [--repeat N]
Prints figures and ratios; asserts nothing (the machines are shared and noisy).
Goals: ResNet-110 ≤ 20 ms, ResNet-1001 ≤ 100 ms, and ≥ 30× faster than the Keras build.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from explorer.annotate import build  # noqa: E402
from explorer.presets import PRESETS  # noqa: E402

NAMES = ["resnet110", "preact-resnet1001", "resnet152v2"]


def time_core(name: str, repeat: int) -> list[float]:
    config = PRESETS[name].config
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        build(config)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    t = time.perf_counter()
    from explorer.backend import load_keras
    from explorer.keras_build import build_model

    load_keras()
    import_s = time.perf_counter() - t
    print(f"import tensorflow/keras: {import_s:.2f} s (paid once, only when a Keras model is needed)")
    print(f"{'preset':20s} {'nodes':>6s} {'core median':>12s} {'core min':>9s} {'keras build':>12s} {'ratio':>8s}")
    for name in NAMES:
        core = time_core(name, args.repeat)
        ag = build(PRESETS[name].config)
        t = time.perf_counter()
        model = build_model(ag)
        keras_s = time.perf_counter() - t
        assert model.count_params() == ag.total_params
        med = statistics.median(core)
        print(f"{name:20s} {len(ag.graph):6d} {med * 1e3:9.2f} ms {min(core) * 1e3:6.2f} ms {keras_s:9.2f} s {keras_s / med:7.0f}×")


if __name__ == "__main__":
    main()
