"""Two replicas of the app behind a real nginx (deploy/nginx/explorer.conf) on loopback: pages and the websocket go
through the proxy, the `explorer_replica` cookie keeps a browser on one replica, and two browsers' networks stay apart.

Skips, saying why, when nginx or Chromium is missing (in CI, `CI=true`, it fails instead: `.ci/run` installs both).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from deploy import replicas as R
from tests.conftest import ROOT
from tests.e2e.conftest import _free_port, screenshot, wait_idle

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000
TITLE = 'h3:has-text("ResNet-")'
COOKIE = re.compile(r"explorer_replica=([0-9a-f]+)")


def _need_nginx() -> None:
    if R.nginx_binary():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but nginx is not installed: .ci/run must apt-get install nginx")
    pytest.skip("nginx is not installed (apt-get install nginx to run the replica tests)")


@pytest.fixture(scope="module")
def proxy(browser):
    """Two replicas (process backend, served to others) on free loopback ports and nginx in front; yields
    (proxy URL, the replicas' addresses)."""
    _need_nginx()
    ports = [_free_port(), _free_port()]
    env = R.replica_env(backend="process", ray_address=None, cifar_dir=None)
    procs = [subprocess.Popen(R.replica_command(p), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT) for p in ports]
    prefix = Path(tempfile.mkdtemp(prefix="explorer-nginx-"))
    try:
        for port, proc in zip(ports, procs, strict=True):
            R.wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=90)
        listen = _free_port()
        procs.append(R.start_nginx(prefix, ports, listen))
        yield f"http://127.0.0.1:{listen}", {f"127.0.0.1:{p}" for p in ports}
    finally:
        R.stop(procs)
        subprocess.run(["rm", "-rf", str(prefix)], check=False)


def get(url: str, cookie: str | None = None) -> tuple[int, str | None, str]:
    """GET through the proxy: (status, the new replica cookie if one was set, the replica that answered)."""
    request = urllib.request.Request(url, headers={"Cookie": f"explorer_replica={cookie}"} if cookie else {})
    with urllib.request.urlopen(request, timeout=30) as r:
        r.read()
        set_cookie = " ".join(r.headers.get_all("Set-Cookie") or [])
        return r.status, (m.group(1) if (m := COOKIE.search(set_cookie)) else None), r.headers["X-Explorer-Replica"]


def cookie_for(url: str, replica: str) -> str:
    """A fresh replica cookie that the proxy maps to `replica` (first requests spread over the replicas)."""
    for _ in range(64):
        _, cookie, answered = get(f"{url}/_stcore/health")
        if answered == replica:
            return cookie
    raise AssertionError(f"64 first requests never reached {replica}")


def test_the_site_file_is_rewritten_for_any_number_of_replicas_and_nginx_accepts_it(tmp_path):
    conf = R.site_conf([9101, 9102, 9103], 8181)
    assert re.findall(r"server 127\.0\.0\.1:(\d+)", conf) == ["9101", "9102", "9103"]
    assert "listen 8181;" in conf and "listen 80;" not in conf
    _need_nginx()
    main = R.write_nginx_conf(tmp_path / "nginx", [9101, 9102, 9103], 8181)
    check = subprocess.run([R.nginx_binary(), "-t", "-p", str(main.parent), "-e", str(main.parent / "error.log"),
                            "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_cookie_spreads_browsers_over_the_replicas_and_keeps_each_on_its_own(proxy):
    url, replicas = proxy
    status, cookie, first = get(f"{url}/")
    assert status == 200 and cookie and first in replicas  # the page itself, with a new cookie
    for path in ["/", "/_stcore/health", "/_stcore/host-config", "/?preset=resnet56"] * 3:
        status, again, answered = get(url + path, cookie)
        assert (status, again, answered) == (200, None, first), path  # no new cookie, always the same replica
    seen = {get(f"{url}/_stcore/health")[2] for _ in range(24)}  # 24 new browsers
    assert seen == replicas


def test_the_websocket_goes_through_the_proxy_to_the_cookies_replica(proxy):
    from websockets.sync.client import connect

    url, replicas = proxy
    for replica in sorted(replicas):
        cookie = cookie_for(url, replica)
        with connect(f"ws://{url.removeprefix('http://')}/_stcore/stream", origin=url, subprotocols=["streamlit"],
                     additional_headers={"Cookie": f"explorer_replica={cookie}"}, open_timeout=30) as ws:
            assert ws.response.status_code == 101
            assert ws.response.headers["X-Explorer-Replica"] == replica


def open_on(browser, url: str, replica: str, preset: str):
    """A browser context whose replica cookie maps to `replica`, with the app open on `preset`; every response the
    page gets is recorded with the replica that sent it."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    ctx.add_cookies([{"name": "explorer_replica", "value": cookie_for(url, replica), "url": url}])
    page = ctx.new_page()
    page.answered = []
    page.on("response", lambda r: page.answered.append((r.url, r.headers.get("x-explorer-replica"))))
    page.goto(f"{url}/?preset={preset}", timeout=TIMEOUT)
    wait_idle(page, TIMEOUT)
    page.locator(TITLE, has_text=preset).first.wait_for(timeout=TIMEOUT)
    return ctx, page


def title(page) -> str:
    return page.locator(TITLE).first.inner_text().strip()


def test_two_browsers_on_one_replica_keep_their_own_network_through_the_proxy(proxy, browser):
    url, replicas = proxy
    replica = sorted(replicas)[0]  # both on the same server process: the place where they could mix
    ctx_a, a = open_on(browser, url, replica, "resnet20")
    ctx_b, b = open_on(browser, url, replica, "resnet56")
    try:
        # a changes its preset in the sidebar: a rerun over the websocket through nginx
        a.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        a.keyboard.type("resnet110")
        a.keyboard.press("Enter")
        a.locator(TITLE, has_text="resnet110").first.wait_for(timeout=TIMEOUT)
        wait_idle(a, TIMEOUT)
        assert "preset=resnet110" in a.url
        # b reruns too (a depth step) and still shows its own network
        b.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]').first.focus()
        b.keyboard.press("ArrowRight")
        b.locator(TITLE, has_text="ResNet-62").first.wait_for(timeout=TIMEOUT)
        wait_idle(b, TIMEOUT)
        assert title(b).startswith("resnet56") and "ResNet-62" in title(b), title(b)
        assert title(a).startswith("resnet110"), title(a)
        for page in (a, b):
            assert not page.locator('[data-testid="stException"]').count()
            proxied = [(u, r) for u, r in page.answered if u.startswith(url)]
            assert len(proxied) > 5 and {r for _, r in proxied} == {replica}, proxied[:5]
        screenshot(a, "replicas_browser_a")
    finally:
        ctx_a.close()
        ctx_b.close()
