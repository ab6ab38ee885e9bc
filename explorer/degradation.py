"""The degradation lesson (He et al. 2015, Figure 1): plain-20, plain-56, ResNet-20 and ResNet-56 trained for the same
number of steps on one small training subset, their training error against steps, and what this run showed.

Every network gets the same budget in *steps* (not seconds: a 56-layer net takes ~3× longer per step, so a time
budget would punish depth). They train on a small class-balanced subset for several epochs, so the difference that
shows is in how well each network can *fit* it — the paper's point: a deeper plain network reaches a higher
training error (it is harder to optimise, not overfitting), a deeper residual one does not. The final training error
of each is measured once, on the whole training subset in inference mode (the trainer's final evaluation is pointed at
the training subset; the test set is not evaluated, to keep the lesson within a few minutes).

On Ray the four run at once (the cluster queues what does not fit). On the server's own processes they start at once
too, each within the server's training slots (`EXPLORER_MAX_TRAININGS`; with one slot they run in turn): four
processes share the same cores, and the four curves grow together (docs/training.md, "The degradation lesson").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from explorer import guards
from explorer.config import ResNetConfig
from explorer.presets import PRESETS
from explorer.training import TrainJob, TrainSettings

# Chosen by measurement on real CIFAR-10, on a 2-core CPU (docs/training.md, "The degradation lesson").
DEFAULT_WIDTHS = (8, 16, 32)  # half the paper's 16/32/64: ~4× fewer MACs, the same depths
DEFAULT_SUBSET = 1_000  # training images (class-balanced), fitted for many epochs
DEFAULT_BATCH = 64
DEFAULT_STEPS = 300
TAIL = 0.1  # the fraction of last steps whose mean training error is shown beside the final evaluation


def lesson_networks(widths: tuple[int, ...] | None = DEFAULT_WIDTHS) -> tuple[tuple[str, ResNetConfig], ...]:
    """The four networks: the paper's CIFAR ResNet-20/56 (v1, shortcut A) and their plain twins, at `widths`
    (None = the paper's 16/32/64)."""
    nets = []
    for kind, shortcut in (("plain", "none"), ("resnet", None)):
        for depth in (20, 56):
            config = PRESETS[f"resnet{depth}"].config
            if widths is not None:
                config = config.replace(filters=widths[0], widths=tuple(widths))  # the stem as wide as stage 1
            if shortcut is not None:
                config = config.replace(shortcut=shortcut)
            nets.append((f"{kind}-{depth}", config))
    return tuple(nets)


NETWORKS: tuple[tuple[str, ResNetConfig], ...] = lesson_networks()


def lesson_settings(*, steps: int = DEFAULT_STEPS, batch_size: int = DEFAULT_BATCH, seed: int = 0) -> TrainSettings:
    """One budget in steps for every network; no validation split (every image of the subset trains) and one
    plain evaluation (no test-time augmentation) at the end, on the training subset. Plain SGD, as in the paper:
    with the short recipe's Muon steps all but plain-56 fit the subset (300 steps: plain-20 15.6 %, plain-56 72.8 %,
    ResNet-20 0.0 %, ResNet-56 0.2 % training error), and the residual pair meets at the floor."""
    return TrainSettings(steps=steps, batch_size=batch_size, val_split=0.0, tta=False, muon=False, evaluate=True,
                         seed=seed)


def training_subset(data: Any, subset: int | None, *, seed: int = 0) -> Any:
    """A copy of CIFAR-10 whose training images are a class-balanced subset and whose evaluation images are that same
    subset, so the trainer's final evaluation measures the training error in inference mode.

    Args:
        data: `explorer.data.Cifar10` in memory.
        subset: Training images (None = all 50,000: the evaluation then takes as long as a test pass ×5).
        seed: Which images.
    """
    from dataclasses import replace

    import numpy as np

    from explorer.data import split_indices

    idx, _ = split_indices(data.y_train, subset=subset, val_split=0.0, seed=seed, num_classes=data.num_classes)
    idx = np.sort(idx)
    x, y = data.x_train[idx], data.y_train[idx]
    x.setflags(write=False)
    y.setflags(write=False)
    return replace(data, x_train=x, y_train=y, x_test=x, y_test=y,
                   source=f"{data.source} — {len(y):,} training images, also evaluated on")


# --------------------------------------------------------------------------- what a run showed
@dataclass(frozen=True)
class NetResult:
    """One network's end of the lesson.

    Attributes:
        name: "plain-20", …
        depth: Its depth.
        plain: Whether it has no skip connections.
        train_error: The final training error (0..1): the evaluation on the training subset in inference mode when
            there is one, else the mean over the last `TAIL` of the steps (`measured` says which).
        measured: "evaluation" or "last steps".
        tail_error: Mean training error (training mode, augmented batches) over the last `TAIL` of its steps.
        steps: Steps trained.
        images_per_second: Steady training throughput.
        status: The job's status.
    """

    name: str
    depth: int
    plain: bool
    train_error: float | None
    measured: str
    tail_error: float | None
    steps: int
    images_per_second: float | None
    status: str


def tail_error(batches: Sequence[Mapping[str, Any]], fraction: float = TAIL) -> float | None:
    """Mean training error over the last `fraction` of the steps, weighted by the steps each record covers."""
    records = [b for b in batches if b.get("accuracy") is not None and b.get("step") is not None]
    if not records:
        return None
    last = records[-1]["step"]
    start = last - max(1, round(last * fraction))
    total = weight = 0.0
    previous = 0
    for b in records:
        covered = b["step"] - max(previous, start)
        previous = b["step"]
        if covered > 0:
            total += (1.0 - b["accuracy"]) * covered
            weight += covered
    return total / weight if weight else 1.0 - last["accuracy"]


def result_of(name: str, config: ResNetConfig, snap: Any, *, images_per_second: float | None = None) -> NetResult:
    """A `NetResult` from a job's snapshot (`TrainJob.poll()`) and its steady throughput (default: the last one)."""
    tail = tail_error(snap.batches)
    ev = snap.evaluation
    evaluated = ev is not None and ev.test_accuracy is not None
    return NetResult(name=name, depth=config.resolved_depth, plain=config.shortcut == "none",
                     train_error=1.0 - ev.test_accuracy if evaluated else tail,
                     measured="evaluation" if evaluated else "last steps", tail_error=tail,
                     steps=snap.steps, images_per_second=images_per_second or snap.images_per_second,
                     status=snap.status)


def _pair(results: Sequence[NetResult], plain: bool) -> tuple[NetResult, NetResult] | None:
    nets = sorted((r for r in results if r.plain == plain and r.train_error is not None), key=lambda r: r.depth)
    if len(nets) < 2 or nets[0].depth == nets[-1].depth:
        return None
    return nets[0], nets[-1]


def verdict(results: Sequence[NetResult]) -> list[str]:
    """What this run showed, in words (markdown): one sentence for the plain pair, one for the residual pair, and,
    when the run does not show the paper's result, why that can happen. Empty while no pair has finished."""
    lines = []
    plain = _pair(results, plain=True)
    if plain is not None:
        shallow, deep = plain
        if deep.train_error > shallow.train_error:
            lines.append(f"**{deep.name}** ended at **{deep.train_error:.1%}** training error, above "
                         f"{shallow.name}'s {shallow.train_error:.1%}: the deeper plain network trains *worse* — "
                         "**degradation**, as in the paper.")
        else:
            lines.append(f"**{deep.name}** ended at **{deep.train_error:.1%}** training error, not above "
                         f"{shallow.name}'s {shallow.train_error:.1%}: this run did **not** show degradation. A short "
                         "run can miss it — with few steps every network is still far from what it can fit, and "
                         "one seed or a different learning rate moves errors by a few points; more steps make the "
                         "gap clearer.")
    residual = _pair(results, plain=False)
    if residual is not None:
        shallow, deep = residual
        if deep.train_error <= shallow.train_error:
            lines.append(f"**{deep.name}** ended at **{deep.train_error:.1%}**, at or below {shallow.name}'s "
                         f"{shallow.train_error:.1%}: with skip connections the deeper network trains *at least as "
                         "well* — no degradation.")
        else:
            lines.append(f"**{deep.name}** ended at **{deep.train_error:.1%}**, above {shallow.name}'s "
                         f"{shallow.train_error:.1%}: in this run the deeper residual network trained worse too. "
                         "In a short budget a deeper net can still be catching up (the paper's curves cross later); "
                         "more steps usually bring ResNet-56 below ResNet-20.")
    if plain is not None and residual is not None:
        deep_plain, deep_res = plain[1], residual[1]
        if deep_res.train_error < deep_plain.train_error:
            lines.append(f"At depth {deep_res.depth} the skip connections are worth "
                         f"{deep_plain.train_error - deep_res.train_error:.1%} of training error "
                         f"({deep_plain.name} {deep_plain.train_error:.1%} vs {deep_res.name} "
                         f"{deep_res.train_error:.1%}).")
    return lines


# --------------------------------------------------------------------------- the lesson
class DegradationLesson:
    """Runs the four trainings from one worker thread (never touches Streamlit): at once, or in turn.

    Args:
        data: CIFAR-10 in memory (the full set; the lesson takes its subset).
        steps: Training steps of each network (the same for all).
        subset: Training images (class-balanced; None = all), the same for every network.
        batch_size: Images per step.
        idle_timeout: Stop when nobody has polled for this long (the tab was closed); None = never.
        networks: (name, config) pairs to train, in order (default: NETWORKS).
        max_seconds: The server's limit on one training (`explorer.guards.max_train_seconds`; None = none). The
            lesson is one job of its session: all its trainings together end at it (each is told the time left).
        slots: The semaphore its trainings wait on (default: the server's, shared with every other training).
        worker: Where the trainings run (`explorer.guards.train_worker()` by default).
        parallel: Start the four at once (each still waits for a training slot) or one after another; default: at
            once (on Ray the cluster queues them; on the server's processes see the module docstring).
        seed: Which subset, and the shuffling.
    """

    def __init__(self, data: Any, *, steps: int = DEFAULT_STEPS, subset: int | None = DEFAULT_SUBSET,
                 batch_size: int = DEFAULT_BATCH, idle_timeout: float | None = 60.0,
                 networks: tuple[tuple[str, ResNetConfig], ...] | None = None,
                 max_seconds: float | None = None, slots: Any = None, worker: str | None = None,
                 parallel: bool | None = None, seed: int = 0) -> None:
        self.settings = lesson_settings(steps=steps, batch_size=batch_size, seed=seed)
        self.data = training_subset(data, subset, seed=seed)
        self.networks = NETWORKS if networks is None else networks
        self.max_seconds = max_seconds
        self.slots = slots
        self.worker = worker or guards.train_worker()
        self.parallel = True if parallel is None else parallel
        self.idle_timeout = idle_timeout
        self.jobs: list[TrainJob] = []
        self._configs = dict(self.networks)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll = time.monotonic()
        self.started: float | None = None
        self.ended: float | None = None
        self.stop_reason: str | None = None

    @property
    def steps(self) -> int:
        """Steps of each network."""
        return self.settings.steps

    @property
    def train_images(self) -> int:
        """Images in the training subset."""
        return self.data.n_train

    def start(self) -> DegradationLesson:
        """Start the worker; returns self."""
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="degradation-lesson", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
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
        finally:
            self.ended = time.monotonic()

    def _time_left(self) -> float | None:
        if self.max_seconds is None or self.started is None:
            return None
        return self.max_seconds - (time.monotonic() - self.started)

    def _start(self, name: str, config: ResNetConfig) -> None:
        left = self._time_left()
        job = TrainJob(config, self.data, self.settings, idle_timeout=None, name=name, slots=self.slots,
                       max_seconds=None if left is None else max(left, 1.0), worker=self.worker).start()
        with self._lock:
            self.jobs.append(job)

    def _watch(self) -> None:
        """Wait for the started jobs, stopping them when asked, when nobody watches, or at the server's limit."""
        with self._lock:
            jobs = list(self.jobs)
        while not all(job.join(0.25 / len(jobs)) for job in jobs):
            if self._idle():
                self.stop(f"stopped by itself: nobody watched it for {self.idle_timeout:g} s")
            left = self._time_left()
            if left is not None and left <= 0:
                self.stop(f"stopped at this server's limit of {self.max_seconds:g} s for one training "
                          f"(the teacher sets it with {guards.MAX_TRAIN_SECONDS_ENV})")
            if self._stop.is_set():
                for job in jobs:
                    job.stop(self.stop_reason or "stopped by the user")

    def _idle(self) -> bool:
        return self.idle_timeout is not None and time.monotonic() - self.last_poll > self.idle_timeout

    def stop(self, reason: str = "stopped by the user") -> None:
        """Stop the running trainings and skip the rest."""
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

    @property
    def wall_seconds(self) -> float | None:
        """Seconds from start to the end of the last training (so far, while running)."""
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started

    def poll(self) -> list[tuple[str, Any]]:
        """(name, snapshot or None when not started yet) for every network; marks the lesson as watched."""
        self.last_poll = time.monotonic()
        with self._lock:
            jobs = {job.name: job for job in self.jobs}
        return [(name, jobs[name].poll() if name in jobs else None) for name, _ in self.networks]

    def results(self, rows: list[tuple[str, Any]] | None = None) -> list[NetResult]:
        """The networks that have ended (done or stopped), as `NetResult`s, in order."""
        rows = self.poll() if rows is None else rows
        with self._lock:
            speed = {job.name: job.steady_images_per_second for job in self.jobs}
        return [result_of(name, self._configs[name], snap, images_per_second=speed.get(name)) for name, snap in rows
                if snap is not None and not snap.active and snap.batches]

    def finished_jobs(self) -> list[TrainJob]:
        """Jobs that have ended (done or stopped), in order."""
        with self._lock:
            return [job for job in self.jobs if not job.active]
