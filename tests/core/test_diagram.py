"""Tests of the DOT views: nodes and shortcut edges per level, roll-up, diagnostics, options, golden file, rendering."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pydot
import pytest

from explorer import diagram, fmt
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.diagram import DiagramError, to_dot
from explorer.presets import PRESETS
from tests.conftest import ROOT

GOLDEN = Path(__file__).parent / "golden" / "resnet20_block.dot"

# Presets small enough to parse every level quickly, plus hand-made variants (plain network, B, C).
SMALL = {
    "resnet20": PRESETS["resnet20"].config,
    "keras-resnet20v1": PRESETS["keras-resnet20v1"].config,
    "keras-resnet56v2": PRESETS["keras-resnet56v2"].config,
    "tutorial11": PRESETS["tutorial"].config.replace(depth=11),
    "resnet50v2": PRESETS["resnet50v2"].config,
    "plain20": ResNetConfig(shortcut="none"),
    "plain-v2-bottleneck": ResNetConfig(version=2, block="bottleneck", depth=29, shortcut="none"),
    "shortcut-B": ResNetConfig(shortcut="B"),
    "shortcut-C-v2": ResNetConfig(version=2, shortcut="C", depth=14),
}


# --------------------------------------------------------------------------------------------- helpers
# pydot parses ~10 KB of DOT per second, too slow for every test: the structural checks use a small reader of
# the one-statement-per-line text the graphviz package writes, and `test_dot_parses_with_pydot` proves that
# pydot reads the same nodes, edges and clusters from it.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|->|[\[\]={};]|[^\s\[\]={};"<]+|<')


@dataclass
class Dot:
    graph: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    clusters: dict[str, set[str]] = field(default_factory=dict)


def _tokens(line: str) -> list[str]:
    out, i = [], 0
    while i < len(line):
        m = _TOKEN.match(line, i)
        if m is None:
            i += 1
            continue
        tok = m.group(0)
        if tok == "<":  # HTML-like label: up to the matching '>'
            depth, j = 0, i
            while j < len(line):
                depth += {"<": 1, ">": -1}.get(line[j], 0)
                j += 1
                if depth == 0:
                    break
            out.append(line[i:j])
            i = j
            continue
        out.append(tok)
        i = m.end()
    return out


def _value(tok: str) -> str:
    if len(tok) >= 2 and tok[0] == tok[-1] == '"':
        return tok[1:-1].replace('\\"', '"')
    return tok


def _attrs(tokens: list[str]) -> dict[str, str]:
    return {
        tokens[i]: _value(tokens[i + 2])
        for i in range(len(tokens) - 2)
        if tokens[i + 1] == "=" and tokens[i] not in "[]"
    }


@functools.lru_cache(maxsize=256)
def _read(source: str) -> Dot:
    dot = Dot()
    stack: list[str] = []
    for line in source.splitlines()[1:]:
        toks = _tokens(line)
        if not toks:
            continue
        if toks[0] == "subgraph":
            stack.append(_value(toks[1]))
            dot.clusters.setdefault(stack[-1], set())
        elif toks[0] == "}":
            if stack:
                stack.pop()
        elif toks[0] in ("graph", "node", "edge") and toks[1:2] == ["["]:
            if toks[0] == "graph" and not stack:
                dot.graph.update(_attrs(toks))
        elif "->" in toks:
            dot.edges.append((_value(toks[0]), _value(toks[2]), _attrs(toks[3:])))
        elif len(toks) == 1 or toks[1] == "[":
            name = _value(toks[0])
            dot.nodes[name] = _attrs(toks[1:])
            if stack:
                dot.clusters[stack[-1]].add(name)
        elif not stack:
            dot.graph.update(_attrs(toks))
    return dot


def _nodes(source: str) -> dict[str, dict[str, str]]:
    """All node statements (in clusters too): id → attributes (unquoted)."""
    return _read(source).nodes


def _edges(source: str) -> list[tuple[str, str, dict[str, str]]]:
    return _read(source).edges


def _clusters(source: str) -> dict[str, set[str]]:
    """Cluster name → ids of the nodes directly inside it."""
    return _read(source).clusters


def _unquote(value: object) -> str:
    value = "" if value is None else str(value)
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _pydot_read(source: str) -> Dot:
    graphs = pydot.graph_from_dot_data(source)
    assert graphs, "pydot could not parse the DOT"
    dot = Dot()
    dot.graph = {k: _unquote(v) for k, v in graphs[0].get_graph_defaults()[0].items()}

    def walk(g) -> None:
        name = _unquote(g.get_name())
        for n in g.get_nodes():
            node = _unquote(n.get_name())
            if node in ("node", "edge", "graph"):
                continue
            dot.nodes[node] = {k: _unquote(v) for k, v in n.get_attributes().items()}
            if name.startswith("cluster_"):
                dot.clusters.setdefault(name, set()).add(node)
        for e in g.get_edges():
            attrs = {k: _unquote(v) for k, v in e.get_attributes().items()}
            dot.edges.append((_unquote(e.get_source()), _unquote(e.get_destination()), attrs))
        for sub in g.get_subgraphs():
            walk(sub)

    walk(graphs[0])
    return dot


def _classes(attrs: dict[str, str]) -> set[str]:
    return set(attrs.get("class", "").split())


def _shortcut_edges(source: str) -> list[tuple[str, str, dict[str, str]]]:
    return [e for e in _edges(source) if "shortcut" in _classes(e[2])]


def _io(ag: AnnotatedGraph) -> tuple[str, str]:
    first = next(n for n in ag.graph if n.role == "input")
    return first.name, ag.graph.output.name


def _expected_block_view(ag: AnnotatedGraph) -> tuple[set[str], set[tuple[str, str, str]], int]:
    """Nodes, shortcut edges (src, dst, kind) and main edge count of the block view without roll-up."""
    inp, out = _io(ag)
    nodes = {inp, "stem", "head", out}
    shortcuts = set()
    main = 2  # input → stem, head → output
    previous = "stem"
    for b in ag.graph.blocks:
        prefix = f"stage{b.stage}_block{b.block}"
        nodes.add(prefix)
        main += 1
        if b.shortcut != "none":
            add = f"{prefix}_add"
            nodes.add(add)
            shortcuts.add((previous, add, b.shortcut))
            main += 1
            previous = add
        else:
            previous = prefix
    main += 1  # last block → head
    return nodes, shortcuts, main


# --------------------------------------------------------------------------------------------- levels
@pytest.mark.parametrize("name", list(SMALL))
def test_block_level_has_one_node_per_block_and_one_shortcut_edge_per_skip(name: str) -> None:
    ag = build(SMALL[name])
    source = to_dot(ag, level="block", rollup=False, legend=False)
    nodes, shortcuts, main = _expected_block_view(ag)
    assert set(_nodes(source)) == nodes
    drawn = {
        (s, d, next(c for c in _classes(a) if c not in ("shortcut", "broken"))) for s, d, a in _shortcut_edges(source)
    }
    assert drawn == shortcuts
    assert len(_shortcut_edges(source)) == len(shortcuts)
    main_edges = [e for e in _edges(source) if "main" in _classes(e[2])]
    assert len(main_edges) == main
    for _, _, attrs in _edges(source):
        assert re.search(r"\d+(×\d+)*", attrs["label"]), "every edge carries a shape"


@pytest.mark.parametrize("name", list(SMALL))
def test_layer_level_draws_every_layer_with_blocks_as_clusters(name: str) -> None:
    ag = build(SMALL[name])
    source = to_dot(ag, level="layer", legend=False)
    assert set(_nodes(source)) == {n.name for n in ag.graph}
    clusters = _clusters(source)
    for b in ag.graph.blocks:
        assert clusters[f"cluster_stage{b.stage}_block{b.block}"] == set(b.nodes)
    edges = _edges(source)
    assert len(edges) == sum(len(n.inputs) for n in ag.graph)
    expected = sum(len(n.inputs) for n in ag.graph if n.role == "shortcut")
    expected += sum(1 for n in ag.graph if n.op == "add")
    assert len(_shortcut_edges(source)) == expected
    info = ag.info
    for s, _, attrs in edges:
        assert fmt.shape(info[s].shape) in attrs["label"]


@pytest.mark.parametrize("name", list(SMALL))
def test_stage_level_has_one_node_per_stage_and_no_skips(name: str) -> None:
    ag = build(SMALL[name])
    source = to_dot(ag, level="stage", legend=False)
    inp, out = _io(ag)
    stages = {f"stage{s}" for s in range(1, ag.config.stages + 1)}
    assert set(_nodes(source)) == {inp, "stem", "head", out} | stages
    assert _shortcut_edges(source) == []
    assert len(_edges(source)) == ag.config.stages + 3
    nodes = _nodes(source)
    for b in ag.graph.blocks:
        if b.block == 1:
            assert (
                f"{sum(1 for x in ag.graph.blocks if x.stage == b.stage)} {ag.config.block} block"
                in nodes[f"stage{b.stage}"]["label"]
            )


def test_plain_network_has_no_add_and_no_shortcut_edge_at_any_level() -> None:
    ag = build(ResNetConfig(shortcut="none"))
    for level in diagram.LEVELS:
        source = to_dot(ag, level=level)
        assert _shortcut_edges(source) == []
        assert not [n for n in _nodes(source) if n.endswith("_add")]
    assert "plain" in to_dot(ag)


def test_shortcut_labels_name_the_kind() -> None:
    edges = _shortcut_edges(to_dot(build(PRESETS["resnet50v2"].config), rollup=False))
    labels: dict[str, list[str]] = {}
    for _, _, a in edges:
        labels.setdefault(next(c for c in _classes(a) if c != "shortcut"), []).append(a["label"])
    assert "projection (B)" in labels["projection"][0] and "1×1 conv, 256" in labels["projection"][0]
    assert labels["projection"][0].endswith("56×56×256")
    assert all("1×1 max-pool, /2" in t for t in labels["subsample"])
    assert all("identity" in t for t in labels["identity"])
    zero = _shortcut_edges(to_dot(build(PRESETS["resnet20"].config)))
    assert any("zero-pad (A), /2" in a["label"] for _, _, a in zero)


def test_node_labels_show_op_and_key_attributes() -> None:
    ag = build(PRESETS["resnet20"].config)
    layer = _nodes(to_dot(ag, level="layer"))
    assert layer["stage2_block1_conv1"]["label"] == "3×3 conv, 32, /2"
    assert layer["stem_conv"]["label"] == "3×3 conv, 16"
    assert layer["predictions"]["label"].endswith("dense 10, softmax")
    block = _nodes(to_dot(ag))
    assert "3×3,32 /2 → 3×3,32" in block["stage2_block1"]["label"]
    bottleneck = _nodes(to_dot(build(PRESETS["resnet50v2"].config)))
    assert "1×1,64 → 3×3,64 → 1×1,256" in bottleneck["stage1_block1"]["label"]


def test_ids_are_graph_names() -> None:
    ag = build(PRESETS["resnet56"].config)
    names = {n.name for n in ag.graph}
    for node_id, attrs in _nodes(to_dot(ag, legend=False)).items():
        kind = _classes(attrs)
        if kind & {"add", "input", "output"}:
            assert node_id in names
        elif "block" in kind:
            assert re.fullmatch(r"stage\d+_block\d+", node_id)


# --------------------------------------------------------------------------------------------- roll-up
def _rolled(source: str) -> dict[str, int]:
    out = {}
    for node_id, attrs in _nodes(source).items():
        if "rolled" in _classes(attrs):
            out[node_id] = int(re.search(r"× (\d+) identical", attrs["label"]).group(1))
    return out


def test_rollup_folds_runs_of_identical_blocks() -> None:
    ag = build(PRESETS["resnet110"].config)
    source = to_dot(ag)
    assert _rolled(source) == {
        "stage1_block2_to_block18": 17,
        "stage2_block3_to_block18": 16,
        "stage3_block3_to_block18": 16,
    }
    blocks = [n for n, a in _nodes(source).items() if "block" in _classes(a)]
    assert blocks == ["stage1_block1", "stage2_block1", "stage2_block2", "stage3_block1", "stage3_block2"]
    assert _rolled(to_dot(ag, rollup=False)) == {}
    assert len([n for n, a in _nodes(to_dot(ag, rollup=False)).items() if "block" in _classes(a)]) == 54


@pytest.mark.parametrize(
    "name", ["resnet56", "preact-resnet164", "resnet152v2", "preact-resnet1001", "resnet1202", "tutorial"]
)
def test_rollup_accounts_for_every_block(name: str) -> None:
    ag = build(PRESETS[name].config)
    nodes = _nodes(to_dot(ag))
    shown = sum(1 for a in nodes.values() if "block" in _classes(a))
    rolled = _rolled(to_dot(ag))
    assert shown + sum(rolled.values()) == len(ag.graph.blocks)
    assert all(k >= diagram.ROLLUP_MIN_RUN - 1 for k in rolled.values())


def test_short_stages_are_not_rolled_up() -> None:
    assert _rolled(to_dot(build(PRESETS["resnet20"].config))) == {}


# --------------------------------------------------------------------------------------------- diagnostics
BROKEN = ResNetConfig(shortcut="identity")


@pytest.mark.parametrize("level", ["block", "layer"])
def test_every_diagnostic_node_is_red_with_both_input_shapes_on_its_edges(level: str) -> None:
    ag = build(BROKEN)
    assert ag.diagnostics, "identity shortcuts must break where the shape changes"
    source = to_dot(ag, level=level)
    nodes = _nodes(source)
    edges = _edges(source)
    for d in ag.diagnostics:
        attrs = nodes[d.node]
        assert attrs["color"] == diagram.ERROR and "error" in _classes(attrs)
        assert d.message in attrs["tooltip"] and d.hint in attrs["tooltip"]
        incoming = " | ".join(a["label"] for _, dst, a in edges if dst == d.node)
        for shape in d.shapes:
            assert fmt.shape(shape) in incoming
        assert all("broken" in _classes(a) for _, dst, a in edges if dst == d.node)
        for name in d.path:
            if level == "layer":
                path_id = name
            else:
                prefix = re.match(r"stage\d+_block\d+", name).group(0)
                path_id = f"{prefix}_add" if name.endswith(("_add", "_out")) else prefix
            assert nodes[path_id]["color"] == diagram.ERROR
    red = {n for n, a in nodes.items() if "error" in _classes(a)}
    assert red == {d.node for d in ag.diagnostics}


def test_block_on_the_breaking_path_is_highlighted() -> None:
    nodes = _nodes(to_dot(build(BROKEN)))
    assert "path" in _classes(nodes["stage2_block1"]) and nodes["stage2_block1"]["color"] == diagram.ERROR
    assert "path" not in _classes(nodes["stage2_block2"])


def test_stage_view_marks_the_broken_stage_with_the_shapes() -> None:
    ag = build(BROKEN)
    nodes = _nodes(to_dot(ag, level="stage"))
    for d in ag.diagnostics:
        stage = d.node.split("_")[0]
        assert nodes[stage]["color"] == diagram.ERROR
        assert " vs ".join(fmt.shape(s) for s in d.shapes) in nodes[stage]["label"]
    assert nodes["stage1"]["color"] != diagram.ERROR


def test_shrinking_zero_pad_shortcut_is_red_on_its_add() -> None:
    ag = build(ResNetConfig(widths=(32, 16, 64)))
    assert [d.node for d in ag.diagnostics] == ["stage2_block1_shortcut"]
    nodes = _nodes(to_dot(ag))
    assert "error" in _classes(nodes["stage2_block1_add"])
    assert "error" in _classes(_nodes(to_dot(ag, level="layer"))["stage2_block1_shortcut"])


@pytest.mark.parametrize("level", ["block", "layer"])
def test_a_broken_shortcut_edge_shows_what_reaches_it_as_its_add_does(level: str) -> None:
    """resnet20 with widths 64,32,16: zero-padding cannot shrink 64 channels to 32. Its edge must not claim the
    16×16×32 that annotate carries on with; it shows, marked ✗, the 32×32×64 the red Add names too."""
    ag = build(PRESETS["resnet20"].config.replace(widths=(64, 32, 16)))
    [first, second] = ag.errors
    assert first.node == "stage2_block1_shortcut"
    edges = _edges(to_dot(ag, level=level))
    for d in (first, second):
        add = d.node.replace("_shortcut", "_add")
        [label] = [a["label"] for _, dst, a in edges if dst == add and "shortcut" in _classes(a)]
        got, main = fmt.shape(d.shapes[0]), fmt.shape(d.shapes[1])
        assert f"✗ {got}" in label and main not in label, label
        if level == "block":  # the red Add names the same two shapes
            assert f"{got} vs {main}" in _nodes(to_dot(ag))[add]["label"]


def test_legend_explains_colours_and_edges() -> None:
    legend = _nodes(to_dot(build(BROKEN)))["legend"]["label"]
    for text in ("identity shortcut", "does not fit", "path that breaks", "main path"):
        assert text in legend
    legend = _nodes(to_dot(build(PRESETS["resnet50v2"].config)))["legend"]["label"]
    for text in ("projection shortcut", "subsample shortcut", "identical blocks rolled up"):
        assert text in legend
    assert "legend" not in _nodes(to_dot(build(BROKEN), legend=False))


# --------------------------------------------------------------------------------------------- expand
def test_expand_stage_draws_it_at_layer_level() -> None:
    ag = build(PRESETS["resnet20"].config)
    nodes = _nodes(to_dot(ag, expand="stage2"))
    stage2 = {name for b in ag.graph.blocks if b.stage == 2 for name in b.nodes}
    assert stage2 <= set(nodes)
    assert {"stage1_block1", "stage3_block3"} <= set(nodes) and "stage2_block1" not in nodes
    # stage1 and stage3 as blocks: one edge per skip; stage2 at layer level: zero-pad (in, out) + 2 identities
    assert len(_shortcut_edges(to_dot(ag, expand="stage2"))) == 3 + (2 + 1 + 1) + 3


def test_expand_block_keeps_the_rest_rolled_up() -> None:
    ag = build(PRESETS["resnet110"].config)
    source = to_dot(ag, expand="stage2_block3")
    nodes = _nodes(source)
    assert {"stage2_block3_conv1", "stage2_block3_add", "stage2_block2", "stage2_block4"} <= set(nodes)
    assert _rolled(source)["stage2_block5_to_block18"] == 14
    assert "cluster_stage2_block3" in _clusters(source)


def test_expand_at_stage_level() -> None:
    ag = build(PRESETS["resnet56"].config)
    nodes = _nodes(to_dot(ag, level="stage", expand="stage3"))
    assert {"stage1", "stage2", "stage3_block1_conv1"} <= set(nodes) and "stage3" not in nodes
    nodes = _nodes(to_dot(ag, level="stage", expand="stage2_block4"))
    assert {"stage1", "stage3", "stage2_block1", "stage2_block1_add", "stage2_block4_conv1"} <= set(nodes)


@pytest.mark.parametrize("bad", ["stage9", "stage2_block99", "block1", "stage2_block1_conv1", ""])
def test_expand_unknown_name_is_a_diagram_error(bad: str) -> None:
    with pytest.raises(DiagramError) as err:
        to_dot(build(PRESETS["resnet20"].config), expand=bad)
    assert err.value.field == "expand" and "stage1_block1" in err.value.hint


def test_layer_level_of_a_huge_network_is_refused_with_what_to_do() -> None:
    ag = build(PRESETS["resnet20"].config.replace(depth=2000))
    assert len(ag.graph) > diagram.LAYER_NODE_LIMIT
    with pytest.raises(DiagramError) as err:
        to_dot(ag, level="layer")
    assert isinstance(err.value, ConfigError)
    assert str(diagram.LAYER_NODE_LIMIT) in err.value.message.replace(",", "")
    assert "--expand stage2" in err.value.hint
    assert "stage1_block1_conv1" in to_dot(ag, expand="stage1_block1")  # one block at layer level is fine


def test_every_preset_layer_view_draws_every_layer() -> None:
    for preset in PRESETS.values():
        ag = build(preset.config)
        assert len(ag.graph) <= diagram.LAYER_NODE_LIMIT
        assert diagram.view_size(ag, level="layer", rollup=False) == len(ag.graph)
        dot = to_dot(ag, level="layer", rollup=False, legend=False)
        assert dot.count("[label=") >= len(ag.graph)


def test_large_views_carry_the_cheap_layout_attributes_and_small_ones_do_not() -> None:
    big = to_dot(build(PRESETS["preact-resnet1001"].config), level="layer", rollup=False)
    small = to_dot(build(PRESETS["resnet110"].config), level="layer")
    def graph_attrs(dot: str) -> str:
        return " ".join(line for line in dot.splitlines() if line.startswith("\tgraph ["))

    for name, value in diagram.LARGE_VIEW_LAYOUT.items():
        assert f"{name}={value}" in graph_attrs(big)
        assert f"{name}=" not in graph_attrs(small)


# --------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"level": "blocks"}, "level"), ({"rankdir": "BT"}, "rankdir"), ({"color_by": "flops"}, "color_by")],
)
def test_bad_options_are_diagram_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(DiagramError) as err:
        to_dot(build(PRESETS["resnet20"].config), **kwargs)
    assert err.value.field == field and err.value.hint


def test_rankdir() -> None:
    ag = build(PRESETS["resnet20"].config)
    assert _read(to_dot(ag, rankdir="LR")).graph["rankdir"] == "LR"
    assert _read(to_dot(ag)).graph["rankdir"] == "TB"


def test_scaling_defaults_no_ortho_no_dpi() -> None:
    source = to_dot(build(PRESETS["resnet1202"].config))
    assert "ortho" not in source and "dpi" not in source
    assert _read(source).graph["splines"] in ("spline", "line", "true")


@pytest.mark.parametrize("metric", diagram.COST_METRICS)
def test_colour_by_cost_fills_from_the_palette(metric: str) -> None:
    ag = build(PRESETS["resnet56"].config)
    nodes = _nodes(to_dot(ag, color_by=metric))
    fills = {a["fillcolor"] for a in nodes.values() if _classes(a) & {"block", "rolled", "stem", "head", "output"}}
    assert fills <= set(diagram.COST_PALETTE) | {"#ffffff"} and len(fills) >= 2
    assert diagram.COST_NAMES[metric] in nodes["legend"]["label"]


def test_show_params() -> None:
    ag = build(PRESETS["resnet20"].config)
    nodes = _nodes(to_dot(ag, show_params=True))
    block = next(b for b in ag.graph.blocks if b.stage == 1 and b.block == 1)
    params = sum(ag.info[n].params for n in block.nodes)
    assert params == 4736
    assert "params 4.74K" in nodes["stage1_block1"]["label"]
    assert "params" not in _nodes(to_dot(ag))["stage1_block1"]["label"]
    rolled = _nodes(to_dot(build(PRESETS["resnet56"].config), show_params=True))["stage1_block2_to_block9"]["label"]
    assert "each)" in rolled


def test_title_names_the_network() -> None:
    label = _read(to_dot(build(BROKEN))).graph["label"]
    assert "ResNet-20" in label and "2 errors" in label


# --------------------------------------------------------------------------------------------- determinism, golden
@pytest.mark.parametrize(
    ("config", "kwargs"),
    [
        (PRESETS["resnet20"].config, {"level": "block"}),
        (PRESETS["resnet20"].config, {"level": "layer", "rankdir": "LR", "color_by": "memory", "show_params": True}),
        (PRESETS["resnet110"].config, {"level": "block", "expand": "stage2_block3", "color_by": "params"}),
        (BROKEN, {"level": "block"}),
        (BROKEN, {"level": "stage"}),
    ],
)
def test_dot_parses_with_pydot(config: ResNetConfig, kwargs: dict) -> None:
    source = to_dot(build(config), **kwargs)
    ours, theirs = _read(source), _pydot_read(source)
    assert set(theirs.nodes) == set(ours.nodes)
    assert [(s, d) for s, d, _ in theirs.edges] == [(s, d) for s, d, _ in ours.edges]
    assert [a.get("label") for _, _, a in theirs.edges] == [
        a.get("label").replace('"', '\\"') for _, _, a in ours.edges
    ]
    assert theirs.clusters == {k: v for k, v in ours.clusters.items() if v}
    assert theirs.graph["rankdir"] == ours.graph["rankdir"]
    for name, attrs in theirs.nodes.items():
        assert attrs.get("color") == ours.nodes[name].get("color")


@pytest.mark.parametrize("name", list(PRESETS))
def test_default_view_of_every_preset_is_small_parses_and_is_deterministic(name: str) -> None:
    config = PRESETS[name].config
    ag = build(config)
    level = diagram.default_level(ag)
    assert level == "block"
    source = to_dot(ag, level=level)
    assert source == to_dot(build(config), level=level)
    nodes = _nodes(source)
    assert len(nodes) <= 40, "the default view must stay small enough for the browser"
    assert len(source) < 40_000


def test_default_level_falls_back_to_stage_for_huge_block_views(monkeypatch: pytest.MonkeyPatch) -> None:
    ag = build(PRESETS["resnet110"].config)
    monkeypatch.setattr(diagram, "BLOCK_VIEW_LIMIT", 10)
    assert diagram.default_level(ag) == "stage"


def test_golden_resnet20_block_view() -> None:
    source = to_dot(build(PRESETS["resnet20"].config), level="block")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(source, encoding="utf-8")
    assert GOLDEN.exists(), "run UPDATE_GOLDEN=1 pytest tests/core/test_diagram.py to create the golden file"
    assert source == GOLDEN.read_text(encoding="utf-8"), (
        "the resnet20 block view changed; if on purpose, regenerate with UPDATE_GOLDEN=1 pytest tests/core/test_diagram.py"
    )


def test_core_imports_no_framework() -> None:
    code = "import sys, explorer.diagram; print([m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- rendering
needs_dot = pytest.mark.skipif(not diagram.dot_available(), reason="Graphviz `dot` is not installed")


@needs_dot
def test_render_svg_and_png() -> None:
    source = to_dot(build(BROKEN))
    svg = diagram.render(source, "svg")
    assert b"<svg" in svg and b"stage2_block1_add" in svg
    assert diagram.render(source, "png").startswith(b"\x89PNG")


def test_render_without_dot_binary_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not diagram.dot_available()
    with pytest.raises(DiagramError) as err:
        diagram.render("digraph { a -> b }", "svg")
    assert "not installed" in err.value.message and ".dot" in err.value.hint


def test_render_unknown_format() -> None:
    with pytest.raises(DiagramError):
        diagram.render("digraph { a -> b }", "gif")


ODD = [
    ResNetConfig(input_shape=(4, 4, 3), head="flatten"),  # the map vanishes before the head's AvgPool(8)
    ResNetConfig(stem="imagenet", stages=4, depth=18, shortcut="C", version=2, explicit_padding=True),
    ResNetConfig(widths=(32, 16, 64)),
    ResNetConfig(blocks=(1,), stages=1, depth=None, shortcut="B"),
    ResNetConfig(blocks=(6, 1, 5), depth=None, downsample="last", stride_at="conv3x3", block="bottleneck", version=2),
]


@pytest.mark.parametrize("config", ODD)
def test_odd_configs_draw_at_every_level_with_every_diagnostic_red(config: ResNetConfig) -> None:
    ag = build(config)
    for level in diagram.LEVELS:
        for expand in (None, "stage1", "stage1_block1"):
            source = to_dot(ag, level=level, expand=expand, color_by="memory", show_params=True)
            nodes = _nodes(source)
            red = [n for n, a in nodes.items() if "error" in _classes(a)]
            assert bool(red) == bool(ag.diagnostics)
            ids = set(nodes)
            for s, d, _ in _edges(source):
                assert s in ids and d in ids
