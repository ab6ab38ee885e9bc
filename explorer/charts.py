"""Plotly figures of training: live loss/accuracy curves, run comparison overlays, confusion matrix, per-class accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.data import CLASSES

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
METRICS = {
    "val_accuracy": "validation accuracy",
    "accuracy": "training accuracy",
    "val_loss": "validation loss",
    "loss": "training loss",
}
X_AXES = {"epoch": "epoch", "seconds": "seconds of training", "images": "images seen"}


def smooth(values: Sequence[float | None], *, weight: float = 0.6) -> list[float | None]:
    """Exponential moving average (TensorBoard style, bias-corrected); None entries stay None."""
    out: list[float | None] = []
    avg, norm = 0.0, 0.0
    for v in values:
        if v is None:
            out.append(None)
            continue
        avg = weight * avg + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(avg / norm)
    return out


def _col(records: Sequence[Mapping[str, Any]], key: str) -> list:
    return [r.get(key) for r in records]


def live_curves(batches: Sequence[Mapping[str, Any]], epochs: Sequence[Mapping[str, Any]], *,
                title: str | None = None, smoothing: float = 0.6) -> go.Figure:
    """Loss and accuracy against epochs: smoothed per-batch training curve, per-epoch train and validation points.

    Args:
        batches: Per-batch records (keys epoch, loss, accuracy).
        epochs: Per-epoch records (keys epoch, fraction, loss, accuracy, val_loss, val_accuracy).
        title: Figure title.
        smoothing: EMA weight of the per-batch curve (0 = raw).

    Returns:
        A figure with two subplots (loss, accuracy); trace names say what each line is.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    x_batches = _col(batches, "epoch")
    # An epoch's point sits where the epoch ended (a partial last epoch ends early).
    x_epochs = [e["epoch"] - 1 + e.get("fraction", 1.0) for e in epochs]
    for col, metric in ((1, "loss"), (2, "accuracy")):
        legend = col == 1
        fig.add_trace(go.Scatter(
            x=x_batches, y=smooth(_col(batches, metric), weight=smoothing), mode="lines", name="train (batches, smoothed)",
            line={"color": TRAIN_COLOR, "width": 1.5}, opacity=0.6, legendgroup="train_b", showlegend=legend,
            hovertemplate=f"epoch %{{x:.2f}}<br>{metric} %{{y:.3f}}<extra>train</extra>",
        ), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=x_epochs, y=_col(epochs, metric), mode="lines+markers", name="train (epoch)",
            line={"color": TRAIN_COLOR, "width": 2.5}, marker={"size": 8}, legendgroup="train_e", showlegend=legend,
            hovertemplate=f"epoch %{{x:.2f}}<br>{metric} %{{y:.3f}}<extra>train (epoch)</extra>",
        ), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=x_epochs, y=_col(epochs, f"val_{metric}"), mode="lines+markers", name="validation (epoch)",
            line={"color": VAL_COLOR, "width": 2.5}, marker={"size": 8, "symbol": "diamond"}, legendgroup="val",
            showlegend=legend, hovertemplate=f"epoch %{{x:.2f}}<br>{metric} %{{y:.3f}}<extra>validation</extra>",
        ), row=1, col=col)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_layout(title=title, height=360, margin={"l": 40, "r": 20, "t": 60, "b": 40},
                      legend={"orientation": "h", "y": -0.2}, uirevision="live")
    return fig


def comparison(runs: Sequence[Any], *, metric: str = "val_accuracy", x: str = "epoch",
               smoothing: float = 0.6) -> go.Figure:
    """Overlay one metric of several finished runs (e.g. plain-20/56 vs resnet-20/56).

    Args:
        runs: Objects with `name`, `batches` and `epochs` (e.g. `training.RunRecord`).
        metric: "val_accuracy", "accuracy", "val_loss" or "loss". Training metrics use the
            smoothed per-batch curve; validation metrics the per-epoch points.
        x: "epoch", "seconds" or "images".
        smoothing: EMA weight for per-batch curves.

    Returns:
        A figure with one trace per run, named after the run.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}")
    fig = go.Figure()
    for run in runs:
        if metric.startswith("val_"):
            records = [e for e in run.epochs if e.get(metric) is not None]
            if x == "epoch":
                xs = [e["epoch"] - 1 + e.get("fraction", 1.0) for e in records]
            elif x == "images":
                batch = getattr(getattr(run, "settings", None), "batch_size", None) or 1
                xs = [e.get("step", 0) * batch for e in records]
            else:
                xs = _col(records, "seconds")
            fig.add_trace(go.Scatter(x=xs, y=_col(records, metric), mode="lines+markers", name=run.name))
        else:
            fig.add_trace(go.Scatter(x=_col(run.batches, x), y=smooth(_col(run.batches, metric), weight=smoothing),
                                     mode="lines", name=run.name))
    fig.update_layout(
        title=f"{METRICS[metric]} by {X_AXES[x]}", xaxis_title=X_AXES[x], yaxis_title=METRICS[metric], height=420,
        margin={"l": 40, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2},
    )
    if "accuracy" in metric:
        fig.update_yaxes(tickformat=".0%")
    return fig


def confusion_matrix(confusion: np.ndarray, *, classes: Sequence[str] = CLASSES, normalize: bool = True) -> go.Figure:
    """Heatmap of a confusion matrix (rows = true class, columns = predicted class).

    Args:
        confusion: (C, C) counts.
        classes: Class names.
        normalize: Show each row as fractions of its true class (hover shows counts too).
    """
    counts = np.asarray(confusion, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    values = counts / np.maximum(totals, 1) if normalize else counts
    text = [[f"{v:.0%}" if normalize else str(int(v)) for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=list(classes), y=list(classes), colorscale="Blues", text=text, texttemplate="%{text}",
        customdata=counts, hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} images<extra></extra>",
        zmin=0, zmax=1 if normalize else None, showscale=False,
    ))
    fig.update_layout(title="confusion matrix (rows: true class)", xaxis_title="predicted", yaxis_title="true",
                      yaxis_autorange="reversed", height=460, margin={"l": 40, "r": 20, "t": 60, "b": 40})
    return fig


def per_class_accuracy(accuracies: Sequence[float], *, classes: Sequence[str] = CLASSES) -> go.Figure:
    """Bar chart of the test accuracy of each class."""
    fig = go.Figure(go.Bar(x=list(classes), y=list(accuracies), text=[f"{a:.0%}" for a in accuracies],
                           textposition="outside", marker_color=TRAIN_COLOR))
    fig.update_layout(title="test accuracy per class", yaxis={"range": [0, 1.1], "tickformat": ".0%"}, height=320,
                      margin={"l": 40, "r": 20, "t": 60, "b": 40})
    return fig


def top_k_bars(top: Sequence[tuple[str, float]], *, title: str | None = None, height: int | None = None) -> go.Figure:
    """Horizontal bars of an image's top-k classes (most probable on top), probabilities as percentages.

    Args:
        top: (class name, probability) pairs, most probable first (as `explorer.inference.top_k` returns).
        title: Figure title (e.g. the image's file name).
        height: Figure height in pixels (default: grows with k).
    """
    names = [name for name, _ in top][::-1]
    probs = [float(p) for _, p in top][::-1]
    colors = ["#c9d6e8"] * len(probs)
    if colors:
        colors[-1] = TRAIN_COLOR
    fig = go.Figure(go.Bar(
        x=probs, y=names, orientation="h", marker_color=colors, text=[f"{p:.1%}" for p in probs],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.update_layout(
        title=title, height=height or 70 + 34 * max(len(probs), 1), showlegend=False,
        xaxis={"range": [0, 1.15], "tickformat": ".0%", "title": "probability"},
        yaxis={"automargin": True}, margin={"l": 10, "r": 20, "t": 40 if title else 10, "b": 40},
    )
    return fig
