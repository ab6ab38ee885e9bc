"""Server resource guards a teacher can set: training memory, training length, and a time limit per rerun.

Everything here is plain Python (no TensorFlow, no Streamlit), so the app can check a training
before it starts. Limits come from environment variables, documented in the README's classroom
section:

* `EXPLORER_MAX_TRAIN_SECONDS` — the longest one training may run (default 900 s in the app;
  the CLI has no limit). A time budget above it is refused; an epoch budget ends there and is
  evaluated as it stands.
* `EXPLORER_MAX_TRAIN_MEMORY_MB` — the most memory one training, or one Keras model built or loaded
  outside a training (a `.keras` file, a gradient-flow pass, an uploaded model), may take by our
  estimate (default: no cap beyond what the machine has free).
* `EXPLORER_MAX_PARAMS` — the most parameters a model built or loaded outside a training may have
  (default 100 million: ResNet-152v2 has 60 million).
* `EXPLORER_RERUN_SECONDS` — how long a page waits for a slow computation (building a Keras
  file, a gradient-flow pass) before it stops it and says so (default 30 s).

Slow computations run in a spawned child process (`run_killable`), so one that runs over the time
limit is killed and its memory goes back at once; their files go to a private folder of this
server process (`private_dir`).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import math
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from explorer import fmt
from explorer.annotate import AnnotatedGraph
from explorer.config import ConfigError

MAX_TRAIN_SECONDS_ENV = "EXPLORER_MAX_TRAIN_SECONDS"
MAX_TRAIN_MEMORY_ENV = "EXPLORER_MAX_TRAIN_MEMORY_MB"
RERUN_SECONDS_ENV = "EXPLORER_RERUN_SECONDS"
MAX_PARAMS_ENV = "EXPLORER_MAX_PARAMS"
DEFAULT_MAX_PARAMS = 100_000_000
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




# --------------------------------------------------------------------------- memory
def worker_bytes(worker: str, data_bytes: int) -> int:
    """What a training's worker takes before it trains: for a "process", TensorFlow's runtime and its copy of the
    data set (`data_bytes`); nothing for a "thread", which shares the server's."""
    return PROCESS_BYTES + int(data_bytes) if worker in ("process", "ray") else 0


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
            (`EXPLORER_MAX_TRAIN_MEMORY_MB`) or above 85 % of the memory the machine has free; (field
            "filters") the network has more parameters than `max_params()` (its trained model could not be
            loaded back on this server).
    """
    if ag.total_params > max_params():
        raise ConfigError("filters", f"this network has {ag.total_params:,} parameters, but this server trains and "
                          f"loads models of at most {max_params():,} parameters ({MAX_PARAMS_ENV})",
                          "choose fewer filters, a narrower width rule or a shallower network")
    need = estimate_training_bytes(ag, batch_size=batch_size, images=images, flip=flip, image_bytes=image_bytes,
                                   extra=extra)
    per_batch = ACTIVATION_FACTOR * ag.activation_bytes

    def refuse(limit: float, why: str) -> None:
        room = int((limit - (need - batch_size * per_batch)) // per_batch) if per_batch else 0
        fit = next((b for b in (512, 256, 128, 64, 32, 16, 8) if b <= room), None)
        hint = (f"use a batch size of {fit} or less" if fit and fit < batch_size
                else "choose a shallower or narrower network, or fewer training images")
        raise ConfigError("batch_size", f"this training needs about {fmt.memory(need)} of memory, but {why}", hint)

    cap_mb = _env_float(MAX_TRAIN_MEMORY_ENV)
    if cap_mb is not None and need > cap_mb * MIB:
        refuse(cap_mb * MIB, f"the server allows {fmt.memory(cap_mb * MIB)} per training ({MAX_TRAIN_MEMORY_ENV})")
    free = available_bytes() if free is None else free
    if free is not None and need > FREE_FRACTION * free:
        refuse(FREE_FRACTION * free, f"the machine has only {fmt.memory(free)} free right now")
    return need


# --------------------------------------------------------------------------- size of a model built or loaded
BUILD_PARAM_COPIES = 3
"""Copies of the weights while a model is built or loaded outside a training: the variables, the initializer's (or
the file's) transient copy, and one more (the gradients of a gradient-flow pass, the buffer a `.keras` file is saved
from). Measured here (TF 2.21, CPU): building and saving ResNet-56 at 64 / 128 filters (13.6 M / 54.3 M params) grew
the resident memory by 2.65 / 2.39 × its weights above TensorFlow's runtime."""


def max_params() -> int:
    """The most parameters a model built or loaded outside a training may have (`EXPLORER_MAX_PARAMS`, default 100 M)."""
    return int(_env_float(MAX_PARAMS_ENV) or DEFAULT_MAX_PARAMS)


def estimate_model_bytes(params: int, *, activation_bytes: int = 0, batch_size: int = 0, extra: int = 0) -> int:
    """Peak extra memory of building (or loading) a Keras model of `params` parameters, in bytes (with a margin).

    Args:
        params: Its parameters (float32).
        activation_bytes: Bytes of all its activations for one image (forward and backward keep them all).
        batch_size: Images pushed through it at once (0: the model is only built, e.g. to save it).
        extra: Bytes to add, e.g. PROCESS_BYTES when it is built in a process of its own.
    """
    return int(FIXED_BYTES + params * 4 * BUILD_PARAM_COPIES + ACTIVATION_FACTOR * batch_size * activation_bytes + extra)


def estimate_build_bytes(ag: AnnotatedGraph, *, batch_size: int = 0, extra: int = 0) -> int:
    """Peak extra memory of building the Keras model of `ag` (and, with `batch_size`, one forward and backward pass)."""
    return estimate_model_bytes(ag.total_params, activation_bytes=ag.activation_bytes, batch_size=batch_size,
                                extra=extra)


def check_model_size(params: int, need: int, *, what: str, hint: str, field: str = "config",
                     free: int | None = None) -> int:
    """Refuse a model with more parameters, or a larger memory estimate, than this server allows; returns `need`.

    Args:
        params: The model's parameters.
        need: Its memory estimate in bytes (`estimate_model_bytes`).
        what: What is built, for the message (e.g. "this network's .keras file").
        hint: What to do instead (e.g. "choose fewer filters or a shallower network").
        field: The ConfigError's field.
        free: Memory free now, in bytes (default: `available_bytes()`).

    Raises:
        ConfigError: `params` is above `max_params()`, or `need` above the teacher's cap
            (`EXPLORER_MAX_TRAIN_MEMORY_MB`) or above 85 % of the memory the machine has free.
    """
    size = f"{what} has {params:,} parameters ({fmt.memory(params * 4)} of weights) and needs about {fmt.memory(need)} of memory"
    cap = max_params()
    if params > cap:
        raise ConfigError(field, f"{size}, but this server builds models of at most {cap:,} parameters "
                          f"({MAX_PARAMS_ENV})", hint)
    limits = []
    cap_mb = _env_float(MAX_TRAIN_MEMORY_ENV)
    if cap_mb is not None:
        limits.append((cap_mb * MIB, f"the server allows {fmt.memory(cap_mb * MIB)} ({MAX_TRAIN_MEMORY_ENV})"))
    free = available_bytes() if free is None else free
    if free is not None:
        limits.append((FREE_FRACTION * free, f"the machine has only {fmt.memory(free)} free right now"))
    for limit, why in limits:
        if need > limit:
            fit = max(0, int((limit - (need - params * 4 * BUILD_PARAM_COPIES)) // (4 * BUILD_PARAM_COPIES)))
            raise ConfigError(field, f"{size}, but {why}: about {min(fit, cap):,} parameters fit", hint)
    return need


def check_build_memory(ag: AnnotatedGraph, *, what: str = "this network", batch_size: int = 0, extra: int = 0,
                       free: int | None = None) -> int:
    """Refuse to build the Keras model of `ag` (for a `.keras` file, a gradient-flow pass, the API) when it is too big.

    Returns:
        The estimate in bytes (`estimate_build_bytes`).

    Raises:
        ConfigError: See `check_model_size`.
    """
    need = estimate_build_bytes(ag, batch_size=batch_size, extra=extra)
    hint = "choose fewer filters, a narrower width rule or a shallower network"
    if batch_size:
        hint += ", or a smaller batch"
    return check_model_size(ag.total_params, need, what=what, hint=hint, free=free)


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
    """A computation did not finish within the rerun time limit, or too many slow computations are running."""


class ComputationFailed(RuntimeError):
    """A slow computation failed in its child process (the message is one line), or the process died."""


MAX_SLOW = 2
"""Slow computations (in child processes or threads) that may run at once on this server."""
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_SLOW, thread_name_prefix="explorer-slow")
_BUSY = threading.BoundedSemaphore(MAX_SLOW)
BUSY_MESSAGE = "two slow computations are still running on this server; try again in a minute"


def within(seconds: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in a worker thread and wait at most `seconds` for it.

    Python cannot kill a thread, so a computation that runs over is left to finish in the
    background (its result is dropped); prefer `run_killable` for anything that builds a model.
    At most two run at once (with those of `run_killable`); a third is refused at once.

    Raises:
        TooSlow: It did not finish in time, or two slow computations are still running.
    """
    if not _BUSY.acquire(blocking=False):
        raise TooSlow(BUSY_MESSAGE)

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


def run_killable(seconds: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in a spawned child process and kill it when it runs over `seconds`.

    The child runs at the CPU priority of trainings (`train_nice`) and ends itself when this process
    is gone. A killed child frees its memory and its slot at once; at most two run at once (with
    those of `within`), a third is refused at once. `fn` and its arguments must be picklable
    (a module-level function); a file it was writing is the caller's to remove.

    Returns:
        What `fn` returned (sent back pickled).

    Raises:
        TooSlow: It ran over `seconds` (it was stopped), or two slow computations are still running.
        ConfigError: `fn` raised one (re-raised here with its field, message and hint).
        ComputationFailed: `fn` raised another exception (its type and message), or the child died.
    """
    if not _BUSY.acquire(blocking=False):
        raise TooSlow(BUSY_MESSAGE)
    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    process = ctx.Process(target=_child_main, args=(child_conn, os.getpid(), train_nice()), name="explorer-slow",
                          daemon=True)
    try:
        with blank_main():
            process.start()
        child_conn.close()
        try:  # (the task goes through the pipe, not the start: a child that dies early cannot block this thread)
            conn.send((fn, args, kwargs))
        except OSError:
            pass  # it died before reading: reported below
        if not conn.poll(seconds):
            raise TooSlow(f"it took longer than {seconds:g} s (the limit per page update, {RERUN_SECONDS_ENV}) "
                          "and was stopped")
        try:
            kind, value = conn.recv()
        except (EOFError, OSError):
            process.join(5)
            raise ComputationFailed(_ended(process.exitcode)) from None
    finally:
        if process.pid is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
        conn.close()
        _BUSY.release()
    if kind == "ok":
        return value
    if kind == "config":
        raise ConfigError(*value)
    raise ComputationFailed(value)


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def blank_main() -> Iterator[None]:
    """Hide `__main__` while a child is spawned, so that the child does not run it again.

    Under Streamlit, `__main__` is the app script itself (Streamlit installs it there for every
    page run): a spawned child would execute the whole page before its task. The child needs no
    main module; the real one is put back unless a page run has installed a newer one meanwhile.
    """
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        blank = types.ModuleType("__main__")
        sys.modules["__main__"] = blank
        try:
            yield
        finally:
            if sys.modules.get("__main__") is blank and main is not None:
                sys.modules["__main__"] = main


def signal_name(exitcode: int | None) -> str | None:
    """The signal that ended a child process, from its `exitcode` ("SIGKILL", or "signal 77"); None when it exited."""
    if exitcode is None or exitcode >= 0:
        return None
    import signal

    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def _ended(exitcode: int | None) -> str:
    name = signal_name(exitcode)
    if name is not None:
        return f"the computation's process was killed by {name} (out of memory?); try a smaller network"
    return f"the computation's process ended unexpectedly (exit code {exitcode}); see the server log"


def _child_main(conn: Any, parent: int, nice: int) -> None:
    """A `run_killable` child: receive (fn, args, kwargs), run it, send back ("ok", result),
    ("config", (field, message, hint)) or ("failed", text)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)

    def orphaned() -> None:  # the server is gone (killed): stop at once
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=orphaned, name="orphaned", daemon=True).start()
    try:
        fn, args, kwargs = conn.recv()
        out: tuple = ("ok", fn(*args, **kwargs))
    except ConfigError as exc:
        out = ("config", (exc.field, exc.message, exc.hint))
    except Exception as exc:  # the parent shows it in one line
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        out = ("failed", text if len(text) <= 300 else text[:297] + "…")
    conn.send(out)
    conn.close()


# --------------------------------------------------------------------------- private files
_PRIVATE: str | None = None
_PRIVATE_LOCK = threading.Lock()


def private_dir() -> Path:
    """This server process's own temporary folder (mode 0700, a random name), created on first use, removed at exit."""
    global _PRIVATE
    with _PRIVATE_LOCK:
        if _PRIVATE is not None:
            with contextlib.suppress(OSError):
                st = os.lstat(_PRIVATE)
                if os.path.isdir(_PRIVATE) and not os.path.islink(_PRIVATE) and st.st_uid == os.getuid():
                    return Path(_PRIVATE)
        _PRIVATE = tempfile.mkdtemp(prefix="resnet-explorer-")  # created 0700 with a fresh random name
        os.chmod(_PRIVATE, 0o700)
        atexit.register(shutil.rmtree, _PRIVATE, ignore_errors=True)
        return Path(_PRIVATE)


def private_file(suffix: str = "") -> Path:
    """A fresh random path in `private_dir()` (not created): nobody else can place a file or link there."""
    return private_dir() / f"{secrets.token_hex(16)}{suffix}"


def prune_private(older_than: float, pattern: str = "*") -> None:
    """Delete the files in `private_dir()` older than `older_than` seconds (files whose session ended unannounced)."""
    now = time.time()
    for old in private_dir().glob(pattern):
        with contextlib.suppress(OSError):
            if old.is_file() and not old.is_symlink() and now - old.stat().st_mtime > older_than:
                old.unlink()


# --------------------------------------------------------------------------- where trainings run
TRAIN_WORKER_ENV = "EXPLORER_TRAIN_WORKER"
TRAIN_NICE_ENV = "EXPLORER_TRAIN_NICE"
WORKERS = ("process", "thread", "ray")
DEFAULT_TRAIN_NICE = 19


def train_worker(default: str = "process") -> str:
    """Where the app runs a training: "ray" with `EXPLORER_TRAIN_BACKEND=ray` (an actor on a Ray cluster), else
    `EXPLORER_TRAIN_WORKER`: "process" (default: a spawned process at a lower CPU priority, whose memory goes back
    to the system when it ends) or "thread" (inside the server)."""
    if os.environ.get("EXPLORER_TRAIN_BACKEND", "").strip().lower() == "ray":
        return "ray"
    raw = os.environ.get(TRAIN_WORKER_ENV, "").strip().lower()
    return raw if raw in WORKERS[:2] else default


def train_nice() -> int:
    """How much a training process lowers its CPU priority (`EXPLORER_TRAIN_NICE`, 0..19, default 19), so the
    server answers students first and trainings take the CPU time left over."""
    raw = os.environ.get(TRAIN_NICE_ENV, "").strip()
    try:
        return min(19, max(0, int(raw))) if raw else DEFAULT_TRAIN_NICE
    except ValueError:
        return DEFAULT_TRAIN_NICE
