"""CIFAR-10 loading: fixtures written by the test itself in the real binary, pickled and .tar.gz layouts, and their faults."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from explorer import data as D
from explorer.data import DataError
from tests.conftest import ROOT
from tests.helpers import PER_CLASS, binary_bytes, fixture_arrays, python_bytes, write_layout


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


# --------------------------------------------------------------------------- the three layouts
@pytest.mark.parametrize("kind", ["binary", "python", "binary-archive", "python-archive"])
def test_each_layout_loads_the_same_images(tmp_path, kind):
    write_layout(tmp_path, kind)
    data = D.load_cifar10(tmp_path, allow_download=False)
    assert data.kind == kind
    assert data.x_train.shape == (5 * 10 * PER_CLASS, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (10 * PER_CLASS, 32, 32, 3)
    images, labels = fixture_arrays(PER_CLASS, seed=0)
    np.testing.assert_array_equal(data.x_train[: len(labels)], images)  # CHW planes became (H, W, C)
    np.testing.assert_array_equal(data.y_train[: len(labels)], labels)
    test_images, test_labels = fixture_arrays(PER_CLASS, seed=5)
    np.testing.assert_array_equal(data.x_test, test_images)
    np.testing.assert_array_equal(data.y_test, test_labels)
    assert str(tmp_path) in data.source


def test_arrays_are_read_only(tmp_path):
    write_layout(tmp_path, "binary")
    data = D.load_cifar10(tmp_path, allow_download=False)
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 0


def test_layout_folder_itself_and_env_var_and_order(tmp_path, monkeypatch):
    folder = write_layout(tmp_path / "a", "binary")
    assert D.load_cifar10(folder, allow_download=False).kind == "binary"  # the folder itself
    write_layout(tmp_path / "b", "python")
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "b"))
    assert D.find_source().kind == "python" and D.find_source().origin == D.ENV_VAR
    assert D.find_source(tmp_path / "a").kind == "binary"  # the argument wins over the environment


def test_keras_cache_is_found(tmp_path, monkeypatch):
    cache = tmp_path / "keras-home" / "datasets"
    write_layout(cache / "cifar-10-batches-py-target_extracted", "python")
    source = D.find_source()
    assert source is not None and source.origin == "keras cache" and source.kind == "python"
    assert D.load_cifar10(allow_download=False).n_test == 10 * PER_CLASS


def test_nothing_found_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz.*--data-dir"):
        D.load_cifar10(allow_download=False)


def test_failed_download_becomes_data_error(monkeypatch):
    import keras

    def offline():
        raise OSError("URL fetch failure: no route to host")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError, match=r"download failed.*cs\.toronto\.edu.*CIFAR10_DIR"):
        D.load_cifar10()


# --------------------------------------------------------------------------- faults
def test_missing_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        D.load_cifar10(tmp_path / "nope", allow_download=False)


def test_dir_with_wrong_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no CIFAR-10 in"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_cifar100_is_named(tmp_path):
    (tmp_path / "train.bin").write_bytes(b"\0" * 3074)
    with pytest.raises(DataError, match="CIFAR-100"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_missing_batch_file(tmp_path):
    folder = write_layout(tmp_path, "binary")
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match="data_batch_3.bin is missing"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_truncated_binary_file(tmp_path):
    folder = write_layout(tmp_path, "binary")
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="data_batch_2.bin is damaged.*truncated"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_truncated_at_a_record_boundary(tmp_path):
    folder = write_layout(tmp_path, "binary")
    path = folder / "data_batch_4.bin"
    path.write_bytes(path.read_bytes()[: -D.RECORD_BYTES * 3])
    with pytest.raises(DataError, match="differ in size"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_truncated_pickle(tmp_path):
    folder = write_layout(tmp_path, "python")
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="test_batch cannot be read"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_truncated_archive(tmp_path):
    archive = write_layout(tmp_path, "binary-archive")
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DataError, match="truncated|no cifar-10-batches-bin"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_bad_labels_binary(tmp_path):
    folder = write_layout(tmp_path, "binary")
    path = folder / "data_batch_1.bin"
    raw = bytearray(path.read_bytes())
    raw[D.RECORD_BYTES * 5] = 42  # the label byte of the sixth record
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="label 42.*0..9"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_bad_labels_python(tmp_path):
    folder = write_layout(tmp_path, "python")
    images, labels = fixture_arrays(PER_CLASS, seed=1)
    labels = labels.astype(np.int64)
    labels[0] = -1
    (folder / "data_batch_2").write_bytes(python_bytes(images, labels))
    with pytest.raises(DataError, match="label -1"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_a_missing_class_is_refused(tmp_path):
    folder = write_layout(tmp_path, "binary")
    images, labels = fixture_arrays(PER_CLASS, seed=5)
    labels = np.where(labels == 3, 4, labels).astype(np.uint8)  # no cats in the test set
    (folder / "test_batch.bin").write_bytes(binary_bytes(images, labels))
    with pytest.raises(DataError, match="test set.*no images of cat"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_pickle_with_a_forbidden_global_is_refused(tmp_path):
    folder = write_layout(tmp_path, "python")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=3))
    with pytest.raises(DataError, match="refused to load (posix|os|nt).system"):
        D.load_cifar10(tmp_path, allow_download=False)
    assert not marker.exists()


def test_restricted_unpickler_admits_only_numpy_reconstruction():
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(D.restricted_loads(pickle.dumps({b"data": arr}, protocol=3))[b"data"], arr)
    for evil in (pickle.dumps(np.float64(1.0)), pickle.dumps(Path("x")), pickle.dumps(print)):
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            D.restricted_loads(evil)


def test_python_batch_without_data_array(tmp_path):
    folder = write_layout(tmp_path, "python")
    (folder / "data_batch_5").write_bytes(pickle.dumps({b"labels": [1, 2]}, protocol=3))
    with pytest.raises(DataError, match="data_batch_5 has no"):
        D.load_cifar10(tmp_path, allow_download=False)


# --------------------------------------------------------------------------- sizes: what a batch file may claim
def run_capped(code: str, *, address_space_gb: float = 2.0) -> str:
    """Run test code in a subprocess with a capped address space (a regression fails there instead of eating memory)."""
    prelude = textwrap.dedent(f"""
        import resource
        limit = int({address_space_gb} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    """)
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


class _DeclaredArray:
    """Pickles as numpy's `_reconstruct(ndarray, shape, "B")` with no data: a tiny file that declares a big array."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, self.shape, b"B"))


def test_full_size_batches_of_both_layouts_are_read():
    images, labels = fixture_arrays(D.BATCH_RECORDS // 10)  # 10,000 records: an official batch
    x, y = D.parse_binary_batch(binary_bytes(images, labels), "data_batch_1.bin")
    assert x.shape == (D.BATCH_RECORDS, 32, 32, 3) and np.array_equal(y, labels)
    raw = python_bytes(images, labels)
    assert len(raw) < D.MAX_PYTHON_BATCH_BYTES
    x, y = D.parse_python_batch(raw, "data_batch_1")
    assert np.array_equal(x, images) and np.array_equal(y, labels)


def test_a_binary_batch_of_more_than_10000_records_is_refused_by_its_length(tmp_path):
    images, labels = fixture_arrays(1)
    one = binary_bytes(images[:1], labels[:1])
    with pytest.raises(DataError, match="30,733,073 bytes: more than the 10,000 records"):
        D.parse_binary_batch(one * (D.BATCH_RECORDS + 1), "data_batch_1.bin")
    folder = write_layout(tmp_path, "binary")
    (folder / "test_batch.bin").write_bytes(one * (D.BATCH_RECORDS + 1))
    with pytest.raises(DataError, match="test_batch.bin is 30,733,073 bytes, more than a CIFAR-10 batch file"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_a_binary_archive_member_of_more_than_10000_records_is_refused_unread(tmp_path):
    archive = tmp_path / D.BIN_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for name in D._batch_names("binary-archive"):
            info = tarfile.TarInfo(f"{D.BIN_DIR}/{name}")
            info.size = D.MAX_BINARY_BATCH_BYTES + D.RECORD_BYTES
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(DataError, match="data_batch_1.bin is 30,733,073 bytes, more than a CIFAR-10 batch file"):
        D.load_cifar10(tmp_path, allow_download=False)


def test_a_truncated_binary_batch_at_full_size_is_refused():
    images, labels = fixture_arrays(D.BATCH_RECORDS // 10)
    with pytest.raises(DataError, match="is damaged.*9,999 records and 3072 bytes left over"):
        D.parse_binary_batch(binary_bytes(images, labels)[:-1], "data_batch_1.bin")


def test_a_python_batch_declaring_200000_rows_is_refused_before_allocation():
    """A 400 KB pickle whose array claims (200000, 3072): refused by the unpickler, under a 2 GB address space."""
    out = run_capped("""
        import pickle
        import numpy as np
        from explorer import data as D

        class _DeclaredArray:
            def __init__(self, shape):
                self.shape = shape

            def __reduce__(self):
                return (np._core.multiarray._reconstruct, (np.ndarray, self.shape, b"B"))

        for n_labels in (200_000, 10):  # with a label per row (the opcode cap), with a few (the array's size)
            raw = pickle.dumps({b"data": _DeclaredArray((200_000, 3072)), b"labels": [i % 10 for i in range(n_labels)]},
                               protocol=3)
            try:
                D.parse_python_batch(raw, "data_batch_1")
            except D.DataError as exc:
                print("DataError", exc)
        # VmHWM: this process's peak RSS (ru_maxrss would include pytest's, inherited through fork and exec)
        hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
        print("peak MiB", int(hwm.split()[1]) // 1024)
    """)
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert "more than 200,000 pickle opcodes" in lines[0]
    assert "an array of shape (200000, 3072) (614,400,000 bytes), larger than a CIFAR-10 batch" in lines[1]
    assert int(lines[2].split()[-1]) < 300, out  # numpy alone is ~30 MiB; the old code copied 586 MiB


def test_a_python_layout_of_200000_row_batches_is_a_data_error_at_small_memory(tmp_path):
    folder = tmp_path / D.PY_DIR
    folder.mkdir()
    for name in D._batch_names("python"):
        raw = pickle.dumps({b"data": _DeclaredArray((200_000, 3072)), b"labels": [i % 10 for i in range(100)]}, protocol=3)
        (folder / name).write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    out = run_capped(f"""
        from explorer import data as D
        try:
            D.load_cifar10({str(tmp_path)!r}, allow_download=False)
        except D.DataError as exc:
            print("DataError", exc)
    """)
    assert out.startswith("DataError data_batch_1 is not a plain CIFAR-10 batch (an array of shape (200000, 3072)"), out


@pytest.mark.parametrize("bad", [
    {b"data": _DeclaredArray((10**12,))},
    {b"data": _DeclaredArray((-1, 3072))},
    {b"data": _DeclaredArray((2, 3072, 2, 1, 1, 1, 1, 1, 1))},
])
def test_the_unpickler_refuses_arrays_larger_than_a_batch(bad):
    with pytest.raises(D.RefusedPickle, match="array"):
        D.restricted_loads(pickle.dumps(bad, protocol=3))


def test_the_unpickler_never_calls_ndarray_itself():
    class NewArray:  # pickle's NEWOBJ: ndarray.__new__(ndarray, shape) would allocate
        def __reduce__(self):
            return (np.ndarray, ((200_000, 3072),))

    with pytest.raises(D.RefusedPickle, match="calls numpy.ndarray"):
        D.restricted_loads(pickle.dumps({b"data": NewArray()}, protocol=3))


def test_labels_must_be_whole_numbers_before_numpy_converts_them():
    images, _ = fixture_arrays(1)
    row = [0] * 1000
    nested = [row] * 1000  # shared references: numpy would build a (10, 1000, 1000) array from them
    for labels in ([nested] * 10, [1.5] * 10, [True] * 10, np.zeros((10, 2), np.int64)):
        batch = {b"data": images.transpose(0, 3, 1, 2).reshape(10, -1).copy(), b"labels": labels}
        with pytest.raises(DataError, match="labels are not whole numbers"):
            D.parse_python_batch(pickle.dumps(batch, protocol=3), "data_batch_1")


def test_a_20_gb_batch_file_is_refused_unread(tmp_path):
    """A sparse 20 GB test_batch (no disk used): refused by its size, under a 2 GB address space."""
    folder = write_layout(tmp_path, "python")
    os.truncate(folder / "test_batch", 20 * 2**30)
    out = run_capped(f"""
        from explorer import data as D
        source = D.find_source({str(tmp_path)!r})
        for read in (D.read_source, D.read_test_batch):
            try:
                read(source)
            except D.DataError as exc:
                print("DataError", exc)
    """)
    assert out.count("test_batch is 21,474,836,480 bytes, more than a CIFAR-10 batch file") == 2, out


def test_a_fifo_or_device_is_never_opened(tmp_path):
    """A FIFO where a batch or the archive should be: refused at once (opening it would wait for a writer)."""
    folder = write_layout(tmp_path / "a", "binary")
    (folder / "test_batch.bin").unlink()
    os.mkfifo(folder / "test_batch.bin")
    (tmp_path / "c").mkdir()
    os.mkfifo(tmp_path / "c" / D.BIN_ARCHIVE)
    (tmp_path / "d" / D.BIN_DIR).mkdir(parents=True)
    os.symlink("/dev/zero", tmp_path / "d" / D.BIN_DIR / "data_batch_1.bin")
    out = run_capped(f"""
        from explorer import data as D
        for where in ("a", "c", "d"):
            try:
                D.load_cifar10({str(tmp_path)!r} + "/" + where, allow_download=False)
            except D.DataError as exc:
                print("DataError", exc)
    """)
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert "test_batch.bin is missing" in lines[0]
    assert f"{D.BIN_ARCHIVE} is not a regular file" in lines[1]
    assert "data_batch_1.bin is missing" in lines[2]  # a link to /dev/zero


def test_an_archive_of_many_entries_is_not_listed_whole(tmp_path):
    archive = tmp_path / D.BIN_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(D.MAX_ARCHIVE_MEMBERS + 1):
            tar.addfile(tarfile.TarInfo(f"junk/{i}"), io.BytesIO(b""))
    with pytest.raises(DataError, match=f"more than {D.MAX_ARCHIVE_MEMBERS} entries"):
        D.load_cifar10(tmp_path, allow_download=False)


# --------------------------------------------------------------------------- tf.data
def test_split_indices_are_stratified_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    train, val = D.split_indices(labels, subset=200, val_split=0.25, seed=1)
    assert len(train) == 150 and len(val) == 50
    assert not set(train) & set(val)
    assert np.bincount(labels[np.concatenate([train, val])], minlength=10).tolist() == [20] * 10


def test_pipeline_shapes_and_normalisation(tmp_path):
    write_layout(tmp_path, "binary")
    data = D.load_cifar10(tmp_path, allow_download=False)
    pipes = D.make_datasets(data, batch_size=32, subset=400, val_split=0.2, flip=True, crop=2)
    assert (pipes.n_train, pipes.n_val, pipes.n_test) == (320, 80, 120)
    assert pipes.steps_per_epoch == 10
    x, y = next(iter(pipes.train))
    assert tuple(x.shape) == (32, 32, 32, 3) and x.dtype.name == "float32"
    assert tuple(y.shape) == (32, 10) and np.allclose(y.numpy().sum(axis=1), 1)
    assert sum(1 for _ in pipes.train) == 10  # drop_remainder: static batch shapes
    xv, _ = next(iter(pipes.val))
    assert tuple(xv.shape) == (80, 32, 32, 3)
    xt, yt = next(iter(pipes.test))
    assert xt.shape[0] == 120 and np.array_equal(yt.numpy().argmax(1), data.y_test)
    # test images are normalised but not augmented
    expected = (data.x_test[0] / 255.0 - np.array(D.MEAN)) / np.array(D.STD)
    assert np.allclose(xt.numpy()[0], expected, atol=1e-4)


def test_augmentation_flips_and_translates():
    import tensorflow as tf

    x = tf.constant(np.arange(4 * 8 * 8 * 1, dtype=np.float32).reshape(4, 8, 8, 1))
    tf.random.set_seed(0)
    flipped = D.augment_batch(x, flip=True, crop=0).numpy()
    for i in range(4):
        assert np.array_equal(flipped[i], x.numpy()[i]) or np.array_equal(flipped[i], x.numpy()[i, :, ::-1])
    shifted = D.augment_batch(x, flip=False, crop=2).numpy()
    assert shifted.shape == (4, 8, 8, 1)
    assert np.isin(shifted, x.numpy()).all()  # only pixels of the images (reflect padding)


def test_a_seed_repeats_the_training_batches_flips_included(tmp_path):
    write_layout(tmp_path, "binary")
    data = D.load_cifar10(tmp_path, allow_download=False)

    def first_batches(seed: int, n: int = 3) -> list:
        pipes = D.make_datasets(data, batch_size=50, val_split=0.0, flip=True, crop=2, seed=seed)
        return [x.numpy() for x, _ in pipes.train.take(n)]

    a, b, other = first_batches(0), first_batches(0), first_batches(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], other[0])
    noflip = D.make_datasets(data, batch_size=50, val_split=0.0, flip=False, crop=0, seed=0)
    assert not np.array_equal(next(iter(noflip.train))[0].numpy(), a[0])  # (the same images, some moved or mirrored)


def test_subset_smaller_than_a_batch_is_a_data_error(tmp_path):
    write_layout(tmp_path, "binary")
    data = D.load_cifar10(tmp_path, allow_download=False)
    with pytest.raises(DataError, match="fewer than one batch"):
        D.make_datasets(data, batch_size=256, subset=100)


def test_sample_batch_reads_only_test_images(tmp_path):
    assert D.sample_batch(8) is None  # nothing at hand: no download
    write_layout(tmp_path, "binary-archive")
    images, labels, source = D.sample_batch(8, data_dir=tmp_path, seed=3)
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    assert labels.shape == (8,) and "binary archive" in source
    assert D.sample_batch(8, data_dir=tmp_path / "missing") is None
