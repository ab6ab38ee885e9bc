"""The one table of graph ops: for each, its Keras class, the arguments that class gets from a node, and its labels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Attrs = Mapping[str, Any]
Arguments = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Regularizer:
    """A Keras regularizer as data: `keras.regularizers.<kind>(factor)` (the builder makes it, codegen prints it).

    Attributes:
        kind: The class in `keras.regularizers` ("L2").
        factor: Its one argument.
    """

    kind: str
    factor: float


@dataclass(frozen=True)
class Op:
    """Everything the views and the Keras side know about one op, besides its shape rule (in annotate).

    Attributes:
        keras_class: The Keras layer class a node of this op becomes (the table's "type" column).
        attrs: The node attributes the op understands (the source export refuses any other).
        arguments: The node's attributes → the layer's (positional, keyword) arguments, as plain Python
            values (initializer names, a `Regularizer`); the name is not among them. None for the input,
            which is `keras.Input` rather than a layer call.
        label: The node's attributes → the short description drawn in the diagram ("3×3 conv, 64, /2").
        anatomy: The label in the block-anatomy view; None when it is `label`.
        custom: The class is the explorer's own (registered by keras_build, written out by codegen),
            not one of `keras.layers`.
    """

    keras_class: str
    attrs: frozenset[str]
    arguments: Callable[[Attrs], Arguments] | None
    label: Callable[[Attrs], str]
    anatomy: str | None
    custom: bool = False


def _stride(s: int) -> str:
    return f", /{s}" if s > 1 else ""


def _conv_arguments(a: Attrs) -> Arguments:
    kwargs: dict[str, Any] = {"strides": a["stride"], "padding": a["padding"], "use_bias": a["bias"],
                              "kernel_initializer": a["initializer"]}
    if a["l2"] > 0:
        kwargs["kernel_regularizer"] = Regularizer("L2", float(a["l2"]))
    return (a["filters"], a["kernel"]), kwargs


def _bn_arguments(a: Attrs) -> Arguments:
    kwargs: dict[str, Any] = {"epsilon": float(a["epsilon"])}
    if a.get("gamma", "ones") != "ones":
        kwargs["gamma_initializer"] = a["gamma"]
    return (), kwargs


def _pool_arguments(a: Attrs) -> Arguments:
    return (a["size"],), {"strides": a["stride"], "padding": a["padding"]}


def _pool_label(kind: str) -> Callable[[Attrs], str]:
    return lambda a: f"{a['size']}×{a['size']} {kind}-pool{_stride(a['stride'])}"


def _dense_label(a: Attrs) -> str:
    act = a.get("activation")
    return f"dense {a['units']}" + (f", {act}" if act else "")


def _no_arguments(a: Attrs) -> Arguments:
    return (), {}


_POOL_ATTRS = frozenset({"size", "stride", "padding"})

OPS: dict[str, Op] = {
    "input": Op("InputLayer", frozenset({"shape"}), None, lambda a: "input", "input"),
    "conv": Op(
        "Conv2D", frozenset({"filters", "kernel", "stride", "padding", "bias", "initializer", "l2"}), _conv_arguments,
        lambda a: f"{a['kernel']}×{a['kernel']} conv, {a['filters']}{_stride(a['stride'])}", None,
    ),
    "bn": Op("BatchNormalization", frozenset({"epsilon", "gamma"}), _bn_arguments, lambda a: "BN", "BatchNorm"),
    "relu": Op("Activation", frozenset(), lambda a: (("relu",), {}), lambda a: "ReLU", "ReLU"),
    "dropout": Op("Dropout", frozenset({"rate"}), lambda a: ((float(a["rate"]),), {}),
                  lambda a: f"dropout {a['rate']:g}", "dropout"),
    "add": Op("Add", frozenset(), _no_arguments, lambda a: "+", "add"),
    "zero_pad": Op("ZeroPadding2D", frozenset({"pad"}), lambda a: ((a["pad"],), {}),
                   lambda a: f"zero-pad {a['pad']}", "pad"),
    "maxpool": Op("MaxPooling2D", _POOL_ATTRS, _pool_arguments, _pool_label("max"), "1×1 max-pool /2"),
    "avgpool": Op("AveragePooling2D", _POOL_ATTRS, _pool_arguments, _pool_label("avg"), "avgpool"),
    "gap": Op("GlobalAveragePooling2D", frozenset(), _no_arguments, lambda a: "global avg pool", "gap"),
    "flatten": Op("Flatten", frozenset(), _no_arguments, lambda a: "flatten", "flatten"),
    "dense": Op(
        "Dense", frozenset({"units", "activation", "initializer"}),
        lambda a: ((a["units"],), {"activation": a["activation"], "kernel_initializer": a["initializer"]}),
        _dense_label, "dense",
    ),
    "zero_pad_shortcut": Op(
        "ZeroPadShortcut", frozenset({"stride", "channels"}), lambda a: ((a["stride"], a["channels"]), {}),
        lambda a: f"zero-pad to {a['channels']}{_stride(a['stride'])}", "zero-pad shortcut", custom=True,
    ),
}
"""Every op a graph node can have, by name (`Node.op`)."""


def label(op: str, attrs: Attrs) -> str:
    """The diagram's short description of a node: '3×3 conv, 64, /2', 'BN', '+', 'dense 10, softmax'."""
    spec = OPS.get(op)
    return spec.label(attrs) if spec else op


def anatomy_label(op: str, attrs: Attrs) -> str:
    """The block-anatomy view's label of a node: 'BatchNorm', 'add', '1×1 conv, 64'."""
    spec = OPS.get(op)
    if spec is None:
        return op
    return spec.label(attrs) if spec.anatomy is None else spec.anatomy
