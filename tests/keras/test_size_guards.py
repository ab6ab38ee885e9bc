"""Sizes before allocation: huge models are refused before Keras builds them, slow builds are killed, temp files are private."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from explorer import gradflow, guards, inference
from explorer.annotate import build
from explorer.config import ConfigError, ResNetConfig, load_json
from explorer.presets import PRESETS
from tests.conftest import ROOT

HUGE = PRESETS["resnet56"].config.replace(filters=4096)  # 5.6e10 parameters, ~200 GiB of weights
ADDRESS_SPACE = 3 * 2**30  # a subprocess may map this much: enough for the checks, far too little for a huge model


def run_capped(code: str, *args: str, limit: int = ADDRESS_SPACE) -> subprocess.CompletedProcess:
    """Run Python `code` (or `-m explorer …` when code is "") in a subprocess whose address space is capped."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, "-m", "explorer", *args] if not code else [sys.executable, "-c", textwrap.dedent(code), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXPLORER_MAX_PARAMS": ""}
    return subprocess.run(cmd, cwd=ROOT, env=env, preexec_fn=cap, capture_output=True, text=True, timeout=300,
                          check=False)


# --------------------------------------------------------------------------- hand-written .keras archives
def _tensor(name: str, shape: list) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": "float32", "keras_history": [name, 0, 0]}}


def dense_config(units: list[int]) -> dict:
    """A Functional config: Input 32×32×3 → Flatten → Dense(u) for u in units → Dense(10, softmax)."""
    zeros = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "name": "input", "inbound_nodes": [],
               "config": {"batch_shape": [None, 32, 32, 3], "dtype": "float32", "name": "input"}},
              {"module": "keras.layers", "class_name": "Flatten", "name": "flat",
               "config": {"name": "flat", "dtype": "float32", "data_format": "channels_last"},
               "build_config": {"input_shape": [None, 32, 32, 3]},
               "inbound_nodes": [{"args": [_tensor("input", [None, 32, 32, 3])], "kwargs": {}}]}]
    prev, width = "flat", 3072
    for i, u in enumerate([*units, 10]):
        name = f"d{i}"
        layers.append({"module": "keras.layers", "class_name": "Dense", "name": name,
                       "config": {"name": name, "dtype": "float32", "units": u, "use_bias": True,
                                  "activation": "softmax" if u == 10 and i == len(units) else "linear",
                                  "kernel_initializer": zeros, "bias_initializer": zeros},
                       "build_config": {"input_shape": [None, width]},
                       "inbound_nodes": [{"args": [_tensor(prev, [None, width])], "kwargs": {}}]})
        prev, width = name, u
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "m", "layers": layers, "input_layers": [["input", 0, 0]], "output_layers": [[prev, 0, 0]]}}


def write_keras(path, config: dict | str, members: dict[str, bytes | int]) -> None:
    """A .keras zip: metadata.json, config.json and `members` (bytes, or a count of zero bytes streamed in)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        for name, data in members.items():
            if isinstance(data, int):
                with zf.open(name, "w", force_zip64=True) as fh:
                    for _ in range(data // 2**20):
                        fh.write(bytes(2**20))
            else:
                zf.writestr(name, data)


def compressed_h5(shapes: list[tuple[int, int]]) -> bytes:
    """An HDF5 weights file whose datasets are gzip-chunked and never written: kilobytes for gigabytes of zeros."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for i, (a, b) in enumerate(shapes):
            g = f.create_group(f"layers/dense_{i}/vars")
            g.create_dataset("0", shape=(a, b), dtype="<f4", compression="gzip", chunks=(min(a, 1024), min(b, 1024)))
            g.create_dataset("1", shape=(b,), dtype="<f4")
    return buf.getvalue()


LOAD = """
    import sys
    from explorer import inference
    try:
        inference.load_model(sys.argv[1])
        print("LOADED")
    except inference.InferenceError as exc:
        print("REFUSED", exc)
    print("KERAS" if "keras" in sys.modules or "tensorflow" in sys.modules else "NO-KERAS")
"""


def test_a_tiny_keras_file_declaring_a_huge_model_is_refused_before_keras(tmp_path):
    path = tmp_path / "huge.keras"
    write_keras(path, dense_config([16000, 16000]), {"model.weights.h5": compressed_h5([(3072, 16000), (16000, 16000)])})
    assert path.stat().st_size < 50_000
    out = run_capped(LOAD, str(path))
    assert out.returncode == 0, out.stderr
    assert "REFUSED" in out.stdout and "305,344,010 parameters" in out.stdout and "NO-KERAS" in out.stdout


def test_weights_smaller_than_the_declared_parameters_are_refused(tmp_path):
    path = tmp_path / "hollow.keras"  # under the parameter cap, but the weights cannot be there
    write_keras(path, dense_config([4000, 4000]), {"model.weights.h5": compressed_h5([(3072, 4000), (4000, 4000)])})
    out = run_capped(LOAD, str(path))
    assert "REFUSED" in out.stdout and "weights are not all there" in out.stdout and "NO-KERAS" in out.stdout


def test_an_archive_declaring_a_huge_member_is_refused(tmp_path):
    path = tmp_path / "member.keras"
    write_keras(path, dense_config([16]), {"model.weights.h5": b"\0" * 300_000, "pad.bin": 500 * 2**20})
    assert path.stat().st_size < 2 * 2**20
    out = run_capped(LOAD, str(path))
    assert "REFUSED" in out.stdout and "unpack" in out.stdout and "NO-KERAS" in out.stdout
    small = tmp_path / "small-member.keras"  # under the server's limit, yet far more than 50k parameters need
    write_keras(small, dense_config([16]), {"model.weights.h5": b"\0" * 300_000, "pad.bin": 64 * 2**20})
    with pytest.raises(inference.InferenceError, match="far more than"):
        inference.load_model(small)


def test_unpacked_limit_follows_the_parameter_cap(monkeypatch):
    assert inference.unzipped_limit() == inference.MAX_UNZIPPED_BYTES < 800 * 2**20
    monkeypatch.setenv(guards.MAX_PARAMS_ENV, "1000000")
    assert inference.unzipped_limit() < 40 * 2**20
    assert inference.unzipped_limit(max_params=10) < inference.unzipped_limit()


def test_deeply_nested_json_is_one_error(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep-meta.keras"
    write_keras(path, dense_config([16]), {"model.weights.h5": b"\0" * 300_000, "explorer.json": deep.encode()})
    for source in (path, path.read_bytes()):
        with pytest.raises(inference.InferenceError, match="nests 100,000 levels deep"):
            inference.read_meta(source)
    deep_config = tmp_path / "deep-config.keras"
    write_keras(deep_config, deep, {"model.weights.h5": b"\0" * 300_000})
    with pytest.raises(inference.InferenceError, match="config.json is not valid JSON"):
        inference.load_model(deep_config)
    with pytest.raises(ConfigError, match="nests"):
        ResNetConfig.from_json(deep)
    from explorer.ui.export import import_config

    with pytest.raises(ConfigError, match="nests"):
        import_config(("[" * 30_000 + "]" * 30_000).encode())
    assert load_json('{"a": ["[[[[", {"b": "\\"{{"}]}') == {"a": ["[[[[", {"b": '"{{'}]}


def test_unknown_weighted_layers_and_undeclared_shapes_are_refused():
    cfg = dense_config([16])
    cfg["config"]["layers"][2]["class_name"] = "LSTM"
    with pytest.raises(inference.InferenceError, match="LSTM"):
        inference.model_size(cfg)
    cfg = dense_config([16])
    del cfg["config"]["layers"][2]["build_config"]
    with pytest.raises(inference.InferenceError, match="input shape"):
        inference.model_size(cfg)
    with pytest.raises(inference.InferenceError, match="Functional or Sequential"):
        inference.model_size({"class_name": "Dense"})


def _saved_config(model) -> dict:
    with zipfile.ZipFile(io.BytesIO(inference.save_model_bytes(model))) as zf:
        return json.loads(zf.read("config.json"))


@pytest.mark.parametrize("config", [
    ResNetConfig(depth=8, filters=4),  # option A: ZeroPadShortcut
    PRESETS["keras-resnet20v1"].config.replace(depth=8, filters=4),  # conv bias, projection, flatten head
    PRESETS["tutorial"].config.replace(depth=11, filters=4),  # dropout, dense 512, BN after dense
    PRESETS["preact-resnet164"].config.replace(depth=11, filters=4, shortcut="B"),
], ids=["A", "keras", "tutorial", "preact-B"])
def test_counted_parameters_equal_keras_for_networks_built_here(config):
    from explorer.keras_build import build_model

    model = build_model(config)
    size = inference.model_size(_saved_config(model))
    assert size.params == model.count_params() == build(config).total_params
    assert size.activation_bytes >= 32 * 32 * 3 * 4


def test_counted_parameters_equal_keras_for_other_image_layers():
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, groups=1)(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = keras.layers.SeparableConv2D(12, 3, padding="same")(x)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.Conv2DTranspose(4, 3, strides=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax", use_bias=False)(x)
    model = keras.Model(inputs, keras.Sequential([keras.layers.Dense(7), keras.layers.Dense(3)])(outputs))
    assert inference.model_size(_saved_config(model)).params == model.count_params()


def test_uploads_have_a_tighter_cap_and_a_legitimate_model_still_loads(tmp_path):
    from explorer.keras_build import build_model

    model = build_model(ResNetConfig(depth=8, filters=4))
    data = inference.save_model_bytes(model)
    loaded = inference.load_model(data, max_params=model.count_params())
    assert loaded.model.count_params() == model.count_params()
    with pytest.raises(inference.InferenceError, match=f"at most {model.count_params() - 1:,}"):
        inference.load_model(data, max_params=model.count_params() - 1)


# --------------------------------------------------------------------------- building networks
def test_memory_cap_says_what_fits(monkeypatch):
    ag = build(PRESETS["resnet56"].config.replace(filters=64))
    need = guards.estimate_build_bytes(ag)
    assert need > ag.total_params * 4 * 2
    monkeypatch.setenv(guards.MAX_TRAIN_MEMORY_ENV, "300")
    with pytest.raises(ConfigError, match=r"parameters fit") as info:
        guards.check_build_memory(ag, free=2**40)
    assert f"{ag.total_params:,} parameters" in info.value.message and "\n" not in str(info.value)
    monkeypatch.delenv(guards.MAX_TRAIN_MEMORY_ENV)
    with pytest.raises(ConfigError, match="free right now"):
        guards.check_build_memory(ag, free=need // 2)
    assert guards.check_build_memory(ag, free=2**40) == need
    monkeypatch.setenv(guards.MAX_PARAMS_ENV, str(ag.total_params - 1))
    with pytest.raises(ConfigError, match=guards.MAX_PARAMS_ENV):
        guards.check_build_memory(ag, free=2**40)


def test_huge_network_is_refused_before_allocation_everywhere():
    out = run_capped(f"""
        import sys
        from explorer import api, gradflow
        from explorer.annotate import build
        from explorer.config import ConfigError, ResNetConfig
        from explorer.ui.export import build_keras_file
        cfg = ResNetConfig.from_json({HUGE.to_json()!r})
        calls = [lambda: build_keras_file(cfg, build(cfg)), lambda: gradflow.measure(cfg, gradflow.random_batch(
                 cfg.replace(filters=4), 2)), lambda: gradflow.load_batch(cfg, size=8), lambda: api.keras_model(cfg),
                 lambda: api.keras_model("resnet56", filters=4096)]
        for call in calls:
            try:
                call()
                print("BUILT")
            except ConfigError as exc:
                print("REFUSED", exc.message)
        print("KERAS" if "keras" in sys.modules or "tensorflow" in sys.modules else "NO-KERAS")
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["REFUSED"] * 5 + ["NO-KERAS"], out.stdout
    assert all("55,568,494,602 parameters" in line for line in lines[:5])


def test_cli_gradflow_of_a_huge_network_is_one_line_exit_2():
    out = run_capped("", "gradflow", "--preset", "resnet56", "--filters", "4096")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "parameters" in out.stderr and "EXPLORER_MAX_PARAMS" in out.stderr


def test_export_tab_refuses_a_huge_build_with_a_message():
    out = run_capped(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(ROOT / "explorer" / "app.py")!r}, default_timeout=120)
        at.query_params["preset"] = "resnet56"
        at.query_params["filters"] = "4096"
        at.session_state["tab"] = "Export"
        at.run()
        at.button(key="build_keras").click().run()
        print("EXCEPTION" if at.exception else "NO-EXCEPTION")
        print("MESSAGE" if any("55,568,494,602 parameters" in e.value for e in at.error) else "NO-MESSAGE")
        print("KERAS" if "keras" in sys.modules or "tensorflow" in sys.modules else "NO-KERAS")
    """, limit=6 * 2**30)
    assert out.stdout.split() == ["NO-EXCEPTION", "MESSAGE", "NO-KERAS"], out.stdout + out.stderr[-2000:]


# --------------------------------------------------------------------------- killable slow computations
def test_a_computation_over_the_limit_is_killed_and_frees_its_slot():
    started = time.monotonic()
    with pytest.raises(guards.TooSlow, match="was stopped"):
        guards.run_killable(0.3, time.sleep, 60)
    assert time.monotonic() - started < 30  # (killed, not waited for)
    assert not multiprocessing.active_children()
    for _ in range(guards.MAX_SLOW):  # both slots are free again
        assert guards._BUSY.acquire(blocking=False)
    for _ in range(guards.MAX_SLOW):
        guards._BUSY.release()
    assert guards.run_killable(120, os.getpid) != os.getpid()


def test_errors_in_the_child_come_back_as_one_line():
    from explorer.config import parse_input_shape

    with pytest.raises(ConfigError, match="HxWxC") as info:
        guards.run_killable(120, parse_input_shape, "bad")
    assert info.value.field == "input"
    with pytest.raises(guards.ComputationFailed, match="ValueError"):
        guards.run_killable(120, int, "x")


def test_a_third_slow_computation_is_refused_at_once():
    for _ in range(guards.MAX_SLOW):
        assert guards._BUSY.acquire(blocking=False)
    try:
        with pytest.raises(guards.TooSlow, match="still running"):
            guards.run_killable(120, os.getpid)
    finally:
        for _ in range(guards.MAX_SLOW):
            guards._BUSY.release()


def test_the_child_does_not_run_a_page_script_installed_as_main(tmp_path, monkeypatch):
    import types

    marker = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('page ran')\nraise SystemExit(3)\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)  # what Streamlit installs as __main__ for every page run
    monkeypatch.setitem(sys.modules, "__main__", page)
    assert guards.run_killable(120, os.getpid) != os.getpid()
    assert not marker.exists() and sys.modules["__main__"] is page


def test_a_build_over_the_limit_is_killed_and_its_file_removed():
    from explorer.ui.export import build_keras_file

    cfg = ResNetConfig(depth=8, filters=4)
    with pytest.raises(guards.TooSlow, match="stopped"):
        build_keras_file(cfg, build(cfg), seconds=0.5)  # TensorFlow alone takes longer to start
    assert not list(guards.private_dir().glob("*.keras"))
    assert not multiprocessing.active_children()
    path = build_keras_file(cfg, build(cfg), seconds=300)
    try:
        assert path.parent == guards.private_dir() and path.read_bytes().startswith(b"PK")
    finally:
        path.unlink()


# --------------------------------------------------------------------------- private files
def test_private_folder_is_0700_random_and_removed_at_exit():
    out = run_capped("""
        from explorer import guards
        d = guards.private_dir()
        f = guards.private_file(".keras")
        f.write_bytes(b"x")
        print(d, oct(d.stat().st_mode & 0o777), f.parent == d, guards.private_dir() == d, f.name != guards.private_file(".keras").name)
    """)
    folder, mode, *flags = out.stdout.split()
    assert mode == "0o700" and flags == ["True", "True", "True"]
    assert os.path.basename(folder).startswith("resnet-explorer-")
    assert not os.path.exists(folder)


def test_prune_keeps_fresh_files():
    old, fresh = guards.private_file(".keras"), guards.private_file(".keras")
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    guards.prune_private(3600, "*.keras")
    assert not old.exists() and fresh.exists()
    fresh.unlink()


# --------------------------------------------------------------------------- gradient flow's random numbers
def test_gradflow_leaves_the_global_numpy_rng_alone_and_stays_deterministic():
    cfg = PRESETS["tutorial"].config.replace(depth=11, filters=4)  # with dropout
    batch = gradflow.random_batch(cfg, 4)
    np.random.seed(1234)
    before = np.random.get_state()
    a = gradflow.measure(cfg, batch, seed=5)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert gradflow.measure(cfg, batch, seed=5) == a
    assert gradflow.measure(cfg, batch, seed=6) != a


def test_a_training_above_the_parameter_cap_is_refused_before_it_starts(monkeypatch):
    from explorer import guards
    from explorer.annotate import build

    ag = build(ResNetConfig(depth=8, filters=16))
    monkeypatch.setenv(guards.MAX_PARAMS_ENV, str(ag.total_params - 1))
    with pytest.raises(ConfigError, match="at most") as err:
        guards.check_training_memory(ag, batch_size=32, images=1000, free=2**40)
    assert err.value.field == "filters"
    monkeypatch.setenv(guards.MAX_PARAMS_ENV, str(ag.total_params))
    assert guards.check_training_memory(ag, batch_size=32, images=1000, free=2**40) > 0
