"""Shared test setup: quiet TensorFlow, make the repo importable, small helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The app trains in a spawned process by default (explorer.guards.train_worker); each such process
# first imports TensorFlow (~6 s here). The app's tests train in a thread to stay quick;
# tests/test_training_process.py covers the process worker, the app's Train tab included.
os.environ.setdefault("EXPLORER_TRAIN_WORKER", "thread")
# The app's tests are the owner's machine (as .streamlit/config.toml's address = "localhost" makes a laptop's
# `streamlit run`), wherever pytest starts; tests/test_serverpaths.py sets EXPLORER_SHARED=1 for a shared server.
os.environ.setdefault("EXPLORER_SHARED", "0")
