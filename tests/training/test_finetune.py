"""Fine-tuning from ImageNet weights: a TrainJob loads a keras.applications weights file into our resnet50v2, keeps the
frozen layers byte-identical to the file and trains the rest; refusals say where to put the file; CLI, sidebar and Train tab.

The weights file is keras.applications' own ResNet50V2 with random weights (no download needed), saved by the test.
"""

from __future__ import annotations

import json
import threading

import keras
import numpy as np
import pytest

from explorer import cli, pretrained
from explorer import training as T
from explorer.annotate import build
from explorer.config import ConfigError
from explorer.data import Cifar10
from explorer.presets import PRESETS
from tests.helpers import CLASSES, RUN, SIDE, finetune, metrics, open_tab, page, run_app, texts, url, write_folders


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """keras.applications ResNet50V2 without the top, random weights, saved as a weights file; its weights by layer name."""
    keras.utils.set_random_seed(11)
    ref = keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(SIDE, SIDE, 3))
    path = tmp_path_factory.mktemp("weights") / "resnet50v2_notop.weights.h5"
    ref.save_weights(str(path))
    weights = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in ref.layers if layer.weights}
    return path, weights, ref.count_params()


@pytest.fixture(scope="module")
def data():
    """40 random 32×32 images in 10 classes (in memory, shaped like CIFAR-10): 5 batches of 8."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, SIDE, SIDE, 3), dtype=np.uint8)
    y = np.repeat(np.arange(10, dtype=np.uint8), 4)
    return Cifar10(x, y, x[:10], y[:10], "random images", "binary")


def run_job(config, data, weights) -> T.TrainJob:
    job = T.TrainJob(config, data, T.TrainSettings(weights=str(weights), **RUN), slots=threading.Semaphore(1),
                     check_memory=False).start()
    assert job.join(240)
    assert job.status == "done", job.error
    return job


def same(model, name: str, reference_weights: dict) -> bool:
    """Whether our layer `name` holds exactly (bit for bit) the file's weights of its keras.applications twin."""
    ours = [np.array(w) for w in model.get_layer(name).get_weights()]
    theirs = reference_weights[pretrained.reference_name(name)]
    return len(ours) == len(theirs) and all(a.tobytes() == b.tobytes() for a, b in zip(ours, theirs, strict=True))


def test_whole_body_frozen_only_the_head_trains(reference, data):
    path, weights, ref_params = reference
    config = finetune(freeze=4)
    job = run_job(config, data, path)
    result = job.result()
    json.dumps(result)
    assert result["weights_source"] == str(path) and result["weights_skipped"] == ["predictions"]
    assert result["weights_params_copied"] == ref_params  # every weight of the file found its layer
    assert result["weights_layers_copied"] == len(weights)
    assert result["settings"]["weights"] == str(path)
    ag = build(config)
    frozen = [n.name for n in ag.graph if n.attrs.get("frozen") and job.model.get_layer(n.name).weights]
    assert frozen and "stem_conv" in frozen and "stage4_block3_conv3" in frozen
    for name in frozen:
        assert same(job.model, name, weights), name
    assert not same(job.model, "head_bn", weights)  # the head's BN came from the file and trained
    trainable = sum(int(np.prod(w.shape)) for w in job.model.trainable_weights)
    assert trainable == ag.trainable_params == 2 * 2048 + 2048 * 10 + 10


def test_freeze_two_stages_trains_stage_three(reference, data):
    path, weights, _ = reference
    job = run_job(finetune(freeze=2), data, path)
    for name in ("stem_conv", "stage1_block1_conv1", "stage1_block3_bn3", "stage2_block4_conv3", "stage2_block1_shortcut"):
        assert same(job.model, name, weights), name
    for name in ("stage3_block1_conv1", "stage3_block1_bn1", "stage4_block3_conv3", "head_bn"):
        assert not same(job.model, name, weights), name


def test_refusals_say_what_to_do(reference, data, tmp_path, monkeypatch):
    path, _, _ = reference
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = T.TrainSettings(weights=str(path), **RUN)
    with pytest.raises(ConfigError) as err:  # not a ResNetV2 body
        T.TrainJob(PRESETS["resnet20"].config, data, settings)
    assert "resnet50v2" in err.value.hint
    with pytest.raises(ConfigError) as err:  # no such file
        T.TrainJob(finetune(4), data, T.TrainSettings(weights=str(tmp_path / "missing.h5"), **RUN))
    assert "~/.keras/models" in err.value.hint and "resnet50v2_weights_tf_dim_ordering_tf_kernels" in err.value.hint
    with pytest.raises(ConfigError):
        T.TrainSettings(weights="  ")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an HDF5 file")
    job = T.TrainJob(finetune(4), data, T.TrainSettings(weights=str(bad), **RUN), slots=threading.Semaphore(1),
                     check_memory=False).start()
    assert job.join(120)
    assert job.status == "failed" and "bad.h5 does not fit ResNet50V2" in job.error and "~/.keras/models" in job.error
    assert job.result()["weights_source"] is None


def test_the_downloaded_file_in_the_keras_cache_serves_a_new_head(tmp_path, monkeypatch):
    """The file keras.applications downloads (legacy .h5, with the classifier) in ~/.keras/models, found by name."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    monkeypatch.setenv("HOME", str(tmp_path))
    assert pretrained.find_weights("resnet50v2", include_top=False, either=True) is None
    keras.utils.set_random_seed(5)
    ref = keras.applications.ResNet50V2(weights=None, input_shape=(SIDE, SIDE, 3))
    cache = tmp_path / ".keras" / "models"
    cache.mkdir(parents=True)
    with h5py.File(cache / pretrained.WEIGHT_FILES["resnet50v2"][0], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)
    found = pretrained.find_weights("resnet50v2", include_top=False, either=True)
    assert found is not None and pretrained.file_has_top(found) is True
    config = finetune(freeze=4, classes=3)
    from explorer.keras_build import build_model

    ours = build_model(config)
    report = pretrained.load_imagenet_weights(ours, config, download=False)
    assert report.source == str(found) and report.skipped == ("predictions",)
    assert report.params == ref.count_params() - ref.get_layer("predictions").count_params()
    x = np.random.default_rng(1).random((1, SIDE, SIDE, 3), dtype=np.float32)
    features = keras.Model(ref.input, ref.get_layer("avg_pool").output)
    ours_features = keras.Model(ours.input, ours.get_layer("head_pool").output)
    np.testing.assert_allclose(np.asarray(ours_features(x)), np.asarray(features(x)), atol=1e-5)


def test_cli_flags(reference, tmp_path, monkeypatch, capsys):
    path, _, _ = reference
    monkeypatch.setenv("HOME", str(tmp_path))
    code = cli.main(["summary", "--preset", "resnet50v2", "--input", "64x64x3", "--classes", "5", "--freeze", "4", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    summary = json.loads(out)
    assert summary["config"]["freeze"] == 4 and summary["trainable_params"] == 2 * 2048 + 2048 * 5 + 5
    # refused before any data is read: another body, a missing file
    code = cli.main(["train", "--preset", "resnet20", "--weights", str(path), "--epochs", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and "resnet50v2" in err and len(err.strip().splitlines()) == 1
    code = cli.main(["train", "--preset", "resnet50v2", "--adapt", "--weights", str(tmp_path / "none.h5"), "--epochs", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and "~/.keras/models" in err


def test_cli_fine_tunes_on_image_folders(reference, tmp_path, capsys):
    path, weights, _ = reference
    root = write_folders(tmp_path / "photos")
    code = cli.main(["train", "--preset", "resnet50v2", "--input", f"{SIDE}x{SIDE}x3", "--freeze", "4", "--image-dir",
                     str(root), "--adapt", "--weights", str(path), "--epochs", "1", "--batch-size", "9",
                     "--precision", "float32", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "done" and result["classes"] == list(CLASSES) and result["config"]["freeze"] == 4
    assert result["weights_layers_copied"] == len(weights) and result["weights_skipped"] == ["predictions"]
    assert f"ImageNet weights: {len(weights)} layers" in err and "frozen: stem + stage 1–4" in err


# --------------------------------------------------------------------------- the app
def test_sidebar_freeze_changes_the_trainable_params_and_the_link():
    at = run_app({"preset": "resnet50v2"})
    before = metrics(at)["Trainable"]
    box = next(w for w in at.sidebar.selectbox if w.label == "Freeze (fine-tuning)")
    assert box.value == 0 and box.options[-1].startswith("4 · whole body")
    box.set_value(4).run()
    assert not at.exception
    assert metrics(at)["Trainable"] != before and url(at)["freeze"] == "4"
    assert any("frozen **" in c.value for c in at.sidebar.caption)
    assert any("Fine-tuning" in c.value and "only the head trains" in c.value for c in at.caption)
    open_tab(at, "Layers")  # the table gains the trainable and frozen columns
    assert "frozen" in at.dataframe[0].proto.column_order and any("layers frozen" in c.value for c in at.caption)
    again = run_app({"preset": "resnet50v2", "freeze": "2"})  # the link round-trips
    assert next(w for w in again.sidebar.selectbox if w.label == "Freeze (fine-tuning)").value == 2
    hidden = run_app({"preset": "resnet50v2", "freeze": "2", "hide": "freeze"})  # a classroom link may hide it
    assert not [w for w in hidden.sidebar.selectbox if w.label == "Freeze (fine-tuning)"]
    assert url(hidden)["freeze"] == "2" and url(hidden)["hide"] == "freeze"


def test_train_tab_offers_imagenet_weights_and_says_where_to_put_them(reference, tmp_path, monkeypatch):
    path, _, _ = reference
    monkeypatch.setenv("HOME", str(tmp_path))
    tiny = page({"depth": 8, "filters": 4}).run()
    assert "train_weights_on" not in [c.key for c in tiny.checkbox]  # not a ResNetV2 body
    at = page(finetune(freeze=4).to_dict()).run()
    assert not at.exception
    at.checkbox(key="train_weights_on").check().run()
    shown = texts(at)
    assert "No ImageNet weights for resnet50v2 on this server" in shown and "~/.keras/models" in shown
    assert "only the head trains" in shown
    at.text_input(key="train_weights_file").input(str(tmp_path / "nowhere.h5")).run()
    assert not at.exception and "No weights file at" in texts(at)
    assert any("~/.keras/models" in w.value for w in at.warning)
    at.text_input(key="train_weights_file").input(str(path)).run()
    assert not at.exception and "Weights found" in texts(at) and not at.warning
