"""How to train, as data: the recipes (optimizer, schedule, regularisation, augmentation, budget) and one run's settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from explorer.config import ConfigError

# CIFAR-10's classes (`explorer.data.NUM_CLASSES`, not imported: this module stays free of numpy): a subset
# needs at least two images of each.
MIN_SUBSET = 2 * 10


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
        residual_gamma: Initial BN scale (gamma) of the last BN of each residual branch (1 = Keras' default;
            not when starting from ImageNet weights).
        muon_lr: Muon steps for the convolutions whose output goes into a BatchNormalization (all but the first
            convolution in the papers' networks; `explorer.training.loop.MuonSGD`): each step is the momentum of
            the gradient orthogonalised, at this learning rate at the schedule's peak, the kernel kept at a
            fixed norm (0 = plain SGD for every weight; not when starting from ImageNet weights).
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
    residual_gamma: float = 1.0
    muon_lr: float = 0.0
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
            "Time-budgeted one-cycle SGD (Nesterov, batch 64, peak LR 0.15, warm-up 25 %, linear decay to zero "
            "when the budget ends), with Muon steps for the convolutions into a BatchNorm (the momentum "
            "orthogonalised, peak LR 0.02, each kernel at a fixed norm), label smoothing 0.2, random flips, L2 5e-4, "
            "the first convolution started from "
            "whitening directions of the training images' patches, the last BN of each residual branch started at "
            "scale 0.5, BN momentum 0.9; 5 % held out for validation; mixed precision where the hardware has it. "
            "A budget in seconds is the whole wait to the result: exact BN statistics and test-time views (the "
            "image, its mirror, both moved a pixel) only when they cost little of it; budgets in epochs or steps "
            "use both."
        ),
        batch_size=64, peak_lr=0.15, nesterov=True, l2=5e-4, schedule="onecycle", warmup=0.25,
        label_smoothing=0.2, flip=True, crop=0, val_split=0.05, precision="auto", tta=True, bn_momentum=0.9,
        recalibrate_bn=16, whiten_stem=True, residual_gamma=0.5, muon_lr=0.02, seconds=90.0,
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
        epochs: Budget in epochs (give one of `epochs`, `seconds`, `steps`, or none for the recipe's default).
        seconds: Budget in wall-clock seconds of training (the LR schedule follows the clock).
        steps: Budget in training steps (batches): a fixed amount of work, whatever the machine's speed.
        subset: Train on this many images (class-balanced, before the validation split).
        batch_size: Global batch size.
        flip: Random horizontal flips.
        crop: Random translation in pixels (0 = off).
        val_split: Fraction held out for validation (0 = none).
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        tta: Test-time augmentation at evaluation (`TTA_VIEWS`).
        muon: Muon steps for the convolutions into a BatchNorm (`Recipe.muon_lr`; None = the recipe's choice,
            False = plain SGD for every weight, as in the papers).
        evaluate: Evaluate on the test set at the end.
        seed: Seed of the subset, split, shuffling and initial weights.
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
    steps: int | None = None
    subset: int | None = None
    batch_size: int | None = None
    flip: bool | None = None
    crop: int | None = None
    val_split: float | None = None
    precision: str | None = None
    tta: bool | None = None
    muon: bool | None = None
    evaluate: bool = True
    seed: int = 0
    early_stopping: int | None = None
    reduce_lr_on_plateau: int | None = None
    checkpoint_best: bool = False
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError("recipe", f"unknown recipe {self.recipe!r}", f"choose one of: {', '.join(RECIPES)}")
        given = [name for name in ("epochs", "seconds", "steps") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ConfigError(given[0], f"give one budget, not {' and '.join(given)}",
                              f"keep one of {', '.join('--' + g for g in given)}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError("steps", f"{self.steps!r} is not a positive whole number", "give 1 or more steps")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1):
            raise ConfigError("epochs", f"{self.epochs!r} is not a positive whole number", "give 1 or more epochs")
        if self.seconds is not None and not (isinstance(self.seconds, int | float) and math.isfinite(self.seconds)
                                             and self.seconds > 0):
            raise ConfigError("seconds", f"{self.seconds!r} is not a positive number of seconds", "give e.g. 90")
        if self.subset is not None and self.subset < MIN_SUBSET:
            raise ConfigError("subset", f"a subset of {self.subset} images is too small", f"give at least {MIN_SUBSET}")
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
        if self.muon and not RECIPES[self.recipe].muon_lr:
            raise ConfigError("muon", f"the {self.recipe} recipe trains every weight with plain SGD (no Muon steps)",
                              "choose the short recipe (--recipe short) for Muon steps")
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
        if epochs is None and seconds is None and self.steps is None:
            epochs, seconds = r.epochs, r.seconds
        return replace(
            self, epochs=epochs, seconds=seconds,
            batch_size=self.batch_size or r.batch_size,
            flip=r.flip if self.flip is None else self.flip,
            crop=r.crop if self.crop is None else self.crop,
            val_split=r.val_split if self.val_split is None else self.val_split,
            precision=self.precision or r.precision,
            tta=r.tta if self.tta is None else self.tta,
            muon=r.muon_lr > 0 if self.muon is None else self.muon,
        )

    def budget_text(self) -> str:
        """E.g. '90 s', '3 epochs' or '480 steps'."""
        s = self.resolved()
        if s.steps is not None:
            return f"{s.steps} step{'s' if s.steps != 1 else ''}"
        return f"{s.seconds:g} s" if s.seconds is not None else f"{s.epochs} epoch{'s' if s.epochs != 1 else ''}"
