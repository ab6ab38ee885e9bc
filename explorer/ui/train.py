"""The Train and Compare tabs: train the configured network on CIFAR-10 with live curves, evaluate it, and overlay finished runs.

The job (`explorer.training.TrainJob`; it trains in a spawned process unless EXPLORER_TRAIN_WORKER=thread)
is kept in `st.session_state`; the page polls it from a fragment that reruns every second while it is
active. Nothing here is run by the worker: threads never call `st.*` or touch the session state.

Every server path typed into the tab (CIFAR-10 folder, image folders, weights file) goes through
`explorer.serverpaths` first; an uploaded `.zip` of class folders is decoded in memory and kept in
this session's state only.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
import streamlit as st

from explorer import charts, guards, serverpaths
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.data import ENV_VAR, HOW_TO_GET, Cifar10, DataError, find_source, load_cifar10
from explorer.imagefolder import (
    DEFAULT_VAL_SPLIT,
    LAYOUT,
    ImageFolders,
    folder_signature,
    load_image_folders,
    load_image_zip,
)
from explorer.pretrained import WeightsError, base_preset, find_weights, where_to_put
from explorer.training import (
    RECIPES,
    JobBusy,
    RunRecord,
    TrainJob,
    TrainSettings,
    adapt_for_cifar,
    adapt_for_data,
    cifar_mismatch,
    data_mismatch,
    history_csv,
    history_html,
    max_concurrent,
    start_job,
)
from explorer.ui import session
from explorer.ui.predict import render_predict_expander

# Session-state keys (widgets start with "train_").
JOB = session.JOB  # the session's TrainJob (one at a time, the degradation lesson included)
RUNS = "_train_runs"  # finished runs (RunRecord), oldest first
RECORDED = "_train_recorded"  # id() of the job already added to RUNS
START_ERROR = "_train_start_error"  # why the last press of Train did not start a job
RECIPE, BUDGET_KIND, SECONDS, EPOCHS = "train_recipe", "train_budget_kind", "train_seconds", "train_epochs"
SUBSET, BATCH, FLIP, CROP, DATA_DIR, ADAPT = "train_subset", "train_batch", "train_flip", "train_crop", "train_data_dir", "train_adapt"
SOURCE, FOLDER_ROOT, FOLDER_VAL = "train_source", "train_folder_root", "train_folder_val"
FOLDER_SPLIT, FOLDER_ADAPT = "train_folder_split", "train_folder_adapt"
UPLOAD_FILE, UPLOADED = "train_upload_zip", "_train_uploaded"  # the uploader; (key, data or error) of its archive
CIFAR, FOLDERS, UPLOAD = "CIFAR-10", "Image folders", "Upload a .zip"  # the data sources
ZIP_UPLOAD_MB = 16  # at most server.maxUploadSize of .streamlit/config.toml
FAILED_TTL_S = 60.0  # a folder that failed to load is not read again for this long (unless it changed)
CB_EARLY, CB_PLATEAU, CB_BEST = "train_cb_early_stopping", "train_cb_plateau", "train_cb_best"  # paper recipe only
WEIGHTS_ON, WEIGHTS_FILE = "train_weights_on", "train_weights_file"  # resnet50v2/101v2/152v2 bodies only
SUBSETS = ("1,000", "2,500", "5,000", "10,000", "25,000", "all")
BATCH_SIZES = (32, 64, 128, 256, 512)
GRID_IMAGES = 24
MAX_RUNS = 30
CIFAR_TRAIN_IMAGES = 50_000
CIFAR_TEST_IMAGES = 10_000


# ----------------------------------------------------------------------------------------- data
@st.cache_resource(max_entries=2, show_spinner="Reading CIFAR-10 (once per server) …")
def shared_cifar10(data_dir: str, env_dir: str) -> Cifar10:
    """CIFAR-10 from the first source there is, read once per process and shared read-only.

    `env_dir` is only part of the cache key (so a changed CIFAR10_DIR is seen). Failures are not cached.
    """
    del env_dir
    return load_cifar10(data_dir or None)


@st.cache_resource(max_entries=2, show_spinner="Reading the image folders …")
def shared_folders(root: str, val_dir: str, val_split: float | None, size: tuple[int, int],
                   signature: tuple, roots: tuple[str, ...] | None = None) -> ImageFolders:
    """Image folders resized to `size` (H, W), read once per process and shared read-only.

    `signature` (the folders' mtimes) is only part of the cache key, so added or removed files are
    seen. `roots`: the shared folders linked files must stay in (None: anywhere). Failures are not
    cached here (see `load_folders`).
    """
    del signature
    allowed = None if roots is None else serverpaths.PathPolicy(roots=roots).allows
    return load_image_folders(root, val_dir=val_dir or None, val_split=val_split, image_size=size, allowed=allowed)


_failed: dict[tuple, tuple[float, str]] = {}  # folder arguments -> (until when, the message); every session
_failed_lock = threading.Lock()


def load_folders(args: tuple) -> ImageFolders:
    """`shared_folders(*args)`, remembering a failure for FAILED_TTL_S so reruns do not read the folders again.

    A changed folder (a file added or removed in a class folder) has another signature, so it is read again.

    Raises:
        DataError: The folders cannot be used (the same message as the first time, while remembered).
    """
    now = time.monotonic()
    with _failed_lock:
        for key in [k for k, (until, _) in _failed.items() if until < now]:
            del _failed[key]
        known = _failed.get(args)
    if known is not None:
        raise DataError(known[1])
    try:
        return shared_folders(*args)
    except DataError as exc:
        with _failed_lock:
            if len(_failed) >= 64:
                _failed.pop(next(iter(_failed)))
            _failed[args] = (now + FAILED_TTL_S, str(exc))
        raise


def path_policy() -> serverpaths.PathPolicy:
    """Which server paths this page may name (`explorer.serverpaths`, from `server.address` and the environment)."""
    return serverpaths.policy(served=serverpaths.is_served(st.get_option("server.address")))


def _folder_args(config: ResNetConfig) -> tuple:
    """The arguments of `shared_folders` that the folder widgets and the network's input size give.

    Raises:
        DataError: A folder typed in is not one this page may read.
    """
    state = st.session_state
    root, val_dir = str(state.get(FOLDER_ROOT, "")).strip(), str(state.get(FOLDER_VAL, "")).strip()
    rules = path_policy()
    hint = f"Or choose **{UPLOAD}** and upload your class folders."
    if root:
        root = str(rules.check(root, what="image folder", hint=hint))
    if val_dir:
        val_dir = str(rules.check(val_dir, what="validation folder", hint=hint))
    split = None if val_dir else float(state.get(FOLDER_SPLIT, DEFAULT_VAL_SPLIT))
    size = (int(config.input_shape[0]), int(config.input_shape[1]))
    return root, val_dir, split, size, folder_signature(root, val_dir or None), rules.roots


def _folders_chosen() -> bool:
    """Whether the data are the user's own images (server folders or an uploaded archive), not CIFAR-10."""
    return st.session_state.get(SOURCE, CIFAR) in (FOLDERS, UPLOAD)


def _upload_key(config: ResNetConfig, file: Any) -> tuple:
    split = float(st.session_state.get(FOLDER_SPLIT, DEFAULT_VAL_SPLIT))
    return file.file_id, split, (int(config.input_shape[0]), int(config.input_shape[1]))


def _uploaded(config: ResNetConfig) -> ImageFolders:
    """The uploaded archive's images for this network's input size (decoded once, kept in this session only).

    Raises:
        DataError: No archive uploaded, or it cannot be used (the message says why).
    """
    file = st.session_state.get(UPLOAD_FILE)
    if file is None:
        st.session_state.pop(UPLOADED, None)
        raise DataError(f"no archive uploaded: upload a .zip of class folders ({LAYOUT}).")
    key = _upload_key(config, file)
    kept = st.session_state.get(UPLOADED)
    if kept is None or kept[0] != key:
        st.session_state.pop(UPLOADED, None)  # the previous archive's images go before the next are decoded
        try:
            with st.spinner(f"Reading {file.name} …"):
                kept = (key, load_image_zip(file.getvalue(), name=file.name, val_split=key[1], image_size=key[2]))
        except DataError as exc:
            kept = (key, str(exc))
        st.session_state[UPLOADED] = kept
    if isinstance(kept[1], str):
        raise DataError(kept[1])
    return kept[1]


def _folder_section(config: ResNetConfig) -> ResNetConfig | None:
    """Folder boxes, what was found in them (classes, counts, skipped files) and the adapt toggle.

    Returns:
        The network to train (adapted when asked), or None when there is nothing to train on yet.
    """
    st.session_state.setdefault(FOLDER_SPLIT, DEFAULT_VAL_SPLIT)
    rules = path_policy()
    if not rules.folders_offered:
        message = rules.refusal("", what="folder", hint=f"Choose **{UPLOAD}** and upload your class folders as one .zip.")
        st.info(message[0].upper() + message[1:], icon=":material/folder_off:")
        return None
    c1, c2, c3 = st.columns([2, 2, 1])
    shared = f" This server shares: {', '.join(rules.roots or ())}." if rules.restricted else ""
    c1.text_input("Image folder", key=FOLDER_ROOT, placeholder="/path/to/images",
                  help=f"{LAYOUT}. The folder names are the class names; every image is resized to the network's "
                       f"input.{shared}")
    val_dir = c2.text_input("Validation folder (optional)", key=FOLDER_VAL, placeholder="(empty: hold out a fraction)",
                            help="The same class subfolders with other images; else a fraction of each class is held out.")
    c3.slider("Validation fraction", 0.05, 0.5, step=0.05, key=FOLDER_SPLIT, disabled=bool(val_dir.strip()),
              help="Held out of each class folder when there is no validation folder.")
    if not str(st.session_state.get(FOLDER_ROOT, "")).strip():
        st.info(f"Type the folder that holds your images: {LAYOUT} (JPEG, PNG, BMP or GIF).{shared}",
                icon=":material/folder_open:")
        return None
    try:
        data = load_folders(_folder_args(config))
    except DataError as exc:
        st.error(str(exc)[0].upper() + str(exc)[1:], icon=":material/folder_off:")
        return None
    return _data_summary(config, data)


def _upload_section(config: ResNetConfig) -> ResNetConfig | None:
    """The .zip uploader, what was found in the archive and the adapt toggle.

    Returns:
        The network to train (adapted when asked), or None when there is nothing to train on yet.
    """
    st.session_state.setdefault(FOLDER_SPLIT, DEFAULT_VAL_SPLIT)
    c1, c2 = st.columns([4, 1])
    c1.file_uploader(f"A .zip of class folders (at most {ZIP_UPLOAD_MB} MB)", type=["zip"], key=UPLOAD_FILE,
                     max_upload_size=ZIP_UPLOAD_MB,
                     help=f"{LAYOUT}, zipped (one top folder around them is fine). The images stay in this browser "
                          "session's memory only and are gone when it ends.")
    c2.slider("Validation fraction", 0.05, 0.5, step=0.05, key=FOLDER_SPLIT, help="Held out of each class folder.")
    if st.session_state.get(UPLOAD_FILE) is None:
        st.session_state.pop(UPLOADED, None)
        st.info(f"Upload your images as one .zip: {LAYOUT} (JPEG, PNG, BMP, GIF or WebP).", icon=":material/upload_file:")
        return None
    try:
        data = _uploaded(config)
    except DataError as exc:
        st.error(str(exc)[0].upper() + str(exc)[1:], icon=":material/folder_off:")
        return None
    return _data_summary(config, data)


def _data_summary(config: ResNetConfig, data: ImageFolders) -> ResNetConfig | None:
    """Classes, counts and skipped files of the user's images, and the toggle that adapts the network to them."""
    st.caption(f"**{data.num_classes} classes** (training + validation images): {data.classes_text()} — "
               f"{data.n_train:,} + {data.n_test:,} images, {data.sizes_text()}.")
    if data.skipped:
        st.warning(data.skipped_text().capitalize() + " (not images, or damaged).", icon=":material/broken_image:")
    mismatch = data_mismatch(config, data)
    if mismatch:
        st.warning(mismatch, icon=":material/photo_size_select_small:")
        h, w, _ = data.image_shape
        if not st.toggle(f"Adapt to the folders (input {h}×{w}×3, {data.num_classes} classes)", key=FOLDER_ADAPT):
            return None
        config = adapt_for_data(config, data)
        adapted = build(config)
        if adapted.errors:
            st.error(f"Adapted, the network does not fit together ({adapted.errors[0].message}).", icon=":material/block:")
            return None
    return config


def _source_line(data_dir: str) -> tuple[str, bool]:
    """What the Train button will read, in words, and whether that is a problem."""
    try:
        source = find_source(cifar_dir(data_dir) or None)
    except DataError as exc:
        return str(exc), True
    if source is None:
        return ("No CIFAR-10 on this server yet: **Train** will download it through Keras (170 MB). "
                f"Offline? {HOW_TO_GET}"), False
    return f"Data: {source.describe()}", False


def cifar_dir(data_dir: str) -> str:
    """The CIFAR-10 folder typed in, if this page may read it ("" when none is typed).

    Raises:
        DataError: A folder this page may not name (see `explorer.serverpaths`).
    """
    if not data_dir.strip():
        return ""
    return str(path_policy().check(data_dir, what="CIFAR-10 folder", hint=f"Leave it empty to use the server's ({ENV_VAR})."))


# ----------------------------------------------------------------------------------------- state helpers
def _job() -> TrainJob | None:
    return st.session_state.get(JOB)


def _runs() -> list[RunRecord]:
    return st.session_state.setdefault(RUNS, [])


def _run_name(config: ResNetConfig, settings: TrainSettings) -> str:
    kind = "plain" if config.shortcut == "none" else "resnet"
    base = f"{kind}-{config.resolved_depth}" + ("-v2" if config.version == 2 else "")
    base += f" · {settings.recipe} {settings.budget_text()}" + (" · ImageNet" if settings.weights else "")
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
            limit = int(guards.max_train_seconds() or 3600)
            st.number_input("Seconds of training", min_value=5, max_value=limit, value=min(90, limit), step=15, key=SECONDS,
                            help=f"At most {limit:,} s per training on this server.")
        else:
            st.number_input("Epochs", min_value=1, max_value=500, value=3, step=1, key=EPOCHS)
        st.select_slider("Training images", SUBSETS, value="all", key=SUBSET,
                                  help="A class-balanced subset of the 50,000 (10 % of it is held out for validation).")
    with right:
        st.selectbox("Batch size", BATCH_SIZES, key=BATCH)
        st.checkbox("Random flips", key=FLIP)
        st.checkbox("Random 4-pixel shifts", key=CROP)
        data_dir = "" if _folders_chosen() else st.text_input(
            "CIFAR-10 directory", key=DATA_DIR, placeholder=f"(empty: {ENV_VAR} or the Keras cache)",
            help="A folder holding cifar-10-batches-bin/, cifar-10-batches-py/ or the official .tar.gz")
    if recipe == "paper":
        _callback_controls()
    return _settings_from_state(), data_dir.strip()


def _callback_controls() -> None:
    """Early stopping, LR on plateau and the best-epoch checkpoint (epoch by epoch: options of the paper recipe)."""
    with st.expander("Callbacks (paper recipe)", expanded=False, icon=":material/tune:"):
        st.caption("Each watches the validation loss after every epoch (the training loss when nothing is held out).")
        c1, c2, c3 = st.columns(3)
        c1.number_input("Early stopping: patience (epochs, 0 = off)", min_value=0, max_value=100, value=0, step=1,
                        key=CB_EARLY, help="Stop when the loss has not improved for this many epochs.")
        c2.number_input("LR ÷10 on a plateau: patience (epochs, 0 = off)", min_value=0, max_value=100, value=0, step=1,
                        key=CB_PLATEAU, help="Replaces the step decay: the LR stays at its peak and drops ÷10 when the "
                        "loss has not improved for this many epochs (down to 1e-4 × the peak).")
        c3.checkbox("Keep the best epoch's weights", key=CB_BEST,
                    help="Restore the weights of the epoch with the lowest loss before the test evaluation.")


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
        **_callback_settings(state),
    )


def _callback_settings(state: Any) -> dict:
    """The paper recipe's callback options the controls hold (none under the short recipe)."""
    if state.get(RECIPE, "short") != "paper":
        return {}
    early, plateau = int(state.get(CB_EARLY) or 0), int(state.get(CB_PLATEAU) or 0)
    return {"early_stopping": early or None, "reduce_lr_on_plateau": plateau or None,
            "checkpoint_best": bool(state.get(CB_BEST, False))}


def _weights_choice(config: ResNetConfig) -> str | None:
    """The settings' `weights`: None (random), "imagenet" (the Keras cache or a download) or the file typed in.

    Raises:
        DataError: A file this page may not name (see `explorer.serverpaths`).
    """
    state = st.session_state
    if base_preset(config) is None or not state.get(WEIGHTS_ON):
        return None
    typed = str(state.get(WEIGHTS_FILE, "")).strip()
    return str(_weights_path(typed)) if typed else "imagenet"


def _weights_path(typed: str) -> Any:
    return path_policy().check(typed, what="weights file", hint="Leave it empty to use the server's Keras cache.")


def _weights_section(config: ResNetConfig) -> None:
    """For a resnet50v2/101v2/152v2 body: start from ImageNet weights, from a file or the Keras cache (or a download).

    Says whether the weights are found and, when not, where to put the file (no traceback).
    """
    preset = base_preset(config)
    if preset is None:
        return
    st.checkbox("Start from ImageNet weights", key=WEIGHTS_ON,
                help=f"keras.applications' ImageNet weights of {preset}, copied layer by layer into this network; "
                     "a head for other classes starts new. Set *Freeze (fine-tuning)* in the sidebar to keep the body fixed.")
    if not st.session_state.get(WEIGHTS_ON):
        return
    typed = st.text_input("Weights file", key=WEIGHTS_FILE,
                          placeholder="~/.keras/models/… (empty: the Keras cache or a download)",
                          help="A keras.applications weights file (.h5, with or without the classifier).").strip()
    if config.freeze:
        body = "the whole body — only the head trains" if config.freeze == config.stages else f"stem + stage 1–{config.freeze}"
        st.caption(f":material/ac_unit: Frozen: {body}.")
    else:
        st.caption("Nothing frozen: every layer trains from the ImageNet start (set *Freeze (fine-tuning)* in the "
                   "sidebar to train only the head).")
    try:
        checked = str(_weights_path(typed)) if typed else None
    except DataError as exc:
        st.warning(str(exc)[0].upper() + str(exc)[1:], icon=":material/file_present:")
        return
    try:
        path = find_weights(preset, weights=checked, include_top=config.classes == 1000, either=True)
    except WeightsError as exc:
        st.warning(f"**{exc.message[0].upper() + exc.message[1:]}.** {exc.hint[0].upper() + exc.hint[1:]}.",
                   icon=":material/file_present:")
        return
    if path is None:
        st.info(f"No ImageNet weights for {preset} on this server yet: **Train** will try to download them through "
                f"Keras (about 100 MB). Offline? {where_to_put(preset)[0].upper() + where_to_put(preset)[1:]}.",
                icon=":material/cloud_download:")
    else:
        size = path.stat().st_size / 2**20
        st.caption(f"Weights found: `{path}` ({size:,.1f} MB). ImageNet was trained on inputs scaled to [-1, 1]; "
                   "this pipeline standardises per channel, which fine-tuning absorbs.")


def _start(config: ResNetConfig) -> None:
    """Train button callback: read the data (cached), start the job; errors are kept for the page to show."""
    st.session_state.pop(START_ERROR, None)
    busy = session.busy_with(st.session_state)
    if busy:  # e.g. the degradation lesson runs in this session (a running Train-tab job disables the button)
        st.session_state[START_ERROR] = busy[0].upper() + busy[1:] + "."
        return
    source = st.session_state.get(SOURCE, CIFAR)
    try:
        settings = replace(_settings_from_state(), weights=_weights_choice(config))
    except DataError as exc:
        st.session_state[START_ERROR] = f"**The weights file cannot be used.** {exc}"
        return
    try:
        if source == FOLDERS:
            data = load_folders(_folder_args(config))
        elif source == UPLOAD:
            data = _uploaded(config)
        else:
            data_dir = cifar_dir(str(st.session_state.get(DATA_DIR, "")))
            data = shared_cifar10(data_dir, os.environ.get(ENV_VAR, ""))
        job = start_job(_job(), config, data, settings, name=_run_name(config, settings),
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
    job = _job()
    if job is not None:
        job.stop()


# ----------------------------------------------------------------------------------------- live panel
def _live_panel(drawn_active: bool = False) -> None:
    """Progress, live curves and (when done) a full rerun to show the evaluation. Runs as a fragment.

    `drawn_active` says the page around it was drawn while the job ran (Stop enabled, no results):
    then every tick after the job ends asks for a full rerun until one completes and registers
    this fragment again with `drawn_active=False` — a single request could be lost on a busy server,
    leaving a stale page (seen in the load test).
    """
    job = _job()
    if job is None:
        return
    snap = job.poll()
    if snap.status == "waiting":
        ahead = f" {snap.queue_ahead} waiting before you (first come, first served)." if snap.queue_ahead else ""
        st.info(f"**Waiting for a slot** — another training is running on this server (at most {max_concurrent()} at "
                f"once, so each gets the whole CPU). It starts by itself.{ahead}", icon=":material/hourglass_top:")
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
    if not snap.active:
        if st.session_state.get(RECORDED) != id(job):
            _record_finished(job)
        if drawn_active:
            st.rerun()  # the whole page: buttons, evaluation, compare tab


def _memory_line(ag: AnnotatedGraph, settings: TrainSettings) -> None:
    """The estimated memory of a CIFAR-10 training with these settings, against what the machine has free."""
    r = settings.resolved()
    images = min(r.subset or CIFAR_TRAIN_IMAGES, CIFAR_TRAIN_IMAGES)
    # (a training process keeps its own copy of CIFAR-10's 60,000 images and labels)
    extra = guards.worker_bytes(guards.train_worker(), (CIFAR_TRAIN_IMAGES + CIFAR_TEST_IMAGES) * (32 * 32 * 3 + 1))
    need = guards.estimate_training_bytes(ag, batch_size=r.batch_size, images=images, flip=bool(r.flip), extra=extra)
    free = guards.available_bytes()
    text = f"Memory: about {guards.human(need)} for this training"
    if free is None:
        st.caption(text + ".")
    elif need > guards.FREE_FRACTION * free:
        st.warning(f"{text}, but the server has only {guards.human(free)} free: it will be refused. "
                   "Choose a smaller batch size or a smaller network.", icon=":material/memory:")
    else:
        st.caption(f"{text} ({guards.human(free)} free on the server).")


def _status_line(job: TrainJob) -> None:
    snap = job.poll()
    if snap.status == "done" and job.capped:
        st.info(f"Ended at the server's limit of {job.max_seconds:g} s per training (set by the teacher); "
                "evaluated as it stood.", icon=":material/timer:")
    report = job.weights_report
    if report is not None:
        new = f"; new: {', '.join(report.skipped)}" if report.skipped else ""
        st.caption(f":material/ac_unit: Started from ImageNet weights: {report.layers} layers ({report.params:,} params) "
                   f"copied from `{report.source}`{new}.")
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
    on = "Validation" if getattr(job.data, "kind", "") == "folders" else "Test"  # folders: their validation images
    cols[0].metric(f"{on} accuracy", f"{ev.test_accuracy:.1%}",
                   help=f"{ev.test_images:,} {on.lower()} images" + (" · each averaged over 4 views: itself, its mirror, both moved a pixel (TTA)" if ev.tta else ""))
    cols[1].metric(f"{on} loss", f"{ev.test_loss:.3f}")
    cols[2].metric("Training time", _fmt_seconds(result["train_seconds"]))
    ips = result["train_images_per_second"]
    cols[3].metric("Images / s", f"{ips:,.0f}" if ips else "—", help=f"{job.precision} on {job.device}")
    cols[4].metric("Epochs", f"{result['epochs_fractional']:.2f}")
    left, right = st.columns([1.1, 1])
    left.plotly_chart(charts.confusion_matrix(ev.confusion, classes=ev.classes), key="train_confusion",
                      config={"displaylogo": False})
    right.plotly_chart(charts.per_class_accuracy(ev.per_class_accuracy, classes=ev.classes), key="train_per_class",
                       config={"displaylogo": False})
    _image_grid(job)
    if job.stop_reason:  # e.g. early stopping
        st.caption(f"Ended before the budget: {job.stop_reason}.")
    if job.restored_best:
        st.caption(f"The model holds the weights of **epoch {job.best_epoch}** (lowest {job.monitor}), restored before "
                   "the test evaluation; the download below is that model.")
    d1, d3, d2 = st.columns(3)
    d1.download_button("History (CSV)", history_csv(snap.batches, snap.epochs), file_name="history.csv",
                       mime="text/csv", key="train_dl_history", icon=":material/download:")
    d3.download_button("History plot (HTML)",
                       lambda: history_html(snap.batches, snap.epochs, title=job.name, best_epoch=job.best_epoch),
                       file_name="history.html", mime="text/html", key="train_dl_history_html",
                       icon=":material/download:", help="Loss and accuracy curves; opens offline in a browser.")
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
    names = ev.classes
    on = "Validation" if getattr(job.data, "kind", "") == "folders" else "Test"
    with st.expander(f"{on} images — {len(wrong):,} mistakes of {len(labels):,} (mistakes first)", expanded=False):
        captions = [
            f"{'✗' if ev.predictions[i] != labels[i] else '✓'} {names[ev.predictions[i]]} "
            f"({ev.confidence[i]:.0%}) · true {names[labels[i]]}"
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
    mismatch = None if source != CIFAR else cifar_mismatch(config)
    if source != CIFAR:
        adapted_config = _folder_section(config) if source == FOLDERS else _upload_section(config)
        if adapted_config is None:
            return
        config = adapted_config
    elif mismatch:
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
    _weights_section(config)
    if source == CIFAR:
        line, bad = _source_line(data_dir)
        (st.error if bad else st.caption)(line)
        _memory_line(ag, settings)

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
        render_predict_expander(None)
        return
    if job.config != config:
        st.caption(f"Showing the last run, **{job.name}**, of another network; press **Train** to train this one.")
    st.fragment(_live_panel, run_every=1.0 if active else None)(drawn_active=active)
    if not active:
        _status_line(job)
        _evaluation(job)
        render_predict_expander(job)


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
