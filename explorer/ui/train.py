"""The Train and Compare tabs: train the configured network on CIFAR-10 with live curves, evaluate it, and overlay finished runs.

The job runs in a worker thread (`explorer.training.TrainJob`) kept in `st.session_state`; the
page polls it from a fragment that reruns every second while it is active. Nothing here is
run by the worker: threads never call `st.*` or touch the session state.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import streamlit as st

from explorer import charts
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.data import CLASSES, ENV_VAR, HOW_TO_GET, Cifar10, DataError, find_source, load_cifar10
from explorer.training import (
    RECIPES,
    JobBusy,
    RunRecord,
    TrainJob,
    TrainSettings,
    adapt_for_cifar,
    cifar_mismatch,
    history_csv,
    max_concurrent,
    start_job,
)

# Session-state keys (widgets start with "train_").
JOB = "_train_job"  # the session's TrainJob (one at a time)
RUNS = "_train_runs"  # finished runs (RunRecord), oldest first
RECORDED = "_train_recorded"  # id() of the job already added to RUNS
START_ERROR = "_train_start_error"  # why the last press of Train did not start a job
RECIPE, BUDGET_KIND, SECONDS, EPOCHS = "train_recipe", "train_budget_kind", "train_seconds", "train_epochs"
SUBSET, BATCH, FLIP, CROP, DATA_DIR, ADAPT = "train_subset", "train_batch", "train_flip", "train_crop", "train_data_dir", "train_adapt"
SUBSETS = ("1,000", "2,500", "5,000", "10,000", "25,000", "all")
BATCH_SIZES = (32, 64, 128, 256, 512)
GRID_IMAGES = 24
MAX_RUNS = 30


# ----------------------------------------------------------------------------------------- data
@st.cache_resource(max_entries=2, show_spinner="Reading CIFAR-10 (once per server) …")
def shared_cifar10(data_dir: str, env_dir: str) -> Cifar10:
    """CIFAR-10 from the first source there is, read once per process and shared read-only.

    `env_dir` is only part of the cache key (so a changed CIFAR10_DIR is seen). Failures are not cached.
    """
    del env_dir
    return load_cifar10(data_dir or None)


def _source_line(data_dir: str) -> tuple[str, bool]:
    """What the Train button will read, in words, and whether that is a problem."""
    try:
        source = find_source(data_dir or None)
    except DataError as exc:
        return str(exc), True
    if source is None:
        return ("No CIFAR-10 on this server yet: **Train** will download it through Keras (170 MB). "
                f"Offline? {HOW_TO_GET}"), False
    return f"Data: {source.describe()}", False


# ----------------------------------------------------------------------------------------- state helpers
def _job() -> TrainJob | None:
    return st.session_state.get(JOB)


def _runs() -> list[RunRecord]:
    return st.session_state.setdefault(RUNS, [])


def _run_name(config: ResNetConfig, settings: TrainSettings) -> str:
    kind = "plain" if config.shortcut == "none" else "resnet"
    base = f"{kind}-{config.resolved_depth}" + ("-v2" if config.version == 2 else "")
    base += f" · {settings.recipe} {settings.budget_text()}"
    taken = {r.name for r in _runs()}
    job = _job()
    if job is not None:
        taken.add(job.name)
    name, n = base, 2
    while name in taken:
        name, n = f"{base} #{n}", n + 1
    return name


def _record_finished(job: TrainJob) -> None:
    """Keep a finished run for the Compare tab (once per job)."""
    if st.session_state.get(RECORDED) == id(job) or job.active:
        return
    st.session_state[RECORDED] = id(job)
    if job.status in ("done", "stopped") and job.batches:
        runs = _runs()
        runs.append(RunRecord.from_job(job))
        del runs[:-MAX_RUNS]


def _on_recipe_change() -> None:
    recipe = RECIPES[st.session_state[RECIPE]]
    st.session_state[BATCH] = recipe.batch_size
    st.session_state[FLIP] = recipe.flip
    st.session_state[CROP] = bool(recipe.crop)


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


# ----------------------------------------------------------------------------------------- controls
def _controls() -> tuple[TrainSettings, str]:
    """Draw the training controls; return the settings and the data directory typed in."""
    st.session_state.setdefault(RECIPE, "short")
    st.session_state.setdefault(BATCH, RECIPES[st.session_state[RECIPE]].batch_size)
    st.session_state.setdefault(FLIP, RECIPES[st.session_state[RECIPE]].flip)
    st.session_state.setdefault(CROP, bool(RECIPES[st.session_state[RECIPE]].crop))
    st.session_state.setdefault(DATA_DIR, "")
    left, middle, right = st.columns([1.2, 1, 1])
    with left:
        recipe = st.radio("Recipe", list(RECIPES), key=RECIPE, horizontal=True, on_change=_on_recipe_change,
                          format_func=lambda name: RECIPES[name].label)
        st.caption(RECIPES[recipe].description)
    with middle:
        kind = st.radio("Budget", ("seconds", "epochs"), key=BUDGET_KIND, horizontal=True,
                        help="A time budget ends on the clock; the learning-rate schedule follows the clock.")
        if kind == "seconds":
            st.number_input("Seconds of training", min_value=5, max_value=3600, value=90, step=15, key=SECONDS)
        else:
            st.number_input("Epochs", min_value=1, max_value=500, value=3, step=1, key=EPOCHS)
        st.select_slider("Training images", SUBSETS, value="all", key=SUBSET,
                                  help="A class-balanced subset of the 50,000 (10 % of it is held out for validation).")
    with right:
        st.selectbox("Batch size", BATCH_SIZES, key=BATCH)
        st.checkbox("Random flips", key=FLIP)
        st.checkbox("Random 4-pixel shifts", key=CROP)
        data_dir = st.text_input("CIFAR-10 directory", key=DATA_DIR, placeholder=f"(empty: {ENV_VAR} or the Keras cache)",
                                 help="A folder holding cifar-10-batches-bin/, cifar-10-batches-py/ or the official .tar.gz")
    return _settings_from_state(), data_dir.strip()


def _settings_from_state() -> TrainSettings:
    """The settings the controls hold (read from the session state, so a button callback sees them too)."""
    state = st.session_state
    by_time = state.get(BUDGET_KIND, "seconds") == "seconds"
    subset = state.get(SUBSET, "all")
    return TrainSettings(
        recipe=state.get(RECIPE, "short"),
        seconds=float(state.get(SECONDS, 90)) if by_time else None,
        epochs=None if by_time else int(state.get(EPOCHS, 3)),
        subset=None if subset == "all" else int(str(subset).replace(",", "")),
        batch_size=int(state.get(BATCH, 256)), flip=bool(state.get(FLIP, True)), crop=4 if state.get(CROP) else 0,
    )


def _start(config: ResNetConfig) -> None:
    """Train button callback: read the data (cached), start the job; errors are kept for the page to show."""
    st.session_state.pop(START_ERROR, None)
    try:
        settings = _settings_from_state()
        data_dir = str(st.session_state.get(DATA_DIR, "")).strip()
        data = shared_cifar10(data_dir, os.environ.get(ENV_VAR, ""))
        job = start_job(_job(), config, data, settings, name=_run_name(config, settings))
    except DataError as exc:
        st.session_state[START_ERROR] = f"**CIFAR-10 is not available.** {exc}"
        return
    except JobBusy as exc:
        st.session_state[START_ERROR] = str(exc)
        return
    except ConfigError as exc:
        st.session_state[START_ERROR] = f"**{exc.field}**: {exc.message}" + (f"  \n→ {exc.hint}" if exc.hint else "")
        return
    st.session_state[JOB] = job


def _stop() -> None:
    """Stop button callback."""
    job = _job()
    if job is not None:
        job.stop()


# ----------------------------------------------------------------------------------------- live panel
def _live_panel() -> None:
    """Progress, live curves and (when done) a full rerun to show the evaluation. Runs as a fragment."""
    job = _job()
    if job is None:
        return
    snap = job.poll()
    if snap.status == "waiting":
        st.info(f"**Waiting for a slot** — another training is running on this server (at most {max_concurrent()} at "
                "once, so each gets the whole CPU). It starts by itself.", icon=":material/hourglass_top:")
    elif snap.active:
        parts = [snap.phase, f"{_fmt_seconds(snap.elapsed)} elapsed"]
        if snap.eta is not None:
            parts.append(f"ETA {_fmt_seconds(snap.eta)}")
        if snap.images_per_second:
            parts.append(f"{snap.images_per_second:,.0f} img/s")
        parts.append(f"epoch {snap.epoch:.2f}")
        st.progress(min(max(snap.progress, 0.0), 1.0), text=" · ".join(parts))
    if snap.batches:
        st.plotly_chart(charts.live_curves(snap.batches, snap.epochs, title=job.name), key="train_live_chart",
                        config={"displaylogo": False})
    elif snap.active and snap.status != "waiting":
        st.caption("The first batch compiles the network; the curves start after it.")
    if not snap.active and st.session_state.get(RECORDED) != id(job):
        _record_finished(job)
        st.rerun()  # the whole page: buttons, evaluation, compare tab


def _status_line(job: TrainJob) -> None:
    snap = job.poll()
    if snap.status == "failed":
        st.error(f"**Training failed.** {snap.error}", icon=":material/error:")
    elif snap.status == "stopped":
        st.warning(f"**Stopped** after {snap.epoch:.2f} epochs ({snap.error or 'stopped'}). No test evaluation.",
                   icon=":material/stop_circle:")


def _evaluation(job: TrainJob) -> None:
    snap = job.poll()
    ev = snap.evaluation
    if snap.status != "done" or ev is None:
        return
    result = job.result()
    cols = st.columns(5)
    cols[0].metric("Test accuracy", f"{ev.test_accuracy:.1%}",
                   help=f"{ev.test_images:,} test images" + (" · averaged with mirror images (flip TTA)" if ev.tta else ""))
    cols[1].metric("Test loss", f"{ev.test_loss:.3f}")
    cols[2].metric("Training time", _fmt_seconds(result["train_seconds"]))
    ips = result["train_images_per_second"]
    cols[3].metric("Images / s", f"{ips:,.0f}" if ips else "—", help=f"{job.precision} on {job.device}")
    cols[4].metric("Epochs", f"{result['epochs_fractional']:.2f}")
    left, right = st.columns([1.1, 1])
    left.plotly_chart(charts.confusion_matrix(ev.confusion), key="train_confusion", config={"displaylogo": False})
    right.plotly_chart(charts.per_class_accuracy(ev.per_class_accuracy), key="train_per_class",
                       config={"displaylogo": False})
    _image_grid(job)
    d1, d2 = st.columns(2)
    d1.download_button("History (CSV)", history_csv(snap.batches, snap.epochs), file_name="history.csv",
                       mime="text/csv", key="train_dl_history", icon=":material/download:")
    d2.download_button("Trained model (.keras)", job.model_bytes, file_name="model.keras",
                       mime="application/octet-stream", key="train_dl_model", icon=":material/download:")


def _image_grid(job: TrainJob) -> None:
    ev = job.evaluation
    if ev is None:
        return
    labels = np.asarray(job.data.y_test).astype(np.int64)
    wrong = np.flatnonzero(ev.predictions != labels)
    right = np.flatnonzero(ev.predictions == labels)
    # Mistakes first, the most confident first (those teach the most), then a few correct ones.
    wrong = wrong[np.argsort(-ev.confidence[wrong])]
    picked = np.concatenate([wrong[: GRID_IMAGES * 2 // 3], right[: GRID_IMAGES]])[:GRID_IMAGES]
    with st.expander(f"Test images — {len(wrong):,} mistakes of {len(labels):,} (mistakes first)", expanded=False):
        captions = [
            f"{'✗' if ev.predictions[i] != labels[i] else '✓'} {CLASSES[ev.predictions[i]]} "
            f"({ev.confidence[i]:.0%}) · true {CLASSES[labels[i]]}"
            for i in picked
        ]
        st.image([job.data.x_test[i] for i in picked], caption=captions, width=96, clamp=True)


# ----------------------------------------------------------------------------------------- tabs
def render_train_tab(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    """Draw the Train tab for the configured network (data source, controls, Train/Stop, live curves, evaluation).

    Args:
        config: The network the sidebar describes.
        ag: Its annotated graph (a graph with errors cannot be trained).
    """
    st.subheader("Train on CIFAR-10")
    if ag.errors:
        listed = "; ".join(f"**{d.node}**: {d.message}" for d in ag.errors[:3])
        st.error(f"This network does not fit together, so it cannot be trained: {listed}. See the **Debug** tab.",
                 icon=":material/block:")
        return
    mismatch = cifar_mismatch(config)
    if mismatch:
        st.warning(mismatch, icon=":material/photo_size_select_small:")
        if not st.toggle("Adapt for CIFAR-10 (input 32×32×3, 10 classes)", key=ADAPT):
            return
        config = adapt_for_cifar(config)
        adapted = build(config)
        if adapted.errors:
            st.error(f"Adapted to 32×32×3 the network does not fit together ({adapted.errors[0].message}); "
                     "choose a CIFAR preset instead.", icon=":material/block:")
            return
    st.caption(f"Trains exactly this network ({config.resolved_depth} layers deep, "
               f"{ag.total_params:,} parameters) — one training per session.")
    settings, data_dir = _controls()
    line, bad = _source_line(data_dir)
    (st.error if bad else st.caption)(line)

    job = _job()
    if job is not None and not job.active:
        _record_finished(job)
    active = job is not None and job.active
    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Train", type="primary", disabled=active, key="train_start", icon=":material/play_arrow:",
              on_click=_start, args=(config,))
    b2.button("Stop", disabled=not active, key="train_stop", icon=":material/stop:", on_click=_stop)
    problem = st.session_state.pop(START_ERROR, None)
    if problem:
        st.error(problem, icon=":material/folder_off:")
    if job is None:
        st.info("Choose a budget and press **Train**. The curves appear after the first batch.",
                icon=":material/fitness_center:")
        return
    if job.config != config:
        st.caption(f"Showing the last run, **{job.name}**, of another network; press **Train** to train this one.")
    st.fragment(_live_panel, run_every=1.0 if active else None)()
    if not active:
        _status_line(job)
        _evaluation(job)


def render_compare_tab() -> None:
    """Draw the Compare tab: overlay the curves of this session's finished runs, and a table of them."""
    st.subheader("Compare runs")
    runs = _runs()
    job = _job()
    if job is not None and not job.active:
        _record_finished(job)
    if not runs:
        st.info("Every finished training of this session appears here. Train e.g. a plain-20 and a resnet-20 "
                "(shortcut *none* vs *A*), then plain-56 and resnet-56, to see the degradation problem of the paper.",
                icon=":material/compare_arrows:")
        return
    names = [r.name for r in runs]
    c1, c2, c3 = st.columns([2, 1, 1])
    chosen = c1.multiselect("Runs", names, default=names[-6:], key="compare_runs")
    metric = c2.selectbox("Metric", list(charts.METRICS), format_func=charts.METRICS.get, key="compare_metric")
    x = c3.selectbox("Against", list(charts.X_AXES), format_func=charts.X_AXES.get, key="compare_x")
    selected = [r for r in runs if r.name in chosen]
    if selected:
        st.plotly_chart(charts.comparison(selected, metric=metric, x=x), key="compare_chart", config={"displaylogo": False})
    rows = []
    for r in runs:
        c = r.config
        rows.append({
            "run": r.name, "depth": c.resolved_depth, "version": c.version, "block": c.block, "shortcut": c.shortcut,
            "recipe": r.settings.recipe, "budget": r.settings.budget_text(), "status": r.status,
            "test accuracy": r.test_accuracy, "test loss": r.test_loss,
            "last val accuracy": next((e["val_accuracy"] for e in reversed(r.epochs) if e.get("val_accuracy") is not None), None),
            "train s": round(r.train_seconds, 1), "img/s": None if r.images_per_second is None else round(r.images_per_second),
        })
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "last val accuracy": st.column_config.NumberColumn(format="percent"),
    })
    if st.button("Clear runs", key="compare_clear", icon=":material/delete:"):
        runs.clear()
        st.rerun()


def keep_alive() -> None:
    """Poll this session's job, if any (call it on every page run so that another open tab does not look idle)."""
    job = _job()
    if job is not None and job.active:
        job.poll()


def render_train_status() -> None:
    """A compact progress line for the sidebar that polls the job every 2 s while it runs (any tab)."""
    job = _job()
    if job is None or not job.active:
        return

    def badge() -> Any:
        current = _job()
        if current is None:
            return
        snap = current.poll()
        if snap.active:
            what = "waiting for a slot" if snap.status == "waiting" else f"{snap.progress:.0%}"
            st.caption(f":material/fitness_center: Training {current.name}: {what}")
        elif st.session_state.get(RECORDED) != id(current):
            _record_finished(current)
            st.rerun()

    st.fragment(badge, run_every=2.0)()
