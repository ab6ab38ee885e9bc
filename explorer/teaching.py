"""Data for the teaching views: the receptive-field/resolution ribbon and block anatomy side by side."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import graphviz

from explorer import fmt, ops
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ResNetConfig
from explorer.graph import Node

ANATOMY_COUNTERPARTS = ("version", "block")


def ribbon(ag: AnnotatedGraph) -> list[dict]:
    """Along depth: receptive field, effective stride, H, W and channels after each main-path weighted layer.

    Returns:
        One dict per stem/main conv, in depth order: name, depth_index,
        receptive_field, stride (the jump: input pixels between neighbouring outputs), height,
        width, channels.
    """
    rows = []
    for index, name in enumerate(ag.main_convs, start=1):
        info = ag.info[name]
        h, w, c = info.shape
        rows.append({"name": name, "depth_index": index, "receptive_field": info.rf,
                     "stride": info.jump, "height": h, "width": w, "channels": c})
    return rows


def output_centre(ag: AnnotatedGraph, name: str, *, row: int, col: int) -> tuple[float, float]:
    """Centre (row, col), in input pixels, of the window that output pixel (row, col) of a layer sees."""
    info = ag.info[name]
    return info.start + row * info.jump, info.start + col * info.jump


def receptive_box(ag: AnnotatedGraph, name: str, *, row: int, col: int) -> tuple[int, int, int, int]:
    """The input-pixel box (top, left, bottom, right; inclusive, clipped) seen by one output pixel of a layer.

    Args:
        ag: The annotated graph.
        name: A layer with a spatial output.
        row: Output row of the pixel.
        col: Output column of the pixel.
    """
    info = ag.info[name]
    h, w = ag.config.input_shape[:2]
    centre_r, centre_c = output_centre(ag, name, row=row, col=col)
    half = (info.rf - 1) / 2
    top, left = int(round(centre_r - half)), int(round(centre_c - half))
    bottom, right = top + info.rf - 1, left + info.rf - 1
    return max(top, 0), max(left, 0), min(bottom, h - 1), min(right, w - 1)


def counterpart(config: ResNetConfig, axis: str) -> ResNetConfig:
    """The same network with the version (v1 ↔ v2) or the block (basic ↔ bottleneck) swapped."""
    if axis == "version":
        return config.replace(version=3 - config.version)
    depth_blocks = config.stage_blocks
    return config.replace(block="bottleneck" if config.block == "basic" else "basic", blocks=depth_blocks, depth=None)


@dataclass(frozen=True)
class Anatomy:
    """One typical block of a network: its nodes in order and how they differ from another block."""

    title: str
    nodes: tuple[Node, ...]
    shapes: tuple[str, ...]
    changed: frozenset[str]


def _signature(node: Node) -> str:
    a = node.attrs
    if node.op == "conv":
        return f"conv{a['kernel']}"
    return node.op


def _typical_block(ag: AnnotatedGraph) -> tuple[Node, ...]:
    """A block that is neither first nor downsampling when there is one (stage 1, block 2), else the first."""
    blocks = ag.graph.blocks
    pick = next((b for b in blocks if b.stride == 1 and b.in_width == b.out_width), blocks[0])
    return tuple(ag.graph[n] for n in pick.nodes)


def anatomy(config: ResNetConfig, axis: str) -> tuple[Anatomy, Anatomy]:
    """The typical block of `config` and of its counterpart along `axis`, differences marked."""
    pair = []
    for cfg in (config, counterpart(config, axis)):
        ag = build(cfg)
        pair.append((cfg, ag, _typical_block(ag)))
    (_, ag_a, a), (cfg_b, ag_b, b) = pair
    sig_a, sig_b = [_signature(n) for n in a], [_signature(n) for n in b]
    changed_a: set[str] = set()
    changed_b: set[str] = set()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=sig_a, b=sig_b, autojunk=False).get_opcodes():
        if tag != "equal":
            changed_a.update(n.name for n in a[i1:i2])
            changed_b.update(n.name for n in b[j1:j2])

    def title(cfg: ResNetConfig) -> str:
        return f"v{cfg.version} {cfg.block}"

    return (
        Anatomy(title(config), a, tuple(fmt.shape(ag_a.info[n.name].shape) for n in a), frozenset(changed_a)),
        Anatomy(title(cfg_b), b, tuple(fmt.shape(ag_b.info[n.name].shape) for n in b), frozenset(changed_b)),
    )


def anatomy_dot(pair: tuple[Anatomy, Anatomy]) -> str:
    """Both blocks side by side as DOT; nodes that differ are highlighted."""
    dot = graphviz.Digraph("anatomy", graph_attr={"rankdir": "TB", "fontname": "Helvetica", "newrank": "true"},
                           node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                                      "fontsize": "12", "fillcolor": "white", "color": "#57606a"},
                           edge_attr={"color": "#57606a", "fontname": "Helvetica", "fontsize": "10"})
    for k, side in enumerate(pair):
        with dot.subgraph(name=f"cluster_{k}") as sub:
            sub.attr(label=side.title, fontsize="16", color="#d0d7de", style="rounded")
            prefix = f"{k}_"
            sub.node(prefix + "in", "block input", shape="plain", style="", fillcolor="")
            names = {n.name for n in side.nodes}
            for node, shape in zip(side.nodes, side.shapes, strict=True):
                fill = "#fff1c2" if node.name in side.changed else ("#dbeafe" if node.role == "shortcut" else "white")
                pen = "#bf8700" if node.name in side.changed else "#57606a"
                sub.node(prefix + node.name, f"{ops.anatomy_label(node.op, node.attrs)}\n{shape}", fillcolor=fill, color=pen, tooltip=node.name)
                for src in node.inputs:
                    skip = node.op == "add" and src == node.inputs[-1]
                    style = {"style": "dashed", "color": "#1f6feb", "penwidth": "2"} if skip else {}
                    sub.edge(prefix + (src if src in names else "in"), prefix + node.name, **style)
    return dot.source
