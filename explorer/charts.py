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
METRICS = {"accuracy": "accuracy", "loss": "loss"}
X_AXES = {"images": "images seen", "steps": "training steps", "seconds": "seconds of training", "epoch": "epochs"}
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


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
        # (an epoch trace only once it has a point: a run shorter than an epoch has no legend entry without a mark)
        if any(v is not None for v in _col(epochs, metric)):
            fig.add_trace(go.Scatter(
                x=x_epochs, y=_col(epochs, metric), mode="lines+markers", name="train (epoch)",
                line={"color": TRAIN_COLOR, "width": 2.5}, marker={"size": 8}, legendgroup="train_e", showlegend=legend,
                hovertemplate=f"epoch %{{x:.2f}}<br>{metric} %{{y:.3f}}<extra>train (epoch)</extra>",
            ), row=1, col=col)
        if any(v is not None for v in _col(epochs, f"val_{metric}")):
            fig.add_trace(go.Scatter(
                x=x_epochs, y=_col(epochs, f"val_{metric}"), mode="lines+markers", name="validation (epoch)",
                line={"color": VAL_COLOR, "width": 2.5}, marker={"size": 8, "symbol": "diamond"}, legendgroup="val",
                showlegend=legend, hovertemplate=f"epoch %{{x:.2f}}<br>{metric} %{{y:.3f}}<extra>validation</extra>",
            ), row=1, col=col)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    # (the legend below the axis titles, not over them)
    fig.update_layout(title=title, height=380, margin={"l": 40, "r": 20, "t": 60, "b": 40},
                      legend={"orientation": "h", "y": -0.28, "yanchor": "top"}, uirevision="live")
    return fig


def _x_of(record: Mapping[str, Any], x: str, batch_size: int) -> float | None:
    """Where a batch or epoch record sits on the comparison's x axis."""
    if x == "images":
        return record["images"] if record.get("images") is not None else (record.get("step") or 0) * batch_size
    if x == "steps":
        return record.get("step")
    if x == "seconds":
        return record.get("seconds")
    if "fraction" in record:  # an epoch record: where the epoch ended (a partial last epoch ends early)
        return record["epoch"] - 1 + record.get("fraction", 1.0)
    return record.get("epoch")


def comparison(runs: Sequence[Any], *, metric: str = "accuracy", x: str = "images", smoothing: float = 0.6) -> go.Figure:
    """Overlay the training, validation and test points of several finished runs (e.g. plain-20/56 vs resnet-20/56).

    Each run has one colour: a line for its training metric (the smoothed per-batch curve, so a run shorter than one
    epoch is a curve too), diamonds for its per-epoch validation points and a star for its test result, placed where
    the training ended.

    Args:
        runs: Objects with `name`, `batches`, `epochs`, `settings.batch_size`, `test_accuracy`, `test_loss` and
            `train_seconds` (e.g. `training.RunRecord`).
        metric: "accuracy" or "loss".
        x: "images" (images seen), "steps", "seconds" (of training) or "epoch".
        smoothing: EMA weight for the per-batch curves.

    Returns:
        A figure with the traces "<run>" (training), "<run> · validation" and "<run> · test"; the y axis spans the
        points drawn (accuracy within 0–100 %), not a default range around a single point.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}")
    fig = go.Figure()
    ys: list[float] = []
    hover = "%{x:,.4g} " + X_AXES[x] + "<br>" + metric + " %{y:" + (".1%" if metric == "accuracy" else ".3f") + "}"
    for i, run in enumerate(runs):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        batch = getattr(getattr(run, "settings", None), "batch_size", None) or 1
        train = [b for b in run.batches if b.get(metric) is not None]
        train_y = smooth(_col(train, metric), weight=smoothing)
        fig.add_trace(go.Scatter(
            x=[_x_of(b, x, batch) for b in train], y=train_y, mode="lines+markers" if len(train) == 1 else "lines",
            name=run.name, legendgroup=run.name, line={"color": color, "width": 2},
            hovertemplate=hover + f"<extra>{run.name} · training (smoothed)</extra>"))
        val = [e for e in run.epochs if e.get(f"val_{metric}") is not None]
        fig.add_trace(go.Scatter(
            x=[_x_of(e, x, batch) for e in val], y=_col(val, f"val_{metric}"), mode="lines+markers",
            name=f"{run.name} · validation", legendgroup=run.name, showlegend=False,
            line={"color": color, "width": 1.5, "dash": "dot"}, marker={"symbol": "diamond", "size": 9, "color": color},
            hovertemplate=hover + f"<extra>{run.name} · validation</extra>"))
        test = getattr(run, f"test_{metric}", None)
        end = run.batches[-1] if run.batches else (run.epochs[-1] if run.epochs else None)
        end_x = None if end is None else _x_of(end, x, batch)
        if x == "seconds" and getattr(run, "train_seconds", None):
            end_x = run.train_seconds
        shown = test is not None and end_x is not None
        fig.add_trace(go.Scatter(
            x=[end_x] if shown else [], y=[test] if shown else [], mode="markers", name=f"{run.name} · test",
            legendgroup=run.name, showlegend=False,
            marker={"symbol": "star", "size": 15, "color": color, "line": {"color": "white", "width": 1}},
            hovertemplate=hover + f"<extra>{run.name} · test</extra>"))
        ys += [v for v in train_y if v is not None] + [v for v in _col(val, f"val_{metric}") if v is not None]
        ys += [test] if shown else []
    fig.update_layout(
        title=f"{METRICS[metric]} by {X_AXES[x]} — line: training (smoothed) · ◆ validation · ★ test",
        xaxis_title=X_AXES[x], yaxis_title=METRICS[metric], height=420,
        margin={"l": 50, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(range=_y_range(ys, metric=metric))
    if metric == "accuracy":
        fig.update_yaxes(tickformat=".0%")
    return fig


def _y_range(values: Sequence[float], *, metric: str) -> list[float]:
    """A y range around the points drawn, padded by a tenth of their spread (at least 5 points of accuracy, or 5 % of
    the largest loss); accuracy stays within 0–1 and loss above 0."""
    if not values:
        return [0.0, 1.0] if metric == "accuracy" else [0.0, 2.5]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.1, 0.05 if metric == "accuracy" else 0.05 * max(abs(hi), 1e-3))
    if metric == "accuracy":
        return [max(0.0, lo - pad), min(1.0, hi + pad)]
    return [max(0.0, lo - pad), hi + pad]


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
