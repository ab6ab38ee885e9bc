"""The Architecture tab: totals, the Graphviz diagram with its view controls, and the preset's reference beside ours."""

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
  the **Debug** tab says why and offers fixes. Hover a box for its layers and shapes.
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
    c = st.columns([1.15, 1.2, 0.95, 1, 1], vertical_alignment="bottom")
    c[0].selectbox("View", [AUTO, "stage", "block", "layer"], key=LEVEL,
                   format_func=lambda v: f"{default_level} (auto)" if v == AUTO else v,
                   help="stage: one box per stage · block: one per residual block · layer: every layer")
    c[1].selectbox("Expand", options, key=EXPAND, help="Draw one stage or block at layer level, the rest as chosen.")
    c[2].selectbox("Direction", list(RANKDIR_LABELS), key=RANKDIR, format_func=RANKDIR_LABELS.get)
    c[3].selectbox("Colour by", list(COLOR_LABELS), key=COLOR, format_func=COLOR_LABELS.get,
                   help="Fill boxes by their cost: light = cheap, dark = expensive.")
    with c[4]:
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


def _diagram(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    try:
        from explorer import diagram
    except ImportError:  # pragma: no cover - the diagram module ships with the app
        st.info("The diagram module is not installed yet; the totals and tables still work.")
        return
    view = _controls(ag, diagram.default_level(ag))
    key = config.to_json()
    try:
        dot = common.dot_source(key, **view)
    except diagram.DiagramError as exc:
        st.info(f"{exc.message}.  \n→ {exc.hint}. Showing the {diagram.default_level(ag)} view instead.", icon=":material/zoom_in:")
        view["level"] = diagram.default_level(ag)
        dot = common.dot_source(key, **view)
    st.session_state["_dot_nodes"] = dot.count("[label=")
    with st.container(key=f"diagram_{abs(hash(dot)) % 10**12}"):  # a new element per drawing: no diff with the old SVG
        st.graphviz_chart(dot, width="stretch")


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
    left, right = st.columns([0.75, 0.25], gap="medium")
    with left:
        with common.guard("diagram"):
            _diagram(config, ag)
    with right:
        _reference(config, ag, preset)
        with st.expander("What am I looking at?", expanded=True):
            st.markdown(EXPLAINER)
