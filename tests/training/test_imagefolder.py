"""Training on image folders: a PNG fixture written by the test (3 classes, two sizes, a grayscale image, a corrupt file and
a note among them) is loaded, resized and trained on through the loader, the trainer, the CLI and the Train tab."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from explorer import cli
from explorer import training as T
from explorer.config import ConfigError, ResNetConfig
from explorer.data import DataError, make_datasets
from explorer.imagefolder import folder_signature, load_image_folders
from tests.helpers import CLASSES, adapt_and_train_one_epoch, page, texts, write_folders, write_image

TINY = {"depth": 8, "filters": 4, "input_shape": [16, 16, 3], "classes": 3}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return write_folders(tmp_path_factory.mktemp("images") / "train")


# --------------------------------------------------------------------------- the loader
def test_loads_resizes_and_counts_the_skipped_files(folders):
    data = load_image_folders(folders, val_split=0.25, image_size=(16, 16), seed=0)
    assert data.classes == CLASSES and data.num_classes == 3 and data.kind == "folders"
    assert data.x_train.shape == (27, 16, 16, 3) and data.x_test.shape == (9, 16, 16, 3)  # 36 readable, 3 per class held out
    assert data.image_shape == (16, 16, 3) and data.x_train.dtype == np.uint8
    assert [(name, t, v) for name, t, v in data.class_counts()] == [(c, 9, 3) for c in CLASSES]
    assert not data.x_train.flags.writeable and not data.y_test.flags.writeable
    assert data.skipped == 2
    assert any(e.startswith("circles/broken.png") for e in data.skipped_examples)
    assert any(e.startswith("squares/notes.txt") for e in data.skipped_examples)
    assert "skipped 2 unreadable files: " in data.skipped_text() and "notes.txt" in data.skipped_text()
    assert data.sizes_seen == 2 and "resized to 16×16 from 2 original sizes" in data.sizes_text()
    assert "held out as validation" in data.source
    # colour says the class: the red channel is high for circles, the blue one for stripes
    red = data.x_train[data.y_train == 0][..., 0].mean()
    blue = data.x_train[data.y_train == 2][..., 2].mean()
    assert red > 150 and blue > 150
    assert all(0 < m < 1 for m in data.mean) and all(0 < s < 1 for s in data.std)
    gray = load_image_folders(folders, val_split=0.25, image_size=(28, 28), seed=0)
    assert gray.x_train.shape[1:] == (28, 28, 3)  # grayscale and RGBA became RGB


def test_separate_validation_folder(tmp_path, folders):
    val = write_folders(tmp_path / "val", per_class=3, junk=False)
    data = load_image_folders(folders, val_dir=val, image_size=(16, 16))
    assert data.n_train == 36 and data.n_test == 9 and data.val_path == val
    assert "validation images from" in data.source and data.val_split is None


def test_split_is_class_balanced_and_seeded(folders):
    a = load_image_folders(folders, val_split=0.5, image_size=(8, 8), seed=1)
    b = load_image_folders(folders, val_split=0.5, image_size=(8, 8), seed=1)
    assert np.bincount(a.y_test).tolist() == [6, 6, 6]
    assert np.array_equal(a.x_test, b.x_test)


def _only(root: Path, *classes: str, per_class: int = 3) -> Path:
    return write_folders(root, per_class=per_class, classes=classes, junk=False)


BAD = {
    "missing": (lambda tmp: tmp / "nowhere", "does not exist"),
    "a file": (lambda tmp: (tmp / "f.png").write_bytes(b"x") and tmp / "f.png", "is a file, not a folder"),
    "no classes": (lambda tmp: (write_image(tmp / "r" / "a.png", "circles", (8, 8), seed=0), tmp / "r")[1],
                   "has no class subfolders (1 files lie directly in it)"),
    "one class": (lambda tmp: _only(tmp / "r", "circles"), "only one class folder (circles/)"),
    "empty class": (lambda tmp: (_only(tmp / "r", "circles", "squares"), (tmp / "r" / "empty").mkdir(), tmp / "r")[2],
                    "class folder empty/ has no readable images"),
    "unreadable class": (lambda tmp: (_only(tmp / "r", "circles", "squares"), (tmp / "r" / "bad").mkdir(),
                                      (tmp / "r" / "bad" / "x.jpg").write_bytes(b"junk"), tmp / "r")[3],
                         "class folder bad/ has no readable images"),
    "no images": (lambda tmp: ((tmp / "r" / "a").mkdir(parents=True), (tmp / "r" / "b").mkdir(),
                               (tmp / "r" / "a" / "x.txt").write_text("x"), tmp / "r")[3],
                  "no readable images in"),
    "one image in a class": (lambda tmp: (_only(tmp / "r", "circles", "squares"),
                                          write_image(tmp / "r" / "z" / "a.png", "circles", (8, 8), seed=0), tmp / "r")[2],
                             "class z/ has only 1 readable image"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_folders_say_what_to_fix(tmp_path, case):
    make, expected = BAD[case]
    with pytest.raises(DataError) as err:
        load_image_folders(make(tmp_path), image_size=(8, 8))
    assert expected in str(err.value)


def test_bad_validation_folder_and_limits(tmp_path, folders):
    other = _only(tmp_path / "val", "circles", "squares", "dogs")
    with pytest.raises(DataError, match="other class folders.*missing stripes; extra dogs"):
        load_image_folders(folders, val_dir=other, image_size=(8, 8))
    with pytest.raises(DataError, match="is the training folder"):
        load_image_folders(folders, val_dir=folders, image_size=(8, 8))
    with pytest.raises(DataError, match="use a smaller input size"):
        load_image_folders(folders, image_size=(8, 8), max_images=10)
    with pytest.raises(DataError, match=r"need 0\.4 MiB in memory, over the limit of 200,000 images / 0\.1 MiB"):
        load_image_folders(folders, image_size=(64, 64), max_bytes=100_000)
    for split in (0.0, 1.0):
        with pytest.raises(DataError, match="validation fraction"):
            load_image_folders(folders, val_split=split, image_size=(8, 8))


def test_signature_sees_added_files(tmp_path):
    root = _only(tmp_path / "r", "a", "b")
    before = folder_signature(root, None)
    time.sleep(0.01)
    write_image(root / "a" / "new.png", "circles", (8, 8), seed=9)
    assert folder_signature(root, None) != before


# --------------------------------------------------------------------------- the pipeline and the job
def test_pipelines_use_the_folders_classes_and_statistics(folders):
    data = load_image_folders(folders, val_split=0.25, image_size=(16, 16))
    pipes = make_datasets(data, batch_size=9, val_split=0.0, flip=False)
    x, y = next(iter(pipes.train))
    assert x.shape == (9, 16, 16, 3) and y.shape == (9, 3)
    xs = np.concatenate([np.asarray(b[0]) for b in pipes.test])
    assert xs.shape == (9, 16, 16, 3)
    full = np.concatenate([np.asarray(b[0]) for b in make_datasets(data, batch_size=27, val_split=0.0, flip=False).train])
    assert abs(full.mean()) < 0.05 and abs(full.std() - 1) < 0.05  # normalised with the folders' own mean and std


def test_job_needs_a_matching_config_and_adapts(folders):
    data = load_image_folders(folders, val_split=0.25, image_size=(16, 16))
    cifar_like = ResNetConfig(depth=8, filters=4)
    message = T.data_mismatch(cifar_like, data)
    assert "16×16×3 input and 3 classes" in message and "it has 10 classes" in message
    with pytest.raises(ConfigError, match="3 classes"):
        T.TrainJob(cifar_like, data)
    adapted = T.adapt_for_data(cifar_like, data)
    assert adapted.classes == 3 and adapted.input_shape == (16, 16, 3) and T.data_mismatch(adapted, data) is None
    assert T.cifar_mismatch(ResNetConfig(depth=8, filters=4)) is None  # CIFAR-10 unchanged


# --------------------------------------------------------------------------- the CLI
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trains_on_folders_and_reports_the_skipped_files(folders, capsys):
    code, out, err = run_cli(capsys, "train", "--depth", "8", "--filters", "4", "--input", "16x16x3", "--adapt",
                             "--image-dir", str(folders), "--val-split", "0.25", "--epochs", "1", "--batch-size", "9",
                             "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "done"
    assert result["classes"] == list(CLASSES) and result["config"]["classes"] == 3
    assert result["skipped_files"] == 2 and len(result["skipped_examples"]) == 2
    assert result["train_images"] == 27 and result["val_images"] == 9 and result["test_images"] == 9
    assert list(result["per_class_accuracy"]) == list(CLASSES) and len(result["confusion"]) == 3
    assert result["history"]["epochs"][0]["val_accuracy"] is not None  # validated on the folders' validation images
    assert "skipped 2 unreadable files: circles/broken.png" in err and "notes.txt" in err
    assert "classes (3, training + validation images): circles (9 + 3)" in err


def test_cli_refusals_are_one_line_exit_2(folders, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--depth", "8", "--filters", "4", "--image-dir", str(folders), "--epochs", "1")
    assert code == 2 and "--classes 3" in err and "--adapt" in err
    code, _, err = run_cli(capsys, "train", "--image-dir", str(tmp_path / "nowhere"), "--epochs", "1")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "train", "--image-dir", str(folders), "--val-dir", str(folders), "--val-split", "0.2")
    assert code == 2 and "exclude each other" in err
    code, _, err = run_cli(capsys, "train", "--val-dir", str(folders))
    assert code == 2 and "--image-dir" in err


# --------------------------------------------------------------------------- the Train tab
def test_train_tab_lists_the_classes_and_trains_on_folders(tmp_path):
    root = write_folders(tmp_path / "pictures", per_class=14)  # 11 + 3 per class: 33 training images, one batch of 32
    at = page({"depth": 8, "filters": 4, "input_shape": [16, 16, 3]}).run()  # 10 classes: needs adapting
    at.radio(key="train_source").set_value("Image folders").run()
    assert "Type the folder that holds your images" in texts(at)
    at.text_input(key="train_folder_root").input(str(root)).run()
    assert not at.exception
    shown = texts(at)
    assert "**3 classes**" in shown and "circles (11 + 3), squares (11 + 3), stripes (11 + 3)" in shown
    assert "Skipped 2 unreadable files: circles/broken.png" in shown
    assert "These image folders need a 16×16×3 input and 3 classes" in shown
    assert "train_start" not in [b.key for b in at.button]  # no Train button until adapted
    job = adapt_and_train_one_epoch(at)
    assert job.status == "done", job.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Validation accuracy"].endswith("%")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    confusion = next(s for s in specs if "confusion matrix" in json.dumps(s))
    assert confusion["data"][0]["x"] == list(CLASSES)


# --------------------------------------------------------------------------- fewer images than one batch
def test_the_batch_shrinks_to_a_small_data_set_with_a_notice(tmp_path):
    data = load_image_folders(write_folders(tmp_path / "few", per_class=5, junk=False), val_split=0.2, image_size=(16, 16))
    assert data.n_train == 12
    settings, notice = T.fit_batch(T.TrainSettings(epochs=1, batch_size=64), data)
    assert settings.batch_size == 12 and "only 12 training images" in notice and "shrinks to 12" in notice
    assert T.fit_batch(T.TrainSettings(epochs=1, batch_size=8), data) == (T.TrainSettings(epochs=1, batch_size=8).resolved(), None)
    cifar, notice = T.fit_batch(T.TrainSettings(epochs=1, subset=60, val_split=0.1, batch_size=64), None)  # not read yet
    assert cifar.batch_size == 54 and "only 54 training images" in notice
    job = T.TrainJob(ResNetConfig(**TINY), data, T.TrainSettings(epochs=1, batch_size=64, evaluate=False), idle_timeout=None)
    assert job.settings.batch_size == 12 and job.batch_notice == notice.replace("54", "12")


def test_train_tab_says_the_batch_shrinks_and_trains(tmp_path):
    root = write_folders(tmp_path / "few", per_class=5, junk=False)  # 4 + 1 per class: 12 training images
    at = page(TINY).run()
    at.radio(key="train_source").set_value("Image folders").run()
    at.text_input(key="train_folder_root").input(str(root)).run()
    assert not at.exception
    at.selectbox(key="train_batch").set_value(32).run()
    notices = [i.value for i in at.info if "fewer than one batch" in i.value]
    assert notices == ["Only 12 training images after the subset and validation split, fewer than one batch of 32: the "
                       "batch shrinks to 12 (one step per epoch)."]
    at.radio(key="train_budget_kind").set_value("epochs").run()
    at.number_input(key="train_epochs").set_value(1).run()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = at.session_state["_train_job"]
    assert job.join(120)
    assert job.status == "done", job.error
    assert job.settings.batch_size == 12


TF_NOISE = ("absl::InitializeLog", "I0000", "W0000", "E0000", "cuInit", "oneDNN", "cuda", "TensorFlow binary")


def test_cli_train_shrinks_the_batch_and_keeps_tensorflow_quiet(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    root = write_folders(tmp_path / "few", per_class=5, junk=False)
    argv = [sys.executable, "-m", "explorer", "train", "--depth", "8", "--filters", "4", "--input", "16x16x3", "--adapt",
            "--image-dir", str(root), "--epochs", "1", "--batch-size", "64", "--json"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EXPLORER_TF_VERBOSE")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "note: only 12 training images" in proc.stderr and "batch 12" in proc.stderr
    noise = [line for line in proc.stderr.splitlines() if any(word in line for word in TF_NOISE)]
    assert noise == [], noise
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "done"
