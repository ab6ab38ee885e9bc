"""The user's own image folders (`root/<class>/*.jpg|png`) as an in-memory data set the trainer can use.

The layout is Keras' directory convention (`keras.utils.image_dataset_from_directory`): one
subfolder per class, the sorted subfolder names are the class names, and the images of a class
may sit in nested folders below it. Validation images come either from a second root with the
same class folders or from a class-balanced fraction of the one root. Every file is decoded with
Pillow (grayscale and palette become RGB, transparency goes on white, EXIF rotation is applied),
centre-cropped to the aspect ratio of the network's input and resized to its H×W, exactly as
`explorer.inference` prepares a photo for a prediction, so mixed sizes are fine; files that cannot be decoded (corrupt images, notes, anything not an image) are
skipped and counted, not fatal. Hidden files and folders (`.DS_Store`, `.ipynb_checkpoints`) and
files directly in the root are ignored, as Keras ignores them. Folders are listed before any file is
opened: only regular files are read (FIFOs, sockets and devices are skipped unopened), and a listing
stops at a count and a time cap. The same classes can come from a `.zip` of class folders, decoded
in memory (`load_image_zip`) with the same decoder, split and statistics.

Numpy and Pillow only; no TensorFlow.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from explorer import files, fmt
from explorer.data import DataError, InMemoryImages
from explorer.serverpaths import system_dir

MAX_IMAGES = 200_000
MAX_BYTES = 2 * 1024**3  # decoded, resized uint8 pixels held in memory
MAX_EXAMPLES = 10  # skipped file names kept for the message
MAX_FILE_BYTES = 64 * 1024**2  # one image file; larger ones are skipped as "too large"
MAX_FILE_PIXELS = 80_000_000  # one image (below Pillow's decompression-bomb limit)
MAX_WALK_ENTRIES = 400_000  # files and folders a listing looks at (before it opens any)
MAX_WALK_SECONDS = 20.0  # longest a listing may take
MAX_ZIP_MEMBERS = 20_000  # an uploaded archive's members (files and folders)
MAX_ZIP_UNPACKED = 256 * 1024**2  # what an uploaded archive's members declare, in all
MAX_ZIP_FILE_BYTES = 10 * 1024**2  # one image in an archive (as explorer.inference.MAX_IMAGE_BYTES)
MAX_ZIP_FILE_PIXELS = 40_000_000  # one image in an archive (as explorer.inference.MAX_IMAGE_PIXELS)
MAX_ZIP_PIXEL_BYTES = 256 * 1024**2  # an archive's resized pixels (it lives in one session's memory)
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
    holds_validation_images: ClassVar[bool] = True  # the trainer validates and evaluates on x_test / y_test

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


def _need_classes(where: str, classes: Sequence[str], loose: int) -> None:
    if not classes:
        found = f" ({loose:,} files lie directly in it)" if loose else ""
        raise DataError(f"{where} has no class subfolders{found}: put the images in {LAYOUT} "
                        "(the folder names are the class names).")
    if len(classes) == 1:
        raise DataError(f"{where} has only one class folder ({classes[0]}/): a classifier needs at least two classes, "
                        f"so add a second folder of images ({LAYOUT}).")


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
    _need_classes(str(path), classes, 0 if classes else sum(1 for e in entries if e.is_file() and not _hidden(e.name)))
    return path, classes


@dataclass
class _Listing:
    """Files to decode, as (path, label), and the entries skipped without opening them, as "class/name (why)"."""

    files: list[tuple[Path, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Walker:
    """Lists class folders without opening a file: regular files only, within an entry count and a deadline.

    Symbolic links to files are followed (to a regular file inside `allowed`, when given); links to
    folders are not walked into, as `os.walk` does by default. FIFOs, sockets and devices are
    skipped unopened (opening a FIFO blocks, opening some devices acts), and so is anything in
    `/proc`, `/sys` or `/dev`.
    """

    def __init__(self, *, allowed: Callable[[str], bool] | None, max_entries: int, max_seconds: float) -> None:
        self.allowed, self.max_entries, self.max_seconds = allowed, max_entries, max_seconds
        self.entries = 0
        self.deadline = time.monotonic() + max_seconds

    def _count(self, where: Path, *, folder: bool = False) -> None:
        if not folder:
            self.entries += 1
            if self.entries > self.max_entries:
                raise DataError(f"{where} holds more than {self.max_entries:,} files and folders (listing stopped "
                                f"there, before any was opened): give a folder with only the images to train on "
                                f"({LAYOUT}).")
        if (folder or self.entries % 512 == 0) and time.monotonic() >= self.deadline:
            raise DataError(f"listing {where} took more than {self.max_seconds:g} s ({self.entries:,} files and folders "
                            f"so far, none opened): give a smaller folder with only the images to train on.")

    def _link_problem(self, entry: os.DirEntry) -> str:
        """Why a link cannot be read ("" when it leads to a non-empty regular file that may be read)."""
        try:
            real = os.path.realpath(entry.path)
            info = os.stat(real)
        except (OSError, ValueError, RuntimeError):
            return "broken link"
        if self.allowed is not None and not self.allowed(real):
            return "link outside the shared folders"
        if system_dir(real):
            return "link into a system folder"
        if stat.S_ISDIR(info.st_mode):
            return "link to a folder"
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        return "" if info.st_size else "empty"

    def walk(self, root: Path, classes: Sequence[str]) -> _Listing:
        """Every regular, non-hidden file below each class folder (recursively, sorted), with its class index."""
        out = _Listing()
        for label, name in enumerate(classes):
            top = root / name
            real = os.path.realpath(top)
            if self.allowed is not None and not self.allowed(real):
                out.skipped.append(f"{name}/ (link outside the shared folders)")
                continue
            if system_dir(real):
                out.skipped.append(f"{name}/ (a system folder)")
                continue
            stack = [top]
            while stack:
                folder = stack.pop()
                self._count(root, folder=True)
                try:
                    entries = sorted((e for e in os.scandir(folder) if not _hidden(e.name)), key=lambda e: e.name)
                except OSError:
                    continue  # an unreadable folder below a class, as os.walk skips it
                subfolders = []
                for entry in entries:
                    self._count(root)
                    shown = Path(entry.path).relative_to(root).as_posix()
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            subfolders.append(Path(entry.path))
                            continue
                        if entry.is_file(follow_symlinks=False):
                            why = "" if entry.stat(follow_symlinks=False).st_size else "empty"
                        elif entry.is_symlink():
                            why = self._link_problem(entry)
                            if why == "link to a folder":
                                continue  # not walked into and not counted, as os.walk does
                        else:
                            why = "not a regular file"
                    except OSError:
                        why = "cannot be read"
                    if why:
                        out.skipped.append(f"{shown} ({why})")
                    else:
                        out.files.append((Path(entry.path), label))
                stack.extend(reversed(subfolders))
        return out


def list_files(root: Path, classes: Sequence[str], *, allowed: Callable[[str], bool] | None = None,
               max_entries: int = MAX_WALK_ENTRIES, max_seconds: float = MAX_WALK_SECONDS) -> list[tuple[Path, int]]:
    """Every regular, non-hidden file below each class folder (recursively, sorted), with its class index.

    FIFOs, sockets and devices are left out without being opened; see `load_image_folders` for the caps.
    """
    return _Walker(allowed=allowed, max_entries=max_entries, max_seconds=max_seconds).walk(root, classes).files


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
def _looks_like_image(head: bytes) -> bool:
    """Whether the first bytes are those of a format `explorer.inference.open_image` reads (PNG, JPEG, GIF, BMP, WebP)."""
    return (head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def _read_file(path: Path, allowed: Callable[[str], bool] | None) -> bytes | str:
    """A regular file's bytes, or why not: opened non-blocking and checked again (it may have changed since the walk)."""
    try:
        if allowed is not None and not allowed(os.path.realpath(path)):
            return "link outside the shared folders"
        fh = files.open_regular(path)  # non-blocking: a FIFO that appeared since the walk cannot hang it
    except files.FileRefused:
        return "not a regular file"
    except (OSError, ValueError) as exc:
        return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:80]
    with fh:
        if os.fstat(fh.fileno()).st_size > MAX_FILE_BYTES:
            return "too large"
        try:
            head = fh.read(16)
            if head and not _looks_like_image(head):
                return "not an image"  # the rest is not read (a folder of other files fails fast)
            return head + fh.read(MAX_FILE_BYTES + 1 - len(head))
        except OSError as exc:
            return (exc.strerror or str(exc))[:80]


def _decode(data: bytes, size_hw: tuple[int, int], *, max_bytes: int = MAX_FILE_BYTES,
            max_pixels: int = MAX_FILE_PIXELS) -> tuple[np.ndarray | None, tuple[int, int] | str]:
    """(H, W, 3) uint8 pixels and the original (H, W) of one image file's bytes, or (None, why it cannot be read).

    The image is prepared exactly as `explorer.inference` prepares one for a prediction (EXIF
    rotation, transparency on white, centre-cropped to the aspect ratio of H×W, then resized), so a
    model trained here sees the same pixels when it is tried on a photo later.
    """
    from PIL import Image

    from explorer.inference import IMAGE_FORMATS, InferenceError, fit_image, open_image

    if not data:
        return None, "empty"
    if len(data) > max_bytes:
        return None, "too large"
    if not _looks_like_image(data[:16]):
        return None, "not an image"
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as peek:  # the header only: the original size
            original = (peek.height, peek.width)
        return fit_image(open_image(data, name="file", max_bytes=max_bytes, max_pixels=max_pixels), size_hw), original
    except InferenceError as exc:
        text = str(exc)
        reason = ("not an image" if "not an image" in text else "too large" if "at most" in text
                  else "damaged" if "decoded" in text else text.removeprefix("file ")[:80])
        return None, reason
    except Exception as exc:  # UnidentifiedImageError from the peek, decoder errors, ...
        reason = "not an image" if type(exc).__name__ == "UnidentifiedImageError" else str(exc) or type(exc).__name__
        return None, reason[:80]


@dataclass
class _Decoded:
    images: np.ndarray
    labels: np.ndarray
    skipped: int
    examples: list[str]
    sizes: Counter


def _read_all(names: Sequence[str], labels_in: Sequence[int], fetch: Callable[[int], bytes | str],
              size_hw: tuple[int, int], workers: int, *, max_pixels: int = MAX_FILE_PIXELS,
              max_bytes: int = MAX_FILE_BYTES) -> _Decoded:
    """Decode item i of `fetch(i)` (its bytes, or why it cannot be read) for every name, in parallel."""
    height, width = size_hw
    images = np.empty((len(names), height, width, 3), dtype=np.uint8)
    labels = np.empty(len(names), dtype=np.int64)
    n, skipped, examples, sizes = 0, 0, [], Counter()

    def one(i: int) -> tuple[np.ndarray | None, tuple[int, int] | str]:
        data = fetch(i)
        return (None, data) if isinstance(data, str) else _decode(data, size_hw, max_bytes=max_bytes,
                                                                  max_pixels=max_pixels)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while it decodes
        for i, (pixels, info) in enumerate(pool.map(one, range(len(names)))):
            if pixels is None:
                skipped += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(f"{names[i]} ({info})")
                continue
            images[n], labels[n] = pixels, labels_in[i]
            sizes[info] += 1
            n += 1
    return _Decoded(images[:n], labels[:n], skipped, examples, sizes)


def _read_listing(root: Path, listing: _Listing, size_hw: tuple[int, int], workers: int,
                  allowed: Callable[[str], bool] | None) -> _Decoded:
    """Decode the files of a folder listing; the entries the walk skipped count as skipped too."""
    paths = [p for p, _ in listing.files]
    decoded = _read_all([p.relative_to(root).as_posix() for p in paths], [label for _, label in listing.files],
                        lambda i: _read_file(paths[i], allowed), size_hw, workers)
    decoded.skipped += len(listing.skipped)
    decoded.examples += listing.skipped[: max(0, MAX_EXAMPLES - len(decoded.examples))]
    return decoded


def _check_budget(n_files: int, size_hw: tuple[int, int], max_images: int, max_bytes: int, where: Path) -> None:
    height, width = size_hw
    need = n_files * height * width * 3
    if n_files > max_images or need > max_bytes:
        raise DataError(
            f"{where} holds {n_files:,} files; at {height}×{width}×3 they need {fmt.memory(need, mib_decimals=1)} in "
            f"memory, over the limit of {max_images:,} images / {fmt.memory(max_bytes, mib_decimals=1)}: use a smaller "
            f"input size (--input / the sidebar) or train on a copy with fewer images per class."
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


# --------------------------------------------------------------------------- the loaders
def _assemble(classes: Sequence[str], train: _Decoded, val: _Decoded | None, *, source: str, val_split: float | None,
              seed: int, path: Path | None = None, val_path: Path | None = None, val_name: str = "") -> ImageFolders:
    """The data set from decoded training (and validation) images: the split, the statistics, read-only arrays."""
    skipped, examples, sizes = train.skipped, list(train.examples), Counter(train.sizes)
    if val is not None:
        skipped += val.skipped
        examples += [f"{val_name}/{e}" for e in val.examples][: max(0, MAX_EXAMPLES - len(examples))]
        sizes.update(val.sizes)
        x_train, y_train, x_val, y_val = train.images, train.labels, val.images, val.labels
    else:
        train_idx, val_idx = _split(train.labels, classes, float(val_split), seed)
        x_train, y_train = train.images[train_idx], train.labels[train_idx]
        x_val, y_val = train.images[val_idx], train.labels[val_idx]
    label_dtype = np.uint8 if len(classes) <= 256 else np.int32
    mean, std = _channel_stats(x_train)
    common = tuple((h, w, n) for (h, w), n in sizes.most_common(5))
    return ImageFolders(
        x_train=_frozen(x_train, np.uint8), y_train=_frozen(y_train, label_dtype),
        x_test=_frozen(x_val, np.uint8), y_test=_frozen(y_val, label_dtype),
        source=source, classes=tuple(classes), mean=mean, std=std, path=path, val_path=val_path,
        val_split=None if val is not None else float(val_split), skipped=skipped,
        skipped_examples=tuple(examples), sizes_seen=len(sizes), common_sizes=common,
    )


def _check_args(image_size: tuple[int, int], val_split: float | None, *, has_val: bool) -> tuple[int, int]:
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise DataError(f"image size {height}×{width} is not positive: give the network an input of at least 1×1.")
    if not has_val and (val_split is None or not 0.0 < val_split < 1.0):
        raise DataError(f"validation fraction {val_split} is out of range: give a fraction between 0 and 1 "
                        "(e.g. 0.2), or a separate validation folder.")
    return height, width


def load_image_folders(root: str | os.PathLike, *, val_dir: str | os.PathLike | None = None,
                       val_split: float | None = DEFAULT_VAL_SPLIT, image_size: tuple[int, int] = (32, 32),
                       seed: int = 0, max_images: int = MAX_IMAGES, max_bytes: int = MAX_BYTES,
                       workers: int | None = None, allowed: Callable[[str], bool] | None = None,
                       max_entries: int = MAX_WALK_ENTRIES, max_seconds: float = MAX_WALK_SECONDS) -> ImageFolders:
    """Read image folders in Keras' directory layout, resized to `image_size`, into memory.

    The folders are listed before any file is opened: only regular files are read (FIFOs, sockets
    and devices are skipped and counted, unopened), and the listing stops with a DataError after
    `max_entries` files and folders or `max_seconds`.

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
        allowed: When given, a resolved path (a linked file's target, a class folder) is read only if
            this says yes (e.g. `explorer.serverpaths.PathPolicy.allows`); others are skipped.
        max_entries: Most files and folders the listing looks at.
        max_seconds: Longest the listing may take.

    Returns:
        The data set, read-only; x_test/y_test are the validation images.

    Raises:
        DataError: A folder is missing or holds fewer than two classes, a class has no readable
            image, the validation classes differ from the training classes, the split is out of
            range, the listing is over its caps, or the images would not fit in memory. The message
            says what to fix.
    """
    if val_dir is not None and not str(val_dir).strip():
        val_dir = None
    height, width = _check_args(image_size, val_split, has_val=val_dir is not None)
    workers = workers or min(8, os.cpu_count() or 1)
    walker = _Walker(allowed=allowed, max_entries=max_entries, max_seconds=max_seconds)
    path, classes = find_classes(root, what="image")
    listing = walker.walk(path, classes)
    val_path, val_listing = None, _Listing()
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
        val_listing = walker.walk(val_path, classes)
    _check_budget(len(listing.files) + len(val_listing.files), (height, width), max_images, max_bytes, path)

    train = _read_listing(path, listing, (height, width), workers, allowed)
    _check_class_coverage(train.labels, classes, path, train.skipped)
    val = None
    if val_path is not None:
        val = _read_listing(val_path, val_listing, (height, width), workers, allowed)
        _check_class_coverage(val.labels, classes, val_path, val.skipped)
        where = f"image folders {path} ({len(classes)} classes), validation images from {val_path}"
    else:
        where = (f"image folders {path} ({len(classes)} classes), {val_split:.0%} of each class held out as "
                 "validation images")
    return _assemble(classes, train, val, source=where, val_split=val_split, seed=seed, path=path, val_path=val_path,
                     val_name=val_path.name if val_path is not None else "")


def _member_parts(info: zipfile.ZipInfo, archive: str) -> list[str]:
    """A member's path components, refusing what could point outside the archive's own tree."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"{archive} holds a member with an absolute path ({info.filename[:80]!r}): zip the class "
                        f"folders themselves ({LAYOUT}).")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{archive} holds a member that points outside it ({info.filename[:80]!r}): zip the class "
                        f"folders themselves ({LAYOUT}).")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"{archive} holds a symbolic link ({info.filename[:80]!r}): zip the image files themselves.")
    if info.flag_bits & 0x1:
        raise DataError(f"{archive} is encrypted ({info.filename[:80]!r}): zip the images without a password.")
    return parts


def load_image_zip(data: bytes, *, name: str = "archive.zip", val_split: float = DEFAULT_VAL_SPLIT,
                   image_size: tuple[int, int] = (32, 32), seed: int = 0, max_members: int = MAX_ZIP_MEMBERS,
                   max_unpacked: int = MAX_ZIP_UNPACKED, max_bytes: int = MAX_ZIP_PIXEL_BYTES,
                   workers: int | None = None) -> ImageFolders:
    """Read a `.zip` of class folders (`cat/001.jpg`, `dog/…`, or all inside one top folder) into memory.

    Nothing is written to disk: each member is decoded from the archive in memory, with the same
    decoder, split and statistics as `load_image_folders`. Members that are not images (or too large,
    or damaged) are skipped and counted; hidden members (`__MACOSX/`, `.DS_Store`) and files beside
    the class folders are ignored.

    Args:
        data: The archive's bytes.
        name: Its file name, for messages and the data set's `source`.
        val_split: Fraction of each class held out for validation (0 < F < 1).
        image_size: (H, W) every image is resized to (the network's input size).
        seed: Seed of the validation split.
        max_members: Refuse archives with more members (files and folders) than this.
        max_unpacked: Refuse archives whose members declare more bytes than this in all.
        max_bytes: Refuse when the resized pixels would need more bytes than this.
        workers: Decoding threads (default: the CPU count, at most 4).

    Returns:
        The data set, read-only, with `path` None; x_test/y_test are the validation images.

    Raises:
        DataError: Not a zip archive; too many members or bytes; a member with an absolute path, a
            `..` component, a symbolic link, a password, or a compression other than deflate; fewer
            than two class folders; a class without a readable image; a split out of range.
    """
    height, width = _check_args(image_size, val_split, has_val=False)
    name = (Path(str(name)).name or "archive.zip")[:80]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{name} is not a readable .zip archive ({exc}): zip the class folders ({LAYOUT}).") from None
    if len(infos) > max_members:
        raise DataError(f"{name} holds {len(infos):,} members; at most {max_members:,} are read: upload fewer images.")
    members = [(parts, info) for info in infos
               if (parts := _member_parts(info, name)) and not info.is_dir() and not any(map(_hidden, parts))]
    declared = sum(info.file_size for _, info in members)
    if declared > max_unpacked:
        raise DataError(f"{name} unpacks to {fmt.memory(declared, mib_decimals=1)}; at most "
                        f"{fmt.memory(max_unpacked, mib_decimals=1)} are read: upload fewer or smaller images.")
    odd = [info.filename[:80] for _, info in members if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)]
    if odd:
        raise DataError(f"{name} uses a compression other than deflate ({odd[0]!r}): zip it with the usual settings.")
    if len({p[0] for p, _ in members}) == 1 and any(len(p) >= 3 for p, _ in members):
        members = [(parts[1:], info) for parts, info in members if len(parts) >= 2]  # one top folder around them
    classes = sorted({parts[0] for parts, _ in members if len(parts) >= 2})
    _need_classes(name, classes, sum(1 for parts, _ in members if len(parts) == 1))
    index = {c: i for i, c in enumerate(classes)}
    items = sorted((parts, info) for parts, info in members if len(parts) >= 2)
    _check_budget(len(items), (height, width), max_members, max_bytes, Path(name))
    lock = threading.Lock()

    def fetch(i: int) -> bytes | str:
        info = items[i][1]
        if info.file_size > MAX_ZIP_FILE_BYTES:
            return "too large"
        try:
            with lock, archive.open(info) as fh:
                return fh.read(MAX_ZIP_FILE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            return f"damaged ({exc})"[:80]

    decoded = _read_all(["/".join(parts) for parts, _ in items], [index[parts[0]] for parts, _ in items], fetch,
                        (height, width), workers or min(4, os.cpu_count() or 1), max_bytes=MAX_ZIP_FILE_BYTES,
                        max_pixels=MAX_ZIP_FILE_PIXELS)
    _check_class_coverage(decoded.labels, classes, Path(name), decoded.skipped)
    where = f"uploaded {name} ({len(classes)} classes), {val_split:.0%} of each class held out as validation images"
    return _assemble(classes, decoded, None, source=where, val_split=val_split, seed=seed)
