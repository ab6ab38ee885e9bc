"""The Train tab: train the configured network on CIFAR-10 or your images, with live curves, and evaluate it.

The parts: `data_source` (where the images come from), `controls` (recipe, budget, knobs, weights), `live` (the
live panel and the sidebar badge), `results` (how it ended, evaluation, downloads); `explorer.training.prepare_run`
checks the network against the data once, as the CLI does. The job (`explorer.training.TrainJob`; it trains in
a spawned process unless EXPLORER_TRAIN_WORKER=thread) is kept in `st.session_state` (`explorer.ui.session`).
"""

from __future__ import annotations

import os
from dataclasses import replace

import streamlit as st

from explorer import guards
from explorer.annotate import AnnotatedGraph
from explorer.config import ConfigError, ResNetConfig
from explorer.data import ENV_VAR, DataError
from explorer.training import JobBusy, TrainSettings, prepare_run, start_job
from explorer.ui import session
from explorer.ui.compare import render_compare_tab
from explorer.ui.predict import render_predict_expander
from explorer.ui.session import DATA_DIR, JOB, MAX_RUNS, RECORDED, RUNS, START_ERROR, UPLOADED
from explorer.ui.train.controls import (
    _callback_settings,
    controls,
    settings_from_state,
    weights_choice,
    weights_section,
)
from explorer.ui.train.data_source import (
    CIFAR,
    FOLDERS,
    SOURCE,
    UPLOAD,
    cifar_dir,
    folder_args,
    folder_section,
    load_folders,
    path_policy,
    shared_cifar10,
    shared_folders,
    source_line,
    upload_section,
    uploaded,
)
from explorer.ui.train.live import current_job, keep_alive, live_panel, record_finished, render_train_status
from explorer.ui.train.results import evaluation, memory_line, status_line

ADAPT, FOLDER_ADAPT = "train_adapt", "train_folder_adapt"  # the toggles that adapt the network to the data

__all__ = [
    "ADAPT", "CIFAR", "DATA_DIR", "FOLDERS", "FOLDER_ADAPT", "JOB", "MAX_RUNS", "RECORDED", "RUNS", "SOURCE",
    "START_ERROR", "UPLOAD", "UPLOADED", "_callback_settings", "cifar_dir", "keep_alive", "load_folders", "path_policy",
    "render", "render_compare_tab", "render_train_status", "render_train_tab", "shared_cifar10", "shared_folders",
]


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Train tab (`render_train_tab`)."""
    del preset
    render_train_tab(config, ag)


def render_train_tab(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    """Draw the Train tab for the configured network (data source, controls, Train/Stop, live curves, evaluation).

    Args:
        config: The network the sidebar describes.
        ag: Its annotated graph (a graph with errors cannot be trained).
    """
    st.subheader({FOLDERS: "Train on your image folders", UPLOAD: "Train on your uploaded images"}.get(
        st.session_state.get(SOURCE, CIFAR), "Train on CIFAR-10"))
    if ag.errors:
        listed = "; ".join(f"**{d.node}**: {d.message}" for d in ag.errors[:3])
        st.error(f"This network does not fit together, so it cannot be trained: {listed}. See the **Debug** tab.",
                 icon=":material/block:")
        return
    source = st.radio("Data", (CIFAR, FOLDERS, UPLOAD), key=SOURCE, horizontal=True,
                      help="CIFAR-10, or your own images in one folder per class (the folder names are the classes): "
                           "folders on the server, or a .zip of them uploaded from your computer.")
    data = None  # CIFAR-10 is read when Train is pressed
    if source != CIFAR:
        data = folder_section(config) if source == FOLDERS else upload_section(config)
        if data is None:
            return
    adapt_key = ADAPT if source == CIFAR else FOLDER_ADAPT
    plan = prepare_run(config, data, settings_from_state(), adapt=bool(st.session_state.get(adapt_key)),
                       worker=guards.train_worker())
    for warning in plan.warnings:
        st.warning(warning[0].upper() + warning[1:] + " (not images, or damaged).", icon=":material/broken_image:")
    for notice in plan.notices:  # e.g. the batch shrunk to fit a small data set
        st.info(notice[0].upper() + notice[1:] + ".", icon=":material/compress:")
    if plan.mismatch:
        st.warning(plan.mismatch, icon=":material/photo_size_select_small:")
        label = ("Adapt for CIFAR-10 (input 32×32×3, 10 classes)" if data is None else
                 "Adapt to the folders (input {}×{}×3, {} classes)".format(*data.image_shape[:2], data.num_classes))
        if not st.toggle(label, key=adapt_key):
            return
    if plan.graph.errors:
        message = plan.graph.errors[0].message
        st.error(f"Adapted to 32×32×3 the network does not fit together ({message}); choose a CIFAR preset instead."
                 if data is None else f"Adapted, the network does not fit together ({message}).", icon=":material/block:")
        return
    config = plan.config
    st.caption(f"Trains exactly this network ({config.resolved_depth} layers deep, "
               f"{plan.graph.total_params:,} parameters) — one training per session.")
    _, data_dir = controls()
    weights_section(config)
    bad = False  # the data cannot be read: that error is the one message under the controls
    if source == CIFAR:
        line, bad = source_line(data_dir)
        (st.error if bad else st.caption)(line)
        memory_line(plan)
        if not bad and "download" not in line:
            _warm_up(data_dir)

    job = current_job()
    if job is not None and not job.active:
        record_finished(job)
    active = job is not None and job.active
    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Train", type="primary", disabled=active, key="train_start", icon=":material/play_arrow:",
              on_click=_start, args=(config,))
    b2.button("Stop", disabled=not active, key="train_stop", icon=":material/stop:", on_click=_stop)
    problem = st.session_state.pop(START_ERROR, None)
    if problem:
        st.error(problem, icon=":material/folder_off:")
    if job is None:
        if not bad and not problem:
            st.info("Choose a budget and press **Train**. The curves appear after the first batch.",
                    icon=":material/fitness_center:")
        render_predict_expander(None)
        return
    if job.config != config:
        st.caption(f"Showing the last run, **{job.name}**, of another network; press **Train** to train this one.")
    st.fragment(live_panel, run_every=1.0 if active else None)(drawn_active=active)
    if not active:
        status_line(job)
        evaluation(job)
        render_predict_expander(job)


def _warm_up(data_dir: str) -> None:
    """Have a training process ready before Train is pressed (TensorFlow imported, the server's CIFAR-10 read): the
    first curve then comes seconds after the press (`explorer.training.process.WARM`; none with the thread or Ray
    worker). Only for the server's own CIFAR-10: a folder typed on one page must not restart the processes warmed
    for everyone else."""
    if guards.train_worker() != "process":
        return
    from explorer.training.process import WARM

    try:
        if cifar_dir(data_dir):
            return
        WARM.prepare(shared_cifar10("", os.environ.get(ENV_VAR, "")))
    except (DataError, OSError):  # (the Train button reports it, in words)
        return


def _run_name(config: ResNetConfig, settings: TrainSettings) -> str:
    """A name for the run, unique among this session's runs (e.g. 'resnet-20 · short 90 s')."""
    kind = "plain" if config.shortcut == "none" else "resnet"
    base = f"{kind}-{config.resolved_depth}" + ("-v2" if config.version == 2 else "")
    base += f" · {settings.recipe} {settings.budget_text()}" + (" · ImageNet" if settings.weights else "")
    taken = {r.name for r in session.runs(st.session_state)}
    job = current_job()
    if job is not None:
        taken.add(job.name)
    name, n = base, 2
    while name in taken:
        name, n = f"{base} #{n}", n + 1
    return name


def _start(config: ResNetConfig) -> None:
    """Train button callback: read the data (cached), start the job; errors are kept for the page to show."""
    st.session_state.pop(START_ERROR, None)
    busy = session.busy_with(st.session_state)
    if busy:  # e.g. the degradation lesson runs in this session (a running Train-tab job disables the button)
        st.session_state[START_ERROR] = busy[0].upper() + busy[1:] + "."
        return
    source = st.session_state.get(SOURCE, CIFAR)
    try:
        settings = replace(settings_from_state(), weights=weights_choice(config))
    except DataError as exc:
        st.session_state[START_ERROR] = f"**The weights file cannot be used.** {exc}"
        return
    try:
        if source == FOLDERS:
            data = load_folders(folder_args(config))
        elif source == UPLOAD:
            data = uploaded(config)
        else:
            data_dir = cifar_dir(str(st.session_state.get(DATA_DIR, "")))
            data = shared_cifar10(data_dir, os.environ.get(ENV_VAR, ""))
        job = start_job(current_job(), config, data, settings, name=_run_name(config, settings),
                        max_seconds=guards.max_train_seconds(), worker=guards.train_worker())
    except DataError as exc:
        what = {FOLDERS: "The image folders cannot be used", UPLOAD: "The uploaded archive cannot be used"}.get(
            source, "CIFAR-10 is not available")
        st.session_state[START_ERROR] = f"**{what}.** {exc}"
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
    job = current_job()
    if job is not None:
        job.stop()
