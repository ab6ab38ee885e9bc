"""Shareable links: a config as URL query parameters and back, snapping or dropping what does not fit (pure, no Streamlit)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from explorer.config import (
    BLOCKS,
    FIELD,
    FIELDS,
    MAX_STAGES,
    ConfigError,
    ResNetConfig,
    depth_rule,
    valid_depths,
)
from explorer.presets import DEFAULT_PRESET, PRESETS, Preset

MAX_APP_DEPTH = 2000
"""The deepest network the app offers (a URL asking for more is snapped to the deepest valid depth below it)."""

MAX_PARAM_CHARS = 200
"""Longer query values are dropped unread."""

MAX_NAMED_UNKNOWN = 3
"""Up to this many parameters no setting has each get a warning; more get one warning that counts them."""

UI_KEYS = frozenset({"tab", "embed", "embed_options", "hide", "lock", "present", "node"})
"""Query parameters that belong to the page, not the network; parse_query ignores them."""

# What a value may contain before it is parsed (and echoed in a warning, which the page renders as
# Markdown): no brackets, colons, slashes or quotes, so a crafted link cannot smuggle in a link or an image.
_SAFE_KEY = re.compile(r"[A-Za-z0-9_\-]{1,40}")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9 ,x×_+\-]*")
_SAFE_NUMBER = re.compile(r"[0-9.eE+\- ]*")

_BY_QUERY_NAME = {name: f.name for f in FIELDS for name in (f.name, f.url)}
_EMPTY = ("", "none", "auto")
"""What a link writes for "not given" (a depth or blocks per stage that the other one sets, widths from the rule)."""


class ParsedQuery(NamedTuple):
    """What a query string describes.

    Attributes:
        config: The network (always valid: bad values are snapped or dropped).
        preset: The preset name it starts from.
        warnings: One sentence per value that was snapped, dropped or ignored.
    """

    config: ResNetConfig
    preset: str
    warnings: list[str]


def url_name(field: str) -> str:
    """The query-parameter name of a config field (`input_shape` → `input`)."""
    return FIELD[field].url


def _field_for(key: str) -> str | None:
    """The config field a query name means (accepts the CLI's hyphens and the field name itself)."""
    return _BY_QUERY_NAME.get(key.strip().lower().replace("-", "_"))


def format_value(field: str, value: Any) -> str:
    """A config value as query text: 32x32x3, 3,4,6,3, true, 0.0001 (`Field.format`)."""
    return FIELD[field].format(value)


def parse_value(field: str, text: str, base: ResNetConfig) -> Any:
    """Parse one query value for `field` (`Field.parse`, more lenient); raises ConfigError (with the field) when it cannot be read.

    A link may leave a depth, blocks or widths empty (`none`, `auto`: None) and give an input
    shape as `HxW` (the channels stay `base`'s).

    Args:
        field: Config field name.
        text: The raw query text.
        base: The config the value will change (supplies the channels for an `input` of `HxW`).
    """
    f, text = FIELD[field], text.strip()
    if f.kind == "shape" and len(text.lower().replace("×", "x").replace(",", "x").split("x")) == 2:
        text = f"{text}x{base.input_shape[2]}"
    if f.kind in ("ints", "depth") and text.lower() in _EMPTY:
        return None
    value = f.parse(text)
    if f.kind == "ints" and not value:
        raise ConfigError(field, f"{text!r} gives no numbers", "write it like 3,4,6,3")
    return value


def snap_depth(block: str, stages: int, depth: int, *, limit: int = MAX_APP_DEPTH) -> int:
    """The valid depth nearest to `depth` for a block kind and number of stages (ties go to the smaller)."""
    options = valid_depths(block, stages, limit=max(limit, 100))
    if not options:  # pragma: no cover - every block kind has valid depths
        return depth
    return min(options, key=lambda d: (abs(d - depth), d))


def _describe(field: str, value: Any) -> str:
    return f"{url_name(field)}={format_value(field, value)}"


def merge(base: ResNetConfig, changes: Mapping[str, Any], *, snap: bool = True) -> tuple[ResNetConfig, list[str]]:
    """Apply field changes to a config the way a user means them, snapping what does not fit.

    The changes follow `ResNetConfig.with_changes` (blocks clear the depth and set the stages, a
    depth clears blocks, blocks and widths that no longer fit the stages are dropped); blocks given
    with a depth win over it. With `snap`, a depth that breaks the rule becomes the nearest valid
    one and any other rejected change is dropped, each with a warning.

    Args:
        base: The config to change.
        changes: {field: value} (field names; `input` is accepted for `input_shape`).
        snap: Snap/drop instead of raising.

    Returns:
        The new config and the warnings (empty when everything applied as given).

    Raises:
        ConfigError: A change cannot be applied and `snap` is False.
    """
    wanted: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in changes.items():
        field = key if key in FIELD else _field_for(key)
        if field is None:
            if not snap:
                raise ConfigError(str(key), "is not a config field", f"valid fields: {', '.join(sorted(FIELD))}")
            warnings.append(f"ignored unknown setting {key!r}")
            continue
        wanted[field] = tuple(value) if isinstance(value, list) else value
    if wanted.get("blocks") is not None and "depth" in wanted:  # blocks per stage set the depth
        depth = wanted.pop("depth")
        if depth is not None and snap:
            warnings.append(f"depth={depth} ignored: blocks per stage ({format_value('blocks', wanted['blocks'])}) set the depth")
    data, widths_note_at = base.with_changes_dict(wanted), len(warnings)
    for _ in range(len(FIELDS) + 3):
        try:
            config = ResNetConfig.from_dict(data)
        except ConfigError as exc:
            if not snap:
                raise
            field = _field_for(exc.field) or exc.field
            if field == "depth" and data.get("blocks") is None and isinstance(data.get("depth"), int) and _choice_ok(data):
                old = data["depth"]
                new = snap_depth(data["block"], data["stages"], old)
                if new == old:
                    raise
                rule = depth_rule(data["block"], data["stages"])
                why = "is deeper than the app allows" if old > MAX_APP_DEPTH else f"does not fit the {rule} rule of {data['block']} blocks in {data['stages']} stages"
                warnings.append(f"depth {old} {why}: using depth {new}")
                data["depth"] = new
                continue
            if field == "blocks" and "blocks" in wanted:
                warnings.append(f"{_describe('blocks', wanted['blocks'])} ignored: {exc.message} ({exc.hint})")
                del wanted["blocks"]
                data = base.with_changes_dict(wanted)
                if base.blocks is not None:
                    data.update(blocks=None, depth=snap_depth(data["block"], data["stages"], base.resolved_depth))
                continue
            culprit = field if field in wanted else _dependent_change(field, wanted)
            if culprit is None:
                raise
            warnings.append(f"{_describe(culprit, wanted[culprit])} ignored: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            original = getattr(base, culprit)
            data[culprit] = list(original) if isinstance(original, tuple) else original
            del wanted[culprit]
        else:
            if base.widths is not None and config.widths is None and "widths" not in wanted:
                warnings.insert(widths_note_at, "the explicit widths no longer fit the number of stages; using the width rule instead")
            return config, warnings
    raise ConfigError("config", "the settings do not fit together", "start again from a preset")  # pragma: no cover


def _choice_ok(data: dict) -> bool:
    """Whether block and stages are usable for depth snapping."""
    stages = data.get("stages")
    return data.get("block") in BLOCKS and isinstance(stages, int) and not isinstance(stages, bool) and 1 <= stages <= MAX_STAGES


def _dependent_change(field: str, wanted: Mapping[str, Any]) -> str | None:
    """Which requested change most likely caused an error reported on another field."""
    related = {"widths": ("stages",), "depth": ("block", "stages"), "blocks": ("stages", "block")}
    for candidate in related.get(field, ()):
        if candidate in wanted:
            return candidate
    return None


def parse_query(params: Mapping[str, Any]) -> ParsedQuery:
    """Read a query string (as a dict) into a valid config, never raising.

    Args:
        params: Query parameters, e.g. `dict(st.query_params)`: name → text (or a list of texts;
            the last one counts). Names are the CLI's (`preset`, `depth`, `shortcut`, `input`,
            `blocks`, …; hyphens or underscores).

    Returns:
        The config, the preset it starts from and a warning for each value that was snapped,
        dropped or ignored.
    """
    warnings: list[str] = []
    raw: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        raw[str(key)] = str(value)
    preset_name = DEFAULT_PRESET
    if "preset" in raw:
        name = raw.pop("preset").strip()
        if name in PRESETS:
            preset_name = name
        elif _SAFE_TEXT.fullmatch(name) and len(name) <= 40:
            warnings.append(f"there is no preset called {name!r}; starting from {DEFAULT_PRESET}")
        else:
            warnings.append(f"the link's preset is not a preset name; starting from {DEFAULT_PRESET}")
    base = PRESETS[preset_name].config
    changes: dict[str, Any] = {}
    unknown: list[str] = []  # warnings for names no setting has, counted in one when there are many
    for key, text in raw.items():
        if key.lower() in UI_KEYS:
            continue
        if not _SAFE_KEY.fullmatch(key):
            unknown.append("ignored a parameter whose name no setting has")
            continue
        field = _field_for(key)
        if field is None:
            unknown.append(f"ignored unknown parameter {key!r}")
            continue
        if len(text) > MAX_PARAM_CHARS:
            warnings.append(f"{url_name(field)} ignored: the value is longer than {MAX_PARAM_CHARS} characters")
            continue
        numeric = FIELD[field].kind == "float"
        if not (_SAFE_NUMBER if numeric else _SAFE_TEXT).fullmatch(text):
            warnings.append(f"{url_name(field)} ignored: the value has characters that no {url_name(field)} uses")
            continue
        try:
            changes[field] = parse_value(field, text, base)
        except ConfigError as exc:
            warnings.append(f"{url_name(field)}={text[:40]} ignored: {exc.message} ({exc.hint})")
    if len(unknown) > MAX_NAMED_UNKNOWN:
        warnings.append(f"ignored {len(unknown):,} parameters that no setting has")
    else:
        warnings.extend(dict.fromkeys(unknown))  # each distinct warning once
    try:
        config, more = merge(base, changes, snap=True)
    except ConfigError as exc:  # pragma: no cover - merge drops every change before giving up
        return ParsedQuery(base, preset_name, [*warnings, f"the link's settings were ignored: {exc.message}"])
    if config.resolved_depth > MAX_APP_DEPTH:
        new = snap_depth(config.block, config.stages, MAX_APP_DEPTH)
        what = f"blocks {format_value('blocks', config.blocks)} give depth" if config.blocks else "depth"
        more.append(f"{what} {config.resolved_depth}, deeper than the app allows ({MAX_APP_DEPTH}): using depth {new}")
        config = config.replace(depth=new, blocks=None)
    return ParsedQuery(config, preset_name, warnings + more)


def diff_fields(config: ResNetConfig, base: ResNetConfig) -> list[str]:
    """Fields whose value differs between two configs, in field order.

    Depth and blocks are compared as what they give: the resolved depth and the blocks per stage
    (the same blocks per stage can be two depths: 3 per stage is depth 20 with basic blocks and 29
    with bottlenecks), so a link carries a depth whenever the network's depth differs from its preset's.
    """
    depth_changed = (config.stage_blocks != base.stage_blocks or config.resolved_depth != base.resolved_depth
                     or (config.blocks is None) != (base.blocks is None))
    out = []
    for f in FIELDS:
        if f.name == "depth":
            if depth_changed and config.blocks is None:
                out.append("depth")
        elif f.name == "blocks":
            if depth_changed and config.blocks is not None:
                out.append("blocks")
        elif getattr(config, f.name) != getattr(base, f.name):
            out.append(f.name)
    return out


def to_query(config: ResNetConfig, preset: str | Preset | None = None) -> dict[str, str]:
    """The query parameters of a config: the preset plus every field that differs from it.

    Args:
        config: The network.
        preset: The preset (or its name) the link starts from; the default preset when None.

    Returns:
        {name: text} in field order, e.g. {"preset": "resnet56", "depth": "110", "shortcut": "B"}.
    """
    if isinstance(preset, Preset):
        preset = preset.name
    name = preset if preset in PRESETS else DEFAULT_PRESET
    base = PRESETS[name].config
    out = {"preset": name}
    changed = set(diff_fields(config, base))
    for f in FIELDS:
        if f.name == "depth":
            if config.blocks is None and ("depth" in changed or base.blocks is not None):
                out["depth"] = str(config.depth)
            continue
        if f.name == "blocks":
            if config.blocks is not None and (changed & {"blocks", "depth"} or base.blocks is None):
                out["blocks"] = format_value("blocks", config.blocks)
            continue
        if f.name in changed:
            value = getattr(config, f.name)
            out[url_name(f.name)] = "none" if value is None else format_value(f.name, value)
    return out
