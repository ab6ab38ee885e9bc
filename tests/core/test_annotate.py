"""annotate(): shape, parameter, MAC and receptive-field rules on hand-worked cases; diagnostics of each kind."""

from __future__ import annotations

from explorer import fmt
from explorer.annotate import annotate, build
from explorer.config import ResNetConfig
from explorer.graph import Graph, Node, expand
from explorer.presets import PRESETS


def conv_params(k: int, cin: int, cout: int, bias: bool = False) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def test_resnet20_params_worked_by_hand():
    # He 2015 CIFAR ResNet-20: stem 3→16, 3 stages × 3 blocks × 2 convs, option A (no params), GAP, FC 64→10.
    convs = conv_params(3, 3, 16)
    convs += 6 * conv_params(3, 16, 16)
    convs += conv_params(3, 16, 32) + 5 * conv_params(3, 32, 32)
    convs += conv_params(3, 32, 64) + 5 * conv_params(3, 64, 64)
    bn_channels = 16 + 6 * 16 + 6 * 32 + 6 * 64
    fc = 64 * 10 + 10
    ag = build(PRESETS["resnet20"].config)
    assert ag.total_params == convs + 4 * bn_channels + fc == 271_098
    assert ag.trainable_params == convs + 2 * bn_channels + fc
    assert ag.non_trainable_params == 2 * bn_channels
    assert ag.depth == 20


def test_shapes_macs_and_receptive_field_along_resnet20():
    ag = build(PRESETS["resnet20"].config)
    info = ag.info
    assert info["stem_conv"].shape == (32, 32, 16)
    assert info["stem_conv"].macs == 32 * 32 * 3 * 3 * 3 * 16
    assert (info["stem_conv"].rf, info["stem_conv"].jump) == (3, 1)
    # Six 3×3 convs in stage 1 add 2 each: 3 + 12.
    assert info["stage1_block3_out"].rf == 15
    # Stage 2: the strided conv adds 2·1, then five convs at jump 2 add 4 each.
    assert (info["stage2_block1_conv1"].rf, info["stage2_block1_conv1"].jump) == (17, 2)
    assert info["stage2_block3_out"].rf == 17 + 5 * 4
    assert info["stage2_block1_conv1"].shape == (16, 16, 32)
    assert info["stage2_block1_conv1"].macs == 16 * 16 * 9 * 16 * 32
    assert info["stage2_block1_shortcut"].shape == (16, 16, 32)
    assert info["stage2_block1_shortcut"].params == 0
    assert (info["stage3_block3_out"].rf, info["stage3_block3_out"].jump) == (81, 4)
    assert info["head_pool"].shape == (64,)
    assert info["head_pool"].rf == 81 + 7 * 4  # global pool sees the whole 8×8 map
    assert info["predictions"].macs == 640
    assert info["stem_bn"].params == 64 and info["stem_bn"].trainable == 32
    assert info["stem_conv"].bytes == 32 * 32 * 16 * 4
    assert ag.macs == sum(i.macs for i in info.values())


def test_bottleneck_stride_placement_and_projection():
    cfg = PRESETS["preact-resnet164"].config
    ag = build(cfg)
    g = ag.graph
    assert g["stage2_block1_conv1"].attrs["stride"] == 2  # stride in the first 1×1
    assert g["stage2_block1_conv2"].attrs["stride"] == 1
    # projection branches off the shared pre-activation
    assert g["stage2_block1_shortcut"].inputs == ("stage2_block1_relu1",)
    assert ag.info["stage2_block1_shortcut"].params == 64 * 128 + 128
    moved = build(cfg.replace(stride_at="conv3x3"))
    assert moved.graph["stage2_block1_conv2"].attrs["stride"] == 2
    assert moved.total_params == ag.total_params
    assert moved.macs > ag.macs  # the first 1×1 now runs at full resolution


def test_keras_applications_layout():
    ag = build(PRESETS["resnet50v2"].config)
    g, info = ag.graph, ag.info
    assert info["stem_conv"].shape == (112, 112, 64)
    assert info["stem_pool"].shape == (56, 56, 64)
    # stride sits in the 3×3 of the *last* block, the identity is subsampled by a 1×1 max-pool
    assert g["stage1_block3_conv2"].attrs["stride"] == 2
    assert g["stage1_block3_shortcut"].op == "maxpool"
    assert info["stage1_block3_add"].shape == (28, 28, 256)
    assert info["stage4_block3_add"].shape == (7, 7, 2048)
    assert g["stage1_block1_conv1"].attrs["bias"] is False and g["stage1_block1_conv3"].attrs["bias"] is True


def test_v2_first_block_without_preact():
    g = expand(PRESETS["keras-resnet56v2"].config)
    assert "stage1_block1_bn1" not in g
    assert g["stage1_block1_conv1"].inputs == ("stem_relu",)
    assert "stage1_block2_bn1" in g
    # projection from the raw block input, no BN
    assert g["stage2_block1_shortcut"].inputs == ("stage1_block6_add",)
    assert "stage2_block1_shortcut_bn" not in g


def test_plain_network_has_no_adds():
    ag = build(PRESETS["resnet20"].config.replace(shortcut="none"))
    assert not [n for n in ag.graph if n.op == "add"]
    assert ag.ok
    assert all(b.shortcut == "none" for b in ag.graph.blocks)


def test_identity_across_a_stride_reports_every_mismatch():
    ag = build(PRESETS["resnet20"].config.replace(shortcut="identity"))
    errors = ag.errors
    assert [d.node for d in errors] == ["stage2_block1_add", "stage3_block1_add"]
    first = errors[0]
    assert first.shapes == ((16, 16, 32), (32, 32, 16))
    assert "downsamples" in first.message and "channels" in first.message
    assert "shortcut A" in first.hint
    assert {"shortcut": "B"} in first.fixes
    assert "stage2_block1_conv1" in first.path
    # annotate goes on with the main-path shape
    assert ag.info["stage2_block1_add"].shape == (16, 16, 32)
    assert ag.info["predictions"].shape == (10,)


def test_identity_with_width_change_only():
    ag = build(ResNetConfig(stages=1, blocks=(2,), depth=None, widths=(32,), shortcut="identity"))
    (diag,) = ag.errors
    assert diag.node == "stage1_block1_add"
    assert "downsamples" not in diag.message
    assert diag.shapes == ((32, 32, 32), (32, 32, 16))


def test_fixed_pool_too_big_for_the_map():
    ag = build(PRESETS["keras-resnet20v1"].config.replace(input_shape=(16, 16, 3)))
    (diag,) = ag.errors
    assert diag.node == "head_pool"
    assert "8×8" in diag.message and "4×4" in diag.message
    assert "gap" in diag.hint
    assert {"head": "gap"} in diag.fixes
    assert build(PRESETS["keras-resnet20v1"].config.replace(input_shape=(16, 16, 3), head="gap")).ok


def test_too_many_stride_two_stages_is_a_warning():
    ag = build(ResNetConfig(input_shape=(2, 2, 3)))
    (diag,) = ag.diagnostics
    assert diag.severity == "warning"
    assert diag.node == "stage3_block1_conv1"
    assert "too many stride-2" in diag.message
    assert "4×4" in diag.hint
    assert not ag.errors


def test_zero_padding_cannot_remove_channels():
    ag = build(ResNetConfig(widths=(64, 32, 16), shortcut="A"))
    nodes = [d.node for d in ag.errors]
    assert nodes == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert "shortcut B" in ag.errors[0].hint


def test_vanishing_map_is_reported_once():
    cfg = ResNetConfig()
    nodes = [
        Node("input", "input", (), {"shape": (3, 3, 1)}, role="input"),
        Node("c1", "conv", ("input",), {"filters": 4, "kernel": 5, "stride": 1, "padding": "valid", "bias": True,
                                          "initializer": "he_normal", "l2": 0.0}),
        Node("c2", "conv", ("c1",), {"filters": 4, "kernel": 3, "stride": 1, "padding": "valid", "bias": True,
                                       "initializer": "he_normal", "l2": 0.0}),
    ]
    ag = annotate(Graph(cfg, nodes, []))
    assert [d.node for d in ag.diagnostics] == ["c1"]
    assert "smaller than" in ag.diagnostics[0].message
    assert ag.info["c2"].shape == (0, 0, 4)


def test_every_preset_is_consistent():
    for name, preset in PRESETS.items():
        ag = build(preset.config)
        assert ag.ok, (name, ag.diagnostics)
        assert ag.depth == preset.config.resolved_depth, name
        names = [n.name for n in ag.graph]
        assert len(names) == len(set(names)), name


def test_shapes_are_written_with_times_signs():
    assert fmt.shape((32, 32, 16)) == "32×32×16"
    assert fmt.shape((10,)) == "10"
