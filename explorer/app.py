"""Streamlit entry point: `streamlit run explorer/app.py` (sidebar → config → totals and layer table)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `streamlit run explorer/app.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig, valid_depths
from explorer.presets import DEFAULT_PRESET, PRESETS
from explorer.tables import human, human_bytes, layer_table


@st.cache_data(max_entries=64, show_spinner=False)
def annotated(config_json: str) -> AnnotatedGraph:
    """The annotated graph of a config (cached by its JSON)."""
    return build(ResNetConfig.from_json(config_json))


def sidebar() -> ResNetConfig:
    """Draw the sidebar; return the config it describes."""
    st.sidebar.title("ResNet Explorer")
    name = st.sidebar.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(DEFAULT_PRESET))
    preset = PRESETS[name]
    st.sidebar.caption(f"{preset.source}")
    base = preset.config
    depths = valid_depths(base.block, base.stages, limit=max(1202, base.resolved_depth))
    if base.stages == 4:
        depths = [d for d in depths if d in (18, 34, 50, 101, 152, 200) or d == base.resolved_depth]
    depth = st.sidebar.select_slider("Depth", options=depths, value=base.resolved_depth)
    return base.replace(depth=depth, blocks=None)


def main() -> None:
    """The page."""
    st.set_page_config(page_title="ResNet Explorer", page_icon="🧱", layout="wide")
    try:
        config = sidebar()
        ag = annotated(config.to_json())
    except ConfigError as exc:
        st.error(f"**{exc.field}**: {exc.message}\n\n{exc.hint}")
        return
    cols = st.columns(5)
    cols[0].metric("Depth", ag.depth)
    cols[1].metric("Parameters", human(ag.total_params), help=f"{ag.total_params:,} in all")
    cols[2].metric("Trainable", human(ag.trainable_params), help=f"{ag.trainable_params:,}; non-trainable {ag.non_trainable_params:,}")
    cols[3].metric("MACs / image", human(ag.macs))
    cols[4].metric("Activations / image", human_bytes(ag.activation_bytes))
    for d in ag.diagnostics:
        st.error(f"**{d.node}** — {d.message}\n\nFix: {d.hint}")
    st.dataframe(layer_table(ag), hide_index=True, use_container_width=True)


main()
