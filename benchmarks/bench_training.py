"""Benchmark of CIFAR-10 training on this machine: throughput of our trainer vs a bare `model.fit`, and test accuracy in a time budget.

    python3 ../shared/data/cifar10_to_bin.py /tmp/cifar10      # once (needs numpy + Pillow: use .venv/bin/python)
    .venv/bin/python benchmarks/bench_training.py --data-dir /tmp/cifar10 [--budgets 90,180] [--window 30]

Each measurement runs in a fresh process (TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at import),
one after the other, so they share the machine equally; the throughput pairs alternate
(bare, ours, bare, ours) so that load from other processes hits both. Prints figures and one
JSON line; asserts nothing. Quote ratios: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


# --------------------------------------------------------------------------- workers (one per process)
def worker_bare(data_dir: str, precision: str, batch: int, window: float) -> dict:
    """Bare `model.fit` of ResNet-20 on our pipeline: plain SGD, no callbacks of ours; steady img/s."""
    import keras

    from explorer.data import load_cifar10, make_datasets
    from explorer.presets import PRESETS
    from explorer.training import build_training_model

    data = load_cifar10(data_dir)
    pipes = make_datasets(data, batch_size=batch, val_split=0.1, flip=True)
    model = build_training_model(PRESETS["resnet20"].config, precision=precision)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.2), metrics=["accuracy"])
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        """Timestamps only (cheap); stops after `window` seconds of steady training."""

        def on_train_batch_end(self, batch_index: int, logs=None) -> None:
            times.append(time.perf_counter())
            if times[-1] - times[0] > window:
                self.model.stop_training = True

    started = time.perf_counter()
    model.fit(pipes.train, epochs=100, steps_per_epoch=pipes.steps_per_epoch, verbose=0, callbacks=[Clock()], shuffle=False)
    steady = (len(times) - 1) * batch / (times[-1] - times[0])
    return {"what": f"bare model.fit {precision}", "images_per_second": steady, "steps": len(times),
            "first_batch_s": times[0] - started}


def worker_ours(data_dir: str, precision: str, batch: int, window: float) -> dict:
    """Our TrainJob (short recipe: time-budgeted LR, metric history, stop checks) for `window` seconds."""
    from explorer.data import load_cifar10
    from explorer.presets import PRESETS
    from explorer.training import TrainJob, TrainSettings

    data = load_cifar10(data_dir)
    settings = TrainSettings(seconds=window, batch_size=batch, precision=precision, val_split=0.1, evaluate=False)
    job = TrainJob(PRESETS["resnet20"].config, data, settings, idle_timeout=None).start()
    job.join()
    r = job.result()
    return {"what": f"our trainer {precision}", "images_per_second": r["train_images_per_second"], "steps": r["steps"],
            "status": r["status"], "error": r["error"]}


def worker_budget(data_dir: str, seconds: float) -> dict:
    """`train --preset resnet20 --seconds S` with the defaults: test accuracy (the short recipe's flip TTA included)."""
    from explorer.data import load_cifar10
    from explorer.presets import PRESETS
    from explorer.training import TrainJob, TrainSettings

    data = load_cifar10(data_dir)
    job = TrainJob(PRESETS["resnet20"].config, data, TrainSettings(seconds=seconds), idle_timeout=None).start()
    job.join()
    r = job.result()
    return {"what": f"short recipe, {seconds:g} s", "test_accuracy": r["test_accuracy"], "tta": r["tta"],
            "train_seconds": r["train_seconds"], "bn_recalibration_seconds": r["bn_recalibration_seconds"],
            "evaluation_seconds": r.get("evaluation_seconds"), "images_per_second": r["train_images_per_second"],
            "epochs": r["epochs_fractional"], "precision": r["precision"], "status": r["status"], "error": r["error"],
            "val_accuracy": [e["val_accuracy"] for e in r["history"]["epochs"]]}


WORKERS = {"bare": worker_bare, "ours": worker_ours, "budget": worker_budget}


def run_worker(args: list[str], env: dict[str, str]) -> dict:
    load = load_average()
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"what": " ".join(args), "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(lines[-1])
    result["load_average_before"] = round(load, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "/tmp/cifar10"))
    parser.add_argument("--budgets", default="90,180", help="seconds budgets for time-to-accuracy")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per throughput measurement")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the throughput pairs (the short recipe's)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "budget":
            out = worker_budget(args.data_dir, float(rest[0]))
        else:
            out = WORKERS[kind](args.data_dir, rest[0], int(rest[1]), float(rest[2]))
        print(json.dumps(out))
        return

    base_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    results = []

    def show(r: dict, env_note: str = "") -> None:
        results.append({**r, "env": env_note})
        figs = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items() if k != "what")
        print(f"{r['what']:<34s}{(' [' + env_note + ']') if env_note else ''}: {figs}", flush=True)

    print(f"ResNet-20 on CIFAR-10 ({args.data_dir}), {os.cpu_count()} CPUs, batch {args.batch}", flush=True)
    if not args.skip_throughput:
        b, w = str(args.batch), str(args.window)
        on = {**base_env, "TF_ENABLE_ONEDNN_OPTS": "1"}
        off = {**base_env, "TF_ENABLE_ONEDNN_OPTS": "0"}
        for _ in range(2):
            show(run_worker(["bare", "float32", b, w], on), "oneDNN on")
            show(run_worker(["ours", "float32", b, w], on), "oneDNN on")
        show(run_worker(["bare", "float32", b, w], off), "oneDNN off")
        show(run_worker(["bare", "mixed_bfloat16", b, str(args.window / 2)], on), "oneDNN on")
        bare = [r["images_per_second"] for r in results if r["what"].startswith("bare model.fit float32")
                and r["env"] == "oneDNN on" and r.get("images_per_second")]
        ours = [r["images_per_second"] for r in results if r["what"].startswith("our trainer") and r.get("images_per_second")]
        if bare and ours:
            print(f"our trainer / bare model.fit throughput: {sum(ours) / sum(bare):.3f}", flush=True)
    for seconds in [s for s in args.budgets.split(",") if s.strip()]:
        show(run_worker(["budget", seconds], base_env))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
