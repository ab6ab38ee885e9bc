"""Turn an annotated graph into a `keras.Model`, one layer per node (the only core module that imports Keras)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from explorer.annotate import AnnotatedGraph, build
from explorer.backend import load_keras
from explorer.config import ConfigError, ResNetConfig
from explorer.graph import Node
from explorer.ops import OPS, Regularizer

if TYPE_CHECKING:  # pragma: no cover
    import keras

_ZERO_PAD_SHORTCUT = None


class GraphError(ConfigError):
    """A graph with errors was asked to become a Keras model."""


def zero_pad_shortcut_class() -> type:
    """The registered Keras layer for option-A shortcuts (subsample, then zero-pad channels)."""
    global _ZERO_PAD_SHORTCUT
    if _ZERO_PAD_SHORTCUT is not None:
        return _ZERO_PAD_SHORTCUT
    keras = load_keras()

    @keras.saving.register_keras_serializable(package="explorer")
    class ZeroPadShortcut(keras.layers.Layer):
        """Option-A shortcut: keep every `stride`-th pixel, append zero channels up to `channels`."""

        def __init__(self, stride: int, channels: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.stride = stride
            self.channels = channels

        def call(self, x: Any) -> Any:
            ops = keras.ops
            if self.stride > 1:  # every stride-th pixel: a 1×1 average pool, ~3× cheaper than a strided slice
                x = ops.average_pool(x, 1, strides=self.stride, padding="valid")  # (forward and backward, here)
            extra = self.channels - x.shape[-1]
            if extra > 0:
                x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])
            return x

        def compute_output_shape(self, input_shape: tuple) -> tuple:
            n, h, w, _ = input_shape
            s = self.stride
            h = None if h is None else -(-h // s)
            w = None if w is None else -(-w // s)
            return (n, h, w, self.channels)

        def get_config(self) -> dict:
            return {**super().get_config(), "stride": self.stride, "channels": self.channels}

    _ZERO_PAD_SHORTCUT = ZeroPadShortcut
    return ZeroPadShortcut


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Raise Python's recursion limit for the duration of a deep functional build."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


# The explorer's own layers by class name (`Op.custom`), each made and registered on first use.
_CUSTOM_LAYERS = {"ZeroPadShortcut": zero_pad_shortcut_class}


def _layer(node: Node, keras: Any, prefix: str = "") -> Any:
    """A new Keras layer for one node, from its entry in `explorer.ops.OPS`."""
    spec = OPS[node.op]
    if spec.arguments is None:  # pragma: no cover - the input is keras.Input, never a layer call
        raise ValueError(f"no Keras layer for op {node.op!r}")
    args, kwargs = spec.arguments(node.attrs)
    kwargs = {key: _keras_value(value, keras) for key, value in kwargs.items()}
    cls = _CUSTOM_LAYERS[spec.keras_class]() if spec.custom else getattr(keras.layers, spec.keras_class)
    return cls(*args, **kwargs, name=prefix + node.name)


def _keras_value(value: Any, keras: Any) -> Any:
    """An argument from the op table as Keras wants it (a `Regularizer` becomes the regularizer object)."""
    if isinstance(value, Regularizer):
        return getattr(keras.regularizers, value.kind)(value.factor)
    return value


def build_model(source: AnnotatedGraph | ResNetConfig, *, name: str = "resnet") -> keras.Model:
    """Build the Keras functional model of a config or annotated graph.

    Args:
        source: A config, or an annotated graph (from `explorer.annotate.build`).
        name: The model's name.

    Returns:
        A `keras.Model` whose layer names are the graph's node names.

    Raises:
        GraphError: The graph has error diagnostics (listed in the message).
    """
    ag = build(source) if isinstance(source, ResNetConfig) else source
    _refuse_errors(ag)
    keras = load_keras()
    first = ag.graph.nodes[0]
    inputs = keras.Input(shape=tuple(first.attrs["shape"]), name=first.name)
    output = apply_graph(ag, inputs)
    with recursion_limit(10_000 + 20 * len(ag.graph)):
        return keras.Model(inputs, output, name=name)


def _refuse_errors(ag: AnnotatedGraph) -> None:
    if ag.errors:
        listed = "; ".join(f"{d.node}: {d.message}" for d in ag.errors)
        raise GraphError("config", f"the network does not fit together ({listed})", ag.errors[0].hint)


def apply_graph(ag: AnnotatedGraph, x: Any, *, prefix: str = "") -> Any:
    """Call one new Keras layer per node on tensor `x` (which stands for the graph's input node).

    Args:
        ag: An annotated graph without errors.
        x: A Keras tensor of the graph input's shape.
        prefix: Prepended to every layer name (to append the same graph twice to one model).

    Returns:
        The tensor of the graph's last node.
    """
    _refuse_errors(ag)
    keras = load_keras()
    first = ag.graph.nodes[0]
    tensors: dict[str, Any] = {first.name: x}
    with recursion_limit(10_000 + 20 * len(ag.graph)):
        for node in ag.graph.nodes[1:]:
            layer = _layer(node, keras, prefix)
            if node.attrs.get("frozen"):
                layer.trainable = False
            args = [tensors[i] for i in node.inputs]
            tensors[node.name] = layer(args if node.op == "add" else args[0])
    return tensors[ag.graph.output.name]


def save_model_file(config: ResNetConfig, path: str) -> int:
    """Build the Keras model of `config` and save it as a `.keras` file at `path` (e.g. in a child process).

    Returns:
        The file's size in bytes.

    Raises:
        GraphError: The graph has error diagnostics.
    """
    import os

    ag = build(config)
    model = build_model(ag, name="resnet")
    with recursion_limit(10_000 + 20 * len(ag.graph)):
        model.save(path)
    return os.path.getsize(path)
