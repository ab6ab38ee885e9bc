"""Streamlit must not clear the Keras session (or run a full GC) after every page update: trainings run under it."""

from __future__ import annotations

import tomllib

import keras
import pytest
from streamlit.runtime.scriptrunner import script_runner

from explorer.ui import server_state
from tests.conftest import ROOT
from tests.helpers import run_app


@pytest.fixture
def clear_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    return calls


def test_streamlits_own_cleanup_clears_the_keras_session(clear_calls, monkeypatch):
    """The hazard is real: Streamlit's clean-up, unpatched, calls keras.backend.clear_session()."""
    server_state.keep_keras_state()
    original = server_state.streamlit_cleanup
    assert original.__module__ == script_runner.__name__
    original()
    assert clear_calls == [1]


def test_app_reruns_leave_the_keras_session_alone(clear_calls):
    at = run_app()  # the first run patches Streamlit's clean-up
    assert not at.exception
    assert script_runner._clean_problem_modules.__module__ == "explorer.ui.server_state"
    clear_calls.clear()
    for depth in (32, 44):
        at.select_slider(key="w_depth").set_value(depth).run()
        assert not at.exception
        assert f"ResNet-{depth}" in " ".join(m.value for m in at.markdown) + " ".join(h.value for h in at.subheader)
    at.run()
    assert clear_calls == []


def test_server_config_turns_off_the_gc_after_every_run():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_server_config_keeps_a_dropped_session_for_ten_minutes():
    """A tab that loses its websocket (sleeping laptop, starved browser) resumes its session, runs included."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["disconnectedSessionTTL"] == 600  # Streamlit's default is 120 s
