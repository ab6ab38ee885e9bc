"""The sidebar: preset, version, block, depth over the valid depths, widths, shortcut, stem, head, input — returns a config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

from explorer.config import (
    BLOCKS,
    CONV_BIAS,
    DOWNSAMPLE,
    HEADS,
    INITIALIZERS,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_FILTERS,
    MAX_INPUT_SIDE,
    MAX_STAGES,
    PROJECTION_FROM,
    SHORTCUT_HELP,
    SHORTCUTS,
    STEMS,
    STRIDE_AT,
    WIDTH_RULES,
    ConfigError,
    ResNetConfig,
    depth_rule,
    parse_int_list,
    valid_depths,
)
from explorer.presets import PRESETS
from explorer.ui import classroom, common
from explorer.ui.urlstate import MAX_APP_DEPTH, diff_fields, snap_depth

SLIDER_DEPTH_LIMIT = 1202
"""The depth slider reaches at least this far (every depth in the papers)."""

MAX_BLOCKS_INPUT = 600

SHORTCUT_LABELS = {
    "A": "A · zero-pad (no params)",
    "B": "B · project when needed",
    "C": "C · always project",
    "identity": "identity (breaks on shape change)",
    "none": "none (plain network)",
}
STEM_LABELS = {"cifar": "cifar · 3×3 conv", "imagenet": "imagenet · 7×7/2 conv, 3×3/2 pool",
               "tutorial": "tutorial · 3×3 conv, dropout"}
HEAD_LABELS = {"gap": "gap · global avg pool → dense", "flatten": "flatten · AvgPool(8) → flatten → dense",
               "tutorial": "tutorial · … dense 512, BN, dropout → dense"}
VERSION_LABELS = {1: "v1 · post-act", 2: "v2 · pre-act"}

# Widget key of each config field (the input shape has three widgets, blocks one per stage).
KEYS = {
    "version": "w_version", "block": "w_block", "depth": "w_depth", "stages": "w_stages", "filters": "w_filters",
    "width_rule": "w_width_rule", "widths": "w_widths", "expansion": "w_expansion", "shortcut": "w_shortcut",
    "stride_at": "w_stride_at", "downsample": "w_downsample", "first_preact": "w_first_preact",
    "projection_from": "w_projection_from", "projection_bn": "w_projection_bn", "stem": "w_stem", "head": "w_head",
    "dropout": "w_dropout", "classes": "w_classes", "conv_bias": "w_conv_bias", "explicit_padding": "w_explicit_padding",
    "initializer": "w_initializer", "l2": "w_l2", "bn_epsilon": "w_bn_epsilon", "freeze": "w_freeze",
}
EXPLICIT = "w_explicit"
INPUT_KEYS = ("w_input_h", "w_input_w", "w_input_c")
FLOAT_FIELDS = ("dropout", "l2", "bn_epsilon")


def block_key(stage: int) -> str:
    """Widget key of the blocks-per-stage input of a 0-based stage."""
    return f"w_blocks_{stage}"


def _extra_bool_fields() -> list[str]:
    """Boolean config fields without a dedicated widget (each gets a checkbox in the advanced options)."""
    return [f.name for f in dataclasses.fields(ResNetConfig) if f.name not in KEYS and isinstance(f.default, bool)]


def _key(field: str) -> str:
    return KEYS.get(field, f"w_{field}")


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
    for f in dataclasses.fields(ResNetConfig):
        if f.name in ("depth", "blocks", "input_shape", "widths"):
            continue
        if f.name in KEYS or f.name in _extra_bool_fields():
            value = getattr(config, f.name)
            ss[_key(f.name)] = float(value) if f.name in FLOAT_FIELDS else value
    ss[KEYS["widths"]] = ",".join(str(w) for w in config.widths) if config.widths else ""
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
    data = base.to_dict()
    for f in dataclasses.fields(ResNetConfig):
        key = _key(f.name)
        if f.name in ("depth", "blocks", "widths") or key not in ss:
            continue
        data[f.name] = ss[key]
    data["input_shape"] = [int(ss.get(k, v)) for k, v in zip(INPUT_KEYS, base.input_shape, strict=True)]
    widths_text = str(ss.get(KEYS["widths"], "")).strip()
    data["widths"] = list(parse_int_list("widths", widths_text)) if widths_text else None
    stages = int(data["stages"])
    if ss.get(EXPLICIT):
        data["blocks"] = [int(ss.get(block_key(i), 1)) for i in range(stages)]
        data["depth"] = None
    else:
        data["blocks"] = None
        data["depth"] = int(ss.get(KEYS["depth"], base.resolved_depth))
    config = ResNetConfig.from_dict(data)
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
    if mode.shows("version"):
        sb.radio("Version", [1, 2], key=KEYS["version"], horizontal=True, format_func=VERSION_LABELS.get,
             help="v1 (He et al. 2015): conv → BN → ReLU, ReLU after the add. "
                  "v2 (He et al. 2016): BN → ReLU → conv, nothing after the add.")
    if mode.shows("block"):
        sb.radio("Block", list(BLOCKS), key=KEYS["block"], horizontal=True,
             help="basic: two 3×3 convs. bottleneck: 1×1 (reduce) → 3×3 → 1×1 (expand ×4).")
    c1, c2 = sb.columns(2) if mode.shows("stages") or mode.shows("filters") else (None, None)
    if mode.shows("stages"):
        c1.number_input("Stages", min_value=1, max_value=MAX_STAGES, step=1, key=KEYS["stages"],
                    help="Each stage after the first halves height and width and doubles the width.")
    if mode.shows("filters"):
        c2.number_input("Base filters", min_value=1, max_value=MAX_FILTERS, step=8, key=KEYS["filters"],
                    help="Width of the stem and of the first stage.")
    block, stages = ss[KEYS["block"]], int(ss[KEYS["stages"]])
    explicit = bool(ss.get(EXPLICIT))
    if explicit:
        counts = [int(ss.get(block_key(i), ss.get(block_key(i - 1), 1) if i else 1)) for i in range(stages)]
        for i, n in enumerate(counts):
            ss[block_key(i)] = n
        from explorer.config import depth_of

        ss[KEYS["depth"]] = depth_of(block, tuple(counts))
    depth_now = int(ss.get(KEYS["depth"], base.resolved_depth))
    options = _depth_options(block, stages, depth_now, explicit)
    if depth_now not in options:
        snapped = snap_depth(block, stages, depth_now, limit=options[-1])
        notes.append(f"Depth {depth_now} does not fit the {depth_rule(block, stages)} rule of {block} blocks in "
                     f"{stages} stages: moved to {snapped}.")
        ss[KEYS["depth"]] = snapped
    if mode.shows("depth"):
        sb.select_slider(f"Depth · {depth_rule(block, stages)}", options=options, key=KEYS["depth"], disabled=explicit,
                     help="Weighted layers on the main path: stem conv + block convs + the classifier. "
                          "Only depths that fit the rule are offered; set blocks per stage for any other split.")
    for note in notes:
        sb.info(note, icon=":material/info:")
    if not explicit:
        for i, n in enumerate(_blocks_for(block, stages, ss[KEYS["depth"]])):
            ss[block_key(i)] = n
    if mode.shows("blocks"):
        with sb.expander("Blocks per stage" + (" · explicit" if explicit else "")):
            st.checkbox("Set blocks per stage myself", key=EXPLICIT, on_change=_on_explicit,
                        help="e.g. 3, 4, 6, 3 for ResNet-34/50. Overrides the depth slider.")
            cols = st.columns(min(stages, 3))
            for i in range(stages):
                ss.setdefault(block_key(i), 1)
                cols[i % len(cols)].number_input(f"Stage {i + 1}", min_value=1, max_value=MAX_BLOCKS_INPUT, step=1,
                                                 key=block_key(i), disabled=not explicit)
    else:  # hidden by a classroom link: keep the values as plain session state
        for i in range(stages):
            ss[block_key(i)] = int(ss.get(block_key(i), 1))
    if mode.shows("shortcut"):
        sb.radio("Shortcut", list(SHORTCUTS), key=KEYS["shortcut"], format_func=SHORTCUT_LABELS.get,
             captions=[SHORTCUT_HELP[s] for s in SHORTCUTS],
             help="How a block's input reaches its add when the main path changes the shape.")
    if mode.shows("stem"):
        sb.selectbox("Stem", list(STEMS), key=KEYS["stem"], format_func=STEM_LABELS.get,
                 help="The layers before the first stage.")
    if mode.shows("head"):
        sb.selectbox("Head", list(HEADS), key=KEYS["head"], format_func=HEAD_LABELS.get,
                 help="The layers after the last stage, ending in the softmax classifier.")
    if mode.shows("data"):
        sb.markdown("#### Data")
        c1, c2, c3 = sb.columns(3)
        c1.number_input("Height", min_value=1, max_value=MAX_INPUT_SIDE, step=1, key=INPUT_KEYS[0])
        c2.number_input("Width", min_value=1, max_value=MAX_INPUT_SIDE, step=1, key=INPUT_KEYS[1])
        c3.number_input("Channels", min_value=1, max_value=MAX_CHANNELS, step=1, key=INPUT_KEYS[2])
        sb.number_input("Classes", min_value=2, max_value=MAX_CLASSES, step=1, key=KEYS["classes"])
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
        sb.caption("Changed from the preset: " + ", ".join("input" if c == "input_shape" else c for c in changed))
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
    sb.selectbox("Freeze (fine-tuning)", list(range(stages + 1)), key=KEYS["freeze"],
                 format_func=lambda k: _freeze_label(k, stages),
                 help="Frozen layers keep their weights while training (e.g. ImageNet weights, see the Train tab); "
                      "the new head trains. Frozen layers are drawn icy blue.")
    return sb.empty()


def _freeze_text(config: ResNetConfig) -> str:
    """'Trainable … · frozen …' for the sidebar (the annotated graph is cached)."""
    ag = common.annotated(config.to_json())
    if not config.freeze:
        return f"Trainable {ag.trainable_params:,} of {ag.total_params:,} params (nothing frozen)."
    return (f"Trainable **{ag.trainable_params:,}** · frozen **{ag.frozen_params:,}** of {ag.total_params:,} params "
            "(BN statistics aside).")


def _blocks_for(block: str, stages: int, depth: int) -> tuple[int, ...]:
    from explorer.config import blocks_for_depth

    return blocks_for_depth(block, depth, stages) or (1,) * stages


def _advanced(sb, *, version: int) -> None:
    with sb.expander("Advanced options"):
        st.radio("Width rule", list(WIDTH_RULES), key=KEYS["width_rule"], horizontal=True,
                 help="double: stage i has filters·2^i. keras: the Keras v2 example (out = 4× the input in stage 1, "
                      "2× afterwards; bottleneck only).")
        st.text_input("Widths per stage", key=KEYS["widths"], placeholder="e.g. 16,32,64 (empty: from filters)",
                      help="Explicit inner width of each stage; overrides base filters and the width rule.")
        st.number_input("Bottleneck expansion", min_value=1, max_value=16, step=1, key=KEYS["expansion"])
        c1, c2 = st.columns(2)
        c1.radio("Stride at", list(STRIDE_AT), key=KEYS["stride_at"],
                 help="Which conv of a downsampling block strides: the first, or the 3×3.")
        c2.radio("Downsample in", list(DOWNSAMPLE), key=KEYS["downsample"],
                 help="first: first block of stages 2…; last: last block of stages 1…S-1 (keras.applications v2).")
        c1.radio("Projection from", list(PROJECTION_FROM), key=KEYS["projection_from"], disabled=version == 1,
                 help="v2: a projection shortcut starts after the block's BN-ReLU (preact) or from the raw input.")
        c2.radio("Conv bias", list(CONV_BIAS), key=KEYS["conv_bias"],
                 help="auto: bias only on convs not followed by BatchNormalization.")
        st.checkbox("First block has its own BN-ReLU", key=KEYS["first_preact"], disabled=version == 1,
                    help="v2: the Keras example and the tutorial leave it out (the stem already has one).")
        st.checkbox("BatchNorm on projection shortcuts", key=KEYS["projection_bn"])
        st.checkbox("Explicit zero padding (keras.applications)", key=KEYS["explicit_padding"])
        labels = {"batch_norm": "BatchNormalization layers", "zero_init": "Zero-init residual (last γ or conv = 0)"}
        for name in _extra_bool_fields():
            st.checkbox(labels.get(name, name.replace("_", " ").capitalize()), key=_key(name))
        c1, c2 = st.columns(2)
        c1.number_input("Dropout before dense", min_value=0.0, max_value=0.95, step=0.05, key=KEYS["dropout"])
        c2.selectbox("Initializer", list(INITIALIZERS), key=KEYS["initializer"])
        c1.number_input("L2 on convs", min_value=0.0, max_value=1.0, step=1e-4, format="%g", key=KEYS["l2"])
        c2.number_input("BN epsilon", min_value=1e-12, max_value=1.0, step=1e-4, format="%g", key=KEYS["bn_epsilon"])
