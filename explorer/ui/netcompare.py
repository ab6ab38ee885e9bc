"""Compare networks: the current network beside a second one, in two synced viewers, with their differences.

Both sides are drawn with the Architecture tab's view options; boxes are matched by name (`explorer.diff`):
a box whose layers exist only on one side is coloured "only", one whose layers differ in op, shape or
parameters "changed".
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import streamlit as st

from explorer.annotate import AnnotatedGraph
from explorer.config import ConfigError, ResNetConfig
from explorer.presets import PRESETS
from explorer.ui import common

OTHER = "cmp_other"
OTHER_PRESET = "cmp_preset"
OTHER_LINK = "cmp_link"
CHOICES = {
    "plain": "its plain twin (no shortcuts)",
    "preset": "its unchanged preset",
    "version": "the other version (v1 ↔ v2)",
    "block": "the other block (basic ↔ bottleneck)",
    "other": "another preset",
    "link": "a shared link",
}
MAX_LINK_CHARS = 2000


def second_config(choice: str, config: ResNetConfig, preset: str, *, other: str | None = None,
                  link: str | None = None) -> tuple[ResNetConfig, str, list[str]]:
    """The network to compare with, its title and any warnings (a link whose settings were snapped).

    Raises:
        ConfigError: The choice has no counterpart (e.g. no other block for this stem) or the link is not one.
    """
    from explorer.teaching import counterpart

    if choice == "plain":
        return config.replace(shortcut="none"), "plain twin (no shortcuts)", []
    if choice == "preset":
        return PRESETS[preset].config, f"{preset} (unchanged)", []
    if choice in ("version", "block"):
        b = counterpart(config, choice)
        what = f"v{b.version}" if choice == "version" else f"{b.block} blocks"
        return b, f"the same network, {what}", []
    if choice == "other":
        name = other if other in PRESETS else preset
        return PRESETS[name].config, name, []
    if choice == "link":
        from explorer.ui.urlstate import parse_query

        text = (link or "").strip()
        if not text:
            raise ConfigError("link", "no link given", "paste a link copied from this app's address bar")
        if len(text) > MAX_LINK_CHARS:
            raise ConfigError("link", f"the link is longer than {MAX_LINK_CHARS:,} characters",
                              "paste the link from the address bar")
        query = urlsplit(text).query if "?" in text or "://" in text else text.lstrip("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if "preset" not in params:
            raise ConfigError("link", "the link names no preset", "paste a link copied from this app's address bar")
        b, name, warnings = parse_query(params)
        return b, f"{name} from the link", warnings
    raise ConfigError("compare", f"unknown choice {choice!r}", f"choose one of: {', '.join(CHOICES)}")


def marks(ag: AnnotatedGraph, nodes: dict, names_only: set[str], names_changed: set[str]) -> dict[str, str]:
    """Colour each box by its layers: "only" when all of them exist on one side only, "changed" when one differs."""
    out: dict[str, str] = {}
    for node_id, node in nodes.items():
        members = set(node.members) or {node_id}
        if members & names_changed:
            out[node_id] = "changed"
        elif members and members <= names_only:
            out[node_id] = "only"
        elif members & names_only:
            out[node_id] = "changed"
    return out


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the compare view."""
    from explorer import diagram
    from explorer.diff import diff
    from explorer.ui import classroom, viewer
    from explorer.ui.architecture import current_view, shape_key

    ss = st.session_state
    ss.setdefault(OTHER, "plain")
    c1, c2 = st.columns([0.45, 0.55], vertical_alignment="bottom")
    choice = c1.selectbox("Compare with", list(CHOICES), key=OTHER, format_func=CHOICES.get)
    other = link = None
    if choice == "other":
        ss.setdefault(OTHER_PRESET, "resnet56" if preset != "resnet56" else "resnet20")
        other = c2.selectbox("Preset", list(PRESETS), key=OTHER_PRESET)
    elif choice == "link":
        link = c2.text_input("Link", key=OTHER_LINK, placeholder="http://…/?preset=resnet56&shortcut=B",
                             max_chars=MAX_LINK_CHARS)
    try:
        b_config, b_title, warnings = second_config(choice, config, preset, other=other, link=link)
        b_ag = common.annotated(b_config.to_json())
    except ConfigError as exc:
        st.info(f"{exc.message[0].upper() + exc.message[1:]}. {exc.hint[0].upper() + exc.hint[1:]}.",
                icon=":material/compare_arrows:")
        return
    for w in warnings:
        st.caption(f"The link had settings that did not fit — {w}.")
    view = current_view(ag)
    if view["level"] == "layer" and max(len(ag.graph), len(b_ag.graph)) > diagram.LAYER_NODE_LIMIT:
        view = {**view, "level": "block"}
    d = diff(ag, b_ag)
    only_a, only_b = set(d.only_a), set(d.only_b)
    changed = {c.name for c in d.changed}
    panes = []
    for pid, (cfg, side, title, only) in zip("ab", ((config, ag, f"A · {preset} · ResNet-{ag.depth}", only_a),
                                                    (b_config, b_ag, f"B · {b_title} · ResNet-{b_ag.depth}", only_b)),
                                             strict=True):
        dot = common.dot_source(cfg.to_json(), **view)
        nodes = diagram.view_nodes(side, level=view["level"], expand=view["expand"], rollup=view["rollup"])
        panes.append(viewer.Pane(pid, title, dot, shape_key(cfg, view), marks(side, nodes, only, changed)))
    viewer.show(panes, key="compare_viewer", selected=ss.get(common.NODE),
                present=classroom.current(ss).present, on_select=lambda name: ss.__setitem__(common.NODE, name))
    st.caption("Amber: the box differs in shape, parameters or operation · blue (A) / violet (B): only on that side. "
               "Pan and zoom move both; a click selects the box on both sides. The view options are the "
               "*Diagram*'s.")
    _differences(d)
    name = ss.get(common.NODE)
    if name:
        _selected_pair(ag, b_ag, view, name)


def _differences(d) -> None:
    from explorer import fmt

    if d.same:
        st.success("The two networks are the same, layer by layer.", icon=":material/check_circle:")
        return
    t = d.totals
    st.markdown(f"**{len(d.changed)} changed, {len(d.only_a)} only in A, {len(d.only_b)} only in B** · params "
                f"{fmt.count(t['params'][0])} → {fmt.count(t['params'][1])} · MACs {fmt.count(t['macs'][0])} → "
                f"{fmt.count(t['macs'][1])}")
    with st.expander("Differences, layer by layer", expanded=False):
        st.code("\n".join(d.lines(limit=60)), language=None)


def _selected_pair(a: AnnotatedGraph, b: AnnotatedGraph, view: dict, name: str) -> None:
    from explorer import diagram
    from explorer.ui import details

    cols = st.columns(2)
    for col, side, pid in zip(cols, (a, b), "ab", strict=True):
        nodes = diagram.view_nodes(side, level=view["level"], expand=view["expand"], rollup=view["rollup"])
        with col:
            details.render(side, nodes.get(name), name, on_expand=None,
                           on_clear=lambda: st.session_state.__setitem__(common.NODE, None), key=f"cmp_{pid}")
