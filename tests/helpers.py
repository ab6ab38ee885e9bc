"""Plain helpers that several test modules share: fixture writers, job waiters, AppTest drivers, generated configs."""

from __future__ import annotations

import io
import json
import pickle
import random
import tarfile
import time
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import config as C
from explorer import data as D
from explorer import training as T
from explorer.annotate import build
from explorer.config import ConfigError, ResNetConfig
from explorer.presets import PRESETS
from tests.conftest import ROOT

# --------------------------------------------------------------------------- CIFAR-10 fixture writers
PER_CLASS = 12  # images per class per batch file: 120 per file, 600 training + 120 test images


def small_cifar(root: Path, n_per_class: int = 20):
    """CIFAR-10 in the official binary layout under `root`, loaded (n_per_class=20: 1,000 training and 200 test images)."""
    write_layout(root, "binary", n_per_class=n_per_class)
    return D.load_cifar10(root, allow_download=False)


def fixture_arrays(n_per_class: int = PER_CLASS, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixels depend on the label (so a tiny net can learn them), and labels 0..9 shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), n_per_class)
    rng.shuffle(labels)
    base = rng.integers(0, 60, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    images = (base + labels[:, None, None, None].astype(np.uint8) * 19).astype(np.uint8)
    return images, labels


def binary_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Records of the official binary layout: 1 label byte + 3072 pixel bytes (R, G, B planes)."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)
    return np.concatenate([labels[:, None], planes], axis=1).astype(np.uint8).tobytes()


def python_bytes(images: np.ndarray, labels: np.ndarray, name: str = "data_batch_1") -> bytes:
    """A batch of the official Python layout: a pickled dict with bytes keys and a (N, 3072) uint8 array.

    Protocol 3 writes globals as text lines, so the numpy 2 module path can be rewritten to
    the `numpy.core.multiarray` path that the official (numpy 1.x era) files name.
    """
    batch = {
        b"batch_label": f"{name} of fixture".encode(),
        b"labels": [int(v) for v in labels],
        b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), -1).copy(),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    raw = pickle.dumps(batch, protocol=3)
    return raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_layout(root: Path, kind: str = "binary", *, n_per_class: int = PER_CLASS) -> Path:
    """Write a complete tiny CIFAR-10 in `kind` ("binary", "python", "binary-archive", "python-archive") under root."""
    root.mkdir(parents=True, exist_ok=True)
    binary = kind.startswith("binary")
    folder = D.BIN_DIR if binary else D.PY_DIR
    files: dict[str, bytes] = {}
    for i, name in enumerate(D._batch_names(kind)):
        images, labels = fixture_arrays(n_per_class, seed=i)
        files[name] = binary_bytes(images, labels) if binary else python_bytes(images, labels, name)
    if kind.endswith("archive"):
        archive = root / (D.BIN_ARCHIVE if binary else D.PY_ARCHIVE)
        with tarfile.open(archive, "w:gz") as tar:
            for name, payload in files.items():
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        return archive
    (root / folder).mkdir(exist_ok=True)
    for name, payload in files.items():
        (root / folder / name).write_bytes(payload)
    return root / folder


# --------------------------------------------------------------------------- image-folder fixture writers
CLASSES = ("circles", "squares", "stripes")
COLOURS = {"circles": (220, 40, 40), "squares": (40, 200, 60), "stripes": (40, 60, 220)}
SIZES = ((20, 24), (28, 28))  # (H, W)


def write_image(path: Path, cls: str, size: tuple[int, int], *, seed: int, mode: str = "RGB") -> None:
    """A noisy image whose colour says its class (so a tiny net can learn it)."""
    rng = np.random.default_rng(seed)
    h, w = size
    pixels = rng.integers(0, 60, size=(h, w, 3)) + np.array(COLOURS.get(cls, (128, 128, 128)))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert(mode).save(path)


def write_folders(root: Path, *, per_class: int = 12, classes: tuple[str, ...] = CLASSES, junk: bool = True) -> Path:
    """root/<class>/img_XX.png in two sizes (one grayscale, one in a nested folder) plus, with `junk`, a corrupt PNG,
    a notes.txt and a hidden file."""
    for c, cls in enumerate(classes):
        for i in range(per_class):
            sub = "nested/" if i == per_class - 1 else ""
            mode = "L" if (c, i) == (0, 0) else "RGBA" if (c, i) == (1, 0) else "RGB"
            write_image(root / cls / f"{sub}img_{i:02d}.png", cls, SIZES[i % 2], seed=100 * c + i, mode=mode)
    if junk:
        (root / classes[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
        (root / classes[1] / "notes.txt").write_text("where these pictures came from\n")
        (root / classes[2] / ".DS_Store").write_bytes(b"\0\1\2")
    (root / "README.txt").write_text("loose files in the root are ignored\n")
    return root


# --------------------------------------------------------------------------- training jobs
TINY = ResNetConfig(depth=8, filters=4)


def long_settings(**kw) -> T.TrainSettings:
    """Settings for a job that runs far longer than any test waits (500 epochs), to be stopped."""
    return T.TrainSettings(epochs=500, batch_size=50, val_split=0.0, evaluate=False, **kw)


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll `predicate` every 50 ms until it is true; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def training(job: T.TrainJob) -> bool:
    """Whether `job` is past its set-up and has taken a training step."""
    snap = job.poll()
    return snap.phase == "training" and snap.steps > 0


SIDE = 32  # keras.applications' smallest input: ResNet50V2 builds in seconds
RUN = {"epochs": 1, "batch_size": 8, "val_split": 0.0, "evaluate": False, "precision": "float32", "flip": False}


def finetune(freeze: int, classes: int = 10):
    """resnet50v2 at the smallest input keras.applications builds, with `freeze` stages frozen."""
    return PRESETS["resnet50v2"].config.replace(input_shape=(SIDE, SIDE, 3), classes=classes, freeze=freeze)


# --------------------------------------------------------------------------- the app (AppTest)
APP = str(ROOT / "explorer" / "app.py")


def run_app(query: dict | None = None, tab: str | None = None) -> AppTest:
    """Run the whole app once with URL parameters `query` and open `tab`; fail on an exception."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if tab:
        at.session_state["tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def viewer_data(at: AppTest, key: str = "arch_viewer") -> dict:
    """The data the page sent to the diagram viewer mounted with `key` (its panes' DOT, the selected node)."""
    for el in at.get("bidi_component"):
        if el.proto.component_name == "explorer_diagram" and key in el.proto.id:
            return json.loads(el.proto.bytes)
    raise AssertionError(f"no diagram viewer {key!r} on the page")


def dot_of(at: AppTest, key: str = "arch_viewer") -> str:
    """The DOT of the first pane of a diagram viewer on the page."""
    return viewer_data(at, key)["panes"][0]["dot"]


def metrics(at: AppTest) -> dict[str, str]:
    """The page's metrics, label to value."""
    return {m.label: m.value for m in at.metric}


def open_tab(at: AppTest, tab: str) -> AppTest:
    """Switch the page to `tab` and rerun it; fail on an exception."""
    at.session_state["tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def url(at: AppTest) -> dict:
    """The page's URL parameters, one value each."""
    return {k: at.query_params[k][0] if isinstance(at.query_params[k], list) else at.query_params[k] for k in at.query_params}


# --------------------------------------------------------------------------- the Train and Compare tabs on a small page
PAGE = """
import json, sys
sys.path.insert(0, {root!r})
import streamlit as st
from explorer.annotate import build
from explorer.config import ResNetConfig
from explorer.ui.train import render_compare_tab, render_train_tab

config = ResNetConfig.from_dict(json.loads({config!r}))
render_train_tab(config, build(config))
st.divider()
render_compare_tab()
"""
TAB_TINY = {"depth": 8, "filters": 4}


def page(config: dict = TAB_TINY) -> AppTest:
    """A page of only the Train and Compare tabs for the network `config` (not yet run)."""
    script = PAGE.format(root=str(ROOT), config=json.dumps(config))
    return AppTest.from_string(script, default_timeout=120)


def texts(at: AppTest) -> str:
    """The captions, markdown, infos, errors and warnings of the page, one per line."""
    parts = [e.value for e in at.caption] + [e.value for e in at.markdown] + [e.value for e in at.info]
    parts += [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def set_budget(at: AppTest, *, epochs: int) -> None:
    """Set the Train tab to train `epochs` epochs at batch size 64."""
    at.radio(key="train_budget_kind").set_value("epochs").run()
    at.number_input(key="train_epochs").set_value(epochs)
    at.selectbox(key="train_batch").set_value(64)
    at.run()


def job_of(at: AppTest):
    """The TrainJob the page holds."""
    return at.session_state["_train_job"]


def train_until_done(app: AppTest, timeout: float = 120):
    """Click Train and rerun the page like its fragment does until the job ends; the job and whether a progress
    bar was seen."""
    app.button(key="train_start").click().run()
    assert not app.exception
    job = job_of(app)
    seen_progress = bool(app.get("progress"))
    deadline = time.monotonic() + timeout
    while job.active:
        assert time.monotonic() < deadline
        time.sleep(0.5)
        app.run()
        assert not app.exception
        seen_progress = seen_progress or bool(app.get("progress"))
    app.run()
    assert not app.exception
    return job, seen_progress


def adapt_and_train_one_epoch(at: AppTest, timeout: float = 120):
    """On the Train tab with image folders or an upload shown: adapt the network, train one epoch at batch 32, and
    rerun once it ended; the job."""
    at.toggle(key="train_folder_adapt").set_value(True).run()
    at.radio(key="train_budget_kind").set_value("epochs").run()
    at.number_input(key="train_epochs").set_value(1)
    at.selectbox(key="train_batch").set_value(32)
    at.run()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = at.session_state["_train_job"]
    assert job.join(timeout)
    at.run()
    assert not at.exception
    return job


# --------------------------------------------------------------------------- configs
# Strategies for each config field, over plausible and implausible values (the property tests draw from them).
plausible = {
    "version": st.sampled_from(C.VERSIONS),
    "block": st.sampled_from(C.BLOCKS),
    "depth": st.one_of(st.integers(-5, 400), st.none(), st.sampled_from([8, 11, 14, 20, 29, 50, 56, 110, 164])),
    "blocks": st.one_of(st.none(), st.lists(st.integers(0, 6), min_size=1, max_size=6)),
    "stages": st.integers(0, 7),
    "filters": st.integers(0, 70),
    "width_rule": st.sampled_from(C.WIDTH_RULES),
    "widths": st.one_of(st.none(), st.lists(st.integers(0, 70), min_size=1, max_size=6)),
    "expansion": st.integers(0, 6),
    "shortcut": st.sampled_from(C.SHORTCUTS),
    "stride_at": st.sampled_from(C.STRIDE_AT),
    "downsample": st.sampled_from(C.DOWNSAMPLE),
    "first_preact": st.booleans(),
    "projection_from": st.sampled_from(C.PROJECTION_FROM),
    "projection_bn": st.booleans(),
    "stem": st.sampled_from(C.STEMS),
    "head": st.sampled_from(C.HEADS),
    "dropout": st.sampled_from([0.0, 0.2, 0.99, -0.1, 1.0]),
    "input_shape": st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(0, 5)),
    "classes": st.integers(0, 2000),
    "conv_bias": st.sampled_from(C.CONV_BIAS),
    "explicit_padding": st.booleans(),
    "initializer": st.sampled_from(C.INITIALIZERS),
    "l2": st.sampled_from([0.0, 1e-4, -1e-4, 2.0]),
    "bn_epsilon": st.sampled_from([1e-3, 1.001e-5, 0.0]),
}


def generated_configs(count: int, seed: int = 20261127) -> list[ResNetConfig]:
    """`count` consistent configs mixing every option (seeded, so the same each run)."""
    rng = random.Random(seed)
    found: list[ResNetConfig] = []
    while len(found) < count:
        block = rng.choice(["basic", "bottleneck"])
        stages = rng.choice([1, 2, 3, 3, 4])
        side = rng.choice([8, 17, 24, 32, 32, 40, 64])
        try:
            cfg = ResNetConfig(
                version=rng.choice([1, 2]), block=block, stages=stages, depth=None,
                blocks=tuple(rng.randint(1, 2) for _ in range(stages)),
                filters=rng.choice([4, 8, 12, 16]), width_rule=rng.choice(["double", "keras"]),
                expansion=rng.choice([2, 4]), shortcut=rng.choice(["A", "B", "C", "none", "identity"]),
                stride_at=rng.choice(["conv1", "conv3x3"]), downsample=rng.choice(["first", "last"]),
                first_preact=rng.random() < 0.5, projection_from=rng.choice(["preact", "input"]),
                projection_bn=rng.random() < 0.5, stem=rng.choice(["cifar", "imagenet", "tutorial"]),
                head=rng.choice(["gap", "flatten", "tutorial"]), dropout=rng.choice([0.0, 0.3]),
                input_shape=(side, side + rng.choice([0, 8]), rng.choice([1, 3])), classes=rng.choice([2, 10, 100]),
                conv_bias=rng.choice(["auto", "always", "never"]), explicit_padding=rng.random() < 0.3,
                initializer=rng.choice(["he_normal", "glorot_uniform"]), l2=rng.choice([0.0, 1e-4]),
                batch_norm=rng.random() < 0.8, zero_init=rng.random() < 0.2,
                freeze=rng.choice([0, 0, 0, 1, stages]),
            )
        except ConfigError:
            continue
        if not build(cfg).errors:
            found.append(cfg)
    return found


GENERATED = generated_configs(60)


GENERATED = generated_configs(60)
