"""A training on a Ray cluster: connect, run the one worker body in a Ray actor, relay its reports into the job, stop it.

With `EXPLORER_TRAIN_BACKEND=ray` (worker "ray") the server's `TrainJob` runs `train_on_ray` in its thread. Each
training is one Ray actor that asks for the resources it needs (`EXPLORER_RAY_CPUS` CPUs, one GPU when the cluster
has GPUs); Ray starts it when a node has room and queues it otherwise. The actor runs exactly the body a spawned
training process runs (`explorer.training.process.worker_main`) and keeps its reports — the same `JobState` — until
the job fetches them every SYNC_INTERVAL; the model comes back as `.keras` bytes in the last report.

`EXPLORER_RAY_ADDRESS` says which cluster: unset, a local Ray this process starts; `auto`, the one started on this
machine with `ray start`; `host:6379` (the head's GCS port) or `ray://host:10001` (Ray Client).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from explorer.training.job import TrainJob
from explorer.training.process import SYNC_INTERVAL, WorkerFailed, job_spec, worker_main

BACKEND_ENV = "EXPLORER_TRAIN_BACKEND"
ADDRESS_ENV = "EXPLORER_RAY_ADDRESS"
CPUS_ENV = "EXPLORER_RAY_CPUS"
BACKENDS = ("process", "ray")
DEFAULT_CPUS = 2
INSTALL_HINT = "pip install -r requirements-cluster.txt (or train with the process backend)"
CONNECT_TIMEOUT = 5.0  # seconds to reach the head before saying it cannot be reached
LOST_AFTER = 20.0  # seconds a running training's actor may stay unreachable before the job fails
RAY_STOP_GRACE = 3.0  # seconds a Ray training has after Stop to end its batch and report, before its actor is killed


class RayUnavailable(WorkerFailed):
    """Ray is not installed, or its cluster cannot be reached (the message is the one line to show)."""


def backend() -> str:
    """The training backend the server uses (`EXPLORER_TRAIN_BACKEND`): "process" (default) or "ray"."""
    raw = os.environ.get(BACKEND_ENV, "").strip().lower()
    return raw if raw in BACKENDS else "process"


def address() -> str | None:
    """The Ray cluster to use (`EXPLORER_RAY_ADDRESS`; None: a local Ray started by this process)."""
    return os.environ.get(ADDRESS_ENV, "").strip() or None


def cpus_per_training() -> int:
    """The CPUs one training asks Ray for (`EXPLORER_RAY_CPUS`, default 2)."""
    try:
        return max(1, int(os.environ.get(CPUS_ENV, "")))
    except ValueError:
        return DEFAULT_CPUS


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"the Ray backend needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


# --------------------------------------------------------------------------- the connection (one per process)
_CONNECT_LOCK = threading.Lock()
_connected: str | None = None  # the address this process is connected to ("local" for its own Ray)


def _host_port(addr: str) -> tuple[str, int] | None:
    """The (host, port) to try before connecting, or None when the address names no port (e.g. "auto")."""
    rest = addr.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _reachable(addr: str) -> None:
    """Raise RayUnavailable at once when nothing answers at the address (Ray itself would retry for a minute)."""
    target = _host_port(addr)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayUnavailable(f"cannot reach the Ray cluster at {addr} ({reason.lower()}): start its head "
                             f"(`ray start --head`) or correct {ADDRESS_ENV}") from None


def connect(addr: str | None = None) -> Any:
    """Connect this process to the Ray cluster at `addr` (default `address()`) once; returns the `ray` module.

    Raises:
        RayUnavailable: Ray is not installed, or the cluster cannot be reached (one line saying what to do).
    """
    global _connected
    ray = _import_ray()
    addr = addr if addr is not None else address()
    wanted = addr or "local"
    with _CONNECT_LOCK:
        if ray.is_initialized():
            if _connected not in (None, wanted):
                raise RayUnavailable(f"this server is already connected to the Ray cluster at {_connected}, not "
                                     f"{wanted}: restart it to change {ADDRESS_ENV}")
            return ray
        if addr:
            _reachable(addr)
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if not addr:  # a local Ray of this machine's cores, without its dashboard
            kwargs.update(include_dashboard=False, num_cpus=os.cpu_count() or 1)
        try:
            _init_in_keeper(ray, addr, kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            where = f"at {addr}" if addr else "on this machine"
            raise RayUnavailable(f"cannot connect to the Ray cluster {where} ({first}): check that its head runs "
                                 f"and {ADDRESS_ENV}") from None
        _connected = wanted
        return ray


def _init_in_keeper(ray: Any, addr: str | None, kwargs: dict) -> None:
    """`ray.init` in a thread that lives as long as this process: the Ray processes a local start spawns are killed
    when the thread that started them ends (a page run's or a job's thread would end soon)."""
    outcome: dict[str, BaseException] = {}
    done = threading.Event()

    def keep() -> None:
        try:
            ray.init(address=addr, **kwargs)
        except BaseException as exc:  # (re-raised in the caller's thread)
            outcome["error"] = exc
            done.set()
            return
        done.set()
        threading.Event().wait()

    threading.Thread(target=keep, name="ray-connection", daemon=True).start()
    done.wait()
    if "error" in outcome:
        raise outcome["error"]


def cluster_has_gpus(ray: Any) -> bool:
    """Whether the cluster has GPUs (then each training asks for one)."""
    with contextlib.suppress(Exception):
        return ray.cluster_resources().get("GPU", 0) >= 1
    return False


# --------------------------------------------------------------------------- the actor (one per training)
class _Reports:
    """What the worker body writes to (a queue's `put`/`close`/`join_thread`): kept until the job fetches them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple] = []

    def put(self, item: tuple) -> None:
        with self._lock:
            self._items.append(item)

    def take(self) -> list[tuple]:
        with self._lock:
            items, self._items = self._items, []
            return items

    def close(self) -> None:
        pass

    def join_thread(self) -> None:
        pass


class TrainingActor:
    """One training on a Ray node: `run` runs the worker body (in one of the actor's threads) while `take` hands
    out its reports and `stop` asks it to end."""

    def __init__(self, cpus: int) -> None:
        # TensorFlow sizes its thread pools when it is imported: to the CPUs Ray gave this training
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cpus))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
        self._reports = _Reports()
        self._stop = threading.Event()

    def ready(self) -> dict:
        """Where it runs (it is started: Ray found room for it)."""
        return {"pid": os.getpid(), "node": socket.gethostname()}

    def run(self, spec: tuple, data: Any) -> None:
        """Train (the process backend's worker body) on `data` (the spec's second item, sent apart so that Ray hands
        it over from its object store), reporting into `take`; returns when the last report is in."""
        worker_main((spec[0], data, *spec[2:]), self._reports, self._stop)

    def take(self) -> list[tuple]:
        """The reports since the last call: ("state" | "end", JobState, model bytes or None)."""
        return self._reports.take()

    def stop(self) -> None:
        """Ask the training to end (it ends the batch, evaluates as it stands unless told not to, and reports)."""
        self._stop.set()


_REMOTE: Any = None
_PENDING: list[int] = []  # jobs of this server waiting for Ray to start their actor, in order
_PENDING_LOCK = threading.Lock()
_DATA_REFS: dict[int, tuple[Any, Any]] = {}  # id(data) -> (data, its object ref): a data set goes to the store once


def _actor_class(ray: Any) -> Any:
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(max_concurrency=4, max_restarts=0)(TrainingActor)
    return _REMOTE


def _data_ref(ray: Any, data: Any) -> Any:
    """The data set in Ray's object store (put once per data set this server holds)."""
    with _PENDING_LOCK:
        held = _DATA_REFS.get(id(data))
        if held is None or held[0] is not data:
            if len(_DATA_REFS) >= 4:
                _DATA_REFS.pop(next(iter(_DATA_REFS)))
            held = _DATA_REFS[id(data)] = (data, ray.put(data))
        return held[1]


def _ahead(ticket: int) -> int:
    with _PENDING_LOCK:
        return _PENDING.index(ticket) if ticket in _PENDING else 0


def _died(exc: BaseException) -> str:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return f"the training worker stopped ({reason}); press Train to try again"


def _head_alive(ray: Any) -> bool:
    """Whether the cluster's head still answers (a TCP connection to its GCS or Ray Client port)."""
    addr = _connected if _connected not in (None, "local", "auto") else None
    if addr is None:
        with contextlib.suppress(Exception):
            addr = ray.get_runtime_context().gcs_address
    target = _host_port(addr) if addr else None
    if target is None:
        return True
    try:
        with socket.create_connection(target, timeout=2.0):
            return True
    except OSError:
        return False


def _forget(ray: Any) -> None:
    """Drop this process's connection to a cluster whose head is gone, so that the next training connects anew."""
    global _connected
    with _CONNECT_LOCK:
        _DATA_REFS.clear()
        with contextlib.suppress(Exception):
            ray.shutdown()
        _connected = None


class _Watch:
    """Notices a lost head: at most every few seconds it checks, and says lost after LOST_AFTER s without it."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.checked = self.seen = time.monotonic()

    def lost(self) -> bool:
        now = time.monotonic()
        if now - self.checked >= 3.0:
            self.checked = now
            if _head_alive(self.ray):
                self.seen = now
        return now - self.seen > LOST_AFTER


HEAD_LOST = "lost the Ray cluster's head"


def train_on_ray(job: TrainJob) -> None:
    """Run `job`'s training as a Ray actor and mirror its state into `job` until it ends.

    Raises:
        RayUnavailable: Ray is missing or its cluster cannot be reached.
        WorkerFailed: The training failed there (its one-line message), or its worker stopped.
    """
    ray = connect()
    from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

    cpus = cpus_per_training()
    gpus = 1 if cluster_has_gpus(ray) else 0
    job.update(phase="waiting for a slot on the Ray cluster", status="waiting", device="GPU" if gpus else "CPU")
    ticket = id(job)
    with _PENDING_LOCK:
        _PENDING.append(ticket)
    watch = _Watch(ray)
    actor = _actor_class(ray).options(num_cpus=cpus, num_gpus=gpus).remote(cpus)
    try:
        try:
            ready = actor.ready.remote()
            while not ray.wait([ready], timeout=SYNC_INTERVAL)[0]:
                job.update(queue_ahead=_ahead(ticket))
                if job.should_stop():
                    return
                if watch.lost():
                    _forget(ray)
                    raise WorkerFailed(_died(ConnectionError(HEAD_LOST)))
            where = ray.get(ready)
        except RayActorError as exc:
            raise WorkerFailed(_died(exc)) from None
        finally:
            with _PENDING_LOCK:
                _PENDING.remove(ticket)
            job.update(queue_ahead=0)
        job.update(status="stopping" if job.should_stop() else "running", phase="starting the training on the cluster",
                   worker_pid=where["pid"])
        spec = job_spec(job, None)  # (the data goes apart, through the object store)
        running = actor.run.remote(spec, _data_ref(ray, job.data))
        _relay(ray, job, actor, running, watch, (RayActorError, ActorUnavailableError, GetTimeoutError))
    except WorkerFailed:
        if _connected is not None and not _head_alive(ray):
            _forget(ray)  # (Ray would end this whole process a minute after its head is gone)
        raise
    finally:
        if _connected is not None:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)  # (it has sent its last report, or it is stopped anyway)


def _relay(ray: Any, job: TrainJob, actor: Any, running: Any, watch: _Watch, lost: tuple) -> None:
    """Take the actor's reports into `job` until the last one; stop it when the job should stop."""
    from ray.exceptions import ActorDiedError

    stop_asked = None
    while True:
        if job.should_stop():
            if stop_asked is None:
                stop_asked = time.monotonic()
                actor.stop.remote()
            elif time.monotonic() - stop_asked > RAY_STOP_GRACE:
                return  # (it did not end by itself: it is killed, with what it has reported)
        ended = bool(ray.wait([running], timeout=0)[0])
        try:
            reports = ray.get(actor.take.remote(), timeout=5.0)
        except lost as exc:
            if ended or isinstance(exc, ActorDiedError):
                _raise_ended(ray, running, exc)
            if watch.lost():
                _forget(ray)
                raise WorkerFailed(_died(ConnectionError(HEAD_LOST))) from None
            time.sleep(SYNC_INTERVAL)
            continue
        watch.seen = time.monotonic()
        for kind, report, model_bytes in reports:
            job.take_report(report, model_bytes=model_bytes)
            if kind == "end":
                if report.status == "failed":
                    raise WorkerFailed(report.error or "the training failed")
                return
        if ended:
            _raise_ended(ray, running, None)
        ray.wait([running], timeout=SYNC_INTERVAL)


def _raise_ended(ray: Any, running: Any, exc: BaseException | None) -> None:
    """The actor's run ended without a last report: say how its worker stopped."""
    try:
        ray.get(running, timeout=2.0)
    except Exception as err:  # (ActorDiedError: killed; others: lost)
        raise WorkerFailed(_died(err)) from None
    raise WorkerFailed(_died(exc or RuntimeError("it ended without a result")))
