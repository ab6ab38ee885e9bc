"""The training loop on the Keras side: precision, the model and optimizer, the callback that drives a job, and `train`.

Imported by a job when it starts training (it imports Keras and TensorFlow at once).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from explorer.backend import load_keras
from explorer.config import ResNetConfig
from explorer.gradflow import seed_weights
from explorer.presets import DEFAULT_PRESET, get_preset
from explorer.training.batchnorm import bn_momentum, fuse_batchnorm, recalibrate_batchnorm, scale_residual_gamma
from explorer.training.evaluation import evaluate_model
from explorer.training.recipes import RECIPES, Recipe
from explorer.whiten import whiten_first_conv

keras = load_keras()
import tensorflow as tf  # noqa: E402 - after load_keras, which sets TensorFlow's environment first

if TYPE_CHECKING:
    from explorer.training.job import TrainJob

RECORD_INTERVAL = 0.5  # seconds between two per-batch history records
PLATEAU_FACTOR = 0.1  # LR on plateau: the LR is multiplied by this ...
PLATEAU_MIN_LR = 1e-4  # ... down to this fraction of the peak LR


# --------------------------------------------------------------------------- precision and model
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
    """The visible GPUs."""
    return tf.config.list_physical_devices("GPU")


def choose_precision(requested: str, recipe: Recipe) -> str:
    """The Keras dtype policy for a run: "float32", "mixed_bfloat16" or "mixed_float16"."""
    if requested != "auto":
        return requested
    devices = gpus()
    if devices:
        details = tf.config.experimental.get_device_details(devices[0])
        major = (details.get("compute_capability") or (0, 0))[0]
        return "mixed_bfloat16" if major >= 8 else "mixed_float16"
    if recipe.precision == "auto" and cpu_has_bf16():
        return "mixed_bfloat16"
    return "float32"


def build_training_model(config: ResNetConfig, *, precision: str = "float32") -> Any:
    """Build exactly the configured network; with a mixed policy, clone its layers in that policy.

    The classifier (the last layer) stays float32 so the softmax and the loss are exact. The global
    Keras dtype policy is not touched (other sessions share the process).
    """
    from explorer.keras_build import build_model

    model = build_model(config)
    if precision == "float32":
        return model
    last = model.layers[-1].name

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        cfg["dtype"] = "float32" if layer.name == last else precision
        return layer.__class__.from_config(cfg)

    return keras.models.clone_model(model, clone_function=clone)



def make_optimizer(recipe: Recipe, *, precision: str = "float32", muon: tuple[str, ...] = ()) -> Any:
    """SGD with the recipe's momentum and coupled L2 on kernels (loss-scaled for float16); the kernels in `muon`
    (variable paths, `muon_kernels`) take Muon steps at the recipe's `muon_lr` (`MuonSGD`)."""
    args = {"learning_rate": recipe.lr_at(0.0), "momentum": recipe.momentum, "nesterov": recipe.nesterov, "l2": recipe.l2}
    if recipe.muon_lr and muon:
        opt = MuonSGD(**args, muon=muon, muon_lr=recipe.muon_lr, base_lr=recipe.peak_lr)
    else:
        opt = L2SGD(**args)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def compile_for_training(model: Any, recipe: Recipe, *, precision: str, muon: bool) -> Any:
    """Compile `model` with the recipe's optimizer (Muon steps for `muon_kernels` when `muon` and the recipe has them),
    its label-smoothed cross-entropy and accuracy; return the optimizer, its slots already made.

    The slots are made now because, created inside the first step, they make tf.function trace that step twice
    (once creating variables, once without): 2.5-4 s more of the budget before the first batch.
    """
    optimizer = make_optimizer(recipe, precision=precision, muon=muon_kernels(model) if muon else ())
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    optimizer.build(model.trainable_variables)
    return optimizer


def muon_kernels(model: Any) -> tuple[str, ...]:
    """The trainable kernels of the convolutions whose output goes only into BatchNormalization, except the network's
    first convolution: the layers whose scale the BN after them cancels (so `MuonSGD` may fix their norm), the stem
    left to plain SGD (it starts from the data's whitening directions)."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    out = []
    for layer in convs[1:]:
        consumers = [node.operation for node in layer._outbound_nodes]
        if layer.trainable and consumers and all(isinstance(c, keras.layers.BatchNormalization) for c in consumers):
            out.append(layer.kernel.path)
    return tuple(out)


@keras.saving.register_keras_serializable(package="explorer")
class L2SGD(keras.optimizers.SGD):
    """SGD with L2 weight decay on kernels, coupled to the gradient (so momentum sees it): `l2 · w` is added to the
    gradient of every kernel, as in He et al."""

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


def newton_schulz(g: Any, steps: int = 5) -> Any:
    """An approximate orthogonalisation U·Vᵀ of the matrix `g` (its singular values pushed towards 1), or of each
    matrix of a (k, rows, columns) stack: the quintic Newton-Schulz iteration of Muon (Jordan et al. 2024)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    ops = keras.ops

    def t(m: Any) -> Any:
        return ops.swapaxes(m, -1, -2)

    tall = g.shape[-2] > g.shape[-1]
    x = t(g) if tall else g
    x = x / (ops.sqrt(ops.sum(x * x, axis=(-2, -1), keepdims=True)) + 1e-7)
    for _ in range(steps):
        xx = x @ t(x)
        x = a * x + (b * xx + c * xx @ xx) @ x
    return t(x) if tall else x


@keras.saving.register_keras_serializable(package="explorer")
class MuonSGD(L2SGD):
    """L2SGD, but the convolution kernels named in `muon` take Muon steps: Nesterov momentum of the raw gradient,
    orthogonalised (`newton_schulz`, the kernel as a fan-in × filters matrix), at `muon_lr` × the scheduled
    learning rate / `base_lr`; each such kernel is first rescaled to a norm of √filters (the BatchNorm after it
    makes its scale irrelevant to the function, so only its direction moves). The kernels of one shape are
    orthogonalised together, as one stack (a few large operations instead of many small ones per step)."""

    def __init__(self, *, muon: tuple = (), muon_lr: float = 0.0, base_lr: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.muon, self.muon_lr, self.base_lr = tuple(muon), muon_lr, base_lr
        self._muon_index: set[int] = set()

    def build(self, variables: Any) -> None:
        if self.built:
            return
        super().build(variables)
        self._muon_index = {self._get_variable_index(v) for v in variables if v.path in self.muon}

    def _backend_update_step(self, grads: Any, trainable_variables: Any, learning_rate: Any) -> None:
        pairs = list(zip(grads, trainable_variables, strict=True))
        muon = [(g, v) for g, v in pairs if self._get_variable_index(v) in self._muon_index]
        if not muon or tf.distribute.has_strategy():  # (across replicas: each variable on its own, `update_step`)
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        rest = [(g, v) for g, v in pairs if self._get_variable_index(v) not in self._muon_index]
        if rest:
            super()._backend_update_step([g for g, _ in rest], [v for _, v in rest], learning_rate)
        lr = self._muon_rate(learning_rate)
        by_shape: dict[tuple, list] = {}
        for g, v in muon:
            by_shape.setdefault(tuple(v.shape), []).append((g, v))
        for shape, items in by_shape.items():
            directions = [self._muon_direction(g, v) for g, v in items]
            updates = newton_schulz(keras.ops.stack([keras.ops.reshape(d, (-1, shape[-1])) for d in directions]))
            for i, (_, v) in enumerate(items):
                self._muon_step(v, updates[i], lr)

    def _muon_direction(self, gradient: Any, variable: Any) -> Any:
        """Update the momentum of `variable` with `gradient`; the (Nesterov) direction to orthogonalise."""
        m = self.momentums[self._get_variable_index(variable)]
        g = keras.ops.cast(gradient, variable.dtype)
        mu = keras.ops.cast(self.momentum, variable.dtype)
        self.assign(m, m * mu + g)
        return g + mu * m if self.nesterov else m

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        index = self._get_variable_index(variable)
        if index not in self._muon_index:
            return super().update_step(gradient, variable, learning_rate)
        direction = keras.ops.reshape(self._muon_direction(gradient, variable), (-1, variable.shape[-1]))
        self._muon_step(variable, newton_schulz(direction), self._muon_rate(learning_rate))

    def _muon_rate(self, learning_rate: Any) -> Any:
        """The Muon learning rate at the schedule's `learning_rate` (`muon_lr` at its peak `base_lr`)."""
        return keras.ops.cast(learning_rate, "float32") * (self.muon_lr / self.base_lr)

    def _muon_step(self, variable: Any, update: Any, lr: Any) -> None:
        """Rescale the kernel to a norm of √filters, then move it by `lr` × the orthogonalised `update` (a matrix)."""
        shape = variable.shape
        w = variable * (float(shape[-1]) ** 0.5 / (keras.ops.sqrt(keras.ops.sum(variable * variable)) + 1e-12))
        self.assign(variable, w - lr * keras.ops.reshape(update, shape))

    def get_config(self) -> dict:
        return {**super().get_config(), "muon": list(self.muon), "muon_lr": self.muon_lr, "base_lr": self.base_lr}


# --------------------------------------------------------------------------- the budget's end
# What follows a training, timed against the training's own speed (so a loaded or a faster machine scales
# alike): images predicted per second per training image per second — one test view in inference (batch 500,
# BN fused), one BN-statistics image (a training-mode forward pass, eager) — and seconds that do not scale.
# Measured on the 2-core machine in docs/training.md ("Where the seconds go").
PREDICT_SPEED = 3.3
BN_SPEED = 0.8
FIXED_AFTER = 1.0  # tracing the prediction step, saving the model and handing it back
MIN_TRAINING = 0.5  # the least share of a seconds budget (after the first batch) that goes to training
BN_SHARE = 0.05  # BN statistics are recomputed when they cost at most this share of the budget
EVAL_SHARE = 0.1  # test-time views beyond the image itself are used while they cost at most this share of the budget


def after_training(images_per_second: float, *, views: int, test_images: int, bn_images: int) -> float:
    """Estimated seconds from the end of the training to the result, at a training speed of `images_per_second`."""
    if images_per_second <= 0:
        return FIXED_AFTER
    predict = views * test_images / (PREDICT_SPEED * images_per_second)
    return FIXED_AFTER + predict + bn_images / (BN_SPEED * images_per_second)


def choose_views(budget: float | None, images_per_second: float, *, n_test: int, tta: bool) -> int:
    """How many test-time views (`TTA_VIEWS`, in order) an evaluation uses.

    Without TTA 1; with a budget in epochs or steps all four; with a budget in seconds the most of 4, 2 whose
    estimated cost stays within EVAL_SHARE of the budget, else 1: at a few hundred steps each extra second of
    training is worth more than the mirror's ~0.8 points once a view costs over a tenth of the budget.
    """
    from explorer.training.evaluation import TTA_VIEWS

    if not tta:
        return 1
    if budget is None or n_test == 0:
        return len(TTA_VIEWS)
    per_view = n_test / (PREDICT_SPEED * max(images_per_second, 1e-6))
    return next((v for v in (len(TTA_VIEWS), 2) if v * per_view <= EVAL_SHARE * budget), 1)


# --------------------------------------------------------------------------- callbacks
class JobCallback(keras.callbacks.Callback):
    """Sets the LR from the budget, records metrics, validates, and stops on request or at the budget."""

    def __init__(self, job: TrainJob, pipes: Any) -> None:
        super().__init__()
        self.job = job
        self.pipes = pipes
        s = job.settings
        # A budget in seconds is wall time from the press to the result: the training ends early enough for what
        # follows it (BN statistics, the test set, the hand-back), estimated from its own speed (`after_training`).
        self.deadline = None if s.seconds is None else job.state.pressed + s.seconds
        self.n_test = pipes.n_test if s.evaluate else 0
        self.bn_wanted = job.recipe.recalibrate_bn * pipes.batch_size if job.recipe.recalibrate_bn else 0
        self.bn_images = self.bn_wanted
        self.views: int | None = None  # test-time views, chosen from the speed (None before it is known)
        self.reserve = 0.0
        self.t_first_wall = 0.0
        self.steps_per_epoch = pipes.steps_per_epoch
        self.total_steps = s.steps if s.steps is not None else None if s.epochs is None else s.epochs * pipes.steps_per_epoch
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
        job.update(monitor=self.monitor)
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
        wall = time.time()
        return min(1.0, (wall - self.t_first_wall) / max(self.training_end() - self.t_first_wall, 1e-6))

    def steady_speed(self, now: float) -> float | None:
        """Training images per second since the first (tracing) batch; None before a few batches."""
        if self.t_first is None or self.step < 4 or now <= self.t_first:
            return None
        return self.images_after_first / (now - self.t_first)

    def update_reserve(self, now: float) -> None:
        """Re-estimate the seconds to leave after the training, with the test-time views and BN statistics that
        the speed measured so far can afford."""
        ips = self.steady_speed(now)
        if ips is None or self.deadline is None:
            return
        budget = self.job.settings.seconds
        self.views = choose_views(budget, ips, n_test=self.n_test, tta=bool(self.job.settings.tta))
        # exact BN statistics gained 0.2-0.3 points after the short recipe's BN momentum of 0.9: worth a
        # twentieth of the budget, not more (docs/training.md)
        self.bn_images = self.bn_wanted if self.bn_wanted / (BN_SPEED * ips) <= BN_SHARE * budget else 0
        self.reserve = after_training(ips, views=self.views, test_images=self.n_test, bn_images=self.bn_images)
        self.job.update(reserved=self.reserve, views=self.views)

    def training_end(self) -> float:
        """When (wall clock) a budget in seconds ends the training: early enough for what follows it, but never
        before MIN_TRAINING of the time from the first batch to the budget's end (a busy machine then overruns the
        budget, and says so, rather than train nothing)."""
        assert self.deadline is not None
        floor = self.t_first_wall + MIN_TRAINING * (self.deadline - self.t_first_wall)
        return max(self.deadline - self.reserve, floor)

    def budget_over(self, now: float) -> bool:
        if self.job.max_seconds is not None and now - self.t_start >= self.job.max_seconds:
            self.job.update(capped=True)
            return True
        if self.total_steps is not None:
            return self.step >= self.total_steps
        now_wall = time.time()
        if now_wall < self.training_end():
            return False
        self.job.update(budget_stop=now_wall - self.job.state.pressed)
        return True

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
            self.t_first, self.t_first_wall = now, time.time()
            job.update(phase="training")
            job.mark("training")
            self.record(now, logs)  # a first point at once (its speed includes tracing: not shown)
        else:
            self.images_after_first += self.batch_size
            self.t_last = now
            if now - self.last_record[3] >= RECORD_INTERVAL:
                self.record(now, logs)
            self.update_reserve(now)
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
        # (a budget in seconds does not validate the partial epoch it ends in: that pass would come out of its
        # seconds; the test set is evaluated right after)
        last_partial = self.deadline is not None and self.model.stop_training and self.batch_in_epoch < self.steps_per_epoch
        if self.pipes.val is not None and not self.job.should_stop() and not last_partial:
            self.job.update(phase="validating")
            self.job.mark("validating")
            val = self.model.evaluate(self.pipes.val, verbose=0, return_dict=True, callbacks=[EvalStopper(self.job)])
            if not self.job.should_stop():
                entry.update(val_loss=_num(val.get("loss")), val_accuracy=_num(val.get("accuracy")))
            self.job.update(phase="training")
            self.job.mark("training")
        improved = False
        if not self.job.should_stop():
            improved = self.watch(entry, now)
        self.job.add_epoch(entry, best=improved)

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
                self.job.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
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
            self.job.update(stop_reason=f"early stopping: {self.monitor} did not improve for {epochs}")
        return False

    def on_train_end(self, logs: Any = None) -> None:
        now = time.perf_counter()
        steady = None
        if self.t_first is not None and self.t_last is not None and self.t_last > self.t_first:
            # batches only: the validation passes and the first (tracing) batch are left out
            steady = self.images_after_first / (self.t_last - self.t_first)
        self.job.update(train_seconds=now - self.t_start, steady_images_per_second=steady)

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
        self.job.add_batch(entry, images_per_second=ips)

    def _update_progress(self, now: float) -> None:
        job = self.job
        progress = self.progress(now)
        elapsed = now - self.t_start
        eta = None
        if self.deadline is not None:
            eta = max(0.0, self.deadline - time.time())  # (to the result: the test set included)
        elif self.t_first is not None and self.total_steps and self.step > 1:
            per_step = (now - self.t_first) / (self.step - 1)
            eta = per_step * (self.total_steps - self.step)
        job.update(progress=progress, elapsed=elapsed, eta=eta, steps=self.step,
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

class PredictionProgress(keras.callbacks.Callback):
    """Ends a prediction pass early when `should_stop()` turns true, and reports the fraction done after each batch.

    Args:
        should_stop: Asked after every batch.
        progress: Called with the fraction done (0..1), or None.
        batches: Batches in the pass (0 or less when unknown: no progress then).
    """

    def __init__(self, should_stop: Callable[[], bool], progress: Callable[[float], None] | None, *, batches: int) -> None:
        super().__init__()
        self.should_stop = should_stop
        self.report = progress
        self.batches = batches

    def on_predict_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.should_stop():
            self.model.stop_predicting = True
        elif self.report is not None and self.batches > 0:
            self.report(min(1.0, (batch + 1) / self.batches))


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None



# --------------------------------------------------------------------------- the loop
def warm_up(images: np.ndarray | None = None, *, preset: str = DEFAULT_PRESET, steps: int = 3) -> None:
    """Train a throw-away `preset` a few steps the way `train` does (batch 64, the short recipe's precision), then
    predict once, so that a job's first batch finds TensorFlow's one-time set-up done (its graph optimiser, the
    oneDNN kernels of these shapes, Keras' training step); a warm training process calls it before its job comes.

    Args:
        images: uint8 (N, 32, 32, 3) images to step on (random ones when None).
    """
    recipe = RECIPES["short"]
    batch = recipe.batch_size
    if images is None or len(images) < batch or images.shape[1:] != (32, 32, 3):
        images = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    x = images[:batch].astype(np.float32) / 255.0
    y = np.eye(10, dtype=np.float32)[np.arange(batch) % 10]
    precision = choose_precision("auto", recipe)
    model = build_training_model(get_preset(preset).config, precision=precision)
    fuse_batchnorm(model)
    optimizer = compile_for_training(model, recipe, precision=precision, muon=True)
    data = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    model.predict(x, batch_size=batch, verbose=0)
    del model, optimizer


def train(job: TrainJob) -> None:
    """Train `job`'s network on its data in this process, reporting into the job as it goes (the job's worker calls it)."""
    from explorer.data import make_datasets

    s, recipe, data = job.settings, job.recipe, job.data
    job.update(phase="preparing the data")
    own_validation = data.holds_validation_images
    pipes = make_datasets(data, batch_size=s.batch_size, subset=s.subset, val_split=0.0 if own_validation else s.val_split,
                          flip=s.flip, crop=s.crop, seed=s.seed)
    if own_validation:  # validate on the folders' own validation images
        pipes.val, pipes.n_val = pipes.test, pipes.n_test
    job.update(n_train=pipes.n_train, n_val=pipes.n_val)
    devices = gpus()
    precision = choose_precision(s.precision, recipe)
    strategy = tf.distribute.MirroredStrategy() if len(devices) > 1 else tf.distribute.get_strategy()
    job.update(precision=precision, device="CPU" if not devices else ("GPU" if len(devices) == 1 else f"{len(devices)} GPUs"),
               phase="building the model")
    job.mark("model")
    if job.should_stop():
        return
    with strategy.scope():
        model = build_training_model(job.config, precision=precision)
        seed_weights(model, s.seed)  # the run's seed decides the initial weights too
        if recipe.residual_gamma != 1.0 and s.weights is None:
            scale_residual_gamma(model, job.config, recipe.residual_gamma)
        if s.weights is not None:
            _load_weights(job, model)
            if job.should_stop():
                return
        elif recipe.whiten_stem:
            job.update(phase="whitening the first layer")
            job.update(whitening=whiten_first_conv(model, data.x_train, tuple(data.mean), tuple(data.std),
                                                   index=pipes.train_index, seed=s.seed))
        fuse_batchnorm(model)  # same function, TensorFlow's fused kernel (a plain Keras model is saved)
        compile_for_training(model, recipe, precision=precision, muon=bool(s.muon) and s.weights is None)
    job.model = model
    if job.should_stop():
        return
    callback = JobCallback(job, pipes)
    job.update(phase="compiling (first batch)")
    job.mark("first batch")
    epochs = (s.epochs if s.epochs is not None else -(-s.steps // pipes.steps_per_epoch) if s.steps is not None
              else 1_000_000)
    with bn_momentum(model, recipe.bn_momentum):
        model.fit(pipes.train, epochs=epochs, steps_per_epoch=pipes.steps_per_epoch, callbacks=[callback], verbose=0,
                  shuffle=False)  # the pipeline shuffles
    if job.should_stop():
        return
    if s.checkpoint_best and job.best_weights is not None:
        # (before the BN recomputation below, which then fits the statistics to these weights)
        job.update(phase="restoring the weights of the best epoch")
        model.set_weights(job.best_weights)
        job.update(restored_best=True)
    if callback.bn_images and len(devices) <= 1:  # (an eager pass across mirrored replicas is not worth the risk)
        job.update(phase="recomputing BatchNorm statistics", eta=None)
        job.mark("bn")
        started = time.perf_counter()
        recalibrate_batchnorm(model, pipes.train, batches=recipe.recalibrate_bn, should_stop=job.should_stop)
        job.update(finalize_seconds=time.perf_counter() - started)
    if job.should_stop() or not s.evaluate:
        return
    views = callback.views
    if views is None:  # (not chosen while training: a budget in epochs or steps, or a very short one in seconds)
        views = choose_views(None, 0.0, n_test=pipes.n_test, tta=bool(s.tta)) if s.seconds is None else 1
    job.update(phase="evaluating on the test set", views=views, eta=None)
    job.mark("evaluating")
    evaluation = evaluate_model(model, pipes.test, data.y_test, views=views, should_stop=job.should_stop,
                                classes=tuple(data.classes),
                                progress=lambda f: job.update(phase=f"evaluating on the test set ({f:.0%})"))
    if evaluation is not None:
        job.update(evaluation=evaluation)
    job.mark("hand-back")


def _load_weights(job: TrainJob, model: Any) -> None:
    """Copy the ImageNet weights into the freshly built model (a WeightsError fails the job, saying where to put the file)."""
    from explorer import pretrained

    job.update(phase="loading ImageNet weights")
    s = job.settings
    report = pretrained.load_imagenet_weights(model, job.config, weights=s.weights_file, download=s.weights == "imagenet")
    job.update(weights_report=report)
