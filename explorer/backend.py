"""The one place the explorer imports Keras (and so TensorFlow): lazily, with TensorFlow's environment set first."""

from __future__ import annotations

import os
from typing import Any


def load_keras() -> Any:
    """Import and return Keras (TensorFlow starts in ~2 s; the core never needs it, so only Keras-side code calls this).

    Sets `TF_CPP_MIN_LOG_LEVEL=2` (no start-up chatter) and `TF_ENABLE_ONEDNN_OPTS=1` (~1.5× faster CPU
    training here, benchmarks/bench_training.py) unless the environment already says otherwise.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras

    return keras
