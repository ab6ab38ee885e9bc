"""Python API: one-call Keras models, and a residual stack appended to an existing model."""

from __future__ import annotations

import keras
import pytest

from explorer.api import add_residual_stack, config_of, describe, keras_model
from explorer.config import ConfigError
from explorer.keras_build import GraphError


def test_keras_model_from_a_preset_with_overrides():
    model = keras_model("resnet56", classes=100)
    assert model.count_params() == describe("resnet56", classes=100).total_params
    assert tuple(model.output.shape) == (None, 100)
    assert keras_model("tutorial", depth=11).count_params() == describe("tutorial", depth=11).total_params


def test_config_of_accepts_names_configs_and_dicts():
    cfg = config_of("resnet20", blocks=(1, 1, 1))
    assert cfg.depth is None and cfg.resolved_depth == 8
    assert config_of(cfg) is cfg
    assert config_of({"depth": 14}).resolved_depth == 14
    with pytest.raises(ConfigError):
        config_of(42)
    with pytest.raises(ConfigError):
        config_of("resnet21")


def test_add_residual_stack_to_an_existing_model():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    y = add_residual_stack(x, "preact-resnet164", blocks=(2, 2), stages=2, name="body")
    assert tuple(y.shape) == (None, 16, 16, 128)
    z = add_residual_stack(y, "resnet20", blocks=(1,), stages=1, widths=(128,), name="tail")
    out = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(z))
    model = keras.Model(inputs, out)
    names = [layer.name for layer in model.layers]
    assert "body_stage1_block1_conv1" in names and "tail_stage1_block1_add" in names
    assert len(names) == len(set(names))
    # the stack has the parameters the core computes for it
    from explorer.annotate import annotate
    from explorer.graph import expand

    body = annotate(expand(config_of("preact-resnet164", blocks=(2, 2), stages=2, input_shape=(32, 32, 16)),
                           body_only=True))
    body_params = sum(layer.count_params() for layer in model.layers if layer.name.startswith("body_"))
    assert body_params == body.total_params


def test_add_residual_stack_refuses_what_does_not_fit():
    inputs = keras.Input((32, 32, 3))
    with pytest.raises(GraphError):
        add_residual_stack(inputs, "resnet20", shortcut="identity", name="bad")
    with pytest.raises(ConfigError):
        add_residual_stack(keras.Input((10,)), "resnet20")
