"""The Debug tab: every shape mismatch with both shapes, why and how to fix it (one click), and 'break it' examples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from explorer import fmt
from explorer.annotate import AnnotatedGraph, Diagnostic
from explorer.config import ConfigError, ResNetConfig, convs_per_block, nearest_depths
from explorer.presets import PRESETS
from explorer.ui import common
from explorer.ui.urlstate import merge


@dataclass(frozen=True)
class BreakExample:
    """A one-click broken network for teaching.

    Attributes:
        key: Stable id (also the button key).
        title: What breaks, in a few words.
        story: Why it breaks, for the class.
        preset: The preset it starts from.
        changes: The config changes that break it.
    """

    key: str
    title: str
    story: str
    preset: str
    changes: Mapping[str, Any] = field(default_factory=dict)


BREAK_EXAMPLES = (
    BreakExample(
        "identity", "Identity shortcut across a stride",
        "ResNet-20 with plain identity shortcuts. Where a stage halves the map and doubles the channels, the add "
        "gets 16×16×32 from the main path but 32×32×16 from the shortcut.",
        "resnet20", {"shortcut": "identity"},
    ),
    BreakExample(
        "depth", "A depth that breaks 9n+2",
        "Pre-activation ResNet-164 asked for depth 100. Bottleneck blocks have 3 convs, so 3 equal stages only "
        "give 9n+2 layers: 92 or 101, not 100.",
        "preact-resnet164", {"depth": 100},
    ),
    BreakExample(
        "strides", "Too many stride-2 steps for 32×32",
        "The ImageNet stem (a stride-2 conv and a stride-2 pool) plus five stages on a CIFAR image: by the last "
        "stage the map is 1×1 and there is nothing left to downsample.",
        "resnet20", {"stem": "imagenet", "stages": 5, "depth": 22},
    ),
    BreakExample(
        "flatten", "Flatten head on a 16×16 input",
        "The Keras example's AveragePooling2D(8) → Flatten head on 16×16 images: the network ends at 4×4, "
        "smaller than the 8×8 pool window.",
        "keras-resnet20v1", {"input_shape": (16, 16, 3)},
    ),
    BreakExample(
        "shrink", "Zero-padding cannot shrink",
        "Widths 64 → 32 → 16 with option-A shortcuts: zero-padding can add channels to the shortcut, never take "
        "them away.",
        "resnet20", {"widths": (64, 32, 16)},
    ),
)


def depth_fixes(config: ResNetConfig, depth: int) -> list[dict]:
    """Fix buttons for a depth that breaks the rule: the nearest valid depths, and an explicit split when one exists."""
    below, above = nearest_depths(config.block, config.stages, depth)
    fixes: list[dict] = [{"depth": d} for d in (below, above) if d is not None]
    per = convs_per_block(config.block)
    if depth > 2 and (depth - 2) % per == 0 and (depth - 2) // per >= config.stages:
        total = (depth - 2) // per
        blocks = [total // config.stages + (1 if i < total % config.stages else 0) for i in range(config.stages)]
        fixes.append({"blocks": blocks})
    return fixes


def shape_labels(ag: AnnotatedGraph, d: Diagnostic) -> list[str]:
    """What each of a diagnostic's shapes is: main path / shortcut for an add, input / output otherwise."""
    node = ag.graph[d.node] if d.node in ag.graph else None
    if node is not None and node.op == "add" and len(d.shapes) == 2:
        return ["main path", "shortcut"]
    if len(d.shapes) == 2:
        return ["in", "out"]
    return ["input map"] * len(d.shapes)


# ----------------------------------------------------------------------------------------- callbacks
def apply_fix(fix: Mapping[str, Any]) -> None:
    """Apply a fix to the current config (snapping what does not fit, with a notice)."""
    from explorer.ui.sidebar import load_widgets

    config = common.current_config()
    try:
        new, notes = merge(config, dict(fix), snap=True)
    except ConfigError as exc:
        common.reject(exc)
        return
    load_widgets(new)
    st.session_state.pop(common.REJECTED, None)
    common.notify(new, [f"Applied {common.fix_label(fix)}.", *notes] if notes else [])


def break_it(example: BreakExample) -> None:
    """Load a broken example (a refused depth is kept as a rejected change with its fixes)."""
    from explorer.ui.sidebar import load_widgets

    base = PRESETS[example.preset].config
    st.session_state.pop(common.NOTICES, None)
    try:
        config, _ = merge(base, dict(example.changes), snap=False)
    except ConfigError as exc:
        load_widgets(base, preset=example.preset)
        fixes = depth_fixes(base, int(example.changes["depth"])) if exc.field == "depth" and "depth" in example.changes else []
        common.reject(exc, fixes)
    else:
        load_widgets(config, preset=example.preset)
        st.session_state.pop(common.REJECTED, None)
    st.session_state[common.TAB] = "Debug"


def _show_in_diagram(node: str) -> None:
    from explorer.ui.architecture import EXPAND, MODE

    parts = node.split("_")
    if len(parts) >= 2 and parts[0].startswith("stage") and parts[1].startswith("block"):
        st.session_state[EXPAND] = f"{parts[0]}_{parts[1]}"
    st.session_state[common.NODE] = node
    st.session_state[MODE] = "diagram"
    st.session_state[common.TAB] = "Architecture"


# ----------------------------------------------------------------------------------------- drawing
def _rejected() -> bool:
    """Show a refused change with its fix buttons; True when there is one."""
    rec = common.live(common.REJECTED)
    if not rec:
        return False
    with st.container(border=True):
        st.markdown(":red-badge[REFUSED] **This change could not be applied**")
        st.markdown(f"**{rec['field']}**: {rec['message']}.")
        if rec.get("hint"):
            st.markdown(f"**Fix:** {rec['hint']}.")
        if rec.get("fixes"):
            cols = st.columns(len(rec["fixes"]) + 1)
            for j, fix in enumerate(rec["fixes"]):
                cols[j].button(f"Use {common.fix_label(fix)}", key=f"refused_fix_{j}", on_click=apply_fix, args=(fix,),
                               type="primary" if j == 0 else "secondary", width="stretch")
        st.caption("The diagram still shows the last network that fitted.")
    return True


def _diagnostic(ag: AnnotatedGraph, d: Diagnostic, i: int) -> None:
    with st.container(border=True):
        badge = ":red-badge[ERROR]" if d.severity == "error" else ":orange-badge[WARNING]"
        st.markdown(f"{badge} at **`{d.node}`**")
        message = d.message.replace(d.node, f"`{d.node}`", 1) if d.message.startswith(d.node) else d.message[0].upper() + d.message[1:]
        st.markdown(message + ".")
        if d.shapes:
            labels = shape_labels(ag, d)
            sep = "  ≠  " if len(d.shapes) == 2 and ag.graph[d.node].op == "add" else "  →  "
            st.markdown("##### " + sep.join(f":gray[{label}] {fmt.shape(s)}" for label, s in zip(labels, d.shapes, strict=True)))
        st.markdown(f"**Fix:** {d.hint}.")
        cols = st.columns(max(len(d.fixes), 1) + 1)
        for j, fix in enumerate(d.fixes):
            cols[j].button(f"Apply: {common.fix_label(fix)}", key=f"fix_{i}_{j}", on_click=apply_fix, args=(fix,),
                           type="primary" if j == 0 else "secondary", width="stretch")
        cols[-1].button("Show in diagram", key=f"show_{i}", on_click=_show_in_diagram, args=(d.node,), width="stretch")


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Debug tab (`preset` is unused: every tab has this signature)."""
    refused = _rejected()
    if ag.ok and not refused:
        st.success("**Every shape fits.** Each add gets two equal shapes and every map keeps at least one pixel. "
                   "Try a *break it* example below to see what a mismatch looks like.", icon=":material/check_circle:")
    elif not ag.ok:
        errors = len(ag.errors)
        warnings = len(ag.diagnostics) - errors
        parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
        st.markdown(f"#### {', '.join(parts)}")
        st.caption("Errors stop Keras from building the model; warnings build but make little sense.")
        for i, d in enumerate(ag.diagnostics):
            _diagnostic(ag, d, i)
    st.markdown("#### Break it")
    st.caption("One click loads a classic mistake (from its preset) so you can see how it shows and how it is fixed.")
    cols = st.container(key="break_examples").columns(len(BREAK_EXAMPLES))  # (a narrow page wraps them: app.CSS)
    for col, ex in zip(cols, BREAK_EXAMPLES, strict=True):
        with col.container(border=True, height="stretch"):
            st.markdown(f"**{ex.title}**")
            st.button("Break it", key=f"break_{ex.key}", on_click=break_it, args=(ex,), icon=":material/bolt:", width="stretch")
            st.caption(ex.story)
