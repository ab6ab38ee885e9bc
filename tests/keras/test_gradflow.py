"""Gradient flow at initialisation: structure of the measurements and numbers that must hold exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from explorer import gradflow
from explorer.annotate import build
from explorer.cli import main
from explorer.config import ConfigError, ResNetConfig

SMALL = ResNetConfig(depth=8, filters=4)


def test_records_follow_the_main_path():
    batch = gradflow.random_batch(SMALL, 8)
    result = gradflow.measure(SMALL, batch)
    convs = [n.name for n in build(SMALL).graph if n.op == "conv" and n.role in ("stem", "main")]
    assert [r["name"] for r in result["layers"]] == convs
    assert [r["depth_index"] for r in result["layers"]] == list(range(1, len(convs) + 1))
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in result["layers"])
    assert all(r["activation_std"] > 0 for r in result["layers"])
    assert [r["name"] for r in result["blocks"]] == [b.output for b in build(SMALL).graph.blocks]
    assert math.isfinite(result["loss"]) and result["loss"] > 0


def test_zero_init_blocks_start_as_identity_exactly():
    cfg = ResNetConfig(depth=14, filters=4, zero_init=True)
    result = gradflow.measure(cfg, gradflow.random_batch(cfg, 8))
    by_name = {r["name"]: r for r in result["layers"]}
    # the residual branches output exactly 0, so no gradient reaches their convs …
    assert all(r["grad_norm"] == 0.0 for name, r in by_name.items() if name != "stem_conv")
    # … while the stem still learns through the identity path
    assert by_name["stem_conv"]["grad_norm"] > 0
    # and every stage-1 block passes its (non-negative) input through unchanged
    stage1 = [b["activation_std"] for b in result["blocks"] if b["name"].startswith("stage1_")]
    assert stage1 == pytest.approx([stage1[0]] * len(stage1), rel=1e-6)


def test_report_has_the_plain_twin():
    result = gradflow.report(SMALL, gradflow.random_batch(SMALL, 4))
    labels = [n["label"] for n in result["networks"]]
    assert labels == ["residual", "plain twin"]
    assert result["networks"][1]["config"]["shortcut"] == "none"
    assert "random" in result["source"]
    plain = gradflow.report(SMALL.replace(shortcut="none"), gradflow.random_batch(SMALL, 4))
    assert [n["label"] for n in plain["networks"]] == ["plain"]


def test_same_seed_same_numbers():
    batch = gradflow.random_batch(SMALL, 4)
    a = gradflow.measure(SMALL, batch, seed=3)
    b = gradflow.measure(SMALL, batch, seed=3)
    assert a == b


def test_refusals():
    with pytest.raises(ConfigError):
        gradflow.measure(SMALL, gradflow.Batch(np.zeros((2, 16, 16, 3), "float32"), np.zeros(2, "int64"), "x"))
    with pytest.raises(ConfigError):
        gradflow.load_batch(SMALL, size=0)


def test_cli_json(capsys):
    code = main(["gradflow", "--depth", "8", "--filters", "4", "--twin", "--batch-size", "4", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["networks"]) == 2
    for net in data["networks"]:
        for layer in net["layers"]:
            assert set(layer) == {"name", "depth_index", "grad_norm", "activation_std"}


def test_cli_refuses_broken_network(capsys):
    assert main(["gradflow", "--shortcut", "identity"]) == 2
    assert "does not fit" in capsys.readouterr().err


def test_residual_sums_raise_the_loss_at_initialisation_above_an_even_guess():
    """What the Lessons tab says of a ResNet-56's loss at initialisation (above ln 10): the residual sums grow the
    activations with depth and the logits with them; the plain twin and zero-init residual stay near ln 10."""
    from explorer.presets import PRESETS
    from explorer.ui.lessons import _why_loss_is_high

    cfg = PRESETS["resnet56"].config
    batch = gradflow.random_batch(cfg, 16)
    result = gradflow.report(cfg, batch)
    residual, plain = result["networks"]
    chance = math.log(10)
    assert residual["loss"] > 1.5 * chance and abs(plain["loss"] - chance) < 0.5 * chance
    spread = [b["activation_std"] for b in residual["blocks"]]
    assert spread[-1] > 2 * spread[0]
    why = _why_loss_is_high(result, 10)
    assert why and f"{spread[-1]:.2g} after the last" in why
    zero = gradflow.report(cfg.replace(zero_init=True), batch, twin=False)
    assert zero["networks"][0]["loss"] < 1.25 * chance and _why_loss_is_high(zero, 10) is None


def test_cli_gradflow_keeps_tensorflow_quiet_unless_verbose(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EXPLORER_TF_VERBOSE")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "explorer", "gradflow", "--depth", "8", "--filters", "4", "--batch-size", "4"]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert quiet.returncode == 0 and "residual: loss" in quiet.stdout, quiet.stderr[-3000:]
    assert quiet.stderr == ""
    verbose = subprocess.run([*argv, "--verbose"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout  # the same result; TensorFlow's log may follow
