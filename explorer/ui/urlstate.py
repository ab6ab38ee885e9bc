"""Shareable links: a config as URL query parameters and back, snapping or dropping what does not fit (pure, no Streamlit)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from explorer.config import (
    BLOCKS,
    MAX_STAGES,
    ConfigError,
    ResNetConfig,
    depth_rule,
    parse_input_shape,
    parse_int_list,
    valid_depths,
)
from explorer.presets import DEFAULT_PRESET, PRESETS, Preset

MAX_APP_DEPTH = 2000
"""The deepest network the app offers (a URL asking for more is snapped to the deepest valid depth below it)."""

MAX_PARAM_CHARS = 200
"""Longer query values are dropped unread."""

MAX_NAMED_UNKNOWN = 3
"""Up to this many parameters no setting has each get a warning; more get one warning that counts them."""

URL_NAMES = {"input_shape": "input"}
"""Query names that differ from the config field name (the CLI's `--input`)."""

UI_KEYS = frozenset({"tab", "embed", "embed_options", "hide", "lock", "present"})
"""Query parameters that belong to the page, not the network; parse_query ignores them."""

# What a value may contain before it is parsed (and echoed in a warning, which the page renders as
# Markdown): no brackets, colons, slashes or quotes, so a crafted link cannot smuggle in a link or an image.
_SAFE_KEY = re.compile(r"[A-Za-z0-9_\-]{1,40}")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9 ,x×_+\-]*")
_SAFE_NUMBER = re.compile(r"[0-9.eE+\- ]*")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(ResNetConfig)}


def url_name(field: str) -> str:
    """The query-parameter name of a config field (`input_shape` → `input`)."""
    return URL_NAMES.get(field, field)


def _field_for(key: str) -> str | None:
    """The config field a query name means (accepts the CLI's hyphens and the field name itself)."""
    key = key.strip().lower().replace("-", "_")
    reverse = {v: k for k, v in URL_NAMES.items()}
    if key in reverse:
        return reverse[key]
    return key if key in _fields() else None


def _fmt_float(value: float) -> str:
    return repr(float(value)) if value else "0"


def format_value(field: str, value: Any) -> str:
    """A config value as query text: 32x32x3, 3,4,6,3, true, 0.0001."""
    if value is None:
        return ""
    if field == "input_shape":
        return "x".join(str(v) for v in value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _fmt_float(value)
    return str(value)


def parse_value(field: str, text: str, base: ResNetConfig) -> Any:
    """Parse one query value for `field`; raises ConfigError (with the field) when it cannot be read.

    Args:
        field: Config field name.
        text: The raw query text.
        base: The config the value will change (supplies the channels for an `input` of `HxW`).
    """
    text = text.strip()
    default = getattr(ResNetConfig(), field)
    if field == "input_shape":
        parts = text.lower().replace("×", "x").replace(",", "x").split("x")
        if len(parts) == 2:
            text = f"{text}x{base.input_shape[2]}"
        return parse_input_shape(text)
    if field in ("blocks", "widths"):
        if text.lower() in ("", "none", "auto"):
            return None
        values = parse_int_list(field, text)
        if not values:
            raise ConfigError(field, f"{text!r} gives no numbers", "write it like 3,4,6,3")
        return values
    if field == "depth":
        if text.lower() in ("", "none", "auto"):
            return None
        try:
            return int(text)
        except ValueError:
            raise ConfigError(field, f"{text!r} is not a whole number", "give a depth such as 20 or 110") from None
    if isinstance(default, bool):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(field, f"{text!r} is not true/false", "write true or false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(field, f"{text!r} is not a whole number", "give a whole number") from None
    if isinstance(default, float):
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(field, f"{text!r} is not a number", "give a number such as 0.0001") from None
        if not math.isfinite(value):
            raise ConfigError(field, f"{text!r} is not a finite number", "give a number such as 0.0001")
        return value
    return text


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

    Giving `blocks` clears `depth` (and sets `stages` to their number); giving `depth` clears
    `blocks`; changing `stages` drops explicit blocks and widths that no longer fit. With `snap`,
    a depth that breaks the rule becomes the nearest valid one and any other rejected change is
    dropped, each with a warning.

    Args:
        base: The config to change.
        changes: {field: value} (field names; `input` is accepted for `input_shape`).
        snap: Snap/drop instead of raising.

    Returns:
        The new config and the warnings (empty when everything applied as given).

    Raises:
        ConfigError: A change cannot be applied and `snap` is False.
    """
    fields = _fields()
    wanted: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in changes.items():
        field = _field_for(key) if key not in fields else key
        if field is None:
            if not snap:
                raise ConfigError(str(key), "is not a config field", f"valid fields: {', '.join(sorted(fields))}")
            warnings.append(f"ignored unknown setting {key!r}")
            continue
        wanted[field] = tuple(value) if isinstance(value, list) else value
    data = base.to_dict()
    data.update({k: list(v) if isinstance(v, tuple) else v for k, v in wanted.items()})
    if wanted.get("blocks") is not None:
        if wanted.get("depth") is not None and snap:
            warnings.append(f"depth={wanted['depth']} ignored: blocks per stage ({format_value('blocks', wanted['blocks'])}) set the depth")
        data["depth"] = None
        data.setdefault("stages", len(wanted["blocks"]))
        if "stages" not in wanted:
            data["stages"] = len(wanted["blocks"])
    elif "depth" in wanted and wanted["depth"] is not None:
        data["blocks"] = None
    if "stages" in wanted and "blocks" not in wanted and base.blocks is not None:
        data["blocks"] = None
        if data.get("depth") is None:
            data["depth"] = base.resolved_depth
    if "stages" in wanted and "widths" not in wanted and base.widths is not None and data["stages"] != len(base.widths):
        data["widths"] = None
        warnings.append("the explicit widths no longer fit the number of stages; using the width rule instead")
    if data.get("depth") is None and data.get("blocks") is None:
        data["depth"] = base.resolved_depth
    for _ in range(len(fields) + 3):
        try:
            return ResNetConfig.from_dict(data), warnings
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
                data["blocks"] = None
                data["depth"] = base.resolved_depth if base.blocks is None else snap_depth(data["block"], data["stages"], base.resolved_depth)
                if "stages" not in wanted:
                    data["stages"] = base.stages
                del wanted["blocks"]
                continue
            culprit = field if field in wanted else _dependent_change(field, wanted)
            if culprit is None:
                raise
            warnings.append(f"{_describe(culprit, wanted[culprit])} ignored: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            original = getattr(base, culprit)
            data[culprit] = list(original) if isinstance(original, tuple) else original
            del wanted[culprit]
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
        numeric = isinstance(getattr(ResNetConfig(), field), float)
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
    for f in dataclasses.fields(ResNetConfig):
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
    for f in dataclasses.fields(ResNetConfig):
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
