"""The one input of the explorer: a frozen `ResNetConfig`, the FIELDS table every front end reads, depth rules and validation."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

VERSIONS = (1, 2)
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C", "identity", "none")
STEMS = ("cifar", "imagenet", "tutorial")
HEADS = ("gap", "flatten", "tutorial")
WIDTH_RULES = ("double", "keras")
STRIDE_AT = ("conv1", "conv3x3")
DOWNSAMPLE = ("first", "last")
PROJECTION_FROM = ("preact", "input")
CONV_BIAS = ("auto", "always", "never")
INITIALIZERS = ("he_normal", "he_uniform", "glorot_uniform", "glorot_normal")


@dataclass(frozen=True)
class ShortcutText:
    """How the pages name one kind of shortcut.

    Attributes:
        label: The option's label in the sidebar (config `shortcut` options only).
        help: What the option does (the sidebar's caption under it).
        edge: How the diagram names a shortcut edge of this kind (graph edge kinds only).
    """

    label: str = ""
    help: str = ""
    edge: str = ""


SHORTCUT_TEXT = {
    "A": ShortcutText(label="A · zero-pad (no params)",
                      help="identity; zero-pads new channels and subsamples when the shape changes (no parameters)"),
    "B": ShortcutText(label="B · project when needed",
                      help="identity; 1×1 projection when the width changes, 1×1 max-pool subsample when only the size does"),
    "C": ShortcutText(label="C · always project", help="1×1 projection on every block"),
    "identity": ShortcutText(label="identity (breaks on shape change)",
                             help="always identity: breaks where the shape changes (for teaching)", edge="identity shortcut"),
    "zero_pad": ShortcutText(edge="zero-pad shortcut (A)"),
    "projection": ShortcutText(edge="projection shortcut (1×1 conv)"),
    "subsample": ShortcutText(edge="subsample shortcut (1×1 max-pool)"),
    "none": ShortcutText(label="none (plain network)", help="plain network: no skip connection at all",
                         edge="no shortcut (plain)"),
}
"""Every shortcut word the pages show: the `shortcut` options (A, B, C, identity, none) and the graph's edge kinds."""

SHORTCUT_HELP = {kind: SHORTCUT_TEXT[kind].help for kind in SHORTCUTS}
"""What each `shortcut` option does."""

SHORTCUT_NAMES = {kind: text.edge for kind, text in SHORTCUT_TEXT.items() if text.edge}
"""The diagram's name of each shortcut edge kind (identity, zero_pad, projection, subsample, none)."""

# ImageNet depths whose blocks per stage are not an equal split (He et al. 2015, Table 1).
IMAGENET_BLOCKS = {
    ("basic", 18): (2, 2, 2, 2),
    ("basic", 34): (3, 4, 6, 3),
    ("bottleneck", 50): (3, 4, 6, 3),
    ("bottleneck", 101): (3, 4, 23, 3),
    ("bottleneck", 152): (3, 8, 36, 3),
    ("bottleneck", 200): (3, 24, 36, 3),
}

MAX_BLOCKS_PER_STAGE = 2000
MAX_STAGES = 6
MAX_FILTERS = 4096
MAX_INPUT_SIDE = 4096
MAX_CHANNELS = MAX_FILTERS  # input channels (a stack appended to a model takes its width)
MAX_CLASSES = 100_000
MAX_JSON_NESTING = 32
"""The deepest nesting of arrays and objects `load_json` reads (a config is 2 deep, `summary --json` 4)."""


class ConfigError(ValueError):
    """A configuration the user can fix: which field, what is wrong, what to do.

    Attributes:
        field: The config field (CLI name) at fault.
        message: What is wrong, in plain language.
        hint: What to do about it.
    """

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        self.field = field
        self.message = message
        self.hint = hint
        super().__init__(f"{field}: {message}" + (f" — {hint}" if hint else ""))


def convs_per_block(block: str) -> int:
    """Weighted layers on the main path of one block: 2 (basic) or 3 (bottleneck)."""
    return 2 if block == "basic" else 3


def depth_of(block: str, blocks: tuple[int, ...]) -> int:
    """Depth = stem conv + convs in the blocks + final dense."""
    return convs_per_block(block) * sum(blocks) + 2


def blocks_for_depth(block: str, depth: int, stages: int) -> tuple[int, ...] | None:
    """Blocks per stage for a depth, or None when the depth breaks the rule."""
    if stages == 4 and (block, depth) in IMAGENET_BLOCKS:
        return IMAGENET_BLOCKS[(block, depth)]
    step = convs_per_block(block) * stages
    if depth < step + 2 or (depth - 2) % step:
        return None
    return (((depth - 2) // step),) * stages


def valid_depths(block: str, stages: int, limit: int = 2000) -> list[int]:
    """All valid depths up to `limit` for a block kind and number of stages, ascending."""
    step = convs_per_block(block) * stages
    depths = set(range(step + 2, limit + 1, step))
    if stages == 4:
        depths |= {d for (b, d) in IMAGENET_BLOCKS if b == block}
    return sorted(depths)


def depth_rule(block: str, stages: int) -> str:
    """The depth rule in words, e.g. '6n+2'."""
    return f"{convs_per_block(block) * stages}n+2"


def nearest_depths(block: str, stages: int, depth: int) -> tuple[int | None, int | None]:
    """The nearest valid depths below and above `depth`."""
    valid = valid_depths(block, stages, limit=max(depth * 2, 100))
    below = max((d for d in valid if d < depth), default=None)
    above = min((d for d in valid if d > depth), default=None)
    return below, above


def _shown(value: Any, *, limit: int = 40) -> str:
    """A value as a message shows it: its repr, cut short (a 4,000-digit number is not echoed whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def _choice(field: str, value: Any, options: tuple) -> None:
    if isinstance(value, bool) or not isinstance(value, type(options[0])) or value not in options:
        shown = ", ".join(str(o) for o in options)
        raise ConfigError(field, f"unknown option {_shown(value)}", f"choose one of: {shown}")


def _int_range(field: str, value: Any, low: int, high: int, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"{_shown(value)} is not a whole number", f"give an integer from {low} to {high}")
    if not low <= value <= high:
        raise ConfigError(field, f"{_shown(value)} is out of range{what}", f"give a value from {low} to {high}")


def _float_range(field: str, value: Any, low: float, high: float, *, high_open: bool = False) -> None:
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(field, f"{_shown(value)} is not a number", f"give a number from {low} to {high}")
    if value < low or value > high or (high_open and value == high):  # an int compares exactly, however long
        bound = f"below {high}" if high_open else f"at most {high}"
        raise ConfigError(field, f"{_shown(value)} is out of range", f"give a number from {low}, {bound}")


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, kw_only=True)
class Field:
    """One config field as every front end offers it: its values, CLI flag, URL name and sidebar widget.

    Attributes:
        name: The `ResNetConfig` attribute (and JSON key).
        kind: How its values look: "choice", "int", "float", "bool", "depth" (a whole number, or None when
            blocks per stage give it), "ints" (comma-separated whole numbers, or None) or "shape" (HxWxC).
        choices: The options of a "choice" field.
        low: The smallest value of an "int" or "float" field.
        high: The largest value of an "int" or "float" field (None: the value of `high_field`).
        high_open: `high` itself is out of range.
        high_field: The field whose value is the largest one (`freeze` ≤ `stages`).
        range_note: Words after "out of range" in the message, e.g. " (stages to freeze)".
        label: The sidebar widget's label (default: the name in words).
        help: The sidebar widget's help text.
        labels: Option → the text the widget shows for it.
        captions: Option → the caption under it (radio buttons).
        widget: The Streamlit widget ("radio", "selectbox", "select_slider", "number_input", "checkbox",
            "text_input"); None where the sidebar draws its own (blocks per stage, the input shape).
        widget_args: More keyword arguments of the widget (step, format, horizontal, a narrower range).
        v2_only: Only pre-activation (v2) networks use it: the widget is disabled for v1.
        section: Where the sidebar shows it: "network", "data", "fine-tuning" or "advanced" (the advanced
            options show every advanced field their layout does not place).
        cli: The CLI flag without its dashes (`width-rule`); None when the CLI has none.
        cli_metavar: The flag's metavar.
        cli_help: The flag's help.
        url: The query-parameter name (default: the name; `input` for `input_shape`, as the CLI).
    """

    name: str
    kind: str
    choices: tuple = ()
    low: int | float | None = None
    high: int | float | None = None
    high_open: bool = False
    high_field: str | None = None
    range_note: str = ""
    label: str = ""
    help: str | None = None
    labels: dict[Any, str] | None = None
    captions: dict[Any, str] | None = None
    widget: str | None = None
    widget_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    v2_only: bool = False
    section: str = "advanced"
    cli: str | None = None
    cli_metavar: str | None = None
    cli_help: str | None = None
    url: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())
        if not self.url:
            object.__setattr__(self, "url", self.name)

    @property
    def dest(self) -> str:
        """The argparse destination of the CLI flag (`width_rule` for `--width-rule`)."""
        return (self.cli or self.name).replace("-", "_")

    def check(self, value: Any, config: ResNetConfig) -> None:
        """Validate a "choice", "bool", "int" or "float" value (the other kinds are checked by `ResNetConfig`).

        Raises:
            ConfigError: The value is of the wrong type or out of range.
        """
        if self.kind == "choice":
            _choice(self.name, value, self.choices)
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(self.name, f"{_shown(value)} is not true/false", "give true or false")
        elif self.kind == "int":
            high = getattr(config, self.high_field) if self.high_field else self.high
            _int_range(self.name, value, self.low, high, self.range_note)
        elif self.kind == "float":
            _float_range(self.name, value, self.low, self.high, high_open=self.high_open)

    def parse(self, text: str) -> Any:
        """Read the value from its text form, as the CLI and links write it (32x32x3, 3,4,6,3, true, 0.0001).

        Raises:
            ConfigError: The text is not a value of this kind (the range is checked by `ResNetConfig`).
        """
        if self.kind == "shape":
            return parse_input_shape(text)
        if self.kind == "ints":
            return parse_int_list(self.name, text)
        if self.kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ConfigError(self.name, f"{text!r} is not true/false", "write true or false")
        if self.kind in ("int", "depth") or (self.kind == "choice" and isinstance(self.choices[0], int)):
            try:
                return int(text)
            except ValueError:
                hint = "give a depth such as 20 or 110" if self.kind == "depth" else "give a whole number"
                raise ConfigError(self.name, f"{text!r} is not a whole number", hint) from None
        if self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(self.name, f"{text!r} is not a number", "give a number such as 0.0001") from None
            if not math.isfinite(value):
                raise ConfigError(self.name, f"{text!r} is not a finite number", "give a number such as 0.0001")
            return value
        return text

    def format(self, value: Any) -> str:
        """The text form of a value (what `parse` reads back); "" for None."""
        if value is None:
            return ""
        if self.kind == "shape":
            return "x".join(str(v) for v in value)
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value) if value else "0"
        return str(value)


FIELDS = (
    Field(name="version", kind="choice", choices=VERSIONS, section="network", widget="radio",
          labels={1: "v1 · post-act", 2: "v2 · pre-act"}, widget_args={"horizontal": True},
          help="v1 (He et al. 2015): conv → BN → ReLU, ReLU after the add. "
               "v2 (He et al. 2016): BN → ReLU → conv, nothing after the add.",
          cli="version", cli_help="1 = post-activation, 2 = pre-activation"),
    Field(name="block", kind="choice", choices=BLOCKS, section="network", widget="radio", widget_args={"horizontal": True},
          help="basic: two 3×3 convs. bottleneck: 1×1 (reduce) → 3×3 → 1×1 (expand ×4).", cli="block"),
    Field(name="depth", kind="depth", section="network", widget="select_slider",
          help="Weighted layers on the main path: stem conv + block convs + the classifier. "
               "Only depths that fit the rule are offered; set blocks per stage for any other split.",
          cli="depth", cli_metavar="N", cli_help="weighted layers, e.g. 20 (6n+2) or 164 (9n+2)"),
    Field(name="blocks", kind="ints", section="network", label="Blocks per stage",
          help="e.g. 3, 4, 6, 3 for ResNet-34/50. Overrides the depth slider.",
          cli="blocks", cli_metavar="3,4,6,3", cli_help="explicit blocks per stage (sets the number of stages)"),
    Field(name="stages", kind="int", low=1, high=MAX_STAGES, section="network", widget="number_input",
          widget_args={"step": 1}, help="Each stage after the first halves height and width and doubles the width.",
          cli="stages", cli_metavar="N"),
    Field(name="filters", kind="int", low=1, high=MAX_FILTERS, section="network", label="Base filters",
          widget="number_input", widget_args={"step": 8}, help="Width of the stem and of the first stage.",
          cli="filters", cli_metavar="N", cli_help="base filters (stem and first stage)"),
    Field(name="width_rule", kind="choice", choices=WIDTH_RULES, widget="radio", widget_args={"horizontal": True},
          help="double: stage i has filters·2^i. keras: the Keras v2 example (out = 4× the input in stage 1, "
               "2× afterwards; bottleneck only).", cli="width-rule"),
    Field(name="widths", kind="ints", label="Widths per stage", widget="text_input",
          widget_args={"placeholder": "e.g. 16,32,64 (empty: from filters)"},
          help="Explicit inner width of each stage; overrides base filters and the width rule.",
          cli="widths", cli_metavar="16,32,64", cli_help="explicit inner width per stage"),
    Field(name="expansion", kind="int", low=1, high=16, label="Bottleneck expansion", widget="number_input",
          widget_args={"step": 1}),
    Field(name="shortcut", kind="choice", choices=SHORTCUTS, section="network", widget="radio",
          labels={kind: SHORTCUT_TEXT[kind].label for kind in SHORTCUTS}, captions=SHORTCUT_HELP,
          help="How a block's input reaches its add when the main path changes the shape.", cli="shortcut"),
    Field(name="stride_at", kind="choice", choices=STRIDE_AT, widget="radio",
          help="Which conv of a downsampling block strides: the first, or the 3×3.", cli="stride-at"),
    Field(name="downsample", kind="choice", choices=DOWNSAMPLE, label="Downsample in", widget="radio",
          help="first: first block of stages 2…; last: last block of stages 1…S-1 (keras.applications v2).",
          cli="downsample"),
    Field(name="first_preact", kind="bool", label="First block has its own BN-ReLU", widget="checkbox", v2_only=True,
          help="v2: the Keras example and the tutorial leave it out (the stem already has one)."),
    Field(name="projection_from", kind="choice", choices=PROJECTION_FROM, widget="radio", v2_only=True,
          help="v2: a projection shortcut starts after the block's BN-ReLU (preact) or from the raw input."),
    Field(name="projection_bn", kind="bool", label="BatchNorm on projection shortcuts", widget="checkbox"),
    Field(name="stem", kind="choice", choices=STEMS, section="network", widget="selectbox",
          labels={"cifar": "cifar · 3×3 conv", "imagenet": "imagenet · 7×7/2 conv, 3×3/2 pool",
                  "tutorial": "tutorial · 3×3 conv, dropout"},
          help="The layers before the first stage.", cli="stem"),
    Field(name="head", kind="choice", choices=HEADS, section="network", widget="selectbox",
          labels={"gap": "gap · global avg pool → dense", "flatten": "flatten · AvgPool(8) → flatten → dense",
                  "tutorial": "tutorial · … dense 512, BN, dropout → dense"},
          help="The layers after the last stage, ending in the softmax classifier.", cli="head"),
    Field(name="dropout", kind="float", low=0.0, high=1.0, high_open=True, label="Dropout before dense",
          widget="number_input", widget_args={"max_value": 0.95, "step": 0.05}, cli="dropout", cli_metavar="RATE"),
    Field(name="input_shape", kind="shape", section="data", label="Input", url="input",
          cli="input", cli_metavar="HxWxC", cli_help="input shape, e.g. 32x32x3"),
    Field(name="classes", kind="int", low=2, high=MAX_CLASSES, section="data", widget="number_input",
          widget_args={"step": 1}, cli="classes", cli_metavar="N"),
    Field(name="conv_bias", kind="choice", choices=CONV_BIAS, widget="radio",
          help="auto: bias only on convs not followed by BatchNormalization."),
    Field(name="explicit_padding", kind="bool", label="Explicit zero padding (keras.applications)", widget="checkbox"),
    Field(name="initializer", kind="choice", choices=INITIALIZERS, widget="selectbox"),
    Field(name="l2", kind="float", low=0.0, high=1.0, label="L2 on convs", widget="number_input",
          widget_args={"step": 1e-4, "format": "%g"}),
    Field(name="bn_epsilon", kind="float", low=1e-12, high=1.0, label="BN epsilon", widget="number_input",
          widget_args={"step": 1e-4, "format": "%g"}),
    Field(name="batch_norm", kind="bool", label="BatchNormalization layers", widget="checkbox"),
    Field(name="zero_init", kind="bool", label="Zero-init residual (last γ or conv = 0)", widget="checkbox"),
    Field(name="freeze", kind="int", low=0, high_field="stages", range_note=" (stages to freeze)",
          section="fine-tuning", label="Freeze (fine-tuning)", widget="selectbox",
          help="Frozen layers keep their weights while training (e.g. ImageNet weights, see the Train tab); "
               "the new head trains. Frozen layers are drawn icy blue.",
          cli="freeze", cli_metavar="K", cli_help="fine-tuning: freeze the stem and the first K stages "
          "(0 = train everything; the number of stages = only the head trains)"),
)
"""Every `ResNetConfig` field, in field order: the CLI flags, the link parameters and the sidebar widgets are read from it."""

FIELD = {f.name: f for f in FIELDS}
"""FIELDS by name."""

_CHECKED_KINDS = ("choice", "bool", "int", "float")  # validated in this order, each in field order


@dataclass(frozen=True, kw_only=True)
class ResNetConfig:
    """A whole residual network, as plain data. Field names are the CLI and URL names.

    Attributes:
        version: 1 = post-activation (He et al. 2015), 2 = pre-activation (He et al. 2016).
        block: "basic" (two 3×3 convs) or "bottleneck" (1×1, 3×3, 1×1).
        depth: Weighted layers on the main path (6n+2 / 9n+2 with 3 stages), or None when
            `blocks` gives the blocks per stage.
        blocks: Explicit blocks per stage, e.g. (3, 4, 6, 3); overrides the depth rule.
        stages: Number of stages (each after the first halves H and W).
        filters: Stem width and inner width of the first stage.
        width_rule: "double": stage i has inner width filters·2^i (out = inner·expansion for
            bottlenecks); "keras": the Keras example's v2 widths, inner = the stage's input
            width, out = 4× the input in stage 1 and 2× afterwards.
        widths: Explicit inner width per stage (overrides filters/width_rule).
        expansion: Bottleneck output width / inner width (width_rule "double").
        shortcut: "A", "B", "C", "identity" or "none" (see SHORTCUT_HELP).
        stride_at: Which conv of a downsampling block strides: "conv1" (the first) or
            "conv3x3" (the 3×3; the same conv in basic blocks).
        downsample: "first": the first block of stages 2.. strides; "last": the last block of
            stages 1..S-1 strides (keras.applications v2).
        first_preact: v2 only: whether the very first block has its own BN-ReLU (the Keras
            example and the tutorial leave it out because the stem already has one).
        projection_from: v2 only: a projection shortcut branches off after the block's BN-ReLU
            ("preact", He 2016 / keras.applications) or from the raw block input ("input").
        projection_bn: Whether a projection shortcut has its own BatchNormalization.
        stem: "cifar" (3×3 conv-BN-ReLU), "imagenet" (7×7/2 conv, 3×3/2 max-pool) or
            "tutorial" (3×3 conv-BN-ReLU-Dropout(0.2)).
        head: "gap" (global average pool, dense), "flatten" (AvgPool(8), Flatten, dense) or
            "tutorial" (AvgPool(8), Flatten, Dense(512, relu), BN, Dropout(0.5), dense).
        dropout: Dropout rate before the classifier of the "gap"/"flatten" heads (0 = none).
        input_shape: (H, W, C) of one image.
        classes: Number of output classes (softmax).
        conv_bias: "auto" (bias only on convs not followed by BN), "always" or "never".
        explicit_padding: 3×3/7×7 convs and the stem pool use ZeroPadding2D + "valid"
            padding (keras.applications) instead of "same".
        initializer: Kernel initializer of convs and dense layers.
        l2: L2 kernel regularisation of the convs (0 = none).
        bn_epsilon: BatchNormalization epsilon.
        batch_norm: Whether the network has BatchNormalization at all (False: every BN is
            left out, e.g. to show how gradients flow without it).
        zero_init: Zero-init residual: the last BN γ of each block (v1), or the last conv's
            kernel (v2), starts at 0, so every residual block starts as the identity.
        freeze: Fine-tuning: the stem and the first `freeze` stages are frozen (not trained);
            0 trains everything, `stages` freezes the whole body (only the head trains).
    """

    version: int = 1
    block: str = "basic"
    depth: int | None = 20
    blocks: tuple[int, ...] | None = None
    stages: int = 3
    filters: int = 16
    width_rule: str = "double"
    widths: tuple[int, ...] | None = None
    expansion: int = 4
    shortcut: str = "A"
    stride_at: str = "conv1"
    downsample: str = "first"
    first_preact: bool = True
    projection_from: str = "preact"
    projection_bn: bool = True
    stem: str = "cifar"
    head: str = "gap"
    dropout: float = 0.0
    input_shape: tuple[int, int, int] = (32, 32, 3)
    classes: int = 10
    conv_bias: str = "auto"
    explicit_padding: bool = False
    initializer: str = "he_normal"
    l2: float = 0.0
    bn_epsilon: float = 1e-3
    batch_norm: bool = True
    zero_init: bool = False
    freeze: int = 0

    def __post_init__(self) -> None:
        for name in ("blocks", "widths", "input_shape"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        self._validate()

    # ----------------------------------------------------------------- validation
    def _validate(self) -> None:
        for kind in _CHECKED_KINDS:
            for f in FIELDS:
                if f.kind == kind:
                    f.check(getattr(self, f.name), self)
        self._validate_input_shape()
        self._validate_widths()
        self._validate_depth()

    def _validate_input_shape(self) -> None:
        shape = self.input_shape
        if not isinstance(shape, tuple) or len(shape) != 3:
            raise ConfigError("input", f"{_shown(shape)} is not (H, W, C)", "give height, width and channels, e.g. 32x32x3")
        for axis, value, high in zip("HWC", shape, (MAX_INPUT_SIDE, MAX_INPUT_SIDE, MAX_CHANNELS), strict=True):
            _int_range("input", value, 1, high, f" for {axis}")

    def _validate_widths(self) -> None:
        if self.widths is None:
            return
        if not isinstance(self.widths, tuple) or len(self.widths) != self.stages:
            raise ConfigError(
                "widths",
                f"{_shown(self.widths)} does not give one width for each of the {self.stages} stages",
                f"give {self.stages} comma-separated widths, or leave widths empty to derive them from filters",
            )
        for w in self.widths:
            _int_range("widths", w, 1, MAX_FILTERS)

    def _validate_depth(self) -> None:
        if self.blocks is not None:
            if not isinstance(self.blocks, tuple) or len(self.blocks) != self.stages:
                raise ConfigError(
                    "blocks",
                    f"{_shown(self.blocks)} does not give one count for each of the {self.stages} stages",
                    f"give {self.stages} comma-separated counts, or set stages to their number",
                )
            for n in self.blocks:
                _int_range("blocks", n, 1, MAX_BLOCKS_PER_STAGE, " (blocks per stage)")
            if self.depth is not None and self.depth != depth_of(self.block, self.blocks):
                raise ConfigError(
                    "depth",
                    f"depth {self.depth} does not match blocks {_fmt_blocks(self.blocks)}, "
                    f"which give depth {depth_of(self.block, self.blocks)}",
                    "leave depth empty when you give blocks per stage",
                )
            return
        if self.depth is None:
            raise ConfigError("depth", "neither depth nor blocks per stage is given", "give a depth such as 20, or blocks like 3,3,3")
        _int_range("depth", self.depth, 1, depth_of(self.block, (MAX_BLOCKS_PER_STAGE,) * self.stages))
        if blocks_for_depth(self.block, self.depth, self.stages) is None:
            below, above = nearest_depths(self.block, self.stages, self.depth)
            near = " or ".join(str(d) for d in (below, above) if d is not None)
            raise ConfigError(
                "depth",
                f"depth {self.depth} does not fit the {depth_rule(self.block, self.stages)} rule of "
                f"{self.block} blocks in {self.stages} stages",
                f"use depth {near}, or give blocks per stage explicitly",
            )

    # ----------------------------------------------------------------- derived
    @property
    def stage_blocks(self) -> tuple[int, ...]:
        """Blocks in each stage."""
        if self.blocks is not None:
            return self.blocks
        found = blocks_for_depth(self.block, self.depth, self.stages)
        assert found is not None  # validated
        return found

    @property
    def resolved_depth(self) -> int:
        """The depth (weighted main-path layers) this config has."""
        return depth_of(self.block, self.stage_blocks)

    def stage_widths(self) -> list[tuple[int, int]]:
        """(inner, out) width of each stage's blocks."""
        result: list[tuple[int, int]] = []
        bottleneck = self.block == "bottleneck"
        if self.widths is not None:
            return [(w, w * self.expansion if bottleneck else w) for w in self.widths]
        if self.width_rule == "keras" and bottleneck:
            inner = self.filters
            for i in range(self.stages):
                out = inner * (4 if i == 0 else 2)
                result.append((inner, out))
                inner = out
            return result
        for i in range(self.stages):
            inner = self.filters * 2**i
            result.append((inner, inner * self.expansion if bottleneck else inner))
        return result

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    def to_json(self) -> str:
        """Deterministic JSON text of this config."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> ResNetConfig:
        """Build a config from a dict, refusing unknown keys with a ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError("config", "a config must be a JSON object of field: value", "see `python -m explorer summary --json` for an example")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            names = ", ".join(key if len(key) <= 40 else f"{key[:39]}…" for key in unknown[:5])
            more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
            raise ConfigError("config", f"unknown field(s): {names}{more}", f"valid fields: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as exc:  # pragma: no cover - kw_only dataclass, all keys checked
            raise ConfigError("config", str(exc), "check the field names") from exc

    @classmethod
    def from_json(cls, text: str | bytes, *, name: str = "the config", max_bytes: int | None = None) -> ResNetConfig:
        """Parse JSON text (e.g. a config file) into a config (`load_json`: any parse failure is a ConfigError)."""
        return cls.from_dict(load_json(text, name=name, max_bytes=max_bytes))

    def replace(self, **changes: Any) -> ResNetConfig:
        """A copy with some fields changed exactly as given (validated); see `with_changes` for what a user means."""
        return dataclasses.replace(self, **changes)

    def with_changes(self, **changes: Any) -> ResNetConfig:
        """A copy with fields changed the way a user means them (validated): the one override rule.

        The CLI flags, a link's parameters, the sidebar and `explorer.api` all change a config
        through it. Depth, blocks per stage, stages and widths follow each other:

        * giving `blocks` clears the depth (a depth given with them must match them) and sets
          `stages` to their number, unless `stages` is given too;
        * giving a `depth` clears explicit blocks;
        * explicit blocks or widths that no longer fit the number of stages are dropped (unless
          given): the depth and the width rule take over;
        * when neither a depth nor blocks remain, the depth stays this config's.

        Example:
            >>> ResNetConfig().with_changes(blocks=(1, 2, 3, 4)).stages
            4

        Returns:
            `self` when nothing changes, else the new config.

        Raises:
            ConfigError: An unknown field, or a value that does not fit.
        """
        return ResNetConfig.from_dict(self.with_changes_dict(changes)) if changes else self

    def with_changes_dict(self, changes: dict[str, Any]) -> dict[str, Any]:
        """The fields `with_changes` validates: this config's, with `changes` applied by the override rule."""
        data = {**self.to_dict(), **changes}
        blocks = changes.get("blocks")
        if blocks is not None:
            if "depth" not in changes:
                data["depth"] = None
            if "stages" not in changes and isinstance(blocks, (tuple, list)):
                data["stages"] = len(blocks)
        elif changes.get("depth") is not None:
            data["blocks"] = None
        for name in ("blocks", "widths"):
            mine = getattr(self, name)
            if name not in changes and mine is not None and data["stages"] != len(mine):
                data[name] = None
        if data["depth"] is None and data["blocks"] is None:
            data["depth"] = self.resolved_depth
        return data


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_nesting(text: str) -> int:
    """How deep arrays and objects nest in JSON text (brackets inside strings do not count)."""
    brackets = _JSON_NOT_BRACKET.sub("", _JSON_STRING.sub('""', text))
    return max(itertools.accumulate(map(_JSON_STEP.__getitem__, brackets)), default=0)


def load_json(data: str | bytes, *, name: str = "the config", field: str = "config", max_bytes: int | None = None,
              hint: str = "fix the file or export a fresh one", max_nesting: int = MAX_JSON_NESTING) -> Any:
    """Parse JSON that a user supplied (an upload, a file, a link): every way it can fail is one ConfigError.

    Failures are: more than `max_bytes`, bytes that are not UTF-8, nesting deeper than
    `max_nesting` (checked before parsing: Python's parser recurses once per level, so a few
    kilobytes of `[[[[…` would raise RecursionError), a number too long for Python to convert, and
    any other syntax error.

    Args:
        data: The JSON text, or its bytes (UTF-8).
        name: What it is, for the message ("mine.json", "the config").
        field: The ConfigError's field.
        max_bytes: Refuse longer input unread (None: no limit).
        hint: What to do, for the message.
        max_nesting: The deepest nesting read (default MAX_JSON_NESTING, for configs; a Keras
            `config.json` nests about 12 levels).

    Returns:
        The parsed value (any JSON type; the caller checks its shape).

    Raises:
        ConfigError: The input is too long, not UTF-8, or not valid JSON; the message says which.
    """
    size, unit = len(data), "bytes" if isinstance(data, bytes | bytearray) else "characters"
    if max_bytes is not None and size > max_bytes:
        raise ConfigError(field, f"{name} is {size:,} {unit}, more than the {max_bytes:,} a config file may have", hint)
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(field, f"{name} is not UTF-8 text", hint) from None
    else:
        text = data
    nesting = _json_nesting(text)
    if nesting > max_nesting:
        raise ConfigError(field, f"{name} nests {nesting:,} levels deep (at most {max_nesting} levels are read)", hint)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(field, f"{name} is not valid JSON ({exc.msg} at line {exc.lineno})", hint) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. Python's limit on the digits of an integer
        reason = str(exc).split(";")[0][:120]
        raise ConfigError(field, f"{name} cannot be read as JSON ({type(exc).__name__}: {reason})", hint) from None


def _fmt_blocks(blocks: tuple[int, ...]) -> str:
    return ",".join(str(b) for b in blocks)


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """Parse '32x32x3' (or '32,32,3') into (H, W, C)."""
    parts = text.lower().replace("×", "x").replace(",", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError("input", f"{text!r} is not HxWxC", "write it like 32x32x3") from None
    if len(values) != 3:
        raise ConfigError("input", f"{text!r} is not HxWxC", "write it like 32x32x3")
    return values  # type: ignore[return-value]


def parse_int_list(field: str, text: str) -> tuple[int, ...]:
    """Parse '3,4,6,3' into a tuple of ints."""
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(field, f"{text!r} is not a comma-separated list of whole numbers", "write it like 3,4,6,3") from None
