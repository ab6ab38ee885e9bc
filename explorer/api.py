"""Python API: a Keras model from a preset or config in one call, and a residual stack appended to your own model."""

from __future__ import annotations

from typing import Any

from explorer import guards
from explorer.annotate import AnnotatedGraph, annotate, build
from explorer.config import ConfigError, ResNetConfig
from explorer.graph import expand
from explorer.presets import get_preset


def config_of(spec: str | ResNetConfig | dict, **overrides: Any) -> ResNetConfig:
    """A config from a preset name, a config or a dict of fields, with keyword overrides (`ResNetConfig.with_changes`)."""
    if isinstance(spec, str):
        base = get_preset(spec).config
    elif isinstance(spec, ResNetConfig):
        base = spec
    elif isinstance(spec, dict):
        base = ResNetConfig.from_dict(spec)
    else:
        raise ConfigError("config", f"cannot make a config from {type(spec).__name__}",
                          "give a preset name, a ResNetConfig or a dict of fields")
    return base.with_changes(**overrides)


def describe(spec: str | ResNetConfig | dict, **overrides: Any) -> AnnotatedGraph:
    """The annotated graph (shapes, params, MACs, diagnostics) — no TensorFlow needed."""
    return build(config_of(spec, **overrides))


def keras_model(spec: str | ResNetConfig | dict, *, name: str = "resnet", **overrides: Any):
    """Build the Keras model of a preset or config in one call.

    Example:
        >>> from explorer.api import keras_model
        >>> model = keras_model("resnet56", classes=100)
        >>> model.count_params()
        863012

    Raises:
        ConfigError: The config is invalid, does not fit together (GraphError lists where), or is too big to build
            here (`explorer.guards.check_build_memory`: parameters, memory).
    """
    from explorer.keras_build import build_model

    ag = build(config_of(spec, **overrides))
    guards.check_build_memory(ag, what="this network")
    return build_model(ag, name=name)


def add_residual_stack(x: Any, spec: str | ResNetConfig | dict, *, name: str = "resnet", **overrides: Any) -> Any:
    """Append the stages of a config (no stem, no head) to a Keras tensor of shape (H, W, C).

    The config's version, block, blocks per stage, widths, shortcut and stride placement apply;
    its input shape is taken from `x`. Every new layer's name starts with `name + "_"`.

    Example:
        >>> import keras
        >>> from explorer.api import add_residual_stack
        >>> inputs = keras.Input((32, 32, 16))
        >>> y = add_residual_stack(inputs, "preact-resnet164", blocks=(2, 2), stages=2, name="body")
        >>> tuple(y.shape)
        (None, 16, 16, 128)

    Returns:
        The output tensor of the last block.

    Raises:
        ConfigError: The config is invalid, or the stack is too big to build here (`explorer.guards.check_build_memory`).
    """
    shape = tuple(int(d) for d in x.shape[1:])
    if len(shape) != 3:
        raise ConfigError("input", f"a residual stack needs an (H, W, C) tensor, not {shape}",
                          "append it after a convolutional layer")
    config = config_of(spec, **{**overrides, "input_shape": shape})
    ag = annotate(expand(config, body_only=True))
    guards.check_build_memory(ag, what="this residual stack")
    from explorer.keras_build import apply_graph

    return apply_graph(ag, x, prefix=f"{name}_")
