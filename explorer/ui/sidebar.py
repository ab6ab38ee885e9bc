"""The sidebar: preset, version, block, depth over the valid depths, widths, shortcut, stem, head, input — returns a config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from explorer.config import (
    FIELD,
    FIELDS,
    MAX_CHANNELS,
    MAX_INPUT_SIDE,
    ConfigError,
    ResNetConfig,
    blocks_for_depth,
    depth_of,
    depth_rule,
    valid_depths,
)
from explorer.presets import PRESETS
from explorer.ui import classroom, common
from explorer.ui.urlstate import MAX_APP_DEPTH, diff_fields, snap_depth, url_name

SLIDER_DEPTH_LIMIT = 1202
"""The depth slider reaches at least this far (every depth in the papers)."""

MAX_BLOCKS_INPUT = 600

KEYS = {f.name: f"w_{f.name}" for f in FIELDS if f.widget}
"""Widget key of each config field with a widget of its own (the input shape has three, blocks one per stage)."""
EXPLICIT = "w_explicit"
INPUT_KEYS = ("w_input_h", "w_input_w", "w_input_c")

OTHER_FIELDS = "…"
"""In ADVANCED: every advanced field the layout does not name (a new field shows up there)."""
ADVANCED = ("width_rule", "widths", "expansion", ("stride_at", "downsample", "projection_from", "conv_bias"),
            "first_preact", "projection_bn", "explicit_padding", OTHER_FIELDS, ("dropout", "initializer", "l2", "bn_epsilon"))
"""The advanced options, top to bottom: a name takes the whole width, a tuple fills two columns left, right, left, …"""


def block_key(stage: int) -> str:
    """Widget key of the blocks-per-stage input of a 0-based stage."""
    return f"w_blocks_{stage}"


def _other_fields() -> list[str]:
    """The advanced fields with a widget that ADVANCED does not name, in field order."""
    named = {n for row in ADVANCED for n in ((row,) if isinstance(row, str) else row)}
    return [f.name for f in FIELDS if f.section == "advanced" and f.widget and f.name not in named]


def _widget(box: Any, name: str, **extra: Any) -> Any:
    """Draw the widget of a config field in `box` from its FIELDS entry (label, help, options, range, key).

    Args:
        box: Where to draw (the sidebar, a column, `st` inside an expander).
        name: The config field.
        **extra: Keyword arguments for this drawing (options that depend on other fields, disabled, a label).
    """
    f = FIELD[name]
    kwargs: dict[str, Any] = {"key": KEYS[name], "help": f.help}
    if f.widget in ("radio", "selectbox", "select_slider"):
        kwargs["options"] = list(f.choices)
        if f.labels:
            kwargs["format_func"] = f.labels.get
        if f.captions:
            kwargs["captions"] = [f.captions[c] for c in f.choices]
    elif f.widget == "number_input":
        kwargs.update(min_value=f.low, max_value=f.high)
    kwargs.update(f.widget_args)
    kwargs.update(extra)
    return getattr(box, f.widget)(kwargs.pop("label", f.label), **kwargs)


@dataclass
class SidebarResult:
    """What the sidebar describes.

    Attributes:
        config: The network every view shows (the last valid one when the widgets do not fit together).
        preset: The selected preset's name.
        error: Why the widgets' values were refused (None when `config` is exactly what they say).
    """

    config: ResNetConfig
    preset: str
    error: ConfigError | None = None


# ----------------------------------------------------------------------------------------- state <-> config
def load_widgets(config: ResNetConfig, preset: str | None = None) -> None:
    """Set every widget of the sidebar to show `config` (call before the widgets are drawn, or in a callback)."""
    ss = st.session_state
    if preset is not None:
        ss[common.PRESET] = preset
    for name, key in KEYS.items():
        value = getattr(config, name)
        ss[key] = float(value) if FIELD[name].kind == "float" else value
    ss[KEYS["widths"]] = FIELD["widths"].format(config.widths)
    ss[KEYS["depth"]] = config.resolved_depth
    ss[EXPLICIT] = config.blocks is not None
    for i, n in enumerate(config.stage_blocks):
        ss[block_key(i)] = n
    for key, value in zip(INPUT_KEYS, config.input_shape, strict=True):
        ss[key] = value
    ss[common.CONFIG] = config.to_json()


def config_from_widgets(base: ResNetConfig) -> ResNetConfig:
    """The config the widgets describe; fields without a widget keep `base`'s value.

    Raises:
        ConfigError: The values do not make a valid config.
    """
    ss = st.session_state
    values = {name: ss[key] for name, key in KEYS.items() if name not in ("depth", "widths") and key in ss}
    values["input_shape"] = tuple(int(ss.get(k, v)) for k, v in zip(INPUT_KEYS, base.input_shape, strict=True))
    widths_text = str(ss.get(KEYS["widths"], "")).strip()
    values["widths"] = FIELD["widths"].parse(widths_text) if widths_text else None
    stages = int(values.get("stages", base.stages))
    if ss.get(EXPLICIT):
        values["blocks"] = tuple(int(ss.get(block_key(i), 1)) for i in range(stages))
    else:
        values["depth"] = int(ss.get(KEYS["depth"], base.resolved_depth))
    config = base.with_changes(**values)
    if config.resolved_depth > MAX_APP_DEPTH:
        raise ConfigError("blocks", f"these blocks give depth {config.resolved_depth}, deeper than the app draws ({MAX_APP_DEPTH})",
                          "use fewer blocks per stage")
    return config


# ----------------------------------------------------------------------------------------- callbacks
def _on_preset() -> None:
    name = st.session_state.get(common.PRESET)
    if name in PRESETS:
        load_widgets(PRESETS[name].config)
        st.session_state.pop(common.REJECTED, None)
        st.session_state.pop(common.NOTICES, None)


def _on_reset() -> None:
    _on_preset()


def _on_explicit() -> None:
    """Switching explicit blocks on starts from the current blocks; off snaps the depth to the rule."""
    ss = st.session_state
    config = common.current_config()
    if ss.get(EXPLICIT):
        for i, n in enumerate(config.stage_blocks):
            ss[block_key(i)] = n
    else:
        ss[KEYS["depth"]] = snap_depth(config.block, config.stages, config.resolved_depth)


# ----------------------------------------------------------------------------------------- drawing
def _preset_label(name: str) -> str:
    p = PRESETS[name]
    err = f" · {p.reported_error:g} % err" if p.reported_error is not None else ""
    return f"{name}{err}"


def _reference_caption(name: str) -> str:
    p = PRESETS[name]
    bits = [p.dataset]
    if p.reported_params:
        bits.append(f"{p.reported_params / 1e6:.3g}M params")
    if p.reported_error is not None:
        bits.append(f"{p.reported_error:g} % test error")
    source = f"[{p.source}]({p.url})" if p.url else p.source
    return f"{source}  \n{' · '.join(bits)}"


def _depth_options(block: str, stages: int, current: int, explicit: bool) -> list[int]:
    options = valid_depths(block, stages, limit=min(MAX_APP_DEPTH, max(SLIDER_DEPTH_LIMIT, current)))
    if explicit and current not in options:
        options = sorted({*options, current})
    return options


def render() -> SidebarResult:
    """Draw the sidebar and return the config it describes."""
    ss = st.session_state
    base = common.current_config()
    # Widgets not drawn in a run lose their state; refill any missing key from the last valid config.
    missing = [k for k in [*KEYS.values(), EXPLICIT, *INPUT_KEYS] if k not in ss]
    if missing:
        keep = {k: ss[k] for k in [*KEYS.values(), EXPLICIT, *INPUT_KEYS] if k in ss}
        load_widgets(base)
        ss.update(keep)
    sb = st.sidebar
    sb.markdown("## :material/hub: ResNet Explorer")
    ss.setdefault(common.PRESET, common.current_preset())
    mode = classroom.current(ss)
    sb.selectbox("Preset", list(PRESETS), key=common.PRESET, format_func=_preset_label, on_change=_on_preset,
                 disabled=mode.locked,
                 help="A published network, reproduced exactly. Changing it resets every setting below.")
    preset = common.current_preset()
    sb.caption(_reference_caption(preset))

    notes: list[str] = []
    sb.markdown("#### Network")
    for name in ("version", "block"):
        if mode.shows(name):
            _widget(sb, name)
    c1, c2 = sb.columns(2) if mode.shows("stages") or mode.shows("filters") else (None, None)
    if mode.shows("stages"):
        _widget(c1, "stages")
    if mode.shows("filters"):
        _widget(c2, "filters")
    block, stages = ss[KEYS["block"]], int(ss[KEYS["stages"]])
    explicit = bool(ss.get(EXPLICIT))
    if explicit:
        counts = [int(ss.get(block_key(i), ss.get(block_key(i - 1), 1) if i else 1)) for i in range(stages)]
        for i, n in enumerate(counts):
            ss[block_key(i)] = n
        ss[KEYS["depth"]] = depth_of(block, tuple(counts))
    depth_now = int(ss.get(KEYS["depth"], base.resolved_depth))
    options = _depth_options(block, stages, depth_now, explicit)
    if depth_now not in options:
        snapped = snap_depth(block, stages, depth_now, limit=options[-1])
        notes.append(f"Depth {depth_now} does not fit the {depth_rule(block, stages)} rule of {block} blocks in "
                     f"{stages} stages: moved to {snapped}.")
        ss[KEYS["depth"]] = snapped
    if mode.shows("depth"):
        _widget(sb, "depth", label=f"{FIELD['depth'].label} · {depth_rule(block, stages)}", options=options, disabled=explicit)
    for note in notes:
        sb.info(note, icon=":material/info:")
    if not explicit:
        for i, n in enumerate(_blocks_for(block, stages, ss[KEYS["depth"]])):
            ss[block_key(i)] = n
    if mode.shows("blocks"):
        with sb.expander(FIELD["blocks"].label + (" · explicit" if explicit else "")):
            st.checkbox("Set blocks per stage myself", key=EXPLICIT, on_change=_on_explicit, help=FIELD["blocks"].help)
            cols = st.columns(min(stages, 3))
            for i in range(stages):
                ss.setdefault(block_key(i), 1)
                cols[i % len(cols)].number_input(f"Stage {i + 1}", min_value=1, max_value=MAX_BLOCKS_INPUT, step=1,
                                                 key=block_key(i), disabled=not explicit)
    else:  # hidden by a classroom link: keep the values as plain session state
        for i in range(stages):
            ss[block_key(i)] = int(ss.get(block_key(i), 1))
    for name in ("shortcut", "stem", "head"):
        if mode.shows(name):
            _widget(sb, name)
    if mode.shows("data"):
        sb.markdown("#### Data")
        c1, c2, c3 = sb.columns(3)
        c1.number_input("Height", min_value=1, max_value=MAX_INPUT_SIDE, step=1, key=INPUT_KEYS[0])
        c2.number_input("Width", min_value=1, max_value=MAX_INPUT_SIDE, step=1, key=INPUT_KEYS[1])
        c3.number_input("Channels", min_value=1, max_value=MAX_CHANNELS, step=1, key=INPUT_KEYS[2])
        _widget(sb, "classes")
    freeze_caption = _freeze(sb, stages) if mode.shows("freeze") else None
    if not mode.shows("freeze"):  # hidden by a classroom link: keep the value, within the stages
        ss[KEYS["freeze"]] = min(int(ss.get(KEYS["freeze"], base.freeze)), stages)
    if mode.shows("advanced"):
        _advanced(sb, version=int(ss[KEYS["version"]]))
    if mode.active:
        sb.caption(":material/school: Classroom link: the teacher fixed "
                   + ("the preset" if mode.locked else "")
                   + (" and " if mode.locked and mode.hidden else "")
                   + (f"{len(mode.hidden)} setting(s)" if mode.hidden else "") + ".")
    sb.toggle("Presentation mode", key=classroom.PRESENT, help="Larger type for a projector (also `?present=1`).")
    try:
        config = config_from_widgets(base)
        error = None
    except ConfigError as exc:
        config, error = base, exc
        sb.error(f"**{exc.field}**: {exc.message}  \n→ {exc.hint}", icon=":material/warning:")
    ss[common.CONFIG] = config.to_json()
    if freeze_caption is not None:
        freeze_caption.caption(_freeze_text(config))
    changed = diff_fields(config, PRESETS[preset].config)
    if changed:
        sb.divider()
        sb.caption("Changed from the preset: " + ", ".join(url_name(c) for c in changed))
        sb.button("Reset to preset", on_click=_on_reset, icon=":material/restart_alt:", width="stretch")
    return SidebarResult(config, preset, error)


def _freeze_label(k: int, stages: int) -> str:
    if k == 0:
        return "0 · train everything"
    if k == stages:
        return f"{k} · whole body: only the head trains"
    return f"{k} · stem + stage 1" + (f"–{k}" if k > 1 else "")


def _freeze(sb, stages: int):  # -> the placeholder of the trainable/frozen caption
    """The fine-tuning control: how many stages (after the stem) to freeze; 0 trains everything."""
    ss = st.session_state
    if int(ss.get(KEYS["freeze"], 0)) > stages:  # fewer stages than frozen ones: freeze the whole body
        ss[KEYS["freeze"]] = stages
    sb.markdown("#### Fine-tuning")
    _widget(sb, "freeze", options=list(range(stages + 1)), format_func=lambda k: _freeze_label(k, stages))
    return sb.empty()


def _freeze_text(config: ResNetConfig) -> str:
    """'Trainable … · frozen …' for the sidebar (the annotated graph is cached)."""
    ag = common.annotated(config.to_json())
    if not config.freeze:
        return f"Trainable {ag.trainable_params:,} of {ag.total_params:,} params (nothing frozen)."
    return (f"Trainable **{ag.trainable_params:,}** · frozen **{ag.frozen_params:,}** of {ag.total_params:,} params "
            "(BN statistics aside).")


def _blocks_for(block: str, stages: int, depth: int) -> tuple[int, ...]:
    return blocks_for_depth(block, depth, stages) or (1,) * stages


def _advanced(sb, *, version: int) -> None:
    """The advanced options, laid out by ADVANCED (fields only v2 uses are disabled for v1)."""
    def draw(box, name: str) -> None:
        _widget(box, name, **({"disabled": version == 1} if FIELD[name].v2_only else {}))

    with sb.expander("Advanced options"):
        for row in ADVANCED:
            if row == OTHER_FIELDS:
                for name in _other_fields():
                    draw(st, name)
            elif isinstance(row, str):
                draw(st, row)
            else:
                columns = st.columns(2)
                for i, name in enumerate(row):
                    draw(columns[i % 2], name)
