"""Server resource guards a teacher can set: training memory, training length, and a time limit per rerun.

Everything here is plain Python (no TensorFlow, no Streamlit), so the app can check a training
before it starts. Limits come from environment variables, documented in the README's classroom
section:

* `EXPLORER_MAX_TRAIN_SECONDS` — the longest one training may run (default 900 s in the app;
  the CLI has no limit). A time budget above it is refused; an epoch budget ends there and is
  evaluated as it stands.
* `EXPLORER_MAX_TRAIN_MEMORY_MB` — the most memory one training may take by our estimate
  (default: no cap beyond what the machine has free).
* `EXPLORER_RERUN_SECONDS` — how long a page waits for a slow computation (building a Keras
  file, a gradient-flow pass) before it gives up and says so (default 30 s).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from explorer.annotate import AnnotatedGraph
from explorer.config import ConfigError

MAX_TRAIN_SECONDS_ENV = "EXPLORER_MAX_TRAIN_SECONDS"
MAX_TRAIN_MEMORY_ENV = "EXPLORER_MAX_TRAIN_MEMORY_MB"
RERUN_SECONDS_ENV = "EXPLORER_RERUN_SECONDS"
DEFAULT_APP_TRAIN_SECONDS = 900.0
DEFAULT_RERUN_SECONDS = 30.0

MIB = 2**20
# Calibrated on this machine (TF 2.21, float32, CPU; see benchmarks/bench_memory.py --calibrate):
# peak RSS growth of a training ≈ 160 MiB + 1.08 × batch × (bytes of all activations of one image).
# We add margin: a fixed 200 MiB and 1.2× the activations.
FIXED_BYTES = 200 * MIB
ACTIVATION_FACTOR = 1.2
PARAM_COPIES = 4  # weights, gradients, momentum, and one transient copy
# A spawned training process (worker "process") first imports TensorFlow and Keras: 612 MiB resident here.
PROCESS_BYTES = 640 * MIB
FREE_FRACTION = 0.85  # never plan to use more than this share of the memory the machine has free

T = TypeVar("T")


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def max_train_seconds(default: float | None = DEFAULT_APP_TRAIN_SECONDS) -> float | None:
    """The longest one training may run on this server (`EXPLORER_MAX_TRAIN_SECONDS`, else `default`)."""
    return _env_float(MAX_TRAIN_SECONDS_ENV) or default


def rerun_seconds() -> float:
    """How long a page waits for one slow computation (`EXPLORER_RERUN_SECONDS`, default 30)."""
    return _env_float(RERUN_SECONDS_ENV) or DEFAULT_RERUN_SECONDS


def human(n: float) -> str:
    """Bytes in MiB/GiB, e.g. '1.4 GiB'."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / MIB:,.0f} MiB"


# --------------------------------------------------------------------------- memory
def worker_bytes(worker: str, data_bytes: int) -> int:
    """What a training's worker takes before it trains: for a "process", TensorFlow's runtime and its copy of the
    data set (`data_bytes`); nothing for a "thread", which shares the server's."""
    return PROCESS_BYTES + int(data_bytes) if worker == "process" else 0


def estimate_training_bytes(ag: AnnotatedGraph, *, batch_size: int, images: int, flip: bool = True,
                            image_bytes: int | None = None, extra: int = 0) -> int:
    """Peak extra memory of one training of `ag`, in bytes (an estimate with a margin).

    Args:
        ag: The annotated network (its per-image activation bytes and params).
        batch_size: Training batch size (activations kept for the backward pass scale with it).
        images: Training + validation images the run copies into its pipeline.
        flip: Whether a mirrored copy of those images is kept (random flips).
        image_bytes: Bytes of one stored uint8 image (default: the network's input size).
        extra: Bytes to add, e.g. `worker_bytes` when the training runs in a process of its own.
    """
    per_image = image_bytes if image_bytes is not None else math.prod(ag.config.input_shape)
    data = images * per_image * (2 if flip else 1)
    params = ag.total_params * 4 * PARAM_COPIES
    return int(FIXED_BYTES + ACTIVATION_FACTOR * batch_size * ag.activation_bytes + params + data + extra)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def proc_bytes(path: str, key: str) -> int | None:
    """A "Key:  N kB" line of a Linux /proc file (e.g. /proc/meminfo, /proc/PID/status) in bytes; None without it.

    Raises:
        OSError: The file cannot be read (not Linux, or the process has ended).
    """
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    return None


def available_bytes() -> int | None:
    """Memory this process can still take: the machine's MemAvailable, lowered by a cgroup limit if any."""
    try:
        free = proc_bytes("/proc/meminfo", "MemAvailable")
    except OSError:
        return None
    cgroup = Path("/sys/fs/cgroup")
    limit, used = _read_int(cgroup / "memory.max"), _read_int(cgroup / "memory.current")
    if limit is not None and used is not None:
        free = min(free, max(limit - used, 0)) if free is not None else max(limit - used, 0)
    return free


def check_training_memory(ag: AnnotatedGraph, *, batch_size: int, images: int, flip: bool = True,
                          image_bytes: int | None = None, free: int | None = None, extra: int = 0) -> int:
    """Refuse a training that would not fit in memory; returns the estimate in bytes.

    Raises:
        ConfigError: (field "batch_size") the estimate is above the teacher's cap
            (`EXPLORER_MAX_TRAIN_MEMORY_MB`) or above 85 % of the memory the machine has free.
    """
    need = estimate_training_bytes(ag, batch_size=batch_size, images=images, flip=flip, image_bytes=image_bytes,
                                   extra=extra)
    per_batch = ACTIVATION_FACTOR * ag.activation_bytes

    def refuse(limit: float, why: str) -> None:
        room = int((limit - (need - batch_size * per_batch)) // per_batch) if per_batch else 0
        fit = next((b for b in (512, 256, 128, 64, 32, 16, 8) if b <= room), None)
        hint = (f"use a batch size of {fit} or less" if fit and fit < batch_size
                else "choose a shallower or narrower network, or fewer training images")
        raise ConfigError("batch_size", f"this training needs about {human(need)} of memory, but {why}", hint)

    cap_mb = _env_float(MAX_TRAIN_MEMORY_ENV)
    if cap_mb is not None and need > cap_mb * MIB:
        refuse(cap_mb * MIB, f"the server allows {human(cap_mb * MIB)} per training ({MAX_TRAIN_MEMORY_ENV})")
    free = available_bytes() if free is None else free
    if free is not None and need > FREE_FRACTION * free:
        refuse(FREE_FRACTION * free, f"the machine has only {human(free)} free right now")
    return need


def check_train_seconds(seconds: float | None, limit: float | None) -> None:
    """Refuse a time budget above the server's limit per training.

    Raises:
        ConfigError: (field "seconds") `seconds` exceeds `limit`.
    """
    if seconds is not None and limit is not None and seconds > limit:
        raise ConfigError("seconds", f"a training may run at most {limit:g} s on this server, not {seconds:g} s",
                          f"give {limit:g} s or less (the teacher sets the limit with {MAX_TRAIN_SECONDS_ENV})")


# --------------------------------------------------------------------------- time limit per rerun
class TooSlow(RuntimeError):
    """A computation did not finish within the rerun time limit (it was left to finish in the background)."""


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="explorer-slow")
_BUSY = threading.BoundedSemaphore(2)


def within(seconds: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in a worker and wait at most `seconds` for it.

    A page thus never hangs on one computation. Python cannot kill a thread, so a computation
    that runs over is left to finish in the background (its result is dropped); at most two run at
    once, and a third is refused at once rather than queued behind them.

    Raises:
        TooSlow: It did not finish in time, or two slow computations are still running.
    """
    if not _BUSY.acquire(blocking=False):
        raise TooSlow("two slow computations are still running on this server; try again in a minute")

    def run() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            _BUSY.release()

    future = _POOL.submit(run)
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        raise TooSlow(f"it took longer than {seconds:g} s (the limit per page update, {RERUN_SECONDS_ENV})") from None


# --------------------------------------------------------------------------- where trainings run
TRAIN_WORKER_ENV = "EXPLORER_TRAIN_WORKER"
TRAIN_NICE_ENV = "EXPLORER_TRAIN_NICE"
WORKERS = ("process", "thread")
DEFAULT_TRAIN_NICE = 19


def train_worker(default: str = "process") -> str:
    """Where the app runs a training (`EXPLORER_TRAIN_WORKER`): "process" (default: a spawned process at a
    lower CPU priority, whose memory goes back to the system when it ends) or "thread" (inside the server)."""
    raw = os.environ.get(TRAIN_WORKER_ENV, "").strip().lower()
    return raw if raw in WORKERS else default


def train_nice() -> int:
    """How much a training process lowers its CPU priority (`EXPLORER_TRAIN_NICE`, 0..19, default 19), so the
    server answers students first and trainings take the CPU time left over."""
    raw = os.environ.get(TRAIN_NICE_ENV, "").strip()
    try:
        return min(19, max(0, int(raw))) if raw else DEFAULT_TRAIN_NICE
    except ValueError:
        return DEFAULT_TRAIN_NICE
