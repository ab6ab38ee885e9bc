"""Short CIFAR-10 training of a configured network: recipes, a `TrainJob` worker, metric history, stop, evaluation.

A `TrainJob` owns everything one training needs (status, lock, metric history, stop event,
last-poll time) and runs in a daemon thread, so a Streamlit page can poll it from a fragment
and a CLI can print its progress. The worker never touches Streamlit. A process-wide semaphore
caps how many train at once (`EXPLORER_MAX_TRAININGS`, default 1); the others wait for a slot.

With `worker="process"` (what the app uses, `explorer.guards.train_worker`) the thread hands the
training itself to a spawned process at a lower CPU priority and relays its state: the server
stays responsive while trainings use the cores, and everything a training allocated (Keras'
traced graphs included) goes back to the system when the process ends.

TensorFlow is imported when a job starts, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from explorer import guards
from explorer.backend import load_keras
from explorer.config import ConfigError, ResNetConfig
from explorer.data import CLASSES, NUM_CLASSES, Cifar10, DataError
from explorer.whiten import Whitening, whiten_first_conv

# TensorFlow enables its oneDNN kernels by default only on CPUs with AVX-512/AMX; on others (e.g. AMD
# Zen 3 with AVX2) they train ResNet-20 faster too (see benchmarks/bench_training.py). Read once, when
# TensorFlow is imported, so this only helps when training is the first to import it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

MAX_TRAININGS_ENV = "EXPLORER_MAX_TRAININGS"
STATUSES = ("waiting", "running", "stopping", "done", "stopped", "failed")
ACTIVE = ("waiting", "running", "stopping")
CIFAR_INPUT = (32, 32, 3)
DEFAULT_IDLE_TIMEOUT = 60.0
RECORD_INTERVAL = 0.5  # seconds between two per-batch history records
PLATEAU_FACTOR = 0.1  # LR on plateau: the LR is multiplied by this ...
PLATEAU_MIN_LR = 1e-4  # ... down to this fraction of the peak LR
SYNC_INTERVAL = 0.25  # seconds between two state updates from a training process
STOP_GRACE = 10.0  # seconds a training process has to end after a stop before it is killed
# What a training process reports back (besides the history, the stop reason and the evaluation).
SYNCED = ("phase", "progress", "elapsed", "eta", "images_per_second", "epoch", "steps", "images_seen", "train_seconds",
          "steady_images_per_second", "finalize_seconds", "n_train", "n_val", "monitor", "best_epoch", "restored_best",
          "precision", "device", "capped", "whitening", "weights_report", "memory_estimate")


# --------------------------------------------------------------------------- recipes
@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How to train: optimizer, schedule, regularisation, augmentation, default budget.

    Attributes:
        name: "short" or "paper".
        label: Title for the UI.
        description: One paragraph for the UI and `--help`.
        batch_size: Global batch size.
        peak_lr: Highest learning rate (SGD).
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        l2: L2 weight decay on conv/dense kernels, added to the gradient (as in the papers).
        schedule: "onecycle" (linear warm-up, linear decay to zero over the budget) or "step"
            (÷10 at 50 % and 75 % of the budget, He et al. 2015).
        warmup: Fraction of the budget spent warming up (onecycle).
        label_smoothing: Label smoothing of the cross-entropy.
        flip: Random horizontal flips.
        crop: Random translation by up to this many pixels (pad + crop; 0 = off).
        val_split: Fraction of the training images held out for validation.
        precision: "auto" (mixed precision on a GPU or a CPU with bfloat16 units) or "float32".
        tta: Average the predictions of each test image over `TTA_VIEWS` (itself, its mirror, both moved a
            pixel) at evaluation.
        bn_momentum: BatchNormalization momentum while training (None = Keras' 0.99). Keras' 0.99
            lags far behind the weights in a run of a few hundred steps; 0.9 is PyTorch's default.
            The built network's value is restored afterwards.
        recalibrate_bn: Before evaluating, recompute the BN moving statistics exactly for the
            final weights from this many training batches ("precise BN"; 0 = off).
        whiten_stem: Start the first convolution from ± whitening directions of the training
            images' patches (`explorer.whiten`; not when starting from ImageNet weights).
        epochs: Default budget in epochs (None when the default budget is time).
        seconds: Default budget in seconds.
    """

    name: str
    label: str
    description: str
    batch_size: int
    peak_lr: float
    momentum: float = 0.9
    nesterov: bool = False
    l2: float = 0.0
    schedule: str = "onecycle"
    warmup: float = 0.2
    label_smoothing: float = 0.0
    flip: bool = True
    crop: int = 0
    val_split: float = 0.1
    precision: str = "auto"
    tta: bool = False
    bn_momentum: float | None = None
    recalibrate_bn: int = 8
    whiten_stem: bool = False
    epochs: int | None = None
    seconds: float | None = None

    def lr_at(self, progress: float) -> float:
        """The learning rate at a fraction `progress` (0..1) of the budget."""
        p = min(max(progress, 0.0), 1.0)
        if self.schedule == "step":
            return self.peak_lr * (0.1 ** sum(p >= m for m in (0.5, 0.75)))
        if p < self.warmup:
            return self.peak_lr * max(p / self.warmup, 0.02)
        return self.peak_lr * max(1.0 - (p - self.warmup) / (1.0 - self.warmup), 0.0)


RECIPES: dict[str, Recipe] = {
    "short": Recipe(
        name="short", label="Short (fast to a good accuracy on a CPU)",
        description=(
            "Time-budgeted one-cycle SGD (Nesterov, batch 64, peak LR 0.1, warm-up 25 %, linear decay to zero "
            "when the budget ends), label smoothing 0.2, random flips, L2 5e-4, the first convolution started from "
            "whitening directions of the training images' patches, BN momentum 0.9 and exact BN statistics at the "
            "end; 5 % held out for validation; each test prediction averaged over the image, its mirror and both moved a pixel; mixed precision "
            "where the hardware has it."
        ),
        batch_size=64, peak_lr=0.1, nesterov=True, l2=5e-4, schedule="onecycle", warmup=0.25,
        label_smoothing=0.2, flip=True, crop=0, val_split=0.05, precision="auto", tta=True, bn_momentum=0.9,
        recalibrate_bn=16, whiten_stem=True, seconds=90.0,
    ),
    "paper": Recipe(
        name="paper", label="Paper (He et al. 2015)",
        description=(
            "SGD 0.1, momentum 0.9, L2 1e-4, batch 128, learning rate ÷10 at 50 % and 75 % of the budget, "
            "4-pixel translations and flips, float32 (the paper trains 64k steps ≈ 182 epochs)."
        ),
        batch_size=128, peak_lr=0.1, momentum=0.9, l2=1e-4, schedule="step", label_smoothing=0.0,
        flip=True, crop=4, val_split=0.1, precision="float32", tta=False, epochs=182,
    ),
}
DEFAULT_RECIPE = "short"


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """One training run's knobs; None means "the recipe's value".

    Attributes:
        recipe: A key of RECIPES.
        epochs: Budget in epochs (give this or `seconds`, or neither for the recipe's default).
        seconds: Budget in wall-clock seconds of training (the LR schedule follows the clock).
        subset: Train on this many images (class-balanced, before the validation split).
        batch_size: Global batch size.
        flip: Random horizontal flips.
        crop: Random translation in pixels (0 = off).
        val_split: Fraction held out for validation (0 = none).
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        tta: Test-time augmentation at evaluation (`TTA_VIEWS`).
        evaluate: Evaluate on the test set at the end.
        seed: Seed of the subset, split and shuffling.
        early_stopping: Stop when the monitored loss (validation loss; the training loss when there is
            no validation split) has not improved for this many epochs (None = off). Paper recipe only.
        reduce_lr_on_plateau: Divide the learning rate by 10 when the monitored loss has not improved
            for this many epochs, down to 1e-4 × the peak (None = off). While on, it replaces the step
            schedule's drops: the schedule stays at the peak LR and only plateaus lower it. Paper recipe only.
        checkpoint_best: Keep a copy of the weights of the epoch with the lowest monitored loss and
            restore it before the test evaluation (the result's `best_epoch`). Paper recipe only.
        weights: Start from ImageNet weights (`explorer.pretrained`; resnet50v2/101v2/152v2 bodies only):
            None = random initialisation, "imagenet" = keras.applications' cache (~/.keras/models) or a
            download, else the path of a local keras.applications weights file (`.h5`). The config's
            `freeze` says what stays fixed; a head for other classes starts new.
    """

    recipe: str = DEFAULT_RECIPE
    epochs: int | None = None
    seconds: float | None = None
    subset: int | None = None
    batch_size: int | None = None
    flip: bool | None = None
    crop: int | None = None
    val_split: float | None = None
    precision: str | None = None
    tta: bool | None = None
    evaluate: bool = True
    seed: int = 0
    early_stopping: int | None = None
    reduce_lr_on_plateau: int | None = None
    checkpoint_best: bool = False
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError("recipe", f"unknown recipe {self.recipe!r}", f"choose one of: {', '.join(RECIPES)}")
        if self.epochs is not None and self.seconds is not None:
            raise ConfigError("epochs", "give a budget in epochs or in seconds, not both", "drop --epochs or --seconds")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1):
            raise ConfigError("epochs", f"{self.epochs!r} is not a positive whole number", "give 1 or more epochs")
        if self.seconds is not None and not (isinstance(self.seconds, int | float) and math.isfinite(self.seconds)
                                             and self.seconds > 0):
            raise ConfigError("seconds", f"{self.seconds!r} is not a positive number of seconds", "give e.g. 90")
        if self.subset is not None and self.subset < NUM_CLASSES * 2:
            raise ConfigError("subset", f"a subset of {self.subset} images is too small", f"give at least {NUM_CLASSES * 2}")
        if self.batch_size is not None and not 1 <= self.batch_size <= 8192:
            raise ConfigError("batch_size", f"batch size {self.batch_size} is out of range", "give 1 to 8192")
        if self.val_split is not None and not 0.0 <= self.val_split <= 0.5:
            raise ConfigError("val_split", f"validation split {self.val_split} is out of range", "give 0 to 0.5")
        if self.crop is not None and not 0 <= self.crop <= 8:
            raise ConfigError("crop", f"crop {self.crop} is out of range", "give 0 to 8 pixels")
        if self.precision not in (None, "auto", "float32", "mixed_bfloat16", "mixed_float16"):
            raise ConfigError("precision", f"unknown precision {self.precision!r}",
                              "choose auto, float32, mixed_bfloat16 or mixed_float16")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights.strip()):
            raise ConfigError("weights", f"{self.weights!r} is not a weights source",
                              "give imagenet or the path of a keras.applications .h5 weights file")
        self._check_callbacks()

    @property
    def weights_file(self) -> str | None:
        """The local weights file given (None for none or for "imagenet")."""
        return None if self.weights in (None, "imagenet") else self.weights

    def _check_callbacks(self) -> None:
        """Early stopping, LR on plateau and the best-epoch checkpoint: epoch-wise options of the paper recipe.

        The short recipe is refused: its one-cycle schedule is fitted to a time budget of a few epochs at
        most and anneals to zero at the end, so a stop or a drop on a plateau would only cut it short.
        """
        for name, flag in (("early_stopping", "--early-stopping"), ("reduce_lr_on_plateau", "--reduce-lr-on-plateau")):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000):
                raise ConfigError(name, f"a patience of {value!r} epochs is not a whole number from 1 to 1000",
                                  f"give {flag} N with N ≥ 1 epochs, e.g. 5")
        if not isinstance(self.checkpoint_best, bool):
            raise ConfigError("checkpoint_best", f"{self.checkpoint_best!r} is not true or false", "give true or false")
        used = [flag for flag, on in (("early stopping", self.early_stopping is not None),
                                       ("learning rate on plateau", self.reduce_lr_on_plateau is not None),
                                       ("checkpoint of the best epoch", self.checkpoint_best)) if on]
        if used and self.recipe != "paper":
            field_name = ("early_stopping" if self.early_stopping is not None else
                          "reduce_lr_on_plateau" if self.reduce_lr_on_plateau is not None else "checkpoint_best")
            raise ConfigError(field_name, f"{' and '.join(used)} {'is an option' if len(used) == 1 else 'are options'} "
                              f"of the paper recipe (epoch by epoch), not of the {self.recipe} recipe",
                              "choose the paper recipe (--recipe paper), ideally with a budget in epochs")

    @property
    def callbacks_on(self) -> bool:
        """Whether early stopping, LR on plateau or the best-epoch checkpoint is on."""
        return self.early_stopping is not None or self.reduce_lr_on_plateau is not None or self.checkpoint_best

    @property
    def recipe_obj(self) -> Recipe:
        """The Recipe."""
        return RECIPES[self.recipe]

    def resolved(self) -> TrainSettings:
        """A copy with every None filled from the recipe (budget: the recipe's default)."""
        r = self.recipe_obj
        epochs, seconds = self.epochs, self.seconds
        if epochs is None and seconds is None:
            epochs, seconds = r.epochs, r.seconds
        return replace(
            self, epochs=epochs, seconds=seconds,
            batch_size=self.batch_size or r.batch_size,
            flip=r.flip if self.flip is None else self.flip,
            crop=r.crop if self.crop is None else self.crop,
            val_split=r.val_split if self.val_split is None else self.val_split,
            precision=self.precision or r.precision,
            tta=r.tta if self.tta is None else self.tta,
        )

    def budget_text(self) -> str:
        """E.g. '90 s' or '3 epochs'."""
        s = self.resolved()
        return f"{s.seconds:g} s" if s.seconds is not None else f"{s.epochs} epoch{'s' if s.epochs != 1 else ''}"


# --------------------------------------------------------------------------- hardware and guards
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


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX), where mixed_bfloat16 pays off."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def gpus() -> list:
    """The visible GPUs (imports TensorFlow)."""
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def choose_precision(requested: str, recipe: Recipe) -> str:
    """The Keras dtype policy for a run: "float32", "mixed_bfloat16" or "mixed_float16"."""
    if requested != "auto":
        return requested
    devices = gpus()
    if devices:
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(devices[0])
        major = (details.get("compute_capability") or (0, 0))[0]
        return "mixed_bfloat16" if major >= 8 else "mixed_float16"
    if recipe.precision == "auto" and cpu_has_bf16():
        return "mixed_bfloat16"
    return "float32"


def _fit_problems(config: ResNetConfig, shape: tuple, classes: int) -> str | None:
    """What of the config does not fit data of `shape` with `classes` classes, in words, or None."""
    problems = []
    if tuple(config.input_shape) != tuple(shape):
        problems.append(f"its input is {'×'.join(map(str, config.input_shape))}")
    if config.classes != classes:
        problems.append(f"it has {config.classes} classes")
    return " and ".join(problems) or None


def cifar_mismatch(config: ResNetConfig) -> str | None:
    """Why a config cannot train on CIFAR-10 as it is (input or classes), or None when it can."""
    problems = _fit_problems(config, CIFAR_INPUT, NUM_CLASSES)
    if problems is None:
        return None
    return (f"CIFAR-10 needs a 32×32×3 input and 10 classes, but {problems}. "
            "Adapt it (input 32×32×3, 10 classes) to train it on CIFAR-10.")


def adapt_for_cifar(config: ResNetConfig) -> ResNetConfig:
    """The same network with a 32×32×3 input and 10 classes."""
    return config.replace(input_shape=CIFAR_INPUT, classes=NUM_CLASSES)


def data_mismatch(config: ResNetConfig, data: Any) -> str | None:
    """Why a config cannot train on a data set as it is (input or classes), or None when it can.

    Args:
        config: The network.
        data: `Cifar10` (the message is `cifar_mismatch`'s) or `explorer.imagefolder.ImageFolders`.
    """
    if getattr(data, "kind", "") != "folders":
        return cifar_mismatch(config)
    shape, n = tuple(data.image_shape), data.num_classes
    problems = _fit_problems(config, shape, n)
    if problems is None:
        return None
    return (f"These image folders need a {'×'.join(map(str, shape))} input and {n} classes (one per folder), "
            f"but {problems}. Set the input to {'×'.join(map(str, shape))} and the classes to {n}, "
            "or adapt it.")


def adapt_for_data(config: ResNetConfig, data: Any) -> ResNetConfig:
    """The same network with the data's input shape (H, W, C) and number of classes."""
    return config.replace(input_shape=tuple(data.image_shape), classes=data.num_classes)


def check_weights(config: ResNetConfig, settings: TrainSettings) -> None:
    """Refuse ImageNet weights before a training starts: another body than resnet50v2/101v2/152v2, a file that is
    not there, or not 3 input channels (`explorer.pretrained.WeightsError`, a ConfigError whose hint says what to do)."""
    if settings.weights is None:
        return
    from explorer import pretrained

    preset = pretrained.base_preset(config)
    if preset is None:
        raise pretrained.WeightsError(
            "weights", "ImageNet weights exist only for the resnet50v2/101v2/152v2 bodies",
            "start from preset resnet50v2, resnet101v2 or resnet152v2 (classes, input size and freezing may change), "
            "or train from scratch")
    if config.input_shape[2] != 3:
        raise pretrained.WeightsError("input", f"ImageNet weights need a 3-channel (RGB) input, not "
                                      f"{config.input_shape[2]} channels", "set the input channels to 3")
    pretrained.find_weights(preset, weights=settings.weights_file)


class JobBusy(RuntimeError):
    """This session already has a training that has not finished."""


# --------------------------------------------------------------------------- results
@dataclass
class Evaluation:
    """Test-set results of a trained model.

    Attributes:
        test_accuracy: Top-1 accuracy on the test set (0..1).
        test_loss: Mean cross-entropy (no label smoothing).
        test_images: Number of test images.
        per_class_accuracy: Accuracy of each class, in `classes` order.
        confusion: (C, C) counts, rows = true class, columns = predicted class.
        predictions: (N,) predicted class of each test image.
        confidence: (N,) probability of the predicted class.
        tta: Whether test-time augmentation (`TTA_VIEWS`) was used.
        seconds: Time the evaluation took.
        classes: The class names (CIFAR-10's unless the data set says otherwise).
    """

    test_accuracy: float
    test_loss: float
    test_images: int
    per_class_accuracy: list[float]
    confusion: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray
    tta: bool
    seconds: float
    classes: tuple[str, ...] = CLASSES

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-image arrays)."""
        return {
            "test_accuracy": self.test_accuracy, "test_loss": self.test_loss, "test_images": self.test_images,
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy, strict=True)),
            "confusion": self.confusion.tolist(), "tta": self.tta, "evaluation_seconds": self.seconds,
        }


def evaluate_predictions(probabilities: np.ndarray, labels: np.ndarray, *, tta: bool = False,
                         seconds: float = 0.0, classes: tuple[str, ...] = CLASSES) -> Evaluation:
    """Accuracy, loss, per-class accuracy and confusion matrix from predicted probabilities.

    Args:
        probabilities: (N, C) class probabilities.
        labels: (N,) true classes.
        tta: Recorded in the result.
        seconds: Recorded in the result.
        classes: The C class names.
    """
    n = len(classes)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predictions = probabilities.argmax(axis=1)
    confusion = np.bincount(labels * n + predictions, minlength=n**2).reshape(n, n)
    per_class = [float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else float("nan") for c in range(n)]
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()) if len(labels) else float("nan")
    return Evaluation(
        test_accuracy=float((predictions == labels).mean()) if len(labels) else float("nan"), test_loss=loss,
        test_images=int(len(labels)), per_class_accuracy=per_class, confusion=confusion,
        predictions=predictions.astype(np.int64), confidence=probabilities.max(axis=1).astype(np.float32),
        tta=tta, seconds=seconds, classes=tuple(classes),
    )


@dataclass(frozen=True)
class Snapshot:
    """What a poll of a job sees (copies; safe to read without the lock).

    Attributes:
        status: One of STATUSES.
        phase: What the worker is doing ("waiting for a slot", "building the model", "training", ...).
        progress: Fraction of the budget done (0..1).
        elapsed: Seconds of training so far.
        eta: Seconds left (None before the first batches).
        images_per_second: Recent training throughput.
        epoch: Epochs done (fractional).
        steps: Batches done.
        batches: Per-batch records (step, epoch, images, seconds, loss, accuracy, lr, images_per_second).
        epochs: Per-epoch records (epoch, seconds, loss, accuracy, val_loss, val_accuracy, lr — the LR the
            epoch trained with —, best — the lowest monitored loss so far —, lr_reduced_to — set when a
            plateau lowered the LR after it).
        evaluation: Test-set results once done.
        error: The error message when failed, or why it stopped.
        precision: The dtype policy in use.
        device: "CPU", "GPU" or "N GPUs".
        queue_ahead: While waiting for a slot, how many trainings asked before this one and wait too.
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

    @property
    def active(self) -> bool:
        """Still waiting or running."""
        return self.status in ACTIVE


# --------------------------------------------------------------------------- the job
class TrainJob:
    """One training of one network on CIFAR-10 (or image folders), run in a daemon worker thread.

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
            `explorer.guards.train_nice`), whose model comes back as `.keras` bytes (`model_bytes`; `model`
            loads them when first asked for).
    """

    def __init__(self, config: ResNetConfig, data: Cifar10, settings: TrainSettings | None = None, *,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT, slots: threading.Semaphore | FairSlots | None = None,
                 name: str | None = None, max_seconds: float | None = None, check_memory: bool = True,
                 worker: str = "thread") -> None:
        if worker not in guards.WORKERS:
            raise ValueError(f"worker must be one of {guards.WORKERS}, not {worker!r}")
        problem = data_mismatch(config, data)
        if problem:
            shape, n = "×".join(map(str, data.image_shape)), data.num_classes
            raise ConfigError("input", problem, f"use 'adapt' (input {shape}, {n} classes)")
        self.config = config
        self.data = data
        self.settings = (settings or TrainSettings()).resolved()
        self.recipe = self.settings.recipe_obj
        check_weights(config, self.settings)
        self.idle_timeout = idle_timeout
        guards.check_train_seconds(self.settings.seconds, max_seconds)
        self.max_seconds = max_seconds
        self.check_memory = check_memory
        self.capped = False  # ended at max_seconds
        self.memory_estimate: int | None = None
        self.whitening: Whitening | None = None  # what the short recipe's stem whitening did
        self.name = name or f"depth {config.resolved_depth}"
        self._slots = SLOTS if slots is None else slots
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "waiting"
        self.phase = "not started"
        self.queue_ahead = 0  # trainings before this one in the queue for a slot, while it waits
        self.error: str | None = None
        self.traceback: str | None = None
        self.stop_reason: str | None = None
        self.batches: list[dict] = []
        self.epochs: list[dict] = []
        self.evaluation: Evaluation | None = None
        self.worker = worker
        self.worker_pid: int | None = None  # the training process, with worker="process"
        self.worker_peak_rss: int | None = None  # its peak resident memory in bytes (as last seen while it ran)
        self._model: Any = None
        self._model_bytes: bytes | None = None
        self.precision = "float32"
        self.device = "CPU"
        self.created = time.time()
        self.last_poll = time.monotonic()
        self.progress = 0.0
        self.elapsed = 0.0
        self.eta: float | None = None
        self.images_per_second: float | None = None
        self.epoch = 0.0
        self.steps = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        self.steady_images_per_second: float | None = None
        self.finalize_seconds = 0.0
        self.n_train = 0
        self.n_val = 0
        self.monitor: str | None = None  # "val_loss" or "loss": what best / early stopping / plateau watch
        self.best_epoch: int | None = None  # the epoch with the lowest monitored loss so far (1-based)
        self.best_weights: list[np.ndarray] | None = None  # its weights, with `checkpoint_best`
        self.restored_best = False  # the model holds best_weights (restored before evaluating)
        self.weights_report: Any = None  # explorer.pretrained.LoadReport once ImageNet weights are loaded

    # ------------------------------------------------------------- control (any thread)
    def start(self) -> TrainJob:
        """Start the worker thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("this job has already been started")
        self.last_poll = time.monotonic()
        self.phase = "waiting for a slot"
        self._thread = threading.Thread(target=self._run, name=f"train-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the worker to stop; it ends within about one batch."""
        with self._lock:
            if self.status in ACTIVE and not self._stop.is_set():
                self.stop_reason = reason
                if self.status == "running":
                    self.status = "stopping"
                self._stop.set()

    def poll(self) -> Snapshot:
        """A consistent copy of the job's state; also tells the job someone is still watching."""
        with self._lock:
            self.last_poll = time.monotonic()
            return Snapshot(
                status=self.status, phase=self.phase, progress=self.progress, elapsed=self.elapsed, eta=self.eta,
                images_per_second=self.images_per_second, epoch=self.epoch, steps=self.steps,
                batches=list(self.batches), epochs=list(self.epochs), evaluation=self.evaluation,
                error=self.error if self.status == "failed" else self.stop_reason, precision=self.precision,
                device=self.device, queue_ahead=self.queue_ahead,
            )

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
            out = {
                "name": self.name, "status": self.status, "config": self.config.to_dict(),
                "settings": {k: v for k, v in vars(self.settings).items()},
                "precision": self.precision, "device": self.device,
                "train_images": self.n_train, "val_images": self.n_val,
                "train_seconds": round(self.train_seconds, 3),
                "bn_recalibration_seconds": round(self.finalize_seconds, 3),
                "train_images_per_second": None if self.steady_images_per_second is None
                else round(self.steady_images_per_second, 1),
                "images_seen": self.images_seen, "steps": self.steps,
                "epochs_completed": len([e for e in self.epochs if e.get("complete")]),
                "epochs_fractional": round(self.epoch, 3),
                "history": {"batches": list(self.batches), "epochs": list(self.epochs)},
                "error": self.error, "stop_reason": self.stop_reason,
                "ended_at_server_limit": self.capped, "memory_estimate_bytes": self.memory_estimate,
                "worker": self.worker, "worker_peak_memory_bytes": self.worker_peak_rss,
                "stem_whitening": None if self.whitening is None else vars(self.whitening),
                "monitor": self.monitor, "best_epoch": self.best_epoch, "restored_best": self.restored_best,
                "data_source": self.data.source, "classes": list(self.data.classes),
                "skipped_files": getattr(self.data, "skipped", 0),
                "skipped_examples": list(getattr(self.data, "skipped_examples", ())),
                **self._weights_result(),
            }
            if self.evaluation is not None:
                out.update(self.evaluation.to_dict())
            else:
                out.update(test_accuracy=None, test_loss=None, test_images=0)
            return out

    def _weights_result(self) -> dict:
        """The result's `weights_*` keys: where the ImageNet weights came from and what was copied (None without)."""
        report = self.weights_report
        return {
            "weights_source": None if report is None else report.source,
            "weights_layers_copied": None if report is None else report.layers,
            "weights_params_copied": None if report is None else report.params,
            "weights_skipped": None if report is None else list(report.skipped),
        }

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

    # ------------------------------------------------------------- worker
    def _set(self, **values: Any) -> None:
        with self._lock:
            for k, v in values.items():
                setattr(self, k, v)

    def _finish(self, status: str, *, error: str | None = None) -> None:
        with self._lock:
            self.status = status
            self.error = error
            self.phase = {"done": "done", "stopped": "stopped", "failed": "failed"}[status]
            self.eta = 0.0 if status == "done" else None

    def _run(self) -> None:
        try:
            if not self._wait_for_slot():
                self._finish("stopped")
                return
            try:
                self._set(status="stopping" if self._stop.is_set() else "running", phase="preparing the data")
                self._check_memory()
                if self.worker == "process":
                    self._train_in_process()
                else:
                    self._train()
            finally:
                self._slots.release()
                release_freed_memory()
            self._finish("stopped" if self._stop.is_set() else "done")
        except (DataError, ConfigError, WorkerFailed) as exc:
            self._finish("failed", error=str(exc))
        except Exception as exc:  # shown to the user in one line; the traceback is kept for logs
            self.traceback = traceback.format_exc()
            self._finish("failed", error=f"{type(exc).__name__}: {exc}")

    def _check_memory(self) -> None:
        """Estimate the training's memory and (with `check_memory`) refuse it, with a ConfigError, when it would not
        fit in the memory free now (checked once a slot is held)."""
        from explorer.annotate import build

        s = self.settings
        images = self.data.n_train if s.subset is None else min(s.subset, self.data.n_train)
        estimate = guards.check_training_memory if self.check_memory else guards.estimate_training_bytes
        d = self.data
        extra = guards.worker_bytes(self.worker, sum(a.nbytes for a in (d.x_train, d.y_train, d.x_test, d.y_test)))
        self._set(memory_estimate=estimate(build(self.config), batch_size=s.batch_size, images=images, flip=bool(s.flip),
                                           image_bytes=int(self.data.x_train[0].nbytes), extra=extra))

    def _wait_for_slot(self) -> bool:
        """Wait for a training slot, first come first served (`queue_ahead` counts those before this job)."""
        slots = self._slots
        if isinstance(slots, FairSlots):
            ticket = slots.enqueue()
            while not slots.wait(ticket, timeout=0.1):
                self._set(queue_ahead=slots.ahead(ticket))
                if self.should_stop():
                    slots.cancel(ticket)
                    return False
            self._set(queue_ahead=0)
        else:
            while not slots.acquire(timeout=0.1):
                if self.should_stop():
                    return False
        if self.should_stop():
            self._slots.release()
            return False
        return True

    def _train(self) -> None:
        import tensorflow as tf

        from explorer.data import make_datasets

        s = self.settings
        keras = load_keras()
        self._set(phase="preparing the data")
        folders = getattr(self.data, "kind", "") == "folders"
        pipes = make_datasets(self.data, batch_size=s.batch_size, subset=s.subset, val_split=0.0 if folders else s.val_split,
                              flip=s.flip, crop=s.crop, seed=s.seed)
        if folders:  # validate on the folders' own validation images
            pipes.val, pipes.n_val = pipes.test, pipes.n_test
        self._set(n_train=pipes.n_train, n_val=pipes.n_val)
        devices = gpus()
        precision = choose_precision(s.precision, self.recipe)
        strategy = tf.distribute.MirroredStrategy() if len(devices) > 1 else tf.distribute.get_strategy()
        self._set(precision=precision, device="CPU" if not devices else ("GPU" if len(devices) == 1 else f"{len(devices)} GPUs"),
                  phase="building the model")
        if self.should_stop():
            return
        with strategy.scope():
            model = build_training_model(self.config, precision=precision)
            if s.weights is not None:
                self._load_weights(model)
                if self.should_stop():
                    return
            elif self.recipe.whiten_stem:
                self._set(phase="whitening the first layer")
                self._set(whitening=whiten_first_conv(model, self.data.x_train, tuple(self.data.mean),
                                                      tuple(self.data.std), index=pipes.train_index, seed=s.seed))
            fuse_batchnorm(model)  # same function, TensorFlow's fused kernel (a plain Keras model is saved)
            optimizer = make_optimizer(self.recipe, precision=precision)
            model.compile(
                optimizer=optimizer,
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=self.recipe.label_smoothing),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            )
            # Create the optimizer's slots now: created inside the first step, they make tf.function trace that
            # step twice (once creating variables, once without) — 2.5-4 s more of the budget before the first batch.
            optimizer.build(model.trainable_variables)
        self.model = model
        if self.should_stop():
            return
        callback = _JobCallback(self, pipes)
        self._set(phase="compiling (first batch)")
        epochs = s.epochs if s.epochs is not None else 1_000_000
        with bn_momentum(model, self.recipe.bn_momentum):
            model.fit(pipes.train, epochs=epochs, steps_per_epoch=pipes.steps_per_epoch, callbacks=[callback], verbose=0,
                      shuffle=False)  # the pipeline shuffles
        if self.should_stop():
            return
        if s.checkpoint_best and self.best_weights is not None:
            # (before the BN recomputation below, which then fits the statistics to these weights)
            self._set(phase="restoring the weights of the best epoch")
            model.set_weights(self.best_weights)
            self._set(restored_best=True)
        if self.recipe.recalibrate_bn and len(devices) <= 1:  # (an eager pass across mirrored replicas is not worth the risk)
            self._set(phase="recomputing BatchNorm statistics", eta=None)
            started = time.perf_counter()
            recalibrate_batchnorm(model, pipes.train, batches=self.recipe.recalibrate_bn, should_stop=self.should_stop)
            self._set(finalize_seconds=time.perf_counter() - started)
        if self.should_stop() or not s.evaluate:
            return
        self._set(phase="evaluating on the test set", eta=None)
        evaluation = evaluate_model(model, pipes.test, self.data.y_test, tta=s.tta, should_stop=self.should_stop,
                                    classes=tuple(self.data.classes),
                                    progress=lambda f: self._set(phase=f"evaluating on the test set ({f:.0%})"))
        if evaluation is not None:
            self._set(evaluation=evaluation)

    def _train_in_process(self) -> None:
        """Run `_train` in a spawned process and mirror its state here until it ends.

        Raises:
            WorkerFailed: The training failed there (its one-line message), or the process died.
        """
        ctx = multiprocessing.get_context("spawn")
        updates = ctx.Queue()
        stop = ctx.Event()
        spec = (self.config, self.data, self.settings, self.name, self.max_seconds, guards.train_nice())
        process = ctx.Process(target=_process_main, args=(spec, updates, stop), name=f"train-{self.name}", daemon=True)
        self._set(phase="starting a training process")
        with guards.blank_main():  # under Streamlit `__main__` is the app page: the child must not run it first
            process.start()
        self._set(worker_pid=process.pid)
        ended = None
        stop_asked = None
        try:
            while ended is None:
                if self.should_stop():
                    stop.set()
                    stop_asked = stop_asked or time.monotonic()
                    if time.monotonic() - stop_asked > STOP_GRACE and process.is_alive():
                        process.kill()  # (it did not end by itself: stop it anyway, with what it has reported)
                        return
                self.worker_peak_rss = _peak_rss(process.pid) or self.worker_peak_rss
                alive = process.is_alive()
                try:  # (once it has ended, a last second for what it sent just before)
                    kind, state = updates.get(timeout=SYNC_INTERVAL if alive else 1.0)
                except queue.Empty:
                    if not alive:
                        raise WorkerFailed(_died(process.exitcode)) from None
                    continue
                self._apply(state)
                if kind == "end":
                    ended = state
        finally:
            stop.set()
            updates.close()
            # (it exits within seconds of its last report; the job ends now, and a thread reaps the process)
            threading.Thread(target=_reap, args=(process,), name=f"reap-{self.name}", daemon=True).start()
        if ended.get("traceback"):
            self.traceback = ended["traceback"]
        if ended["status"] == "failed":
            raise WorkerFailed(ended["error"] or "the training failed")

    def _apply(self, state: dict) -> None:
        """Take a training process's report (`_ProcessJob.report`, plus the end's extras)."""
        with self._lock:
            for key in SYNCED:
                if key in state:
                    setattr(self, key, state[key])
            self.batches.extend(state.get("batches", ()))
            if "epochs" in state:
                self.epochs[:] = state["epochs"]
            if state.get("stop_reason") and self.stop_reason is None:
                self.stop_reason = state["stop_reason"]
            if state.get("evaluation") is not None:
                self.evaluation = state["evaluation"]
            if state.get("model_bytes") is not None:
                self._model_bytes = state["model_bytes"]

    def _load_weights(self, model: Any) -> None:
        """Copy the ImageNet weights into the freshly built model (a WeightsError fails the job, saying where to put the file)."""
        from explorer import pretrained

        self._set(phase="loading ImageNet weights")
        s = self.settings
        report = pretrained.load_imagenet_weights(model, self.config, weights=s.weights_file,
                                                  download=s.weights == "imagenet")
        self._set(weights_report=report)


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


class WorkerFailed(RuntimeError):
    """A training process failed (the message is the one-line error to show) or ended unexpectedly."""


def _died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        killed = " (the system ran out of memory?)" if exitcode == -signal.SIGKILL else ""
        return f"the training process was killed by {name}{killed}; try a smaller batch size or network, or retry later"
    return f"the training process ended unexpectedly (exit code {exitcode}); see the server log"


class _ProcessJob(TrainJob):
    """The job inside a training process: stops when the server's job asks, reports its state through a queue."""

    def __init__(self, *args: Any, remote_stop: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remote_stop = remote_stop
        self._parent = os.getppid()

    def should_stop(self) -> bool:
        if not self._stop.is_set() and (self._remote_stop.is_set() or os.getppid() != self._parent):
            self._stop.set()  # (asked by the server, or the server is gone)
        return super().should_stop()

    def report(self, sent: int) -> tuple[dict, int]:
        """The state to send and how many per-batch records have been sent with it."""
        with self._lock:
            state = {key: getattr(self, key) for key in SYNCED}
            state.update(batches=self.batches[sent:], epochs=list(self.epochs), stop_reason=self.stop_reason)
            return state, len(self.batches)


def _process_main(spec: tuple, updates: Any, stop: Any) -> None:
    """A training process: train like a thread job, sending the state every SYNC_INTERVAL and everything at the end."""
    config, data, settings, name, max_seconds, nice = spec
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    job = _ProcessJob(config, data, settings, idle_timeout=None, slots=threading.BoundedSemaphore(1), name=name,
                      max_seconds=max_seconds, check_memory=False, remote_stop=stop)
    sent = 0
    done = threading.Event()

    def send() -> None:
        nonlocal sent
        while not done.wait(SYNC_INTERVAL):
            state, sent = job.report(sent)
            updates.put(("state", state))

    sender = threading.Thread(target=send, name="report", daemon=True)
    sender.start()
    job._run()
    done.set()
    sender.join()
    state, sent = job.report(sent)
    state.update(status=job.status, error=job.error, traceback=job.traceback, evaluation=job.evaluation)
    if job._model is not None and job.status in ("done", "stopped"):
        try:
            state["model_bytes"] = job.model_bytes()
        except Exception as exc:  # the run still counts; only the download is missing
            state["traceback"] = traceback.format_exc()
            state["stop_reason"] = state["stop_reason"] or f"the model could not be saved: {exc}"
    updates.put(("end", state))
    updates.close()
    updates.join_thread()


def build_training_model(config: ResNetConfig, *, precision: str = "float32") -> Any:
    """Build exactly the configured network; with a mixed policy, clone its layers in that policy.

    The classifier (the last layer) stays float32 so the softmax and the loss are exact. The global
    Keras dtype policy is not touched (other sessions share the process).
    """
    from explorer.keras_build import build_model

    keras = load_keras()
    model = build_model(config)
    if precision == "float32":
        return model
    last = model.layers[-1].name

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        cfg["dtype"] = "float32" if layer.name == last else precision
        return layer.__class__.from_config(cfg)

    return keras.models.clone_model(model, clone_function=clone)


def _batchnorms(model: Any) -> list:
    keras = load_keras()
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def fuse_batchnorm(model: Any) -> int:
    """Let the model's BatchNormalization layers train with TensorFlow's fused kernel.

    Keras 3 computes a BN layer in training from separate ops (moments, then normalise), each a pass
    over the activations and each differentiated on its own; `FusedBatchNormV3` (oneDNN on a CPU) is
    one pass forward and one backward. Same function, same variables, same moving-average update
    (Bessel's correction removed, as Keras' own statistics have none): on this 2-core CPU ResNet-20
    trains ~1.2× faster than plain Keras (benchmarks/bench_training.py) and its first batch traces
    sooner. In inference (evaluation, prediction) the fused kernel normalises with the moving
    statistics in one op instead of four: ~1.3× faster test-set evaluation. Only the instances'
    `call` changes — the classes, the config and a saved `.keras` stay plain Keras — and only float32
    NHWC batches take the fused path; anything else (frozen layers in training, masks, other dtypes
    or axes) runs Keras' own code.
    Returns the number of layers changed.
    """
    import tensorflow as tf

    layers = [layer for layer in _batchnorms(model) if not getattr(layer, "renorm", False)]
    for layer in layers:
        plain = layer.call  # the bound Keras method

        def call(inputs: Any, training: Any = None, mask: Any = None, *, _layer: Any = layer, _plain: Any = plain) -> Any:
            if (not (training is None or isinstance(training, bool)) or mask is not None or len(inputs.shape) != 4
                    or _layer.axis not in (3, -1) or inputs.dtype != tf.float32 or getattr(_layer, "synchronized", False)
                    or (training is True and not _layer.trainable)):
                # (a frozen BN layer normalises with its moving statistics and never updates them, as in Keras)
                return _plain(inputs, training=training, mask=mask)
            channels = inputs.shape[-1]
            scale = _layer.gamma if _layer.scale else tf.ones((channels,), tf.float32)
            offset = _layer.beta if _layer.center else tf.zeros((channels,), tf.float32)
            if not training:  # inference with the moving statistics: one op instead of four
                return tf.compat.v1.nn.fused_batch_norm(inputs, scale, offset, mean=_layer.moving_mean,
                                                        variance=_layer.moving_variance, epsilon=_layer.epsilon,
                                                        data_format="NHWC", is_training=False)[0]
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(inputs, scale, offset, epsilon=_layer.epsilon,
                                                                 data_format="NHWC", is_training=True)[:3]
            n = tf.cast(tf.size(inputs) // channels, tf.float32)
            variance = variance * (n - 1.0) / n  # the fused kernel returns the unbiased variance
            m = _layer.momentum
            _layer.moving_mean.assign(_layer.moving_mean * m + tf.cast(mean, _layer.moving_mean.dtype) * (1.0 - m))
            _layer.moving_variance.assign(_layer.moving_variance * m
                                          + tf.cast(variance, _layer.moving_variance.dtype) * (1.0 - m))
            return y

        layer.call = call
    return len(layers)


@contextlib.contextmanager
def bn_momentum(model: Any, momentum: float | None) -> Iterator[None]:
    """Use another BatchNormalization momentum while training (set before the train function is traced)."""
    layers = _batchnorms(model) if momentum is not None else []
    old = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = momentum
    try:
        yield
    finally:
        for layer, value in zip(layers, old, strict=True):
            layer.momentum = value


def recalibrate_batchnorm(model: Any, dataset: Any, *, batches: int = 8,
                          should_stop: Callable[[], bool] | None = None) -> int:
    """Recompute every BN layer's moving mean and variance for the current weights ("precise BN").

    Runs `batches` training batches forward in training mode, eagerly, with the momentum of the
    i-th batch set to i/(i+1), so each moving statistic ends as the plain average over the batches.
    The weights do not change. Returns the number of batches used.
    """
    layers = _batchnorms(model)
    if not layers or batches <= 0:
        return 0
    old = [layer.momentum for layer in layers]
    used = 0
    try:
        for i, (x, _) in enumerate(dataset.take(batches)):
            if should_stop is not None and should_stop():
                break
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(x, training=True)
            used += 1
    finally:
        for layer, value in zip(layers, old, strict=True):
            layer.momentum = value
    return used


def make_optimizer(recipe: Recipe, *, precision: str = "float32") -> Any:
    """SGD with the recipe's momentum and coupled L2 on kernels (loss-scaled for float16)."""
    keras = load_keras()
    opt = _l2_sgd_class()(learning_rate=recipe.lr_at(0.0), momentum=recipe.momentum, nesterov=recipe.nesterov,
                          l2=recipe.l2)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


_L2SGD = None


def _l2_sgd_class() -> type:
    """keras SGD whose update adds `l2 · w` to the gradient of every kernel (L2 decay as in He et al.)."""
    global _L2SGD
    if _L2SGD is not None:
        return _L2SGD
    keras = load_keras()

    @keras.saving.register_keras_serializable(package="explorer")
    class L2SGD(keras.optimizers.SGD):
        """SGD with L2 weight decay on kernels, coupled to the gradient (so momentum sees it)."""

        def __init__(self, *, l2: float = 0.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.l2 = l2

        def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
            if self.l2 and trainable_variables is not None:
                trainable_variables = list(trainable_variables)
                grads = [
                    g + self.l2 * keras.ops.cast(v, g.dtype) if g is not None and v.name == "kernel" else g
                    for g, v in zip(grads, trainable_variables, strict=True)
                ]
            return super().apply(grads, trainable_variables)

        def get_config(self) -> dict:
            return {**super().get_config(), "l2": self.l2}

    _L2SGD = L2SGD
    return L2SGD


# Test-time augmentation: (mirrored?, rows, columns) — each view is the test image, mirrored or not, moved by
# this many pixels (its border reflected). The image, its mirror, the image shifted a pixel diagonally and its
# mirror shifted the other way: on 14 ResNet-20s trained for 480 steps here, +0.22 points over the image and its
# mirror, +1.0 over the image alone (README, "Training on CIFAR-10").
TTA_VIEWS: tuple[tuple[bool, int, int], ...] = ((False, 0, 0), (True, 0, 0), (False, -1, -1), (True, 1, 1))


def tta_view(image: Any, mirrored: bool, dy: int, dx: int) -> Any:
    """One test-time view of a (symbolic) NHWC batch: mirrored or not, then moved by (dy, dx) ≤ 1 pixel."""
    keras = load_keras()
    view = keras.ops.flip(image, axis=2) if mirrored else image
    if dy or dx:
        view = keras.ops.pad(view, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        view = keras.layers.Cropping2D(((1 + dy, 1 - dy), (1 + dx, 1 - dx)))(view)
    return view


def evaluate_model(model: Any, test_ds: Any, labels: np.ndarray, *, tta: bool = False,
                   should_stop: Callable[[], bool] | None = None, classes: tuple[str, ...] = CLASSES,
                   progress: Callable[[float], None] | None = None) -> Evaluation | None:
    """Predict the test set (optionally averaged over `TTA_VIEWS`) and score it.

    With `tta`, each batch goes through the network once per view (the image, its mirror and both
    moved by a pixel), in one prediction pass (one traced function). `progress` is called with the
    fraction done after each batch.

    Returns:
        The evaluation, or None when `should_stop` turned true in the middle.
    """

    keras = load_keras()
    started = time.perf_counter()
    should_stop = should_stop or (lambda: False)
    batches = int(test_ds.cardinality())

    class _Progress(keras.callbacks.Callback):
        def on_predict_batch_end(self, batch: int, logs: Any = None) -> None:
            if should_stop():
                self.model.stop_predicting = True
            elif progress is not None and batches > 0:
                progress(min(1.0, (batch + 1) / batches))

    predictor = model
    if tta:
        image = keras.Input(model.input_shape[1:])
        predictor = keras.Model(image, keras.layers.Average()([model(tta_view(image, *view)) for view in TTA_VIEWS]))
    out = predictor.predict(test_ds, verbose=0, callbacks=[_Progress()])
    if should_stop():
        return None
    probs = np.asarray(out, dtype=np.float32)
    return evaluate_predictions(probs, labels, tta=tta, seconds=time.perf_counter() - started, classes=classes)


_CALLBACKS: tuple[type, type] | None = None


def _JobCallback(job: TrainJob, pipes: Any) -> Any:  # noqa: N802 - reads like the class it makes
    """The Keras callback that drives `job` (its class is made when Keras is first needed)."""
    global _CALLBACKS
    if _CALLBACKS is None:
        _CALLBACKS = _make_callback_classes()
    return _CALLBACKS[0](job, pipes)


def _EvalStopper(job: TrainJob) -> Any:  # noqa: N802
    """A Keras callback that ends an evaluation pass when `job` must stop."""
    global _CALLBACKS
    if _CALLBACKS is None:
        _CALLBACKS = _make_callback_classes()
    return _CALLBACKS[1](job)


def _make_callback_classes() -> tuple[type, type]:
    keras = load_keras()

    class JobCallback(keras.callbacks.Callback):
        """Sets the LR from the budget, records metrics, validates, and stops on request or at the budget."""

        def __init__(self, job: TrainJob, pipes: Any) -> None:
            super().__init__()
            self.job = job
            self.pipes = pipes
            s = job.settings
            self.seconds = s.seconds
            self.steps_per_epoch = pipes.steps_per_epoch
            self.total_steps = None if s.epochs is None else s.epochs * pipes.steps_per_epoch
            self.batch_size = pipes.batch_size
            self.step = 0
            self.epoch_index = 0
            self.batch_in_epoch = 0
            self.last_record = (0, 0.0, 0.0, time.perf_counter())  # (batch_in_epoch, loss_sum, acc_sum, time)
            self.t_start = 0.0
            self.t_first = None  # end of the first batch (tracing done)
            self.t_last = None  # end of the latest batch
            self.images_after_first = 0
            # Early stopping, LR on plateau and the best-epoch checkpoint watch one loss (lower is better).
            # They live here rather than as Keras' EarlyStopping / ReduceLROnPlateau / ModelCheckpoint:
            # validation runs inside this callback (fit's logs never hold val_loss), the LR set below at
            # every batch would undo ReduceLROnPlateau's, and the best weights are kept in memory.
            self.monitor = "val_loss" if pipes.val is not None else "loss"
            self.best_value = math.inf
            self.since_best = 0  # epochs without improvement (early stopping)
            self.since_drop = 0  # epochs without improvement since the last LR drop (plateau)
            self.lr_factor = 1.0  # lowered ×0.1 on each plateau
            self.min_lr = PLATEAU_MIN_LR * job.recipe.peak_lr
            job._set(monitor=self.monitor)
            self.lr = self.scheduled_lr(0.0)

        # progress ----------------------------------------------------------------
        def scheduled_lr(self, progress: float) -> float:
            """The recipe's LR at `progress`; with LR on plateau, the peak LR times the plateau factor instead
            (the plateaus replace the step schedule's drops)."""
            recipe = self.job.recipe
            if self.job.settings.reduce_lr_on_plateau is None:
                return recipe.lr_at(progress)
            return max(recipe.peak_lr * self.lr_factor, self.min_lr)

        def progress(self, now: float) -> float:
            if self.total_steps is not None:
                return self.step / self.total_steps
            if self.t_first is None:
                return 0.0
            remaining = self.seconds - (self.t_first - self.t_start)
            return min(1.0, (now - self.t_first) / max(remaining, 1e-6))

        def budget_over(self, now: float) -> bool:
            if self.job.max_seconds is not None and now - self.t_start >= self.job.max_seconds:
                self.job.capped = True
                return True
            if self.total_steps is not None:
                return self.step >= self.total_steps
            return now - self.t_start >= self.seconds

        # keras hooks -------------------------------------------------------------
        def on_train_begin(self, logs: Any = None) -> None:
            self.t_start = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch_index = epoch
            self.batch_in_epoch = 0
            self.last_record = (0, 0.0, 0.0, time.perf_counter())

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            lr = self.scheduled_lr(self.progress(time.perf_counter()))
            if lr != self.lr:
                self.model.optimizer.learning_rate = lr
                self.lr = lr

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            self.step += 1
            self.batch_in_epoch += 1
            job = self.job
            if self.t_first is None:
                self.t_first = now
                job._set(phase="training")
                self.record(now, logs)  # a first point at once (its speed includes tracing: not shown)
            else:
                self.images_after_first += self.batch_size
                self.t_last = now
                if now - self.last_record[3] >= RECORD_INTERVAL:
                    self.record(now, logs)
            stop = job.should_stop()
            if stop or self.budget_over(now):
                self.model.stop_training = True
                if self.batch_in_epoch > self.last_record[0]:
                    self.record(now, logs)
            self._update_progress(now)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            now = time.perf_counter()
            entry = {
                "epoch": epoch + 1, "fraction": round(self.batch_in_epoch / self.steps_per_epoch, 4),
                "complete": self.batch_in_epoch >= self.steps_per_epoch, "step": self.step,
                "seconds": round(now - self.t_start, 3), "lr": self.lr,
                "loss": _num(logs.get("loss")), "accuracy": _num(logs.get("accuracy")),
                "val_loss": None, "val_accuracy": None, "best": False, "lr_reduced_to": None,
            }
            if self.pipes.val is not None and not self.job.should_stop():
                self.job._set(phase="validating")
                val = self.model.evaluate(self.pipes.val, verbose=0, return_dict=True, callbacks=[_EvalStopper(self.job)])
                if not self.job.should_stop():
                    entry.update(val_loss=_num(val.get("loss")), val_accuracy=_num(val.get("accuracy")))
                self.job._set(phase="training")
            improved = False
            if not self.job.should_stop():
                improved = self.watch(entry, now)
            with self.job._lock:
                if improved:  # one `best` row: the lowest monitored loss so far
                    self.job.epochs[:] = [{**e, "best": False} if e.get("best") else e for e in self.job.epochs]
                    self.job.best_epoch = entry["epoch"]
                self.job.epochs.append(entry)

        def watch(self, entry: dict, now: float) -> bool:
            """Best epoch, LR on plateau and early stopping after an epoch; True when it improved the monitored loss."""
            s = self.job.settings
            value = entry.get(self.monitor)
            if value is None:  # (a diverged loss: not an improvement, nothing to compare)
                value = math.inf
            if value < self.best_value:
                self.best_value = value
                self.since_best = self.since_drop = 0
                entry["best"] = True
                if s.checkpoint_best:
                    self.job._set(best_weights=[np.array(w, copy=True) for w in self.model.get_weights()])
                return True
            self.since_best += 1
            self.since_drop += 1
            if self.budget_over(now):
                return False
            if (s.reduce_lr_on_plateau is not None and self.since_drop >= s.reduce_lr_on_plateau
                    and self.scheduled_lr(0.0) > self.min_lr * (1 + 1e-9)):
                self.lr_factor *= PLATEAU_FACTOR
                self.since_drop = 0
                entry["lr_reduced_to"] = self.scheduled_lr(0.0)
            if s.early_stopping is not None and self.since_best >= s.early_stopping:
                self.model.stop_training = True
                epochs = f"{self.since_best} epoch{'s' if self.since_best != 1 else ''}"
                self.job._set(stop_reason=f"early stopping: {self.monitor} did not improve for {epochs}")
            return False

        def on_train_end(self, logs: Any = None) -> None:
            now = time.perf_counter()
            steady = None
            if self.t_first is not None and self.t_last is not None and self.t_last > self.t_first:
                # batches only: the validation passes and the first (tracing) batch are left out
                steady = self.images_after_first / (self.t_last - self.t_first)
            self.job._set(train_seconds=now - self.t_start, steady_images_per_second=steady)

        # helpers -----------------------------------------------------------------
        def record(self, now: float, logs: Any) -> None:
            logs = logs or {}
            k = self.batch_in_epoch
            loss_mean, acc_mean = _num(logs.get("loss")), _num(logs.get("accuracy"))
            if loss_mean is None:
                return
            # Keras logs hold running means over the epoch so far; the sums k·mean give the exact
            # mean over the batches since the last record.
            j, loss_sum_j, acc_sum_j, t_j = self.last_record
            loss_sum, acc_sum = loss_mean * k, (acc_mean or 0.0) * k
            n = k - j
            if n <= 0:
                return
            window_loss = (loss_sum - loss_sum_j) / n
            window_acc = (acc_sum - acc_sum_j) / n
            ips = n * self.batch_size / (now - t_j) if now > t_j and self.step > 1 else None
            entry = {
                "step": self.step, "epoch": round(self.epoch_index + k / self.steps_per_epoch, 4),
                "images": self.step * self.batch_size, "seconds": round(now - self.t_start, 3),
                "loss": window_loss, "accuracy": window_acc, "lr": self.lr,
                "images_per_second": None if ips is None else round(ips, 1),
            }
            self.last_record = (k, loss_sum, acc_sum, now)
            with self.job._lock:
                self.job.batches.append(entry)
                if ips is not None:
                    self.job.images_per_second = ips

        def _update_progress(self, now: float) -> None:
            job = self.job
            progress = self.progress(now)
            elapsed = now - self.t_start
            eta = None
            if self.seconds is not None:
                eta = max(0.0, self.seconds - elapsed)
            elif self.t_first is not None and self.total_steps and self.step > 1:
                per_step = (now - self.t_first) / (self.step - 1)
                eta = per_step * (self.total_steps - self.step)
            job._set(progress=progress, elapsed=elapsed, eta=eta, steps=self.step,
                     epoch=self.epoch_index + self.batch_in_epoch / self.steps_per_epoch,
                     images_seen=self.step * self.batch_size)

    class EvalStopper(keras.callbacks.Callback):
        """Ends a validation pass early when the job must stop."""

        def __init__(self, job: TrainJob) -> None:
            super().__init__()
            self.job = job

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.job.should_stop():
                self.model.stop_evaluating = True

    return JobCallback, EvalStopper


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def start_job(previous: TrainJob | None, config: ResNetConfig, data: Cifar10, settings: TrainSettings | None = None,
              **kwargs: Any) -> TrainJob:
    """Start a job unless the session's previous one is still active (one job per session).

    Raises:
        JobBusy: `previous` is still waiting or running.
    """
    if previous is not None and previous.active:
        raise JobBusy("a training is already running in this session: stop it (or wait for it) first")
    return TrainJob(config, data, settings, **kwargs).start()


@dataclass
class RunRecord:
    """A finished run kept for comparison: name, config, settings, history and test results.

    Attributes:
        name: Label (unique within a session).
        config: The network.
        settings: The resolved settings.
        status: "done" or "stopped".
        batches: Per-batch history.
        epochs: Per-epoch history.
        test_accuracy: Test accuracy (None when not evaluated).
        test_loss: Test loss.
        train_seconds: Training wall time.
        images_per_second: Steady training throughput.
        finished: Unix time it ended.
    """

    name: str
    config: ResNetConfig
    settings: TrainSettings
    status: str
    batches: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    test_accuracy: float | None = None
    test_loss: float | None = None
    train_seconds: float = 0.0
    images_per_second: float | None = None
    finished: float = 0.0

    @classmethod
    def from_job(cls, job: TrainJob, name: str | None = None) -> RunRecord:
        """Freeze a finished job into a record (no model, no data)."""
        snap = job.poll()
        ev = snap.evaluation
        return cls(name=name or job.name, config=job.config, settings=job.settings, status=snap.status,
                   batches=snap.batches, epochs=snap.epochs, test_accuracy=None if ev is None else ev.test_accuracy,
                   test_loss=None if ev is None else ev.test_loss, train_seconds=job.train_seconds,
                   images_per_second=job.steady_images_per_second, finished=time.time())


def history_csv(batches: list[dict], epochs: list[dict]) -> str:
    """The metric history as CSV: one row per batch record and per epoch, with a `kind` column."""
    import pandas as pd

    frames = []
    for kind, records in (("batch", batches), ("epoch", epochs)):
        if records:
            frame = pd.DataFrame(records)
            frame.insert(0, "kind", kind)
            frames.append(frame)
    if not frames:
        return "kind\n"
    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def history_figure(batches: list[dict], epochs: list[dict], *, title: str | None = None,
                   best_epoch: int | None = None) -> Any:
    """The loss and accuracy curves (`charts.live_curves`) with the best epoch and the LR drops marked."""
    from explorer import charts

    fig = charts.live_curves(batches, epochs, title=title)
    for e in epochs:
        x = e["epoch"] - 1 + e.get("fraction", 1.0)
        if best_epoch is not None and e["epoch"] == best_epoch:
            fig.add_vline(x=x, line={"color": "green", "dash": "dot", "width": 1.5},
                          annotation_text=f"best (epoch {best_epoch})", annotation_position="top left")
        if e.get("lr_reduced_to") is not None:
            fig.add_vline(x=x, line={"color": "grey", "dash": "dash", "width": 1},
                          annotation_text=f"LR → {e['lr_reduced_to']:.2g}", annotation_position="bottom right")
    return fig


def history_html(batches: list[dict], epochs: list[dict], *, title: str | None = None,
                 best_epoch: int | None = None) -> str:
    """`history_figure` as a standalone HTML page (plotly.js inlined: it opens offline)."""
    fig = history_figure(batches, epochs, title=title, best_epoch=best_epoch)
    return fig.to_html(include_plotlyjs=True, full_html=True)


def save_history(source: TrainJob | RunRecord | dict, directory: str | os.PathLike) -> list[Any]:
    """Write a run's history next to each other in `directory` (created when missing).

    Files: `history.csv` (`history_csv`), `history.html` (`history_figure`, works offline),
    `history.png` only when the optional `kaleido` package is installed (and can render); from a
    finished `TrainJob` also `model.keras` (the model the job holds: the evaluated one) and, when
    `checkpoint_best` restored the best epoch's weights, `best.keras` (the same model, by the name
    Keras' ModelCheckpoint gives it).

    Args:
        source: A TrainJob, a RunRecord, or a `TrainJob.result()` dict (no model files from the last two).
        directory: Where to write.

    Returns:
        The paths written, in the order above.
    """
    import logging
    from pathlib import Path

    if isinstance(source, dict):
        history = source.get("history") or {}
        batches, epochs = history.get("batches") or [], history.get("epochs") or []
        name, best_epoch, job = source.get("name"), source.get("best_epoch"), None
    else:
        job = source if isinstance(source, TrainJob) else None
        if job is not None:
            snap = job.poll()
            batches, epochs, best_epoch = snap.batches, snap.epochs, job.best_epoch
        else:
            batches, epochs = source.batches, source.epochs
            best_epoch = next((e["epoch"] for e in epochs if e.get("best")), None)
        name = source.name
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    csv_path = out / "history.csv"
    csv_path.write_text(history_csv(batches, epochs), encoding="utf-8")
    paths.append(csv_path)
    fig = history_figure(batches, epochs, title=name, best_epoch=best_epoch)
    html_path = out / "history.html"
    fig.write_html(html_path, include_plotlyjs=True, full_html=True)
    paths.append(html_path)
    try:
        import kaleido  # noqa: F401 - optional (it needs a Chrome); not in requirements
    except ImportError:
        pass
    else:
        png_path = out / "history.png"
        try:
            fig.write_image(png_path, width=1100, height=420, scale=2)
            paths.append(png_path)
        except Exception as exc:  # kaleido without a browser it can drive, …
            logging.getLogger(__name__).warning("history.png not written: %s", exc)
    if job is not None and job.has_model and job.status in ("done", "stopped"):
        model = job.model_bytes()
        model_path = out / "model.keras"
        model_path.write_bytes(model)
        paths.append(model_path)
        if job.restored_best:
            best_path = out / "best.keras"
            best_path.write_bytes(model)
            paths.append(best_path)
    return paths
