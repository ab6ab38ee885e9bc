"""Server paths a page may name (shared folders, no existence oracle), a folder walk that never opens FIFOs or devices,
and students' own images uploaded as a .zip of class folders (fixtures written as real PNG/JPEG files and zip archives)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer import imagefolder, serverpaths
from explorer.data import DataError
from explorer.imagefolder import load_image_folders, load_image_zip
from explorer.presets import PRESETS
from explorer.serverpaths import is_served, policy
from tests.conftest import ROOT
from tests.helpers import CLASSES, adapt_and_train_one_epoch, write_folders, write_image


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (12, 10), *, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(sum(colour))
    pixels = np.clip(rng.integers(0, 40, size=(*size, 3)) + np.array(colour), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def make_zip(members: dict[str, bytes], *, top: str = "") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(top + name, data)
    return out.getvalue()


def class_members(per_class: int = 5) -> dict[str, bytes]:
    colours = {"cat": (220, 40, 40), "dog": (40, 200, 60), "owl": (40, 60, 220)}
    members = {f"{cls}/{i:03d}.{'jpg' if i % 2 else 'png'}": png_bytes(rgb, fmt="JPEG" if i % 2 else "PNG")
               for cls, rgb in colours.items() for i in range(per_class)}
    members["dog/notes.txt"] = b"where these came from\n"
    members["__MACOSX/cat/._000.png"] = b"\0\1resource fork"
    members["readme.txt"] = b"beside the class folders: ignored\n"
    return members


@pytest.fixture
def tree(tmp_path):
    """tmp/shared/{pictures/<3 classes>, link -> tmp/secret} and tmp/secret/{diary.txt, images/<2 classes>}."""
    shared, secret = tmp_path / "shared", tmp_path / "secret"
    write_folders(shared / "pictures", per_class=4, junk=False)
    (secret / "diary.txt").parent.mkdir(parents=True)
    (secret / "diary.txt").write_text("private\n")
    write_folders(secret / "images", per_class=4, classes=("a", "b"), junk=False)
    (shared / "link").symlink_to(secret)
    return tmp_path


def served_with(roots: Path | None = None, cifar: Path | None = None):
    env = {}
    if roots is not None:
        env[serverpaths.ROOTS_ENV] = str(roots)
    if cifar is not None:
        env["CIFAR10_DIR"] = str(cifar)
    return policy(served=True, env=env)


# --------------------------------------------------------------------------- the policy
@pytest.mark.parametrize(("address", "env", "served"), [
    (None, {}, True), ("", {}, True), ("0.0.0.0", {}, True), ("::", {}, True), ("192.168.1.20", {}, True),
    ("classroom.example.org", {}, True), ("unix:///run/explorer.sock", {}, True),
    ("localhost", {}, False), ("127.0.0.1", {}, False), ("::1", {}, False), ("[::1]", {}, False),
    ("localhost", {"EXPLORER_SHARED": "1"}, True), (None, {"EXPLORER_SHARED": "0"}, False),
])
def test_served_means_reachable_by_others(address, env, served):
    assert is_served(address, env=env) is served


def test_outside_the_roots_through_a_link_or_dotdot_reads_exactly_like_missing(tree):
    rules = served_with(tree / "shared")
    shared, secret = tree / "shared", tree / "secret"
    refused = [str(secret / "diary.txt"), str(secret / "images"), str(shared / "link" / "images"),
               f"{shared}/pictures/../../secret/images", "../secret", str(shared / "missing"), str(tree / "nowhere"),
               "/etc/shadow", "/etc", "~/.ssh", "pictures\0x"]
    messages = set()
    for typed in refused:
        with pytest.raises(DataError) as err:
            rules.check(typed, what="image folder")
        messages.add(str(err.value).replace(repr(typed), "<typed>"))
    assert len(messages) == 1, messages  # one message, whatever exists: no oracle
    assert "not found in the folders this server shares" in messages.pop()
    # inside the roots: resolved, and a relative path is looked up in them
    assert rules.check(str(shared / "pictures"), what="image folder") == (shared / "pictures").resolve()
    assert rules.check("pictures", what="image folder") == (shared / "pictures").resolve()
    assert rules.check(f"{shared}/pictures/../pictures", what="image folder") == (shared / "pictures").resolve()


def test_served_without_roots_only_cifar10_dir_with_a_message_for_the_teacher(tree):
    rules = served_with(None, cifar=tree / "secret")
    assert rules.restricted and not rules.folders_offered
    with pytest.raises(DataError) as err:
        rules.check(str(tree / "shared" / "pictures"), what="image folder", hint="Upload a .zip instead.")
    assert "Upload a .zip instead." in str(err.value) and serverpaths.ROOTS_ENV in str(err.value)
    with pytest.raises(DataError) as missing:
        rules.check(str(tree / "nowhere"), what="image folder", hint="Upload a .zip instead.")
    assert str(missing.value) == str(err.value)
    assert rules.check(str(tree / "secret" / "images"), what="CIFAR-10 folder") == (tree / "secret" / "images").resolve()


def test_on_the_owners_machine_any_path_as_before(tree):
    rules = policy(served=False, env={})
    assert not rules.restricted and rules.folders_offered
    assert rules.check(str(tree / "nowhere"), what="image folder") == tree / "nowhere"  # the loader says "does not exist"
    assert rules.check(str(tree / "shared" / "link"), what="image folder") == tree / "shared" / "link"
    with pytest.raises(DataError, match="system folder"):
        rules.check("/proc/self", what="image folder")
    # a laptop that sets shared folders gets them
    assert policy(served=False, env={serverpaths.ROOTS_ENV: str(tree / "shared")}).restricted


# --------------------------------------------------------------------------- walking folders
FIFO_SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
from explorer.imagefolder import load_image_folders
data = load_image_folders({folder!r}, image_size=(8, 8))
print(data.n_train + data.n_test, data.skipped, data.skipped_text())
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_and_device_in_a_class_folder_are_skipped_unopened(tmp_path):
    root = write_folders(tmp_path / "r", per_class=3, junk=False)
    os.mkfifo(root / CLASSES[0] / "pipe.png")  # opening it for reading would block until a writer comes
    (root / CLASSES[1] / "null.png").symlink_to("/dev/null")
    script = FIFO_SCRIPT.format(root=str(ROOT), folder=str(root))
    try:  # a subprocess, so that a regression fails here instead of hanging the suite
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("loading a folder with a FIFO in it hung")
    assert out.returncode == 0, out.stderr
    images, skipped, text = out.stdout.split(" ", 2)
    assert images == "9" and skipped == "2"
    assert "circles/pipe.png (not a regular file)" in text and "squares/null.png (link into a system folder)" in text


def test_walk_stops_at_its_caps_before_opening_a_file(tmp_path, monkeypatch):
    root = write_folders(tmp_path / "r", per_class=4, junk=False)
    opened = []
    monkeypatch.setattr(imagefolder, "_read_file", lambda path, allowed: opened.append(path) or b"")
    with pytest.raises(DataError, match=r"holds more than 5 files and folders \(listing stopped there, before any"):
        load_image_folders(root, image_size=(8, 8), max_entries=5)
    with pytest.raises(DataError, match=r"took more than 0 s .* none opened"):
        load_image_folders(root, image_size=(8, 8), max_seconds=0)
    assert opened == []


def test_links_out_of_the_shared_folders_are_not_followed(tree):
    pictures = tree / "shared" / "pictures"
    (pictures / "circles" / "stolen.png").symlink_to(tree / "secret" / "images" / "a" / "img_00.png")
    (pictures / "squares" / "fine.png").symlink_to(pictures / "squares" / "img_00.png")
    rules = served_with(tree / "shared")
    data = load_image_folders(pictures, image_size=(8, 8), allowed=rules.allows)
    assert data.n_train + data.n_test == 13  # 12 files + the link inside the roots
    assert "circles/stolen.png (link outside the shared folders)" in data.skipped_text()
    laptop = load_image_folders(pictures, image_size=(8, 8))  # the CLI and the owner's machine follow it
    assert laptop.n_train + laptop.n_test == 14


def test_a_failed_folder_is_not_read_again_on_every_rerun(tmp_path, monkeypatch):
    from explorer.ui.train import data_source as ui

    root = tmp_path / "r"
    write_image(root / "only" / "a.png", "circles", (8, 8), seed=0)
    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return load_image_folders(*args, **kwargs)

    monkeypatch.setattr(ui, "load_image_folders", counting)
    args = (str(root), "", 0.2, (8, 8), imagefolder.folder_signature(str(root)), None)
    for _ in range(3):
        with pytest.raises(DataError, match="only one class folder"):
            ui.load_folders(args)
    assert len(calls) == 1
    time.sleep(0.01)
    write_image(root / "other" / "a.png", "squares", (8, 8), seed=1)  # the folder changed: read again
    with pytest.raises(DataError, match="has only 1 readable image"):
        ui.load_folders((*args[:4], imagefolder.folder_signature(str(root)), None))
    assert len(calls) == 2


# --------------------------------------------------------------------------- uploads
def test_a_zip_of_class_folders_becomes_the_same_kind_of_data_set(tmp_path):
    members = class_members()
    for top in ("", "my photos/"):  # bare class folders, or one top folder around them
        data = load_image_zip(make_zip(members, top=top), name="pets.zip", val_split=0.2, image_size=(16, 16))
        assert isinstance(data, imagefolder.ImageFolders) and data.kind == "folders" and data.path is None
        assert data.classes == ("cat", "dog", "owl") and data.image_shape == (16, 16, 3)
        assert (data.n_train, data.n_test) == (12, 3) and data.classes_text() == "cat (4 + 1), dog (4 + 1), owl (4 + 1)"
        assert data.skipped == 1 and "dog/notes.txt (not an image)" in data.skipped_text()
        assert "uploaded pets.zip (3 classes)" in data.source and not data.x_train.flags.writeable
        cats = data.x_train[data.y_train == 0].astype(float)
        assert cats[..., 0].mean() > cats[..., 1].mean() + 100  # the red class is red: real pixels
    for name, payload in members.items():  # the same files in a folder: the same pixels, split and statistics
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(payload)
    folders = load_image_folders(tmp_path, val_split=0.2, image_size=(16, 16))
    assert np.array_equal(folders.x_train, data.x_train) and np.array_equal(folders.x_test, data.x_test)
    assert folders.mean == data.mean and folders.classes == data.classes


@pytest.mark.parametrize(("member", "expected"), [
    ("../outside.png", "points outside it"),
    ("cat/../../outside.png", "points outside it"),
    ("/etc/cron.d/job.png", "absolute path"),
    ("C:/Users/x.png", "absolute path"),
    ("..\\outside.png", "points outside it"),
])
def test_a_zip_member_pointing_outside_is_refused(member, expected):
    members = class_members(per_class=2)
    members[member] = png_bytes((1, 2, 3))
    with pytest.raises(DataError, match=expected):
        load_image_zip(make_zip(members), name="x.zip", image_size=(8, 8))


def test_zip_links_passwords_sizes_and_counts_are_capped():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in class_members(per_class=2).items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("cat/shadow.png")
        link.external_attr = 0o120777 << 16  # a symbolic link to /etc/shadow, as `zip --symlinks` writes it
        zf.writestr(link, "/etc/shadow")
    with pytest.raises(DataError, match="symbolic link"):
        load_image_zip(out.getvalue(), image_size=(8, 8))
    good = make_zip(class_members(per_class=2))
    with pytest.raises(DataError, match="holds 9 members; at most 4"):
        load_image_zip(good, image_size=(8, 8), max_members=4)
    with pytest.raises(DataError, match="unpacks to"):
        load_image_zip(good, image_size=(8, 8), max_unpacked=1000)
    with pytest.raises(DataError, match="use a smaller input size"):
        load_image_zip(good, image_size=(64, 64), max_bytes=10_000)
    with pytest.raises(DataError, match="not a readable .zip"):
        load_image_zip(b"PK\3\4 not really", image_size=(8, 8))
    bz = io.BytesIO()
    with zipfile.ZipFile(bz, "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("a/1.png", png_bytes((1, 1, 1)))
    with pytest.raises(DataError, match="compression other than deflate"):
        load_image_zip(bz.getvalue(), image_size=(8, 8))
    with pytest.raises(DataError, match=r"no class subfolders \(2 files lie directly in it\)"):
        load_image_zip(make_zip({"a.png": png_bytes((1, 1, 1)), "b.png": png_bytes((2, 2, 2))}), image_size=(8, 8))


# --------------------------------------------------------------------------- the Train tab
def test_shared_server_tab_refuses_paths_alike_and_points_to_the_upload(tree, monkeypatch):
    from tests.helpers import page, texts

    monkeypatch.setenv("EXPLORER_SHARED", "1")
    monkeypatch.delenv(serverpaths.ROOTS_ENV, raising=False)
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    at = page().run()
    at.radio(key="train_source").set_value("Image folders").run()
    assert not at.exception and "train_folder_root" not in [w.key for w in at.text_input]
    shown = texts(at)
    assert "opens no folder typed into the page" in shown and "Upload a .zip" in shown
    assert serverpaths.ROOTS_ENV in shown

    monkeypatch.setenv(serverpaths.ROOTS_ENV, str(tree / "shared"))
    at = page().run()
    answers = []
    for typed in ("/etc/shadow", "/etc", str(tree / "secret"), "/nonexistent"):
        at.text_input(key="train_data_dir").input(typed).run()
        answers.append("\n".join(e.value for e in at.error).replace(repr(typed), "<typed>"))
    assert len(set(answers)) == 1 and "not found in the folders this server shares" in answers[0]
    at.radio(key="train_source").set_value("Image folders").run()
    at.text_input(key="train_folder_root").input(str(tree / "shared" / "link" / "images")).run()
    assert not at.exception and "**2 classes**" not in texts(at)
    assert "not found in the folders this server shares" in texts(at)
    at.text_input(key="train_folder_root").input("pictures").run()
    assert "**3 classes**" in texts(at)

    config = PRESETS["resnet50v2"].config.replace(input_shape=(32, 32, 3), classes=10, freeze=4).to_dict()
    at = page(config).run()
    at.checkbox(key="train_weights_on").check().run()
    at.text_input(key="train_weights_file").input("/etc/shadow").run()
    assert not at.exception and "Weights found" not in texts(at) and "0.0 MB" not in texts(at)
    assert any("not found in the folders this server shares" in w.value for w in at.warning)


def test_train_tab_trains_on_an_uploaded_zip_and_shows_only_its_images(monkeypatch):
    from tests.helpers import page, texts

    monkeypatch.setenv("EXPLORER_SHARED", "1")
    monkeypatch.delenv(serverpaths.ROOTS_ENV, raising=False)
    at = page({"depth": 8, "filters": 4, "input_shape": [16, 16, 3]}).run()
    at.radio(key="train_source").set_value("Upload a .zip").run()
    assert "Upload your images as one .zip" in texts(at)
    archive = make_zip(class_members(per_class=14), top="pets/")
    at.file_uploader(key="train_upload_zip").set_value(("pets.zip", archive, "application/zip")).run()
    assert not at.exception
    shown = texts(at)
    assert "**3 classes**" in shown and "cat (11 + 3), dog (11 + 3), owl (11 + 3)" in shown
    assert "Skipped 1 unreadable file: dog/notes.txt" in shown
    job = adapt_and_train_one_epoch(at)
    assert job.status == "done", job.error
    uploaded = at.session_state["_train_uploaded"][1]
    assert job.data is uploaded  # the validation grid shows x_test of the session's own upload
    [grid] = at.get("image")
    assert len(grid.captions) == len(uploaded.y_test)
    assert {c.rsplit("true ", 1)[1] for c in grid.captions} == {"cat", "dog", "owl"}
