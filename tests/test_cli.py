"""CLI: presets table, summary JSON schema, config round-trip, exit codes, no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from explorer.cli import main
from explorer.presets import PRESETS
from tests.conftest import ROOT


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_every_preset(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    for name in PRESETS:
        assert name in out
    code, out, _ = run(capsys, "presets", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(PRESETS)


def test_summary_json_schema(capsys):
    code, out, err = run(capsys, "summary", "--preset", "resnet20", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert set(data) >= {"config", "depth", "total_params", "trainable_params", "non_trainable_params", "macs",
                         "layers", "diagnostics"}
    assert data["depth"] == 20 and data["total_params"] == 271_098
    assert data["trainable_params"] + data["non_trainable_params"] == data["total_params"]
    assert data["diagnostics"] == []
    first, last = data["layers"][0], data["layers"][-1]
    assert set(first) == {"name", "type", "stage", "block", "role", "output_shape", "params", "macs", "receptive_field"}
    assert first["output_shape"] == [32, 32, 3] and first["type"] == "InputLayer"
    assert last == {"name": "predictions", "type": "Dense", "stage": 4, "block": 0, "role": "head",
                    "output_shape": [10], "params": 650, "macs": 640, "receptive_field": 109}
    assert sum(layer["params"] for layer in data["layers"]) == data["total_params"]


def test_config_round_trips_through_config_file(capsys, tmp_path):
    _, out, _ = run(capsys, "summary", "--preset", "tutorial", "--depth", "29", "--shortcut", "C", "--json")
    first = json.loads(out)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(first["config"]))
    _, out, _ = run(capsys, "summary", "--config", str(path), "--json")
    assert json.loads(out) == first
    assert first["config"]["depth"] == 29 and first["config"]["shortcut"] == "C"


def test_overrides(capsys):
    _, out, _ = run(capsys, "summary", "--preset", "resnet56", "--blocks", "1,2,3,4", "--json")
    data = json.loads(out)
    assert data["config"]["stages"] == 4 and data["config"]["blocks"] == [1, 2, 3, 4]
    assert data["depth"] == 2 * 10 + 2
    _, out, _ = run(capsys, "summary", "--block", "bottleneck", "--depth", "29", "--input", "64x48x1", "--classes", "5",
                    "--json")
    data = json.loads(out)
    assert data["layers"][0]["output_shape"] == [64, 48, 1] and data["layers"][-1]["output_shape"] == [5]


def test_diagnostics_exit_3_and_still_print(capsys):
    code, out, err = run(capsys, "summary", "--preset", "resnet20", "--shortcut", "identity", "--json")
    assert code == 3
    data = json.loads(out)
    assert [d["node"] for d in data["diagnostics"]] == ["stage2_block1_add", "stage3_block1_add"]
    diag = data["diagnostics"][0]
    assert set(diag) >= {"node", "message", "shapes", "hint"}
    assert diag["shapes"] == [[16, 16, 32], [32, 32, 16]]
    assert "stage2_block1_add" in err
    code, out, _ = run(capsys, "summary", "--preset", "resnet20", "--shortcut", "identity")
    assert code == 3 and "predictions" in out


@pytest.mark.parametrize("argv", [
    ["summary", "--preset", "resnet21"],
    ["summary", "--depth", "21"],
    ["summary", "--input", "32x32"],
    ["summary", "--blocks", "a,b"],
    ["summary", "--filters", "0"],
    ["summary", "--config", "/nonexistent/cfg.json"],
    ["summary", "--shortcut", "D"],
    ["summary", "--depth", "abc"],
    ["summary", "--bogus"],
    ["nonsense"],
    [],
])
def test_bad_input_exits_2_with_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc_info:
        code = main(argv)
        raise SystemExit(code)
    assert exc_info.value.code == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err


def test_bad_config_file(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"depth": 21}')
    code, _, err = run(capsys, "summary", "--config", str(path))
    assert code == 2 and "6n+2" in err and "20 or 26" in err
    path.write_text('{"depht": 20}')
    code, _, err = run(capsys, "summary", "--config", str(path))
    assert code == 2 and "depht" in err


def test_summary_csv(capsys):
    code, out, _ = run(capsys, "summary", "--preset", "resnet20", "--csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("name,type,stage,block,role,output_shape,params")
    assert len(lines) == 1 + 71


def test_summary_does_not_import_tensorflow():
    code = (
        "import sys; from explorer.cli import main; "
        "rc = main(['summary', '--preset', 'resnet110', '--json']); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'; "
        "sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["depth"] == 110


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "explorer", "summary", "--preset", "resnet20", "--depth", "21"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "20 or 26" in proc.stderr


def test_dot_to_stdout_and_files(capsys, tmp_path):
    code, out, _ = run(capsys, "dot", "--preset", "resnet20")
    assert code == 0 and out.startswith("digraph") and "stage2_block1" in out
    code, out, _ = run(capsys, "dot", "--preset", "resnet56", "--level", "layer", "--expand", "stage2", "--rankdir", "LR")
    assert code == 0 and "stage2_block1_conv1" in out and "rankdir=LR" in out
    target = tmp_path / "net.dot"
    assert run(capsys, "dot", "--preset", "resnet20", "-o", str(target))[0] == 0
    assert target.read_text().startswith("digraph")
    from explorer.diagram import dot_available

    if dot_available():
        for suffix, magic in (("svg", b"<?xml"), ("png", b"\x89PNG")):
            path = tmp_path / f"net.{suffix}"
            assert run(capsys, "dot", "--preset", "resnet20", "-o", str(path))[0] == 0
            assert path.read_bytes().startswith(magic)


def test_dot_of_a_broken_network_still_draws(capsys):
    code, out, err = run(capsys, "dot", "--preset", "resnet20", "--shortcut", "identity")
    assert code == 3
    assert "#d62728" in out and "16×16×32" in out and "32×32×16" in out
    assert "stage2_block1_add" in err


@pytest.mark.parametrize("argv", [
    ["dot", "--preset", "resnet20", "--depth", "2000", "--level", "layer"],
    ["dot", "--preset", "resnet20", "-o", "net.txt"],
    ["dot", "--preset", "resnet20", "--expand", "stage9"],
    ["dot", "--preset", "resnet20", "--level", "cube"],
])
def test_dot_refusals_exit_2(capsys, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc_info:
        raise SystemExit(main(argv))
    assert exc_info.value.code == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


# --------------------------------------------------------------------------- path arguments that are not files
def _run_capped(argv: list[str], cwd) -> subprocess.CompletedProcess:
    """`python -m explorer ARGV` with a 2 GB address space and a timeout: reading /dev/zero or a FIFO fails, not hangs."""
    def cap():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "explorer", *argv], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env, preexec_fn=cap)


def test_device_fifo_and_folder_paths_exit_2_with_one_line(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "m.keras").write_bytes(b"not a zip")
    (tmp_path / "red.png").write_bytes(b"\x89PNG")
    cases = [
        (["summary", "--config", "/dev/zero"], "config: /dev/zero is not a regular file (it is a character device)"),
        (["summary", "--config", str(fifo)], "is not a regular file (it is a FIFO (named pipe))"),
        (["summary", "--config", str(tmp_path)], "is not a regular file (it is a folder)"),
        (["predict", "--model", "/dev/zero", "/dev/zero"], "model: /dev/zero is not a regular file"),
        (["predict", "--model", "/dev/zero", "red.png"], "model: /dev/zero is not a regular file"),
        (["predict", "--model", "m.keras", "red.png", "/dev/zero"], "image: /dev/zero is not a regular file"),
        (["train", "--data-dir", "/dev/zero"], "data-dir: /dev/zero is not a regular file or a folder"),
        (["gradflow", "--data-dir", str(fifo)], "is not a regular file or a folder (it is a FIFO"),
        (["train", "--image-dir", "/dev/zero"], "image-dir: /dev/zero is not a folder"),
        (["train", "--image-dir", str(tmp_path), "--val-dir", str(fifo)], "val-dir:"),
        (["train", "--preset", "resnet50v2", "--weights", "/dev/zero"], "weights: /dev/zero is not a regular file"),
        (["train", "--out", "/dev/null"], "out: /dev/null is not a folder"),
        (["dot", "-o", str(fifo)], "output:"),
    ]
    for argv, message in cases:
        proc = _run_capped(argv, tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1, (argv, proc.stderr[-2000:])
        assert message in lines[0] and "Traceback" not in proc.stderr, (argv, lines)
        assert " — give " in lines[0], lines  # what to give instead


@pytest.mark.parametrize("payload, message", [
    (b"[" * 30_000 + b"]" * 30_000, "nests 30,000 levels deep"),
    (b'{"depth": ' + b"9" * 5_000 + b"}", "cannot be read as JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_a_hostile_config_file_exits_2_with_one_line(capsys, tmp_path, payload, message):
    path = tmp_path / "cfg.json"
    path.write_bytes(payload)
    code, _, err = run(capsys, "summary", "--config", str(path))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0] and len(lines[0]) < 400, err


def test_diff_compares_a_network_with_its_plain_twin_and_with_another_preset(capsys):
    code, out, _ = run(capsys, "diff", "--preset", "resnet20", "--shortcut-b", "none")
    assert code == 0
    assert "B: depth 20 · v1 · basic blocks · shortcut none" in out
    assert "only in A (11): stage1_block1_add" in out and "stage2_block1_shortcut" in out
    code, out, _ = run(capsys, "diff", "--preset", "resnet20", "--preset-b", "resnet32", "--json")
    data = json.loads(out)
    assert code == 0 and data["a"]["depth"] == 20 and data["b"]["depth"] == 32
    assert data["totals"]["params"] == {"a": 271_098, "b": 466_426}
    assert len(data["only_b"]) == 6 * 7 and not data["only_a"] and not data["same"]
    code, out, _ = run(capsys, "diff", "--preset", "resnet20")
    assert code == 0 and "the two networks are the same, node by node" in out


def test_diff_refuses_a_bad_second_network_in_one_line(capsys):
    code, _, err = run(capsys, "diff", "--preset", "resnet20", "--depth-b", "21")
    assert code == 2 and "depth" in err and "Traceback" not in err


def test_predict_reports_a_missing_model_and_every_missing_image_at_once(capsys, tmp_path):
    code, out, err = run(capsys, "predict", "--model", str(tmp_path / "model.keras"), str(tmp_path / "cat.png"),
                         str(tmp_path / "dog.png"))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 3, err
    assert "model.keras" in lines[0] and "give the path of a model file" in lines[0]
    assert "cat.png" in lines[1] and "dog.png" in lines[2] and "give the path of an image" in lines[2]


def test_sweep_trains_each_depth_with_one_budget_and_prints_a_row_each(capsys, tmp_path):
    from tests.helpers import write_layout

    write_layout(tmp_path, "binary", n_per_class=10)
    argv = ["sweep", "--preset", "resnet20", "--filters", "4", "--depths", "8,14", "--data-dir", str(tmp_path),
            "--epochs", "1", "--batch-size", "50"]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["backend"] == "process" and result["settings"]["epochs"] == 1
    rows = result["results"]
    assert [(r["network"], r["depth"], r["status"]) for r in rows] == [("depth-8", 8, "done"), ("depth-14", 14, "done")]
    assert rows[0]["params"] < rows[1]["params"]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_seconds"] > 0 and r["images_per_second"] > 0 for r in rows)
    code, out, _ = run(capsys, *argv[:-4], "--epochs", "1", "--batch-size", "50", "--subset", "100")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split() == ["network", "params", "test", "acc", "train", "s", "img/s", "status"]
    assert [line.split()[0] for line in lines[1:]] == ["depth-8", "depth-14"]


def test_sweep_refuses_a_bad_depth_list_in_one_line(capsys):
    code, _, err = run(capsys, "sweep", "--preset", "resnet20", "--depths", "20,x")
    assert code == 2 and "depths: '20,x' is not a list of depths" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "sweep", "--preset", "resnet20", "--depths", "20,21")
    assert code == 2 and "21" in err


def _cli_subprocess(*argv: str, hide_ray: bool = False) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + ("sys.modules['ray'] = None\n" if hide_ray else "")
    code = prelude + f"from explorer.cli import main\nsys.exit(main({list(argv)!r}))\n"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_train_on_ray_without_ray_installed_says_what_to_install(tmp_path):
    out = _cli_subprocess("train", "--preset", "resnet20", "--backend", "ray", "--epochs", "1", hide_ray=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "python -m explorer: error: backend: the Ray backend needs Ray, which is not installed: "
        "pip install -r requirements-cluster.txt (or train with the process backend)"]


def test_train_on_an_unreachable_ray_head_is_one_line_and_exit_2():
    if os.environ.get("CI") == "true":
        import ray  # noqa: F401 - in CI Ray must be there (requirements-dev.txt)
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-cluster.txt)")
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        out = _cli_subprocess("train", "--preset", "resnet20", "--backend", "ray", "--ray-address", address,
                              "--epochs", "1")
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot reach the Ray cluster at {address} (connection refused)" in lines[0]
