"""Teaching views' data: receptive-field ribbon, receptive box, block anatomy."""

from __future__ import annotations

import pydot

from explorer.annotate import build
from explorer.presets import PRESETS
from explorer.teaching import anatomy, anatomy_dot, counterpart, receptive_box, ribbon


def test_ribbon_of_resnet20():
    rows = ribbon(build(PRESETS["resnet20"].config))
    assert len(rows) == 19  # stem + 18 block convs
    assert rows[0] == {"name": "stem_conv", "depth_index": 1, "receptive_field": 3, "stride": 1,
                       "height": 32, "width": 32, "channels": 16}
    # every 3×3 conv adds 2·stride; strides 1 → 2 → 4 at the stage boundaries
    assert [r["receptive_field"] for r in rows[:8]] == [3, 5, 7, 9, 11, 13, 15, 17]
    assert rows[7]["stride"] == 2 and rows[7]["height"] == 16
    assert rows[-1]["receptive_field"] == 81 and rows[-1]["stride"] == 4 and rows[-1]["channels"] == 64


def test_receptive_box():
    ag = build(PRESETS["resnet20"].config)
    assert receptive_box(ag, "stem_conv", row=10, col=4) == (9, 3, 11, 5)
    assert receptive_box(ag, "stem_conv", row=0, col=0) == (0, 0, 1, 1)  # clipped at the border
    top, left, bottom, right = receptive_box(ag, "stage2_block1_conv1", row=4, col=4)
    assert bottom - top + 1 == 17 and right - left + 1 == 17
    assert receptive_box(ag, "stage3_block3_conv2", row=3, col=3) == (0, 0, 31, 31)


def test_anatomy_v1_vs_v2():
    a, b = anatomy(PRESETS["resnet56"].config, "version")
    assert a.title == "v1 basic" and b.title == "v2 basic"
    assert [n.op for n in a.nodes] == ["conv", "bn", "relu", "conv", "bn", "add", "relu"]
    assert [n.op for n in b.nodes] == ["bn", "relu", "conv", "bn", "relu", "conv", "add"]
    assert a.changed and b.changed
    assert not any(n.name in a.changed for n in a.nodes if n.op == "conv")
    graph = pydot.graph_from_dot_data(anatomy_dot((a, b)))[0]
    assert len(graph.get_subgraphs()) == 2


def test_anatomy_basic_vs_bottleneck():
    a, b = anatomy(PRESETS["resnet20"].config, "block")
    assert [n.attrs["kernel"] for n in b.nodes if n.op == "conv"] == [1, 3, 1]
    assert counterpart(PRESETS["resnet20"].config, "block").stage_blocks == (3, 3, 3)


def test_receptive_box_equals_where_keras_gradients_reach():
    import numpy as np
    import tensorflow as tf

    from explorer.config import ResNetConfig
    from explorer.keras_build import build_model

    cfg = ResNetConfig(depth=8, filters=8, input_shape=(24, 24, 3))
    ag = build(cfg)
    model = build_model(ag)
    x = tf.convert_to_tensor(np.random.default_rng(1).normal(size=(1, 24, 24, 3)).astype("float32"))
    for name, row, col in [("stem_conv", 5, 7), ("stage1_block1_conv2", 0, 3), ("stage2_block1_conv1", 3, 6),
                           ("stage3_block1_conv2", 2, 1), ("stage3_block1_out", 5, 5)]:
        probe = type(model)(model.input, model.get_layer(name).output)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = probe(x, training=False)
            target = tf.reduce_sum(out[0, row, col, :])
        grad = np.abs(np.asarray(tape.gradient(target, x))[0]).sum(axis=-1)
        rows, cols = np.nonzero(grad)
        assert (rows.min(), cols.min(), rows.max(), cols.max()) == receptive_box(ag, name, row=row, col=col), name
