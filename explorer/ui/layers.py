"""The Layers tab: the per-layer table of `explorer.tables`, filterable by stage, role and name, with CSV download."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import fmt
from explorer.annotate import AnnotatedGraph
from explorer.config import ResNetConfig
from explorer.graph import ROLES
from explorer.ui import common

STAGES = "layers_stages"
ROLE_FILTER = "layers_roles"
NAME = "layers_name"

COLUMNS = {
    "name": st.column_config.TextColumn("name", width="medium"),
    "type": st.column_config.TextColumn("type"),
    "stage": st.column_config.NumberColumn("stage", format="%d", width="small"),
    "block": st.column_config.NumberColumn("block", format="%d", width="small"),
    "role": st.column_config.TextColumn("role", width="small"),
    "output_shape": st.column_config.TextColumn("output H×W×C"),
    "params": st.column_config.NumberColumn("params", format="localized"),
    "trainable_params": st.column_config.NumberColumn("trainable", format="localized",
                                                      help="Parameters the optimizer updates (not BN statistics, not frozen layers)"),
    "frozen": st.column_config.CheckboxColumn("frozen", width="small", help="Fine-tuning: this layer is not trained"),
    "macs": st.column_config.NumberColumn("MACs", format="localized"),
    "receptive_field": st.column_config.NumberColumn("RF", format="%d px",
                                                      help="Input pixels (per side) that can influence one output pixel"),
    "jump": st.column_config.NumberColumn("jump", format="%d", help="Input pixels between neighbouring output pixels"),
    "memory_bytes": st.column_config.NumberColumn("memory (bytes)", format="localized",
                                                  help="float32 output of this layer for one image"),
}


# Shown in this order (the block is in the name); `block`, `trainable_params` and `jump` stay in the CSV.
SHOWN = ["name", "type", "stage", "role", "output_shape", "params", "macs", "receptive_field", "memory_bytes"]
SHOWN_FROZEN = [*SHOWN[:6], "trainable_params", "frozen", *SHOWN[6:]]
"""The columns when layers are frozen (fine-tuning): trainable params and the frozen flag beside the params."""


def stage_label(stage: int, stages: int) -> str:
    """'stem', 'stage 2' or 'head' for a node's stage number."""
    if stage == 0:
        return "stem"
    if stage > stages:
        return "head"
    return f"stage {stage}"


def filter_layers(df: pd.DataFrame, *, stages: list[int] | None, roles: list[str] | None, name: str = "") -> pd.DataFrame:
    """Rows of the layer table in the given stages (numbers) and roles whose name contains `name`."""
    mask = pd.Series(True, index=df.index)
    if stages:
        mask &= df["stage"].isin(stages)
    if roles:
        mask &= df["role"].isin(roles)
    if name.strip():
        mask &= df["name"].str.contains(name.strip(), case=False, regex=False)
    return df[mask]


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Layers tab (`preset` is unused: every tab has this signature)."""
    df = common.layer_frame(config.to_json())
    stage_numbers = list(range(0, config.stages + 2))
    ss = st.session_state
    if any(s not in stage_numbers for s in ss.get(STAGES, [])):
        ss[STAGES] = []
    c1, c2, c3 = st.columns([1.3, 1.3, 1])
    c1.multiselect("Stages", stage_numbers, key=STAGES, format_func=lambda s: stage_label(s, config.stages),
                   placeholder="all stages")
    c2.multiselect("Roles", [r for r in ROLES if r != "input"] + ["input"], key=ROLE_FILTER, placeholder="all roles",
                   help="main: the residual path · shortcut: the skip connection's own layers · stem / head: before and after the stages")
    c3.text_input("Name contains", key=NAME, placeholder="e.g. block1_conv")
    view = filter_layers(df, stages=ss.get(STAGES), roles=ss.get(ROLE_FILTER), name=ss.get(NAME, ""))
    st.caption(
        f"**{len(view):,}** of {len(df):,} layers · params {fmt.count(int(view['params'].sum()))} "
        f"(network {fmt.count(ag.total_params)}) · MACs {fmt.count(int(view['macs'].sum()))} · "
        f"activations {fmt.binary_bytes(int(view['memory_bytes'].sum()))} per image"
        + (f" · trainable {fmt.count(int(view['trainable_params'].sum()))}, {int(view['frozen'].sum()):,} layers frozen"
           if config.freeze else "")
    )
    broken = {d.node for d in ag.diagnostics}
    shown = view
    if broken:
        st.caption("Rows with a problem are marked ⚠ (see the Debug tab).")
        shown = view.assign(name=[f"⚠ {n}" if n in broken else n for n in view["name"]])
    st.dataframe(shown, hide_index=True, width="stretch", height=min(38 + 35 * len(view), 560), column_config=COLUMNS,
                 column_order=SHOWN_FROZEN if config.freeze else SHOWN)
    stem = f"{common.current_preset()}_layers"
    d1, d2, _ = st.columns([1, 1, 2])
    d1.download_button("Download CSV (shown rows)", lambda: view.to_csv(index=False), file_name=f"{stem}_filtered.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore", width="stretch")
    d2.download_button("Download CSV (all layers)", lambda: df.to_csv(index=False), file_name=f"{stem}.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore", width="stretch")
