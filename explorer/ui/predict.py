"""The "Try it on your own images" panel: the top-5 classes of uploaded images under the trained model or an uploaded `.keras` file.

Uploads are size-limited twice: by the uploader (`max_upload_size`; the server's
`server.maxUploadSize` in `.streamlit/config.toml` caps every upload) and by
`explorer.inference`, which also caps pixels and decodes only common formats, and sizes a model
from its `config.json` before Keras builds it (at most MAX_UPLOAD_PARAMS parameters here). Errors are
shown as messages, never as a traceback. Loaded models and results live in this session's
state only (a model is never shared between sessions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from explorer import charts, inference
from explorer.inference import InferenceError, LoadedModel, ModelMeta

MODEL_UPLOAD_MB = 16
"""Largest `.keras` upload (ResNet-110 is ~7 MB; `server.maxUploadSize` must be at least this)."""
MAX_UPLOAD_PARAMS = MODEL_UPLOAD_MB * inference.MiB
"""Most parameters an uploaded model may declare: weights of at most 4× the upload limit (trained weights barely
compress, so a small file that declares more holds zeros), counted from its config before Keras builds it."""
IMAGE_UPLOAD_MB = inference.MAX_IMAGE_BYTES // inference.MiB
MAX_IMAGES = 12
"""At most this many images are classified at once (the rest are ignored, with a warning)."""
THUMB_PX = 128
MAX_CACHED = 64

# Session-state keys (widgets start with "predict_").
SOURCE = "predict_source"
MODEL_FILE = "predict_model_file"
IMAGES = "predict_images"
LOADED = "_predict_loaded"  # (upload file id, LoadedModel | error text)
RESULTS = "_predict_results"  # {(model key, image file id): (thumbnail, top-k) | error text}

TRAINED, UPLOADED = "trained", "uploaded"


def _uploaded_model() -> tuple[LoadedModel | None, str | None]:
    """The uploader for a `.keras` file, and the model loaded from it (once per upload) or the error."""
    file = st.file_uploader(
        "A trained model (.keras)", type=["keras"], key=MODEL_FILE, max_upload_size=MODEL_UPLOAD_MB,
        help=f"A .keras file saved by Keras 3, e.g. the Train tab's **Trained model (.keras)** download (at most "
             f"{MODEL_UPLOAD_MB} MB). Loaded with safe_mode=True: no Lambda layers, no custom code but ZeroPadShortcut.",
    )
    if file is None:
        st.session_state.pop(LOADED, None)
        return None, None
    cached = st.session_state.get(LOADED)
    if cached is not None and cached[0] == file.file_id:
        value = cached[1]
    else:
        if file.size > MODEL_UPLOAD_MB * inference.MiB:
            value = f"{file.name} is {file.size / inference.MiB:.1f} MB; a model may be at most {MODEL_UPLOAD_MB} MB here."
        else:
            try:
                with st.spinner(f"Loading {file.name} …"):
                    value = inference.load_model(file.getvalue(), name=file.name, max_params=MAX_UPLOAD_PARAMS)
            except InferenceError as exc:
                value = str(exc)
        st.session_state[LOADED] = (file.file_id, value)
    return (value, None) if isinstance(value, LoadedModel) else (None, value)


def _classify(loaded: LoadedModel, model_key: Any, files: list) -> list[tuple[str, Any]]:
    """(file name, (thumbnail, top-5) or error text) per file; results are kept per model and upload."""
    cache: dict = st.session_state.setdefault(RESULTS, {})
    todo, arrays = [], []
    for f in files:
        key = (model_key, f.file_id)
        if key in cache:
            continue
        if f.size > inference.MAX_IMAGE_BYTES:
            cache[key] = f"{f.name} is {f.size / inference.MiB:.1f} MB; an image may be at most {IMAGE_UPLOAD_MB} MB."
            continue
        try:
            arrays.append(inference.read_image(f.getvalue(), loaded.input_size, name=f.name))
            todo.append(key)
        except InferenceError as exc:
            cache[key] = str(exc)
    if todo:
        try:
            with st.spinner(f"Classifying {len(todo)} image{'s' if len(todo) > 1 else ''} …"):
                tops = inference.predict(loaded, np.stack(arrays), top=inference.DEFAULT_TOP)
        except Exception as exc:  # a model that loads but cannot run (shown in one line)
            tops = [f"The model could not classify this image ({type(exc).__name__}: {exc})."] * len(todo)
        for key, image, top in zip(todo, arrays, tops, strict=True):
            cache[key] = top if isinstance(top, str) else (image, top)
    while len(cache) > MAX_CACHED:
        cache.pop(next(iter(cache)))
    return [(f.name, cache[(model_key, f.file_id)]) for f in files]


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """The network's input upscaled with hard pixel edges, so its coarseness is visible."""
    h, w = image.shape[:2]
    k = max(1, THUMB_PX // max(h, w))
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1)


def render_predict(model: Any = None, meta: ModelMeta | None = None, *, name: str = "trained model") -> None:
    """Upload images and see their top-5 classes as bar charts.

    Args:
        model: A Keras image classifier in memory (e.g. a finished job's `job.model`), or None to offer
            uploading a `.keras` file instead.
        meta: Class names and normalisation of `model` (None: CIFAR-10's when it has 10 outputs).
        name: How to call `model` on the page.
    """
    if model is None:
        loaded, problem = _uploaded_model()
        if problem:
            st.error(f"**This model cannot be used.** {problem}", icon=":material/error:")
            return
        if loaded is None:
            st.caption("Upload a model trained earlier (the Train tab's **Trained model (.keras)** download) to "
                       "try it on your own images.")
            return
        model_key: Any = ("file", st.session_state[LOADED][0])
    else:
        try:
            loaded = inference.wrap_model(model, meta, name=name)
        except InferenceError as exc:
            st.error(f"**This model cannot be used on images.** {exc}", icon=":material/error:")
            return
        model_key = ("model", id(model))
    m = loaded.meta
    h, w, _ = m.input_shape
    shown = ", ".join(m.class_names[:12]) + (" …" if len(m.class_names) > 12 else "")
    st.caption(f"**{loaded.name}** — {len(m.class_names)} classes ({shown}); input {h}×{w}×3.")
    if m.note:
        st.info(m.note, icon=":material/info:")
    files = st.file_uploader(
        "Your images", type=list(inference.IMAGE_TYPES), accept_multiple_files=True, key=IMAGES,
        max_upload_size=IMAGE_UPLOAD_MB,
        help=f"PNG, JPEG, GIF, BMP or WebP, at most {IMAGE_UPLOAD_MB} MB and "
             f"{inference.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels each; the first {MAX_IMAGES} are classified.",
    ) or []
    st.caption(inference.thumbnail_note(m))
    if len(files) > MAX_IMAGES:
        st.warning(f"{len(files)} images uploaded: the first {MAX_IMAGES} are classified.", icon=":material/warning:")
        files = files[:MAX_IMAGES]
    for i, (file_name, result) in enumerate(_classify(loaded, model_key, files)):
        if isinstance(result, str):
            st.error(f"**{file_name}**: {result}", icon=":material/broken_image:")
            continue
        image, top = result
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.image(_thumbnail(image), caption=f"{file_name} — as the network sees it ({h}×{w})")
        right.plotly_chart(charts.top_k_bars(top), key=f"predict_chart_{i}", config={"displaylogo": False})


def render_predict_expander(job: Any = None) -> None:
    """The Train tab's "Try it on your own images": the finished run's model, or a `.keras` file uploaded here."""
    trained = job is not None and not job.active and job.status == "done" and job.has_model
    with st.expander("Try it on your own images", icon=":material/image_search:"):
        if not trained:
            render_predict(None)
            return
        choice = st.radio("Model", (TRAINED, UPLOADED), key=SOURCE, horizontal=True,
                          format_func={TRAINED: f"this run's trained model ({job.name})",
                                       UPLOADED: "a .keras file"}.get)
        if choice == UPLOADED:
            render_predict(None)
            return
        render_predict(job.model, inference.meta_for_data(job.model, job.data), name=f"{job.name} (trained model)")
