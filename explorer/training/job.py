"""The handle of one training that the UI and the CLI hold: its state, its worker thread, stop, poll, result, the slots.

A `TrainJob` owns everything one training needs (a `JobState`, lock, stop event, last-poll time) and runs in a
daemon thread, so a Streamlit page can poll it from a fragment and a CLI can print its progress. The worker
never touches Streamlit. A process-wide `FairSlots` caps how many train at once (`EXPLORER_MAX_TRAININGS`,
default 1); the others wait for a slot, first come, first served.

With `worker="process"` (what the app uses, `explorer.guards.train_worker`) the thread hands the training
itself to a spawned process (`explorer.training.process`) that reports its `JobState` back; with "thread" it
trains here (`explorer.training.loop`, which imports TensorFlow when a job first trains).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from explorer import guards
from explorer.config import ConfigError, ResNetConfig
from explorer.data import DataError
from explorer.training.prepare import DataSizes, check_weights, data_mismatch, fit_batch, memory_estimate
from explorer.training.recipes import TrainSettings
from explorer.training.state import ACTIVE, STATUSES, JobState, Snapshot

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ACTIVE", "STATUSES", "FairSlots", "JobBusy", "JobState", "SLOTS", "Snapshot", "TrainJob", "max_concurrent",
           "release_freed_memory", "start_job"]

MAX_TRAININGS_ENV = "EXPLORER_MAX_TRAININGS"
DEFAULT_IDLE_TIMEOUT = 60.0


# --------------------------------------------------------------------------- slots
def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise: a training's
    tensors would stay in the server's RSS; benchmarks/bench_memory.py measures the difference)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def max_concurrent() -> int:
    """How many trainings may run at once in this process (`EXPLORER_MAX_TRAININGS`, default 1)."""
    try:
        return max(1, int(os.environ.get(MAX_TRAININGS_ENV, "1")))
    except ValueError:
        return 1


class FairSlots:
    """A counting semaphore that serves its waiters first come, first served, and tells each how many are ahead.

    A plain `threading.Semaphore` wakes an arbitrary waiter, and a job that polls it with a timeout (to notice
    Stop) joins the back of no queue at all, so a training that asked later could start first. Here a waiter
    takes a ticket once (`enqueue`), waits on it (`wait`, any number of times with a timeout), and either gets
    a slot in ticket order or gives the ticket back (`cancel`). `acquire`/`release` keep the Semaphore interface.

    Args:
        slots: How many holders at once.
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, int(slots))
        self._cond = threading.Condition()
        self._holders = 0
        self._queue: list[int] = []  # tickets waiting, in arrival order
        self._next = 0

    def enqueue(self) -> int:
        """Join the queue; returns the ticket to wait on."""
        with self._cond:
            ticket = self._next
            self._next += 1
            self._queue.append(ticket)
            return ticket

    def _grantable(self, ticket: int) -> bool:
        return self._holders < self.slots and self._queue.index(ticket) < self.slots - self._holders

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait up to `timeout` s for the slot of `ticket`; True once it is held (the ticket is then used up)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._grantable(ticket), timeout):
                return False
            self._queue.remove(ticket)
            self._holders += 1
            self._cond.notify_all()
            return True

    def cancel(self, ticket: int) -> None:
        """Leave the queue without a slot (a waiting job was stopped)."""
        with self._cond:
            if ticket in self._queue:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def ahead(self, ticket: int) -> int:
        """How many waiters are before `ticket` in the queue (0 when it is next, or no longer waiting)."""
        with self._cond:
            return self._queue.index(ticket) if ticket in self._queue else 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot in turn (the `threading.Semaphore` interface)."""
        ticket = self.enqueue()
        if self.wait(ticket, timeout if blocking else 0):
            return True
        self.cancel(ticket)
        return False

    def release(self) -> None:
        """Give a slot back.

        Raises:
            ValueError: More releases than acquires.
        """
        with self._cond:
            if self._holders <= 0:
                raise ValueError("FairSlots released more often than acquired")
            self._holders -= 1
            self._cond.notify_all()


SLOTS = FairSlots(max_concurrent())
UNCAPPED = FairSlots(1_000_000)  # Ray trainings: the cluster queues what does not fit (`explorer.training.ray_backend`)


class JobBusy(RuntimeError):
    """This session already has a training that has not finished."""


class _InState:
    """A `TrainJob` attribute that lives in its `JobState` (`job.status` reads and writes `job.state.status`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, job: Any, owner: type | None = None) -> Any:
        return self if job is None else getattr(_state(job), self.name)

    def __set__(self, job: Any, value: Any) -> None:
        setattr(_state(job), self.name, value)


def _state(job: Any) -> JobState:
    return vars(job).setdefault("state", JobState())  # (a job made without __init__, e.g. a test's finished one)


# --------------------------------------------------------------------------- the job
class TrainJob:
    """One training of one network on CIFAR-10 (or image folders), run in a daemon worker thread.

    Every field of its `state` (a `JobState`) reads and writes as an attribute of the job too: `job.status`,
    `job.batches`, `job.evaluation`, `job.capped`, …

    Args:
        config: The network (must fit the data: for CIFAR-10 a 32×32×3 input and 10 classes, for
            image folders their (H, W, 3) and one class per folder).
        data: CIFAR-10 or `explorer.imagefolder.ImageFolders` in memory (shared, read-only). With
            image folders the per-epoch validation and the final evaluation use their validation
            images (the settings' val_split is not used).
        settings: Recipe, budget and knobs.
        idle_timeout: Stop by itself when nobody has called `poll()` for this many seconds
            (None = never; the CLI does not poll).
        slots: The semaphore capping concurrent trainings (default: the process-wide `FairSlots`, first come first
            served; a plain `threading.Semaphore` also works, in no particular order).
        name: A label for the run (shown in the compare tab).
        max_seconds: The server's limit on one training's wall time (`explorer.guards`; None = none).
            A time budget above it is refused; an epoch budget ends there and is evaluated as it stands.
        check_memory: Refuse to start (status "failed", with the reason) when the estimated memory
            of the training is more than the machine has free (`explorer.guards`).
        worker: "thread" trains in this process; "process" in a spawned process (at the CPU priority
            `explorer.guards.train_nice`), "ray" in an actor on a Ray cluster (`explorer.training.ray_backend`; not
            capped by `slots`: the cluster queues what does not fit); their model comes back as `.keras` bytes
            (`model_bytes`; `model` loads them when first asked for).
        pressed: When Train was pressed (`time.time()`; default: now): a budget in seconds is the wall time from
            here to the result, and `timings` say where it went.
        release_memory: After the result, hand the freed heap back to the system (`release_freed_memory`; a
            server keeps running). A process that ends with its job (the CLI) says False: the trim can take
            tens of seconds after a training, and the result would wait for it.
    """

    def __init__(self, config: ResNetConfig, data: Any, settings: TrainSettings | None = None, *,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT, slots: threading.Semaphore | FairSlots | None = None,
                 name: str | None = None, max_seconds: float | None = None, check_memory: bool = True,
                 worker: str = "thread", pressed: float | None = None, release_memory: bool = True) -> None:
        if worker not in guards.WORKERS:
            raise ValueError(f"worker must be one of {guards.WORKERS}, not {worker!r}")
        problem = data_mismatch(config, data)
        if problem:
            shape, n = "×".join(map(str, data.image_shape)), data.num_classes
            raise ConfigError("input", problem, f"use 'adapt' (input {shape}, {n} classes)")
        self.config = config
        self.data = data
        # fewer training images than one batch: the batch shrinks to them (`batch_notice` says so)
        self.settings, self.batch_notice = fit_batch(settings or TrainSettings(), data)
        self.recipe = self.settings.recipe_obj
        check_weights(config, self.settings)
        self.idle_timeout = idle_timeout
        guards.check_train_seconds(self.settings.seconds, max_seconds)
        self.max_seconds = max_seconds
        self.check_memory = check_memory
        self.name = name or f"depth {config.resolved_depth}"
        self.worker = worker
        self.release_memory = release_memory
        self.state = JobState()
        self.state.pressed = time.time() if pressed is None else pressed
        self.state.mark("starting", self.state.pressed)
        self.best_weights: list[np.ndarray] | None = None  # the best epoch's weights, with `checkpoint_best`
        self._slots = (UNCAPPED if worker == "ray" else SLOTS) if slots is None else slots
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._model: Any = None
        self._model_bytes: bytes | None = None
        self.created = time.time()
        self.last_poll = time.monotonic()

    # ------------------------------------------------------------- control (any thread)
    def start(self) -> TrainJob:
        """Start the worker thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("this job has already been started")
        self.last_poll = time.monotonic()
        self.update(phase="waiting for a slot")
        self.mark("waiting")
        self._thread = threading.Thread(target=self._run, name=f"train-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the worker to stop; it ends within about one batch."""
        with self._lock:
            state = self.state
            if state.status in ACTIVE and not self._stop.is_set():
                state.stop_reason = reason
                if state.status == "running":
                    state.status = "stopping"
                self._stop.set()

    def poll(self) -> Snapshot:
        """A consistent copy of the job's state; also tells the job someone is still watching."""
        with self._lock:
            self.last_poll = time.monotonic()
            return Snapshot.of(self.state)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def active(self) -> bool:
        """Waiting or running (not yet ended)."""
        return self.status in ACTIVE

    def should_stop(self) -> bool:
        """Whether the worker should end now (stop asked, or nobody polled for `idle_timeout`)."""
        if self._stop.is_set():
            return True
        if self.idle_timeout is not None and time.monotonic() - self.last_poll > self.idle_timeout:
            self.stop(f"stopped by itself: nobody watched it for {self.idle_timeout:g} s (was the tab closed?)")
            return True
        return False

    def result(self) -> dict:
        """The run as one JSON-ready dict (the CLI's --json object)."""
        with self._lock:
            st = self.state
            out = {
                "name": self.name, "status": st.status, "config": self.config.to_dict(),
                "settings": {k: v for k, v in vars(self.settings).items()},
                "precision": st.precision, "device": st.device,
                "train_images": st.n_train, "val_images": st.n_val,
                "train_seconds": round(st.train_seconds, 3),
                "bn_recalibration_seconds": round(st.finalize_seconds, 3),
                "train_images_per_second": None if st.steady_images_per_second is None
                else round(st.steady_images_per_second, 1),
                "images_seen": st.images_seen, "steps": st.steps,
                "epochs_completed": len([e for e in st.epochs if e.get("complete")]),
                "epochs_fractional": round(st.epoch, 3),
                "history": {"batches": list(st.batches), "epochs": list(st.epochs)},
                "error": st.error, "stop_reason": st.stop_reason,
                "ended_at_server_limit": st.capped, "memory_estimate_bytes": st.memory_estimate,
                "worker": self.worker, "worker_peak_memory_bytes": st.worker_peak_rss,
                "stem_whitening": None if st.whitening is None else vars(st.whitening),
                "wall_seconds": round(st.wall, 3), "timings": {k: round(v, 3) for k, v in st.timings.items()},
                "reserved_seconds": None if st.reserved is None else round(st.reserved, 3),
                "budget_stop_seconds": None if st.budget_stop is None else round(st.budget_stop, 3),
                "warm_worker": st.warm_worker,
                "monitor": st.monitor, "best_epoch": st.best_epoch, "restored_best": st.restored_best,
                "data_source": self.data.source, "classes": list(self.data.classes),
                "skipped_files": getattr(self.data, "skipped", 0),
                "skipped_examples": list(getattr(self.data, "skipped_examples", ())),
                **_weights_result(st.weights_report),
            }
            if st.evaluation is not None:
                out.update(st.evaluation.to_dict())
            else:
                out.update(test_accuracy=None, test_loss=None, test_images=0)
            return out

    @property
    def model(self) -> Any:
        """The trained Keras model (None before). A training process's model is loaded from its bytes when first asked for."""
        if self._model is None and self._model_bytes is not None and not self.active:
            from explorer.inference import load_model

            self._model = load_model(self._model_bytes, name=f"{self.name}.keras").model
        return self._model

    @model.setter
    def model(self, value: Any) -> None:
        self._model = value

    @property
    def has_model(self) -> bool:
        """Whether the job has ended with a model (without loading one from a training process)."""
        return not self.active and (self._model is not None or self._model_bytes is not None)

    def model_bytes(self) -> bytes:
        """The trained model as a `.keras` file, its class names and normalisation inside (made once, after the job has ended)."""
        from explorer.inference import meta_for_data, save_model_bytes

        if not self.has_model:
            raise RuntimeError("there is no trained model yet")
        if self._model_bytes is None:
            self._model_bytes = save_model_bytes(self.model, meta_for_data(self.model, self.data))
        return self._model_bytes

    # ------------------------------------------------------------- what the worker reports
    def update(self, **changes: Any) -> None:
        """Set fields of the job's state (under its lock)."""
        with self._lock:
            for name, value in changes.items():
                setattr(self.state, name, value)

    def mark(self, part: str | None) -> None:
        """Start the part `part` of the wall time (`explorer.training.state.PARTS`; None: the end)."""
        with self._lock:
            self.state.mark(part, time.time())

    def add_batch(self, entry: dict, *, images_per_second: float | None) -> None:
        """Append a per-batch record (and the throughput it measured, when it did)."""
        with self._lock:
            self.state.batches.append(entry)
            if images_per_second is not None:
                self.state.images_per_second = images_per_second

    def add_epoch(self, entry: dict, *, best: bool) -> None:
        """Append a per-epoch record; `best`: it has the lowest monitored loss so far (the one row marked best)."""
        with self._lock:
            state = self.state
            if best:
                state.epochs[:] = [{**e, "best": False} if e.get("best") else e for e in state.epochs]
                state.best_epoch = entry["epoch"]
            state.epochs.append(entry)

    def take_report(self, report: JobState, *, model_bytes: bytes | None = None) -> None:
        """Take a training process's report into this job's state (`JobState.take`), and its model once it ends."""
        with self._lock:
            self.state.take(report)
            if model_bytes is not None:
                self._model_bytes = model_bytes

    # ------------------------------------------------------------- worker
    def _finish(self, status: str, *, error: str | None = None) -> None:
        phase = {"done": "done", "stopped": "stopped", "failed": "failed"}[status]
        self.update(status=status, error=error, phase=phase, eta=0.0 if status == "done" else None)
        self.mark(None)

    def _run(self) -> None:
        from explorer.training.process import WorkerFailed  # (process.py builds on this module)

        try:
            if not self._wait_for_slot():
                self._finish("stopped")
                return
            try:
                self.update(status="stopping" if self._stop.is_set() else "running", phase="preparing the data")
                self._check_memory()
                self.mark("worker" if self.worker in ("process", "ray") else "data")
                if self.worker == "process":
                    from explorer.training.process import train_in_process

                    train_in_process(self)
                elif self.worker == "ray":
                    from explorer.training.ray_backend import train_on_ray

                    train_on_ray(self)
                else:
                    from explorer.training.loop import train

                    train(self)
            finally:
                self._slots.release()
            self._finish("stopped" if self._stop.is_set() else "done")
        except (DataError, ConfigError, WorkerFailed) as exc:
            self._finish("failed", error=str(exc))
        except Exception as exc:  # shown to the user in one line; the traceback is kept for logs
            self.update(traceback=traceback.format_exc())
            self._finish("failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            # after the result is out: handing pages back can take seconds on a machine that reclaims memory
            if self.release_memory:
                release_freed_memory()

    def _check_memory(self) -> None:
        """Estimate the training's memory and (with `check_memory`) refuse it, with a ConfigError, when it would not
        fit in the memory free now (checked once a slot is held)."""
        from explorer.annotate import build

        remote = self.worker == "ray" and bool(os.environ.get("EXPLORER_RAY_ADDRESS", "").strip())
        self.update(memory_estimate=memory_estimate(build(self.config), self.settings, DataSizes.of(self.data),
                                                    worker=self.worker, check=self.check_memory and not remote))

    def _wait_for_slot(self) -> bool:
        """Wait for a training slot, first come first served (`queue_ahead` counts those before this job)."""
        slots = self._slots
        if isinstance(slots, FairSlots):
            ticket = slots.enqueue()
            while not slots.wait(ticket, timeout=0.1):
                self.update(queue_ahead=slots.ahead(ticket))
                if self.should_stop():
                    slots.cancel(ticket)
                    return False
            self.update(queue_ahead=0)
        else:
            while not slots.acquire(timeout=0.1):
                if self.should_stop():
                    return False
        if self.should_stop():
            self._slots.release()
            return False
        return True


for _field in fields(JobState):  # every state field is an attribute of the job too
    setattr(TrainJob, _field.name, _InState(_field.name))
del _field


def _weights_result(report: Any) -> dict:
    """The result's `weights_*` keys: where the ImageNet weights came from and what was copied (None without)."""
    return {
        "weights_source": None if report is None else report.source,
        "weights_layers_copied": None if report is None else report.layers,
        "weights_params_copied": None if report is None else report.params,
        "weights_skipped": None if report is None else list(report.skipped),
    }


def start_job(previous: TrainJob | None, config: ResNetConfig, data: Any, settings: TrainSettings | None = None,
              **kwargs: Any) -> TrainJob:
    """Start a job unless the session's previous one is still active (one job per session).

    Raises:
        JobBusy: `previous` is still waiting or running.
    """
    if previous is not None and previous.active:
        raise JobBusy("a training is already running in this session: stop it (or wait for it) first")
    return TrainJob(config, data, settings, **kwargs).start()
