"""The details panel beside the diagram: what the clicked box is, read from the annotated graph.

Every number comes from `explorer.tables.layer_records` (the Layers table's rows) and the graph's diagnostics
(the Debug tab's), so the panel, the table and the debugger always agree.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from explorer import fmt
from explorer.annotate import AnnotatedGraph
from explorer.diagram import ViewNode, op_label

KIND_NAMES = {"stage": "stage", "block": "residual block", "rolled": "run of identical blocks", "stem": "stem",
              "head": "head", "input": "input", "output": "output", "add": "add", "layer": "layer"}


def summary(ag: AnnotatedGraph, node: ViewNode) -> dict:
    """The panel's facts for one box: shapes in and out, totals of its layers, its diagnostics.

    Args:
        ag: The annotated graph.
        node: The box (from `explorer.diagram.view_nodes`).

    Returns:
        {"name", "kind", "what", "inputs": [(name, shape)], "output_shape", "params", "trainable",
        "non_trainable", "frozen", "macs", "memory_bytes", "receptive_field", "jump", "layers", "diagnostics"}.
    """
    from explorer.tables import layer_records

    members = [m for m in node.members if m in ag.graph] or ([node.id] if node.id in ag.graph else [])
    wanted = set(members)
    records = [r for r in layer_records(ag) if r["name"] in wanted]
    first, last = (ag.graph[members[0]], ag.graph[members[-1]]) if members else (None, None)
    inside = wanted
    if first is None:
        inputs: list[tuple[str, tuple]] = []
    else:
        sources = [i for m in members for i in ag.graph[m].inputs if i not in inside]
        inputs = [(i, tuple(ag.info[i].shape)) for i in dict.fromkeys(sources) if i in ag.info]
    single = len(members) == 1 and first is not None
    out = {
        "name": node.id,
        "kind": node.kind,
        "what": op_label(first) if single else KIND_NAMES.get(node.kind, node.kind),
        "inputs": inputs,
        "output_shape": tuple(ag.info[last.name].shape) if last is not None else None,
        "params": sum(r["params"] for r in records),
        "trainable": sum(r["trainable_params"] for r in records),
        "non_trainable": sum(r["params"] - r["trainable_params"] for r in records),
        "frozen": bool(records) and all(r["frozen"] for r in records),
        "macs": sum(r["macs"] for r in records),
        "memory_bytes": sum(r["memory_bytes"] for r in records),
        "receptive_field": records[-1]["receptive_field"] if records else None,
        "jump": records[-1]["jump"] if records else None,
        "layers": members,
        "diagnostics": [d for d in ag.diagnostics if d.node in wanted],
    }
    return out


def render(ag: AnnotatedGraph, node: ViewNode | None, name: str, *, on_expand: Callable[[str], None] | None,
           on_clear: Callable[[], None], key: str = "details") -> None:
    """Draw the panel for the selected box (or say that the name is not in this view)."""
    with st.container(border=True, key=f"{key}_panel"):
        st.markdown(f"**`{name}`**")
        if node is None:
            st.caption("This box is not in the current view. Choose another *View* or *Expand*, or click a box.")
            st.button("Clear the selection", key=f"{key}_clear", on_click=on_clear, width="stretch")
            return
        facts = summary(ag, node)
        st.caption(facts["what"] + (" · frozen" if facts["frozen"] else ""))
        lines = []
        for src, shape in facts["inputs"]:
            lines.append(f"**in** {fmt.shape(shape)} :gray[from `{src}`]")
        if facts["output_shape"] is not None:
            lines.append(f"**out** {fmt.shape(facts['output_shape'])}")
        params = facts["params"]
        if params:
            split = f"{fmt.count(facts['trainable'])} trainable, {fmt.count(facts['non_trainable'])} not"
            lines.append(f"**params** {params:,} :gray[({split})]")
        else:
            lines.append("**params** 0")
        lines.append(f"**MACs** {fmt.count(facts['macs'])} :gray[per image]")
        if facts["receptive_field"] is not None:
            lines.append(f"**receptive field** {facts['receptive_field']}×{facts['receptive_field']} "
                         f":gray[(stride {facts['jump']})]")
        lines.append(f"**memory** {fmt.binary_bytes(facts['memory_bytes'])} :gray[activations per image]")
        st.markdown("  \n".join(lines))
        if len(facts["layers"]) > 1:
            st.caption(f"{len(facts['layers'])} layers: " + ", ".join(f"`{n}`" for n in facts["layers"][:6])
                       + (" …" if len(facts["layers"]) > 6 else ""))
            target = _expand_target(node)
            if target and on_expand is not None:
                st.button("Open at layer level", key=f"{key}_open", on_click=on_expand, args=(target,),
                          icon=":material/unfold_more:", width="stretch")
        for i, d in enumerate(facts["diagnostics"]):
            _diagnostic(ag, d, f"{key}_{i}")
        st.button("Clear the selection", key=f"{key}_clear", on_click=on_clear, icon=":material/close:",
                  width="stretch")


def _expand_target(node: ViewNode) -> str | None:
    """The stage or block the Expand control opens for a box, or None (stem, head, single layers)."""
    if node.kind in ("stage", "block"):
        return node.id
    if node.kind == "rolled":
        return node.id.split("_to_")[0]
    return None


def _diagnostic(ag: AnnotatedGraph, d, key: str) -> None:
    from explorer.ui import common
    from explorer.ui.debug import apply_fix, shape_labels

    icon = ":material/error:" if d.severity == "error" else ":material/warning:"
    text = d.message.replace(d.node, f"`{d.node}`", 1) if d.message.startswith(d.node) else d.message[0].upper() + d.message[1:]
    if d.shapes:
        labels = shape_labels(ag, d)
        text += "  \n" + " · ".join(f"{label} {fmt.shape(s)}" for label, s in zip(labels, d.shapes, strict=True))
    text += f"  \n**Fix:** {d.hint}."
    (st.error if d.severity == "error" else st.warning)(text, icon=icon)
    for j, fix in enumerate(d.fixes):
        st.button(f"Apply: {common.fix_label(fix)}", key=f"{key}_fix_{j}", on_click=apply_fix, args=(fix,),
                  type="primary" if j == 0 else "secondary", width="stretch")
