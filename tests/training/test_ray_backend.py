"""The Ray backend (`TrainJob(worker="ray")`) against a real local Ray: the same history, evaluation and model as a
process; Stop; a killed worker and a lost head end the job as failed and the next training works; a missing Ray or an
unreachable head is one line; the sweep CLI trains its networks on the cluster.

The cluster is a local Ray started in a subprocess (`ray.init(num_cpus=2)`, its GCS on this machine's loopback side),
which this process joins by its address, as the app joins a cluster's head. When Ray is not installed the tests
skip (with CI=true they fail).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from explorer import inference
from explorer import training as T
from explorer.training import ray_backend as RB
from tests.helpers import TINY, long_settings, small_cifar, training, wait_for, write_layout

ROOT = Path(__file__).resolve().parents[2]

try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("Ray is not installed (pip install -r requirements-cluster.txt); the Ray backend tests need it",
                allow_module_level=True)

HEAD = """
import sys, ray
ctx = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sys.argv[1], log_to_driver=False)
print(ctx.address_info["gcs_address"], flush=True)
sys.stdin.read()
ray.shutdown()
"""


class Head:
    """A local Ray cluster in a subprocess of its own session (so it and what it starts can be ended together)."""

    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # (short: Ray's socket paths must fit 107 bytes)
        started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-c", HEAD, self.temp], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        self.address = self.proc.stdout.readline().strip()
        assert self.address, "the local Ray head did not start"
        self.start_seconds = time.monotonic() - started
        print(f"Ray head at {self.address} started in {self.start_seconds:.1f} s")

    def kill(self) -> None:
        """End the head at once (as a lost machine would), with every Ray process it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # (it shuts Ray down)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        subprocess.run(["rm", "-rf", self.temp], check=False)


@pytest.fixture(scope="module")
def head():
    os.environ["RAY_AUTH_MODE"] = "disabled"  # (a loopback test cluster: no token to share)
    cluster = Head()
    yield cluster
    RB._forget(RB._import_ray())
    cluster.close()


@pytest.fixture()
def on_ray(head, monkeypatch):
    monkeypatch.setenv(RB.ADDRESS_ENV, head.address)
    monkeypatch.setenv(RB.CPUS_ENV, "1")
    return head


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_cifar(tmp_path_factory.mktemp("cifar"))  # 1,000 training and 200 test images


def ray_job(data, settings, **kw) -> T.TrainJob:
    return T.TrainJob(TINY, data, settings, worker="ray", **kw).start()


def test_a_ray_job_trains_evaluates_and_hands_back_its_model(on_ray, data):
    settings = T.TrainSettings(epochs=2, batch_size=50, val_split=0.2)
    started = time.monotonic()
    job = ray_job(data, settings)
    assert job.join(180)
    snap = job.poll()
    assert snap.status == "done", (snap.error, job.traceback)
    print(f"a tiny Ray training took {time.monotonic() - started:.1f} s end to end (connection included)")
    assert job.worker_pid not in (None, os.getpid())
    assert snap.steps == 32 and [e["epoch"] for e in snap.epochs] == [1, 2]  # 800 training images / 50, twice
    assert all(e["val_accuracy"] is not None for e in snap.epochs)
    assert [b["step"] for b in snap.batches] == sorted({b["step"] for b in snap.batches})  # each record once
    assert snap.batches[-1]["step"] == 32
    assert snap.evaluation is not None and snap.evaluation.test_images == 200
    result = job.result()
    assert result["worker"] == "ray" and result["train_images_per_second"] > 0
    raw = job.model_bytes()  # the .keras bytes made on the Ray worker, through the object store
    assert inference.read_meta(raw).class_names == tuple(data.classes)
    probs = inference.probabilities(job.model, data.x_test)
    assert (probs.argmax(1) == snap.evaluation.predictions).mean() > 0.9


def test_a_ray_job_shows_live_progress_and_stops_within_seconds(on_ray, data):
    job = ray_job(data, long_settings())
    wait_for(lambda: training(job), 120)
    seen = [job.poll().steps]
    time.sleep(1.5)
    seen.append(job.poll().steps)
    assert seen[1] > seen[0], "the steps did not advance between two polls"
    # throughput and time left, as the page shows them: they come with the first records after the
    # tracing step, which on a loaded machine can be later than the second poll above
    wait_for(lambda: job.poll().images_per_second is not None and job.poll().eta is not None, 30)
    snap = job.poll()
    assert snap.images_per_second > 0 and snap.eta > 0
    asked = time.monotonic()
    job.stop()
    assert job.join(15), "the job did not end within 15 s of Stop"
    took = time.monotonic() - asked
    print(f"Stop ended the Ray job in {took:.2f} s")
    assert job.status == "stopped" and job.poll().error == "stopped by the user"


def test_a_ray_job_nobody_watches_stops_itself(on_ray, data):
    job = ray_job(data, long_settings(), idle_timeout=1.0)
    assert job.join(120)
    assert job.status == "stopped" and "nobody watched it" in job.poll().error


def test_a_killed_ray_worker_fails_the_job_and_the_next_training_works(on_ray, data):
    job = ray_job(data, long_settings())
    wait_for(lambda: training(job), 120)
    os.kill(job.worker_pid, signal.SIGKILL)  # (the cluster runs on this machine: its worker is a local process)
    assert job.join(30)
    assert job.status == "failed" and job.error.startswith("the training worker stopped ("), job.error
    assert "Traceback" not in job.error and not job.has_model
    again = T.start_job(job, TINY, data, T.TrainSettings(epochs=1, batch_size=50, evaluate=False), worker="ray")
    assert again.join(120) and again.status == "done", again.error


def test_a_ray_job_waits_for_room_and_says_how_many_are_ahead(on_ray, data, monkeypatch):
    monkeypatch.setenv(RB.CPUS_ENV, "2")  # the cluster has 2 CPUs: one training at a time
    first = ray_job(data, long_settings())
    wait_for(lambda: training(first), 120)
    second = ray_job(data, long_settings())
    third = ray_job(data, long_settings())
    wait_for(lambda: third.poll().queue_ahead == 1, 30)
    assert second.poll().status == "waiting" and "waiting for a slot" in second.poll().phase
    assert second.poll().queue_ahead == 0
    for job in (third, second, first):
        job.stop()
    assert all(job.join(30) for job in (first, second, third))
    assert {job.status for job in (first, second, third)} == {"stopped"}


def test_ray_missing_or_unreachable_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RB.RayUnavailable, match="pip install -r requirements-cluster.txt"):
        RB.connect("127.0.0.1:1")
    monkeypatch.undo()
    with pytest.raises(RB.RayUnavailable, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1 \(connection refused\)"):
        RB._reachable("127.0.0.1:1")
    with pytest.raises(RB.RayUnavailable, match="cannot reach the Ray cluster at ray://127.0.0.1:1 "):
        RB._reachable("ray://127.0.0.1:1")


def test_the_sweep_trains_its_networks_on_the_cluster(on_ray, tmp_path):
    write_layout(tmp_path, "binary", n_per_class=10)
    out = subprocess.run([sys.executable, "-m", "explorer", "sweep", "--preset", "resnet20", "--filters", "4",
                          "--depths", "8,14", "--data-dir", str(tmp_path), "--epochs", "1", "--batch-size", "50",
                          "--backend", "ray", "--ray-address", on_ray.address, "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled", RB.CPUS_ENV: "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "ray"
    assert [(r["network"], r["status"]) for r in result["results"]] == [("depth-8", "done"), ("depth-14", "done")]
    assert result["results"][0]["params"] < result["results"][1]["params"]
    assert all(0 <= r["test_accuracy"] <= 1 and r["images_per_second"] > 0 for r in result["results"])


def test_a_lost_head_fails_the_running_job_and_the_process_goes_on(head, data, monkeypatch):
    """Runs last: it kills the module's cluster."""
    monkeypatch.setenv(RB.ADDRESS_ENV, head.address)
    job = ray_job(data, long_settings())
    wait_for(lambda: training(job), 120)
    lost = time.monotonic()
    head.kill()
    assert job.join(90), "the job did not end within 90 s of losing the head"
    took = time.monotonic() - lost
    print(f"the job ended {took:.1f} s after the head was lost")
    assert job.status == "failed" and job.error.startswith("the training worker stopped ("), job.error
    # Ray ends a driver that cannot reach its head for 60 s; this process has let the cluster go, so it goes on
    threading.Event().wait(max(0.0, 65 - took))
    again = T.TrainJob(TINY, data, long_settings(), worker="ray").start()
    assert again.join(60)
    assert again.status == "failed" and "cannot reach the Ray cluster" in again.error, again.error
