"""Where the Train tab's images come from: CIFAR-10 (a server folder or the Keras cache), image folders on the server, an uploaded .zip.

Every server path typed in goes through `explorer.serverpaths` first (`path_policy`, `cifar_dir`); data read
from the server are cached once per process and shared read-only; an uploaded `.zip` of class folders is
decoded in memory and kept in this session's state only.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import streamlit as st

from explorer import serverpaths
from explorer.config import ResNetConfig
from explorer.data import ENV_VAR, HOW_TO_GET, Cifar10, DataError, find_source, load_cifar10
from explorer.imagefolder import (
    DEFAULT_VAL_SPLIT,
    LAYOUT,
    ImageFolders,
    folder_signature,
    load_image_folders,
    load_image_zip,
)
from explorer.ui import session

SOURCE, FOLDER_ROOT, FOLDER_VAL = "train_source", "train_folder_root", "train_folder_val"
FOLDER_SPLIT = "train_folder_split"
UPLOAD_FILE, UPLOADED = "train_upload_zip", session.UPLOADED  # the uploader; (key, data or error) of its archive
CIFAR, FOLDERS, UPLOAD = "CIFAR-10", "Image folders", "Upload a .zip"  # the data sources
ZIP_UPLOAD_MB = 16  # at most server.maxUploadSize of .streamlit/config.toml
FAILED_TTL_S = 60.0  # a folder that failed to load is not read again for this long (unless it changed)


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


def folder_args(config: ResNetConfig) -> tuple:
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


def folders_chosen() -> bool:
    """Whether the data are the user's own images (server folders or an uploaded archive), not CIFAR-10."""
    return st.session_state.get(SOURCE, CIFAR) in (FOLDERS, UPLOAD)


def _upload_key(config: ResNetConfig, file: Any) -> tuple:
    split = float(st.session_state.get(FOLDER_SPLIT, DEFAULT_VAL_SPLIT))
    return file.file_id, split, (int(config.input_shape[0]), int(config.input_shape[1]))


def uploaded(config: ResNetConfig) -> ImageFolders:
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


def folder_section(config: ResNetConfig) -> ImageFolders | None:
    """Folder boxes and what was found in them (classes, counts).

    Returns:
        The images, resized to the network's input, or None when there is nothing to train on yet.
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
        data = load_folders(folder_args(config))
    except DataError as exc:
        st.error(str(exc)[0].upper() + str(exc)[1:], icon=":material/folder_off:")
        return None
    _data_caption(data)
    return data


def upload_section(config: ResNetConfig) -> ImageFolders | None:
    """The .zip uploader and what was found in the archive (classes, counts).

    Returns:
        The images, resized to the network's input, or None when there is nothing to train on yet.
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
        data = uploaded(config)
    except DataError as exc:
        st.error(str(exc)[0].upper() + str(exc)[1:], icon=":material/folder_off:")
        return None
    _data_caption(data)
    return data


def _data_caption(data: ImageFolders) -> None:
    """Classes and counts of the user's images."""
    st.caption(f"**{data.num_classes} classes** (training + validation images): {data.classes_text()} — "
               f"{data.n_train:,} + {data.n_test:,} images, {data.sizes_text()}.")


def source_line(data_dir: str) -> tuple[str, bool]:
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
