"""The interactive diagram: a Streamlit component that lays DOT out in the browser and lets one pan, zoom, search and click.

The DOT still comes from `explorer.diagram` (one source for every view and for the CLI's `dot`). The browser
side lives in `explorer/frontend/` (TypeScript, built once into `explorer/static/diagram/`, committed and served
by the app itself through Streamlit's static file serving): Graphviz compiled to WebAssembly lays the graph out
in a web worker, so the page never freezes. A click on a layer comes back as the component's `selected`
state; a click on a stage or block as its `expand` trigger.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

NAME = "explorer_diagram"
ASSETS = Path(__file__).resolve().parents[1] / "static" / "diagram"
ASSET_PATH = "app/static/diagram/"
DEFAULT_HEIGHT = 640
STATIC_NODE_LIMIT = 600
"""Views larger than this are not sent to the static chart: `st.graphviz_chart` lays out on the page's own thread."""
MIN_HEIGHT = 360

# The loader is inline (Streamlit re-sends inline code with every rerun, so it stays tiny); the viewer
# module and its layout worker are files the browser fetches once and caches.
# The data travels as JSON bytes: Streamlit would otherwise import pandas to look for data frames in it.
LOADER = """
function decode(raw) {
  if (raw == null || typeof raw === "object" && !(raw instanceof ArrayBuffer) && !ArrayBuffer.isView(raw)) return raw;
  if (typeof raw === "string") return JSON.parse(raw);
  const bytes = raw instanceof ArrayBuffer ? new Uint8Array(raw) : new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  return JSON.parse(new TextDecoder().decode(bytes));
}
export default function (component) {
  let data;
  try {
    data = decode(component.data);
  } catch (err) {
    return Promise.reject(err);
  }
  const args = Object.assign({}, component, { data: data });
  const url = new URL(data.asset_base + "viewer.js", window.location.origin);
  if (data.asset_version) url.searchParams.set("v", data.asset_version);
  return import(url.href)
    .then((m) => m.mount(args))
    .catch((err) => {
      const root = component.parentElement;
      let box = root.querySelector(".explorer-diagram-failed");
      if (!box) {
        box = document.createElement("div");
        box.className = "explorer-diagram-failed";
        box.style.cssText = "padding:1rem;border:1px solid #e0a800;border-radius:.5rem;background:#fff8e1;";
        root.appendChild(box);
      }
      box.textContent = "The diagram viewer could not start (" + err + "). Reload the page; "
        + "if it persists, start the app from the project folder so that .streamlit/config.toml is read.";
    });
}
"""

_component = st.components.v2.component(NAME, js=LOADER)


@dataclass(frozen=True)
class Pane:
    """One diagram in the viewer: the DOT to lay out and how to mark it.

    Attributes:
        id: "a" (left or only) or "b" (right, in the compare view).
        title: Shown above the pane when there are two.
        dot: DOT source from `explorer.diagram.to_dot`.
        view_key: Same key as the last drawing → the viewer keeps its zoom and position (a recolour keeps the
            shape of the network); a new key → the initial view.
        marks: Node name → "changed" or "only" (the compare view's colouring).
    """

    id: str
    title: str
    dot: str
    view_key: str
    marks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """What the user did in the viewer since the last run."""

    selected: str | None
    expand: str | None


def view_key(*parts: Any) -> str:
    """A short key for the shape of a drawing: the same parts give the same key."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def unavailable() -> str | None:
    """Why the interactive viewer cannot run in this server, or None when it can."""
    if os.environ.get("EXPLORER_DIAGRAM", "").strip().lower() == "static":
        return "the server is set to draw static diagrams (EXPLORER_DIAGRAM=static)"
    if not (ASSETS / "viewer.js").is_file() or not (ASSETS / "layout-worker.js").is_file():
        return ("the viewer's built files are missing from explorer/static/diagram/ "
                "(build them with: npm --prefix explorer/frontend ci && npm --prefix explorer/frontend run build)")
    try:
        serving = bool(st.get_option("server.enableStaticServing"))
    except Exception:  # noqa: BLE001 - an unknown option in some Streamlit version: assume off
        serving = False
    if not serving:
        return ("the app was started without static file serving "
                "(start it from the project folder, or pass --server.enableStaticServing true)")
    return None


@functools.cache
def asset_version() -> str:
    """The built bundle's source hash (a new build → a new URL, so browsers do not keep an old viewer)."""
    try:
        return str(json.loads((ASSETS / "bundle.json").read_text(encoding="utf-8"))["source_sha256"])[:16]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def asset_base() -> str:
    """The URL path the viewer's files are served under, honouring `server.baseUrlPath`."""
    try:
        base = (st.get_option("server.baseUrlPath") or "").strip("/")
    except Exception:  # noqa: BLE001
        base = ""
    return "/" + (f"{base}/" if base else "") + ASSET_PATH


def show(panes: list[Pane], *, key: str, selected: str | None = None, present: bool = False,
         height: int = DEFAULT_HEIGHT, on_select: Callable[[str], None] | None = None,
         on_expand: Callable[[str], None] | None = None) -> Event:
    """Draw one or two panes in the viewer (or, when it cannot run, the static chart) and return what was clicked.

    Args:
        panes: One pane, or two side by side (synced by node name).
        key: The widget key (one per place the viewer appears).
        selected: The node to select and centre on (from `?node=` or Debug's "Show in diagram").
        present: Presentation mode: larger toolbar text and a higher legibility floor.
        height: Pixels for the whole component.
        on_select: Called with the node name when the user clicks a node (before the rerun draws the page).
        on_expand: Called with a stage or block name when the user clicks one to open it.
    """
    reason = unavailable()
    if reason is not None:
        st.caption(f"Static diagram: {reason}.")
        cols = st.columns(len(panes)) if len(panes) > 1 else [st.container()]
        for col, pane in zip(cols, panes, strict=True):
            with col:
                if len(panes) > 1:
                    st.markdown(f"**{pane.title}**")
                st.graphviz_chart(pane.dot, width="stretch")
        return Event(selected=selected, expand=None)
    data = {
        "asset_base": asset_base(),
        "asset_version": asset_version(),
        "panes": [{"id": p.id, "title": p.title, "dot": p.dot, "view_key": p.view_key, "marks": p.marks}
                  for p in panes],
        "selected": selected,
        "present": bool(present),
        "height": max(MIN_HEIGHT, int(height)),
    }
    payload = json.dumps(data, separators=(",", ":")).encode()
    result = _component(key=key, data=payload, default={"selected": selected}, height=data["height"],
                        on_selected_change=lambda: _forward(key, "selected", on_select),
                        on_expand_change=lambda: _forward(key, "expand", on_expand))
    return Event(selected=_name(getattr(result, "selected", None)), expand=_name(getattr(result, "expand", None)))


def _forward(key: str, what: str, callback: Callable[[str], None] | None) -> None:
    """Hand a click from the browser to the page's callback, once it is a valid node name."""
    state = st.session_state.get(key)
    value = _name(state.get(what) if hasattr(state, "get") else getattr(state, what, None))
    if callback is not None and value is not None:
        callback(value)


def _name(value: Any) -> str | None:
    """A node name from the browser, or None when it is not one (the browser is not trusted)."""
    if not isinstance(value, str) or not value or len(value) > 80:
        return None
    return value if all(c.isalnum() or c in "_-" for c in value) else None
