"""CIFAR-10 for the training tab: find and read the data safely, validate it, and feed it to Keras as `tf.data`.

Sources, in order: a local directory (argument, `CIFAR10_DIR`, or the Train tab's text box)
holding the official binary layout (`cifar-10-batches-bin/`), the official Python layout
(`cifar-10-batches-py/`) or one of the official archives (`cifar-10-binary.tar.gz`,
`cifar-10-python.tar.gz`); then the Keras cache (`~/.keras/datasets`); then a download through
`keras.datasets.cifar10`. The Python layout is pickled: it is read with a restricted unpickler
that admits only the numpy reconstruction functions the real files need. Arrays come back
read-only, so one copy can be shared by every session of the server.

Only `make_datasets` imports TensorFlow (lazily); finding and reading the files is numpy only.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from explorer import files

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
PIXELS = 32 * 32 * 3
RECORD_BYTES = 1 + PIXELS  # binary layout: 1 label byte + 3072 pixel bytes (R, G, B planes)
TRAIN_BATCHES = 5
BATCH_RECORDS = 10_000  # images in an official batch file: the most one file may hold
MAX_BINARY_BATCH_BYTES = BATCH_RECORDS * RECORD_BYTES  # 30,730,000: an official .bin batch exactly
MAX_PYTHON_BATCH_BYTES = 40 * 1024 * 1024  # an official pickled batch is ~31.0 MB (images, labels, file names)
MAX_MEMBER_BYTES = MAX_PYTHON_BATCH_BYTES  # the largest batch file of either layout read from disk or an archive
MAX_PICKLE_OPCODES = 200_000  # an official pickled batch has ~30,000 (10,000 labels and 10,000 file names)
MAX_ARCHIVE_MEMBERS = 64  # the official archives hold 9 or 10 entries
# Channel statistics of the CIFAR-10 training set, in [0, 1] units.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

BIN_DIR = "cifar-10-batches-bin"
PY_DIR = "cifar-10-batches-py"
BIN_ARCHIVE = "cifar-10-binary.tar.gz"
PY_ARCHIVE = "cifar-10-python.tar.gz"
ENV_VAR = "CIFAR10_DIR"
DOWNLOAD_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
HOW_TO_GET = (
    f"Download {BIN_ARCHIVE} (or {PY_ARCHIVE}) from {DOWNLOAD_PAGE}, put it (or the folder it unpacks to) "
    f"in a directory, and pass that directory with --data-dir, set {ENV_VAR}, or type it into the Train tab."
)


class DataError(Exception):
    """CIFAR-10 could not be found or read; the message says what is wrong and what to do."""


class InMemoryImages:
    """The counts the trainer reads of a data set in memory: `Cifar10` and `explorer.imagefolder.ImageFolders`.

    Needs `y_train`, `y_test` and `classes` on the class that mixes it in.

    Attributes:
        holds_validation_images: The evaluation images are the data set's own validation images, so the trainer
            validates on them instead of holding out a fraction (image folders; CIFAR-10's are its test set).
    """

    holds_validation_images: ClassVar[bool] = False

    @property
    def n_train(self) -> int:
        """Number of training images."""
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        """Number of evaluation images (CIFAR-10's test set; the validation images of image folders)."""
        return len(self.y_test)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


@dataclass(frozen=True)
class Cifar10(InMemoryImages):
    """CIFAR-10 in memory, read-only.

    Attributes:
        x_train: (N, 32, 32, 3) uint8 training images (H, W, C).
        y_train: (N,) uint8 labels 0..9.
        x_test: (M, 32, 32, 3) uint8 test images.
        y_test: (M,) uint8 test labels.
        source: Where the data came from, in words (shown in the UI).
        kind: "binary", "python", "binary-archive", "python-archive" or "download".
        path: The file or directory read (None after a download into memory).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    kind: str
    path: Path | None = field(default=None)

    # The same names as `explorer.imagefolder.ImageFolders`, so the trainer takes either.
    @property
    def classes(self) -> tuple[str, ...]:
        """The class names (label i is classes[i])."""
        return CLASSES

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(32, 32, 3)."""
        return IMAGE_SHAPE

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean used to normalise (CIFAR-10's training-set statistics)."""
        return MEAN

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel standard deviation used to normalise."""
        return STD


@dataclass(frozen=True)
class Source:
    """A place CIFAR-10 can be read from (found, not yet read).

    Attributes:
        kind: "binary", "python", "binary-archive" or "python-archive".
        path: The layout directory or the archive file.
        origin: How it was found: "argument", "CIFAR10_DIR", "keras cache".
    """

    kind: str
    path: Path
    origin: str

    def describe(self) -> str:
        """E.g. 'binary layout in /data/cifar-10-batches-bin (from CIFAR10_DIR)'."""
        what = {
            "binary": "binary layout", "python": "Python layout",
            "binary-archive": "binary archive", "python-archive": "Python archive",
        }[self.kind]
        return f"{what} {self.path} (from {self.origin})"


# --------------------------------------------------------------------------- restricted unpickling
class RefusedPickle(pickle.UnpicklingError):
    """A pickle that asks for something the CIFAR-10 files never contain (refused before it is built)."""


class _NdarrayClass:
    """Stands in for `numpy.ndarray` in a pickle: it may only name the class for `_reconstruct`, never be called."""

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RefusedPickle("a pickle that calls numpy.ndarray (it would allocate the array it names)")


_NDARRAY = _NdarrayClass()


def _bounded_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct`, refusing an array larger than one CIFAR-10 batch before it is allocated.

    The official files call it with an empty shape and fill the array with `__setstate__` (whose
    bytes come from the file itself); a crafted file could instead declare a huge shape here.
    """
    if subtype is not _NDARRAY:
        raise RefusedPickle("numpy arrays in a CIFAR-10 batch are plain ndarrays")
    try:
        dims = tuple(int(d) for d in (shape if isinstance(shape, tuple | list) else (shape,)))
        itemsize = np.dtype(dtype.decode("latin-1") if isinstance(dtype, bytes) else dtype).itemsize
    except (TypeError, ValueError, OverflowError) as exc:
        raise RefusedPickle(f"an array with shape {shape!r} and dtype {dtype!r} ({exc})") from None
    nbytes = itemsize
    for d in dims:
        if d < 0:
            raise RefusedPickle(f"an array with a negative dimension {dims}")
        nbytes *= d
    if len(dims) > 8 or nbytes > BATCH_RECORDS * PIXELS:
        raise RefusedPickle(f"an array of shape {dims} ({nbytes:,} bytes), larger than a CIFAR-10 batch")
    return np._core.multiarray._reconstruct(np.ndarray, dims, dtype)  # type: ignore[attr-defined]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    return {
        ("numpy.core.multiarray", "_reconstruct"): _bounded_reconstruct,  # files pickled by numpy 1.x (the official ones)
        ("numpy._core.multiarray", "_reconstruct"): _bounded_reconstruct,  # numpy 2.x
        ("numpy", "ndarray"): _NDARRAY,  # only ever the first argument of _reconstruct: calling it would allocate
        ("numpy", "dtype"): np.dtype,
    }


class ForbiddenGlobal(RefusedPickle):
    """A pickle asked for a function or class the CIFAR-10 files never contain."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 Python layout: plain containers and uint8 numpy arrays, nothing else.

    The official batches are dicts of bytes keys, lists, bytes and one numpy array; rebuilding
    the array needs `numpy.core.multiarray._reconstruct`, `numpy.ndarray` and `numpy.dtype`.
    Every other global (functions, classes, modules) is refused, so a crafted file cannot run code,
    and `_reconstruct` refuses an array larger than one batch, so a small file cannot declare a huge one.
    """

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - documented on the class
        if RestrictedUnpickler._ALLOWED is None:
            RestrictedUnpickler._ALLOWED = _allowed_globals()
        try:
            return RestrictedUnpickler._ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(f"refused to load {module}.{name}") from None


class TooManyOpcodes(RefusedPickle):
    """A pickle with far more objects than a CIFAR-10 batch holds (refused before any is built)."""


def restricted_loads(data: bytes, *, max_opcodes: int = MAX_PICKLE_OPCODES) -> Any:
    """Unpickle bytes with `RestrictedUnpickler` (Python 2 strings come back as bytes).

    The opcodes are counted first (`pickletools.genops` reads them without building anything): a
    pickle of many small objects (a list of millions of labels) is refused before it takes memory.

    Raises:
        RefusedPickle: More than `max_opcodes` opcodes (`TooManyOpcodes`), a global the CIFAR-10
            files never contain (`ForbiddenGlobal`), or an array larger than one batch.
        pickle.UnpicklingError, EOFError, ValueError, ...: A damaged or foreign pickle.
    """
    for count, _ in enumerate(pickletools.genops(data), 1):
        if count > max_opcodes:
            raise TooManyOpcodes(f"more than {max_opcodes:,} pickle opcodes")
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


# --------------------------------------------------------------------------- one batch file
def parse_binary_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one file of the binary layout into ((N, 32, 32, 3) uint8, (N,) uint8).

    Raises:
        DataError: The file is empty, not a whole number of 3073-byte records, or more than a
            batch's 10,000 records (checked on the length, before anything is copied).
    """
    if len(data) > MAX_BINARY_BATCH_BYTES:
        raise DataError(
            f"{name} is {len(data):,} bytes: more than the {BATCH_RECORDS:,} records of {RECORD_BYTES} bytes "
            f"({MAX_BINARY_BATCH_BYTES:,} bytes) that a CIFAR-10 batch holds, so it is not one. {HOW_TO_GET}"
        )
    if not data or len(data) % RECORD_BYTES:
        full, rest = divmod(len(data), RECORD_BYTES)
        raise DataError(
            f"{name} is damaged: {len(data):,} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 records "
            f"({full:,} records and {rest} bytes left over); it may be truncated. {HOW_TO_GET}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def parse_python_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one pickled batch of the Python layout (restricted unpickler) into images and labels.

    A batch holds at most 10,000 images: a (N, 3072) uint8 array and N whole-number labels. Shape,
    dtype and labels are checked before anything is copied or converted.

    Raises:
        DataError: The file is not a CIFAR-10 batch, or it asks for anything but plain data.
    """
    if len(data) > MAX_PYTHON_BATCH_BYTES:
        raise DataError(f"{name} is {len(data):,} bytes, far larger than a CIFAR-10 batch. {HOW_TO_GET}")
    try:
        batch = restricted_loads(data)
    except RefusedPickle as exc:
        raise DataError(f"{name} is not a plain CIFAR-10 batch ({exc}); it was not loaded. {HOW_TO_GET}") from None
    except Exception as exc:  # truncated or garbage pickles raise EOFError, ValueError, ...
        raise DataError(f"{name} cannot be read as a CIFAR-10 batch ({type(exc).__name__}: {exc}); "
                        f"it may be truncated. {HOW_TO_GET}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{name} is not a CIFAR-10 batch (expected a dict with data and labels). {HOW_TO_GET}")
    get = lambda key: batch.get(key.encode(), batch.get(key))  # noqa: E731 - Python 2 (bytes) or 3 (str) keys
    images, labels = get("data"), get("labels")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != PIXELS:
        shape = getattr(images, "shape", None)
        raise DataError(f"{name} has no (N, {PIXELS}) uint8 'data' array (found {type(images).__name__} {shape}); "
                        f"it is not a CIFAR-10 batch. {HOW_TO_GET}")
    if len(images) > BATCH_RECORDS:  # pragma: no cover - _bounded_reconstruct refuses such an array first
        raise DataError(f"{name} holds {len(images):,} images; a CIFAR-10 batch holds at most {BATCH_RECORDS:,}. "
                        f"{HOW_TO_GET}")
    if not isinstance(labels, list | tuple | np.ndarray) or len(labels) != len(images):
        raise DataError(f"{name}: the labels do not match the {len(images):,} images. {HOW_TO_GET}")
    labels_arr = _labels_array(labels, name)
    _check_labels(labels_arr, name)
    return np.ascontiguousarray(images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels_arr.astype(np.uint8)


def _labels_array(labels: list | tuple | np.ndarray, name: str) -> np.ndarray:
    """(N,) int64 labels from a batch's list (or 1-D integer array), refusing anything but whole numbers.

    The element types are checked before numpy converts them: a list of nested lists would
    otherwise become an array of their (possibly huge, shared) nested shape.
    """
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    else:
        ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in labels)
    if not ok:
        raise DataError(f"{name}: the labels are not whole numbers. {HOW_TO_GET}")
    try:
        return np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{name}: the labels are not whole numbers. {HOW_TO_GET}") from None


def _check_labels(labels: np.ndarray, name: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = int(labels[(labels < 0) | (labels >= NUM_CLASSES)][0])
        raise DataError(f"{name} has label {bad}; CIFAR-10 labels are 0..9 (is this CIFAR-100?). {HOW_TO_GET}")


# --------------------------------------------------------------------------- layouts
def _batch_names(kind: str) -> list[str]:
    suffix = ".bin" if kind.startswith("binary") else ""
    return [f"data_batch_{i}{suffix}" for i in range(1, TRAIN_BATCHES + 1)] + [f"test_batch{suffix}"]


def _batch_limit(kind: str) -> int:
    """The largest batch file of a layout, in bytes (a file of more is refused unread)."""
    return MAX_BINARY_BATCH_BYTES if kind.startswith("binary") else MAX_PYTHON_BATCH_BYTES


def _too_large(what: object, size: int, limit: int) -> DataError:
    return DataError(f"{what} is {size:,} bytes, more than a CIFAR-10 batch file ({limit:,} bytes at most). {HOW_TO_GET}")


def open_regular_file(path: Path) -> BinaryIO:
    """Open a batch file or archive only when it is a regular file (never blocks on a FIFO, never reads a device).

    Raises:
        DataError: The path is missing, unreadable, or not a regular file.
    """
    try:
        return files.open_regular(path)
    except files.FileRefused as exc:
        raise DataError(f"{path} is not a regular file (it is {exc.kind}): give a folder with the CIFAR-10 batch "
                        f"files. {HOW_TO_GET}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}). Check that it exists and its permissions.") from None


def _read_capped(handle: BinaryIO, what: object, limit: int) -> bytes:
    """Read at most `limit` bytes; more (a file that grew, a size that lied) is a DataError."""
    try:
        return files.read_capped(handle, limit=limit, path=str(what))
    except files.FileRefused:
        raise DataError(f"{what} holds more than {limit:,} bytes, more than a CIFAR-10 batch file. {HOW_TO_GET}") from None


def _read_dir_files(directory: Path, kind: str, names: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
    limit = _batch_limit(kind)
    for name in names or _batch_names(kind):
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path} is missing: the {kind} layout needs {', '.join(_batch_names(kind))}. {HOW_TO_GET}")
        with open_regular_file(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise _too_large(path, size, limit)  # refused unread
            try:
                data = _read_capped(handle, path, limit)
            except OSError as exc:
                raise DataError(f"cannot read {path} ({exc.strerror or exc}). Check its permissions.") from None
        yield name, data


def _read_archive_files(archive: Path, kind: str, names: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """Read the batch members of an official archive into memory (nothing is extracted to disk).

    Only the first `MAX_ARCHIVE_MEMBERS` entries are looked at (an archive of millions of tiny
    entries would otherwise be listed whole), and a member larger than a batch is never read.
    """
    folder = BIN_DIR if kind == "binary-archive" else PY_DIR
    wanted = names or _batch_names(kind)
    limit = _batch_limit(kind)
    handle = open_regular_file(archive)
    try:
        with handle, tarfile.open(fileobj=handle, mode="r:*") as tar:
            members: dict[str, tarfile.TarInfo] = {}
            for count, member in enumerate(tar, 1):
                if count > MAX_ARCHIVE_MEMBERS:
                    raise DataError(f"{archive} has more than {MAX_ARCHIVE_MEMBERS} entries before the CIFAR-10 batches: "
                                    f"it is not the official {archive.name}. {HOW_TO_GET}")
                members.setdefault(member.name.lstrip("./"), member)
                if all(f"{folder}/{name}" in members for name in wanted):
                    break
            for name in wanted:
                member = members.get(f"{folder}/{name}")
                if member is None:
                    raise DataError(f"{archive} has no {folder}/{name}: it is not the official {archive.name}. {HOW_TO_GET}")
                if not member.isfile():
                    raise DataError(f"{archive}: {folder}/{name} is not a CIFAR-10 batch file. {HOW_TO_GET}")
                if member.size > limit:
                    raise _too_large(f"{archive}: {folder}/{name}", member.size, limit)  # refused unread
                extracted = tar.extractfile(member)
                assert extracted is not None  # a regular file
                yield name, _read_capped(extracted, f"{archive}: {folder}/{name}", limit)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{archive} cannot be read as a .tar.gz archive ({exc}); it may be truncated. {HOW_TO_GET}") from None


def read_source(source: Source) -> Cifar10:
    """Read and validate one source.

    Raises:
        DataError: A file is missing, damaged, or does not hold CIFAR-10.
    """
    if source.kind in ("binary", "python"):
        files = _read_dir_files(source.path, source.kind)
    else:
        files = _read_archive_files(source.path, source.kind)
    parse = _parser(source.kind)
    parts = [(name, *parse(data, name)) for name, data in files]
    where = f" in {source.path}"
    train, test = parts[:TRAIN_BATCHES], parts[TRAIN_BATCHES]
    counts = {len(labels) for _, _, labels in train}
    if len(counts) != 1:
        sizes = ", ".join(f"{name}: {len(labels):,}" for name, _, labels in train)
        raise DataError(f"the training batches{where} differ in size ({sizes}); a file is truncated or foreign. {HOW_TO_GET}")
    x_train = np.concatenate([x for _, x, _ in train])
    y_train = np.concatenate([y for _, _, y in train])
    data = validate(x_train, y_train, test[1], test[2], where=where)
    return Cifar10(*data, source=source.describe(), kind=source.kind, path=source.path)


def validate(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, where: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes, labels and class coverage; return read-only copies with labels as (N,) uint8.

    Raises:
        DataError: Shapes, label range or class coverage are wrong.
    """
    y_train = np.asarray(y_train).reshape(-1)
    y_test = np.asarray(y_test).reshape(-1)
    for split, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.shape[1:] != IMAGE_SHAPE or len(x) != len(y) or len(y) == 0:
            raise DataError(f"the {split} set{where} is not CIFAR-10: images {x.shape} {x.dtype}, {len(y)} labels "
                            f"(expected (N, 32, 32, 3) uint8 and N labels). {HOW_TO_GET}")
        _check_labels(y.astype(np.int64), f"the {split} set{where}")
        missing = sorted(set(range(NUM_CLASSES)) - set(np.unique(y).tolist()))
        if missing:
            names = ", ".join(CLASSES[i] for i in missing)
            raise DataError(f"the {split} set{where} has no images of {names}: not all ten classes are present, "
                            f"so it is not (all of) CIFAR-10. {HOW_TO_GET}")
    out = []
    for a, dtype in ((x_train, np.uint8), (y_train, np.uint8), (x_test, np.uint8), (y_test, np.uint8)):
        a = np.array(a, dtype=dtype, copy=True, order="C")
        a.setflags(write=False)
        out.append(a)
    return tuple(out)  # type: ignore[return-value]


def _parser(kind: str) -> Callable[[bytes, str], tuple[np.ndarray, np.ndarray]]:
    return parse_binary_batch if kind.startswith("binary") else parse_python_batch


def read_test_batch(source: Source) -> tuple[np.ndarray, np.ndarray]:
    """Only the test images and labels of a source (one file: quick)."""
    name = _batch_names(source.kind)[-1]
    reader = _read_dir_files if source.kind in ("binary", "python") else _read_archive_files
    [(_, payload)] = list(reader(source.path, source.kind, [name]))
    return _parser(source.kind)(payload, name)


def sample_batch(size: int, *, data_dir: str | os.PathLike | None = None, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, str] | None:
    """A random batch of CIFAR-10 test images, if a local copy is at hand (no download).

    Returns:
        (images (N, 32, 32, 3) float32 in [0, 1], labels (N,) int64, where they came from), or
        None when no local CIFAR-10 was found or it could not be read.
    """
    try:
        source = find_source(data_dir)
        if source is None:
            return None
        images, labels = read_test_batch(source)
    except DataError:
        return None
    pick = np.random.default_rng(seed).choice(len(labels), size=min(size, len(labels)), replace=False)
    return (images[pick].astype(np.float32) / 255.0, labels[pick].astype(np.int64),
            f"{len(pick)} CIFAR-10 test images ({source.describe()})")


# --------------------------------------------------------------------------- finding a source
def find_in_dir(directory: str | os.PathLike, *, origin: str = "argument") -> Source:
    """The CIFAR-10 layout or archive in a directory (or the directory itself when it is a layout).

    Raises:
        DataError: The directory does not exist or holds no CIFAR-10 layout or archive.
    """
    path = Path(directory).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist ({origin}). {HOW_TO_GET}")
    if path.is_file():
        if path.name in (BIN_ARCHIVE, PY_ARCHIVE) or path.name.endswith((".tar.gz", ".tgz")):
            kind = "python-archive" if "python" in path.name else "binary-archive"
            return Source(kind, path, origin)
        raise DataError(f"{path} is a file, not a directory with CIFAR-10 ({origin}). {HOW_TO_GET}")
    candidates = [
        ("binary", path / BIN_DIR), ("python", path / PY_DIR),
        ("binary-archive", path / BIN_ARCHIVE), ("python-archive", path / PY_ARCHIVE),
    ]
    for kind, candidate in candidates:
        if candidate.exists():
            return Source(kind, candidate, origin)
    # The user may point at the layout folder itself.
    if (path / "data_batch_1.bin").exists() or (path / "test_batch.bin").exists():
        return Source("binary", path, origin)
    if (path / "data_batch_1").exists() or (path / "test_batch").exists():
        return Source("python", path, origin)
    if (path / "train.bin").exists() or (path / "train").is_file():
        raise DataError(f"{path} looks like CIFAR-100 (train/test files), not CIFAR-10. {HOW_TO_GET}")
    raise DataError(f"no CIFAR-10 in {path} ({origin}): expected {BIN_DIR}/, {PY_DIR}/, {BIN_ARCHIVE} or {PY_ARCHIVE}. "
                    f"{HOW_TO_GET}")


def keras_cache_dir() -> Path:
    """Where `keras.utils.get_file` keeps datasets (`$KERAS_HOME/datasets` or `~/.keras/datasets`)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def find_in_keras_cache(cache: Path | None = None) -> Source | None:
    """A CIFAR-10 layout or archive left in the Keras cache by an earlier download, if any."""
    cache = keras_cache_dir() if cache is None else cache
    if not cache.is_dir():
        return None
    # keras 2 extracted to datasets/cifar-10-batches-py; keras 3 to datasets/cifar-10-batches-py-target[_extracted]/...
    roots = [cache] + sorted(p for p in cache.iterdir() if p.is_dir() and p.name.startswith("cifar-10"))
    for root in roots:
        for kind, candidate in (("binary", root / BIN_DIR), ("python", root / PY_DIR)):
            if (candidate / _batch_names(kind)[0]).is_file():
                return Source(kind, candidate, "keras cache")
    # keras 3 keeps the downloaded python archive as datasets/cifar-10-batches-py-target (no suffix)
    for kind, name in (("binary-archive", BIN_ARCHIVE), ("python-archive", PY_ARCHIVE),
                       ("python-archive", "cifar-10-batches-py-target")):
        if (cache / name).is_file():
            return Source(kind, cache / name, "keras cache")
    return None


def find_source(data_dir: str | os.PathLike | None = None, *, use_env: bool = True,
                use_keras_cache: bool = True) -> Source | None:
    """The first source that exists: `data_dir`, then `$CIFAR10_DIR`, then the Keras cache.

    Returns:
        The source, or None when only a download is left.

    Raises:
        DataError: `data_dir` (or `$CIFAR10_DIR`) is given but holds no CIFAR-10.
    """
    if data_dir is not None and str(data_dir).strip():
        return find_in_dir(str(data_dir).strip(), origin="argument")
    env = os.environ.get(ENV_VAR, "").strip() if use_env else ""
    if env:
        return find_in_dir(env, origin=ENV_VAR)
    if use_keras_cache:
        return find_in_keras_cache()
    return None


def download() -> Cifar10:
    """Download CIFAR-10 through `keras.datasets.cifar10` (prints Keras' progress bar to stdout).

    Raises:
        DataError: The download failed (e.g. offline); the message says how to get the data by hand.
    """
    try:
        from keras.datasets import cifar10

        (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    except Exception as exc:  # URLError, OSError, hash mismatch, ... all end the same way for the user
        raise DataError(f"CIFAR-10 is not on this machine and the download failed ({type(exc).__name__}: {exc}). "
                        f"{HOW_TO_GET}") from None
    data = validate(x_train, y_train, x_test, y_test, where=" downloaded by Keras")
    return Cifar10(*data, source=f"downloaded by keras.datasets.cifar10 into {keras_cache_dir()}", kind="download")


def load_cifar10(data_dir: str | os.PathLike | None = None, *, use_env: bool = True, use_keras_cache: bool = True,
                 allow_download: bool = True) -> Cifar10:
    """Find, read and validate CIFAR-10 from the first source there is.

    Args:
        data_dir: A directory with a CIFAR-10 layout or archive (or the layout folder itself).
        use_env: Look at `$CIFAR10_DIR` when `data_dir` is not given.
        use_keras_cache: Look in the Keras cache when neither is given.
        allow_download: Download through Keras when nothing is found.

    Returns:
        The data set, read-only.

    Raises:
        DataError: Nothing found (and no download), or what was found is not CIFAR-10.
    """
    source = find_source(data_dir, use_env=use_env, use_keras_cache=use_keras_cache)
    if source is not None:
        return read_source(source)
    if not allow_download:
        raise DataError(f"CIFAR-10 was not found (no directory given, {ENV_VAR} unset, nothing in {keras_cache_dir()}). "
                        f"{HOW_TO_GET}")
    return download()


# --------------------------------------------------------------------------- tf.data
@dataclass
class Pipelines:
    """The `tf.data` pipelines of one training run.

    Attributes:
        train: Shuffled, augmented batches of (normalised images, one-hot labels), drop_remainder.
        val: Validation batches (no augmentation), or None when val_split is 0.
        test: Test batches (no augmentation), in test-set order.
        n_train: Training images per epoch (after subset and split).
        n_val: Validation images.
        n_test: Test images.
        batch_size: Global batch size.
        steps_per_epoch: Training batches per epoch.
        train_index: Which of the data set's training images are trained on (after subset and split).
    """

    train: Any
    val: Any | None
    test: Any
    n_train: int
    n_val: int
    n_test: int
    batch_size: int
    steps_per_epoch: int
    train_index: np.ndarray | None = None


def split_indices(labels: np.ndarray, *, subset: int | None, val_split: float, seed: int,
                  num_classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (class-balanced) indices for a training subset and a validation split.

    Args:
        labels: (N,) training labels.
        subset: Use only this many training+validation images (None = all).
        val_split: Fraction of them held out for validation (0 = none).
        seed: Random seed.
        num_classes: Number of classes (labels are 0..num_classes-1).

    Returns:
        (train indices, validation indices), each shuffled.
    """
    if not 0.0 <= val_split < 1.0:
        raise ValueError(f"val_split must be in [0, 1), not {val_split}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = rng.permutation(n)
    if subset is not None and subset < n:
        # Stratify: take images round-robin over classes so a small subset still holds every class.
        by_class = [order[labels[order] == c] for c in range(num_classes)]
        per = [min(len(idx), subset // num_classes + (1 if c < subset % num_classes else 0)) for c, idx in enumerate(by_class)]
        order = rng.permutation(np.concatenate([idx[:k] for idx, k in zip(by_class, per, strict=True)]))
    n_val = int(round(len(order) * val_split))
    return order[n_val:], order[:n_val]


def normalise(images: Any, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> Any:
    """uint8 (B, H, W, C) tensor -> float32, per-channel standardised (default: CIFAR-10 statistics, in [0, 1] units)."""
    import tensorflow as tf

    scale = tf.constant([1.0 / (255.0 * s) for s in std], tf.float32)
    offset = tf.constant([-m / s for m, s in zip(mean, std, strict=True)], tf.float32)
    return tf.cast(images, tf.float32) * scale + offset


def augment_batch(images: Any, *, flip: bool, crop: int, seed: Any = None) -> Any:
    """Per-image random horizontal flip and random translation of a (B, H, W, C) batch (vectorised).

    Args:
        images: uint8 (or float) batch.
        flip: Flip each image left-right with probability 1/2.
        crop: Pad by this many pixels (reflect) and crop back at a random offset (0 = off).
        seed: Two integers (e.g. the run's seed and the batch's number) that decide the flips and offsets (None:
            TensorFlow's random state).
    """
    import tensorflow as tf

    x = images
    if not (flip or crop):
        return x

    def uniform(k: int, shape: list, **kw: Any) -> Any:
        if seed is None:
            return tf.random.uniform(shape, **kw)
        return tf.random.stateless_uniform(shape, seed=tf.cast(seed, tf.int64) + tf.constant([0, 1 << 40], tf.int64) * k,
                                           **kw)

    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    cols = tf.broadcast_to(tf.range(width)[None, :], [batch, width])
    if crop:
        x = tf.pad(x, [[0, 0], [crop, crop], [crop, crop], [0, 0]], mode="REFLECT")
        oy = uniform(1, [batch, 1], minval=0, maxval=2 * crop + 1, dtype=tf.int32)
        ox = uniform(2, [batch, 1], minval=0, maxval=2 * crop + 1, dtype=tf.int32)
        x = tf.gather(x, oy + tf.range(height)[None, :], axis=1, batch_dims=1)
        cols = cols + ox
    if flip:
        # Reverse the column order of a random half of the images (a per-image gather is ~4x
        # cheaper on a CPU than tf.where over the whole batch).
        flipped = uniform(3, [batch, 1]) < 0.5
        cols = tf.where(flipped, tf.reverse(cols, axis=[1]), cols)
    x = tf.gather(x, cols, axis=2, batch_dims=1)
    return x


_TENSOR: list = [None, None]  # (a weak reference to an array, the tensor of it)


def images_tensor(images: np.ndarray, *, keep: bool = False) -> Any:
    """`images` as a TensorFlow constant: the one kept by an earlier call with `keep` for this very array, else a new one.

    Copying the 150 MB of CIFAR-10's training images into a tensor takes 0.2-0.7 s on two cores; a warm training
    process makes (and keeps) it before its job comes (`explorer.training.process`), and the run gathers its
    batches from it. Other processes do not keep it (a server would hold a second copy of the images).
    """
    import weakref

    import tensorflow as tf

    ref, tensor = _TENSOR
    if ref is not None and ref() is images:
        return tensor
    tensor = tf.constant(images)
    if keep:
        _TENSOR[:] = [weakref.ref(images), tensor]
    return tensor


def make_datasets(data: Any, *, batch_size: int = 256, subset: int | None = None, val_split: float = 0.1,
                  flip: bool = True, crop: int = 0, seed: int = 0, eval_batch_size: int | None = None) -> Pipelines:
    """Build the training, validation and test pipelines.

    Batches are gathered from the in-memory arrays by index (one `tf.gather` per batch), then
    normalised and augmented as whole batches, which costs little CPU next to the network.

    Args:
        data: The data set: `Cifar10` or `explorer.imagefolder.ImageFolders` (its classes, and its
            mean and std for the normalisation, come from it).
        batch_size: Global training batch size.
        subset: Train on this many images (class-balanced; None = all).
        val_split: Fraction of the (subset of the) training set held out for validation.
        flip: Random horizontal flips during training.
        crop: Random translations by up to this many pixels during training (0 = off).
        seed: Seed of the subset/split and of the shuffling.
        eval_batch_size: Batch size of validation and test (default: max(batch_size, 500)).

    Raises:
        DataError: The subset or split leaves fewer images than one training batch.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise DataError(f"batch size {batch_size} is not positive: give a batch size of 1 or more.")
    train_idx, val_idx = split_indices(data.y_train, subset=subset, val_split=val_split, seed=seed,
                                       num_classes=data.num_classes)
    if len(train_idx) < batch_size:
        raise DataError(f"only {len(train_idx):,} training images after subset and validation split, fewer than one batch "
                        f"of {batch_size}: use a larger subset or a smaller batch size.")
    eval_bs = eval_batch_size or max(batch_size, 500)
    one_hot = np.eye(data.num_classes, dtype=np.float32)
    mean, std = tuple(data.mean), tuple(data.std)

    def norm(images: Any) -> Any:
        return normalise(images, mean, std)

    x_all = images_tensor(data.x_train)  # all the training images, once per process (the run indexes into them)
    y_all = tf.constant(one_hot[data.y_train])
    train_pos, val_pos = np.asarray(train_idx, np.int64), np.asarray(val_idx, np.int64)

    def gather(idx: Any) -> tuple[Any, Any]:
        return tf.gather(x_all, idx), tf.gather(y_all, idx)

    def gather_augmented(number: Any, idx: Any) -> tuple[Any, Any]:
        # (the run's seed and the batch's number decide its flips and shifts: a seed repeats a run's augmentation)
        images = augment_batch(tf.gather(x_all, idx), flip=flip, crop=crop, seed=tf.stack([tf.constant(seed, tf.int64), number]))
        return norm(images), tf.gather(y_all, idx)

    n_train = len(train_pos)
    train = (
        tf.data.Dataset.from_tensor_slices(train_pos)
        .shuffle(n_train, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .enumerate()
        .map(gather_augmented)
        .prefetch(2)
    )
    val = None
    if len(val_pos):
        val = (
            tf.data.Dataset.from_tensor_slices(val_pos).batch(eval_bs).map(gather)
            .map(lambda x, y: (norm(x), y)).prefetch(1)
        )
    test = (
        tf.data.Dataset.from_tensor_slices((data.x_test, one_hot[data.y_test])).batch(eval_bs)
        .map(lambda x, y: (norm(x), y)).prefetch(1)
    )
    return Pipelines(train=train, val=val, test=test, n_train=n_train, n_val=len(val_pos), n_test=data.n_test,
                     batch_size=batch_size, steps_per_epoch=n_train // batch_size, train_index=train_idx)
