"""One preparation of a training run, shared by the CLI and the Train tab: fit the network to the data, check it, estimate its memory.

Reading the data stays with the caller (the CLI's flags, the tab's path policy and caches); what follows the
reading is here, once: does the network fit the data (input and classes), adapted when asked; does it fit
together; can the ImageNet weights asked for be used; how much memory will the training take — by the same
function the job checks its memory with when it gets a slot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from explorer import guards
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ResNetConfig
from explorer.data import BATCH_RECORDS, IMAGE_SHAPE, NUM_CLASSES, PIXELS, RECORD_BYTES, TRAIN_BATCHES
from explorer.training.recipes import TrainSettings

CIFAR_INPUT = IMAGE_SHAPE  # (32, 32, 3)


# --------------------------------------------------------------------------- does the network fit the data
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
        data: `Cifar10` or None (CIFAR-10 not read yet; the message is `cifar_mismatch`'s) or
            `explorer.imagefolder.ImageFolders`.
    """
    if data is None or not data.holds_validation_images:
        return cifar_mismatch(config)
    shape, n = tuple(data.image_shape), data.num_classes
    problems = _fit_problems(config, shape, n)
    if problems is None:
        return None
    return (f"These image folders need a {'×'.join(map(str, shape))} input and {n} classes (one per folder), "
            f"but {problems}. Set the input to {'×'.join(map(str, shape))} and the classes to {n}, "
            "or adapt it.")


def adapt_for_data(config: ResNetConfig, data: Any) -> ResNetConfig:
    """The same network with the data's input shape (H, W, C) and number of classes (CIFAR-10's for None)."""
    if data is None:
        return adapt_for_cifar(config)
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


# --------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class DataSizes:
    """What the memory estimate reads of a data set.

    Attributes:
        n_train: Training images (before a subset and the validation split).
        image_bytes: Bytes of one stored image.
        nbytes: Bytes of all its arrays (images and labels; a training process holds a copy).
    """

    n_train: int
    image_bytes: int
    nbytes: int

    @classmethod
    def of(cls, data: Any) -> DataSizes:
        """The sizes of a data set in memory (CIFAR-10's when `data` is None: not read yet)."""
        if data is None:
            return CIFAR10_SIZES
        arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
        return cls(n_train=data.n_train, image_bytes=int(data.x_train[0].nbytes), nbytes=sum(a.nbytes for a in arrays))


# CIFAR-10 in memory: 50,000 training and 10,000 test images, uint8, one uint8 label each.
CIFAR10_SIZES = DataSizes(n_train=TRAIN_BATCHES * BATCH_RECORDS, image_bytes=PIXELS,
                          nbytes=(TRAIN_BATCHES + 1) * BATCH_RECORDS * RECORD_BYTES)


def memory_estimate(graph: AnnotatedGraph, settings: TrainSettings, sizes: DataSizes, *, worker: str,
                    check: bool = False) -> int:
    """The estimated memory of one training in bytes (`explorer.guards`), the worker's own copy of the data included.

    Args:
        graph: The annotated network to train.
        settings: Its settings (batch size, subset and flips count).
        sizes: The data set's sizes.
        worker: "thread" or "process" (a process holds TensorFlow's runtime and a copy of the data).
        check: Refuse, with a ConfigError, a training that would not fit in the memory free now.
    """
    s = settings.resolved()
    images = sizes.n_train if s.subset is None else min(s.subset, sizes.n_train)
    estimate = guards.check_training_memory if check else guards.estimate_training_bytes
    return estimate(graph, batch_size=s.batch_size, images=images, flip=bool(s.flip), image_bytes=sizes.image_bytes,
                    extra=guards.worker_bytes(worker, sizes.nbytes))


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class RunPlan:
    """A training run prepared: what to train on what, and what to tell the user first.

    Attributes:
        config: The network to train (adapted to the data when that was asked and needed).
        graph: Its annotated graph (`graph.errors`: it does not fit together and cannot be trained).
        data: The data set (None: CIFAR-10, not read yet).
        settings: The resolved settings.
        mismatch: Why the network as configured does not fit the data (None when it fits), in words.
        adapted: `config` was adapted to the data.
        memory_estimate: The training's estimated memory in bytes (None when the network cannot be trained).
        memory_free: The memory free on this machine now, in bytes (None when unknown).
        warnings: Sentences about the data to show (e.g. files that were not images).
        notices: Sentences about what was changed to fit the data (e.g. the batch shrunk to the training images).
    """

    config: ResNetConfig
    graph: AnnotatedGraph
    data: Any
    settings: TrainSettings
    mismatch: str | None
    adapted: bool
    memory_estimate: int | None
    memory_free: int | None
    warnings: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """Whether the network can train on the data: it fits them (or was adapted) and fits together."""
        return (self.mismatch is None or self.adapted) and not self.graph.errors

    @property
    def memory_refused(self) -> bool:
        """Whether a job would refuse the training now for want of memory (`explorer.guards.FREE_FRACTION`)."""
        return (self.memory_estimate is not None and self.memory_free is not None
                and self.memory_estimate > guards.FREE_FRACTION * self.memory_free)


def prepare_run(config: ResNetConfig, data: Any, settings: TrainSettings | None = None, *, adapt: bool = False,
                worker: str = "thread") -> RunPlan:
    """Prepare one training of `config` on `data`: fit (or adapt), check, estimate the memory.

    Args:
        config: The network as configured.
        data: The data set read (`explorer.data.Cifar10`, `explorer.imagefolder.ImageFolders`), or None for
            CIFAR-10 not read yet (its sizes are known).
        settings: Recipe, budget and knobs (default: the default recipe's).
        adapt: Adapt the network to the data (input and classes) when it does not fit them.
        worker: Where the training will run ("thread" or "process"), for the memory estimate.

    Raises:
        ConfigError: The ImageNet weights the settings name cannot be used (`check_weights`; only checked once the
            network can train on the data).
    """
    settings, batch_notice = fit_batch(settings or TrainSettings(), data)
    mismatch = data_mismatch(config, data)
    adapted = bool(mismatch) and adapt
    if adapted:
        config = adapt_for_data(config, data)
    graph = build(config)
    trainable = (mismatch is None or adapted) and not graph.errors
    if trainable:
        check_weights(config, settings)
    skipped = data is not None and data.holds_validation_images and data.skipped
    return RunPlan(
        config=config, graph=graph, data=data, settings=settings, mismatch=mismatch, adapted=adapted,
        memory_estimate=memory_estimate(graph, settings, DataSizes.of(data), worker=worker) if trainable else None,
        memory_free=guards.available_bytes(), warnings=(data.skipped_text(),) if skipped else (),
        notices=(batch_notice,) if batch_notice else (),
    )


# --------------------------------------------------------------------------- a batch that fits the data
def training_images(settings: TrainSettings, data: Any) -> int:
    """How many images one epoch trains on: the data's training images after the subset and the validation split.

    Args:
        settings: Resolved settings (subset, val_split, seed).
        data: The data set read, or None for CIFAR-10 not read yet (its 50,000 training images).
    """
    from explorer.data import split_indices

    if data is None:
        n = min(settings.subset or TRAIN_BATCHES * BATCH_RECORDS, TRAIN_BATCHES * BATCH_RECORDS)
        return n - int(round(n * settings.val_split))
    val_split = 0.0 if data.holds_validation_images else settings.val_split
    train, _ = split_indices(data.y_train, subset=settings.subset, val_split=val_split, seed=settings.seed,
                             num_classes=data.num_classes)
    return len(train)


def fit_batch(settings: TrainSettings, data: Any) -> tuple[TrainSettings, str | None]:
    """The settings with the batch shrunk to the training images when there are fewer than one batch, and a notice
    saying so (None when the batch fits). A data set with no training image at all is left to the data's error.

    Args:
        settings: The settings (resolved here).
        data: The data set read, or None for CIFAR-10 not read yet.
    """
    settings = settings.resolved()
    n = training_images(settings, data)
    if not 0 < n < settings.batch_size:
        return settings, None
    return replace(settings, batch_size=n), (
        f"only {n:,} training images after the subset and validation split, fewer than one batch of "
        f"{settings.batch_size}: the batch shrinks to {n} (one step per epoch)")
