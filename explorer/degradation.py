"""The degradation lesson: train plain-20, plain-56, ResNet-20 and ResNet-56 briefly, for overlay.

One after another on the server's own processes (they share its cores, so at once would not be quicker and
would hold several of its training slots); all at once on a Ray cluster, which queues what does not fit.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from explorer import guards
from explorer.config import ConfigError, ResNetConfig
from explorer.presets import PRESETS
from explorer.training import TrainJob, TrainSettings

NETWORKS: tuple[tuple[str, ResNetConfig], ...] = (
    ("plain-20", PRESETS["resnet20"].config.replace(shortcut="none")),
    ("plain-56", PRESETS["resnet56"].config.replace(shortcut="none")),
    ("resnet-20", PRESETS["resnet20"].config),
    ("resnet-56", PRESETS["resnet56"].config),
)


class DegradationLesson:
    """Runs the four trainings in one worker thread (never touches Streamlit): in turn, or at once on Ray.

    Args:
        data: CIFAR-10 in memory.
        seconds: Training budget of each network.
        subset: Training images per network (None = all).
        idle_timeout: Stop when nobody has polled for this long (the tab was closed); None = never.
        networks: (name, config) pairs to train, in order (default: NETWORKS).
        max_seconds: The server's limit on one training (`explorer.guards.max_train_seconds`; None = none). The
            lesson is one job of its session, so all its trainings together must fit in it.
        slots: The semaphore its trainings wait on (default: the server's, shared with every other training).
        worker: Where the trainings run (`explorer.guards.train_worker()` by default); "ray" runs them at once.

    Raises:
        ConfigError: (field "seconds") the networks' budgets add up to more than `max_seconds`.
    """

    def __init__(self, data: Any, *, seconds: float = 30.0, subset: int | None = 10_000,
                 idle_timeout: float | None = 60.0,
                 networks: tuple[tuple[str, ResNetConfig], ...] | None = None,
                 max_seconds: float | None = None, slots: Any = None, worker: str | None = None) -> None:
        self.data = data
        self.settings = TrainSettings(seconds=seconds, subset=subset)
        self.networks = NETWORKS if networks is None else networks
        total = seconds * len(self.networks)
        if max_seconds is not None and total > max_seconds:
            most = int(max_seconds // len(self.networks))
            raise ConfigError("seconds", f"the lesson trains {len(self.networks)} networks for {seconds:g} s each "
                              f"({total:g} s), but a training may run at most {max_seconds:g} s on this server",
                              f"give {most} s or less per network (the teacher sets the limit with "
                              f"{guards.MAX_TRAIN_SECONDS_ENV})")
        self.max_seconds = max_seconds
        self.slots = slots
        self.worker = worker or guards.train_worker()
        self.parallel = self.worker == "ray"
        self.idle_timeout = idle_timeout
        self.jobs: list[TrainJob] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll = time.monotonic()
        self.stop_reason: str | None = None

    def start(self) -> DegradationLesson:
        """Start the worker; returns self."""
        self._thread = threading.Thread(target=self._run, name="degradation-lesson", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        if self.parallel:
            for name, config in self.networks:
                self._start(name, config)
            self._watch()
            return
        for name, config in self.networks:
            if self._stop.is_set():
                break
            self._start(name, config)
            self._watch()

    def _start(self, name: str, config: ResNetConfig) -> None:
        job = TrainJob(config, self.data, self.settings, idle_timeout=None, name=name, slots=self.slots,
                       max_seconds=self.max_seconds, worker=self.worker).start()
        with self._lock:
            self.jobs.append(job)

    def _watch(self) -> None:
        """Wait for the started jobs, stopping them when asked or when nobody watches."""
        with self._lock:
            jobs = list(self.jobs)
        while not all(job.join(0.25 / len(jobs)) for job in jobs):
            if self._idle():
                self.stop(f"stopped by itself: nobody watched it for {self.idle_timeout:g} s")
            if self._stop.is_set():
                for job in jobs:
                    job.stop(self.stop_reason or "stopped by the user")

    def _idle(self) -> bool:
        return self.idle_timeout is not None and time.monotonic() - self.last_poll > self.idle_timeout

    def stop(self, reason: str = "stopped by the user") -> None:
        """Stop the running training and skip the rest."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()
        with self._lock:
            running = [job for job in self.jobs if job.active]
        for job in running:
            job.stop(reason)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def active(self) -> bool:
        """Whether trainings are still going on (or about to)."""
        return self._thread is not None and self._thread.is_alive()

    def poll(self) -> list[tuple[str, Any]]:
        """(name, snapshot or None when not started yet) for every network; marks the lesson as watched."""
        self.last_poll = time.monotonic()
        with self._lock:
            jobs = {job.name: job for job in self.jobs}
        return [(name, jobs[name].poll() if name in jobs else None) for name, _ in self.networks]

    def finished_jobs(self) -> list[TrainJob]:
        """Jobs that have ended (done or stopped), in order."""
        with self._lock:
            return [job for job in self.jobs if not job.active]
