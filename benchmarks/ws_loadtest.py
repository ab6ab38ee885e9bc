"""Load test with light websocket clients (not part of the default run): many sessions on one server, no browsers.

Run: .venv/bin/python benchmarks/ws_loadtest.py [--sessions 30] [--changes 10] [--trainers 5] [--cap 2] [--think 0]
                                           [--task-timeout 600] [--reconnect 0] [--reconnect-after 5] [--session-ttl S]
     .venv/bin/python benchmarks/ws_loadtest.py --compare-replicas [--replicas 2] [--ray-cpus 2] [--train-seconds 10] …
     .venv/bin/python benchmarks/ws_loadtest.py --memory 10 [--train-seconds 5]

The scenario of benchmarks/loadtest.py, but each session is a small asyncio client (the `websockets`
package that uvicorn brought) speaking the browser's protocol on ws://HOST:PORT/_stcore/stream:
it sends protobuf `BackMsg`s (`rerun_script` with a `ClientState`: query string, the current value
of every widget on the page, page hash, context info, cached message hashes) and reads
`ForwardMsg`s (deltas, `page_info_changed`, `auto_rerun`, `script_finished`, cached `ref_hash`
messages), keeping the page and the widget values as the frontend does. With no Chromium eating
the CPU, the timings measure the server (nothing renders the charts and diagrams: browsers do that).

Students load a preset and step the depth slider `--changes` times (up, down, …); each change is
timed from the BackMsg to the `script_finished` of its run ("updated page"; the arrival of the new
title is shown too, what benchmarks/loadtest.py waits for), and the title must name the session's own
preset and the new depth. Trainers open the Train tab, set 10 s, press Train and rerun the live
fragments on the `auto_rerun` timers as a browser does; every other one presses Stop after 4 s.
`--reconnect N` more students (resnet56, resnet110, …) make 3 depth changes, lose their websocket
abruptly (no close frame; odd-numbered ones during the run of their last change, as a starved tab
would), wait `--reconnect-after` s and reconnect as the frontend does: `Sec-WebSocket-Protocol:
streamlit, <xsrf token or PLACEHOLDER_AUTH_TOKEN>, <last session id>` (the server resumes a session
it still keeps, `server.disconnectedSessionTTL` = 600 s here, else makes a new one), then a rerun with the widget
values and the query string the page last had. The frontend sends that rerun at once only when a run
was in progress (or fragments ran); an idle tab sends it with the next change, so the check is the
same: the page must show the preset and depth it had, then one more change. `--session-ttl S`
starts the server with that TTL: a new session boots from the URL, so an idle drop keeps the page,
but a drop during a run loses that run's change (the URL did not have it yet; seen in a 1 + 2 run).
Prints errors, latencies, how the trainings ended, the reconnects (session resumed or new, state
kept), wall time, and the server's CPU time and peak RSS.
`--compare-replicas` runs the scenario twice in one go: on `--replicas` replicas behind nginx
(deploy/nginx/explorer.conf, started as deploy/replicas.py does) training on a local Ray cluster of `--ray-cpus`
CPUs (one per training), then on one replica without a proxy training in processes (`--cap` at once). Behind the
proxy each client loads the page first for its replica cookie and sends it with the websocket, and reports a
websocket that reached another replica; every student first moves to a depth no other session uses, so a page
showing anyone else's network is an error. It prints each run's figures, the students per replica, each replica's
RSS before / at its peak / after and CPU, and a table of both. `--memory N`: one replica, one session training N
times in a row, on Ray and then with processes; the replica's RSS after each training.
Not collected by pytest (the file name does not start with test_).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.NumberInput_pb2 import NumberInput  # noqa: E402
from streamlit.proto.Slider_pb2 import Slider  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

from benchmarks.loadtest import PRESETS, scenario_parser, start_server, stop_server  # noqa: E402

TITLE = re.compile(r"### (\S+)(?: \(modified\))? · ResNet-(\d+)")
FULL, FRAGMENT, EARLY = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
                         ForwardMsg.FINISHED_EARLY_FOR_RERUN)
WAIT = 300.0  # seconds for one run to finish before the session reports it
TEXT_FIELDS = {"markdown": "body", "heading": "body", "alert": "body", "metric": "label", "progress": "text",
               "exception": "message"}


def replica_cookie(url: str) -> str:
    """GET the page through the proxy as a browser's first request does; the `explorer_replica` cookie it sets."""
    with urllib.request.urlopen(url, timeout=120) as r:
        r.read()
        found = re.search(r"explorer_replica=([0-9a-f]+)", " ".join(r.headers.get_all("Set-Cookie") or []))
    if not found:
        raise RuntimeError("the proxy set no explorer_replica cookie (is it deploy/nginx/explorer.conf?)")
    return found.group(1)


def initial_state(kind: str, w: Any) -> WidgetState | None:
    """The value the frontend gives a widget it meets first, or that the server sets (`set_value`); None: sends none."""
    state, forced = WidgetState(id=w.id), getattr(w, "set_value", False)
    if kind == "slider":
        if w.type == Slider.SELECT_SLIDER:  # formatted options; the default is indices
            state.string_array_value.data.extend(w.raw_value if forced else [w.options[int(i)] for i in w.default])
        else:
            state.double_array_value.data.extend(w.value if forced else w.default)
    elif kind in ("selectbox", "radio"):
        if forced and w.HasField("raw_value"):
            state.string_value = w.raw_value
        elif not forced and w.HasField("default") and 0 <= w.default < len(w.options):
            state.string_value = w.options[w.default]
        else:
            return None
    elif kind == "checkbox":  # also st.toggle
        state.bool_value = w.value if forced else w.default
    elif kind == "number_input":
        name = "value" if forced else "default"
        if not w.HasField(name):
            return None
        if w.data_type == NumberInput.INT:
            state.int_value = int(getattr(w, name))
        else:
            state.double_value = getattr(w, name)
    elif kind in ("text_input", "text_area"):
        state.string_value = w.value if forced else w.default
    elif kind == "multiselect":
        state.string_array_value.data.extend(w.raw_values if forced else [w.options[i] for i in w.default])
    else:  # buttons (triggers are sent once, on a click), file uploaders, charts: nothing on mount
        return None
    return state


@dataclass
class Node:
    run: str  # the script run that last wrote it
    fragment: str
    kind: str  # element type, or "block"
    proto: Any = None


class Session:
    """One browser tab as the server sees it: a websocket, the page's elements, the widget values, the fragment timers."""

    def __init__(self, url: str, query: str, preset: str, name: str, errors: list[str], *, proxied: bool = False) -> None:
        self.url, self.query, self.preset, self.name, self.errors = url, query, preset, name, errors
        self.proxied = proxied  # behind nginx: load the page first for the replica cookie, send it with the websocket
        self.cookie, self.replica = "", ""  # the replica cookie; the replica that answered the websocket
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task | None = None
        self.page_hash, self.run_id, self.session_id = "", "", ""
        self.nodes: dict[tuple[int, ...], Node] = {}
        self.widgets: dict[str, WidgetState] = {}  # what the next rerun sends
        self.cache: dict[str, tuple[bytes, int, str]] = {}  # hash -> (message, run count when last used, fragment)
        self.max_age, self.finished_runs = 2, 0  # the frontend's ForwardMsg cache clock
        self.full_done = 0  # full runs finished successfully
        self.fragments_asked = self.fragments_done = 0
        self.timers: dict[str, tuple[float, asyncio.Task]] = {}
        self.title_seen: tuple[float, str, int] | None = None
        self.tick = asyncio.Event()
        self.closed: str | None = None
        self.saw_exception = False

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def connect(self, resume: str = "") -> None:
        """Open the websocket; `resume`: the session id to resume, as the frontend sends it (third subprotocol)."""
        tokens = ["streamlit", "PLACEHOLDER_AUTH_TOKEN", resume] if resume else ["streamlit"]
        if self.proxied and not self.cookie:  # the browser loads the page first; nginx sets the cookie there
            self.cookie = await asyncio.to_thread(replica_cookie, f"{self.url}/?{self.query}")
        headers = {"Cookie": f"explorer_replica={self.cookie}"} if self.cookie else None
        self.ws = await connect(f"ws://{self.url.removeprefix('http://')}/_stcore/stream", origin=Origin(self.url),
                                subprotocols=[Subprotocol(t) for t in tokens], max_size=None, ping_interval=None,
                                open_timeout=120, additional_headers=headers)
        replica = self.ws.response.headers.get("X-Explorer-Replica", "") if self.ws.response else ""
        if self.replica and replica != self.replica:
            self.errors.append(f"{self.name}: the websocket moved from replica {self.replica} to {replica}")
        self.replica = replica
        self.closed = None
        self.reader = asyncio.create_task(self._read())

    async def drop(self) -> None:
        """Lose the connection abruptly (no close frame); the page and the widget values stay, as in the frontend."""
        assert self.ws is not None and self.reader is not None
        self.reader.cancel()
        self.ws.transport.abort()
        await asyncio.gather(self.reader, return_exceptions=True)
        self._stop_timers()

    async def __aexit__(self, *exc: object) -> None:
        self._stop_timers()
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()

    # ------------------------------------------------------------------------------ sending
    async def rerun(self, *, fragment: str = "", auto: bool = False, extra: tuple[WidgetState, ...] = ()) -> None:
        """Send `rerun_script` as the frontend does: every widget value (plus `extra`, e.g. a one-off trigger)."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.widget_states.widgets.extend([*(w for w in self.widgets.values() if all(w.id != e.id for e in extra)), *extra])
        cs.page_script_hash = self.page_hash
        cs.fragment_id = fragment
        cs.is_auto_rerun = auto
        cs.cached_message_hashes.extend(self.cache)
        info = cs.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url, info.is_embedded, info.color_scheme = f"{self.url}/" + (f"?{self.query}" if self.query else ""), False, "light"
        assert self.ws is not None
        await self.ws.send(msg.SerializeToString())

    async def run_page(self, extra: tuple[WidgetState, ...] = (), what: str = "a run") -> float:
        """Rerun the whole page and wait for its `script_finished`; returns the seconds it took."""
        done, t = self.full_done, time.perf_counter()
        await self.rerun(extra=extra)
        await self.wait(lambda: self.full_done > done, what)
        return time.perf_counter() - t

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    if self.closed:
                        raise ConnectionError(f"connection closed ({self.closed}) while waiting for {what}")
                    self.tick.clear()
                    await self.tick.wait()
        except TimeoutError:
            raise TimeoutError(f"{what} did not finish within {timeout:g} s") from None

    async def _auto_rerun(self, fragment: str, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                self.fragments_asked += 1
                await self.rerun(fragment=fragment, auto=True)
        except ConnectionClosed:
            pass

    def _stop_timers(self, fragments: Iterable[str] | None = None) -> None:
        for fid in list(self.timers if fragments is None else fragments):
            if fid in self.timers:
                self.timers.pop(fid)[1].cancel()

    # ------------------------------------------------------------------------------ receiving
    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:  # Streamlit sends binary frames only
                msg = ForwardMsg.FromString(raw)
                self._handle(self._resolve(msg, bytes(raw)))
                self.tick.set()
        except Exception as exc:  # noqa: BLE001 - a load test reports every failure
            self.closed = f"{type(exc).__name__}: {exc}"
            self.errors.append(f"{self.name}: reading the websocket: {self.closed}"[:300])
        finally:
            self.closed = self.closed or "closed"
            self.tick.set()

    def _resolve(self, msg: ForwardMsg, raw: bytes) -> ForwardMsg:
        """The frontend's ForwardMsg cache: keep cacheable messages, expand `ref_hash` ones."""
        if msg.WhichOneof("type") == "ref_hash":
            data, _, fragment = self.cache[msg.ref_hash]
            self.cache[msg.ref_hash] = (data, self.finished_runs, fragment)
            full = ForwardMsg.FromString(data)
            full.metadata.CopyFrom(msg.metadata)
            return full
        if msg.metadata.cacheable and msg.hash and msg.hash not in self.cache:
            self.cache[msg.hash] = (raw, self.finished_runs, msg.delta.fragment_id)
        return msg

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.page_hash, self.run_id = msg.new_session.page_script_hash, msg.metadata.run.script_run_id
            self.session_id = msg.new_session.initialize.session_id
            self.max_age = msg.new_session.config.max_cached_message_age or self.max_age
            if not msg.metadata.run.fragment_ids:  # a full run: the frontend drops every fragment timer
                self._stop_timers()
        elif kind == "delta":
            self._delta(msg)
        elif kind == "page_info_changed":  # the app rewrote the address bar
            self.query = msg.page_info_changed.query_string
        elif kind == "auto_rerun":  # the frontend's setInterval(sendUpdateWidgetsMessage(fragment, true))
            fid, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fid and (fid not in self.timers or self.timers[fid][0] != interval):
                self._stop_timers([fid])
                self.timers[fid] = (interval, asyncio.create_task(self._auto_rerun(fid, interval)))
        elif kind == "stop_auto_rerun":
            self._stop_timers(msg.stop_auto_rerun.fragment_ids)
        elif kind == "script_finished":
            self._finished(msg.script_finished, msg.metadata.run.script_run_id, list(msg.metadata.run.fragment_ids))
        elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
            self.errors.append(f"{self.name}: script compilation error")

    def _delta(self, msg: ForwardMsg) -> None:
        path, delta = tuple(msg.metadata.delta_path), msg.delta
        if delta.WhichOneof("type") == "add_block":
            self.nodes[path] = Node(self.run_id, delta.fragment_id, "block")
            return
        if delta.WhichOneof("type") != "new_element":
            return
        kind = delta.new_element.WhichOneof("type") or ""
        proto = getattr(delta.new_element, kind) if kind else None
        self.nodes[path] = Node(self.run_id, delta.fragment_id, kind, proto)
        wid = getattr(proto, "id", "")
        if wid and (wid not in self.widgets or getattr(proto, "set_value", False)):
            state = initial_state(kind, proto)
            if state is not None:
                self.widgets[wid] = state
        if kind == "exception" and not self.saw_exception:
            self.saw_exception = True
            self.errors.append(f"{self.name}: an exception was shown: {proto.type}: {proto.message[:150]}")
        elif kind == "markdown" and path[0] == 0 and (m := TITLE.match(proto.body)):
            self.title_seen = (time.perf_counter(), m.group(1), int(m.group(2)))
            if m.group(1) != self.preset:
                self.errors.append(f"{self.name}: the page shows {m.group(0)!r}, not {self.preset} (cross-talk or lost state)")

    def _finished(self, status: int, run_id: str, fragments: list[str]) -> None:
        if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
            self.errors.append(f"{self.name}: a run finished with a compile error")
        if status in (FULL, FRAGMENT) and (fragments or run_id == self.run_id):
            # clearStaleNodes: drop what this run (or these fragments) did not write again, then their widget values
            self.nodes = {p: n for p, n in self.nodes.items()
                          if n.run == run_id or (fragments and n.fragment not in fragments)}
            live = {getattr(n.proto, "id", "") for n in self.nodes.values()}
            self.widgets = {k: v for k, v in self.widgets.items() if k in live}
        if status != EARLY:  # the frontend ages its message cache once per finished run
            self.finished_runs += 1
            self.cache = {h: e for h, e in self.cache.items()
                          if (fragments and e[2] not in fragments) or self.finished_runs - e[1] <= self.max_age}
        self.full_done += status == FULL
        self.fragments_done += status == FRAGMENT

    # ------------------------------------------------------------------------------ reading the page
    def widget(self, key: str) -> Any:
        """The proto of the widget with this user key on the page (a keyed widget's id ends in -key)."""
        for node in self.nodes.values():
            if node.proto is not None and str(getattr(node.proto, "id", "")).endswith(f"-{key}"):
                return node.proto
        raise LookupError(f"no widget {key!r} on the page")

    def title(self) -> tuple[str, int] | None:
        for path, node in sorted(self.nodes.items()):
            if node.kind == "markdown" and path[0] == 0 and (m := TITLE.match(node.proto.body)):
                return m.group(1), int(m.group(2))
        return None

    def text(self) -> str:
        """The page's text in order, Markdown emphasis removed (what innerText would show)."""
        parts = [str(getattr(n.proto, TEXT_FIELDS[n.kind])) for _, n in sorted(self.nodes.items()) if n.kind in TEXT_FIELDS]
        return "\n".join(parts).replace("**", "")


@dataclass
class Results:
    errors: list[str] = field(default_factory=list)
    first: list[float] = field(default_factory=list)  # connect → first page finished
    changes: list[float] = field(default_factory=list)  # change → script_finished
    titles: list[float] = field(default_factory=list)  # change → the new title arrived
    outcomes: list[str] = field(default_factory=list)
    fragments: list[tuple[int, int]] = field(default_factory=list)  # (auto reruns asked, fragment runs finished)
    reconnects: list[tuple[bool, bool]] = field(default_factory=list)  # (old session resumed, page state kept)
    replicas: list[str] = field(default_factory=list)  # behind nginx: the replica each session's websocket reached


def step_depth(s: Session, k: int) -> int:
    """Move the depth select_slider one step (up, down, up, …) in the widget values; only this widget changes."""
    slider = s.widget("w_depth")
    options = list(slider.options)
    i = options.index(s.widgets[slider.id].string_array_value.data[0])
    j = i + 1 if (k % 2 == 0 or i == 0) and i + 1 < len(options) else i - 1
    s.widgets[slider.id].string_array_value.data[:] = [options[j]]
    return int(options[j])


async def change(s: Session, k: int, res: Results) -> None:
    """One depth change, timed; the page must then show the session's preset and the new depth."""
    depth, s.title_seen, t0 = step_depth(s, k), None, time.perf_counter()
    res.changes.append(await s.run_page(what=f"the run after change {k + 1}"))
    if s.title_seen is not None and s.title_seen[2] == depth:
        res.titles.append(s.title_seen[0] - t0)
    if (shown := s.title()) != (s.preset, depth):
        res.errors.append(f"{s.name}: after change {k + 1} to depth {depth} the title is {shown}")


async def student(url: str, index: int, changes: int, res: Results, think: float = 0.0, *, distinct: bool = False,
                  proxied: bool = False) -> None:
    """Load a preset and step its depth `changes` times. `distinct`: first move to a depth no other session uses
    (the 2m-th option of the slider, m = index // len(PRESETS); the steps then stay on options 2m and 2m + 1), so a
    page that shows any other session's network is seen."""
    preset = PRESETS[index % len(PRESETS)]
    rng = random.Random(index)
    async with Session(url, f"preset={preset}", preset, f"session {index}", res.errors, proxied=proxied) as s:
        res.first.append(await s.run_page(what="the first page"))
        res.replicas.append(s.replica)
        if distinct:
            slider = s.widget("w_depth")
            options = list(slider.options)
            depth = options[min(2 * (index // len(PRESETS)), len(options) - 2)]
            s.widgets[slider.id].string_array_value.data[:] = [depth]
            await s.run_page(what="the run to this session's own depth")
            if (shown := s.title()) != (preset, int(depth)):
                res.errors.append(f"{s.name}: after moving to depth {depth} the title is {shown}")
        for k in range(changes):
            if think:  # a student looks at the page before the next change
                await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
            await change(s, k, res)


async def reconnecting(url: str, index: int, after: float, res: Results) -> None:
    """3 depth changes, the websocket lost (odd indexes: during the last change's run), back after `after` s."""
    preset, name, mid_run = PRESETS[2 + index % (len(PRESETS) - 2)], f"reconnecting {index}", index % 2 == 1
    async with Session(url, f"preset={preset}", preset, name, res.errors) as s:
        await s.run_page(what="the first page")
        for k in range(2 if mid_run else 3):
            await change(s, k, res)
        if mid_run:  # the last change's run starts (new_session), then the tab starves before its page comes back
            step_depth(s, 2)
            run_id = s.run_id
            await s.rerun()
            await s.wait(lambda: s.run_id != run_id, "the start of the last change's run")
        before, old, query = s.title(), s.session_id, s.query
        depth = int(s.widgets[s.widget("w_depth").id].string_array_value.data[0])
        await s.drop()
        await asyncio.sleep(after)
        await s.connect(resume=old)
        await s.run_page(what="the rerun after reconnecting")
        resumed, shown = s.session_id == old, s.title()
        res.reconnects.append((resumed, shown == (preset, depth)))
        how = "resumed the session" if resumed else f"made a new session ({s.session_id[:8]}…, was {old[:8]}…)"
        print(f"{name}: dropped {'during a run' if mid_run else 'idle'} on {before} (widgets: depth {depth}; URL ?{query}); "
              f"after {after:g} s the server {how}; the page shows {shown}", flush=True)
        if shown != (preset, depth):
            res.errors.append(f"{name}: state lost on reconnecting: the page shows {shown}, not {(preset, depth)}; "
                              f"the server {how}")
        await change(s, 3, res)


async def set_train_seconds(s: Session, seconds: float) -> None:
    field_ = s.widget("train_seconds")
    value = "int_value" if field_.data_type == NumberInput.INT else "double_value"
    s.widgets[field_.id] = WidgetState(id=field_.id, **{value: int(seconds) if value == "int_value" else seconds})
    await s.run_page(what=f"the run after setting {seconds:g} s")  # typed the budget, pressed Enter


async def trainer(url: str, index: int, res: Results, *, seconds: float = 10, proxied: bool = False) -> None:
    async with Session(url, "preset=resnet20&depth=8&tab=Train", "resnet20", f"trainer {index}", res.errors,
                       proxied=proxied) as s:
        await s.run_page(what="the first page")
        await set_train_seconds(s, seconds)
        await s.run_page((WidgetState(id=s.widget("train_start").id, trigger_value=True),), what="the run after Train")
        if index % 2:
            await asyncio.sleep(4)
            await s.wait(lambda: not s.widget("train_stop").disabled, "an enabled Stop button", 120)
            await s.run_page((WidgetState(id=s.widget("train_stop").id, trigger_value=True),), what="the run after Stop")
        saw_waiting, text = False, ""
        for _ in range(600):
            text = s.text()
            saw_waiting = saw_waiting or "waiting for a slot" in text.lower()
            ended = next((o for o, mark in (("stopped", "Stopped after"), ("failed", "Training failed"),
                                            ("finished", "Test accuracy")) if mark in text), None)
            if ended:
                res.outcomes.append(ended)
                break
            await asyncio.sleep(0.5)
        else:
            res.outcomes.append("unfinished")
            last = [line for line in text.splitlines() if line.strip()][-3:]
            res.errors.append(f"trainer {index}: no end seen; last lines {last}; fragment timers {len(s.timers)}, "
                              f"auto reruns asked {s.fragments_asked}, fragment runs finished {s.fragments_done}")
        if saw_waiting:
            res.outcomes.append("queued (saw 'waiting for a slot')")
        res.fragments.append((s.fragments_asked, s.fragments_done))


def train_button(s: Session) -> bool:
    """Whether the Train button is enabled (no job of this session running or waiting)."""
    try:
        return not s.widget("train_start").disabled
    except LookupError:
        return False


async def train_repeatedly(url: str, count: int, seconds: float, res: Results, after_each: Callable[[int], None]) -> None:
    """One session on the Train tab trains `count` times in a row; `after_each(i)` runs once the i-th has ended."""
    async with Session(url, "preset=resnet20&depth=8&tab=Train", "resnet20", "memory trainer", res.errors) as s:
        await s.run_page(what="the first page")
        await set_train_seconds(s, seconds)
        after_each(0)
        for i in range(1, count + 1):
            await s.run_page((WidgetState(id=s.widget("train_start").id, trigger_value=True),), what=f"training {i}'s start")
            await s.wait(lambda: not train_button(s), f"training {i} to start", 60)
            await s.wait(lambda: train_button(s), f"training {i} to end", 300)
            for _ in range(120):  # the evaluation's figures follow the end
                ended = next((o for o, mark in (("stopped", "Stopped after"), ("failed", "Training failed"),
                                                ("finished", "Test accuracy")) if mark in s.text()), None)
                if ended:
                    break
                await asyncio.sleep(0.5)
            res.outcomes.append(ended or "no end shown")
            after_each(i)


def rss_mb(pid: int) -> float:
    """The resident memory of a process now, in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples the resident memory of some processes once a second in a thread: before, the peak, the last."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.samples = pids, {p: [rss_mb(p)] for p in pids}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(1.0):
            for p in self.pids:
                with contextlib.suppress(OSError):
                    self.samples[p].append(rss_mb(p))

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        for p in self.pids:
            with contextlib.suppress(OSError):
                self.samples[p].append(rss_mb(p))

    def line(self, names: dict[int, str]) -> str:
        return "; ".join(f"{names[p]}: {xs[0]:.0f} MB before, {max(xs):.0f} MB peak, {xs[-1]:.0f} MB after"
                         for p, xs in self.samples.items())


def proc_stats(pid: int) -> tuple[float, str]:
    """(CPU seconds of the process and its waited-for children, peak RSS) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    hwm = next((line.split(":", 1)[1].strip() for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmHWM")), "?")
    return ticks / os.sysconf("SC_CLK_TCK"), hwm


def summary(name: str, xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{name}: n={len(xs)}" + (f" {xs[0]:.2f} s" if xs else "")
    q = statistics.quantiles(xs, n=20, method="inclusive")
    return f"{name}: n={len(xs)} p50={statistics.median(xs):.2f} s p95={q[18]:.2f} s max={max(xs):.2f} s"


async def run(args: argparse.Namespace, url: str, res: Results, *, proxied: bool = False, distinct: bool = False) -> float:
    started = time.perf_counter()

    async def bounded(name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await asyncio.wait_for(coro, args.task_timeout)
        except TimeoutError as exc:
            res.errors.append(f"{name}: {exc}" if str(exc) else f"{name}: did not end within {args.task_timeout:g} s")
        except Exception as exc:  # noqa: BLE001
            res.errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        if not args.quiet:
            print(f"[{time.perf_counter() - started:5.0f} s] {name} ended ({len(res.errors)} errors so far)", flush=True)

    tasks = [bounded(f"session {i}", student(url, i, args.changes, res, args.think, distinct=distinct, proxied=proxied))
             for i in range(args.sessions)]
    tasks += [bounded(f"trainer {i}", trainer(url, i, res, seconds=args.train_seconds, proxied=proxied))
              for i in range(args.trainers)]
    tasks += [bounded(f"reconnecting {i}", reconnecting(url, i, args.reconnect_after, res)) for i in range(args.reconnect)]
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


def report(args: argparse.Namespace, res: Results, wall: float) -> None:
    print(f"errors: {len(res.errors)}")
    for e in res.errors[:20]:
        print("  " + e)
    print(summary("first page (connect → script_finished)", res.first))
    print(summary("change → updated page (BackMsg → script_finished)", res.changes))
    print(summary("change → new title received", res.titles))
    if args.reconnect:
        print(f"reconnects: {len(res.reconnects)} of {args.reconnect} done; old session resumed: "
              f"{sum(r for r, _ in res.reconnects)}; page state kept: {sum(k for _, k in res.reconnects)}")
    print("trainings: " + ", ".join(f"{o}: {res.outcomes.count(o)}" for o in sorted(set(res.outcomes))))
    if res.fragments:
        print("per trainer, fragment auto-reruns asked / fragment runs finished (the server merges pending requests): "
              + ", ".join(f"{a}/{d}" for a, d in res.fragments))


RAY_HEAD = """
import sys, ray
ctx = ray.init(num_cpus=int(sys.argv[2]), include_dashboard=False, _temp_dir=sys.argv[1], log_to_driver=False)
print(ctx.address_info["gcs_address"], flush=True)
sys.stdin.read()
ray.shutdown()
"""


@contextlib.contextmanager
def ray_head(cpus: int):
    """A local Ray cluster with `cpus` CPUs in a subprocess of its own process group; yields its GCS address."""
    temp = tempfile.mkdtemp(prefix="rayl", dir="/tmp")  # (short: Ray's socket paths must fit 107 bytes)
    proc = subprocess.Popen([sys.executable, "-c", RAY_HEAD, temp, str(cpus)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        address = proc.stdout.readline().strip()
        if not address:
            raise SystemExit("the local Ray head did not start (is Ray installed? pip install -r requirements-cluster.txt)")
        yield address
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
        subprocess.run(["rm", "-rf", temp], check=False)


@contextlib.contextmanager
def replicas(count: int, data_dir: Path, *, backend: str, cap: int, ray_address: str | None = None, proxy: bool = False):
    """`count` replicas started by deploy/replicas.py's rules (loopback, served to others) and, with `proxy`, nginx
    in front (deploy/nginx/explorer.conf); yields (the URL students use, the replicas' processes)."""
    from benchmarks.loadtest import free_port
    from deploy import replicas as R

    env = R.replica_env(backend=backend, ray_address=ray_address, cifar_dir=str(data_dir))
    env["EXPLORER_MAX_TRAININGS"] = str(cap)
    ports = [free_port() for _ in range(count)]
    procs = [subprocess.Popen(R.replica_command(p), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT) for p in ports]
    prefix = Path(tempfile.mkdtemp(prefix="explorer-nginx-"))
    everything = list(procs)
    try:
        for port, proc in zip(ports, procs, strict=True):
            R.wait_healthy(f"http://127.0.0.1:{port}", proc)
        url = f"http://127.0.0.1:{ports[0]}"
        if proxy:
            listen = free_port()
            everything.append(R.start_nginx(prefix, ports, listen))
            url = f"http://127.0.0.1:{listen}"
        yield url, procs
    finally:
        R.stop(everything)
        subprocess.run(["rm", "-rf", str(prefix)], check=False)


def scenario(args: argparse.Namespace, data_dir: Path, *, name: str, count: int, backend: str, proxy: bool,
             ray_address: str | None = None) -> dict[str, Any]:
    """One run of the class scenario on `count` replicas; prints its figures and returns the main ones."""
    print(f"\n=== {name} ===", flush=True)
    res = Results()
    with replicas(count, data_dir, backend=backend, cap=args.cap, ray_address=ray_address, proxy=proxy) as (url, procs):
        cpu0 = [proc_stats(p.pid)[0] for p in procs]
        names = {p.pid: f"replica {i + 1}" for i, p in enumerate(procs)}
        with RssSampler([p.pid for p in procs]) as rss:
            wall = asyncio.run(run(args, url, res, proxied=proxy, distinct=True))
            time.sleep(5)  # the sessions' last runs settle
        cpu = [proc_stats(p.pid)[0] - c for p, c in zip(procs, cpu0, strict=True)]
    print(f"{args.sessions} students × {args.changes} changes (think {args.think:g} s) + {args.trainers} trainers "
          f"({args.train_seconds:g} s budget, every other one stopped after 4 s); {wall:.0f} s")
    report(args, res, wall)
    if proxy:
        spread = {r: res.replicas.count(r) for r in sorted(set(res.replicas))}
        print("students per replica (from the proxy's X-Explorer-Replica): " + ", ".join(f"{r}: {n}" for r, n in spread.items()))
    print("replica RSS: " + rss.line(names))
    print("replica CPU during the test (with the training processes it waited for): " + ", ".join(f"{names[p.pid]} {c:.0f} s" for p, c in zip(procs, cpu, strict=True)))
    q = statistics.quantiles(res.changes, n=20, method="inclusive") if len(res.changes) > 1 else [float("nan")] * 19
    return {"name": name, "errors": len(res.errors), "p50": statistics.median(res.changes) if res.changes else float("nan"),
            "p95": q[18], "outcomes": res.outcomes, "wall": wall}


def memory_run(args: argparse.Namespace, data_dir: Path, backend: str, ray_address: str | None) -> None:
    """One replica, one session training `args.memory` times in a row; the replica's RSS after each training."""
    res = Results()
    with replicas(1, data_dir, backend=backend, cap=args.cap, ray_address=ray_address) as (url, procs):
        pid, marks = procs[0].pid, []
        started = time.perf_counter()

        def after_each(i: int) -> None:
            marks.append(rss_mb(pid))
            if not args.quiet:
                print(f"[{time.perf_counter() - started:5.0f} s] {backend}: after training {i}: {marks[-1]:.0f} MB", flush=True)

        with RssSampler([pid]) as rss:
            asyncio.run(train_repeatedly(url, args.memory, args.train_seconds, res, after_each))
            time.sleep(10)
        peak, last = max(rss.samples[pid]), rss.samples[pid][-1]
    print(f"{backend} backend, {args.memory} trainings of {args.train_seconds:g} s in one session: replica RSS "
          f"{marks[0]:.0f} MB with the Train tab open, {marks[1]:.0f} MB after training 1, {marks[-1]:.0f} MB after "
          f"training {args.memory} ({marks[-1] - marks[1]:+.0f} MB over trainings 2–{args.memory}), peak {peak:.0f} MB, "
          f"{last:.0f} MB 10 s later")
    print("  after each: " + " ".join(f"{m:.0f}" for m in marks) + " MB; trainings: "
          + ", ".join(f"{o}: {res.outcomes.count(o)}" for o in sorted(set(res.outcomes))) + f"; errors: {len(res.errors)}")
    for e in res.errors[:5]:
        print("  " + e)


def main() -> None:
    parser = scenario_parser(__doc__.splitlines()[0])
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a student waits before each change (uniform 0.5–1.5×; 0 = change as soon as the "
                             "page is back, the worst case)")
    parser.add_argument("--reconnect", type=int, default=0, help="students that lose their websocket and reconnect")
    parser.add_argument("--reconnect-after", type=float, default=5.0, help="seconds between the drop and the reconnect")
    parser.add_argument("--session-ttl", type=int, default=None,
                        help="the server's server.disconnectedSessionTTL (the repo's .streamlit/config.toml: 600 s); below --reconnect-after, "
                             "the old session is gone when the student comes back")
    parser.add_argument("--train-seconds", type=float, default=10.0, help="each trainer's time budget")
    parser.add_argument("--compare-replicas", action="store_true",
                        help="run the scenario on --replicas replicas behind nginx with a local Ray cluster, then on one "
                             "replica with the process backend (--cap trainings at once), and compare")
    parser.add_argument("--replicas", type=int, default=2, help="replicas behind nginx in --compare-replicas")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray cluster (each training asks for 1)")
    parser.add_argument("--memory", type=int, default=0,
                        help="instead: one replica, one session training this many times in a row, on Ray and then in "
                             "processes; the replica's RSS after each")
    parser.add_argument("--quiet", action="store_true", help="no line per ended session")
    args = parser.parse_args()
    if args.session_ttl is not None:  # the env var of the CLI flag --server.disconnectedSessionTTL (start_server passes os.environ)
        os.environ["STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL"] = str(args.session_ttl)
    from benchmarks.bench_memory import write_fixture

    if args.compare_replicas or args.memory:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # (a loopback cluster: no token to share)
        os.environ.setdefault("EXPLORER_RAY_CPUS", "1")
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = write_fixture(Path(tmp), per_file=500)
            if args.memory:
                with ray_head(args.ray_cpus) as address:
                    memory_run(args, data_dir, "ray", address)
                memory_run(args, data_dir, "process", None)
                return
            with ray_head(args.ray_cpus) as address:
                a = scenario(args, data_dir, name=f"{args.replicas} replicas behind nginx, trainings on a local Ray "
                             f"({args.ray_cpus} CPUs, 1 per training)", count=args.replicas, backend="ray", proxy=True,
                             ray_address=address)
            b = scenario(args, data_dir, name=f"1 replica, no proxy, trainings in processes (cap {args.cap})", count=1,
                         backend="process", proxy=False)
        print("\n| setup | errors | change → updated page p50 / p95 | trainings | wall |")
        print("|---|---|---|---|---|")
        for r in (a, b):
            outcomes = ", ".join(f"{r['outcomes'].count(o)} {o}" for o in sorted(set(r["outcomes"])))
            print(f"| {r['name']} | {r['errors']} | {r['p50']:.2f} s / {r['p95']:.2f} s | {outcomes} | {r['wall']:.0f} s |")
        print(f"p95 ratio (one replica ÷ replicas behind nginx): {b['p95'] / a['p95']:.2f}; "
              f"p50 ratio: {b['p50'] / a['p50']:.2f}")
        return

    res = Results()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_fixture(Path(tmp), per_file=500)
        proc, url = start_server(data_dir, args.cap)
        try:
            cpu0, _ = proc_stats(proc.pid)
            wall = asyncio.run(run(args, url, res))
            cpu1, hwm = proc_stats(proc.pid)
        finally:
            stop_server(proc)
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(f"sessions: {args.sessions} × {args.changes} changes, {args.trainers} trainers (cap {args.cap}), think {args.think:g} s, "
          f"{args.reconnect} reconnecting (after {args.reconnect_after:g} s, session TTL {'default' if args.session_ttl is None else args.session_ttl}); {wall:.0f} s")
    report(args, res, wall)
    print(f"server: {cpu1 - cpu0:.1f} s CPU during the test ({cpu1:.1f} s with start-up), peak RSS {hwm}; "
          f"these clients: {me.ru_utime + me.ru_stime:.1f} s CPU, peak RSS {me.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
