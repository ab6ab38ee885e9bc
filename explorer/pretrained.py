"""ImageNet weights of keras.applications ResNetV2 loaded into *our* model, layer by layer, and fine-tuning setup."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.config import ConfigError, ResNetConfig
from explorer.presets import PRESETS

APPLICATIONS = {"resnet50v2": "ResNet50V2", "resnet101v2": "ResNet101V2", "resnet152v2": "ResNet152V2"}
WEIGHT_FILES = {  # the names keras.applications downloads to ~/.keras/models
    name: (f"{name}_weights_tf_dim_ordering_tf_kernels.h5", f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5")
    for name in APPLICATIONS
}
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"

_FIXED = {"input": None, "stem_pad": "conv1_pad", "stem_conv": "conv1_conv", "stem_pool_pad": "pool1_pad",
          "stem_pool": "pool1_pool", "head_bn": "post_bn", "head_relu": "post_relu", "head_pool": "avg_pool",
          "predictions": "predictions"}
_PARTS = {"bn1": "preact_bn", "relu1": "preact_relu", "conv1": "1_conv", "bn2": "1_bn", "relu2": "1_relu",
          "pad2": "2_pad", "conv2": "2_conv", "bn3": "2_bn", "relu3": "2_relu", "conv3": "3_conv",
          "add": "out", "shortcut": "0_conv"}


class WeightsError(ConfigError):
    """Weights that cannot be found or do not fit; the message says where to put them."""


def reference_name(name: str) -> str | None:
    """Our node name → the keras.applications ResNetV2 layer name (None for the input and its unnamed pools)."""
    if name in _FIXED:
        return _FIXED[name]
    stage, block, part = name.split("_", 2)
    if part not in _PARTS:
        return None
    return f"conv{int(stage[5:]) + 1}_block{block[5:]}_{_PARTS[part]}"


def base_preset(config: ResNetConfig) -> str | None:
    """The keras.applications preset whose body this config has (head, classes and freezing aside), if any."""
    for name in APPLICATIONS:
        ref = PRESETS[name].config
        if config.replace(classes=ref.classes, freeze=0, dropout=0.0, input_shape=config.input_shape) == ref.replace(
                input_shape=config.input_shape):
            return name
    return None


@dataclass(frozen=True)
class LoadReport:
    """What `load_imagenet_weights` copied."""

    preset: str
    source: str
    layers: int
    params: int
    skipped: tuple[str, ...]


def find_weights(preset: str, *, weights: str | Path | None = None, include_top: bool = True,
                 either: bool = False) -> Path | None:
    """A local weights file: the one given, else keras.applications' cache (~/.keras/models); None if absent.

    Args:
        preset: resnet50v2, resnet101v2 or resnet152v2.
        weights: A file the user gave (raises WeightsError, saying where to put it, when it is not there).
        include_top: Look for the file with the ImageNet classifier (else the `_notop` one) in the cache.
        either: Fall back to the other of the two cached files (the full one serves a new head as well).
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError("weights", f"no weights file at {path}", _where_to_put(preset))
        return path
    order = (include_top, not include_top) if either else (include_top,)
    for top in order:
        cached = Path("~/.keras/models").expanduser() / WEIGHT_FILES[preset][0 if top else 1]
        if cached.is_file():
            return cached
    return None


def file_has_top(path: str | Path) -> bool | None:
    """Whether a keras.applications weights file holds the ImageNet classifier (`predictions`); None if unknown.

    Reads both formats: the legacy `.h5` that keras.applications downloads (layer names in its
    attributes) and Keras 3's `.weights.h5` from `save_weights` (layers by class: a `dense` layer).
    """
    try:
        import h5py

        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            if "layer_names" in group.attrs:
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
                return "predictions" in names
            if "layers" in f:
                return any(str(name).startswith("dense") for name in f["layers"])
    except Exception:  # noqa: BLE001 - not an HDF5 file, h5py missing, ...: decided by the name, then by loading
        return None
    return None


def where_to_put(preset: str) -> str:
    """Where a weights file of `preset` goes (for a page or a hint)."""
    return _where_to_put(preset)


def _where_to_put(preset: str) -> str:
    top, notop = WEIGHT_FILES[preset]
    return (f"download {WEIGHTS_URL}{top} (or {notop} without the classifier) and pass its path, "
            f"or put it in ~/.keras/models/")


def reference_model(preset: str, *, weights: str | Path | None = None, include_top: bool = True,
                    input_shape: tuple[int, int, int] = (224, 224, 3), download: bool = True) -> Any:
    """keras.applications' model with ImageNet weights: from a file, the cache, or (online) a download."""
    from explorer.backend import load_keras

    keras = load_keras()
    cls = getattr(keras.applications, APPLICATIONS[preset])
    path = find_weights(preset, weights=weights, include_top=include_top)
    # The weights do not depend on H×W, but keras.applications wants at least 32×32.
    kwargs = {"include_top": include_top, "input_shape": (max(input_shape[0], 32), max(input_shape[1], 32), input_shape[2])}
    if path is not None:
        model = cls(weights=None, **kwargs)
        try:
            model.load_weights(str(path))
        except Exception as exc:  # noqa: BLE001 - h5py/keras raise many kinds; all mean "wrong file"
            raise WeightsError("weights", f"{path.name} does not fit {APPLICATIONS[preset]} ({exc})",
                               _where_to_put(preset)) from None
        return model
    if not download:
        raise WeightsError("weights", f"no ImageNet weights for {preset} on this machine", _where_to_put(preset))
    try:
        return cls(weights="imagenet", **kwargs)
    except Exception as exc:  # noqa: BLE001 - offline: URLError, HTTPError, socket errors, ...
        raise WeightsError("weights", f"could not download the ImageNet weights ({type(exc).__name__})",
                           _where_to_put(preset)) from None


def copy_weights(reference: Any, model: Any, graph: Any) -> tuple[int, int, tuple[str, ...]]:
    """Copy every weighted layer of `reference` into ours by name, checking each shape.

    Returns:
        (layers copied, parameters copied, our layers left as initialised — e.g. a new head).
    """
    ref_names = {layer.name for layer in reference.layers}
    copied = params = 0
    skipped = []
    for node in graph:
        layer = model.get_layer(node.name)
        if not layer.weights:
            continue
        target = reference_name(node.name)
        if target is None or target not in ref_names:
            skipped.append(node.name)
            continue
        ref_layer = reference.get_layer(target)
        ours = [tuple(w.shape) for w in layer.weights]
        theirs = [tuple(w.shape) for w in ref_layer.weights]
        if ours != theirs:
            if node.name == "predictions":
                skipped.append(node.name)  # a new head for other classes
                continue
            raise WeightsError("weights", f"{node.name} has weights {ours} but {target} has {theirs}",
                               "use the matching preset (the structures differ)")
        layer.set_weights(ref_layer.get_weights())
        copied += 1
        params += layer.count_params()
    return copied, params, tuple(skipped)


def load_imagenet_weights(model: Any, config: ResNetConfig, *, weights: str | Path | None = None,
                          download: bool = True) -> LoadReport:
    """Load keras.applications' ImageNet weights into our model of a ResNetV2 preset (or a fine-tune of one).

    Args:
        model: Our Keras model (from `explorer.keras_build.build_model(config)`).
        config: Its config: a `resnet50v2/101v2/152v2` body, any classes, input size and freezing.
        weights: A local weights file of keras.applications, with or without the top: the downloaded
            legacy `.h5` or a `.weights.h5` from `save_weights`. None: the Keras cache
            (~/.keras/models), else a download.
        download: Whether to try keras.applications' download when no local file is found.

    Raises:
        WeightsError: Not a ResNetV2 body, no weights file (the hint says where to put it), or a file
            or layer that does not fit.
    """
    from explorer.annotate import build

    preset = base_preset(config)
    if preset is None:
        raise WeightsError("preset", "ImageNet weights exist only for the resnet50v2/101v2/152v2 bodies",
                           "start from preset resnet50v2, resnet101v2 or resnet152v2 (classes, input size and freezing may change)")
    if config.input_shape[2] != 3:
        raise WeightsError("input", f"ImageNet weights need a 3-channel (RGB) input, not {config.input_shape[2]} channels",
                           "set the input channels to 3")
    want_top = config.classes == 1000
    path = find_weights(preset, weights=weights, include_top=want_top, either=True)
    if path is None:
        include_top = want_top
    else:  # the file decides (a new head for other classes is left as initialised either way)
        has_top = file_has_top(path)
        include_top = ("notop" not in path.name) if has_top is None else has_top
    ref = reference_model(preset, weights=path, include_top=include_top,
                          input_shape=tuple(config.input_shape), download=download)
    layers, params, skipped = copy_weights(ref, model, build(config).graph)
    source = str(path) if path is not None else f"keras.applications download ({APPLICATIONS[preset]})"
    return LoadReport(preset, source, layers, params, skipped)
