"""A training in a process of its own: spawn it, relay its reports into the server's job, stop it, reap it, say how it died.

The server's `TrainJob` (worker "process") runs `train_in_process` in its thread: the training itself runs in a
spawned process at a lower CPU priority, so the server stays responsive while trainings use the cores, and
everything a training allocated (Keras' traced graphs included) goes back to the system when the process ends.
The process sends its `JobState` every SYNC_INTERVAL and everything, the model included, at the end.

A process can be started ahead of its job (`WARM`, one per training slot, asked for by the app's Train tab):
it imports TensorFlow and reads the server's CIFAR-10 from the same place while nobody waits, then takes one
job and ends like any other, so that its memory still goes back to the system; the next one starts then.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
import time
import traceback
from typing import Any

from explorer import guards
from explorer.training.job import TrainJob
from explorer.training.state import JobState

SYNC_INTERVAL = 0.25  # seconds between two state reports from a training process
STOP_GRACE = 10.0  # seconds a training process has to end after a stop before it is killed


class WorkerFailed(RuntimeError):
    """A training process failed (the message is the one-line error to show) or ended unexpectedly."""


def job_spec(job: TrainJob, data: Any) -> tuple:
    """What a worker needs to run `job` (`data`: the data, or None for the data a warm worker has read itself)."""
    st = job.state
    clock = (st.pressed, dict(st.timings), st.part, st.part_since)
    return (job.config, data, job.settings, job.name, job.max_seconds, guards.train_nice(), clock)


def train_in_process(job: TrainJob) -> None:
    """Run `job`'s training in a spawned process (a warm one when `WARM` has one for its data) and mirror its state
    into `job` until it ends.

    Raises:
        WorkerFailed: The training failed there (its one-line message), or the process died.
    """
    warm = WARM.take(job.data)
    if warm is not None:
        process, updates, stop = warm.process, warm.updates, warm.stop
        warm.jobs.put(job_spec(job, None))
        job.update(phase="starting the training", warm_worker=True)
    else:
        ctx = multiprocessing.get_context("spawn")
        updates = ctx.Queue()
        stop = ctx.Event()
        process = ctx.Process(target=_process_main, args=(job_spec(job, job.data), updates, stop),
                              name=f"train-{job.name}", daemon=True)
        job.update(phase="starting a training process")
        with guards.blank_main():  # under Streamlit `__main__` is the app page: the child must not run it first
            process.start()
    job.update(worker_pid=process.pid)
    ended: JobState | None = None
    stop_asked = None
    try:
        while ended is None:
            if job.should_stop():
                stop.set()
                stop_asked = stop_asked or time.monotonic()
                if time.monotonic() - stop_asked > STOP_GRACE and process.is_alive():
                    process.kill()  # (it did not end by itself: stop it anyway, with what it has reported)
                    return
            job.update(worker_peak_rss=_peak_rss(process.pid) or job.worker_peak_rss)
            alive = process.is_alive()
            try:  # (once it has ended, a last second for what it sent just before)
                kind, report, model_bytes = updates.get(timeout=SYNC_INTERVAL if alive else 1.0)
            except queue.Empty:
                if not alive:
                    raise WorkerFailed(_died(process.exitcode)) from None
                continue
            job.take_report(report, model_bytes=model_bytes)
            if kind == "end":
                ended = report
    finally:
        stop.set()
        updates.close()
        # (it exits within seconds of its last report; the job ends now, and a thread reaps the process)
        threading.Thread(target=_reap, args=(process,), name=f"reap-{job.name}", daemon=True).start()
        if warm is not None:
            WARM.refill()  # (the next job's worker warms up now)
    if ended.status == "failed":
        raise WorkerFailed(ended.error or "the training failed")


def _reap(process: Any, grace: float = 30.0) -> None:
    """Wait for a training process to exit after its last report; kill it if it does not within `grace` seconds."""
    process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(5)


def _peak_rss(pid: int) -> int | None:
    """The peak resident memory of a live process in bytes (Linux' VmHWM; None elsewhere or once it has ended)."""
    try:
        return guards.proc_bytes(f"/proc/{pid}/status", "VmHWM")
    except (OSError, ValueError):
        return None


def _died(exitcode: int | None) -> str:
    name = guards.signal_name(exitcode)
    if name is not None:
        killed = " (the system ran out of memory?)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{killed}; try a smaller batch size or network, or retry later"
    return f"the training process ended unexpectedly (exit code {exitcode}); see the server log"


# --------------------------------------------------------------------------- inside the training process
class _ProcessJob(TrainJob):
    """The job inside a training process: stops when the server's job asks (or the server is gone), and keeps the
    server's clock (`clock`: the press, the parts so far, the part running and since when)."""

    def __init__(self, *args: Any, remote_stop: Any, clock: tuple | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remote_stop = remote_stop
        self._parent = os.getppid()
        if clock is not None:
            st = self.state
            st.pressed, st.timings, st.part, st.part_since = clock[0], dict(clock[1]), clock[2], clock[3]

    def mark(self, part: str | None) -> None:
        # the end of the job here is the start of the hand-back: the server closes it when it has everything
        super().mark("hand-back" if part is None else part)

    def should_stop(self) -> bool:
        if not self._stop.is_set() and (self._remote_stop.is_set() or os.getppid() != self._parent):
            self._stop.set()  # (asked by the server, or the server is gone)
        return super().should_stop()


def _process_main(spec: tuple | None, updates: Any, stop: Any, jobs: Any = None, preload: Any = None) -> None:
    """A training process: train like a thread job, sending the state every SYNC_INTERVAL and everything at the end.

    Without a `spec` it is a warm worker: it imports TensorFlow and reads `preload` (a CIFAR-10 directory, or None)
    first, then waits for its spec on `jobs` (data None there: the data it has read).
    """
    from explorer.backend import quiet_start

    watching = _watch_server() if spec is None else None
    quiet_start()  # TensorFlow's start-up log stays out of the server's console (EXPLORER_TF_VERBOSE=1 shows it)
    preloaded = None
    if spec is None:
        spec, preloaded = _warm_up(jobs, preload)
        watching.set()  # (from here on the job stops itself when the server is gone, `_ProcessJob.should_stop`)
    config, data, settings, name, max_seconds, nice, clock = spec
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    data = preloaded if data is None else data
    job = _ProcessJob(config, data, settings, idle_timeout=None, slots=threading.BoundedSemaphore(1), name=name,
                      max_seconds=max_seconds, check_memory=False, release_memory=False, remote_stop=stop, clock=clock)
    sent = 0
    done = threading.Event()

    def report() -> JobState:
        """The state with the per-batch records not sent yet."""
        nonlocal sent
        with job._lock:
            state = job.state.copy(batches_from=sent)
            sent = len(job.state.batches)
        return state

    def send() -> None:
        while not done.wait(SYNC_INTERVAL):
            updates.put(("state", report(), None))

    sender = threading.Thread(target=send, name="report", daemon=True)
    sender.start()
    if preloaded is None:
        job.update(phase="starting TensorFlow")
        import explorer.training.loop  # noqa: F401 - TensorFlow and Keras (a warm worker has them already)
    job._run()
    done.set()
    sender.join()
    state, model_bytes = report(), None
    if job._model is not None and job.status in ("done", "stopped"):
        try:
            model_bytes = job.model_bytes()
        except Exception as exc:  # the run still counts; only the download is missing
            state.traceback = traceback.format_exc()
            state.stop_reason = state.stop_reason or f"the model could not be saved: {exc}"
    updates.put(("end", state, model_bytes))
    updates.close()
    updates.join_thread()


# The one worker body: a spawned process runs it here, a Ray actor in `explorer.training.ray_backend`.
worker_main = _process_main


# --------------------------------------------------------------------------- warm workers
WARM_ENV = "EXPLORER_WARM_WORKERS"
WARM_STEP_ENV = "EXPLORER_WARM_STEPS"  # 0: a warm worker does not train a throw-away network first (for measuring)


def _watch_server() -> threading.Event:
    """End this process as soon as the server is gone, until the returned event is set: a warm worker watches from its
    first line to its job (a server stopped right after a job would otherwise leave its new warm worker importing
    TensorFlow and training a throw-away network beside whatever runs next)."""
    parent, taken = os.getppid(), threading.Event()

    def watch() -> None:
        while not taken.wait(0.5):
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="watch-server", daemon=True).start()
    return taken


def _warm_up(jobs: Any, preload: Any) -> tuple[tuple, Any]:
    """In a warm worker: import TensorFlow, read the data, then wait for the spec."""
    import explorer.training.loop  # noqa: F401 - TensorFlow and Keras
    from explorer.data import images_tensor, load_cifar10

    data = None if preload is None else load_cifar10(preload, use_env=False, use_keras_cache=False, allow_download=False)
    if data is not None:
        images_tensor(data.x_train, keep=True)
    if os.environ.get(WARM_STEP_ENV, "1") != "0":
        explorer.training.loop.warm_up(None if data is None else data.x_train)
    return jobs.get(), data  # (the server gone, `_watch_server` ends this process)


def data_key(data: Any) -> str | None:
    """The directory a warm worker can read the same data from: a CIFAR-10 read from disk (else None)."""
    from explorer.data import Cifar10

    path = getattr(data, "path", None)
    if not isinstance(data, Cifar10) or path is None or data.kind not in ("binary", "python"):
        return None
    return str(path)


class _Warm:
    """A training process started ahead of its job, and its queues."""

    def __init__(self, key: str | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.jobs, self.updates, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.process = ctx.Process(target=_process_main, args=(None, self.updates, self.stop, self.jobs, key),
                                   name="train-warm", daemon=True)
        with guards.blank_main():
            self.process.start()


class WarmPool:
    """Training processes started ahead of their jobs, one per training slot (`EXPLORER_WARM_WORKERS`, default
    the number of slots; 0 = none), each for the data it has read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[_Warm] = []
        self._key: str | None = None
        self._data: Any = None
        self._wanted = False

    @staticmethod
    def size() -> int:
        from explorer.training.job import SLOTS

        raw = os.environ.get(WARM_ENV, "").strip()
        try:
            return max(0, int(raw)) if raw else SLOTS.slots
        except ValueError:
            return SLOTS.slots

    def prepare(self, data: Any) -> None:
        """Have warm workers for `data` ready (started now if there are none): the app calls it when the Train tab
        shows CIFAR-10 from disk."""
        key = data_key(data)
        if key is None:
            return
        with self._lock:
            self._wanted = True
            self._data = data  # (only this very object is what the workers read: not a subset made from it)
            if key != self._key:
                self._drop_locked()
                self._key = key
        self.refill()

    def refill(self) -> None:
        """Start warm workers until the pool is full again (after a job took one)."""
        with self._lock:
            if not self._wanted:
                return
            self._ready = [w for w in self._ready if w.process.is_alive()]
            while len(self._ready) < self.size():
                self._ready.append(_Warm(self._key))

    def take(self, data: Any) -> _Warm | None:
        """A warm worker that has read `data` (None when there is none: the job starts a process of its own)."""
        with self._lock:
            # only the very object prepared (a lesson's subset of the same folder goes to a process of its own);
            # every worker ready has read it
            if data is None or data is not self._data:
                return None
            for warm in self._ready:
                if warm.process.is_alive():
                    self._ready.remove(warm)
                    return warm
        return None

    def close(self) -> None:
        """End the warm workers (they would end with the server anyway)."""
        with self._lock:
            self._wanted, self._data, self._key = False, None, None
            self._drop_locked()

    def _drop_locked(self) -> None:
        for warm in self._ready:
            if warm.process.is_alive():
                warm.process.kill()
            warm.process.join(5)
        self._ready = []

    @property
    def ready(self) -> list[int]:
        """The process ids of the warm workers ready now."""
        with self._lock:
            return [w.process.pid for w in self._ready if w.process.is_alive()]


WARM = WarmPool()
