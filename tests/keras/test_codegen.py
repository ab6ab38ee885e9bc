"""Keras source export: the generated file builds exactly the graph's model (run in a fresh Python)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from explorer.annotate import build
from explorer.codegen import CodegenError, keras_source
from explorer.presets import PRESETS
from tests.conftest import ROOT

ROUND_TRIP = {
    "resnet20": PRESETS["resnet20"].config,
    "keras-resnet20v1": PRESETS["keras-resnet20v1"].config,
    "keras-resnet56v2": PRESETS["keras-resnet56v2"].config,
    "tutorial": PRESETS["tutorial"].config.replace(depth=29),
    "preact-resnet164": PRESETS["preact-resnet164"].config,
    "resnet50v2": PRESETS["resnet50v2"].config,
    "v1-C-dropout-l2": PRESETS["resnet20"].config.replace(shortcut="C", dropout=0.3, l2=5e-4, conv_bias="always"),
    "plain-zero-init": PRESETS["resnet20"].config.replace(shortcut="none", zero_init=True),
    "v2-input-proj-no-bn": PRESETS["preact-resnet164"].config.replace(
        depth=29, projection_from="input", batch_norm=False, zero_init=True),
    "imagenet-v1-B-last": PRESETS["resnet20"].config.replace(
        stem="imagenet", stages=4, depth=18, shortcut="B", downsample="last", input_shape=(64, 64, 3), explicit_padding=True),
}

DRIVER = textwrap.dedent('''
    import json, os, runpy, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = {}
    for path in sys.argv[1:]:
        ns = runpy.run_path(path)  # not as __main__: only defines build_model
        model = ns["build_model"]()
        out[path] = {
            "params": model.count_params(),
            "trainable": sum(int(w.numpy().size) for w in model.trainable_weights),
            "layers": [[l.name, type(l).__name__, list(l.output.shape[1:])] for l in model.layers],
        }
    print(json.dumps(out))
''')


def test_round_trip_builds_the_same_model(tmp_path):
    """Every generated file, run in a fresh interpreter, builds the graph's layers, shapes and parameter counts."""
    paths = {}
    for name, config in ROUND_TRIP.items():
        path = tmp_path / f"{name}.py"
        path.write_text(keras_source(config, preset=name), encoding="utf-8")
        paths[name] = str(path)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(driver), *paths.values()], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, config in ROUND_TRIP.items():
        ag = build(config)
        got = results[paths[name]]
        assert got["params"] == ag.total_params, name
        assert got["trainable"] == ag.trainable_params, name
        want = {n.name: [n.keras_class, list(ag.info[n.name].shape)] for n in ag.graph}
        assert {layer[0]: layer[1:] for layer in got["layers"]} == want, name
        assert len(got["layers"]) == len(want), name


def test_source_is_compact_and_valid_python():
    src = keras_source(PRESETS["preact-resnet1001"].config, preset="preact-resnet1001")
    compile(src, "generated.py", "exec")
    assert len(src.splitlines()) < 250  # 3,341 layers, but identical blocks share a function and a loop
    assert "sys.setrecursionlimit" in src
    assert 'for b in range(2, 112):' in src
    assert "import explorer" not in src


def test_zero_pad_shortcut_only_when_used():
    assert "class ZeroPadShortcut" in keras_source(PRESETS["resnet20"].config)
    assert "class ZeroPadShortcut" not in keras_source(PRESETS["keras-resnet20v1"].config)


def test_header_names_preset_and_config():
    cfg = PRESETS["resnet56"].config
    src = keras_source(cfg.replace(shortcut="B"), preset="resnet56")
    assert "preset 'resnet56' (modified)" in src
    assert '"shortcut": "B"' in src


def test_broken_network_is_refused_with_a_hint():
    with pytest.raises(CodegenError) as err:
        keras_source(PRESETS["resnet20"].config.replace(shortcut="identity"))
    assert "stage2_block1_add" in err.value.message
    assert err.value.hint


@pytest.mark.skipif(not (shutil.which("ruff") or (ROOT / ".venv/bin/ruff").exists()), reason="ruff not installed")
def test_generated_source_passes_ruff():
    ruff = shutil.which("ruff") or str(ROOT / ".venv/bin/ruff")
    for name in ("resnet20", "v2-input-proj-no-bn", "resnet50v2"):
        src = keras_source(ROUND_TRIP[name], preset=name)
        proc = subprocess.run([ruff, "check", "--isolated", "--select", "E,F,W", "--ignore", "E501", "--stdin-filename", "gen.py", "-"],
                              input=src, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
