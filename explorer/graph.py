"""Framework-free network description: `Node`, `Graph` and `expand(config)`, with the one naming function."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from explorer.config import ResNetConfig
from explorer.ops import OPS

ROLES = ("input", "stem", "main", "shortcut", "head")


def node_name(part: str, *, stage: int | None = None, block: int | None = None, where: str = "") -> str:
    """The one naming function: `stage2_block1_conv2`, `stem_conv`, `head_pool`.

    Args:
        part: What the node is within its block, stem or head ("conv2", "add", "shortcut").
        stage: 1-based stage number for nodes inside a residual block.
        block: 1-based block number within the stage.
        where: "stem" or "head" for nodes outside the stages ("" for special names).
    """
    if stage is not None and block is not None:
        return f"stage{stage}_block{block}_{part}"
    return f"{where}_{part}" if where else part


@dataclass(frozen=True, slots=True)
class Node:
    """One layer of the network.

    Attributes:
        name: Stable name; also the Keras layer name, DOT node id and table row.
        op: Operation kind (a key of `explorer.ops.OPS`).
        inputs: Names of the input nodes; for "add", (main path, shortcut).
        attrs: Op attributes (filters, kernel, stride, padding, bias, units, ...).
        stage: 0 for input and stem, 1..S for stages, S+1 for the head.
        block: 1-based block within the stage, 0 outside blocks.
        role: "input", "stem", "main", "shortcut" or "head".
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    stage: int = 0
    block: int = 0
    role: str = "main"

    @property
    def keras_class(self) -> str:
        """The Keras layer class this node becomes."""
        return OPS[self.op].keras_class


@dataclass(frozen=True)
class BlockInfo:
    """Summary of one residual block, for views that draw blocks rather than layers.

    Attributes:
        stage: 1-based stage.
        block: 1-based block within the stage.
        nodes: Names of the block's nodes in order.
        input: Name of the node feeding the block.
        output: Name of the block's last node.
        shortcut: "identity", "zero_pad", "projection", "subsample" or "none".
        stride: The block's stride.
        in_width: Channels entering the block.
        out_width: Channels leaving it.
    """

    stage: int
    block: int
    nodes: tuple[str, ...]
    input: str
    output: str
    shortcut: str
    stride: int
    in_width: int
    out_width: int


@dataclass
class Graph:
    """The network as an ordered (topological) list of nodes, plus its block summaries."""

    config: ResNetConfig
    nodes: list[Node]
    blocks: list[BlockInfo]
    _index: dict[str, Node] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {n.name: n for n in self.nodes}

    def __getitem__(self, name: str) -> Node:
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def output(self) -> Node:
        """The last node (the classifier)."""
        return self.nodes[-1]


class _Builder:
    """Appends nodes in order while `expand` walks the network."""

    def __init__(self, config: ResNetConfig) -> None:
        self.config = config
        self.nodes: list[Node] = []
        self.stage = 0
        self.block = 0
        self.where = "stem"

    def add(self, part: str, op: str, inputs: tuple[str, ...] | str, *, role: str, **attrs: Any) -> str:
        if isinstance(inputs, str):
            inputs = (inputs,)
        in_block = self.block > 0
        name = node_name(part, stage=self.stage if in_block else None, block=self.block if in_block else None, where=self.where)
        if self.config.freeze and role != "input" and self.stage <= self.config.freeze and self.where != "head":
            attrs["frozen"] = True
        self.nodes.append(Node(name, op, inputs, attrs, self.stage, self.block, role))
        return name

    def conv(self, part: str, x: str, filters: int, kernel: int, stride: int = 1, *, role: str, bn_follows: bool,
             pad_part: str = "", zero: bool = False) -> str:
        """A Conv2D (preceded by ZeroPadding2D when the config asks for explicit padding)."""
        cfg = self.config
        padding = "same"
        if cfg.explicit_padding and kernel > 1:
            x = self.add(pad_part or f"{part}_pad", "zero_pad", x, role=role, pad=(kernel - 1) // 2)
            padding = "valid"
        bn_follows = bn_follows and cfg.batch_norm
        bias = {"auto": not bn_follows, "always": True, "never": False}[cfg.conv_bias]
        return self.add(
            part, "conv", x, role=role, filters=filters, kernel=kernel, stride=stride, padding=padding,
            bias=bias, initializer="zeros" if zero else cfg.initializer, l2=cfg.l2,
        )

    def bn(self, part: str, x: str, *, role: str, zero: bool = False) -> str:
        """A BatchNormalization (none when the config has batch_norm off); `zero` starts its γ at 0."""
        if not self.config.batch_norm:
            return x
        return self.add(part, "bn", x, role=role, epsilon=self.config.bn_epsilon, gamma="zeros" if zero else "ones")

    def relu(self, part: str, x: str, *, role: str) -> str:
        return self.add(part, "relu", x, role=role)


def expand(config: ResNetConfig, *, body_only: bool = False) -> Graph:
    """Expand a config into its graph: every layer, in topological order, with stable names.

    Args:
        config: The network.
        body_only: Leave out the stem and the head: the stages start right at the input (whose
            channels are `config.input_shape[2]`), as when a residual stack is appended to an
            existing model.
    """
    b = _Builder(config)
    b.where = ""
    x = b.add("input", "input", (), role="input", shape=config.input_shape)
    b.where = "stem"
    if body_only:
        width = config.input_shape[2]
    else:
        x = _stem(b, x)
        width = config.filters
    blocks: list[BlockInfo] = []
    stage_blocks = config.stage_blocks
    for s, ((inner, out), count) in enumerate(zip(config.stage_widths(), stage_blocks, strict=True), start=1):
        b.stage = s
        for k in range(1, count + 1):
            stride = _block_stride(config, s, k, count)
            b.block = k
            start = len(b.nodes)
            x, shortcut = _block(b, x, inner=inner, out=out, stride=stride, in_width=width, first=(s == 1 and k == 1))
            names = tuple(n.name for n in b.nodes[start:])
            blocks.append(BlockInfo(s, k, names, b.nodes[start].inputs[0], x, shortcut, stride, width, out))
            width = out
    b.block = 0
    b.stage = config.stages + 1
    b.where = "head"
    if not body_only:
        _head(b, x)
    return Graph(config, b.nodes, blocks)


def _block_stride(config: ResNetConfig, stage: int, block: int, count: int) -> int:
    if config.downsample == "first":
        return 2 if stage > 1 and block == 1 else 1
    return 2 if stage < config.stages and block == count else 1


def _stem(b: _Builder, x: str) -> str:
    cfg = b.config
    if cfg.stem == "imagenet":
        x = b.conv("conv", x, cfg.filters, 7, 2, role="stem", bn_follows=cfg.version == 1, pad_part="pad")
        if cfg.version == 1:
            x = b.bn("bn", x, role="stem")
            x = b.relu("relu", x, role="stem")
        padding = "same"
        if cfg.explicit_padding:
            x = b.add("pool_pad", "zero_pad", x, role="stem", pad=1)
            padding = "valid"
        return b.add("pool", "maxpool", x, role="stem", size=3, stride=2, padding=padding)
    x = b.conv("conv", x, cfg.filters, 3, 1, role="stem", bn_follows=True, pad_part="pad")
    x = b.bn("bn", x, role="stem")
    x = b.relu("relu", x, role="stem")
    if cfg.stem == "tutorial":
        x = b.add("dropout", "dropout", x, role="stem", rate=0.2)
    return x


def _block(b: _Builder, x: str, *, inner: int, out: int, stride: int, in_width: int, first: bool) -> tuple[str, str]:
    """Append one residual block; returns (output node, shortcut kind)."""
    cfg = b.config
    block_input = x
    if cfg.block == "basic":
        specs = [(3, inner), (3, out)]
    else:
        specs = [(1, inner), (3, inner), (1, out)]
    stride_index = 0 if cfg.stride_at == "conv1" or cfg.block == "basic" else 1
    preact = None
    last = len(specs)
    for i, (kernel, filters) in enumerate(specs, start=1):
        s = stride if i - 1 == stride_index else 1
        # zero-init residual: the block's last BN γ (v1) or last conv (v2, or v1 without BN) starts at 0
        zero_bn = cfg.zero_init and i == last and cfg.version == 1 and cfg.batch_norm
        zero_conv = cfg.zero_init and i == last and not zero_bn
        if cfg.version == 2:
            if i == 1 and first and not cfg.first_preact:
                pass  # the stem's BN-ReLU serves as this block's pre-activation
            else:
                x = b.bn(f"bn{i}", x, role="main")
                x = b.relu(f"relu{i}", x, role="main")
                if i == 1:
                    preact = x
            x = b.conv(f"conv{i}", x, filters, kernel, s, role="main", bn_follows=i < last, pad_part=f"pad{i}",
                       zero=zero_conv)
        else:
            x = b.conv(f"conv{i}", x, filters, kernel, s, role="main", bn_follows=True, pad_part=f"pad{i}", zero=zero_conv)
            x = b.bn(f"bn{i}", x, role="main", zero=zero_bn)
            if i < last:
                x = b.relu(f"relu{i}", x, role="main")
    kind, shortcut = _shortcut(b, block_input, preact, stride=stride, in_width=in_width, out=out)
    if shortcut is not None:
        x = b.add("add", "add", (x, shortcut), role="main")
    if cfg.version == 1:
        x = b.relu("out", x, role="main")
    return x, kind


def _shortcut(b: _Builder, x: str, preact: str | None, *, stride: int, in_width: int, out: int) -> tuple[str, str | None]:
    cfg = b.config
    changes_width = in_width != out
    changes_size = stride > 1
    kind = cfg.shortcut
    if kind == "none":
        return "none", None
    if kind == "identity" or (kind in ("A", "B") and not changes_width and not changes_size):
        return "identity", x
    if kind == "A":
        return "zero_pad", b.add("shortcut", "zero_pad_shortcut", x, role="shortcut", stride=stride, channels=out)
    if kind == "B" and not changes_width:
        return "subsample", b.add("shortcut", "maxpool", x, role="shortcut", size=1, stride=stride, padding="valid")
    source = preact if (cfg.version == 2 and cfg.projection_from == "preact" and preact is not None) else x
    y = b.conv("shortcut", source, out, 1, stride, role="shortcut", bn_follows=cfg.projection_bn)
    if cfg.projection_bn:
        y = b.bn("shortcut_bn", y, role="shortcut")  # (left out when batch_norm is off)
    return "projection", y


def _head(b: _Builder, x: str) -> None:
    cfg = b.config
    if cfg.version == 2:
        x = b.bn("bn", x, role="head")
        x = b.relu("relu", x, role="head")
    if cfg.head == "gap":
        x = b.add("pool", "gap", x, role="head")
    else:
        x = b.add("pool", "avgpool", x, role="head", size=8, stride=8, padding="valid")
        x = b.add("flatten", "flatten", x, role="head")
    if cfg.head == "tutorial":
        x = b.add("dense", "dense", x, role="head", units=512, activation="relu", initializer=cfg.initializer)
        x = b.bn("dense_bn", x, role="head")
        x = b.add("dropout", "dropout", x, role="head", rate=0.5)
    elif cfg.dropout > 0:
        x = b.add("dropout", "dropout", x, role="head", rate=cfg.dropout)
    b.where = ""
    b.add("predictions", "dense", x, role="head", units=cfg.classes, activation="softmax", initializer=cfg.initializer)
