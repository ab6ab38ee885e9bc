"""Shared UI plumbing: cached views of a config, session keys, notices, and the guard that turns errors into messages."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from explorer import fmt, guards
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.presets import DEFAULT_PRESET, PRESETS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("explorer.ui")
T = TypeVar("T")

# Session-state keys that are not widgets.
CONFIG = "_config"  # JSON of the last valid config (what every view shows)
PRESET = "w_preset"  # the preset select box
NOTICES = "_notices"  # (config json, [warnings]) shown until the config changes
REJECTED = "_rejected"  # a change that was refused: {"field", "message", "hint", "fixes"}
TAB = "tab"
NODE = "diagram_node"  # the box selected in the diagram (also the URL's ?node=)

# The tabs, in order: (name — what the URL's `tab=` knows —, the module whose `render(config, ag, preset)` draws
# it). Each module is imported when its tab is first opened (the Layers tab needs pandas, the Train tab the
# training package).
TAB_MODULES: tuple[tuple[str, str], ...] = (
    ("Architecture", "explorer.ui.architecture"),
    ("Layers", "explorer.ui.layers"),
    ("Debug", "explorer.ui.debug"),
    ("Lessons", "explorer.ui.lessons"),
    ("Train", "explorer.ui.train"),
    ("Compare", "explorer.ui.compare"),
    ("Export", "explorer.ui.export"),
)
TABS = tuple(name for name, _ in TAB_MODULES)


# ----------------------------------------------------------------------------------------- cached views
@st.cache_resource(max_entries=32, show_spinner=False)
def annotated(config_json: str) -> AnnotatedGraph:
    """The annotated graph of a config, keyed by its JSON (shared read-only: it is never mutated)."""
    return build(ResNetConfig.from_json(config_json))


@st.cache_data(max_entries=32, show_spinner=False)
def layer_frame(config_json: str) -> pd.DataFrame:
    """The per-layer table of `explorer.tables`, keyed by the config JSON."""
    from explorer.tables import layer_table

    return layer_table(annotated(config_json))


@st.cache_data(max_entries=64, show_spinner=False)
def dot_source(config_json: str, *, level: str, expand: str | None, rankdir: str, rollup: bool,
               show_params: bool, color_by: str | None) -> str:
    """DOT text of one view of the network, keyed by the config JSON and the view options."""
    from explorer import diagram

    return diagram.to_dot(annotated(config_json), level=level, expand=expand, rankdir=rankdir, rollup=rollup,
                          show_params=show_params, color_by=color_by)


# ----------------------------------------------------------------------------------------- state
def current_config() -> ResNetConfig:
    """The last valid config (the default preset's before the first run)."""
    text = st.session_state.get(CONFIG)
    return ResNetConfig.from_json(text) if text else PRESETS[DEFAULT_PRESET].config


def current_preset() -> str:
    """The selected preset's name."""
    name = st.session_state.get(PRESET, DEFAULT_PRESET)
    return name if name in PRESETS else DEFAULT_PRESET


def notify(config: ResNetConfig, messages: list[str]) -> None:
    """Show these warnings above the page until the config changes."""
    if messages:
        st.session_state[NOTICES] = (config.to_json(), list(messages))


def reject(error: ConfigError, fixes: list[dict] | None = None) -> None:
    """Remember a refused change (the Debug tab shows it with fix buttons)."""
    st.session_state[REJECTED] = {"field": error.field, "message": error.message, "hint": error.hint, "fixes": fixes or [],
                                  "config": st.session_state.get(CONFIG)}


def live(key: str) -> Any:
    """A notice or refusal stored under `key`, if it still belongs to the current config (else forget it)."""
    value = st.session_state.get(key)
    if value is None:
        return None
    owner = value[0] if isinstance(value, tuple) else value.get("config")
    if owner is not None and owner != st.session_state.get(CONFIG):
        st.session_state.pop(key, None)
        return None
    return value


def fix_label(fix: Mapping[str, Any]) -> str:
    """A button label for a config change: `shortcut = B`, `input = 64×64×3`."""
    parts = []
    for key, value in fix.items():
        name = "input" if key == "input_shape" else key
        if key == "input_shape":
            text = fmt.shape(tuple(value))
        elif isinstance(value, (list, tuple)):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "on" if value else "off"
        else:
            text = str(value)
        parts.append(f"{name} = {text}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------- errors
def show_config_error(error: ConfigError, *, title: str = "") -> None:
    """A ConfigError as a message: what is wrong (and which setting) and what to do."""
    head = f"**{title}** " if title else ""
    st.error(f"{head}**{error.field}**: {error.message}" + (f"  \n→ {error.hint}" if error.hint else ""), icon=":material/warning:")


def slow_result(compute: Callable[[], T], *, what: str, advice: str, title: str = "") -> T | None:
    """What a slow computation returns (one in a killable child, see `guards.run_killable`), or None once the
    page shows, in one message, why there is nothing: too big for the server, stopped at the time limit, or failed.

    Args:
        compute: Runs the computation.
        what: Its name in a sentence, e.g. "Building the Keras file".
        advice: What to try when it was stopped, e.g. "Try a shallower network."
        title: Heads the message of a ConfigError (the network is too big, or does not fit together).
    """
    try:
        return compute()
    except ConfigError as exc:
        show_config_error(exc, title=title)
    except guards.TooSlow as exc:
        st.error(f"{what} was stopped: {exc}. {advice}", icon=":material/timer_off:")
    except guards.ComputationFailed as exc:
        st.error(f"{what} failed: {exc}.", icon=":material/error:")
    return None


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Run one part of the page; a failure becomes a message there instead of a traceback.

    Streamlit's own control flow (st.rerun, st.stop) derives from BaseException and passes through.
    """
    try:
        yield
    except ConfigError as exc:
        show_config_error(exc)
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        log.exception("error while drawing the %s", what)
        st.error(
            f"The {what} could not be drawn ({type(exc).__name__}: {exc}).  \n"
            "→ Change a setting or reload the page. If it keeps happening, report it with this page's link.",
            icon=":material/build:",
        )
