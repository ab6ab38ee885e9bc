"""Scoring a trained model on the test set: the result record, test-time augmentation views, and the prediction pass.

`Evaluation` and `evaluate_predictions` are numpy only (a server unpickles evaluations from training processes
without Keras); `tta_view` and `evaluate_model` import Keras when called.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.backend import load_keras
from explorer.data import CLASSES


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
        tta: Whether test-time augmentation was used (more than one view).
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
    views: int = 1

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-image arrays)."""
        return {
            "test_accuracy": self.test_accuracy, "test_loss": self.test_loss, "test_images": self.test_images,
            "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy, strict=True)),
            "confusion": self.confusion.tolist(), "tta": self.tta, "test_views": self.views,
            "test_view_names": list(VIEW_NAMES[:self.views]), "evaluation_seconds": self.seconds,
        }


def evaluate_predictions(probabilities: np.ndarray, labels: np.ndarray, *, tta: bool = False,
                         seconds: float = 0.0, classes: tuple[str, ...] = CLASSES, views: int | None = None) -> Evaluation:
    """Accuracy, loss, per-class accuracy and confusion matrix from predicted probabilities.

    Args:
        probabilities: (N, C) class probabilities.
        labels: (N,) true classes.
        tta: Recorded in the result.
        seconds: Recorded in the result.
        views: Recorded in the result (default: all of `TTA_VIEWS` with `tta`, else 1).
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
        tta=tta, seconds=seconds, classes=tuple(classes), views=views or (len(TTA_VIEWS) if tta else 1),
    )



# Test-time augmentation: (mirrored?, rows, columns) — each view is the test image, mirrored or not, moved by
# this many pixels (its border reflected). The image, its mirror, the image shifted a pixel diagonally and its
# mirror shifted the other way: on 14 ResNet-20s trained for 480 steps here, +0.22 points over the image and its
# mirror, +1.0 over the image alone (docs/training.md).
TTA_VIEWS: tuple[tuple[bool, int, int], ...] = ((False, 0, 0), (True, 0, 0), (False, -1, -1), (True, 1, 1))
VIEW_NAMES = ("image", "mirror", "moved a pixel", "mirror moved a pixel")


def tta_view(image: Any, mirrored: bool, dy: int, dx: int) -> Any:
    """One test-time view of a (symbolic) NHWC batch: mirrored or not, then moved by (dy, dx) ≤ 1 pixel."""
    keras = load_keras()
    view = keras.ops.flip(image, axis=2) if mirrored else image
    if dy or dx:
        view = keras.ops.pad(view, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        view = keras.layers.Cropping2D(((1 + dy, 1 - dy), (1 + dx, 1 - dx)))(view)
    return view


def evaluate_model(model: Any, test_ds: Any, labels: np.ndarray, *, tta: bool = False, views: int | None = None,
                   should_stop: Callable[[], bool] | None = None, classes: tuple[str, ...] = CLASSES,
                   progress: Callable[[float], None] | None = None) -> Evaluation | None:
    """Predict the test set (optionally averaged over the first `views` of `TTA_VIEWS`) and score it.

    Each batch goes through the network once per view (the image, its mirror, both moved by a pixel), in one
    prediction pass (one traced function). `views` defaults to all four with `tta`, else 1. `progress` is
    called with the fraction done after each batch.

    Returns:
        The evaluation, or None when `should_stop` turned true in the middle.
    """
    keras = load_keras()
    from explorer.training.loop import PredictionProgress

    views = max(1, min(len(TTA_VIEWS), views if views is not None else len(TTA_VIEWS) if tta else 1))
    started = time.perf_counter()
    should_stop = should_stop or (lambda: False)
    watcher = PredictionProgress(should_stop, progress, batches=int(test_ds.cardinality()))
    predictor = model
    if views > 1:
        image = keras.Input(model.input_shape[1:])
        predictor = keras.Model(image, keras.layers.Average()([model(tta_view(image, *view))
                                                              for view in TTA_VIEWS[:views]]))
    out = predictor.predict(test_ds, verbose=0, callbacks=[watcher])
    if should_stop():
        return None
    probs = np.asarray(out, dtype=np.float32)
    return evaluate_predictions(probs, labels, tta=views > 1, seconds=time.perf_counter() - started, classes=classes,
                                views=views)
