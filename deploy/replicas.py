"""Start N replicas of the app on consecutive loopback ports, and optionally nginx in front of them.

Run: .venv/bin/python deploy/replicas.py --replicas 2 [--first-port 8601] [--proxy-port 8080]
                                         [--backend ray] [--ray-address auto] [--cifar-dir /srv/cifar10]

Each replica is `streamlit run explorer/app.py --server.address 127.0.0.1 --server.port P` with
`EXPLORER_TRAIN_BACKEND` (default `ray`: the trainings run on the cluster, not in the replicas),
`EXPLORER_RAY_ADDRESS` (default `auto`: the cluster started on this machine with `ray start --head`),
`CIFAR10_DIR` and `EXPLORER_SHARED=1` (the replicas listen on loopback, but students reach them through
the proxy, so the served-to-others rules apply). Without `--proxy-port` it prints the `server` lines for
`deploy/nginx/explorer.conf` and keeps the replicas running; with it, it also runs nginx in the foreground
with that file rewritten for these ports (a config in a temporary folder, no system service). Ctrl-C ends
everything it started. Other `EXPLORER_*` settings are passed on from the environment.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx" / "explorer.conf"
REPLICA_LINES = re.compile(r"(# explorer-replicas-begin[^\n]*\n)(.*?)(\s*# explorer-replicas-end)", re.S)
LISTEN = re.compile(r"listen \d+;(\s*# explorer-listen)")

MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log {access};
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/explorer.conf;
}}
"""


def replica_env(*, backend: str, ray_address: str | None, cifar_dir: str | None,
                base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one replica: the training backend, the cluster, CIFAR-10, served to others."""
    env = dict(os.environ if base is None else base)
    env.update(PYTHONPATH=str(ROOT), EXPLORER_TRAIN_BACKEND=backend, EXPLORER_SHARED="1")
    if ray_address:
        env["EXPLORER_RAY_ADDRESS"] = ray_address
    if cifar_dir:
        env["CIFAR10_DIR"] = cifar_dir
    return env


def replica_command(port: int, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """`streamlit run explorer/app.py` on 127.0.0.1:`port` (the proxy is the only way in)."""
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "explorer" / "app.py"), "--server.address", "127.0.0.1",
            "--server.port", str(port), "--server.headless", "true", *extra]


def site_conf(ports: list[int], listen: int) -> str:
    """deploy/nginx/explorer.conf with one `server` line per replica port and nginx listening on `listen`."""
    text = SITE.read_text()
    lines = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in ports)
    text, n = REPLICA_LINES.subn(lambda m: m.group(1) + lines.rstrip("\n"), text)
    text, k = LISTEN.subn(lambda m: f"listen {listen};{m.group(1)}", text)
    if n != 1 or k != 1:
        raise ValueError(f"{SITE} lost its explorer-replicas/explorer-listen markers")
    return text


def write_nginx_conf(prefix: Path, ports: list[int], listen: int, *, access_log: bool = False) -> Path:
    """A complete nginx configuration in `prefix` (pid, logs, temporary files there) for a foreground nginx."""
    prefix.mkdir(parents=True, exist_ok=True)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        (prefix / "tmp" / sub).chmod(0o777)  # (nginx's workers drop root for `nobody`)
    prefix.chmod(0o755)
    (prefix / "explorer.conf").write_text(site_conf(ports, listen))
    main = prefix / "nginx.conf"
    main.write_text(MAIN_CONF.format(prefix=prefix, access=f"{prefix}/access.log" if access_log else "off"))
    return main


def nginx_binary() -> str | None:
    """The nginx executable, or None when it is not installed."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)


def start_nginx(prefix: Path, ports: list[int], listen: int, *, access_log: bool = False) -> subprocess.Popen:
    """Run nginx in the foreground with a configuration written to `prefix`; returns once it answers on `listen`."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx)")
    conf = write_nginx_conf(prefix, ports, listen, access_log=access_log)
    check = subprocess.run([binary, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
                           capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"nginx rejects the configuration {conf}: {check.stderr.strip()}")
    proc = subprocess.Popen([binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import socket

    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"nginx ended at once: {proc.stderr.read().strip()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", listen)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"nginx did not listen on port {listen} within 10 s")


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Wait until `url`/_stcore/health answers 200 (raises if `proc` ends first or the time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for {url} ended with exit code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not become healthy within {timeout:g} s")


def stop(procs: list[subprocess.Popen], timeout: float = 20.0) -> None:
    """Terminate the processes, killing those that have not ended after `timeout` s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--first-port", type=int, default=8601)
    parser.add_argument("--proxy-port", type=int, default=None, help="also run nginx on this port in the foreground")
    parser.add_argument("--backend", choices=("ray", "process"), default=os.environ.get("EXPLORER_TRAIN_BACKEND", "ray"))
    parser.add_argument("--ray-address", default=os.environ.get("EXPLORER_RAY_ADDRESS", "auto"),
                        help="the cluster every replica trains on (default auto: the one `ray start --head` started here)")
    parser.add_argument("--cifar-dir", default=os.environ.get("CIFAR10_DIR"), help="CIFAR-10, read by each replica")
    parser.add_argument("streamlit_args", nargs="*", help="after --: more `streamlit run` options for every replica")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if not args.cifar_dir:
        parser.error("set CIFAR10_DIR or --cifar-dir (the folder with CIFAR-10), so no replica downloads it")
    if args.proxy_port is not None and nginx_binary() is None:
        parser.error("--proxy-port needs nginx (apt-get install nginx)")
    ports = list(range(args.first_port, args.first_port + args.replicas))
    env = replica_env(backend=args.backend, ray_address=args.ray_address if args.backend == "ray" else None,
                      cifar_dir=args.cifar_dir)
    procs = [subprocess.Popen(replica_command(p, args.streamlit_args), cwd=ROOT, env=env) for p in ports]
    ended, prefix = False, None

    def end(*_: object) -> None:
        nonlocal ended
        ended = True

    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGINT, end)
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_healthy(f"http://127.0.0.1:{port}", proc)
        print(f"{args.replicas} replicas ({args.backend} backend) on 127.0.0.1:{ports[0]}–{ports[-1]}", flush=True)
        if args.proxy_port is None:
            print("nginx upstream lines for deploy/nginx/explorer.conf:")
            print("".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in ports), end="", flush=True)
        else:
            prefix = Path(tempfile.mkdtemp(prefix="explorer-nginx-"))
            procs.append(start_nginx(prefix, ports, args.proxy_port))
            print(f"nginx on port {args.proxy_port} (configuration and logs in {prefix})", flush=True)
        while not ended and all(p.poll() is None for p in procs):
            time.sleep(0.5)
        gone = [p.args[0] if "nginx" in str(p.args[0]) else f"the replica on port {ports[i]}"
                for i, p in enumerate(procs) if p.poll() is not None]
        if gone and not ended:
            print(f"{', '.join(gone)} ended; stopping the rest", file=sys.stderr)
            return 1
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        stop(procs)
        if prefix is not None:
            shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
