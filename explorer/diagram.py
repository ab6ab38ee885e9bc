"""Graphviz DOT views of an annotated network (stage, block, layer) with shapes, shortcut kinds and mismatches."""

from __future__ import annotations

import bisect
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from html import escape as _html

import graphviz

from explorer import fmt, ops
from explorer.annotate import AnnotatedGraph, Diagnostic
from explorer.config import SHORTCUT_NAMES, ConfigError
from explorer.graph import BlockInfo, Node

LEVELS = ("stage", "block", "layer")
COST_METRICS = ("params", "macs", "memory")
RANKDIRS = ("TB", "LR")
RENDER_FORMATS = ("svg", "png", "pdf")

LAYER_NODE_LIMIT = 5000
"""Above this many layers the full layer view is refused; one stage or block can still be expanded.

Every preset's layer view is below it (resnet1202 draws 4,208 layers)."""

LARGE_VIEW_NODES = 600
"""From this many nodes on, the DOT carries LARGE_VIEW_LAYOUT: cheaper ranking and crossing minimisation."""

LARGE_VIEW_LAYOUT = {"nslimit": "0.2", "nslimit1": "0.2", "mclimit": "0.01", "newrank": "true"}
"""Graphviz attributes for large views. A ResNet is a chain of blocks with 0 edge crossings, so little is
lost: on the layer view of preact-resnet1001 (3,341 nodes) `dot` 2.43 takes 11.5 s without them, 1.9 s
with them (docs/benchmarks.md)."""

BLOCK_VIEW_LIMIT = 250
"""`default_level` falls back to the stage view when the (rolled-up) block view has more nodes than this."""

ROLLUP_MIN_RUN = 4
"""Roll-up folds a run of at least this many identical consecutive blocks (the first stays drawn)."""

# ----------------------------------------------------------------------------------------------- palette
FONT = "Helvetica,Arial,sans-serif"
INK = "#333333"
MAIN_EDGE = "#555555"
ERROR = "#d62728"
ERROR_FILL = "#fde0e0"
FROZEN_FILL = "#dde9f7"
FROZEN_LINE = "#7a9cc6"
FROZEN_INK = "#37506e"
ERROR_INK = "#8b0000"
IO_FILL = "#dfe6f0"
STEM_FILL = "#c6d3e6"
STEM_LINE = "#4f6384"
BLOCK_FILL = "#ffffff"
ROLLED_FILL = "#eef1f5"
ADD_FILL = "#fff4cc"
LIGHT_FILL = "#f3f3f3"
STAGE_FILL = "#ffffff"
CLUSTER_FILL = "#f7f9fc"
CLUSTER_LINE = "#b8c4d6"
BLOCK_CLUSTER_FILL = "#ffffff"

SHORTCUT_STYLE = {
    "identity": {"color": "#2ca02c", "style": "solid", "penwidth": "1.8"},
    "zero_pad": {"color": "#9467bd", "style": "dashed", "penwidth": "2"},
    "projection": {"color": "#1f77b4", "style": "solid", "penwidth": "2.6"},
    "subsample": {"color": "#e08214", "style": "dashed", "penwidth": "2"},
}
# Light to dark, colour-blind safe (ColorBrewer YlGnBu); the last two need white text.
COST_PALETTE = ("#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8")
COST_MIN_DECADES = 2.0
COST_NAMES = {"params": "parameters", "macs": "MACs", "memory": "activation memory"}


class DiagramError(ConfigError):
    """A diagram the user asked for that cannot be drawn (too big, unknown option, no `dot` binary)."""


# ----------------------------------------------------------------------------------------------- formatting
def _metric_text(metric: str, value: float) -> str:
    return fmt.binary_bytes(value) if metric == "memory" else fmt.count_label(value)


def _stride(s: int) -> str:
    return f", /{s}" if s > 1 else ""


def op_label(node: Node) -> str:
    """A short description of one layer: '3×3 conv, 64, /2', 'BN', '+', 'dense 10, softmax'.

    Args:
        node: The graph node.

    Returns:
        The label text (single line).
    """
    return ops.label(node.op, node.attrs)


def _conv_short(node: Node) -> str:
    a = node.attrs
    stride = f" /{a['stride']}" if a["stride"] > 1 else ""
    return f"{a['kernel']}×{a['kernel']},{a['filters']}{stride}"


def _chain(labels: list[str], per_line: int = 3) -> str:
    """Join op labels with arrows, a few per line."""
    lines = [" → ".join(labels[i : i + per_line]) for i in range(0, len(labels), per_line)]
    return "\\n".join(lines)


def _dot_text(text: str) -> str:
    """Make free text safe inside a DOT escString (backslashes, newlines)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


# ----------------------------------------------------------------------------------------------- plan
@dataclass
class _Item:
    """One DOT node of the view."""

    id: str
    kind: str  # input, stem, stage, block, rolled, add, head, output, layer
    members: list[str]
    cluster: tuple[str, ...] = ()
    op: str = ""
    block: BlockInfo | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    on_path: bool = False


@dataclass
class _Edge:
    src: str
    dst: str
    label: str
    kind: str  # "main" or a shortcut kind
    tooltip: str = ""
    broken: bool = False


class _Plan:
    """Decides which DOT node draws which graph node, and the edges between them."""

    def __init__(self, ag: AnnotatedGraph, *, level: str, expand: str | None, rollup: bool) -> None:
        self.ag = ag
        self.graph = ag.graph
        self.cfg = ag.config
        self.level = level
        self.expand = expand
        self.rollup = rollup
        self.items: dict[str, _Item] = {}
        self.owner: dict[str, str] = {}  # graph node -> DOT node id ("" = drawn as part of a shortcut edge)
        self.block_of: dict[str, BlockInfo] = {}
        self.blocks_by_name = {f"stage{b.stage}_block{b.block}": b for b in self.graph.blocks}
        for b in self.graph.blocks:
            for name in b.nodes:
                self.block_of[name] = b
        self.bad_nodes = {d.node for d in ag.diagnostics}
        self.edges: list[_Edge] = []
        self._place()

    # ------------------------------------------------------------------ modes
    def _stage_blocks(self) -> dict[int, list[BlockInfo]]:
        stages: dict[int, list[BlockInfo]] = {}
        for b in self.graph.blocks:
            stages.setdefault(b.stage, []).append(b)
        return stages

    def _block_mode(self, b: BlockInfo) -> str:
        prefix = f"stage{b.stage}_block{b.block}"
        if self.level == "layer" or self.expand in (f"stage{b.stage}", prefix):
            return "layer"
        return "block"

    def _stage_collapsed(self, stage: int) -> bool:
        if self.level != "stage" or self.expand is None:
            return self.level == "stage"
        return not (self.expand == f"stage{stage}" or self.expand.startswith(f"stage{stage}_"))

    def _signature(self, b: BlockInfo) -> tuple:
        info = self.ag.info
        nodes = tuple(
            (n.op, n.role, sorted(n.attrs.items()), info[n.name].shape) for n in (self.graph[x] for x in b.nodes)
        )
        return (b.shortcut, b.stride, b.in_width, b.out_width, info[b.input].shape, nodes)

    def _has_diagnostic(self, b: BlockInfo) -> bool:
        return any(name in self.bad_nodes for name in b.nodes)

    # ------------------------------------------------------------------ placement
    def _place(self) -> None:
        g = self.graph
        layer_all = self.level == "layer"
        stem = [n for n in g.nodes if n.role == "stem"]
        head = [n for n in g.nodes if n.role == "head" and n is not g.output]
        for n in g.nodes:
            if n.role == "input":
                self._add_item(_Item(n.name, "input", [n.name], op=n.op))
        if stem:
            if layer_all:
                for n in stem:
                    self._add_item(_Item(n.name, "layer", [n.name], ("stem",), op=n.op))
            else:
                self._add_item(_Item("stem", "stem", [n.name for n in stem]))
        for stage, blocks in self._stage_blocks().items():
            if self._stage_collapsed(stage):
                members = [name for b in blocks for name in b.nodes]
                self._add_item(_Item(f"stage{stage}", "stage", members))
                continue
            self._place_stage(stage, blocks)
        if head:
            if layer_all:
                for n in head:
                    self._add_item(_Item(n.name, "layer", [n.name], ("head",), op=n.op))
            else:
                self._add_item(_Item("head", "head", [n.name for n in head]))
        out = g.output
        self._add_item(_Item(out.name, "output", [out.name], op=out.op))
        self._mark_diagnostics()
        self._connect()

    def _place_stage(self, stage: int, blocks: list[BlockInfo]) -> None:
        modes = [self._block_mode(b) for b in blocks]
        rolled_into: dict[int, tuple[int, int]] = {}  # index -> (first rolled index, last index)
        if self.rollup:
            i = 0
            while i < len(blocks):
                if modes[i] != "block" or self._has_diagnostic(blocks[i]):
                    i += 1
                    continue
                sig = self._signature(blocks[i])
                j = i + 1
                while (
                    j < len(blocks)
                    and modes[j] == "block"
                    and not self._has_diagnostic(blocks[j])
                    and self._signature(blocks[j]) == sig
                ):
                    j += 1
                if j - i >= ROLLUP_MIN_RUN:
                    for k in range(i + 1, j):
                        rolled_into[k] = (i + 1, j - 1)
                i = j
        cluster = (f"stage{stage}",)
        done_rolls: set[int] = set()
        for idx, (b, mode) in enumerate(zip(blocks, modes, strict=True)):
            prefix = f"stage{b.stage}_block{b.block}"
            if idx in rolled_into:
                first, last = rolled_into[idx]
                if first in done_rolls:
                    item = self.items[self.owner[blocks[first].nodes[0]]]
                    item.members.extend(b.nodes)
                    for name in b.nodes:
                        self.owner[name] = item.id
                    continue
                done_rolls.add(first)
                rid = f"{prefix}_to_block{blocks[last].block}"
                item = _Item(rid, "rolled", list(b.nodes), cluster, block=b)
                self._add_item(item)
                continue
            if mode == "layer":
                for name in b.nodes:
                    n = self.graph[name]
                    self._add_item(_Item(name, "layer", [name], cluster + (prefix,), op=n.op, block=b))
                continue
            add_name = f"{prefix}_add"
            if add_name in self.graph:
                after = b.nodes[b.nodes.index(add_name) :]
                main = [x for x in b.nodes if x not in after]
                self._add_item(_Item(prefix, "block", main, cluster, block=b))
                self._add_item(_Item(add_name, "add", list(after), cluster, block=b, op="add"))
                for name in main:
                    if self.graph[name].role == "shortcut":
                        self.owner[name] = ""  # drawn as the shortcut edge
            else:
                self._add_item(_Item(prefix, "block", list(b.nodes), cluster, block=b))

    def _add_item(self, item: _Item) -> None:
        self.items[item.id] = item
        for name in item.members:
            self.owner[name] = item.id

    # ------------------------------------------------------------------ diagnostics
    def _target(self, name: str) -> str:
        """The DOT node that shows graph node `name` (a collapsed shortcut node shows on its add)."""
        owner = self.owner.get(name, "")
        if owner:
            return owner
        b = self.block_of.get(name)
        if b is not None:
            return self.owner.get(f"stage{b.stage}_block{b.block}_add", "")
        return ""

    def _mark_diagnostics(self) -> None:
        self.path_ids: set[str] = set()
        self.broken_ids: set[str] = set()
        for d in self.ag.diagnostics:
            target = self._target(d.node)
            if not target:
                continue
            self.items[target].diagnostics.append(d)
            self.broken_ids.add(target)
            for name in d.path:
                pid = self._target(name)
                if pid:
                    self.items[pid].on_path = True
                    self.path_ids.add(pid)

    # ------------------------------------------------------------------ edges
    def _connect(self) -> None:
        seen: set[tuple[str, str]] = set()
        for n in self.graph.nodes:
            dst = self.owner.get(n.name, "")
            if not dst:
                continue
            dst_item = self.items[dst]
            for idx, src_name in enumerate(n.inputs):
                is_shortcut = n.role == "shortcut" or (n.op == "add" and idx == 1)
                if is_shortcut and dst_item.kind in ("stage", "rolled"):
                    continue
                b = self.block_of.get(n.name)
                collapsed = is_shortcut and dst_item.kind == "add" and b is not None
                src = self.owner.get(b.input if collapsed else src_name, "")
                if not src or src == dst or (src, dst) in seen:
                    continue
                seen.add((src, dst))
                if collapsed:
                    kind = b.shortcut
                    label = self._shortcut_label(b) + "\\n" + self._carried(src_name)
                    tooltip = self._shortcut_tooltip(b)
                else:
                    kind = b.shortcut if (is_shortcut and b is not None) else "main"
                    label = self._carried(src_name)
                    if kind == "identity":
                        label = "identity\\n" + label
                    tooltip = ""
                broken = dst in self.broken_ids or (src in self.path_ids and dst in self.path_ids)
                self.edges.append(_Edge(src, dst, label, kind, tooltip, broken))

    def _carried(self, name: str) -> str:
        """The shape an edge out of node `name` carries, for its label.

        A node whose inputs do not fit has no real output: `annotate` records the diagnostic and goes on
        with the main path's shape, which the edge must not show as if the node produced it. Its edge shows
        what reaches the node instead, marked ✗ — the first shape the diagnostic names, as the red Add
        beside it does ("✗ cannot add 32×32×64 vs 16×16×32").
        """
        shapes = next((d.shapes for d in self.ag.errors if d.node == name and d.shapes), None)
        if shapes is not None:
            return "✗ " + fmt.shape(shapes[0])
        return fmt.shape(self.ag.info[name].shape)

    def _shortcut_label(self, b: BlockInfo) -> str:
        letter = self.cfg.shortcut if self.cfg.shortcut in ("A", "B", "C") else ""
        tag = f" ({letter})" if letter else ""
        nodes = [self.graph[x] for x in b.nodes if self.graph[x].role == "shortcut"]
        if b.shortcut == "identity":
            return "identity"
        if b.shortcut == "zero_pad":
            return f"zero-pad{tag}{_stride(b.stride)}"
        if b.shortcut == "subsample":
            return f"subsample{tag}\\n1×1 max-pool{_stride(b.stride)}"
        convs = [op_label(n) for n in nodes if n.op == "conv"]
        extra = " + BN" if any(n.op == "bn" for n in nodes) else ""
        return f"projection{tag}\\n" + (convs[0] if convs else "1×1 conv") + extra

    def _shortcut_tooltip(self, b: BlockInfo) -> str:
        text = f"{SHORTCUT_NAMES.get(b.shortcut, b.shortcut)} of stage{b.stage}_block{b.block}"
        nodes = [self.graph[x] for x in b.nodes if self.graph[x].role == "shortcut"]
        if nodes and nodes[0].inputs and nodes[0].inputs[0] != b.input:
            text += f"\\nbranches off after {nodes[0].inputs[0]} (the block's pre-activation)"
        return text

    def node_count(self) -> int:
        return len(self.items)


# ----------------------------------------------------------------------------------------------- labels
class _Writer:
    """Turns a plan into a graphviz.Digraph."""

    def __init__(self, plan: _Plan, *, rankdir: str, show_params: bool, color_by: str | None, legend: bool) -> None:
        self.plan = plan
        self.ag = plan.ag
        self.graph = plan.graph
        self.cfg = plan.cfg
        self.rankdir = rankdir
        self.show_params = show_params
        self.color_by = color_by
        self.legend = legend
        self.costs: dict[str, float] = {}
        self.bins: list[float] = []
        if color_by:
            self._cost_bins()

    # ------------------------------------------------------------------ cost
    def _metric(self, name: str) -> float:
        info = self.ag.info[name]
        if self.color_by == "params":
            return info.params
        if self.color_by == "macs":
            return info.macs
        return info.bytes

    def _cost_bins(self) -> None:
        for item in self.plan.items.values():
            self.costs[item.id] = sum(self._metric(m) for m in item.members)
        coloured = [i for i in self.plan.items.values() if self._cost_coloured(i)]
        positive = [c for c in (self._colour_cost(i) for i in coloured) if c > 0]
        if not positive:
            return
        # Log scale over at least COST_MIN_DECADES, so that near-equal costs (every block's MACs) look near-equal.
        hi = math.log10(max(positive))
        lo = min(math.log10(min(positive)), hi - COST_MIN_DECADES)
        self.bins_low = 10**lo
        steps = len(COST_PALETTE)
        self.bins = [10 ** (lo + (hi - lo) * (i + 1) / steps) for i in range(steps)]

    @staticmethod
    def _cost_coloured(item: _Item) -> bool:
        return item.kind != "add" and item.op != "add"

    def _colour_cost(self, item: _Item) -> float:
        """The cost a node is coloured by: its own, or one block's share for a rolled-up run."""
        cost = self.costs.get(item.id, 0)
        return cost / self._rolled_count(item) if item.kind == "rolled" else cost

    def _rolled_count(self, item: _Item) -> int:
        assert item.block is not None
        return self.plan.block_of[item.members[-1]].block - item.block.block + 1

    def _cost_colour(self, value: float) -> tuple[str, str]:
        if value <= 0 or not self.bins:
            return "#ffffff", INK
        i = min(bisect.bisect_left(self.bins, value * (1 - 1e-9)), len(COST_PALETTE) - 1)
        return COST_PALETTE[i], ("#ffffff" if i >= len(COST_PALETTE) - 2 else INK)

    # ------------------------------------------------------------------ text
    def _params(self, item: _Item) -> int:
        return sum(self.ag.info[m].params for m in item.members)

    def _block_summary(self, b: BlockInfo) -> str:
        convs = [self.graph[x] for x in b.nodes if self.graph[x].op == "conv" and self.graph[x].role == "main"]
        return " → ".join(_conv_short(n) for n in convs)

    def _layers_tooltip(self, names: list[str], limit: int = 16) -> list[str]:
        lines = []
        for name in names[:limit]:
            n = self.graph[name]
            lines.append(f"{name}: {op_label(n)} → {fmt.shape(self.ag.info[name].shape)}")
        if len(names) > limit:
            lines.append(f"… {len(names) - limit} more layers")
        return lines

    def _label(self, item: _Item) -> tuple[str, list[str]]:
        """Label lines and tooltip lines of one item."""
        info = self.ag.info
        g = self.graph
        kind = item.kind
        lines: list[str]
        tip: list[str]
        if kind == "input":
            shape = fmt.shape(info[item.id].shape)
            lines, tip = [f"input {shape}"], [f"{item.id}: input image {shape}"]
        elif kind == "output":
            n = g[item.id]
            lines, tip = [item.id, op_label(n)], [f"{item.id}: {op_label(n)} → {fmt.shape(info[item.id].shape)}"]
        elif kind in ("stem", "head"):
            ops = [op_label(g[m]) for m in item.members if g[m].op != "zero_pad"]
            lines = [kind, _chain(ops)]
            tip = [kind] + self._layers_tooltip(item.members)
        elif kind == "stage":
            lines, tip = self._stage_label(item)
        elif kind == "block":
            b = item.block
            assert b is not None
            lines = [item.id, self._block_summary(b)]
            tip = [f"{item.id} ({b.in_width} → {b.out_width} channels, stride {b.stride})"]
            tip += self._layers_tooltip(item.members)
            if b.shortcut == "none":
                tip.append("plain block: no shortcut")
        elif kind == "rolled":
            lines, tip = self._rolled_label(item)
        elif kind == "add":
            b = item.block
            assert b is not None
            post = [op_label(g[m]) for m in item.members[1:]]
            lines = [" ".join(["+"] + post)]
            tip = [f"{item.id}: main path + {SHORTCUT_NAMES.get(b.shortcut, b.shortcut)}"]
            tip += self._layers_tooltip(item.members)
        else:  # layer
            n = g[item.id]
            lines = [op_label(n)]
            tip = [f"{item.id}: {op_label(n)} → {fmt.shape(info[item.id].shape)}"]
            if info[item.id].params:
                tip.append(f"params {info[item.id].params:,}")
        if self.show_params and kind not in ("input", "add"):
            params = self._params(item)
            if kind == "rolled" and params:
                lines.append(f"params {fmt.count_label(params)} ({fmt.count_label(params // self._rolled_count(item))} each)")
            elif params or kind == "block":
                lines.append(f"params {fmt.count_label(params)}")
        if self.color_by:
            tip.append(f"{COST_NAMES[self.color_by]}: {_metric_text(self.color_by, self.costs.get(item.id, 0))}")
        for d in item.diagnostics:
            shapes = " vs ".join(fmt.shape(s) for s in d.shapes)
            if kind == "add" or item.op == "add":
                lines = ["✗ cannot add", shapes]
            elif kind == "layer":
                lines.append(f"✗ {shapes}")
            else:
                lines.append(f"✗ {d.node}: {shapes}")
            tip += ["", f"{d.severity.upper()} at {d.node}: {d.message}", f"fix: {d.hint}"]
        return lines, tip

    def _stage_label(self, item: _Item) -> tuple[list[str], list[str]]:
        info = self.ag.info
        blocks = [b for b in self.graph.blocks if f"stage{b.stage}" == item.id]
        first, last = blocks[0], blocks[-1]
        inner = max((self.graph[x].attrs["filters"] for x in first.nodes if self.graph[x].op == "conv"), default=0)
        kinds: dict[str, int] = {}
        for b in blocks:
            kinds[b.shortcut] = kinds.get(b.shortcut, 0) + 1
        shortcut_text = ", ".join(f"{SHORTCUT_NAMES[k].replace(' shortcut', '')} ×{c}" for k, c in kinds.items())
        noun = f"{self.cfg.block} block" + ("s" if len(blocks) > 1 else "")
        lines = [
            f"{item.id} · {len(blocks)} {noun} · width {inner if self.cfg.block == 'basic' else last.out_width}",
            self._block_summary(first),
            f"{fmt.shape(info[first.input].shape)} → {fmt.shape(info[last.output].shape)}",
        ]
        if self.cfg.shortcut != "none":
            lines.append(f"shortcuts: {shortcut_text}")
        tip = [item.id] + [f"{b.input} → stage{b.stage}_block{b.block} → {b.output}" for b in blocks[:3]]
        if len(blocks) > 3:
            tip.append(f"… {len(blocks) - 3} more blocks")
        return lines, tip

    def _rolled_label(self, item: _Item) -> tuple[list[str], list[str]]:
        b = item.block
        assert b is not None
        names = item.members
        last = self.plan.block_of[names[-1]]
        count = self._rolled_count(item)
        sc = SHORTCUT_NAMES.get(b.shortcut, b.shortcut)
        lines = [
            f"stage{b.stage}_block{b.block} … block{last.block}",
            f"× {count} identical blocks",
            self._block_summary(b),
            f"each with {sc}" if b.shortcut != "none" else "plain (no shortcut)",
        ]
        tip = [
            f"stage{b.stage}_block{b.block} … stage{last.stage}_block{last.block}: "
            f"{count} blocks identical to the one above",
            f"expand with --expand stage{b.stage} (or level 'layer') to see every layer",
        ]
        return lines, tip

    # ------------------------------------------------------------------ styles
    def _node_attrs(self, item: _Item) -> dict[str, str]:
        kind = item.kind
        attrs: dict[str, str] = {"shape": "box", "style": "rounded,filled", "fillcolor": BLOCK_FILL, "color": INK}
        cls = kind
        if kind in ("input", "output"):
            attrs.update(fillcolor=IO_FILL, color=STEM_LINE)
        elif kind in ("stem", "head"):
            attrs.update(fillcolor=STEM_FILL, color=STEM_LINE)
        elif kind == "stage":
            attrs.update(fillcolor=STAGE_FILL, penwidth="1.4")
        elif kind == "rolled":
            attrs.update(fillcolor=ROLLED_FILL, peripheries="2", style="filled")
        elif kind == "add":
            attrs.update(shape="circle" if len(item.members) == 1 else "ellipse", fillcolor=ADD_FILL, margin="0.02")
            attrs["style"] = "filled"
        elif kind == "layer":
            op = item.op
            cls = f"layer {op}"
            role = self.graph[item.id].role
            if role in ("stem", "head"):
                attrs.update(fillcolor=STEM_FILL, color=STEM_LINE)
            elif op == "add":
                attrs.update(shape="circle", fillcolor=ADD_FILL, style="filled", margin="0.02")
            elif op in ("bn", "relu", "dropout", "zero_pad"):
                attrs.update(fillcolor=LIGHT_FILL, fontsize="10", height="0.3")
            if role == "shortcut":
                style = SHORTCUT_STYLE.get(item.block.shortcut if item.block else "", {})
                attrs.update(color=style.get("color", INK), penwidth="1.6")
        if self.color_by and self._cost_coloured(item):
            fill, font = self._cost_colour(self._colour_cost(item))
            attrs.update(fillcolor=fill, fontcolor=font)
        if kind != "layer" or self.graph[item.id].role != "shortcut":
            attrs["group"] = "main"  # dot keeps one group's edges straight: the main path is a spine, skips bend
        if self._frozen(item):
            attrs.update(fillcolor=FROZEN_FILL, color=FROZEN_LINE, fontcolor=FROZEN_INK)
            cls += " frozen"
        if item.on_path:
            attrs.update(color=ERROR, penwidth="2.2")
            cls += " path"
        if item.diagnostics:
            warning_only = all(d.severity != "error" for d in item.diagnostics)
            attrs.update(color=ERROR, fillcolor=ERROR_FILL, fontcolor=ERROR_INK, penwidth="2.8")
            if item.op == "add":
                attrs.update(shape="box", style="rounded,filled")
            if warning_only:
                attrs["style"] = attrs["style"] + ",dashed"
            cls += " error"
        attrs["class"] = cls
        return attrs

    def _frozen(self, item: _Item) -> bool:
        """Every layer the item draws is frozen (fine-tuning): drawn icy, and said so in the legend."""
        members = [self.graph[m] for m in item.members if m in self.graph]
        return bool(members) and all(n.attrs.get("frozen") for n in members)

    def _edge_attrs(self, edge: _Edge) -> dict[str, str]:
        # Leading no-break spaces keep the text off the line even where the browser's font is wider than dot
        # assumed (SVG collapses plain leading spaces, not U+00A0).
        pad = "\u00a0\u00a0"
        attrs: dict[str, str] = {"label": pad + edge.label.replace("\\n", "\\n" + pad)}
        if edge.kind == "main":
            attrs["class"] = "main"
            attrs["weight"] = "4"
        else:
            style = SHORTCUT_STYLE[edge.kind]
            attrs.update(style, fontcolor=style["color"], weight="1")
            attrs["class"] = f"shortcut {edge.kind}"
        if edge.tooltip:
            attrs["tooltip"] = edge.tooltip
        if edge.broken:
            attrs.update(color=ERROR, fontcolor=ERROR, penwidth="2.8")
            attrs["class"] += " broken"
        return attrs

    # ------------------------------------------------------------------ legend
    def _legend_html(self) -> str:
        kinds_drawn = {i.kind for i in self.plan.items.values()}
        rows: list[tuple[str, str]] = []

        def swatch(fill: str, line: str, text: str) -> None:
            cell = f'<TD BGCOLOR="{fill}" COLOR="{line}" BORDER="1" WIDTH="28" HEIGHT="12"></TD>'
            rows.append((cell, text))

        def stroke(colour: str, pattern: str, text: str) -> None:
            cell = f'<TD><FONT COLOR="{colour}" POINT-SIZE="12"><B>{pattern}</B></FONT></TD>'
            rows.append((cell, text))

        if not self.color_by:  # with colour by cost, the scale at the bottom explains the fills
            swatch(STEM_FILL, STEM_LINE, "input, stem, head, output")
            if kinds_drawn & {"block", "stage", "layer"}:
                swatch(BLOCK_FILL, INK, "main path (conv layers)")
        if "rolled" in kinds_drawn:
            swatch(
                ROLLED_FILL if not self.color_by else BLOCK_FILL, INK, "× k: identical blocks rolled up (double border)"
            )
        if kinds_drawn & {"add"} or any(i.op == "add" for i in self.plan.items.values()):
            swatch(ADD_FILL, INK, "+ add (main path + shortcut)")
        stroke(MAIN_EDGE, "━━━", "main path, with H×W×C")
        shortcut_kinds = []
        for e in self.plan.edges:
            if e.kind != "main" and e.kind not in shortcut_kinds:
                shortcut_kinds.append(e.kind)
        for k in ("identity", "zero_pad", "projection", "subsample"):
            if k in shortcut_kinds:
                pattern = "━━━" if SHORTCUT_STYLE[k]["style"] == "solid" else "╍╍╍"
                stroke(SHORTCUT_STYLE[k]["color"], pattern, SHORTCUT_NAMES[k])
        if self.cfg.freeze:
            swatch(FROZEN_FILL, FROZEN_LINE, f"frozen (stem + stage 1–{self.cfg.freeze}): not trained")
        if self.ag.diagnostics:
            swatch(ERROR_FILL, ERROR, "does not fit (hover for why)")
            stroke(ERROR, "━━━", "path that breaks")
        body = "".join(f'<TR>{cell}<TD ALIGN="LEFT">{_html(text)}</TD></TR>' for cell, text in rows)
        if self.color_by and self.bins:
            cells = "".join(f'<TD BGCOLOR="{c}" WIDTH="14" HEIGHT="12"></TD>' for c in COST_PALETTE)
            lo = _metric_text(self.color_by, self.bins_low)
            hi = _metric_text(self.color_by, self.bins[-1])
            scale = f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>{cells}</TR></TABLE>'
            text = _html(f"{COST_NAMES[self.color_by]}: {lo} … {hi} (log scale)")
            body += f'<TR><TD>{scale}</TD><TD ALIGN="LEFT">{text}</TD></TR>'
        head = '<TR><TD COLSPAN="2" ALIGN="LEFT"><B>Legend</B></TD></TR>'
        return (
            f'<<TABLE BORDER="1" COLOR="#cccccc" CELLBORDER="0" CELLSPACING="3" CELLPADDING="2" BGCOLOR="#ffffff">'
            f"{head}{body}</TABLE>>"
        )

    # ------------------------------------------------------------------ title
    def _title(self) -> str:
        cfg = self.cfg
        ag = self.ag
        view = {"stage": "stage view", "block": "block view", "layer": "layer view"}[self.plan.level]
        if self.plan.expand and self.plan.level != "layer":
            view += f", {self.plan.expand} expanded"
        parts = [
            f"ResNet-{ag.depth} v{cfg.version}",
            f"{cfg.block} blocks",
            "plain (no shortcuts)" if cfg.shortcut == "none" else f"shortcut {cfg.shortcut}",
            f"{fmt.count_label(ag.total_params)} params",
            f"{fmt.count_label(ag.macs)} MACs",
        ]
        errors = len(ag.errors)
        if errors:
            parts.append(f"{errors} error{'s' if errors > 1 else ''}")
        return " · ".join(parts) + f"  ({view})"

    # ------------------------------------------------------------------ assemble
    def digraph(self) -> graphviz.Digraph:
        dot = graphviz.Digraph(name="resnet")
        dot.attr(
            "graph",
            rankdir=self.rankdir,
            splines="spline",
            nodesep="0.25",
            ranksep="0.3",
            fontname=FONT,
            fontsize="14",
            label=self._title(),
            labelloc="t",
            labeljust="l",
            bgcolor="white",
            tooltip=" ",
        )
        dot.attr("node", fontname=FONT, fontsize="11", fontcolor=INK, margin="0.12,0.05", height="0.35", penwidth="1.2")
        dot.attr(
            "edge", fontname=FONT, fontsize="9", fontcolor="#555555", color=MAIN_EDGE, arrowsize="0.6", penwidth="1.2"
        )
        if self.plan.node_count() >= LARGE_VIEW_NODES:
            dot.attr("graph", **LARGE_VIEW_LAYOUT)
        if self.legend:
            dot.node("legend", label=self._legend_html(), shape="plain", tooltip="legend", **{"class": "legend"})
        tree: dict = {}
        for item in self.plan.items.values():
            node = tree
            for key in item.cluster:
                node = node.setdefault(key, {})
            node.setdefault(None, []).append(item)
        self._emit(dot, tree, depth=0)
        for edge in self.plan.edges:
            dot.edge(edge.src, edge.dst, **self._edge_attrs(edge))
        return dot

    def _emit(self, dot: graphviz.Digraph, tree: dict, *, depth: int) -> None:
        # Items and sub-clusters keep graph order: emit items of this level first, then clusters in the order seen.
        for key, value in tree.items():
            if key is None:
                for item in value:
                    lines, tip = self._label(item)
                    dot.node(
                        item.id, label="\\n".join(lines), tooltip=_dot_text("\n".join(tip)), **self._node_attrs(item)
                    )
                continue
            with dot.subgraph(name=f"cluster_{key}") as sub:
                label, tooltip = self._cluster_label(key)
                sub.attr(label=label, tooltip=tooltip, **self._cluster_style(key, depth))
                self._emit(sub, value, depth=depth + 1)

    def _cluster_label(self, key: str) -> tuple[str, str]:
        """Label and tooltip of a cluster (stage labels stay short so the main path does not cross them)."""
        if key in ("stem", "head"):
            return key, key
        if "_block" in key:
            b = self.plan.blocks_by_name.get(key)
            if b is not None and b.shortcut != "none":
                return f"{key} · {SHORTCUT_NAMES[b.shortcut]}", key
            return key, key
        blocks = [b for b in self.graph.blocks if f"stage{b.stage}" == key]
        if not blocks:
            return key, key
        info = self.ag.info
        shapes = f"{fmt.shape(info[blocks[0].input].shape)} → {fmt.shape(info[blocks[-1].output].shape)}"
        return key, f"{key}: {len(blocks)} block{'s' if len(blocks) > 1 else ''}, {shapes}"

    def _cluster_style(self, key: str, depth: int) -> dict[str, str]:
        fill = CLUSTER_FILL if depth == 0 else BLOCK_CLUSTER_FILL
        return {
            "style": "rounded,filled",
            "fillcolor": fill,
            "color": CLUSTER_LINE,
            "fontname": FONT,
            "fontsize": "11",
            "fontcolor": STEM_LINE,
            "labeljust": "l",
            "penwidth": "1",
            "margin": "8",
        }


# ----------------------------------------------------------------------------------------------- public API
def _check(ag: AnnotatedGraph, *, level: str, expand: str | None, rankdir: str, color_by: str | None) -> None:
    if level not in LEVELS:
        raise DiagramError("level", f"unknown level {level!r}", f"choose one of: {', '.join(LEVELS)}")
    if rankdir not in RANKDIRS:
        raise DiagramError("rankdir", f"unknown direction {rankdir!r}", "use TB (top to bottom) or LR (left to right)")
    if color_by is not None and color_by not in COST_METRICS:
        raise DiagramError("color_by", f"unknown cost {color_by!r}", f"choose one of: {', '.join(COST_METRICS)}")
    if expand is not None:
        names = {f"stage{b.stage}" for b in ag.graph.blocks} | {
            f"stage{b.stage}_block{b.block}" for b in ag.graph.blocks
        }
        if expand not in names:
            stages = ag.config.stages
            last = ag.graph.blocks[-1] if ag.graph.blocks else None
            example = f"stage{last.stage}_block{last.block}" if last else "stage1_block1"
            raise DiagramError(
                "expand",
                f"there is no stage or block called {expand!r}",
                f"give a stage (stage1 … stage{stages}) or a block such as stage1_block1 … {example}",
            )
    if level == "layer" and len(ag.graph) > LAYER_NODE_LIMIT:
        raise DiagramError(
            "level",
            f"the layer view of this network would draw {len(ag.graph):,} layers, more than the {LAYER_NODE_LIMIT:,} "
            "a browser can lay out in reasonable time",
            "use the block view and expand one stage (--expand stage2) or one block (--expand stage2_block3) "
            "at layer level",
        )


def to_dot(
    ag: AnnotatedGraph,
    *,
    level: str = "block",
    expand: str | None = None,
    rankdir: str = "TB",
    rollup: bool = True,
    show_params: bool = False,
    color_by: str | None = None,
    legend: bool = True,
) -> str:
    """DOT source of the network, ready for `st.graphviz_chart` or the `dot` binary.

    Args:
        ag: The annotated graph.
        level: "stage" (one node per stage), "block" (one node per block, shortcuts as edges) or "layer"
            (every layer, each block a cluster).
        expand: A stage ("stage2") or block ("stage2_block3") drawn at layer level while the rest stays at
            `level` (at stage level, expanding a block draws its stage at block level).
        rankdir: "TB" (top to bottom) or "LR" (left to right).
        rollup: Fold runs of at least ROLLUP_MIN_RUN identical consecutive blocks into one "× k" node.
        show_params: Add the parameter count to node labels.
        color_by: Fill nodes by cost: "params", "macs" or "memory" (activation bytes); None for plain colours.
        legend: Draw a legend node explaining colours and edge styles.

    Returns:
        The DOT source; the same arguments always give the same text.

    Raises:
        DiagramError: An unknown option or stage/block name, or the layer level of a network with more than
            LAYER_NODE_LIMIT layers.
    """
    _check(ag, level=level, expand=expand, rankdir=rankdir, color_by=color_by)
    plan = _Plan(ag, level=level, expand=expand, rollup=rollup)
    writer = _Writer(plan, rankdir=rankdir, show_params=show_params, color_by=color_by, legend=legend)
    return writer.digraph().source


def view_size(ag: AnnotatedGraph, *, level: str = "block", expand: str | None = None, rollup: bool = True) -> int:
    """How many DOT nodes (without the legend) a view draws, without writing it.

    Args:
        ag: The annotated graph.
        level: As for `to_dot` (no layer limit is applied here).
        expand: As for `to_dot`.
        rollup: As for `to_dot`.
    """
    return _Plan(ag, level=level, expand=expand, rollup=rollup).node_count()


@dataclass(frozen=True)
class ViewNode:
    """One box of a view: what it is and which layers it draws.

    Attributes:
        id: The DOT node id (a layer, block or stage name; `stage1_block2_to_block5` for a folded run).
        kind: "input", "stem", "stage", "block", "rolled", "add", "head", "output" or "layer".
        members: The layers it stands for, in order.
    """

    id: str
    kind: str
    members: tuple[str, ...]


def view_nodes(ag: AnnotatedGraph, *, level: str = "block", expand: str | None = None,
               rollup: bool = True) -> dict[str, ViewNode]:
    """The boxes a view draws, by DOT node id (the details panel's lookup; the same plan as `to_dot`)."""
    plan = _Plan(ag, level=level, expand=expand, rollup=rollup)
    return {i.id: ViewNode(i.id, i.kind, tuple(i.members)) for i in plan.items.values()}


def default_level(ag: AnnotatedGraph) -> str:
    """The level to show first: "block", or "stage" when even the rolled-up block view is huge."""
    return "block" if view_size(ag, level="block", rollup=True) <= BLOCK_VIEW_LIMIT else "stage"


def dot_available() -> bool:
    """Whether the Graphviz `dot` program is on PATH (needed for SVG/PNG export, not for the app's chart)."""
    return shutil.which("dot") is not None


def render(dot_source: str, fmt: str) -> bytes:
    """Lay out DOT source with the `dot` binary.

    Args:
        dot_source: DOT text, e.g. from `to_dot`.
        fmt: "svg", "png" or "pdf".

    Returns:
        The rendered file's bytes.

    Raises:
        DiagramError: Unknown format, `dot` not installed, or `dot` failed.
    """
    if fmt not in RENDER_FORMATS:
        raise DiagramError(
            "format", f"cannot render {fmt!r}", f"choose one of: {', '.join(RENDER_FORMATS)}, or save .dot"
        )
    try:
        return graphviz.Source(dot_source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DiagramError(
            "format",
            f"drawing {fmt.upper()} needs the Graphviz `dot` program, which is not installed",
            "install Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) "
            "or save the diagram as .dot and open it with any Graphviz viewer",
        ) from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise DiagramError(
            "format", f"Graphviz `dot` failed: {detail[-1] if detail else exc}", "save the diagram as .dot instead"
        ) from None
