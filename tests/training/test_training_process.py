"""The process worker (`TrainJob(worker="process")`, what the app uses): the same history, evaluation and model as a
thread; stop, idle stop, a failure inside the process and a killed process end the job with a clear status; the Train
tab trains in a process when the server is set to; image folders travel to the process with their classes."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from explorer import guards, inference
from explorer import training as T
from tests.helpers import TINY, long_settings, small_cifar, training, wait_for, write_layout


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_cifar(tmp_path_factory.mktemp("cifar"))  # 1,000 training and 200 test images


def process_job(data, settings, **kw) -> T.TrainJob:
    return T.TrainJob(TINY, data, settings, slots=threading.Semaphore(1), worker="process", **kw).start()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:  # a zombie not yet reaped counts as gone
        return fh.read().split(") ")[1].startswith("Z")


def test_a_process_job_trains_evaluates_and_hands_back_its_model(data):
    settings = T.TrainSettings(epochs=2, batch_size=50, val_split=0.2)
    job = process_job(data, settings)
    assert job.join(180)
    snap = job.poll()
    assert snap.status == "done", (snap.error, job.traceback)
    assert job.worker_pid not in (None, os.getpid())
    assert snap.steps == 32 and [e["epoch"] for e in snap.epochs] == [1, 2]  # 800 training images / 50, twice
    assert all(e["val_accuracy"] is not None for e in snap.epochs)
    assert [b["step"] for b in snap.batches] == sorted({b["step"] for b in snap.batches})  # each record once
    assert snap.batches[-1]["step"] == 32
    assert snap.evaluation is not None and snap.evaluation.test_images == 200
    result = job.result()
    assert result["worker"] == "process" and result["worker_peak_memory_bytes"] > 100 * 2**20
    assert result["stem_whitening"] is not None  # what the process did is reported here
    # the model: bytes made in the process; `model` loads them and predicts what the evaluation saw
    raw = job.model_bytes()
    assert inference.read_meta(raw).class_names == tuple(data.classes)
    assert job.has_model and job.model is not None
    probs = inference.probabilities(job.model, data.x_test)
    agree = (probs.argmax(1) == snap.evaluation.predictions).mean()
    assert agree > 0.9  # (the evaluation averaged flips: a few borderline images may differ)
    wait_for(lambda: gone(job.worker_pid), 60)


def test_stop_ends_a_process_job_and_its_process(data):
    job = process_job(data, long_settings())
    wait_for(lambda: training(job), 120)
    asked = time.monotonic()
    job.stop()
    assert job.join(15), "the job did not end within 15 s of Stop"
    took = time.monotonic() - asked
    assert job.status == "stopped" and job.poll().error == "stopped by the user"
    assert job.poll().steps > 0 and not job.active
    wait_for(lambda: gone(job.worker_pid), 60)
    print(f"stop took {took:.2f} s")


def test_a_process_job_nobody_watches_stops_itself(data):
    job = process_job(data, long_settings(), idle_timeout=1.0)
    assert job.join(120)
    assert job.status == "stopped" and "nobody watched it" in job.poll().error
    wait_for(lambda: gone(job.worker_pid), 60)


def test_a_killed_training_process_fails_the_job_with_a_reason(data):
    job = process_job(data, long_settings())
    wait_for(lambda: training(job), 120)
    os.kill(job.worker_pid, signal.SIGKILL)
    assert job.join(15)
    assert job.status == "failed"
    assert "killed by SIGKILL" in job.error and "out of memory" in job.error
    assert not job.has_model


def test_a_failure_inside_the_process_is_the_jobs_one_line_error(tmp_path):
    from tests.helpers import RUN, finetune

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(np.arange(10, dtype=np.uint8), 4)
    from explorer.data import Cifar10

    small = Cifar10(x, y, x[:10], y[:10], "random images", "binary")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an HDF5 file")
    job = T.TrainJob(finetune(4), small, T.TrainSettings(weights=str(bad), **RUN), slots=threading.Semaphore(1),
                     check_memory=False, worker="process").start()
    assert job.join(180)
    assert job.status == "failed" and "bad.h5 does not fit ResNet50V2" in job.error, job.error
    assert "Traceback" not in job.error


def test_the_memory_estimate_of_a_process_counts_the_process(data):
    thread = T.TrainJob(TINY, data, long_settings(), check_memory=False)
    thread._check_memory()
    proc = T.TrainJob(TINY, data, long_settings(), check_memory=False, worker="process")
    proc._check_memory()
    data_bytes = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test))
    assert proc.memory_estimate - thread.memory_estimate == guards.PROCESS_BYTES + data_bytes
    with pytest.raises(ValueError, match="worker must be one of"):
        T.TrainJob(TINY, data, long_settings(), worker="fork")


def test_the_server_settings_choose_the_worker_and_its_priority(monkeypatch):
    monkeypatch.delenv(guards.TRAIN_WORKER_ENV, raising=False)
    assert guards.train_worker() == "process"
    monkeypatch.setenv(guards.TRAIN_WORKER_ENV, "thread")
    assert guards.train_worker() == "thread"
    monkeypatch.setenv(guards.TRAIN_WORKER_ENV, "gpu please")
    assert guards.train_worker() == "process"
    monkeypatch.delenv(guards.TRAIN_NICE_ENV, raising=False)
    assert guards.train_nice() == 19
    for raw, nice in (("5", 5), ("-3", 0), ("40", 19), ("low", 19)):
        monkeypatch.setenv(guards.TRAIN_NICE_ENV, raw)
        assert guards.train_nice() == nice


def test_the_train_tab_trains_in_a_process_when_the_server_says_so(tmp_path, monkeypatch):
    from tests.helpers import page, set_budget, train_until_done

    write_layout(tmp_path, "binary", n_per_class=20)
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    monkeypatch.setenv(guards.TRAIN_WORKER_ENV, "process")
    app = page().run()
    set_budget(app, epochs=1)
    job, seen_progress = train_until_done(app, timeout=180)
    assert job.worker == "process" and seen_progress
    assert job.status == "done", job.error
    assert job.worker_pid != os.getpid()
    assert {m.label for m in app.metric} >= {"Test accuracy"}
    assert "Trained model (.keras)" in [b.label for b in app.get("download_button")]
    # "Try it on your own images" offers this run's model (loaded here from the process's .keras bytes)
    assert app.radio(key="predict_source").value == "trained"
    assert job.model is not None and job.model.output_shape == (None, 10)
    assert app.button(key="train_start").disabled is False


def test_a_process_job_trains_on_image_folders_with_their_classes(tmp_path):
    from explorer.imagefolder import load_image_folders
    from tests.helpers import CLASSES, write_folders

    data = load_image_folders(write_folders(tmp_path / "train"), val_split=0.25, image_size=(16, 16))
    config = T.adapt_for_data(TINY, data)
    settings = T.TrainSettings(epochs=1, batch_size=9, val_split=0.0, flip=False)
    job = T.TrainJob(config, data, settings, slots=threading.Semaphore(1), worker="process").start()
    assert job.join(180)
    assert job.status == "done", (job.error, job.traceback)
    result = job.result()
    assert result["classes"] == list(CLASSES) and result["test_images"] == 9
    assert list(result["per_class_accuracy"]) == list(CLASSES)
    assert inference.read_meta(job.model_bytes()).class_names == tuple(CLASSES)


def test_the_training_process_does_not_run_the_app_page_first(data, tmp_path, monkeypatch):
    """Streamlit installs the page script as `__main__`; a spawned child would run the whole page before training."""
    import sys
    import types

    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'w').close()\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake)
    job = process_job(data, T.TrainSettings(epochs=1, batch_size=50, evaluate=False))
    assert job.join(180)
    assert job.status == "done", job.error
    assert not marker.exists()


def test_a_warm_worker_has_read_the_data_and_takes_the_next_job_then_another_warms_up(data, monkeypatch):
    from dataclasses import replace

    from explorer.training.process import WARM, data_key

    monkeypatch.setenv("EXPLORER_WARM_WORKERS", "1")
    assert data_key(data) is not None  # (CIFAR-10 read from disk: a worker can read it itself)
    WARM.prepare(data)
    try:
        warm = WARM.ready
        assert len(warm) == 1
        job = process_job(data, T.TrainSettings(steps=8, batch_size=50, val_split=0.0))
        assert job.join(180)
        snap, r = job.poll(), job.result()
        assert snap.status == "done", (snap.error, job.traceback)
        assert r["warm_worker"] and job.worker_pid == warm[0]
        assert r["test_images"] == 200 and r["train_images"] == 1000  # the worker's own reading of the same folder
        probs = inference.probabilities(job.model, data.x_test)
        assert (probs.argmax(1) == snap.evaluation.predictions).mean() > 0.9
        assert "worker" in r["timings"] and sum(r["timings"].values()) == pytest.approx(r["wall_seconds"], abs=0.01)
        wait_for(lambda: gone(warm[0]), 30)  # one job per process: its memory goes back
        wait_for(lambda: len(WARM.ready) == 1, 30)
        assert WARM.ready[0] != warm[0]  # the next one warms up for the next press
        subset = replace(data, x_train=data.x_train[:500], y_train=data.y_train[:500])  # (same folder, not the same data)
        assert WARM.take(subset) is None
        other = T.TrainJob(TINY, small_cifar_copy(data), T.TrainSettings(steps=2, batch_size=50, val_split=0.0,
                           evaluate=False), slots=threading.Semaphore(1), worker="process").start()
        assert other.join(180) and other.status == "done" and not other.result()["warm_worker"]  # other data: cold
    finally:
        WARM.close()
    assert WARM.ready == []


def small_cifar_copy(data):
    """The same images held in memory only (no folder a worker could read)."""
    from dataclasses import replace

    return replace(data, path=None)


def test_a_warm_worker_ends_with_its_server_even_in_the_middle_of_its_warm_up(tmp_path):
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from explorer.training.process import _Warm\n"
         "warm = _Warm(None)\n"
         "print(warm.process.pid, flush=True)\n"
         "time.sleep(1.0)\n"  # (the worker is importing TensorFlow now)
         "import os; os._exit(0)\n"],  # the server goes without a word (no atexit to end its children)
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    pid = int(server.stdout.readline())
    server.wait(60)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as fh:  # (a zombie waiting for init counts as gone)
                return fh.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_for(gone, timeout=3)  # (before: it imported TensorFlow and warmed up first, ~10 s, then noticed)
