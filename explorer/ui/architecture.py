"""The Architecture tab: totals, the interactive diagram with its view controls and details panel, the preset's reference."""

from __future__ import annotations

import streamlit as st

from explorer import fmt
from explorer.annotate import AnnotatedGraph
from explorer.config import ResNetConfig
from explorer.presets import PRESETS
from explorer.ui import common
from explorer.ui.urlstate import diff_fields

LEVEL = "view_level"
EXPAND = "view_expand"
RANKDIR = "view_rankdir"
COLOR = "view_color"
ROLLUP = "view_rollup"
PARAMS = "view_params"

NODE = common.NODE
DRAWN = "_diagram_drawn"  # the view options of the drawing on screen (after any fallback)
MODE = "arch_mode"
MODES = {"diagram": "Diagram", "compare": "Compare networks"}

NO_EXPAND = "—"
AUTO = "auto"
COLOR_LABELS = {"none": "plain", "params": "parameters", "macs": "MACs", "memory": "activation memory"}
RANKDIR_LABELS = {"TB": "↓ down", "LR": "→ right"}

EXPLAINER = """
* **Boxes** are stages, blocks or layers (pick the *View*). A block's label lists its convs; the edge
  leaving it carries the tensor shape **H×W×C**.
* **Coloured edges are shortcuts**: green = identity, purple dashed = zero-padding (A),
  thick blue = 1×1 projection conv (B/C), orange dashed = 1×1 max-pool subsample.
  The yellow **+** is where shortcut and main path are added.
* **“× 16”** folds a run of identical blocks. Choose a stage or block in *Expand* to see its layers.
* **Red** means the shapes do not fit (the two inputs of an add differ, or a map shrinks to nothing);
  the **Debug** tab says why and offers fixes.
* **Drag** to move, **scroll** to zoom, **click** a box for its shapes, parameters and fixes (a stage or
  block opens at layer level); *Search* finds a layer by name.
* **Params** are the weights; **MACs** the multiply-adds for one image; **activations** the float32
  outputs one image leaves for back-propagation.
"""


def _metrics(ag: AnnotatedGraph) -> None:
    cols = st.columns(6)
    cols[0].metric("Depth", ag.depth, help="Weighted layers on the main path: stem conv + block convs + classifier.")
    cols[1].metric("Parameters", fmt.count(ag.total_params), help=f"{ag.total_params:,} in all")
    frozen = ag.frozen_params
    cols[2].metric("Trainable", fmt.count(ag.trainable_params),
                   help=f"{ag.trainable_params:,} trainable; {ag.non_trainable_params:,} non-trainable (BatchNorm statistics"
                        + (f", {frozen:,} frozen)" if frozen else ")"))
    cols[3].metric("Non-trainable", fmt.count(ag.non_trainable_params),
                   help="BatchNorm moving mean and variance" + (f", and the {frozen:,} params of the frozen layers." if frozen else "."))
    freeze = ag.config.freeze
    if freeze:
        body = "the whole body: only the head trains" if freeze == ag.config.stages else f"stem + stage 1–{freeze}"
        st.caption(f":material/ac_unit: **Fine-tuning** — frozen: {body}. **{ag.frozen_params:,}** params frozen "
                   f"(drawn icy blue), **{ag.trainable_params:,}** trainable.")
    cols[4].metric("MACs / image", fmt.count(ag.macs), help=f"{ag.macs:,} multiply-accumulates for one image")
    cols[5].metric("Activations / image", fmt.binary_bytes(ag.activation_bytes),
                   help=f"{ag.activation_bytes:,} bytes of float32 layer outputs for one image ({len(ag.graph):,} layers)")


def banner(ag: AnnotatedGraph) -> None:
    """Say at the top of the page when the network does not fit together, with a way to the debugger."""
    if not ag.diagnostics:
        return
    errors = ag.errors
    first = (errors or ag.diagnostics)[0]
    count = len(errors) if errors else len(ag.diagnostics)
    what = f"{count} {'error' if errors else 'warning'}{'s' if count != 1 else ''}"
    where = first.message if first.message.startswith(first.node) else f"at {first.node}: {first.message}"
    where = where.replace(first.node, f"`{first.node}`", 1)
    more = f" (and {len(ag.diagnostics) - 1} more)" if len(ag.diagnostics) > 1 else ""
    text = (f"**This network does not fit together — {what}.** {where}{more}.  \n"
            f"→ {first.hint[0].upper() + first.hint[1:]}. Red boxes mark where; the **Debug** tab offers one-click fixes.")
    c1, c2 = st.columns([0.82, 0.18], vertical_alignment="center")
    (c1.error if errors else c1.warning)(text, icon=":material/error:" if errors else ":material/warning:")
    c2.button("Open the debugger", on_click=_go_debug, type="primary", key="banner_debug", width="stretch")


def _go_debug() -> None:
    st.session_state[common.TAB] = "Debug"


def _expand_options(ag: AnnotatedGraph) -> list[str]:
    stages = sorted({b.stage for b in ag.graph.blocks})
    return [NO_EXPAND, *(f"stage{s}" for s in stages), *(f"stage{b.stage}_block{b.block}" for b in ag.graph.blocks)]


def _controls(ag: AnnotatedGraph, default_level: str) -> dict:
    ss = st.session_state
    ss.setdefault(LEVEL, AUTO)
    ss.setdefault(RANKDIR, "TB")
    ss.setdefault(COLOR, "none")
    ss.setdefault(ROLLUP, True)
    ss.setdefault(PARAMS, False)
    options = _expand_options(ag)
    if ss.get(EXPAND) not in options:
        ss[EXPAND] = NO_EXPAND
    # Two selects and a popover: one row that stays whole on a 1024-px projector in presentation mode.
    c = st.columns([1.3, 1.3, 0.75], vertical_alignment="bottom")
    c[0].selectbox("View", [AUTO, "stage", "block", "layer"], key=LEVEL,
                   format_func=lambda v: f"{default_level} (auto)" if v == AUTO else v,
                   help="stage: one box per stage · block: one per residual block · layer: every layer")
    c[1].selectbox("Expand", options, key=EXPAND, help="Draw one stage or block at layer level, the rest as chosen.")
    colour = COLOR_LABELS.get(ss.get(COLOR, "none"), "plain")
    label = "Style" if colour == "plain" else f"By {colour.split()[-1]}"
    with c[2].popover(label, icon=":material/tune:", width="stretch",
                      help="Colour by cost, direction, folding, parameter counts"):
        st.selectbox("Colour by", list(COLOR_LABELS), key=COLOR, format_func=COLOR_LABELS.get,
                     help="Fill boxes by their cost: light = cheap, dark = expensive.")
        st.radio("Direction", list(RANKDIR_LABELS), key=RANKDIR, format_func=RANKDIR_LABELS.get, horizontal=True)
        st.checkbox("Fold ×k", key=ROLLUP, help="Fold a run of identical blocks into one “× k” box.")
        st.checkbox("Show params", key=PARAMS)
    return current_view(ag, default_level)


def current_view(ag: AnnotatedGraph, default_level: str | None = None) -> dict:
    """The diagram options the Architecture tab's controls hold (their defaults before it was opened)."""
    if default_level is None:
        from explorer import diagram

        default_level = diagram.default_level(ag)
    ss = st.session_state
    level = ss.get(LEVEL, AUTO)
    expand = ss.get(EXPAND, NO_EXPAND)
    color = ss.get(COLOR, "none")
    return {
        "level": default_level if level == AUTO else level,
        "expand": None if expand == NO_EXPAND or expand not in _expand_options(ag) else expand,
        "rankdir": ss.get(RANKDIR, "TB"),
        "rollup": bool(ss.get(ROLLUP, True)),
        "show_params": bool(ss.get(PARAMS, False)),
        "color_by": None if color == "none" else color,
    }


def _select(name: str) -> None:
    st.session_state[NODE] = name


def _clear() -> None:
    st.session_state[NODE] = None


def open_box(name: str) -> None:
    """Open a stage or block at layer level in place (the Expand control follows) and select it."""
    ss = st.session_state
    if ss.get(LEVEL) == "layer" or name.split("_to_")[0] == ss.get(EXPAND):
        ss[NODE] = name
        return
    ss[EXPAND] = name.split("_to_")[0]
    ss[NODE] = name


def too_large(ag: AnnotatedGraph, view: dict) -> None:
    """Say that a view is too large to lay out, in the page's words, with a button per stage to open instead."""
    from explorer import diagram
    from explorer.ui import viewer

    size = diagram.view_size(ag, level=view["level"], expand=view["expand"], rollup=view["rollup"])
    stages = sorted({b.stage for b in ag.graph.blocks})
    limit = viewer.STATIC_NODE_LIMIT if viewer.unavailable() else diagram.LAYER_NODE_LIMIT
    st.info(f"The layer view of this network would draw **{size:,} layers**, more than the "
            f"{limit:,} the browser lays out in reasonable time. Showing the block view: "
            "click a stage or block in it (or choose one in *Expand*) to see its layers.",
            icon=":material/zoom_in:")
    cols = st.columns(min(len(stages), 6) or 1)
    for col, s in zip(cols, stages[:6], strict=False):
        col.button(f"Open stage {s}", key=f"open_stage_{s}", on_click=_open_stage, args=(s,), width="stretch")


def _open_stage(stage: int) -> None:
    st.session_state[LEVEL] = "block"
    st.session_state[EXPAND] = f"stage{stage}"


def drawn_view(config: ResNetConfig, ag: AnnotatedGraph, view: dict) -> tuple[str, dict]:
    """The DOT of a view, falling back to the default level (with the reason shown) when it is too large."""
    from explorer import diagram
    from explorer.ui import viewer

    key = config.to_json()
    try:
        if viewer.unavailable() and view["level"] == "layer" and len(ag.graph) > viewer.STATIC_NODE_LIMIT:
            raise diagram.DiagramError("level", "too many layers for the static diagram", "")
        return common.dot_source(key, **view), view
    except diagram.DiagramError as exc:
        if exc.field == "level":
            too_large(ag, view)
            view = {**view, "level": diagram.default_level(ag)}
        else:
            st.info(f"{exc.message}. Showing the {diagram.default_level(ag)} view instead.", icon=":material/zoom_in:")
            view = {**view, "level": diagram.default_level(ag), "expand": None}
        return common.dot_source(key, **view), view


def shape_key(config: ResNetConfig, view: dict) -> str:
    """What keeps the viewer's zoom and position: the network and the boxes drawn, not their colours or labels."""
    from explorer.ui import viewer

    return viewer.view_key(config.to_json(), view["level"], view["expand"], view["rankdir"], view["rollup"])


def _diagram(config: ResNetConfig, ag: AnnotatedGraph) -> str | None:
    """Draw the controls and the viewer; return the selected box's name (None when nothing is selected)."""
    from explorer import diagram
    from explorer.ui import classroom, viewer

    view = _controls(ag, diagram.default_level(ag))
    dot, view = drawn_view(config, ag, view)
    st.session_state[DRAWN] = view
    selected = st.session_state.get(NODE)
    pane = viewer.Pane("a", _title_of(config), dot, shape_key(config, view))
    where, panel = st.columns([0.7, 0.3], gap="small") if selected else (st.container(), None)
    with where:
        viewer.show([pane], key="arch_viewer", selected=selected,
                    present=classroom.current(st.session_state).present, on_select=_select, on_expand=open_box)
    if panel is not None:
        with panel, common.guard("details"):
            _details(ag, selected)
    return selected


def _title_of(config: ResNetConfig) -> str:
    from explorer.ui.common import current_preset

    return f"{current_preset()} · ResNet-{config.resolved_depth}"


def _details(ag: AnnotatedGraph, name: str) -> None:
    from explorer import diagram
    from explorer.ui import details

    view = st.session_state.get(DRAWN) or current_view(ag)
    nodes = diagram.view_nodes(ag, level=view["level"], expand=view["expand"], rollup=view["rollup"])
    details.render(ag, nodes.get(name), name, on_expand=open_box, on_clear=_clear)


def _reference(config: ResNetConfig, ag: AnnotatedGraph, preset_name: str) -> None:
    p = PRESETS[preset_name]
    changed = diff_fields(config, p.config)
    with st.container(border=True):
        st.markdown(f"**Reference · {p.name}**")
        source = f"[{p.source}]({p.url})" if p.url else p.source
        st.caption(f"{source} · {p.dataset}")
        paper_params = fmt.count(p.reported_params) if p.reported_params else "not stated"
        gap = ""
        if p.reported_params and not changed:
            gap = f" ({(ag.total_params - p.reported_params) / p.reported_params:+.1%})"
        err = f"{p.reported_error:g} %" if p.reported_error is not None else "not stated"
        st.markdown(
            f"**Parameters** · ours {fmt.count(ag.total_params)}, reference {paper_params}{gap}  \n"
            f"**Depth** · ours {ag.depth}, reference {p.config.resolved_depth}  \n"
            f"**Test error** · reference {err} (train yours in the *Train* tab)"
        )
        if changed:
            names = ", ".join("input" if c == "input_shape" else c for c in changed)
            st.caption(f"You changed {names}: the reference describes the unchanged preset.")
        if p.notes:
            with st.expander("How this preset settles open choices"):
                st.caption(p.notes)


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Architecture tab."""
    banner(ag)
    _metrics(ag)
    if st.session_state.get(MODE) not in MODES:
        st.session_state[MODE] = "diagram"
    mode = st.segmented_control("Show", list(MODES), key=MODE, format_func=MODES.get,
                                label_visibility="collapsed") or "diagram"
    if mode == "compare":
        from explorer.ui import netcompare

        with common.guard("compare view"):
            netcompare.render(config, ag, preset)
        return
    selected = None
    with common.guard("diagram"):
        selected = _diagram(config, ag)
    left, right = st.columns([0.5, 0.5], gap="medium")
    with left:
        _reference(config, ag, preset)
    with right, st.expander("What am I looking at?", expanded=not selected):
        st.markdown(EXPLAINER)
