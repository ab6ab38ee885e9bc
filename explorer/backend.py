"""The one place the explorer imports Keras (and so TensorFlow): lazily, with TensorFlow's environment set first."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

VERBOSE_ENV = "EXPLORER_TF_VERBOSE"
"""Set to 1 (the CLI's --verbose does) to see TensorFlow's start-up log on stderr; a spawned training inherits it."""


def load_keras() -> Any:
    """Import and return Keras (TensorFlow starts in ~2 s; the core never needs it, so only Keras-side code calls this).

    Sets `TF_CPP_MIN_LOG_LEVEL=2` (no start-up chatter) and `TF_ENABLE_ONEDNN_OPTS=1` (~1.5× faster CPU
    training here, benchmarks/bench_training.py) unless the environment already says otherwise.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras

    return keras


def quiet_start() -> Any:
    """Import Keras (and TensorFlow) without TensorFlow's start-up log on stderr, unless `VERBOSE_ENV` is 1.

    TensorFlow's C++ side writes its start-up lines ("oneDNN custom operations are on", "Could not find cuda
    drivers", "E0000 … failed call to cuInit") straight to file descriptor 2 while it is imported, before any log
    level applies; to a student they look like failures. So the import runs with descriptor 2 on /dev/null and
    `TF_CPP_MIN_LOG_LEVEL=3` (errors too) for what TensorFlow logs later; Python errors still show. Call it from
    the main thread of a process the explorer owns (the CLI, a spawned training), before other threads write to
    stderr: nothing else may write to stderr while the import runs.

    Returns:
        Keras.
    """
    if os.environ.get(VERBOSE_ENV, "").strip() == "1" or "tensorflow" in sys.modules:
        return load_keras()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_muted():
        keras = load_keras()
    with contextlib.suppress(ImportError):  # absl's Python logging: warnings only from here on
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    return keras


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the duration (what C++ libraries write there is dropped)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
