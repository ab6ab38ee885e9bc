"""Inference on your own images: load a `.keras` model with its class names and normalisation, read images safely, top-k classes.

A model trained here is saved with a small `explorer.json` inside its `.keras` zip archive
(class names, per-channel mean and std, input shape), so that whoever loads it later
preprocesses images exactly as training did and names the classes. A `.keras` file without
it falls back to the CIFAR-10 names (10 outputs) or "class 0 … class N-1", and says so.

Only `keras.saving.load_model(path, safe_mode=True)` loads models (no Lambda code runs), and
only after the archive is sized: its `config.json` is read first and the parameters of every
layer counted from it (`model_size`), the weights member must hold about what they need, and
the model must fit the server's limits (`explorer.guards.check_model_size`). Images are decoded by Pillow from a short list of formats, with caps on file size and pixel
count (decompression bombs), then centre-cropped to the model's aspect ratio and resized
to its H×W — a CIFAR-10 model sees every photo as a 32×32 thumbnail.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explorer import fmt, guards
from explorer.config import ConfigError, load_json
from explorer.data import CLASSES, MEAN, STD

MiB = 1024 * 1024
MAX_MODEL_BYTES = 200 * MiB
"""A `.keras` file larger than this is refused unread (ResNet-152v2 is ~240 MB; ResNet-110 ~7 MB)."""
MAX_CONFIG_BYTES = 32 * MiB
"""A `.keras` archive's `config.json` larger than this is refused unread (ResNet-1001's is ~5 MB)."""
WEIGHT_BYTES_MARGIN = 1.1
"""The weights of a model may take this much more than 4 bytes per parameter (HDF5's own structure)."""
MAX_UNZIPPED_BYTES = int(guards.DEFAULT_MAX_PARAMS * 4 * WEIGHT_BYTES_MARGIN) + MAX_CONFIG_BYTES
"""The members of a `.keras` archive may not add up to more than this once uncompressed (zip bombs): the weights of
the largest model the server builds (`guards.max_params`) and its config (lower when that cap is lower)."""
WEIGHTS_NAME = "model.weights.h5"
"""The member of a `.keras` archive that holds the weights."""
PREDICT_BATCH = 32
"""Images `probabilities` pushes through the model at once (what its activation memory is sized for)."""
MAX_IMAGE_BYTES = 10 * MiB
"""An image file larger than this is refused unread."""
MAX_IMAGE_PIXELS = 40_000_000
"""An image with more pixels than this (e.g. 8000×5000) is refused before it is decoded (decompression bombs)."""
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
"""The Pillow decoders used; any other format is refused."""
IMAGE_TYPES = ("png", "jpg", "jpeg", "gif", "bmp", "webp")
"""File name extensions of IMAGE_FORMATS (for upload filters)."""
META_NAME = "explorer.json"
"""The member of a `.keras` archive that holds the class names and normalisation."""
MAX_META_BYTES = 1 * MiB
MODEL_JSON_NESTING = 100
"""The deepest nesting read in an archive's JSON members (a Keras `config.json` nests about 12 levels)."""
MAX_CLASSES = 100_000
DEFAULT_TOP = 5


class InferenceError(Exception):
    """A model or image could not be used; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class ModelMeta:
    """What a model needs besides its weights to be used on images.

    Attributes:
        class_names: One name per output, in output order.
        mean: Per-channel (R, G, B) mean in [0, 1] units, subtracted before the model.
        std: Per-channel standard deviation in [0, 1] units, divided by before the model.
        input_shape: (H, W, C) the model expects (None when unknown).
        stored: True when read from the model file (or made for a trained model), False for a fallback.
        note: Why names or statistics were guessed, in words (None when stored).
    """

    class_names: tuple[str, ...] = CLASSES
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    input_shape: tuple[int, int, int] | None = None
    stored: bool = True
    note: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        """The JSON object stored as `explorer.json`."""
        return {
            "format": 1,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelMeta:
        """Validate a stored `explorer.json` object.

        Raises:
            InferenceError: A field is missing or has the wrong type or range.
        """
        where = f"the model file's {META_NAME}"
        fix = f"re-save the model from the Train tab, or delete {META_NAME} from the .keras archive to use default names"
        if not isinstance(data, dict):
            raise InferenceError(f"{where} is not a JSON object: {fix}")
        names = data.get("class_names")
        if (not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES
                or not all(isinstance(n, str) and 0 < len(n) <= 200 for n in names)):
            raise InferenceError(f"{where} has no valid class_names (a list of 1 to {MAX_CLASSES:,} short strings): {fix}")
        stats = {}
        for key in ("mean", "std"):
            value = data.get(key, list(MEAN if key == "mean" else STD))
            if (not isinstance(value, list) or len(value) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
                raise InferenceError(f"{where} has an invalid {key} (three numbers, one per R, G, B channel): {fix}")
            stats[key] = tuple(float(v) for v in value)
        if not all(s > 0 for s in stats["std"]):
            raise InferenceError(f"{where} has a std that is not positive: {fix}")
        shape = data.get("input_shape")
        if shape is not None and (not isinstance(shape, list) or len(shape) != 3
                                  or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise InferenceError(f"{where} has an invalid input_shape (H, W, C): {fix}")
        return cls(class_names=tuple(names), mean=stats["mean"], std=stats["std"],
                   input_shape=None if shape is None else tuple(shape), stored=True)


def fallback_meta(n_outputs: int, input_shape: tuple[int, int, int] | None = None) -> ModelMeta:
    """Names and statistics for a model file without `explorer.json` (CIFAR-10's when it has 10 outputs)."""
    if n_outputs == len(CLASSES):
        note = (f"This model file carries no class names ({META_NAME}): with 10 outputs it is assumed to be a CIFAR-10 "
                "model (CIFAR-10 names and normalisation).")
        names: tuple[str, ...] = CLASSES
    else:
        note = (f"This model file carries no class names ({META_NAME}): its {n_outputs} outputs are called class 0 … "
                f"class {n_outputs - 1}, and images are normalised with CIFAR-10's statistics.")
        names = tuple(f"class {i}" for i in range(n_outputs))
    return ModelMeta(class_names=names, input_shape=input_shape, stored=False, note=note)


def meta_for(model: Any, *, class_names: Sequence[str] | None = None, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None) -> ModelMeta:
    """The metadata of a model trained here (CIFAR-10 names and statistics unless given)."""
    shape = _image_input_shape(model)
    return ModelMeta(class_names=tuple(class_names) if class_names is not None else CLASSES,
                     mean=tuple(float(v) for v in (mean if mean is not None else MEAN)),
                     std=tuple(float(v) for v in (std if std is not None else STD)),
                     input_shape=shape, stored=True)


def meta_for_data(model: Any, data: Any) -> ModelMeta:
    """The metadata of a model trained on `data` (its `classes`, `mean`, `std` attributes when it has them, else CIFAR-10's)."""
    return meta_for(model, class_names=getattr(data, "classes", None), mean=getattr(data, "mean", None),
                    std=getattr(data, "std", None))


def save_model_bytes(model: Any, meta: ModelMeta | None = None) -> bytes:
    """The model as `.keras` file bytes, with `meta` (default: CIFAR-10's) stored as `explorer.json` inside the archive.

    Keras ignores the extra member when loading, so the file stays an ordinary `.keras` file.
    """
    from explorer.keras_build import recursion_limit

    meta = meta if meta is not None else meta_for(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with recursion_limit(10_000 + 20 * len(model.layers)):
            model.save(path)
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(META_NAME, json.dumps(meta.to_dict(), indent=1))
        return Path(path).read_bytes()


def _read_source(source: str | os.PathLike | bytes, *, what: str, limit: int) -> tuple[bytes, str]:
    """The bytes of a file or bytes argument (refused above `limit`), and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = f"the uploaded {what}"
    else:
        path = Path(source)
        name = str(path)
        try:
            size = path.stat().st_size
            if size > limit:
                raise InferenceError(f"{name} is {size / MiB:.1f} MiB; a {what} may be at most {limit / MiB:.0f} MiB")
            data = path.read_bytes()
        except OSError as exc:
            article = "an" if what[0] in "aeiou" else "a"
            raise InferenceError(f"cannot read {name} ({exc.strerror or exc}): give the path of {article} {what}") from None
    if len(data) > limit:
        raise InferenceError(f"{name} is {len(data) / MiB:.1f} MiB; a {what} may be at most {limit / MiB:.0f} MiB")
    return data, name


def _open_keras_zip(data: bytes, name: str) -> zipfile.ZipFile:
    """The `.keras` archive, checked to look like one (zip, config.json, sizes) before Keras sees it."""
    hint = "give a .keras file saved by Keras 3 (e.g. the Train tab's Trained model download)"
    if not data.startswith(b"PK"):
        what = " (it looks like an HDF5 .h5 file — re-save it as .keras)" if data.startswith(b"\x89HDF") else ""
        raise InferenceError(f"{name} is not a .keras file (a .keras file is a zip archive){what}: {hint}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InferenceError(f"{name} is not a readable .keras file ({exc}): {hint}") from None
    names = {i.filename for i in infos}
    if "config.json" not in names:
        raise InferenceError(f"{name} is a zip archive but not a Keras model (no config.json inside): {hint}")
    limit = unzipped_limit()
    if sum(i.file_size for i in infos) > limit:
        raise InferenceError(f"{name} would unpack to more than {limit / MiB:.0f} MiB; it is refused")
    return zf


def unzipped_limit(max_params: int | None = None) -> int:
    """The most a `.keras` archive may unpack to: the weights of `max_params` parameters (default and at most
    `guards.max_params()`) with a margin, and its config (never above MAX_UNZIPPED_BYTES)."""
    cap = min(guards.max_params(), max_params) if max_params is not None else guards.max_params()
    return min(MAX_UNZIPPED_BYTES, int(cap * 4 * WEIGHT_BYTES_MARGIN) + MAX_CONFIG_BYTES)


def _json_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, fix: str) -> Any:
    """A JSON member of the archive, parsed with a cap on its nesting (InferenceError in one line)."""
    try:
        data = zf.read(info)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InferenceError(f"{what} cannot be read from the archive ({exc}): {fix}") from None
    try:
        return load_json(data, name=what, max_nesting=MODEL_JSON_NESTING)
    except ConfigError as exc:  # not UTF-8, nested too deep, a number too long, bad syntax
        raise InferenceError(f"{what} is not valid JSON ({exc.message}): {fix}") from None


def read_meta(source: str | os.PathLike | bytes) -> ModelMeta | None:
    """The stored `explorer.json` of a `.keras` file (path or bytes), or None when it has none.

    Raises:
        InferenceError: The file is not a `.keras` archive, or its `explorer.json` is invalid.
    """
    data, name = _read_source(source, what="model file", limit=MAX_MODEL_BYTES)
    return _meta_from_zip(_open_keras_zip(data, name))


def _meta_from_zip(zf: zipfile.ZipFile) -> ModelMeta | None:
    try:
        info = zf.getinfo(META_NAME)
    except KeyError:
        return None
    if info.file_size > MAX_META_BYTES:
        raise InferenceError(f"the model file's {META_NAME} is larger than {MAX_META_BYTES // MiB} MiB; it is refused")
    loaded = _json_member(zf, info, f"the model file's {META_NAME}", "re-save the model")
    return ModelMeta.from_dict(loaded)


# --------------------------------------------------------------------------- size of a model file, before Keras
NO_WEIGHTS = frozenset("""
    InputLayer Activation ReLU LeakyReLU ELU Softmax Add Subtract Multiply Average Maximum Minimum Concatenate Dot
    Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise GaussianDropout AlphaDropout
    ZeroPadding1D ZeroPadding2D ZeroPadding3D Cropping1D Cropping2D Cropping3D UpSampling1D UpSampling2D UpSampling3D
    MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D
    Flatten Reshape Permute RepeatVector Rescaling Resizing CenterCrop Identity Masking ActivityRegularization
    ZeroPadShortcut
""".split())
"""Layer classes without weights (counted as 0 parameters)."""
NESTED = frozenset({"Functional", "Sequential", "Model"})
"""Layer classes that hold layers of their own (counted layer by layer)."""
CONV = frozenset({"Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})
DEPTHWISE = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
SEPARABLE = frozenset({"SeparableConv1D", "SeparableConv2D"})
NORMS = {"BatchNormalization": 4, "LayerNormalization": 2, "GroupNormalization": 2, "UnitNormalization": 0}
"""Per-channel parameters of the normalisation layers."""


@dataclass(frozen=True)
class ModelSize:
    """What a `.keras` file's `config.json` declares, counted before Keras builds anything.

    Attributes:
        params: Parameters of all its layers (weights and non-trainable statistics).
        activation_bytes: Bytes of its largest activation for one image (float32).
        layers: Layers counted.
    """

    params: int
    activation_bytes: int
    layers: int


class _Unsized(Exception):
    """A layer whose size cannot be told from its config (the message says which and why)."""


def _dims(value: Any, what: str) -> list[int]:
    """A declared shape, without its batch dimension, as non-negative ints (None counts as 1)."""
    if not isinstance(value, list) or not value or len(value) > 8:
        raise _Unsized(f"its {what} is not a shape")
    dims = []
    for v in value[1:]:
        if v is None:
            dims.append(1)
        elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**40:
            dims.append(v)
        else:
            raise _Unsized(f"its {what} has a dimension {v!r}")
    return dims


def _ints(value: Any, rank: int, what: str) -> list[int]:
    """kernel_size/strides as `rank` positive ints (an int stands for all of them)."""
    values = [value] * rank if isinstance(value, int) else value
    if (not isinstance(values, list) or len(values) != rank
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 2**20 for v in values)):
        raise _Unsized(f"its {what} is {value!r}")
    return values


def _layer_size(entry: dict) -> tuple[int, int, int]:
    """(params, largest activation in values, layers) of one layer entry of a config."""
    cls = entry.get("class_name")
    cfg = entry.get("config")
    if not isinstance(cls, str) or not isinstance(cfg, dict):
        raise _Unsized("a layer has no class_name or config")
    if cls in NESTED:
        return _layers_size(cfg.get("layers"))
    if cls == "InputLayer":
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        return 0, math.prod(_dims(shape, "input shape")) if shape is not None else 0, 1
    if cls == "Embedding":
        n, d = cfg.get("input_dim"), cfg.get("output_dim")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, d)):
            raise _Unsized(f"Embedding {cfg.get('name')!r} has no valid input_dim/output_dim")
        return n * d, d, 1
    build = entry.get("build_config") if isinstance(entry.get("build_config"), dict) else {}
    shape = build.get("input_shape")
    if cls in NO_WEIGHTS:
        if isinstance(shape, list) and shape and isinstance(shape[0], list):  # several inputs (Add, Concatenate)
            return 0, max(math.prod(_dims(s, "input shape")) for s in shape), 1
        return 0, math.prod(_dims(shape, "input shape")) if shape is not None else 0, 1
    if cls not in CONV | DEPTHWISE | SEPARABLE | set(NORMS) | {"Dense", "PReLU", "Normalization"}:
        raise _Unsized(f"layer {cfg.get('name')!r} is a {cls}, a layer whose size is not counted here")
    if shape is None:
        raise _Unsized(f"layer {cfg.get('name')!r} ({cls}) does not declare its input shape (build_config)")
    dims = _dims(shape, f"{cls} input shape")
    if not dims:
        raise _Unsized(f"layer {cfg.get('name')!r} ({cls}) declares an input shape without channels")
    values = math.prod(dims)
    bias = cfg.get("use_bias", True) is not False
    if cls == "Dense":
        units = _ints(cfg.get("units"), 1, "units")[0]
        params = dims[-1] * units + (units if bias else 0)
        return params, max(values, values // max(dims[-1], 1) * units), 1
    channels_first = cfg.get("data_format") == "channels_first"
    channels = dims[0] if channels_first else dims[-1]
    spatial = dims[1:] if channels_first else dims[:-1]
    if cls in NORMS or cls == "Normalization":
        axis = cfg.get("axis", -1)
        axes = axis if isinstance(axis, list) else [axis]
        if not all(isinstance(a, int) and not isinstance(a, bool) and -len(dims) - 1 <= a <= len(dims) for a in axes):
            raise _Unsized(f"layer {cfg.get('name')!r} ({cls}) has an axis {axis!r}")
        full = [0, *dims]
        width = math.prod(full[a] if a >= 0 else full[len(full) + a] for a in axes) if axes else 1
        return NORMS.get(cls, 3) * width, values, 1
    if cls == "PReLU":
        return values, values, 1
    rank = len(spatial)
    kernel = math.prod(_ints(cfg.get("kernel_size"), rank, "kernel_size"))
    strides = math.prod(_ints(cfg.get("strides", 1), rank, "strides"))
    if cls in DEPTHWISE | SEPARABLE:
        multiplier = _ints(cfg.get("depth_multiplier", 1), 1, "depth_multiplier")[0]
        params = kernel * channels * multiplier
        if cls in SEPARABLE:
            filters = _ints(cfg.get("filters"), 1, "filters")[0]
            params += channels * multiplier * filters + (filters if bias else 0)
            out = filters
        else:
            params += channels * multiplier if bias else 0
            out = channels * multiplier
    else:
        filters = _ints(cfg.get("filters"), 1, "filters")[0]
        groups = _ints(cfg.get("groups", 1), 1, "groups")[0]
        params = kernel * (channels // groups) * filters + (filters if bias else 0)
        out = filters
    spread = math.prod(spatial) * (strides if "Transpose" in cls else 1) // (1 if "Transpose" in cls else strides)
    return params, max(values, max(spread, 1) * out), 1


def _layers_size(layers: Any) -> tuple[int, int, int]:
    if not isinstance(layers, list):
        raise _Unsized("its config lists no layers")
    params = largest = count = 0
    for entry in layers:
        if not isinstance(entry, dict):
            raise _Unsized("a layer entry is not an object")
        p, a, n = _layer_size(entry)
        params, largest, count = params + p, max(largest, a), count + n
    return params, largest, count


def model_size(config: Any) -> ModelSize:
    """Count the parameters a `.keras` file's `config.json` declares, layer by layer, without building anything.

    Knows the layers this project saves (Conv2D, Dense, BatchNormalization, ZeroPadShortcut, pooling, …)
    and the other standard Keras image layers (depthwise and separable convolutions, other
    normalisations, Embedding); a layer of any other class with weights is refused.

    Raises:
        InferenceError: A layer's size cannot be told (unknown class, no declared input shape, bad values).
    """
    if not isinstance(config, dict) or config.get("class_name") not in NESTED:
        raise InferenceError("the model file's config.json does not describe a Keras model (Functional or Sequential): "
                             "give a .keras file saved by Keras 3")
    try:
        params, largest, count = _layers_size(config.get("config", {}).get("layers"))
    except _Unsized as exc:
        raise InferenceError(f"the model file cannot be sized before loading: {exc}; give a .keras file of an image "
                             "classifier saved by Keras 3 (e.g. the Train tab's download)") from None
    return ModelSize(params=params, activation_bytes=largest * 4, layers=count)


def check_model_archive(zf: zipfile.ZipFile, name: str, *, max_params: int | None = None) -> ModelSize:
    """Size a `.keras` archive before Keras reads it: count its parameters, check its weights member, check memory.

    Args:
        zf: The archive (from `_open_keras_zip`).
        name: The file, for messages.
        max_params: A tighter cap on parameters than the server's (`guards.max_params`), e.g. for uploads.

    Raises:
        InferenceError: Its config cannot be read or sized, it declares more parameters than allowed, its weights
            member is far smaller or larger than those parameters need, or loading it would not fit in memory.
    """
    fix = "give a .keras file saved by Keras 3 (e.g. the Train tab's download)"
    info = zf.getinfo("config.json")
    if info.file_size > MAX_CONFIG_BYTES:
        raise InferenceError(f"{name}'s config.json is {info.file_size / MiB:.0f} MiB; at most "
                             f"{MAX_CONFIG_BYTES // MiB} MiB is read: {fix}")
    size = model_size(_json_member(zf, info, f"{name}'s config.json", fix))
    if max_params is not None and size.params > max_params:
        raise InferenceError(f"{name} declares {size.params:,} parameters ({fmt.memory(size.params * 4)} of weights); "
                             f"models loaded here may have at most {max_params:,}: use the CLI "
                             "(`python -m explorer predict`) for larger models")
    try:
        guards.check_model_size(size.params, guards.estimate_model_bytes(
            size.params, activation_bytes=3 * size.activation_bytes, batch_size=PREDICT_BATCH,
            extra=sum(i.compress_size for i in zf.infolist())), what=name, hint="give a smaller model")
    except ConfigError as exc:
        raise InferenceError(f"{exc.message}: {exc.hint}") from None
    need = size.params * 4
    weights = next((i for i in zf.infolist() if i.filename == WEIGHTS_NAME), None)
    stored = weights.file_size if weights is not None else 0
    if stored < need // 2:  # (half: a model stored in 16-bit floats)
        raise InferenceError(f"{name} declares {size.params:,} parameters ({fmt.memory(need)}) but its {WEIGHTS_NAME} "
                             f"holds only {stored:,} bytes: the weights are not all there (compressed inside the HDF5 "
                             f"file, or missing), so it is refused before it is built: {fix}")
    total = sum(i.file_size for i in zf.infolist())
    allowed = int(need * 4 * WEIGHT_BYTES_MARGIN) + MAX_CONFIG_BYTES + MAX_META_BYTES  # (weights + optimizer state)
    if total > allowed:
        raise InferenceError(f"{name} would unpack to {fmt.memory(total)}, far more than its {size.params:,} "
                             f"parameters need ({fmt.memory(need)}): it is refused before it is read")
    return size


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class LoadedModel:
    """A Keras model ready for `predict`, with the names and statistics to use.

    Attributes:
        model: The `keras.Model`.
        meta: Class names, normalisation, input shape (stored or fallback; `meta.note` says which).
        name: The file it came from (for messages and the CLI's JSON).
        probabilities: True when the model ends in a softmax; otherwise `predict` applies one.
    """

    model: Any
    meta: ModelMeta
    name: str
    probabilities: bool = True

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) images are resized to."""
        h, w, _ = self.meta.input_shape  # type: ignore[misc]
        return h, w


def _image_input_shape(model: Any) -> tuple[int, int, int]:
    """(H, W, 3) of a one-input image model.

    Raises:
        InferenceError: The model has several inputs, or an input that is not (H, W, 3) with fixed H and W.
    """
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise InferenceError(f"the model has {len(inputs)} inputs; predict needs a model with one image input (H, W, 3)")
    shape = tuple(inputs[0].shape)[1:]
    if len(shape) != 3 or shape[2] != 3 or not all(isinstance(v, int) and v > 0 for v in shape[:2]):
        shown = "×".join("?" if v is None else str(v) for v in shape)
        raise InferenceError(f"the model's input is {shown}; predict needs colour images of a fixed size, H×W×3 "
                             "(build the network with e.g. input 32x32x3)")
    return int(shape[0]), int(shape[1]), 3


def _n_outputs(model: Any) -> int:
    outputs = getattr(model, "outputs", None) or []
    shape = tuple(outputs[0].shape)[1:] if len(outputs) == 1 else ()
    if len(outputs) != 1 or len(shape) != 1 or not isinstance(shape[0], int):
        raise InferenceError("the model's output is not one vector of class scores (N,); predict needs a classifier")
    return int(shape[0])


def ends_in_softmax(model: Any) -> bool:
    """Whether the model's last layer applies a softmax (the networks built here do: `predictions`, Dense + softmax)."""
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def wrap_model(model: Any, meta: ModelMeta | None = None, *, name: str = "trained model") -> LoadedModel:
    """A model in memory (e.g. a finished training job's) ready for `predict`.

    Raises:
        InferenceError: The model is not an image classifier, or `meta` names a different number of classes.
    """
    shape = _image_input_shape(model)
    n = _n_outputs(model)
    if meta is None:
        meta = fallback_meta(n, shape)
    if len(meta.class_names) != n:
        raise InferenceError(f"{name} has {n} outputs but its stored class names list {len(meta.class_names)}: "
                             "re-save the model from the Train tab")
    if meta.input_shape != shape:
        meta = ModelMeta(class_names=meta.class_names, mean=meta.mean, std=meta.std, input_shape=shape,
                         stored=meta.stored, note=meta.note)
    return LoadedModel(model=model, meta=meta, name=name, probabilities=ends_in_softmax(model))


def load_model(source: str | os.PathLike | bytes, *, name: str | None = None,
               max_params: int | None = None) -> LoadedModel:
    """Load a `.keras` file (path or uploaded bytes) with `safe_mode=True`, with its class names and normalisation.

    Registers `ZeroPadShortcut` (option-A shortcuts) first. The archive is checked before Keras
    reads it (zip, `config.json`, at most MAX_MODEL_BYTES, unpacked size) and sized
    (`check_model_archive`: parameters counted from `config.json`, weights member, memory).

    Args:
        source: A path or the file's bytes.
        name: How to call it in messages (default: the path, or "the uploaded model file").
        max_params: A tighter cap on its parameters than the server's (e.g. for uploads).

    Raises:
        InferenceError: Not a `.keras` file, corrupt, too big for this server, unsafe (safe mode refused
            it), not an image classifier with an (H, W, 3) input, or its stored metadata does not fit it.
    """
    data, shown = _read_source(source, what="model file", limit=MAX_MODEL_BYTES)
    name = name or shown
    zf = _open_keras_zip(data, name)
    meta = _meta_from_zip(zf)
    check_model_archive(zf, name, max_params=max_params)

    from explorer.backend import load_keras
    from explorer.keras_build import zero_pad_shortcut_class

    keras = load_keras()
    zero_pad_shortcut_class()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        Path(path).write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # Keras raises ValueError, TypeError, KeyError, OSError … for bad files
            text = " ".join(str(exc).split())
            text = text if len(text) <= 300 else text[:297] + "…"
            raise InferenceError(f"Keras could not load {name} ({type(exc).__name__}: {text}): give a .keras file "
                                 "saved by Keras 3 from a network built here (custom layers other than "
                                 "ZeroPadShortcut and Lambda layers are not loaded)") from None
    if not hasattr(model, "inputs"):
        raise InferenceError(f"{name} holds a {type(model).__name__}, not a Keras model: give a saved keras.Model")
    return wrap_model(model, meta, name=name)


# --------------------------------------------------------------------------- images
def open_image(source: str | os.PathLike | bytes, *, name: str | None = None, max_bytes: int = MAX_IMAGE_BYTES,
               max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """Decode and validate an image file into an RGB `PIL.Image` (EXIF rotation applied, transparency on white).

    Raises:
        InferenceError: Too large (bytes or pixels), not an image in IMAGE_FORMATS, or truncated/corrupt.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    data, shown = _read_source(source, what="image", limit=max_bytes)
    name = name or shown
    formats = ", ".join(IMAGE_FORMATS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            w, h = img.size
            if w * h > max_pixels:
                raise InferenceError(f"{name} is {w}×{h} pixels; images may have at most {max_pixels:,} pixels "
                                     "(shrink it first)")
            img.draft("RGB", (512, 512))  # JPEG: decode at a reduced scale, enough for any small input
            img.load()
            img = ImageOps.exif_transpose(img)
    except InferenceError:
        raise
    except UnidentifiedImageError:
        raise InferenceError(f"{name} is not an image Pillow can read as {formats}: give a PNG or JPEG file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InferenceError(f"{name} has too many pixels; images may have at most {max_pixels:,} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InferenceError(f"{name} could not be decoded ({exc}): the file is truncated or corrupt") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    elif img.mode != "RGB":
        img = img.convert("RGB")
    return img


def fit_image(img: Any, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop a PIL image to the aspect ratio of `size` = (H, W), resize it, and return (H, W, 3) uint8."""
    from PIL import Image

    h, w = size
    iw, ih = img.size
    if iw * h > ih * w:  # wider than the target: crop the sides
        cw, ch = ih * w / h, ih
    else:  # taller: crop top and bottom
        cw, ch = iw, iw * h / w
    box = ((iw - cw) / 2, (ih - ch) / 2, (iw + cw) / 2, (ih + ch) / 2)
    fitted = img.resize((w, h), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return np.asarray(fitted, dtype=np.uint8).reshape(h, w, 3)


def read_image(source: str | os.PathLike | bytes, size: tuple[int, int], *, name: str | None = None,
               max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file (path or bytes) as the network sees it: (H, W, 3) uint8, centre-cropped and resized to `size`.

    Raises:
        InferenceError: See `open_image`.
    """
    return fit_image(open_image(source, name=name, max_bytes=max_bytes, max_pixels=max_pixels), size)


# --------------------------------------------------------------------------- prediction
def preprocess(images: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32, standardised per channel exactly as training does (`explorer.data.normalise`)."""
    x = np.asarray(images, dtype=np.float32)
    scale = np.asarray([1.0 / (255.0 * s) for s in std], np.float32)
    offset = np.asarray([-m / s for m, s in zip(mean, std, strict=True)], np.float32)
    return x * scale + offset


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) scores."""
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def probabilities(model: Any, images: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD, *,
                  apply_softmax: bool | None = None, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, C) of uint8 images (N, H, W, 3) already at the model's input size.

    Args:
        apply_softmax: Apply a softmax to the outputs; None decides by the model's last layer (`ends_in_softmax`).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if apply_softmax is None:
        apply_softmax = not ends_in_softmax(model)
    x = preprocess(images, mean, std)
    parts = [np.asarray(model(x[i:i + batch_size], training=False), dtype=np.float64) for i in range(0, len(x), batch_size)]
    out = np.concatenate(parts) if parts else np.zeros((0, 0))
    return softmax(out) if apply_softmax else out


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int = DEFAULT_TOP) -> list[list[tuple[str, float]]]:
    """The k most probable (name, probability) of each row, most probable first (ties: lower index first)."""
    k = max(1, min(int(k), probs.shape[1]))
    out = []
    for row in np.asarray(probs):
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(class_names[i], float(row[i])) for i in order])
    return out


def predict(model: Any, images: np.ndarray, class_names: Sequence[str] = CLASSES, mean: Sequence[float] = MEAN,
            std: Sequence[float] = STD, top: int = DEFAULT_TOP, *, apply_softmax: bool | None = None
            ) -> list[list[tuple[str, float]]]:
    """Top-`top` classes with probabilities for each image.

    Args:
        model: A Keras image classifier (or `LoadedModel`, whose names and statistics then win over the arguments).
        images: uint8 (N, H, W, 3) at the model's input size (see `read_image`), or one (H, W, 3) image.
        class_names: One name per output.
        mean: Per-channel mean in [0, 1] units used in training.
        std: Per-channel standard deviation in [0, 1] units used in training.
        top: How many classes per image (at most the number of classes).
        apply_softmax: See `probabilities`.

    Returns:
        Per image, a list of (class name, probability), most probable first.
    """
    if isinstance(model, LoadedModel):
        class_names, mean, std = model.meta.class_names, model.meta.mean, model.meta.std
        apply_softmax = (not model.probabilities) if apply_softmax is None else apply_softmax
        model = model.model
    probs = probabilities(model, images, mean, std, apply_softmax=apply_softmax)
    if probs.shape[1] != len(class_names):
        raise InferenceError(f"the model has {probs.shape[1]} outputs but {len(class_names)} class names were given")
    return top_k(probs, class_names, top)


def thumbnail_note(meta: ModelMeta) -> str:
    """An honest line on what the network sees and what its probabilities mean."""
    h, w, _ = meta.input_shape or (32, 32, 3)
    n = len(meta.class_names)
    return (f"The network sees each image as a {h}×{w} thumbnail (centre-cropped to its aspect ratio, then shrunk) and "
            f"must choose one of its {n} classes — even for a photo of something else. The probabilities are the "
            "model's confidence, not a guarantee; a briefly trained model is often confidently wrong.")
