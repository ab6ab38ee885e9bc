"""Resource guards: the training-memory estimate and check, the per-training time limit, and the per-rerun time limit."""

from __future__ import annotations

import threading
import time

import pytest

from explorer import guards
from explorer import training as T
from explorer.annotate import build
from explorer.config import ConfigError
from explorer.presets import PRESETS
from tests.helpers import TINY

MIB = 2**20


# ----------------------------------------------------------------------------------------- memory
def test_estimate_scales_with_batch_depth_and_data():
    r20, r56 = build(PRESETS["resnet20"].config), build(PRESETS["resnet56"].config)
    small = guards.estimate_training_bytes(r20, batch_size=128, images=50_000)
    assert guards.estimate_training_bytes(r20, batch_size=512, images=50_000) > small
    assert guards.estimate_training_bytes(r56, batch_size=128, images=50_000) > small
    assert guards.estimate_training_bytes(r20, batch_size=128, images=50_000, flip=False) == small - 50_000 * 3072
    # the activation term: 1.2 × batch × the bytes of all activations of one image
    b128 = guards.estimate_training_bytes(r20, batch_size=128, images=0)
    b256 = guards.estimate_training_bytes(r20, batch_size=256, images=0)
    assert b256 - b128 == pytest.approx(guards.ACTIVATION_FACTOR * 128 * r20.activation_bytes, abs=1)


def test_estimate_is_above_measured_peaks():
    """Peaks measured on this machine (benchmarks/bench_memory.py --calibrate): the estimate must not be below them."""
    measured_mib = {("resnet20", 128): 513, ("resnet20", 512): 1567, ("resnet56", 128): 1286, ("resnet110", 256): 4337}
    for (preset, batch), peak in measured_mib.items():
        est = guards.estimate_training_bytes(build(PRESETS[preset].config), batch_size=batch, images=4000) / MIB
        assert peak <= est <= 1.5 * peak, (preset, batch, est, peak)


def test_check_refuses_when_the_machine_has_too_little_free_and_names_a_batch_that_fits():
    ag = build(PRESETS["resnet110"].config)
    need = guards.check_training_memory(ag, batch_size=64, images=1000, free=64 * 2**30)
    assert need > 0
    with pytest.raises(ConfigError) as err:
        guards.check_training_memory(ag, batch_size=512, images=1000, free=3 * 2**30)
    assert err.value.field == "batch_size"
    assert "free" in err.value.message and "GiB" in err.value.message
    assert "batch size of" in err.value.hint
    fit = int(err.value.hint.split("batch size of ")[1].split()[0])
    assert guards.estimate_training_bytes(ag, batch_size=fit, images=1000) <= guards.FREE_FRACTION * 3 * 2**30


def test_teacher_memory_cap(monkeypatch):
    ag = build(PRESETS["resnet20"].config)
    monkeypatch.setenv(guards.MAX_TRAIN_MEMORY_ENV, "300")
    with pytest.raises(ConfigError) as err:
        guards.check_training_memory(ag, batch_size=128, images=50_000, free=64 * 2**30)
    assert guards.MAX_TRAIN_MEMORY_ENV in err.value.message
    monkeypatch.setenv(guards.MAX_TRAIN_MEMORY_ENV, "not a number")  # ignored, not a crash
    assert guards.check_training_memory(ag, batch_size=128, images=50_000, free=64 * 2**30) > 0


def test_available_bytes_is_plausible():
    free = guards.available_bytes()
    assert free is None or 0 < free < 2**50


def test_job_refused_for_memory_fails_with_the_reason(data, monkeypatch):
    monkeypatch.setenv(guards.MAX_TRAIN_MEMORY_ENV, "1")
    job = T.TrainJob(TINY, data, T.TrainSettings(epochs=1, batch_size=50), slots=threading.Semaphore(1)).start()
    assert job.join(60)
    snap = job.poll()
    assert snap.status == "failed"
    assert "memory" in snap.error and guards.MAX_TRAIN_MEMORY_ENV in snap.error
    assert snap.steps == 0


# ----------------------------------------------------------------------------------------- training length
def test_time_budget_above_the_limit_is_refused(data):
    with pytest.raises(ConfigError) as err:
        T.TrainJob(TINY, data, T.TrainSettings(seconds=120), max_seconds=60)
    assert err.value.field == "seconds" and guards.MAX_TRAIN_SECONDS_ENV in err.value.hint
    T.TrainJob(TINY, data, T.TrainSettings(seconds=60), max_seconds=60)  # at the limit: fine


def test_epoch_budget_ends_at_the_limit_and_is_evaluated(data):
    settings = T.TrainSettings(epochs=500, batch_size=50, val_split=0.0)
    job = T.TrainJob(TINY, data, settings, slots=threading.Semaphore(1), max_seconds=3).start()
    assert job.join(120)
    snap = job.poll()
    assert snap.status == "done", snap.error
    assert job.capped and job.result()["ended_at_server_limit"]
    assert snap.epoch < 500
    assert snap.evaluation is not None and snap.evaluation.test_images == data.n_test
    assert job.result()["memory_estimate_bytes"] > 0


def test_limit_from_environment(monkeypatch):
    monkeypatch.delenv(guards.MAX_TRAIN_SECONDS_ENV, raising=False)
    assert guards.max_train_seconds() == guards.DEFAULT_APP_TRAIN_SECONDS
    assert guards.max_train_seconds(default=None) is None
    monkeypatch.setenv(guards.MAX_TRAIN_SECONDS_ENV, "120")
    assert guards.max_train_seconds() == 120
    monkeypatch.setenv(guards.MAX_TRAIN_SECONDS_ENV, "-5")
    assert guards.max_train_seconds() == guards.DEFAULT_APP_TRAIN_SECONDS


# ----------------------------------------------------------------------------------------- per rerun
def test_within_returns_fast_results_and_abandons_slow_ones():
    assert guards.within(5, lambda a, b=0: a + b, 2, b=3) == 5
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(guards.TooSlow, match="longer than 0.2 s"):
        guards.within(0.2, release.wait, 10)
    assert time.monotonic() - started < 5
    release.set()


def test_within_refuses_a_third_slow_computation():
    release = threading.Event()
    for _ in range(2):
        with pytest.raises(guards.TooSlow):
            guards.within(0.05, release.wait, 10)
    with pytest.raises(guards.TooSlow, match="still running"):
        guards.within(5, lambda: 1)
    release.set()
    deadline = time.monotonic() + 5
    while True:  # the two workers end and give their places back
        try:
            assert guards.within(5, lambda: 1) == 1
            break
        except guards.TooSlow:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_within_passes_exceptions_through():
    def boom():
        raise ConfigError("depth", "too deep", "pick less")

    with pytest.raises(ConfigError, match="too deep"):
        guards.within(5, boom)
