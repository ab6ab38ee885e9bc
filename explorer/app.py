"""Streamlit entry point: `streamlit run explorer/app.py` (sidebar → config → architecture, layers, debug, export, train)."""

from __future__ import annotations

import importlib
import logging
import re
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script by `streamlit run explorer/app.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from explorer import fmt
from explorer.annotate import AnnotatedGraph
from explorer.config import ConfigError, ResNetConfig
from explorer.presets import PRESETS
from explorer.ui import classroom, common, session, sidebar
from explorer.ui.server_state import keep_keras_state
from explorer.ui.urlstate import diff_fields, parse_query, to_query

log = logging.getLogger("explorer.app")
keep_keras_state()  # Streamlit would clear the Keras session after every rerun, under running trainings

BOOTED = "_booted"
RUN_MS = "_run_ms"

CSS = """
<style>
[data-testid="stSidebar"] h2 { margin-top: -0.6rem; }
[data-testid="stSidebarUserContent"] { padding-top: 1.2rem; }
.block-container { padding-top: 2.2rem; }
[data-testid="stGraphVizChart"] svg { max-width: 100%; height: auto; }
/* Projector sizes (1024×768, 1280×720): labels, metrics, options and buttons wrap between words, never cut with
   "…" nor broken inside a word; columns too narrow for a short label wrap onto the next row. */
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *, [data-testid="stMetricValue"], [data-testid="stMetricValue"] *,
[data-testid="stWidgetLabel"], [data-testid="stWidgetLabel"] *, [data-testid="stRadioOption"] *, [data-testid="stCheckbox"] *,
button [data-testid="stMarkdownContainer"], button [data-testid="stMarkdownContainer"] *,
[data-baseweb="select"] > div > div:first-child, [data-baseweb="select"] > div > div:first-child * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: normal !important; word-break: normal !important;
}
[data-testid="stColumn"] { min-width: min(100%, 6.5rem); }
[data-testid="stMetricValue"] { font-size: clamp(1.25rem, 2.6vw, 1.9rem) !important; }
.st-key-break_examples [data-testid="stColumn"] { min-width: min(100%, 12rem); }
</style>
"""


def boot_from_url() -> None:
    """On a session's first run, load the config (and tab) from the query string, snapping what does not fit.

    The session counts as booted only once all of it is loaded: a run can end at any session-state
    access (a dropped websocket stops it), and a half-done boot must be redone from the URL on the
    next run, not leave the session on the default network.
    """
    ss = st.session_state
    if ss.get(BOOTED):
        return
    try:
        params = st.query_params.to_dict()
    except Exception:  # noqa: BLE001 - a broken URL must never stop the page
        params = {}
    config, preset, warnings = parse_query(params)
    mode, mode_warnings = classroom.parse(params)
    ss[classroom.KEY] = mode
    ss[classroom.PRESENT] = mode.present
    warnings += mode_warnings
    sidebar.load_widgets(config, preset=preset)
    tab = str(params.get(common.TAB, ""))
    if tab in common.TABS:
        ss[common.TAB] = tab
    elif tab:  # echoed only when it cannot carry Markdown (the warning is rendered as Markdown)
        warnings.append(f"there is no tab called {tab!r}" if tab.isalpha() and len(tab) <= 20 else "the link names no tab of this page")
    node = str(params.get("node", ""))
    if node:
        if re.fullmatch(r"[A-Za-z0-9_]{1,80}", node):
            ss[common.NODE] = node
        else:
            warnings.append("the link's node is not a layer, block or stage name")
    if warnings:
        common.notify(config, ["This link had settings that did not fit — " + w for w in warnings])
    ss[BOOTED] = True


def sync_url(config: ResNetConfig, preset: str) -> None:
    """Write the config (and the open tab) into the query string, so the address bar is a shareable link."""
    query = to_query(config, preset)
    tab = st.session_state.get(common.TAB, common.TABS[0])
    if tab in common.TABS and tab != common.TABS[0]:
        query[common.TAB] = tab
    node = st.session_state.get(common.NODE)
    if node:
        query["node"] = node
    query.update(classroom.current(st.session_state).to_params())
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def _title(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> str:
    version = "v1 post-activation" if config.version == 1 else "v2 pre-activation"
    changed = " (modified)" if diff_fields(config, PRESETS[preset].config) else ""
    return (f"### {preset}{changed} · ResNet-{ag.depth}\n"
            f"{version} · {config.block} blocks · shortcut {config.shortcut} · "
            f"input {fmt.shape(config.input_shape)} → {config.classes} classes")


def _notices() -> None:
    record = common.live(common.NOTICES)
    if record:
        for message in record[1]:
            st.warning(message, icon=":material/link:" if message.startswith("This link") else ":material/info:")


def _training_heartbeat() -> None:
    """Keep a running training alive and show its progress in the sidebar, whatever tab is open.

    Only when the Train tab's module is already loaded: a job can exist only after that tab ran, and the
    first paint must not pay for importing it.
    """
    train = sys.modules.get("explorer.ui.train")
    if train is None:
        return
    train.keep_alive()
    with st.sidebar:
        train.render_train_status()


def main() -> None:
    """The page."""
    st.set_page_config(page_title="ResNet Explorer", page_icon=":material/hub:", layout="wide", initial_sidebar_state="expanded")
    st.markdown(CSS, unsafe_allow_html=True)
    started = time.perf_counter()
    boot_from_url()
    session.keep_widgets(st.session_state)  # (and at the end of the run, below)
    if classroom.current(st.session_state).present:
        st.markdown(classroom.PRESENT_CSS, unsafe_allow_html=True)
    try:
        result = sidebar.render()
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        log.exception("sidebar failed")
        st.sidebar.error(f"The settings could not be read ({exc}). Showing the last network that fitted.")
        result = sidebar.SidebarResult(common.current_config(), common.current_preset())
    config, preset = result.config, result.preset
    try:
        ag = common.annotated(config.to_json())
    except ConfigError as exc:  # pragma: no cover - a valid config always annotates
        common.show_config_error(exc)
        return
    sync_url(config, preset)

    st.markdown(_title(config, ag, preset))
    if result.error is not None:
        common.show_config_error(result.error, title="Not applied —")
    _notices()
    rejected = common.live(common.REJECTED)
    if rejected and st.session_state.get(common.TAB) != "Debug":
        st.error(f"**Not applied — {rejected['field']}**: {rejected['message']}. See the **Debug** tab for fixes.", icon=":material/warning:")
    st.session_state.setdefault(common.TAB, common.TABS[0])
    tabs = st.tabs(list(common.TABS), key=common.TAB, on_change="rerun")
    for tab, (name, module) in zip(tabs, common.TAB_MODULES, strict=True):
        if tab.open is False:
            continue
        with tab, common.guard(f"{name} tab"):
            importlib.import_module(module).render(config, ag, preset)
    st.session_state[RUN_MS] = (time.perf_counter() - started) * 1000
    with common.guard("training status"):
        _training_heartbeat()


try:
    main()
finally:  # a tab's controls keep their values while another tab is open
    session.keep_widgets(st.session_state)
