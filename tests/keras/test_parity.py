"""Parity: the Keras model built from the graph has, node by node, the annotated shapes and counts."""

from __future__ import annotations

import pytest

from explorer.annotate import build
from explorer.config import ResNetConfig
from explorer.keras_build import GraphError, build_model
from explorer.presets import PRESETS
from tests.helpers import GENERATED
from tests.keras.keras_compare import assert_node_by_node

SMALL_PRESETS = [name for name, p in PRESETS.items() if len(build(p.config).graph) <= 600]


@pytest.mark.parametrize("name", SMALL_PRESETS)
def test_preset_parity(name):
    ag = build(PRESETS[name].config)
    assert_node_by_node(ag, build_model(ag))


@pytest.mark.parametrize("index", range(len(GENERATED)))
def test_generated_parity(index):
    ag = build(GENERATED[index])
    assert_node_by_node(ag, build_model(ag))


def test_generated_configs_cover_the_options():
    configs = GENERATED
    for field in ("version", "block", "shortcut", "stem", "head", "stages", "explicit_padding", "width_rule",
                  "batch_norm", "zero_init", "freeze"):
        assert len({getattr(c, field) for c in configs}) > 1, field
    assert {c.shortcut for c in configs} >= {"A", "B", "C", "none"}


def test_builder_refuses_broken_graphs_with_the_diagnostics():
    with pytest.raises(GraphError) as err:
        build_model(PRESETS["resnet20"].config.replace(shortcut="identity"))
    assert "stage2_block1_add" in err.value.message and "stage3_block1_add" in err.value.message
    assert "shortcut" in err.value.hint


def test_builder_accepts_warnings():
    ag = build(ResNetConfig(input_shape=(2, 2, 3)))
    assert ag.diagnostics and not ag.errors
    assert_node_by_node(ag, build_model(ag))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["preact-resnet1001", "resnet1202"])
def test_very_deep_presets_build(name):
    ag = build(PRESETS[name].config)
    model = build_model(ag)
    assert len(model.layers) == len(ag.graph)
    assert model.count_params() == ag.total_params
    assert tuple(model.output.shape[1:]) == (10,)


def test_zero_init_makes_every_block_start_as_identity():
    import numpy as np

    for cfg in (ResNetConfig(depth=8, filters=4, zero_init=True),
                ResNetConfig(version=2, block="bottleneck", depth=11, filters=4, zero_init=True, shortcut="B")):
        model = build_model(cfg)
        ag = build(cfg)
        x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
        for block in ag.graph.blocks:
            add = block.nodes[[ag.graph[n].op for n in block.nodes].index("add")]
            main_in, short_in = ag.graph[add].inputs
            probe = type(model)(model.input, [model.get_layer(main_in).output, model.get_layer(short_in).output])
            main_out, _ = probe(x, training=False)
            assert float(np.abs(np.asarray(main_out)).max()) == 0.0, (cfg.version, add)


def test_without_batch_norm_there_is_no_bn_and_convs_get_biases():
    ag = build(PRESETS["resnet20"].config.replace(batch_norm=False))
    assert not [n for n in ag.graph if n.op == "bn"]
    assert all(n.attrs["bias"] for n in ag.graph if n.op == "conv")
    assert ag.non_trainable_params == 0
    assert_node_by_node(ag, build_model(ag))


def test_zero_pad_shortcut_keeps_every_stride_th_pixel_and_pads_channels():
    """Option A: the subsampling (a 1×1 average pool) is exactly x[:, ::s, ::s], odd sizes included, then zeros."""
    import numpy as np

    from explorer.keras_build import zero_pad_shortcut_class

    x = np.random.default_rng(0).normal(size=(2, 7, 5, 3)).astype("float32")
    for stride, channels in ((2, 8), (3, 3), (1, 6)):
        y = np.asarray(zero_pad_shortcut_class()(stride, channels)(x))
        expected = np.pad(x[:, ::stride, ::stride, :], [(0, 0), (0, 0), (0, 0), (0, channels - 3)])
        assert y.shape == expected.shape
        assert np.array_equal(y, expected)
