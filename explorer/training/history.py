"""A finished run kept for comparison, and a run's metric history as CSV, a Plotly figure, an offline HTML page and files."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from explorer.config import ResNetConfig
from explorer.training.job import TrainJob
from explorer.training.recipes import TrainSettings


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
