"""Inference on images: `predict` CLI on a saved small model (top-5, JSON), bad models and images, metadata, the app panel."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import inference as inf
from explorer.cli import main
from explorer.config import ResNetConfig
from explorer.data import CLASSES, MEAN, STD
from tests.conftest import ROOT

TINY = ResNetConfig(depth=8, filters=4)  # option-A shortcuts: the file needs ZeroPadShortcut
FRUIT = ("apple", "banana", "cherry")
FRUIT_MEAN, FRUIT_STD = (0.6, 0.5, 0.4), (0.2, 0.25, 0.3)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """The CLI's own lines on stderr (TensorFlow may log its start-up there too)."""
    return [line for line in err.splitlines() if line.startswith(("python -m explorer", "Traceback"))]


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny CIFAR model saved with metadata, the same saved plainly, a 3-class model with its own names and stats."""
    from explorer.keras_build import build_model

    root = tmp_path_factory.mktemp("models")
    model = build_model(TINY)
    with_meta = root / "tiny.keras"
    with_meta.write_bytes(inf.save_model_bytes(model))
    plain = root / "plain.keras"
    model.save(plain)
    fruit_model = build_model(TINY.replace(classes=3))
    fruit = root / "fruit.keras"
    fruit.write_bytes(inf.save_model_bytes(fruit_model, inf.meta_for(fruit_model, class_names=FRUIT, mean=FRUIT_MEAN,
                                                                      std=FRUIT_STD)))
    fruit_plain = root / "fruit-plain.keras"
    fruit_model.save(fruit_plain)
    return SimpleNamespace(model=model, with_meta=with_meta, plain=plain, fruit_model=fruit_model, fruit=fruit,
                           fruit_plain=fruit_plain, root=root)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    small = root / "small.png"
    small.write_bytes(png_bytes(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    wide = root / "wide.jpg"
    wide.write_bytes(png_bytes(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8), "JPEG"))
    return [small, wide, ROOT / "assets" / "samples" / "cat.png"]


def expected_probabilities(model, paths, mean=MEAN, std=STD) -> np.ndarray:
    """Independently: the pixels the network should see, normalised by the trainer's own function, through the model."""
    import tensorflow as tf

    from explorer.data import normalise

    batch = []
    for p in paths:
        img = Image.open(p).convert("RGB")
        w, h = img.size
        side = min(w, h)  # centre square, then 32×32
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        batch.append(np.asarray(img.resize((32, 32), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)))
    if mean == MEAN and std == STD:
        x = normalise(tf.constant(np.stack(batch)))  # the trainer's own function
    else:
        x = (np.stack(batch).astype(np.float32) / 255 - np.float32(mean)) / np.float32(std)
    return np.asarray(model.predict(x, verbose=0))


# --------------------------------------------------------------------------- the CLI
def test_predict_json_top5_matches_the_model(capsys, models, images):
    code, out, err = run(capsys, "predict", "--model", models.with_meta, *images, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == str(models.with_meta)
    assert result["classes"] == list(CLASSES)
    assert result["class_names_stored"] is True
    assert result["input_shape"] == [32, 32, 3]
    assert [p["image"] for p in result["predictions"]] == [str(p) for p in images]
    expected = expected_probabilities(models.model, images)
    for row, pred in zip(expected, result["predictions"], strict=True):
        top = pred["top"]
        assert len(top) == 5
        assert all(set(t) == {"class", "probability"} for t in top)
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1 + 1e-6
        order = np.argsort(-row, kind="stable")[:5]
        assert [t["class"] for t in top] == [CLASSES[i] for i in order]
        np.testing.assert_allclose(probs, row[order], rtol=1e-4, atol=1e-6)
    assert "note:" not in err  # names were stored


def test_predict_text_and_top_k(capsys, models, images):
    code, out, _ = run(capsys, "predict", "--model", models.with_meta, images[0], "--top", "3")
    assert code == 0
    ranked = [line for line in out.splitlines() if line.strip()[:2] in ("1.", "2.", "3.", "4.")]
    assert len(ranked) == 3 and all(line.rstrip().endswith("%") for line in ranked)
    code, out, _ = run(capsys, "predict", "--model", models.fruit, images[0], "--top", "9", "--json")
    assert code == 0 and len(json.loads(out)["predictions"][0]["top"]) == 3  # at most the number of classes


def test_predict_as_a_command_returns_top5(models, images):
    """The proof: `python -m explorer predict --model FILE.keras IMAGE` on a saved small model prints its top-5."""
    proc = subprocess.run([sys.executable, "-m", "explorer", "predict", "--model", str(models.with_meta), str(images[2])],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranked = [line.split() for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert [r[0] for r in ranked] == ["1.", "2.", "3.", "4.", "5."]
    assert {r[1] for r in ranked} <= set(CLASSES)
    percents = [float(r[-1].rstrip("%")) for r in ranked]
    assert percents == sorted(percents, reverse=True) and sum(percents) <= 100.01


def test_fallback_names_are_said(capsys, models, images):
    code, out, err = run(capsys, "predict", "--model", models.plain, images[0], "--json")
    assert code == 0
    result = json.loads(out)
    assert result["classes"] == list(CLASSES) and result["class_names_stored"] is False
    assert "note:" in err and "CIFAR-10" in err
    code, out, err = run(capsys, "predict", "--model", models.fruit_plain, images[0], "--json")
    assert code == 0
    assert json.loads(out)["classes"] == ["class 0", "class 1", "class 2"]
    assert "class 0 … class 2" in err


def _exit2_one_line(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_model_files_exit_2_with_one_line(capsys, tmp_path, models, images):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    assert "not a .keras file" in _exit2_one_line(capsys, "predict", "--model", text, images[0])
    h5 = tmp_path / "old.keras"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert "HDF5" in _exit2_one_line(capsys, "predict", "--model", h5, images[0])
    other_zip = tmp_path / "photos.keras"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("a.txt", "hello")
    assert "no config.json" in _exit2_one_line(capsys, "predict", "--model", other_zip, images[0])
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(models.with_meta.read_bytes()[:5000])
    assert "error:" in _exit2_one_line(capsys, "predict", "--model", truncated, images[0])
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(models.plain) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, b"{nonsense" if info.filename == "config.json" else src.read(info))
    # (config.json is now read, and the model sized, before Keras sees the file)
    assert "config.json is not valid JSON" in _exit2_one_line(capsys, "predict", "--model", broken, images[0])
    garbled = tmp_path / "garbled.keras"
    with zipfile.ZipFile(models.plain) as src, zipfile.ZipFile(garbled, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, b"\0" * info.file_size if info.filename == "model.weights.h5" else src.read(info))
    assert "Keras could not load" in _exit2_one_line(capsys, "predict", "--model", garbled, images[0])
    missing = tmp_path / "missing.keras"
    assert "cannot read" in _exit2_one_line(capsys, "predict", "--model", missing, images[0])


def test_bad_images_exit_2_with_one_line(capsys, tmp_path, models, images):
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    assert "not an image" in _exit2_one_line(capsys, "predict", "--model", models.with_meta, images[0], not_image)
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)) + b"\0" * inf.MAX_IMAGE_BYTES)
    assert "at most 10 MiB" in _exit2_one_line(capsys, "predict", "--model", models.with_meta, big)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 5_000)).save(bomb)  # a few kB on disk, 50 megapixels decoded
    assert bomb.stat().st_size < 100_000
    assert "pixels" in _exit2_one_line(capsys, "predict", "--model", models.with_meta, bomb)
    cut = tmp_path / "cut.png"
    cut.write_bytes(images[2].read_bytes()[:200])
    assert "truncated or corrupt" in _exit2_one_line(capsys, "predict", "--model", models.with_meta, cut)
    assert "--top" in _exit2_one_line(capsys, "predict", "--model", models.with_meta, images[0], "--top", "0")


# --------------------------------------------------------------------------- the library
def test_metadata_round_trip_and_use(models, images):
    meta = inf.read_meta(models.fruit)
    assert meta == inf.ModelMeta(class_names=FRUIT, mean=FRUIT_MEAN, std=FRUIT_STD, input_shape=(32, 32, 3))
    assert inf.ModelMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    assert inf.read_meta(models.plain) is None
    assert inf.read_meta(models.fruit.read_bytes()) == meta  # bytes as uploaded
    loaded = inf.load_model(models.fruit.read_bytes(), name="fruit.keras")
    assert loaded.meta == meta and loaded.name == "fruit.keras" and loaded.probabilities
    x = np.stack([inf.read_image(p, loaded.input_size) for p in images[:2]])
    top = inf.predict(loaded, x, top=3)
    expected = expected_probabilities(models.fruit_model, images[:2], FRUIT_MEAN, FRUIT_STD)
    for row, t in zip(expected, top, strict=True):
        np.testing.assert_allclose([p for _, p in t], np.sort(row)[::-1], rtol=1e-4, atol=1e-6)
    # the same model read with CIFAR statistics gives other numbers: the stored stats are used
    other = inf.predict(models.fruit_model, x, FRUIT, MEAN, STD, top=3)
    assert not np.allclose([p for _, p in other[0]], [p for _, p in top[0]])


def test_fallback_meta():
    cifar = inf.fallback_meta(10)
    assert cifar.class_names == CLASSES and not cifar.stored and "CIFAR-10" in cifar.note
    other = inf.fallback_meta(4)
    assert other.class_names == ("class 0", "class 1", "class 2", "class 3") and "class 0 … class 3" in other.note


@pytest.mark.parametrize("bad", [
    [], {"class_names": []}, {"class_names": [1, 2]}, {"class_names": ["a"], "mean": [0.5, 0.5]},
    {"class_names": ["a"], "std": [0.2, 0.0, 0.2]}, {"class_names": ["a"], "mean": [0.5, float("nan"), 0.5]},
    {"class_names": ["a"], "input_shape": [32, 32]}, {"class_names": ["a"], "mean": [True, 0.5, 0.5]},
])
def test_invalid_metadata_is_refused(bad):
    with pytest.raises(inf.InferenceError, match="explorer.json"):
        inf.ModelMeta.from_dict(bad)


def test_metadata_that_does_not_fit_the_model(models):
    data = io.BytesIO(models.plain.read_bytes())
    with zipfile.ZipFile(data, "a") as zf:
        zf.writestr(inf.META_NAME, json.dumps({"class_names": list(FRUIT)}))
    with pytest.raises(inf.InferenceError, match="10 outputs but its stored class names list 3"):
        inf.load_model(data.getvalue())
    broken = io.BytesIO(models.plain.read_bytes())
    with zipfile.ZipFile(broken, "a") as zf:
        zf.writestr(inf.META_NAME, "{")
    with pytest.raises(inf.InferenceError, match="not valid JSON"):
        inf.read_meta(broken.getvalue())


def test_models_that_are_not_image_classifiers():
    import keras

    inputs = keras.Input((10,))
    vector = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    with pytest.raises(inf.InferenceError, match="H×W×3"):
        inf.wrap_model(vector)
    gray = keras.Input((28, 28, 1))
    with pytest.raises(inf.InferenceError, match="28×28×1"):
        inf.wrap_model(keras.Model(gray, keras.layers.Dense(2)(keras.layers.Flatten()(gray))))
    with pytest.raises(inf.InferenceError, match="at most"):
        inf.load_model(b"PK" + b"\0" * (inf.MAX_MODEL_BYTES + 1))


def test_logits_get_a_softmax():
    import keras

    inputs = keras.Input((8, 8, 3))
    logits = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, logits)
    loaded = inf.wrap_model(model)
    assert not loaded.probabilities and not inf.ends_in_softmax(model)
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    top = inf.predict(loaded, x, top=4)
    for t in top:
        assert abs(sum(p for _, p in t) - 1) < 1e-6
    raw = np.asarray(model(inf.preprocess(x)))
    assert [name for name, _ in top[0]] == [f"class {i}" for i in np.argsort(-raw[0], kind="stable")]


def test_read_image_modes(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200  # transparent red: becomes white
    out = inf.read_image(png_bytes(rgba), (32, 32))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and (out == 255).all()
    gray = inf.read_image(png_bytes(np.full((20, 60), 90, np.uint8)), (16, 16))
    assert gray.shape == (16, 16, 3) and (gray == 90).all()
    # centre crop: a wide image keeps its middle
    wide = np.zeros((32, 96, 3), np.uint8)
    wide[:, 32:64] = 255
    assert (inf.read_image(png_bytes(wide), (32, 32)) >= 250).all()
    same = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(inf.read_image(png_bytes(same), (32, 32)), same)  # right size: pixels untouched
    tiff = io.BytesIO()
    Image.fromarray(same).save(tiff, "TIFF")
    with pytest.raises(inf.InferenceError, match="not an image"):
        inf.read_image(tiff.getvalue(), (32, 32))  # only the listed decoders run


def test_trained_job_saves_its_names_and_statistics(models):
    from explorer.training import TrainJob

    job = TrainJob.__new__(TrainJob)  # a finished job, without training: model, data and status are all it reads
    job.model, job.status, job._model_bytes = models.fruit_model, "done", None
    job.data = SimpleNamespace(classes=FRUIT, mean=FRUIT_MEAN, std=FRUIT_STD)
    meta = inf.read_meta(job.model_bytes())
    assert meta.class_names == FRUIT and meta.mean == FRUIT_MEAN and meta.std == FRUIT_STD
    job2 = TrainJob.__new__(TrainJob)
    job2.model, job2.status, job2._model_bytes, job2.data = models.model, "done", None, SimpleNamespace()
    assert inf.read_meta(job2.model_bytes()).class_names == CLASSES  # CIFAR-10 data: its names by default


def test_top_k_bars_figure():
    from explorer.charts import top_k_bars

    fig = top_k_bars([("cat", 0.6), ("dog", 0.3), ("frog", 0.1)], title="x.png")
    bar = fig.data[0]
    assert list(bar.y) == ["frog", "dog", "cat"] and bar.orientation == "h"  # most probable drawn on top
    assert list(bar.text) == ["10.0%", "30.0%", "60.0%"]


# --------------------------------------------------------------------------- the app panel
PAGE = """
import sys
sys.path.insert(0, {root!r})
from explorer.ui.predict import render_predict_expander
render_predict_expander(None)
"""


def test_panel_uploads_a_model_and_images(models, images):
    at = AppTest.from_string(PAGE.format(root=str(ROOT)), default_timeout=120).run()
    assert not at.exception
    uploader = at.file_uploader(key="predict_model_file")
    assert uploader.allowed_type == [".keras"]
    uploader.set_value(("tiny.keras", models.with_meta.read_bytes(), "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert any("tiny.keras" in c.value and "10 classes" in c.value for c in at.caption)
    shots = at.file_uploader(key="predict_images")
    assert shots.accept_multiple_files and ".png" in shots.allowed_type
    files = [(p.name, p.read_bytes(), "image/png") for p in images[:2]]
    files.append(("notes.png", b"hello", "image/png"))
    shots.set_value(files).run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    spec = json.loads(charts[0].proto.spec)
    assert len(spec["data"][0]["y"]) == 5 and set(spec["data"][0]["y"]) <= set(CLASSES)
    assert len(at.get("image")) == 2
    assert len(at.error) == 1 and "notes.png" in at.error[0].value and "not an image" in at.error[0].value
    assert any("32×32 thumbnail" in c.value for c in at.caption)


def test_panel_refuses_a_bad_model_and_says_when_names_are_guessed(models):
    at = AppTest.from_string(PAGE.format(root=str(ROOT)), default_timeout=120).run()
    at.file_uploader(key="predict_model_file").set_value(("x.keras", b"not a zip", "application/octet-stream")).run()
    assert not at.exception
    assert len(at.error) == 1 and "not a .keras file" in at.error[0].value
    assert [u.key for u in at.file_uploader] == ["predict_model_file"]  # no image uploader without a model
    at.file_uploader(key="predict_model_file").set_value(("plain.keras", models.plain.read_bytes(), "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert any("carries no class names" in i.value for i in at.info)


PAGE_TRAINED = """
import sys, types
sys.path.insert(0, {root!r})
import streamlit as st
from explorer.ui.predict import render_predict_expander

@st.cache_resource
def job():
    import keras
    import explorer.keras_build as kb
    kb.zero_pad_shortcut_class()
    model = keras.saving.load_model({path!r}, safe_mode=True)
    return types.SimpleNamespace(active=False, status="done", model=model, has_model=True, name="resnet-8 run",
                                 data=types.SimpleNamespace(classes=("apple", "banana", "cherry")))
render_predict_expander(job())
"""


def test_panel_uses_the_finished_runs_model(models, images):
    at = AppTest.from_string(PAGE_TRAINED.format(root=str(ROOT), path=str(models.fruit_plain)), default_timeout=120).run()
    assert not at.exception
    assert at.radio(key="predict_source").value == "trained"
    assert any("resnet-8 run" in c.value and "apple" in c.value for c in at.caption)
    at.file_uploader(key="predict_images").set_value([(images[0].name, images[0].read_bytes(), "image/png")]).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sorted(spec["data"][0]["y"]) == ["apple", "banana", "cherry"]
    at.radio(key="predict_source").set_value("uploaded").run()
    assert at.file_uploader(key="predict_model_file") is not None
