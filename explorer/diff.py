"""Two annotated graphs → their differences, matched by node name (the compare view and the CLI's `diff` read them)."""

from __future__ import annotations

from dataclasses import dataclass

from explorer import fmt
from explorer.annotate import AnnotatedGraph
from explorer.config import ResNetConfig


@dataclass(frozen=True)
class NodeChange:
    """One node present in both networks whose op, output shape or parameters differ.

    Attributes:
        name: The node (the same name in both).
        op: (op in A, op in B).
        shape: (output shape in A, in B), each (H, W, C) or (N,).
        params: (parameters in A, in B).
    """

    name: str
    op: tuple[str, str]
    shape: tuple[tuple[int, ...], tuple[int, ...]]
    params: tuple[int, int]

    def text(self) -> str:
        """E.g. 'stage2_block1_conv1: shape 16×16×32 → 16×16×64, params 4,608 → 18,432'."""
        parts = []
        if self.op[0] != self.op[1]:
            parts.append(f"op {self.op[0]} → {self.op[1]}")
        if self.shape[0] != self.shape[1]:
            parts.append(f"shape {fmt.shape(self.shape[0])} → {fmt.shape(self.shape[1])}")
        if self.params[0] != self.params[1]:
            parts.append(f"params {self.params[0]:,} → {self.params[1]:,}")
        return f"{self.name}: {', '.join(parts)}"


@dataclass(frozen=True)
class GraphDiff:
    """What differs between network A and network B.

    Attributes:
        only_a: Nodes only A has, in A's order.
        only_b: Nodes only B has, in B's order.
        changed: Nodes both have that differ (op, output shape or parameters), in A's order.
        totals: (A, B) per total: params, trainable_params, macs, depth, layers, activation_bytes, errors.
    """

    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    changed: tuple[NodeChange, ...]
    totals: dict[str, tuple[int, int]]

    @property
    def same(self) -> bool:
        """Whether the two networks have the same nodes with the same ops, shapes and parameters."""
        return not (self.only_a or self.only_b or self.changed)

    def to_dict(self) -> dict:
        """JSON-ready: the CLI's `diff --json`."""
        return {
            "same": self.same,
            "totals": {k: {"a": a, "b": b} for k, (a, b) in self.totals.items()},
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "changed": [{"name": c.name, "op": list(c.op), "shape": [list(c.shape[0]), list(c.shape[1])],
                         "params": list(c.params)} for c in self.changed],
        }

    def lines(self, *, limit: int = 40) -> list[str]:
        """The differences in words, one per line (lists longer than `limit` are shortened, saying how many more)."""
        out = []
        for key, (a, b) in self.totals.items():
            if a != b:
                delta = f"{b - a:+,}"
                out.append(f"{key.replace('_', ' ')}: {a:,} → {b:,} ({delta})")
        for title, names in (("only in A", self.only_a), ("only in B", self.only_b)):
            if names:
                shown = ", ".join(names[:limit]) + (f", … {len(names) - limit} more" if len(names) > limit else "")
                out.append(f"{title} ({len(names)}): {shown}")
        if self.changed:
            out.append(f"changed ({len(self.changed)}):")
            out += [f"  {c.text()}" for c in self.changed[:limit]]
            if len(self.changed) > limit:
                out.append(f"  … {len(self.changed) - limit} more")
        return out or ["the two networks are the same, node by node"]


def network_text(config: ResNetConfig) -> str:
    """One line naming a network, e.g. 'depth 20 · v1 · basic blocks · shortcut A · input 32×32×3 → 10 classes'."""
    return (f"depth {config.resolved_depth} · v{config.version} · {config.block} blocks · shortcut {config.shortcut} · "
            f"input {fmt.shape(config.input_shape)} → {config.classes} classes")


def totals(ag: AnnotatedGraph) -> dict[str, int]:
    """The totals a diff compares."""
    return {"params": ag.total_params, "trainable_params": ag.trainable_params, "macs": ag.macs, "depth": ag.depth,
            "layers": len(ag.graph), "activation_bytes": ag.activation_bytes, "errors": len(ag.errors)}


def diff(a: AnnotatedGraph, b: AnnotatedGraph) -> GraphDiff:
    """The differences between two annotated networks, nodes matched by name (names say where a node sits:
    `stage2_block1_conv1` is the same place in both). Reads the annotated numbers; re-derives nothing."""
    names_a = [n.name for n in a.graph.nodes]
    names_b = [n.name for n in b.graph.nodes]
    in_a, in_b = set(names_a), set(names_b)
    changed = []
    for name in names_a:
        if name not in in_b:
            continue
        ia, ib = a.info[name], b.info[name]
        op = (a.graph[name].op, b.graph[name].op)
        if op[0] != op[1] or tuple(ia.shape) != tuple(ib.shape) or ia.params != ib.params:
            changed.append(NodeChange(name, op, (tuple(ia.shape), tuple(ib.shape)), (ia.params, ib.params)))
    ta, tb = totals(a), totals(b)
    return GraphDiff(only_a=tuple(n for n in names_a if n not in in_b), only_b=tuple(n for n in names_b if n not in in_a),
                     changed=tuple(changed), totals={k: (ta[k], tb[k]) for k in ta})
