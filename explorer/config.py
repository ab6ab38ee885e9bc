"""The one input of the explorer: a frozen `ResNetConfig`, its options, depth rules and validation."""

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

SHORTCUT_HELP = {
    "A": "identity; zero-pads new channels and subsamples when the shape changes (no parameters)",
    "B": "identity; 1×1 projection when the width changes, 1×1 max-pool subsample when only the size does",
    "C": "1×1 projection on every block",
    "identity": "always identity: breaks where the shape changes (for teaching)",
    "none": "plain network: no skip connection at all",
}

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
        _choice("version", self.version, VERSIONS)
        _choice("block", self.block, BLOCKS)
        _choice("shortcut", self.shortcut, SHORTCUTS)
        _choice("stem", self.stem, STEMS)
        _choice("head", self.head, HEADS)
        _choice("width_rule", self.width_rule, WIDTH_RULES)
        _choice("stride_at", self.stride_at, STRIDE_AT)
        _choice("downsample", self.downsample, DOWNSAMPLE)
        _choice("projection_from", self.projection_from, PROJECTION_FROM)
        _choice("conv_bias", self.conv_bias, CONV_BIAS)
        _choice("initializer", self.initializer, INITIALIZERS)
        for flag in ("first_preact", "projection_bn", "explicit_padding", "batch_norm", "zero_init"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, f"{_shown(getattr(self, flag))} is not true/false", "give true or false")
        _int_range("stages", self.stages, 1, MAX_STAGES)
        _int_range("filters", self.filters, 1, MAX_FILTERS)
        _int_range("expansion", self.expansion, 1, 16)
        _int_range("classes", self.classes, 2, MAX_CLASSES)
        _int_range("freeze", self.freeze, 0, self.stages, " (stages to freeze)")
        _float_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        _float_range("l2", self.l2, 0.0, 1.0)
        _float_range("bn_epsilon", self.bn_epsilon, 1e-12, 1.0)
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
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


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
