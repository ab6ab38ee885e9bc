"""Shared test setup: quiet TensorFlow, make the repo importable, and the fixtures several test modules use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The app trains in a spawned process by default (explorer.guards.train_worker); each such process
# first imports TensorFlow (~6 s here). The app's tests train in a thread to stay quick;
# tests/training/test_training_process.py covers the process worker, the app's Train tab included.
os.environ.setdefault("EXPLORER_TRAIN_WORKER", "thread")
# The app's tests are the owner's machine (as .streamlit/config.toml's address = "localhost" makes a laptop's
# `streamlit run`), wherever pytest starts; tests/ui/test_serverpaths.py sets EXPLORER_SHARED=1 for a shared server.
os.environ.setdefault("EXPLORER_SHARED", "0")


@pytest.fixture(autouse=True)
def _static_serving():
    """AppTest does not read .streamlit/config.toml; the app's diagram viewer needs its static serving on."""
    from streamlit import config

    before = config.get_option("server.enableStaticServing")
    config.set_option("server.enableStaticServing", True)
    yield
    config.set_option("server.enableStaticServing", before)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    """A tiny CIFAR-10 in the binary layout, written once per test module (1,000 training and 200 test images)."""
    from tests.helpers import write_layout

    root = tmp_path_factory.mktemp("cifar")
    write_layout(root, "binary", n_per_class=20)
    return root


@pytest.fixture(scope="module")
def data(fixture_dir):
    """The Cifar10 loaded from `fixture_dir`."""
    from explorer.data import load_cifar10

    return load_cifar10(fixture_dir, allow_download=False)
