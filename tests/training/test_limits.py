"""Limits a session cannot step around: trainings queue first come first served, the degradation lesson is the
session's one job and fits in the server's time limit."""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from explorer import training
from explorer.config import ResNetConfig
from explorer.degradation import DegradationLesson
from explorer.training import FairSlots, TrainJob, TrainSettings
from explorer.ui.session import JOB, LESSON, busy_with
from tests.conftest import ROOT
from tests.helpers import write_layout

TINY = ResNetConfig(depth=8, filters=4)
TWO = (("plain-8", TINY.replace(shortcut="none")), ("resnet-8", TINY))


def test_fair_slots_serve_waiters_in_the_order_they_came():
    slots = FairSlots(1)
    assert slots.acquire(timeout=1)
    order, started = [], []

    def waiter(i: int) -> None:
        ticket = slots.enqueue()
        started.append(i)
        while not slots.wait(ticket, timeout=0.01):  # polls like a job that watches its Stop button
            pass
        order.append(i)
        slots.release()

    threads = []
    for i in range(5):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        while len(started) <= i:  # each takes its ticket before the next arrives
            time.sleep(0.001)
    slots.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]


def test_fair_slots_count_who_is_ahead_and_forget_a_cancelled_ticket():
    slots = FairSlots(1)
    assert slots.acquire(timeout=1)
    first, second, third = slots.enqueue(), slots.enqueue(), slots.enqueue()
    assert [slots.ahead(t) for t in (first, second, third)] == [0, 1, 2]
    slots.cancel(second)
    assert slots.ahead(third) == 1
    assert not slots.wait(third, timeout=0.05)  # the slot is held, and `first` is before it
    slots.release()
    assert slots.wait(first, timeout=1)
    slots.release()
    assert slots.wait(third, timeout=1)
    slots.release()
    with pytest.raises(ValueError):
        slots.release()


def test_a_waiting_job_knows_how_many_are_ahead(data):
    slots = FairSlots(1)
    assert slots.acquire(timeout=1)  # another training holds the only slot
    settings = TrainSettings(epochs=400, batch_size=50)
    first = TrainJob(TINY, data, settings, slots=slots).start()
    time.sleep(0.3)
    second = TrainJob(TINY, data, settings, slots=slots).start()
    try:
        deadline = time.monotonic() + 10
        while second.poll().queue_ahead != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll().queue_ahead == 0 and second.poll().queue_ahead == 1
        assert first.poll().status == second.poll().status == "waiting"
    finally:
        first.stop()
        second.stop()
        assert first.join(10) and second.join(10)
        slots.release()
    assert first.status == second.status == "stopped"


def test_the_lesson_obeys_the_server_time_limit(data):
    lesson = DegradationLesson(data, steps=100_000, subset=200, batch_size=20, networks=TWO, max_seconds=3,
                               idle_timeout=None, parallel=False).start()
    assert lesson.max_seconds == 3
    assert lesson.join(120)
    assert "limit of 3 s" in (lesson.stop_reason or "") and "EXPLORER_MAX_TRAIN_SECONDS" in lesson.stop_reason
    assert all(job.status in ("stopped", "done") and job.max_seconds <= 3 for job in lesson.jobs)


class _Active:
    def __init__(self, active: bool, name: str = "run") -> None:
        self.active, self.name = active, name


def test_one_job_per_session_counts_the_lesson():
    assert busy_with({}) is None
    assert busy_with({JOB: _Active(False), LESSON: _Active(False)}) is None
    assert "Train tab" in busy_with({JOB: _Active(True)})
    assert "degradation lesson" in busy_with({LESSON: _Active(True)})


PAGE = """
import sys
sys.path.insert(0, {root!r})
import streamlit as st
from explorer import degradation
from explorer.annotate import build
from explorer.config import ResNetConfig
from explorer.ui import lessons
from explorer.ui.train import render_train_tab

degradation.NETWORKS = (("plain-8", ResNetConfig(depth=8, filters=4, shortcut="none")),
                        ("resnet-8", ResNetConfig(depth=8, filters=4)))
cfg = ResNetConfig(depth=8, filters=4)
lessons.render_lessons_tab(cfg, build(cfg))
render_train_tab(cfg, build(cfg))
"""


def test_a_session_cannot_train_beside_its_own_lesson(fixture_dir, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(fixture_dir))
    monkeypatch.setenv("EXPLORER_MAX_TRAIN_SECONDS", "240")
    at = AppTest.from_string(PAGE.format(root=str(ROOT)), default_timeout=120).run()
    assert not at.exception
    steps = next(s for s in at.select_slider if s.label == "Steps per network")
    assert "240 s" in steps.help  # the four trainings together stop at the server's limit
    assert training.SLOTS.acquire(timeout=30)  # another session's training holds the only slot: the lesson waits
    try:
        next(b for b in at.button if b.label == "Run the degradation lesson").click().run()
        lesson = at.session_state[LESSON]
        assert lesson.active
        at.button(key="train_start").click().run()
        assert not at.exception
        assert JOB not in at.session_state  # no second job in this session
        assert any("degradation lesson is running" in e.value for e in at.error)
        lesson.stop()
        assert lesson.join(30)
    finally:
        training.SLOTS.release()


def test_the_lesson_reads_only_a_cifar_folder_the_page_may_name(tmp_path, monkeypatch):
    other = tmp_path / "another-users-cifar"
    write_layout(other, "binary", n_per_class=20)
    monkeypatch.setenv("EXPLORER_SHARED", "1")  # served to a class, no shared folders
    monkeypatch.delenv("EXPLORER_DATA_ROOTS", raising=False)
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    at = AppTest.from_string(PAGE.format(root=str(ROOT)), default_timeout=120).run()
    at.session_state["train_data_dir"] = str(other)
    at.run()
    next(b for b in at.button if b.label == "Run the degradation lesson").click().run()
    assert not at.exception
    assert LESSON not in at.session_state
    assert any("CIFAR-10 is not available" in e.value for e in at.error)
