"""The diff of two annotated graphs: nodes matched by name, what only one side has, what changed, the totals."""

from __future__ import annotations

from explorer.annotate import build
from explorer.config import ResNetConfig
from explorer.diff import diff, network_text
from explorer.presets import PRESETS

R20 = PRESETS["resnet20"].config


def test_a_network_against_itself_is_the_same():
    d = diff(build(R20), build(R20))
    assert d.same and not d.changed and d.lines() == ["the two networks are the same, node by node"]
    assert all(a == b for a, b in d.totals.values())


def test_the_plain_twin_lacks_the_adds_and_the_subsampling_shortcuts_and_keeps_every_conv():
    a, b = build(R20), build(R20.replace(shortcut="none"))
    d = diff(a, b)
    assert not d.same and not d.only_b
    assert set(d.only_a) == {n.name for n in a.graph.nodes if n.name.endswith(("_add", "_shortcut"))}
    assert not any(name.endswith("_conv1") for name in d.only_a)
    assert d.totals["params"] == (a.total_params, b.total_params)


def test_a_wider_network_changes_shapes_and_params_of_the_same_nodes():
    a, b = build(R20), build(R20.replace(filters=32))
    d = diff(a, b)
    assert not d.only_a and not d.only_b
    change = next(c for c in d.changed if c.name == "stage1_block1_conv1")
    assert change.shape == ((32, 32, 16), (32, 32, 32))
    assert change.params == (a.info["stage1_block1_conv1"].params, b.info["stage1_block1_conv1"].params)
    assert "stage1_block1_conv1: shape 32×32×16 → 32×32×32, params 2,304 → 9,216" in "\n".join(d.lines())
    assert d.to_dict()["totals"]["params"] == {"a": a.total_params, "b": b.total_params}


def test_a_deeper_network_adds_blocks_and_the_lists_are_shortened():
    a, b = build(R20), build(PRESETS["resnet56"].config)
    d = diff(a, b)
    # 6 more blocks in each of the 3 stages, 7 nodes each (conv, bn, relu, conv, bn, add, relu)
    assert not d.only_a and len(d.only_b) == 18 * 7 == len(b.graph) - len(a.graph)
    assert all(name.split("_")[1] in {f"block{i}" for i in range(4, 10)} for name in d.only_b)
    text = "\n".join(d.lines(limit=3))
    assert f"only in B ({len(d.only_b)}):" in text and f"… {len(d.only_b) - 3} more" in text
    assert "depth: 20 → 56 (+36)" in text


def test_network_text_names_the_network():
    assert network_text(ResNetConfig(depth=8, shortcut="B")) == (
        "depth 8 · v1 · basic blocks · shortcut B · input 32×32×3 → 10 classes")
