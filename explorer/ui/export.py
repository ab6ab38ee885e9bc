"""The Export tab: standalone Keras source, a `.keras` model file (built on request), DOT/SVG, config JSON, and config import."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from explorer import fmt, guards
from explorer.annotate import AnnotatedGraph
from explorer.config import ConfigError, ResNetConfig, load_json
from explorer.presets import PRESETS
from explorer.ui import common
from explorer.ui.urlstate import MAX_APP_DEPTH, diff_fields

MAX_IMPORT_BYTES = 64 * 1024
"""A config file is a few hundred bytes; anything above this is refused unread."""

KERAS_FILE = "_keras_file"  # {"config": json, "data": bytes | None, "path": str | None}
IMPORT_FILE = "import_file"
IMPORT_RESULT = "_import_result"  # ("ok" | "error", text)

LOAD_NOTE = """\
```python
import keras
import explorer.keras_build as kb

kb.zero_pad_shortcut_class()  # registers explorer>ZeroPadShortcut (option-A shortcuts)
model = keras.saving.load_model("{name}", safe_mode=True)
```
Networks with option-A shortcuts use one custom layer, `ZeroPadShortcut` (package `explorer`): register it
first, as above — or run the exported Keras source, which defines and registers the same class."""


@st.cache_data(max_entries=16, show_spinner=False)
def keras_source_text(config_json: str, preset: str) -> str:
    """The generated Keras source (cached by config and preset)."""
    from explorer.codegen import keras_source

    return keras_source(common.annotated(config_json), preset=preset)


def file_stem(config: ResNetConfig, preset: str) -> str:
    """A file name stem: the preset's name, marked when the config differs from it."""
    return preset if PRESETS[preset].config == config else f"{preset}-custom"


KEEP_IN_MEMORY = 32 * 2**20
"""A built .keras file up to this size is read into the session's state and deleted at once; a larger one stays, under
a random name, in the server's private folder (`guards.private_dir`) until the session builds another or an hour passes."""
KEEP_SECONDS = 3600
"""Built .keras files left in the private folder longer than this are deleted at the next build (sessions end without
telling the server)."""


def build_keras_file(config: ResNetConfig, ag: AnnotatedGraph, *, seconds: float | None = None) -> Path:
    """Build the Keras model of `ag` and save it as a `.keras` file in the server's private folder.

    It is sized first (`guards.check_build_memory`), then built in a child process that is killed,
    and its file removed, when it runs over `seconds` (default: `guards.rerun_seconds()`).

    Returns:
        The file (a random name in `guards.private_dir()`); the caller removes it.

    Raises:
        ConfigError: The network is too big for this server, or does not fit together (Keras could not build it).
        guards.TooSlow: It ran over the time limit (stopped), or two slow computations are running.
        guards.ComputationFailed: The build failed or its process died.
    """
    from explorer.keras_build import save_model_file

    guards.check_build_memory(ag, what="this network's .keras file", extra=guards.PROCESS_BYTES)
    guards.prune_private(KEEP_SECONDS, "*.keras")
    path = guards.private_file(".keras")
    seconds = guards.rerun_seconds() if seconds is None else seconds
    try:
        guards.run_killable(seconds, save_model_file, config, str(path))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _forget(rec: dict | None) -> None:
    """Delete the file of an earlier build kept on disk (a large one)."""
    if rec and rec.get("path"):
        Path(rec["path"]).unlink(missing_ok=True)


def _keras_file(config: ResNetConfig, ag: AnnotatedGraph, stem: str) -> None:
    ss = st.session_state
    key = config.to_json()
    st.markdown("**Keras model (.keras)**")
    if ag.errors:
        st.caption("Fix the errors in the Debug tab first: Keras cannot build a network whose shapes do not fit.")
        st.button("Build .keras file", disabled=True, key="build_keras_disabled")
        return
    rec = ss.get(KERAS_FILE)
    ready = rec is not None and rec["config"] == key and (rec.get("data") is not None or Path(rec["path"]).is_file())
    if not ready and st.button("Build .keras file", key="build_keras", icon=":material/build:",
                               help="Builds the model with Keras (TensorFlow starts on first use: a few seconds)."):
        with st.spinner(f"Building {len(ag.graph):,} Keras layers…"):
            _forget(rec)
            ss.pop(KERAS_FILE, None)
            path = common.slow_result(lambda: build_keras_file(config, ag), what="Building the Keras file",
                                      advice="Try a shallower network.", title="No .keras file —")
            if path is None:
                return
        if path.stat().st_size <= KEEP_IN_MEMORY:
            rec = {"config": key, "data": path.read_bytes(), "path": None}
            path.unlink(missing_ok=True)
        else:
            rec = {"config": key, "data": None, "path": str(path)}
        ss[KERAS_FILE] = rec
        ready = True
    if ready:
        data = rec.get("data")
        size = len(data) if data is not None else Path(rec["path"]).stat().st_size
        st.download_button(f"Download {stem}.keras ({fmt.binary_bytes(size)})",
                           data if data is not None else (lambda p=Path(rec["path"]): p.read_bytes()),
                           file_name=f"{stem}.keras", mime="application/octet-stream", icon=":material/download:",
                           on_click="ignore", key="download_keras")
        with st.expander("How to load it"):
            st.markdown(LOAD_NOTE.format(name=f"{stem}.keras"))


def _diagram_files(config: ResNetConfig, ag: AnnotatedGraph, stem: str) -> None:
    st.markdown("**Diagram**")
    try:
        from explorer import diagram
        from explorer.ui.architecture import current_view
    except ImportError:  # pragma: no cover - the diagram module ships with the app
        st.caption("The diagram module is not installed.")
        return
    view = current_view(ag)
    try:
        dot = common.dot_source(config.to_json(), **view)
    except diagram.DiagramError:
        view["level"] = diagram.default_level(ag)
        dot = common.dot_source(config.to_json(), **view)
    c1, c2 = st.columns(2)
    c1.download_button(f"DOT ({view['level']} view)", dot, file_name=f"{stem}.dot", mime="text/vnd.graphviz", icon=":material/download:",
                       on_click="ignore", key="download_dot", width="stretch")
    if diagram.dot_available():
        c2.download_button("SVG (same view)", lambda: diagram.render(dot, "svg"), file_name=f"{stem}.svg",
                           mime="image/svg+xml", icon=":material/download:", on_click="ignore", key="download_svg", width="stretch")
    else:
        c2.caption("SVG and PNG: the *Download SVG* and *Download PNG* buttons in the diagram's toolbar "
                   "(Architecture tab) save what your browser drew; no Graphviz program needed.")
    st.caption("The same view as the Architecture tab (level, expand, direction, colours).")


def import_config(data: bytes, name: str = "config.json") -> tuple[ResNetConfig, str | None]:
    """Read an uploaded config file: a config object, or the `summary --json` object around one.

    Returns:
        The config and the preset it equals (None when it equals none).

    Raises:
        ConfigError: Too big, not UTF-8 JSON, or not a valid config (the message says which).
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise ConfigError("config", f"{name} is {fmt.binary_bytes(len(data))}; a config file is a few hundred bytes",
                          "export a config JSON from this tab and import that")
    obj = load_json(data, name=name)  # not UTF-8, too deep, a number too long, bad syntax: one ConfigError
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict) and "layers" in obj:
        obj = obj["config"]  # the CLI's `summary --json`
    config = ResNetConfig.from_dict(obj)
    if config.resolved_depth > MAX_APP_DEPTH:
        raise ConfigError("depth", f"depth {config.resolved_depth} is deeper than the app draws ({MAX_APP_DEPTH})",
                          "use the CLI for networks this deep")
    match = next((p.name for p in PRESETS.values() if p.config == config), None)
    return config, match


def closest_preset(config: ResNetConfig, current: str) -> str:
    """The preset that differs from `config` in the fewest fields (the current one on a tie): the shortest link."""
    def distance(name: str) -> tuple[int, int]:
        return len(diff_fields(config, PRESETS[name].config)), 0 if name == current else 1

    return min(PRESETS, key=distance)


def _on_import() -> None:
    from explorer.ui.sidebar import load_widgets

    ss = st.session_state
    upload = ss.get(IMPORT_FILE)
    if upload is None:
        return
    try:
        config, match = import_config(upload.getvalue(), upload.name)
    except ConfigError as exc:
        ss[IMPORT_RESULT] = ("error", f"**{exc.field}**: {exc.message}  \n→ {exc.hint}")
        return
    except Exception:  # noqa: BLE001 - a callback's exception would reach the page as a traceback
        common.log.exception("error while importing %s", upload.name)
        ss[IMPORT_RESULT] = ("error", "This file could not be imported.  \n→ Import a config JSON exported from this tab.")
        return
    base = match or closest_preset(config, common.current_preset())
    load_widgets(config, preset=base)
    ss.pop(common.REJECTED, None)
    where = f"(it is the preset {match})" if match else f"(shown as changes to the closest preset, {base})"
    ss[IMPORT_RESULT] = ("ok", f"Loaded **{upload.name}** {where}.")


def _import() -> None:
    st.markdown("**Import a config**")
    st.file_uploader("Config JSON (from this tab, or `python -m explorer summary --json`)", type=["json"],
                     key=IMPORT_FILE, on_change=_on_import, max_upload_size=1)
    result = st.session_state.get(IMPORT_RESULT)
    if result:
        kind, text = result
        (st.success if kind == "ok" else st.error)(text, icon=":material/check_circle:" if kind == "ok" else ":material/warning:")


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Export tab."""
    stem = file_stem(config, preset)
    left, right = st.columns([0.6, 0.4], gap="large")
    with right:
        with common.guard(".keras export"):
            _keras_file(config, ag, stem)
        st.divider()
        with common.guard("diagram export"):
            _diagram_files(config, ag, stem)
        st.divider()
        st.markdown("**Config JSON**")
        st.download_button("Config JSON", json.dumps(config.to_dict(), indent=2), file_name=f"{stem}.json",
                           mime="application/json", icon=":material/download:", on_click="ignore", key="download_config")
        st.caption("Round-trips: import it here, or `python -m explorer summary --config FILE.json`.")
        st.divider()
        _import()
    with left:
        st.markdown("**Keras source**")
        try:
            src = keras_source_text(config.to_json(), preset)
        except ConfigError as exc:
            common.show_config_error(exc, title="No source —")
            return
        st.caption("Standalone Python that needs only `keras`: the same layers, names and parameter count as the "
                   "diagram. Identical blocks share one function.")
        st.download_button(f"Download {stem}.py", src, file_name=f"{stem}.py", mime="text/x-python", icon=":material/download:",
                           on_click="ignore", key="download_py")
        st.code(src, language="python", height=560, line_numbers=False)
