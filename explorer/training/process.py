"""A training in a process of its own: spawn it, relay its reports into the server's job, stop it, reap it, say how it died.

The server's `TrainJob` (worker "process") runs `train_in_process` in its thread: the training itself runs in a
spawned process at a lower CPU priority, so the server stays responsive while trainings use the cores, and
everything a training allocated (Keras' traced graphs included) goes back to the system when the process ends.
The process sends its `JobState` every SYNC_INTERVAL and everything, the model included, at the end.
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


def train_in_process(job: TrainJob) -> None:
    """Run `job`'s training in a spawned process and mirror its state into `job` until it ends.

    Raises:
        WorkerFailed: The training failed there (its one-line message), or the process died.
    """
    ctx = multiprocessing.get_context("spawn")
    updates = ctx.Queue()
    stop = ctx.Event()
    spec = (job.config, job.data, job.settings, job.name, job.max_seconds, guards.train_nice())
    process = ctx.Process(target=_process_main, args=(spec, updates, stop), name=f"train-{job.name}", daemon=True)
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
    """The job inside a training process: stops when the server's job asks (or the server is gone)."""

    def __init__(self, *args: Any, remote_stop: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remote_stop = remote_stop
        self._parent = os.getppid()

    def should_stop(self) -> bool:
        if not self._stop.is_set() and (self._remote_stop.is_set() or os.getppid() != self._parent):
            self._stop.set()  # (asked by the server, or the server is gone)
        return super().should_stop()


def _process_main(spec: tuple, updates: Any, stop: Any) -> None:
    """A training process: train like a thread job, sending the state every SYNC_INTERVAL and everything at the end."""
    config, data, settings, name, max_seconds, nice = spec
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    from explorer.backend import quiet_start

    quiet_start()  # TensorFlow's start-up log stays out of the server's console (EXPLORER_TF_VERBOSE=1 shows it)
    job = _ProcessJob(config, data, settings, idle_timeout=None, slots=threading.BoundedSemaphore(1), name=name,
                      max_seconds=max_seconds, check_memory=False, remote_stop=stop)
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
