"""Short training of a configured network on CIFAR-10 or image folders: recipes, preparation, the job, its history.

`recipes` (how to train, as data) · `prepare` (one preparation of a run for the CLI and the Train tab) ·
`job` (the handle the UI and the CLI hold) · `state` (what changes while a job runs) · `process` (a training
in a process of its own) · `loop` and `batchnorm` (the Keras side) · `evaluation` · `history`.

TensorFlow is imported when a job starts training, not when this package is imported: the Keras-side names
(`build_training_model`, `make_optimizer`, `fuse_batchnorm`, …) load their module when first asked for.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from explorer.training.evaluation import TTA_VIEWS, Evaluation, evaluate_model, evaluate_predictions, tta_view
from explorer.training.history import RunRecord, history_csv, history_figure, history_html, save_history
from explorer.training.job import (
    ACTIVE,
    DEFAULT_IDLE_TIMEOUT,
    MAX_TRAININGS_ENV,
    SLOTS,
    STATUSES,
    FairSlots,
    JobBusy,
    JobState,
    Snapshot,
    TrainJob,
    max_concurrent,
    release_freed_memory,
    start_job,
)
from explorer.training.prepare import (
    CIFAR_INPUT,
    RunPlan,
    adapt_for_cifar,
    adapt_for_data,
    check_weights,
    cifar_mismatch,
    data_mismatch,
    fit_batch,
    memory_estimate,
    prepare_run,
    training_images,
)
from explorer.training.process import STOP_GRACE, SYNC_INTERVAL, WorkerFailed
from explorer.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, TrainSettings
from explorer.training.state import PARTS, timings_text

# TensorFlow enables its oneDNN kernels by default only on CPUs with AVX-512/AMX; on others (e.g. AMD
# Zen 3 with AVX2) they train ResNet-20 faster too (see benchmarks/bench_training.py). Read once, when
# TensorFlow is imported, so this only helps when training is the first to import it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Keras-side names: their module (which imports Keras at its top) is imported when one is first asked for.
_KERAS_SIDE = {
    "loop": ("L2SGD", "PLATEAU_FACTOR", "PLATEAU_MIN_LR", "RECORD_INTERVAL", "build_training_model", "choose_precision",
             "cpu_has_bf16", "gpus", "make_optimizer"),
    "batchnorm": ("bn_momentum", "fuse_batchnorm", "recalibrate_batchnorm"),
}
_LAZY = {name: module for module, names in _KERAS_SIDE.items() for name in names}

__all__ = [
    "ACTIVE", "CIFAR_INPUT", "DEFAULT_IDLE_TIMEOUT", "DEFAULT_RECIPE", "MAX_TRAININGS_ENV", "RECIPES", "SLOTS",
    "PARTS", "STATUSES", "timings_text", "STOP_GRACE", "SYNC_INTERVAL", "TTA_VIEWS", "Evaluation", "FairSlots", "JobBusy", "JobState", "Recipe",
    "RunPlan", "RunRecord", "Snapshot", "TrainJob", "TrainSettings", "WorkerFailed", "adapt_for_cifar",
    "adapt_for_data", "check_weights", "cifar_mismatch", "data_mismatch", "evaluate_model", "evaluate_predictions", "fit_batch",
    "history_csv", "history_figure", "history_html", "max_concurrent", "memory_estimate", "prepare_run",
    "release_freed_memory", "save_history", "start_job", "training_images", "tta_view", *_LAZY,
]


def __getattr__(name: str) -> Any:
    """A Keras-side name, from its module (imported now, with Keras)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
