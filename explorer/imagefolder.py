"""The user's own image folders (`root/<class>/*.jpg|png`) as an in-memory data set the trainer can use.

The layout is Keras' directory convention (`keras.utils.image_dataset_from_directory`): one
subfolder per class, the sorted subfolder names are the class names, and the images of a class
may sit in nested folders below it. Validation images come either from a second root with the
same class folders or from a class-balanced fraction of the one root. Every file is decoded with
Pillow (grayscale and palette become RGB, transparency goes on white, EXIF rotation is applied),
centre-cropped to the aspect ratio of the network's input and resized to its H×W, exactly as
`explorer.inference` prepares a photo for a prediction, so mixed sizes are fine; files that cannot be decoded (corrupt images, notes, anything not an image) are
skipped and counted, not fatal. Hidden files and folders (`.DS_Store`, `.ipynb_checkpoints`) and
files directly in the root are ignored, as Keras ignores them.

Numpy and Pillow only; no TensorFlow.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.data import DataError, InMemoryImages

MAX_IMAGES = 200_000
MAX_BYTES = 2 * 1024**3  # decoded, resized uint8 pixels held in memory
MAX_EXAMPLES = 10  # skipped file names kept for the message
MAX_FILE_BYTES = 64 * 1024**2  # one image file; larger ones are skipped as "too large"
MAX_FILE_PIXELS = 80_000_000  # one image (below Pillow's decompression-bomb limit)
DEFAULT_VAL_SPLIT = 0.2
LAYOUT = "one subfolder per class, e.g. DIR/cat/001.jpg and DIR/dog/001.png"


@dataclass(frozen=True)
class ImageFolders(InMemoryImages):
    """Image folders in memory, read-only, shaped like `explorer.data.Cifar10`.

    Attributes:
        x_train: (N, H, W, 3) uint8 training images.
        y_train: (N,) labels 0..C-1 (uint8 up to 256 classes, else int32).
        x_test: (M, H, W, 3) uint8 validation images (the trainer evaluates on them).
        y_test: (M,) validation labels.
        source: Where the data came from, in words.
        classes: Class names (the sorted folder names); label i is classes[i].
        mean: Per-channel mean of the training images in [0, 1] units (for normalisation).
        std: Per-channel standard deviation of the training images in [0, 1] units.
        kind: Always "folders".
        path: The training root.
        val_path: The validation root, or None when validation is a fraction of `path`.
        val_split: That fraction (None with a validation root).
        skipped: Number of files that could not be read as images (not used).
        skipped_examples: Up to 10 of them, as "class/file.ext (why)".
        sizes_seen: Number of distinct original image sizes (all are resized to H×W).
        common_sizes: The most frequent original sizes as (H, W, count), most frequent first.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str = "folders"
    path: Path | None = None
    val_path: Path | None = None
    val_split: float | None = None
    skipped: int = 0
    skipped_examples: tuple[str, ...] = ()
    sizes_seen: int = 0
    common_sizes: tuple[tuple[int, int, int], ...] = field(default=())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of every image (the network's input must match)."""
        return tuple(int(v) for v in self.x_train.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> list[tuple[str, int, int]]:
        """(class name, training images, validation images) per class."""
        train = np.bincount(self.y_train.astype(np.int64), minlength=self.num_classes)
        val = np.bincount(self.y_test.astype(np.int64), minlength=self.num_classes)
        return [(name, int(train[i]), int(val[i])) for i, name in enumerate(self.classes)]

    def classes_text(self, limit: int = 20) -> str:
        """E.g. 'cat (10 + 2), dog (9 + 3)' (training + validation images), shortened after `limit` classes."""
        parts = [f"{name} ({t:,} + {v:,})" for name, t, v in self.class_counts()[:limit]]
        if self.num_classes > limit:
            parts.append(f"… {self.num_classes - limit} more")
        return ", ".join(parts)

    def sizes_text(self) -> str:
        """E.g. 'resized to 32×32 from 2 sizes (28×28 ×20, 20×24 ×16)'."""
        h, w, _ = self.image_shape
        common = ", ".join(f"{sh}×{sw} ×{n:,}" for sh, sw, n in self.common_sizes[:3])
        more = ", …" if self.sizes_seen > 3 else ""
        plural = "s" if self.sizes_seen != 1 else ""
        return f"resized to {h}×{w} from {self.sizes_seen} original size{plural} ({common}{more})"

    def skipped_text(self) -> str:
        """E.g. 'skipped 2 unreadable files: a/x.png (…), b/notes.txt (…)', or '' when none."""
        if not self.skipped:
            return ""
        more = ", …" if self.skipped > len(self.skipped_examples) else ""
        plural = "s" if self.skipped != 1 else ""
        return f"skipped {self.skipped:,} unreadable file{plural}: {', '.join(self.skipped_examples)}{more}"


# --------------------------------------------------------------------------- discovery
def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _check_root(root: str | os.PathLike, what: str) -> Path:
    path = Path(root).expanduser()
    if not str(root).strip():
        raise DataError(f"no {what} folder given: type the folder that holds {LAYOUT}.")
    if not path.exists():
        raise DataError(f"{what} folder {path} does not exist: give a folder with {LAYOUT}.")
    if not path.is_dir():
        raise DataError(f"{what} folder {path} is a file, not a folder: give a folder with {LAYOUT}.")
    return path


def find_classes(root: str | os.PathLike, *, what: str = "image") -> tuple[Path, list[str]]:
    """The class names under a root: its sorted, non-hidden subfolder names (Keras' convention).

    Raises:
        DataError: The root is missing or not a folder, or it holds fewer than two class folders.
    """
    path = _check_root(root, what)
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"cannot list {path} ({exc.strerror or exc}): check its permissions.") from None
    classes = [e.name for e in entries if not _hidden(e.name) and e.is_dir()]
    if not classes:
        loose = sum(1 for e in entries if e.is_file() and not _hidden(e.name))
        found = f" ({loose:,} files lie directly in it)" if loose else ""
        raise DataError(f"{path} has no class subfolders{found}: put the images in {LAYOUT} "
                        "(the folder names are the class names).")
    if len(classes) == 1:
        raise DataError(f"{path} has only one class folder ({classes[0]}/): a classifier needs at least two classes, "
                        f"so add a second folder of images ({LAYOUT}).")
    return path, classes


def list_files(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """Every non-hidden file below each class folder (recursively, sorted), with its class index."""
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            files.extend((Path(dirpath) / f, label) for f in sorted(filenames) if not _hidden(f))
    return files


def folder_signature(*roots: str | os.PathLike | None) -> tuple:
    """A cheap fingerprint of folder trees for a cache key: each root's and class folder's path and mtime.

    Adding or removing a file in a class folder changes that folder's mtime; a file edited in place
    does not (press reload or rename the folder to see such a change).
    """
    out: list = []
    for root in roots:
        if root is None or not str(root).strip():
            out.append(None)
            continue
        path = Path(root).expanduser()
        try:
            out.append((str(path), path.stat().st_mtime_ns))
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                if entry.is_dir() and not _hidden(entry.name):
                    out.append((entry.name, entry.stat().st_mtime_ns))
        except OSError:
            out.append((str(path), None))
    return tuple(out)


# --------------------------------------------------------------------------- decoding
def _decode(path: Path, size_hw: tuple[int, int]) -> tuple[np.ndarray | None, tuple[int, int] | str]:
    """(H, W, 3) uint8 pixels and the original (H, W), or (None, why it cannot be read).

    The image is prepared exactly as `explorer.inference` prepares one for a prediction (EXIF
    rotation, transparency on white, centre-cropped to the aspect ratio of H×W, then resized), so a
    model trained here sees the same pixels when it is tried on a photo later.
    """
    from PIL import Image

    from explorer.inference import InferenceError, fit_image, open_image

    try:
        with Image.open(path) as peek:  # the header only: the original size
            original = (peek.height, peek.width)
        return fit_image(open_image(path, name="file", max_bytes=MAX_FILE_BYTES, max_pixels=MAX_FILE_PIXELS),
                         size_hw), original
    except InferenceError as exc:
        text = str(exc)
        reason = ("not an image" if "not an image" in text else "too large" if "at most" in text
                  else "damaged" if "decoded" in text else text.removeprefix("file ")[:80])
        return None, reason
    except Exception as exc:  # UnidentifiedImageError from the peek, I/O errors, ...
        reason = "not an image" if type(exc).__name__ == "UnidentifiedImageError" else str(exc) or type(exc).__name__
        return None, reason[:80]


@dataclass
class _Decoded:
    images: np.ndarray
    labels: np.ndarray
    skipped: int
    examples: list[str]
    sizes: Counter


def _read_all(root: Path, files: list[tuple[Path, int]], size_hw: tuple[int, int], workers: int) -> _Decoded:
    height, width = size_hw
    images = np.empty((len(files), height, width, 3), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    n, skipped, examples, sizes = 0, 0, [], Counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while it decodes
        for (path, label), (pixels, info) in zip(files, pool.map(lambda f: _decode(f[0], size_hw), files), strict=True):
            if pixels is None:
                skipped += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(f"{path.relative_to(root).as_posix()} ({info})")
                continue
            images[n], labels[n] = pixels, label
            sizes[info] += 1
            n += 1
    return _Decoded(images[:n], labels[:n], skipped, examples, sizes)


def _bytes(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _check_budget(n_files: int, size_hw: tuple[int, int], max_images: int, max_bytes: int, where: Path) -> None:
    height, width = size_hw
    need = n_files * height * width * 3
    if n_files > max_images or need > max_bytes:
        raise DataError(
            f"{where} holds {n_files:,} files; at {height}×{width}×3 they need {_bytes(need)} in memory, over "
            f"the limit of {max_images:,} images / {_bytes(max_bytes)}: use a smaller input size "
            f"(--input / the sidebar) or train on a copy with fewer images per class."
        )


def _check_class_coverage(labels: np.ndarray, classes: Sequence[str], where: Path, skipped: int) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    if not counts.sum():
        raise DataError(f"no readable images in {where} ({skipped:,} files could not be read as images): put JPEG or PNG "
                        f"files in {LAYOUT}.")
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        listed = ", ".join(f"{name}/" for name in empty[:5]) + (", …" if len(empty) > 5 else "")
        raise DataError(f"{where}: class folder{'s' if len(empty) > 1 else ''} {listed} "
                        f"{'have' if len(empty) > 1 else 'has'} no readable images: add images (JPEG, PNG, BMP or GIF) "
                        "or remove the folder.")


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Exact per-channel mean and std in [0, 1] units, from 256-bin histograms (no float copy of the images)."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(3):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        total = max(hist.sum(), 1.0)
        mean = float(hist @ values / total)
        var = float(hist @ (values - mean) ** 2 / total)
        means.append(round(mean, 6))
        stds.append(round(max(var**0.5, 1e-3), 6))
    return tuple(means), tuple(stds)  # type: ignore[return-value]


def _split(labels: np.ndarray, classes: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced (train, validation) indices: round(fraction × n) of each class, at least 1, at most n - 1."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            raise DataError(f"class {name}/ has only {len(idx)} readable image: splitting off validation images needs at "
                            "least 2 per class; add images or give a separate validation folder (--val-dir).")
        idx = rng.permutation(idx)
        k = min(max(int(round(len(idx) * fraction)), 1), len(idx) - 1)
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _frozen(a: np.ndarray, dtype: type) -> np.ndarray:
    out = np.ascontiguousarray(a, dtype=dtype)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------- the loader
def load_image_folders(root: str | os.PathLike, *, val_dir: str | os.PathLike | None = None,
                       val_split: float | None = DEFAULT_VAL_SPLIT, image_size: tuple[int, int] = (32, 32),
                       seed: int = 0, max_images: int = MAX_IMAGES, max_bytes: int = MAX_BYTES,
                       workers: int | None = None) -> ImageFolders:
    """Read image folders in Keras' directory layout, resized to `image_size`, into memory.

    Args:
        root: Training folder with one subfolder per class (`root/<class>/*.jpg|png`).
        val_dir: Validation folder with the same class subfolders; when None, a class-balanced
            `val_split` fraction of `root` is held out instead.
        val_split: Fraction of each class held out for validation when there is no `val_dir` (0 < F < 1).
        image_size: (H, W) every image is resized to (the network's input size).
        seed: Seed of the validation split.
        max_images: Refuse more files than this (all in memory).
        max_bytes: Refuse when the resized pixels would need more bytes than this.
        workers: Decoding threads (default: the CPU count, at most 8).

    Returns:
        The data set, read-only; x_test/y_test are the validation images.

    Raises:
        DataError: A folder is missing or holds fewer than two classes, a class has no readable
            image, the validation classes differ from the training classes, the split is out of
            range, or the images would not fit in memory. The message says what to fix.
    """
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise DataError(f"image size {height}×{width} is not positive: give the network an input of at least 1×1.")
    if val_dir is not None and not str(val_dir).strip():
        val_dir = None
    if val_dir is None and (val_split is None or not 0.0 < val_split < 1.0):
        raise DataError(f"validation fraction {val_split} is out of range: give a fraction between 0 and 1 "
                        "(e.g. 0.2), or a separate validation folder.")
    workers = workers or min(8, os.cpu_count() or 1)
    path, classes = find_classes(root, what="image")
    files = list_files(path, classes)
    val_path, val_files = None, []
    if val_dir is not None:
        val_path, val_classes = find_classes(val_dir, what="validation")
        if val_path.resolve() == path.resolve():
            raise DataError(f"the validation folder is the training folder ({path}): give a separate folder, or leave it "
                            "empty and set a validation fraction.")
        if val_classes != classes:
            missing = [c for c in classes if c not in val_classes]
            extra = [c for c in val_classes if c not in classes]
            diff = "; ".join(part for part in (
                f"missing {', '.join(missing[:5])}" if missing else "", f"extra {', '.join(extra[:5])}" if extra else "",
            ) if part)
            raise DataError(f"the validation folder {val_path} has other class folders than {path} ({diff}): "
                            "both need the same class subfolder names.")
        val_files = list_files(val_path, classes)
    _check_budget(len(files) + len(val_files), (height, width), max_images, max_bytes, path)

    train = _read_all(path, files, (height, width), workers)
    _check_class_coverage(train.labels, classes, path, train.skipped)
    skipped, examples, sizes = train.skipped, list(train.examples), Counter(train.sizes)
    if val_path is not None:
        val = _read_all(val_path, val_files, (height, width), workers)
        _check_class_coverage(val.labels, classes, val_path, val.skipped)
        skipped += val.skipped
        examples += [f"{val_path.name}/{e}" for e in val.examples][: max(0, MAX_EXAMPLES - len(examples))]
        sizes.update(val.sizes)
        x_train, y_train, x_val, y_val = train.images, train.labels, val.images, val.labels
        where = f"image folders {path} ({len(classes)} classes), validation images from {val_path}"
    else:
        train_idx, val_idx = _split(train.labels, classes, float(val_split), seed)
        x_train, y_train = train.images[train_idx], train.labels[train_idx]
        x_val, y_val = train.images[val_idx], train.labels[val_idx]
        where = (f"image folders {path} ({len(classes)} classes), {val_split:.0%} of each class held out as "
                 "validation images")
    label_dtype = np.uint8 if len(classes) <= 256 else np.int32
    mean, std = _channel_stats(x_train)
    common = tuple((h, w, n) for (h, w), n in sizes.most_common(5))
    return ImageFolders(
        x_train=_frozen(x_train, np.uint8), y_train=_frozen(y_train, label_dtype),
        x_test=_frozen(x_val, np.uint8), y_test=_frozen(y_val, label_dtype),
        source=where, classes=tuple(classes), mean=mean, std=std, path=path, val_path=val_path,
        val_split=None if val_path is not None else float(val_split), skipped=skipped,
        skipped_examples=tuple(examples), sizes_seen=len(sizes), common_sizes=common,
    )
