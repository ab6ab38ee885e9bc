"""The Lessons tab: gradient flow (residual vs plain twin), receptive field along depth, block anatomy side by side."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.teaching import anatomy, anatomy_dot, output_centre, receptive_box, ribbon
from explorer.teaching_charts import (
    gradient_flow_figure,
    load_sample,
    receptive_field_figure,
    ribbon_figure,
    sample_names,
)

GRADFLOW_LIMIT = 600  # layers; beyond this one pass takes too long for a lesson on a CPU
RESULTS = "_gradflow_results"


def render_lessons_tab(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    """Draw the three lessons for the configured network."""
    st.markdown("Three short lessons on **why skip connections matter**, measured on the network you configured.")
    flow, field, block = st.tabs(["Gradient flow", "Receptive field", "Block anatomy"])
    with flow:
        _gradient_flow(config, ag)
    with field:
        _receptive_field(ag)
    with block:
        _anatomy(config)


def _gradient_flow(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    st.caption(
        "One forward and backward pass at initialisation, before any training. Left: how large the gradient that "
        "reaches each conv's weights is. Right: how spread out each block's output is. Flat curves mean the signal "
        "travels through the whole depth; curves that climb or fall by orders of magnitude mean the first layers get "
        "a very different learning signal from the last. The dashed line is the *plain twin*: the same network "
        "with every skip connection removed."
    )
    cols = st.columns(4)
    twin = cols[0].toggle("Plain twin", value=config.shortcut != "none", disabled=config.shortcut == "none",
                          help="Also measure the same network without skip connections.")
    no_bn = cols[1].toggle("Without BatchNorm", value=not config.batch_norm)
    zero = cols[2].toggle("Zero-init residual", value=config.zero_init,
                          help="The last BN γ (v1) or last conv (v2) of each block starts at 0: every block starts "
                          "as the identity.")
    size = cols[3].select_slider("Batch", options=[8, 16, 32, 64, 128], value=32)
    measured = config.replace(batch_norm=not no_bn, zero_init=zero)
    if build(measured).errors:
        st.warning("This network does not fit together (see the Debug tab), so there is nothing to measure yet.")
        return
    if len(ag.graph) > GRADFLOW_LIMIT:
        st.info(f"This network has {len(ag.graph):,} layers; a gradient-flow pass is offered up to "
                f"{GRADFLOW_LIMIT} layers so that it stays a matter of seconds. Pick a shallower depth.")
        return
    key = (measured.to_json(), twin, size)
    results = st.session_state.setdefault(RESULTS, {})
    if st.button("Measure gradient flow", type="primary", help="Builds the Keras model(s); takes a few seconds."):
        from explorer import gradflow

        with st.spinner("Building the network and running one forward/backward pass…"):
            try:
                batch = gradflow.load_batch(measured, size=size)
                results.clear()  # keep one result per session: they hold small lists, but no need to pile up
                results[key] = gradflow.report(measured, batch, twin=twin)
            except ConfigError as exc:
                st.error(f"{exc.message}. {exc.hint}")
                return
    result = results.get(key)
    if result is None:
        st.info("Press **Measure gradient flow** to run the pass for the current settings.")
        return
    st.plotly_chart(gradient_flow_figure(result), use_container_width=True)
    from explorer.gradflow import summary_ratio

    lines = [f"**{n['label']}**: first-conv gradient is {summary_ratio(n):.3g}× the last conv's; "
             f"loss at initialisation {n['loss']:.2f}" for n in result["networks"]]
    st.markdown("  \n".join(lines))
    st.caption(f"Batch: {result['source']}.")


def _receptive_field(ag: AnnotatedGraph) -> None:
    rows = ribbon(ag)
    st.caption(
        "How far each layer can see. The **receptive field** is the square of input pixels that one output pixel "
        "depends on; it grows by (kernel − 1) × stride with every conv. The **effective stride** doubles at every "
        "downsampling step, while the map shrinks and the channels grow."
    )
    st.plotly_chart(ribbon_figure(rows), use_container_width=True)
    if tuple(ag.config.input_shape[2:]) != (3,):
        return
    names = [r["name"] for r in rows]
    left, right = st.columns([1, 1])
    with left:
        layer = st.selectbox("Layer", names, index=min(len(names) - 1, len(names) // 2))
        info = ag.info[layer]
        h, w = info.shape[:2]
        row = st.slider("Output row", 0, max(h - 1, 0), h // 2, disabled=h <= 1)
        col = st.slider("Output column", 0, max(w - 1, 0), w // 2, disabled=w <= 1)
        image_name = st.selectbox("Image", sample_names(), index=sample_names().index("cat"))
        top, left_px, bottom, right_px = receptive_box(ag, layer, row=row, col=col)
        st.markdown(
            f"**{layer}** sees a {info.rf}×{info.rf} window (clipped to {bottom - top + 1}×{right_px - left_px + 1} "
            f"by the image border); neighbouring output pixels are {info.jump} input pixels apart."
        )
    with right:
        image = load_sample(image_name)
        if image.shape[:2] != tuple(ag.config.input_shape[:2]):
            from PIL import Image

            size = (ag.config.input_shape[1], ag.config.input_shape[0])
            image = np.asarray(Image.fromarray(image).resize(size, Image.NEAREST))
        centre = output_centre(ag, layer, row=row, col=col)
        fig = receptive_field_figure(image, (top, left_px, bottom, right_px), centre=centre,
                                     title=f"{image_name}: what {layer}[{row}, {col}] sees")
        st.plotly_chart(fig, use_container_width=False)


def _anatomy(config: ResNetConfig) -> None:
    axis = st.radio("Compare with", ["version", "block"], horizontal=True,
                    format_func=lambda a: "the other version (v1 ↔ v2)" if a == "version"
                    else "the other block (basic ↔ bottleneck)")
    try:
        pair = anatomy(config, axis)
    except ConfigError as exc:
        st.info(f"No counterpart for this network: {exc.message}. {exc.hint}")
        return
    st.caption(
        f"A typical block of your network (**{pair[0].title}**) beside the same block as **{pair[1].title}**. "
        "Yellow marks what differs; the dashed blue line is the shortcut. In v1 the ReLU comes *after* the add, "
        "so the identity path passes through a non-linearity; in v2 BN-ReLU move *before* each conv and the "
        "shortcut is a clean identity from block to block."
    )
    st.graphviz_chart(anatomy_dot(pair), use_container_width=False)
