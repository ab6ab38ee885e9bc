"""Benchmark: resident memory over 200 rebuilt configs, and over 3 trainings in a row, in one process.

Run: .venv/bin/python benchmarks/bench_memory.py [--data-dir DIR] [--configs 200] [--seconds 15] [--trainings 3]
     [--worker process|thread]
Prints RSS figures; asserts nothing. Goals: RSS growth ≤ 50 MB over the rebuilds (after
a warm-up), and after the trainings RSS back within 200 MB of where it was before them.
Without --data-dir (or CIFAR10_DIR), the trainings use a small generated CIFAR-10 fixture.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from explorer.annotate import build  # noqa: E402
from explorer.config import ConfigError, ResNetConfig  # noqa: E402
from explorer.diagram import to_dot  # noqa: E402
from explorer.guards import proc_bytes  # noqa: E402
from explorer.tables import layer_table  # noqa: E402


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    rss = proc_bytes("/proc/self/status", "VmRSS")
    return float("nan") if rss is None else rss / 2**20


def random_configs(count: int, seed: int = 1) -> list[ResNetConfig]:
    rng = random.Random(seed)
    out: list[ResNetConfig] = []
    while len(out) < count:
        block = rng.choice(["basic", "bottleneck"])
        try:
            out.append(ResNetConfig(
                version=rng.choice([1, 2]), block=block, depth=rng.choice([8, 14, 20, 29, 32, 56, 110] if block == "basic"
                                                                          else [11, 20, 29, 56, 110, 164]),
                filters=rng.choice([8, 16, 32]), shortcut=rng.choice(["A", "B", "C", "none"]),
                head=rng.choice(["gap", "flatten"]), classes=rng.choice([10, 100]),
            ))
        except ConfigError:
            continue
    return out


def rebuild(configs: list[ResNetConfig], keras_layers: int) -> None:
    from explorer.keras_build import build_model

    for cfg in configs:
        ag = build(cfg)
        to_dot(ag)
        layer_table(ag)
        if len(ag.graph) <= keras_layers:
            build_model(ag)
    gc.collect()


def write_fixture(root: Path, per_file: int = 500) -> Path:
    """A small CIFAR-10 in the official binary layout (random pixels)."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]:
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_file // 10)
        records = np.concatenate([labels[:, None], rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)], axis=1)
        (folder / name).write_bytes(records.tobytes())
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=200)
    parser.add_argument("--keras-layers", type=int, default=120, help="also build the Keras model up to this size")
    parser.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR"))
    parser.add_argument("--seconds", type=float, default=15.0, help="budget of each training")
    parser.add_argument("--trainings", type=int, default=3, help="trainings in a row")
    parser.add_argument("--worker", choices=("process", "thread"), default="process",
                        help="where each training runs (the app's default: a spawned process)")
    args = parser.parse_args()

    configs = random_configs(args.configs)
    print(f"start: {rss_mb():.0f} MiB")
    rebuild(configs[:20], args.keras_layers)  # warm-up: TensorFlow, caches, first graphs
    warm = rss_mb()
    t = time.perf_counter()
    rebuild(configs, args.keras_layers)
    after = rss_mb()
    print(f"rebuilds: {len(configs)} configs (core + DOT + table, Keras model when ≤ {args.keras_layers} layers) "
          f"in {time.perf_counter() - t:.1f} s; RSS {warm:.0f} → {after:.0f} MiB (growth {after - warm:+.0f} MiB; goal ≤ 50)")
    rebuild(configs, args.keras_layers)
    again = rss_mb()
    print(f"rebuilds again: RSS {after:.0f} → {again:.0f} MiB (growth {again - after:+.0f} MiB)")

    from explorer import data as cifar
    from explorer.training import TrainJob, TrainSettings, release_freed_memory

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or str(write_fixture(Path(tmp)))
        dataset = cifar.load_cifar10(data_dir, use_env=False, use_keras_cache=False)
        before = rss_mb()
        print(f"before trainings: {before:.0f} MiB (data: {'real CIFAR-10' if args.data_dir else 'generated fixture'})")
        for i in range(args.trainings):
            cfg = ResNetConfig(depth=20)
            job = TrainJob(cfg, dataset, TrainSettings(seconds=args.seconds, subset=5000), idle_timeout=None,
                           name=f"run {i + 1}", worker=args.worker).start()
            job.join(timeout=args.seconds * 10 + 120)
            snap = job.poll()
            peak = job.worker_peak_rss
            del job
            gc.collect()
            held = rss_mb()
            release_freed_memory()
            child = "" if peak is None else f"; the training process peaked at {peak / 2**20:.0f} MiB"
            print(f"training {i + 1} ({args.worker}): {snap.status}; RSS {held:.0f} MiB, {rss_mb():.0f} MiB after "
                  f"malloc_trim{child}")
        end = rss_mb()
        print(f"after {args.trainings} trainings ({args.worker}): RSS {end:.0f} MiB ({end - before:+.0f} MiB vs before; "
              f"goal within 200 after 3)")


if __name__ == "__main__":
    main()
