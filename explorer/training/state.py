"""The changing state of one training, in one record: what a worker reports, what a job holds, what a poll reads."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from explorer.training.evaluation import Evaluation
    from explorer.whiten import Whitening

STATUSES = ("waiting", "running", "stopping", "done", "stopped", "failed")
# The parts of a training's wall time, from the press to the result (`JobState.timings`), with their words.
PARTS: dict[str, str] = {
    "starting": "starting", "waiting": "waiting for a slot", "worker": "starting the worker",
    "data": "preparing the data", "model": "building the model", "first batch": "compiling (first batch)",
    "training": "training", "validating": "validating", "bn": "BatchNorm statistics",
    "evaluating": "test set", "hand-back": "handing back the model",
}
ACTIVE = ("waiting", "running", "stopping")

# How a field of a training process's report is taken into the server's job (`JobState.take`): "take" its value,
# "append" its new records, "keep" the job's own (the server decides it), or take it only when "given" (not None).
TAKE, APPEND, KEEP, GIVEN = ({"report": kind} for kind in ("take", "append", "keep", "given"))


def timings_text(timings: dict[str, float], *, views: int | None = None, running: str | None = None) -> str:
    """The parts of a training's wall time in words, e.g. "starting the worker 0.3 s · … · test set (1 view) 4.9 s";
    `running`: the part under way, shown last with "…"."""
    words = []
    for part, seconds in timings.items():
        if part == running or (seconds < 0.05 and part in ("starting", "waiting")):
            continue
        label = PARTS.get(part, part)
        if part == "evaluating" and views:
            label += f" ({views} view{'s' if views != 1 else ''})"
        words.append(f"{label} {seconds:.1f} s")
    if running is not None:
        words.append(f"{PARTS.get(running, running)} …")
    return " · ".join(words)


@dataclass(kw_only=True, slots=True)
class JobState:
    """Everything about a training that changes while it runs: what a worker reports and what a poll reads.

    Attributes:
        status: One of STATUSES.
        phase: What the worker is doing ("waiting for a slot", "building the model", "training", ...).
        progress: Fraction of the budget done (0..1).
        elapsed: Seconds of training so far.
        eta: Seconds left (None before the first batches).
        images_per_second: Recent training throughput.
        epoch: Epochs done (fractional).
        steps: Batches done.
        images_seen: Training images seen (steps × batch size).
        train_seconds: Wall time of the training batches and validations (set at the end).
        steady_images_per_second: Throughput of the batches after the first (tracing) one (set at the end).
        finalize_seconds: Time the BN statistics took to recompute.
        n_train: Training images (after the subset and the validation split).
        n_val: Validation images.
        monitor: "val_loss" or "loss": what the best epoch, early stopping and LR on plateau watch.
        best_epoch: The epoch with the lowest monitored loss so far (1-based).
        restored_best: The model holds the best epoch's weights (restored before evaluating).
        precision: The dtype policy in use.
        device: "CPU", "GPU" or "N GPUs".
        capped: The training ended at the server's `max_seconds`.
        whitening: What the short recipe's stem whitening did (`explorer.whiten.Whitening`).
        weights_report: `explorer.pretrained.LoadReport` once ImageNet weights are loaded.
        memory_estimate: The training's estimated memory in bytes.
        batches: Per-batch records (step, epoch, images, seconds, loss, accuracy, lr, images_per_second).
        epochs: Per-epoch records (epoch, seconds, loss, accuracy, val_loss, val_accuracy, lr — the LR the
            epoch trained with —, best — the lowest monitored loss so far —, lr_reduced_to — set when a
            plateau lowered the LR after it).
        evaluation: Test-set results once done.
        stop_reason: Why it stopped (or ended before its budget).
        traceback: The traceback of an unexpected failure (for logs).
        error: The one-line error message when failed.
        queue_ahead: While waiting for a slot, how many trainings asked before this one and wait too.
        worker_pid: The training process, with worker="process".
        worker_peak_rss: Its peak resident memory in bytes (as last seen while it ran).
        pressed: When Train was pressed (`time.time()`, one clock for the server and its workers): the budget in
            seconds counts from here to the result.
        timings: Seconds of wall time per part since the press (`PARTS`), in the order they came.
        part: The part running now (None once ended); `part_since`: since when.
        reserved: Seconds the training left at its end for what follows it (BN statistics, evaluation, hand-back),
            as estimated from its own speed (a budget in seconds).
        views: Test-time views the evaluation uses (1 = the image alone; `explorer.training.evaluation.TTA_VIEWS`).
        budget_stop: Seconds from the press to the step at which the budget in seconds ended the training.
        warm_worker: The training ran in a process started ahead of it (`explorer.training.process.WARM`).
    """

    status: str = field(default="waiting", metadata=KEEP)
    phase: str = field(default="not started", metadata=TAKE)
    progress: float = field(default=0.0, metadata=TAKE)
    elapsed: float = field(default=0.0, metadata=TAKE)
    eta: float | None = field(default=None, metadata=TAKE)
    images_per_second: float | None = field(default=None, metadata=TAKE)
    epoch: float = field(default=0.0, metadata=TAKE)
    steps: int = field(default=0, metadata=TAKE)
    images_seen: int = field(default=0, metadata=TAKE)
    train_seconds: float = field(default=0.0, metadata=TAKE)
    steady_images_per_second: float | None = field(default=None, metadata=TAKE)
    finalize_seconds: float = field(default=0.0, metadata=TAKE)
    n_train: int = field(default=0, metadata=TAKE)
    n_val: int = field(default=0, metadata=TAKE)
    monitor: str | None = field(default=None, metadata=TAKE)
    best_epoch: int | None = field(default=None, metadata=TAKE)
    restored_best: bool = field(default=False, metadata=TAKE)
    precision: str = field(default="float32", metadata=TAKE)
    device: str = field(default="CPU", metadata=TAKE)
    capped: bool = field(default=False, metadata=TAKE)
    whitening: Whitening | None = field(default=None, metadata=TAKE)
    weights_report: Any = field(default=None, metadata=TAKE)
    memory_estimate: int | None = field(default=None, metadata=TAKE)
    batches: list[dict] = field(default_factory=list, metadata=APPEND)
    epochs: list[dict] = field(default_factory=list, metadata=TAKE)
    evaluation: Evaluation | None = field(default=None, metadata=GIVEN)
    stop_reason: str | None = field(default=None, metadata=GIVEN)
    traceback: str | None = field(default=None, metadata=GIVEN)
    error: str | None = field(default=None, metadata=KEEP)
    queue_ahead: int = field(default=0, metadata=KEEP)
    worker_pid: int | None = field(default=None, metadata=KEEP)
    worker_peak_rss: int | None = field(default=None, metadata=KEEP)
    pressed: float = field(default=0.0, metadata=KEEP)
    timings: dict[str, float] = field(default_factory=dict, metadata=TAKE)
    part: str | None = field(default=None, metadata=TAKE)
    part_since: float = field(default=0.0, metadata=TAKE)
    reserved: float | None = field(default=None, metadata=TAKE)
    views: int | None = field(default=None, metadata=TAKE)
    budget_stop: float | None = field(default=None, metadata=TAKE)
    warm_worker: bool = field(default=False, metadata=KEEP)

    def mark(self, part: str | None, now: float) -> None:
        """Close the running part at `now` (adding its seconds to `timings`) and open `part` (None: end)."""
        if self.part is not None:
            self.timings[self.part] = self.timings.get(self.part, 0.0) + max(0.0, now - self.part_since)
        self.part, self.part_since = part, now

    @property
    def wall(self) -> float:
        """Seconds from the press to now (or to the end, once ended)."""
        return sum(self.timings.values()) + (0.0 if self.part is None else max(0.0, time.time() - self.part_since))

    def copy(self, *, batches_from: int = 0) -> JobState:
        """A copy to send or read elsewhere, with the per-batch records from `batches_from` on."""
        return replace(self, batches=self.batches[batches_from:], epochs=list(self.epochs), timings=dict(self.timings))

    def take(self, report: JobState) -> None:
        """Take a training process's report: its values, its new per-batch records, its stop reason only when this
        state has none yet; not what the server's job decides itself (status, error, queue, process)."""
        for f in fields(self):
            how, value = f.metadata["report"], getattr(report, f.name)
            if how == "take":
                setattr(self, f.name, value)
            elif how == "append":
                getattr(self, f.name).extend(value)
            elif how == "given" and value and (f.name != "stop_reason" or self.stop_reason is None):
                setattr(self, f.name, value)


@dataclass(frozen=True)
class Snapshot:
    """What a poll of a job sees: a frozen copy of the `JobState` fields a page shows (safe to read without the lock).

    The fields are those of `JobState` of the same names, except `error`: the error message when failed, or
    why it stopped.
    """

    status: str
    phase: str
    progress: float
    elapsed: float
    eta: float | None
    images_per_second: float | None
    epoch: float
    steps: int
    batches: list[dict]
    epochs: list[dict]
    evaluation: Evaluation | None
    error: str | None
    precision: str
    device: str
    queue_ahead: int = 0
    timings: dict | None = None
    part: str | None = None
    wall: float = 0.0
    views: int | None = None

    @property
    def active(self) -> bool:
        """Still waiting or running."""
        return self.status in ACTIVE


    @classmethod
    def of(cls, state: JobState) -> Snapshot:
        """A frozen copy of a job's state (`error`: the error when failed, else the stop reason)."""
        return cls(status=state.status, phase=state.phase, progress=state.progress, elapsed=state.elapsed,
                   eta=state.eta, images_per_second=state.images_per_second, epoch=state.epoch, steps=state.steps,
                   batches=list(state.batches), epochs=list(state.epochs), evaluation=state.evaluation,
                   error=state.error if state.status == "failed" else state.stop_reason, precision=state.precision,
                   device=state.device, queue_ahead=state.queue_ahead, timings=dict(state.timings), part=state.part,
                   wall=state.wall,
                   views=state.views)
