"""Hostile inputs a classroom server must survive, each run in a capped child process that reports its outcome, peak memory and seconds.

    .venv/bin/python benchmarks/bench_attacks.py [--cap-gib 10] [--timeout 120] [--only NAME,NAME]

Every attack runs as `python -c …` or `python -m explorer …` in a child with an address-space limit
(`RLIMIT_AS`, `--cap-gib`) and a wall-clock timeout, so a guard that fails shows up as a MemoryError, a
traceback or a timeout instead of taking the machine down. Prints one row per attack: exit status, the
last line the child printed, its peak resident memory and its wall time. Asserts nothing: the
refusals themselves are tested in tests/keras/test_size_guards.py, tests/training/test_data.py, tests/ui/test_serverpaths.py
and tests/ui/test_hostile_urls.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERAS_META = json.dumps({"keras_version": "3.15.1", "date_saved": "2026-01-01"})


# ------------------------------------------------------------------------------------------------ attack files
def _tensor(shape: list, source: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": "float32", "keras_history": [source, 0, 0]}}


def _dense(name: str, units: int, inputs: int, source: str, activation: str = "linear") -> dict:
    zeros = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
    return {"module": "keras.layers", "class_name": "Dense", "registered_name": None, "name": name,
            "config": {"name": name, "trainable": True, "dtype": "float32", "units": units, "activation": activation,
                       "use_bias": True, "kernel_initializer": zeros, "bias_initializer": zeros},
            "build_config": {"input_shape": [None, inputs]},
            "inbound_nodes": [{"args": [_tensor([None, inputs], source)], "kwargs": {}}]}


def dense_model_config(units: list[int]) -> dict:
    """The config.json of a Keras Functional model: a 32×32×3 input, Flatten, one Dense per entry of `units`, Dense(10)."""
    layers = [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "input", "inbound_nodes": [],
         "config": {"batch_shape": [None, 32, 32, 3], "dtype": "float32", "sparse": False, "ragged": False, "name": "input",
                    "optional": False}},
        {"module": "keras.layers", "class_name": "Flatten", "registered_name": None, "name": "f",
         "config": {"name": "f", "trainable": True, "dtype": "float32", "data_format": "channels_last"},
         "build_config": {"input_shape": [None, 32, 32, 3]},
         "inbound_nodes": [{"args": [_tensor([None, 32, 32, 3], "input")], "kwargs": {}}]},
    ]
    source, width = "f", 32 * 32 * 3
    for i, u in enumerate(units):
        layers.append(_dense(f"d{i}", u, width, source))
        source, width = f"d{i}", u
    layers.append(_dense("out", 10, width, source, "softmax"))
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "build_config": {"input_shape": None},
            "config": {"name": "m", "trainable": True, "layers": layers, "input_layers": [["input", 0, 0]],
                       "output_layers": [["out", 0, 0]]}}


def dense_weights(units: list[int], *, lazy: bool) -> bytes:
    """The model.weights.h5 member for `dense_model_config(units)`; `lazy`: gzip-chunked datasets never written (a few KB)."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        shapes = list(zip([32 * 32 * 3, *units], [*units, 10], strict=True))
        for i, (rows, cols) in enumerate(shapes):
            group = f.create_group(f"layers/{'dense' if i == 0 else f'dense_{i}'}/vars")
            kw = {"compression": "gzip", "compression_opts": 9, "chunks": (min(rows, 1024), min(cols, 1024))} if lazy else {}
            group.create_dataset("0", shape=(rows, cols), dtype="<f4", **kw)
            group.create_dataset("1", shape=(cols,), dtype="<f4")
        f.create_group("layers/flatten/vars")
        f.create_group("layers/input_layer/vars")
        f.create_group("vars")
    return buf.getvalue()


def write_keras(path: Path, units: list[int], *, lazy: bool = False, extra: dict[str, str] | None = None,
                zero_member_mib: int = 0) -> Path:
    """A `.keras` archive of `dense_model_config(units)`, optionally with extra members or a zero-filled member."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("metadata.json", KERAS_META)
        zf.writestr("config.json", json.dumps(dense_model_config(units)))
        zf.writestr("model.weights.h5", dense_weights(units, lazy=lazy))
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
        if zero_member_mib:
            with zf.open("pad.bin", "w", force_zip64=True) as fh:
                for _ in range(zero_member_mib):
                    fh.write(bytes(2**20))
    return path


def write_files(work: Path) -> dict[str, Path]:
    """Every attack file under `work`; returns them by name."""
    from PIL import Image

    files = {
        "huge_dense": write_keras(work / "huge-dense.keras", [16000, 16000], lazy=True),
        "big_member": write_keras(work / "big-member.keras", [16, 16], zero_member_mib=700),
        "deep_meta": write_keras(work / "deep-meta.keras", [16, 16], extra={"explorer.json": "[" * 200_000 + "]" * 200_000}),
        "image": work / "img.png",
        "deep_config": work / "deep-config.json",
        "fifo": work / "pipe.json",
    }
    Image.new("RGB", (40, 40), (200, 30, 30)).save(files["image"])
    files["deep_config"].write_text("[" * 30_000 + "]" * 30_000)
    os.mkfifo(files["fifo"])
    return files


# ------------------------------------------------------------------------------------------------ in-child scripts
BIG_PICKLE = """
import pickle, sys
from pathlib import Path
import numpy as np
from explorer import data
class Big:  # a 400-KB pickle that asks numpy for a (200000, 3072) array
    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (200_000, 3072), b"B"))
folder = Path(sys.argv[1]) / "cifar-10-batches-py"
folder.mkdir(parents=True, exist_ok=True)
for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    raw = pickle.dumps({b"batch_label": name.encode(), b"labels": [i % 10 for i in range(200_000)], b"data": Big()}, protocol=3)
    (folder / name).write_bytes(raw.replace(b"numpy._core.multiarray\\n", b"numpy.core.multiarray\\n"))
try:
    data.load_cifar10(sys.argv[1], allow_download=False)
    print("loaded")
except data.DataError as exc:
    print("DataError:", exc)
"""

FIFO_FOLDER = """
import os, sys
from pathlib import Path
import numpy as np
from PIL import Image
from explorer.imagefolder import load_image_folders
root = Path(sys.argv[1]) / "folders"
for cls in ("a", "b"):
    (root / cls).mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / cls / f"{i}.png")
os.mkfifo(root / "a" / "pipe.png")
images = load_image_folders(root, image_size=(8, 8))
print(f"{images.n_train}+{images.n_test} images; {images.skipped_text()}")
"""

HUGE_BUILD = """
from explorer.annotate import build
from explorer.config import ConfigError
from explorer.presets import PRESETS
from explorer.ui.export import build_keras_file
config = PRESETS["resnet56"].config.replace(filters=4096)
try:
    print("built", build_keras_file(config, build(config)))
except ConfigError as exc:
    print("ConfigError:", exc)
"""

SERVED_PATHS = """
from explorer import serverpaths
from explorer.data import DataError
rules = serverpaths.policy(served=True)
for path in ("/etc/shadow", "/root", "/nonexistent", "/root/../etc"):
    try:
        rules.check(path, what="image folder")
        print(path, "allowed")
    except DataError as exc:
        print(path, "->", exc)
"""

HIDE_JUNK = """
import time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("explorer/app.py", default_timeout=300)
at.query_params["hide"] = ",".join(f"junk{i}" for i in range(30_000))
at.run()
times = []
for _ in range(3):
    t = time.perf_counter(); at.run(); times.append(time.perf_counter() - t)
print(f"reruns {', '.join(f'{x:.2f}' for x in times)} s; {len(at.warning)} warning(s); {len(at.exception)} exception(s)")
"""


def attacks(files: dict[str, Path], work: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name → (child command line after `python`, extra environment)."""
    explorer = ["-m", "explorer"]
    served = {"EXPLORER_SHARED": "1", "EXPLORER_DATA_ROOTS": str(work / "roots")}
    return {
        "huge-dense.keras (1.6 KB, 305 M params)": ([*explorer, "predict", "--model", str(files["huge_dense"]), str(files["image"])], {}),
        "big-member.keras (700 MiB zero member)": ([*explorer, "predict", "--model", str(files["big_member"]), str(files["image"])], {}),
        "deep-meta.keras (explorer.json 200,000 deep)": ([*explorer, "predict", "--model", str(files["deep_meta"]), str(files["image"])], {}),
        "gradflow resnet56 --filters 4096": ([*explorer, "gradflow", "--preset", "resnet56", "--filters", "4096"], {}),
        "Build .keras resnet56 filters=4096": (["-c", HUGE_BUILD], {}),
        "CIFAR python batches of 200,000 rows": (["-c", BIG_PICKLE, str(work / "pickles")], {}),
        "config JSON nested 30,000 deep": ([*explorer, "summary", "--config", str(files["deep_config"])], {}),
        "summary --config /dev/zero": ([*explorer, "summary", "--config", "/dev/zero"], {}),
        "predict --model /dev/zero": ([*explorer, "predict", "--model", "/dev/zero", str(files["image"])], {}),
        "summary --config FIFO": ([*explorer, "summary", "--config", str(files["fifo"])], {}),
        "image folder with a FIFO": (["-c", FIFO_FOLDER, str(work)], {}),
        "served: system paths typed into a page": (["-c", SERVED_PATHS], served),
        "?hide= with 30,000 junk names": (["-c", HIDE_JUNK], {}),
    }


# ------------------------------------------------------------------------------------------------ running
def run_capped(args: list[str], env: dict[str, str], *, cap_bytes: int, timeout: float) -> tuple[str, str, float, float]:
    """Run `python ARGS` under an address-space cap; returns (status, last line, peak RSS in MiB, seconds)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=limit)
        status = None
        while time.perf_counter() - started < timeout:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)  # wait4: this child's own peak memory
            if pid:
                status = f"exit {os.waitstatus_to_exitcode(wait_status)}"
                break
            time.sleep(0.02)
        if status is None:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
            status = f"killed after {timeout:.0f} s"
        proc.returncode = -1  # reaped above
        seconds = time.perf_counter() - started
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.strip()]
    return status, (lines[-1] if lines else "")[:220], usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-gib", type=float, default=10.0, help="address-space cap of each child (GiB)")
    parser.add_argument("--timeout", type=float, default=120.0, help="wall-clock limit of each child (s)")
    parser.add_argument("--only", default="", help="comma-separated substrings of the attack names to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-attacks-") as tmp:
        work = Path(tmp)
        (work / "roots").mkdir()
        table = attacks(write_files(work), work)
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        print(f"# bench_attacks — cap {args.cap_gib:g} GiB of address space, timeout {args.timeout:g} s per attack")
        print("| attack | status | peak RSS | seconds | last line |")
        print("|---|---|---|---|---|")
        for name, (child, env) in table.items():
            if wanted and not any(w in name for w in wanted):
                continue
            status, last, peak, seconds = run_capped(child, env, cap_bytes=int(args.cap_gib * 2**30), timeout=args.timeout)
            print(f"| {name} | {status} | {peak:,.0f} MiB | {seconds:.2f} | {last} |", flush=True)


if __name__ == "__main__":
    main()
