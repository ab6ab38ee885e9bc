"""Keep Streamlit from resetting Keras between page updates.

After every script run (every rerun, every fragment poll) Streamlit 1.x calls
`keras.backend.clear_session()` when Keras is imported (`script_runner._clean_problem_modules`).
That call is process-wide: it swaps Keras' global settings, resets TensorFlow's default graph and
clears the kernel cache — under a training running in another thread. In a classroom, one
session polling its training every second reset everybody's; two trainings at once stalled in
their first batch for minutes (found with the load test, `benchmarks/loadtest.py`). This module
replaces that clean-up with one that leaves Keras alone (it still closes matplotlib figures, the
other thing Streamlit cleans). The app trains many models in one process on purpose and frees
them itself (`explorer.training.release_freed_memory`).
"""

from __future__ import annotations

import sys
from typing import Any

streamlit_cleanup: Any = None
"""Streamlit's own clean-up function, kept when it is replaced (the tests show what it would do)."""


def _clean_problem_modules_but_keras() -> None:
    """Streamlit's clean-up without the Keras part: close matplotlib figures if pyplot is loaded."""
    plt: Any = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # noqa: BLE001, S110 - as Streamlit: never fail a page over this
            pass


def keep_keras_state() -> bool:
    """Patch Streamlit's per-run clean-up so it no longer clears the Keras session; True when patched.

    Safe to call more than once. If a Streamlit version no longer has the hook, nothing is patched.
    """
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:  # pragma: no cover - a Streamlit without this module
        return False
    if not hasattr(script_runner, "_clean_problem_modules"):
        return False
    global streamlit_cleanup
    if script_runner._clean_problem_modules is not _clean_problem_modules_but_keras:
        streamlit_cleanup = script_runner._clean_problem_modules
    script_runner._clean_problem_modules = _clean_problem_modules_but_keras
    return True
