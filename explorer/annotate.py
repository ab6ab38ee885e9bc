"""Pure arithmetic over a graph: shapes, params, MACs, receptive field, memory, and diagnostics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from explorer.config import ResNetConfig
from explorer.graph import Graph, Node, expand

Shape = tuple[int, ...]
BYTES_PER_VALUE = 4  # float32 activations


@dataclass(frozen=True)
class Diagnostic:
    """Something in the network that does not fit.

    Attributes:
        node: Name of the node where it shows.
        message: What is wrong, in plain language.
        shapes: The shapes involved (e.g. the two inputs of an Add).
        hint: How to fix it.
        severity: "error" (Keras cannot build it) or "warning" (it builds but makes no sense).
        fixes: Config changes that fix it, as {field: value} dicts (the UI offers them as buttons).
        path: Names of nodes on the path that breaks (highlighted in the diagram).
    """

    node: str
    message: str
    shapes: tuple[Shape, ...]
    hint: str
    severity: str = "error"
    fixes: tuple[dict, ...] = ()
    path: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "node": self.node, "severity": self.severity, "message": self.message,
            "shapes": [list(s) for s in self.shapes], "hint": self.hint, "fixes": [dict(f) for f in self.fixes],
        }


@dataclass(slots=True)
class LayerInfo:
    """What annotate() computes for one node (per image, float32)."""

    shape: Shape
    params: int = 0
    trainable: int = 0
    macs: int = 0
    rf: int = 1
    jump: int = 1
    bytes: int = 0
    start: float = 0.0  # centre of output pixel (0, 0) in input pixels (rows; columns alike for square padding)


@dataclass
class AnnotatedGraph:
    """A graph with per-node numbers, totals and diagnostics."""

    graph: Graph
    info: dict[str, LayerInfo]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def config(self) -> ResNetConfig:
        """The config the graph came from."""
        return self.graph.config

    def __iter__(self) -> Iterator[tuple[Node, LayerInfo]]:
        for node in self.graph.nodes:
            yield node, self.info[node.name]

    @property
    def errors(self) -> list[Diagnostic]:
        """Diagnostics that stop Keras from building the model."""
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when there are no diagnostics at all."""
        return not self.diagnostics

    @property
    def total_params(self) -> int:
        """All parameters."""
        return sum(i.params for i in self.info.values())

    @property
    def trainable_params(self) -> int:
        """Trainable parameters."""
        return sum(i.trainable for i in self.info.values())

    @property
    def non_trainable_params(self) -> int:
        """Non-trainable parameters (BN moving mean and variance, and all of the frozen layers')."""
        return self.total_params - self.trainable_params

    @property
    def frozen_params(self) -> int:
        """Parameters of the frozen layers (fine-tuning, `config.freeze`): all of them are non-trainable."""
        return sum(self.info[n.name].params for n in self.graph if n.attrs.get("frozen"))

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one image."""
        return sum(i.macs for i in self.info.values())

    @property
    def activation_bytes(self) -> int:
        """Sum of all layer outputs for one image (what training keeps for backprop)."""
        return sum(i.bytes for i in self.info.values())

    @property
    def main_convs(self) -> list[str]:
        """Names of the weighted layers on the main path before the classifier (stem and block convs), in order."""
        return [n.name for n in self.graph if n.op == "conv" and n.role in ("stem", "main")]

    @property
    def depth(self) -> int:
        """Weighted layers on the main path: stem and block convs plus the classifier."""
        return len(self.main_convs) + 1

    def totals(self) -> dict[str, int]:
        """The headline numbers as a dict."""
        return {
            "depth": self.depth, "layers": len(self.graph), "total_params": self.total_params,
            "trainable_params": self.trainable_params, "non_trainable_params": self.non_trainable_params,
            "macs": self.macs, "activation_bytes": self.activation_bytes,
        }


def build(config: ResNetConfig) -> AnnotatedGraph:
    """expand() then annotate(): the usual way from a config to everything the views need."""
    return annotate(expand(config))


def annotate(graph: Graph) -> AnnotatedGraph:
    """Compute every node's numbers; collect (never stop at) diagnostics."""
    result = AnnotatedGraph(graph, {})
    state = _State(graph, result)
    for node in graph.nodes:
        result.info[node.name] = state.visit(node)
    return result


def _start(src: LayerInfo, kernel: int, stride: int, padding: str, out: int) -> float:
    """Centre of the first output pixel, in input pixels (TensorFlow puts the odd 'same' pad at the end)."""
    pad_before = 0
    if padding == "same" and src.shape[0] > 0:
        pad_before = max((out - 1) * stride + kernel - src.shape[0], 0) // 2
    return src.start + ((kernel - 1) / 2 - pad_before) * src.jump


class _State:
    def __init__(self, graph: Graph, result: AnnotatedGraph) -> None:
        self.graph = graph
        self.result = result
        self.info = result.info
        self.broken: set[str] = set()  # nodes downstream of a vanished map (reported once)
        self.stride_warned = False

    # -------------------------------------------------------------- helpers
    def report(self, node: Node, message: str, shapes: tuple, hint: str, *, severity: str = "error", fixes: tuple = (), path: tuple = ()) -> None:
        self.result.diagnostics.append(Diagnostic(node.name, message, shapes, hint, severity, fixes, path))

    def visit(self, node: Node) -> LayerInfo:
        ins = [self.info[i] for i in node.inputs]
        if any(i in self.broken for i in node.inputs):
            self.broken.add(node.name)
        handler = getattr(self, f"_{node.op}")
        out: LayerInfo = handler(node, ins)
        out.bytes = math.prod(out.shape) * BYTES_PER_VALUE
        if node.attrs.get("frozen"):
            out.trainable = 0
        return out

    def _spatial(self, node: Node, src: LayerInfo, kernel: int, stride: int, padding: str, what: str) -> tuple[int, int]:
        h, w = src.shape[0], src.shape[1]
        if padding == "same":
            oh, ow = -(-h // stride), -(-w // stride)
        else:
            oh = (h - kernel) // stride + 1 if h >= kernel else 0
            ow = (w - kernel) // stride + 1 if w >= kernel else 0
        if (oh <= 0 or ow <= 0) and node.name not in self.broken:
            self.broken.add(node.name)
            self._vanished(node, src, kernel, what)
        elif stride > 1 and h == 1 and w == 1 and not self.stride_warned and node.name not in self.broken:
            self.stride_warned = True
            self._too_many_strides(node, src)
        return max(oh, 0), max(ow, 0)

    def _needed_side(self, fixed_pool: bool) -> int:
        """Smallest input side that keeps every stride meaningful (and AvgPool(8) fed)."""
        cfg = self.graph.config
        factor = 4 if cfg.stem == "imagenet" else 1
        factor *= 2 ** (cfg.stages - 1)
        return factor * (8 if fixed_pool else 1)

    def _vanished(self, node: Node, src: LayerInfo, kernel: int, what: str) -> None:
        cfg = self.graph.config
        h, w = src.shape[0], src.shape[1]
        if node.name == "head_pool":
            need = self._needed_side(True)
            self.report(
                node,
                f"the '{cfg.head}' head's AveragePooling2D(8) needs at least an 8×8 map, but the network ends at {h}×{w}",
                (src.shape,),
                f"use head 'gap', or an input of at least {need}×{need}",
                fixes=({"head": "gap"}, {"input_shape": [need, need, cfg.input_shape[2]]}),
            )
            return
        need = self._needed_side(cfg.head != "gap")
        self.report(
            node,
            f"the {h}×{w} map is smaller than this {what}'s {kernel}×{kernel} window: the output would have no pixels",
            (src.shape,),
            f"use an input of at least {need}×{need}, fewer stages, or the 'cifar' stem",
            fixes=({"input_shape": [need, need, cfg.input_shape[2]]},) + (({"stem": "cifar"},) if cfg.stem == "imagenet" else ()),
        )

    def _too_many_strides(self, node: Node, src: LayerInfo) -> None:
        cfg = self.graph.config
        need = self._needed_side(cfg.head != "gap")
        fixes: tuple = ({"input_shape": [need, need, cfg.input_shape[2]]},)
        if cfg.stages > 1 and cfg.blocks is None:
            fixes += ({"stages": cfg.stages - 1},)
        self.report(
            node,
            f"too many stride-2 steps for a {cfg.input_shape[0]}×{cfg.input_shape[1]} input: this stride-2 layer gets "
            "a 1×1 map, so there is nothing left to downsample",
            (src.shape,),
            f"use an input of at least {need}×{need}, or fewer stages",
            severity="warning",
            fixes=fixes,
        )

    # -------------------------------------------------------------- ops
    def _input(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        return LayerInfo(tuple(node.attrs["shape"]))

    def _conv(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        a = node.attrs
        k, s = a["kernel"], a["stride"]
        oh, ow = self._spatial(node, src, k, s, a["padding"], "conv")
        cin = src.shape[2]
        params = k * k * cin * a["filters"] + (a["filters"] if a["bias"] else 0)
        macs = oh * ow * k * k * cin * a["filters"]
        return LayerInfo((oh, ow, a["filters"]), params, params, macs, src.rf + (k - 1) * src.jump, src.jump * s,
                         start=_start(src, k, s, a["padding"], oh))

    def _pool(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        a = node.attrs
        k, s = a["size"], a["stride"]
        oh, ow = self._spatial(node, src, k, s, a["padding"], "pool")
        return LayerInfo((oh, ow, src.shape[2]), rf=src.rf + (k - 1) * src.jump, jump=src.jump * s,
                         start=_start(src, k, s, a["padding"], oh))

    _maxpool = _pool
    _avgpool = _pool

    def _zero_pad(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        p = node.attrs["pad"]
        h, w, c = src.shape
        return LayerInfo((h + 2 * p, w + 2 * p, c), rf=src.rf, jump=src.jump, start=src.start - p * src.jump)

    def _bn(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        c = src.shape[-1]
        return LayerInfo(src.shape, 4 * c, 2 * c, rf=src.rf, jump=src.jump, start=src.start)

    def _same(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        return LayerInfo(src.shape, rf=src.rf, jump=src.jump, start=src.start)

    _relu = _same
    _dropout = _same

    def _zero_pad_shortcut(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        s, c = node.attrs["stride"], node.attrs["channels"]
        oh, ow = self._spatial(node, src, 1, s, "same", "shortcut")
        if c < src.shape[2]:
            self.report(
                node,
                f"shortcut A can only add channels by zero-padding, but this block goes from {src.shape[2]} to {c} channels",
                (src.shape, (oh, ow, c)),
                "use shortcut B or C (a 1×1 projection), or widths that never shrink",
                fixes=({"shortcut": "B"},),
                path=(node.inputs[0], node.name),
            )
        return LayerInfo((oh, ow, c), rf=src.rf, jump=src.jump * s, start=src.start)

    def _add(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        main, short = ins
        if main.shape != short.shape and node.name not in self.broken:
            self._mismatch(node, main, short)
        return LayerInfo(main.shape, rf=max(main.rf, short.rf), jump=main.jump, start=main.start)

    def _mismatch(self, node: Node, main: LayerInfo, short: LayerInfo) -> None:
        cfg = self.graph.config
        causes = []
        if main.shape[:2] != short.shape[:2]:
            causes.append(f"the main path downsamples to {main.shape[0]}×{main.shape[1]} but the shortcut stays {short.shape[0]}×{short.shape[1]}")
        if main.shape[2:] != short.shape[2:]:
            causes.append(f"the main path has {main.shape[2]} channels but the shortcut brings {short.shape[2]}")
        fixes: list[dict] = [{"shortcut": "B"}, {"shortcut": "A"}]
        if cfg.shortcut == "A":
            fixes = [{"shortcut": "B"}]
        hint = "use shortcut A (zero-pad and subsample, no parameters) or B (1×1 projection where the shape changes)"
        if cfg.shortcut == "A":
            hint = "use shortcut B (1×1 projection where the shape changes)"
        block_nodes = [n.name for n in self.graph.nodes if n.stage == node.stage and n.block == node.block]
        self.report(
            node,
            f"{node.name} cannot add its inputs: {'; and '.join(causes)}",
            (main.shape, short.shape),
            hint,
            fixes=tuple(fixes),
            path=tuple(block_nodes),
        )

    def _gap(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        h = max(src.shape[0], src.shape[1])
        return LayerInfo((src.shape[2],), rf=src.rf + (h - 1) * src.jump, jump=src.jump)

    def _flatten(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        h = max(src.shape[0], src.shape[1])
        return LayerInfo((math.prod(src.shape),), rf=src.rf + (h - 1) * src.jump, jump=src.jump)

    def _dense(self, node: Node, ins: list[LayerInfo]) -> LayerInfo:
        src = ins[0]
        units = node.attrs["units"]
        params = src.shape[0] * units + units
        return LayerInfo((units,), params, params, src.shape[0] * units, rf=src.rf, jump=src.jump)
