"""Plotly figures of training: live curves, run comparison, confusion matrix, per-class accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from explorer import charts
from explorer.config import ResNetConfig
from explorer.data import CLASSES
from explorer.training import RunRecord, TrainSettings

BATCHES = [
    {"step": s, "epoch": s / 10, "images": s * 32, "seconds": s * 0.5, "loss": 2.3 - 0.1 * s, "accuracy": 0.1 + 0.03 * s,
     "lr": 0.1, "images_per_second": 600.0}
    for s in range(1, 21)
]
EPOCHS = [
    {"epoch": 1, "fraction": 1.0, "step": 10, "seconds": 5.0, "loss": 1.8, "accuracy": 0.3, "val_loss": 1.9, "val_accuracy": 0.28},
    {"epoch": 2, "fraction": 0.5, "step": 15, "seconds": 7.5, "loss": 1.2, "accuracy": 0.5, "val_loss": None, "val_accuracy": None},
]


def test_smooth_is_bias_corrected_and_keeps_gaps():
    assert charts.smooth([1.0, None, 1.0]) == [1.0, None, 1.0]
    out = charts.smooth([0.0, 10.0], weight=0.5)
    assert out[0] == 0.0 and 0 < out[1] < 10


def test_live_curves_traces():
    fig = charts.live_curves(BATCHES, EPOCHS, title="run")
    names = [t.name for t in fig.data]
    assert names == ["train (batches, smoothed)", "train (epoch)", "validation (epoch)"] * 2
    loss_batches, loss_epochs, val_loss = fig.data[:3]
    assert len(loss_batches.x) == 20 and loss_batches.xaxis == "x"
    assert list(loss_epochs.x) == [1.0, 1.5]  # a partial last epoch sits where it ended
    assert list(val_loss.y) == [1.9, None]
    assert fig.data[3].xaxis == "x2" and fig.layout.yaxis2.range == (0, 1)
    assert fig.layout.title.text == "run"


def test_live_curves_list_only_the_traces_that_have_a_point():
    fig = charts.live_curves(BATCHES, [])  # a run shorter than an epoch so far
    assert [t.name for t in fig.data] == ["train (batches, smoothed)"] * 2
    no_val = [{**e, "val_loss": None, "val_accuracy": None} for e in EPOCHS]
    assert [t.name for t in charts.live_curves(BATCHES, no_val).data] == ["train (batches, smoothed)", "train (epoch)"] * 2


def test_live_curves_empty():
    fig = charts.live_curves([], [])
    assert len(fig.data) == 2 and all(len(t.x) == 0 for t in fig.data)  # the training curve of each panel, empty


def runs() -> list[RunRecord]:
    config = ResNetConfig(depth=20)
    return [
        RunRecord(name="resnet-20", config=config, settings=TrainSettings(epochs=2).resolved(), status="done",
                  batches=BATCHES, epochs=EPOCHS, test_accuracy=0.5),
        RunRecord(name="plain-20", config=config.replace(shortcut="none"), settings=TrainSettings(epochs=2).resolved(),
                  status="done", batches=BATCHES[:10], epochs=EPOCHS[:1], test_accuracy=0.4),
    ]


@pytest.mark.parametrize("x", list(charts.X_AXES))
def test_comparison_draws_training_validation_and_test_of_each_run(x):
    fig = charts.comparison(runs(), metric="accuracy", x=x)
    assert [t.name for t in fig.data] == ["resnet-20", "resnet-20 · validation", "resnet-20 · test",
                                         "plain-20", "plain-20 · validation", "plain-20 · test"]
    train, val, test = fig.data[:3]
    assert len(train.x) == 20 and len(fig.data[3].x) == 10  # every batch record: a run within one epoch is a curve
    assert list(val.y) == [0.28]  # epochs without validation are left out
    assert list(test.y) == [0.5]
    assert fig.layout.xaxis.title.text == charts.X_AXES[x]
    assert {t.line.color for t in fig.data[:2]} == {test.marker.color}  # one colour per run
    last, batch = BATCHES[-1], runs()[0].settings.batch_size
    want = {"images": (last["images"], 32, 10 * batch), "steps": (last["step"], 1, 10), "seconds": (last["seconds"], 0.5, 5.0),
            "epoch": (last["epoch"], 0.1, 1.0)}[x]
    assert test.x[0] == pytest.approx(want[0])  # the test result sits where the training ended
    assert train.x[0] == pytest.approx(want[1]) and val.x[0] == pytest.approx(want[2])


def test_comparison_y_axis_spans_the_points_not_a_default_range():
    fig = charts.comparison(runs(), metric="accuracy")
    lo, hi = fig.layout.yaxis.range
    ys = [y for t in fig.data for y in t.y if y is not None]
    assert 0 <= lo < min(ys) and max(ys) < hi <= 1
    single = RunRecord(name="short", config=ResNetConfig(depth=20), settings=TrainSettings(seconds=5).resolved(),
                       status="done", batches=BATCHES[:1], epochs=[], test_accuracy=None)
    fig = charts.comparison([single], metric="accuracy")
    lo, hi = fig.layout.yaxis.range
    assert 0 <= lo and hi <= 1 and hi - lo <= 0.2  # one point: a narrow band around it, never −50 %…100 %
    assert fig.data[0].mode == "lines+markers"  # a lone point is still visible
    fig = charts.comparison(runs(), metric="loss")
    lo, hi = fig.layout.yaxis.range
    losses = [y for t in fig.data for y in t.y if y is not None]
    assert lo >= 0 and lo < min(losses) and max(losses) < hi


def test_comparison_rejects_unknown_metric():
    with pytest.raises(ValueError, match="metric"):
        charts.comparison(runs(), metric="f1")
    with pytest.raises(ValueError, match="x must be"):
        charts.comparison(runs(), x="minutes")


def test_confusion_matrix_heatmap():
    confusion = np.diag(np.full(10, 8)) + 2
    fig = charts.confusion_matrix(confusion)
    heat = fig.data[0]
    assert heat.type == "heatmap" and list(heat.x) == list(CLASSES) and list(heat.y) == list(CLASSES)
    z = np.asarray(heat.z)
    assert z.shape == (10, 10) and np.allclose(z.sum(axis=1), 1.0)
    assert np.asarray(heat.customdata)[0, 0] == 10
    counts = np.asarray(charts.confusion_matrix(confusion, normalize=False).data[0].z)
    assert counts[0, 0] == 10


def test_per_class_accuracy_bar():
    fig = charts.per_class_accuracy([0.5] * 10)
    assert fig.data[0].type == "bar" and list(fig.data[0].x) == list(CLASSES) and fig.data[0].text[0] == "50%"
