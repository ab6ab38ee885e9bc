"""Degradation lesson: four short trainings in turn, stop, idle stop, and the Lessons sub-tab."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from explorer.config import ResNetConfig
from explorer.degradation import NETWORKS, DegradationLesson

TINY = (("plain-8", ResNetConfig(depth=8, filters=4, shortcut="none")), ("resnet-8", ResNetConfig(depth=8, filters=4)))


def test_the_lesson_networks():
    names = [n for n, _ in NETWORKS]
    assert names == ["plain-20", "plain-56", "resnet-20", "resnet-56"]
    depths = {n: c.resolved_depth for n, c in NETWORKS}
    assert depths == {"plain-20": 20, "plain-56": 56, "resnet-20": 20, "resnet-56": 56}
    assert [c.shortcut for _, c in NETWORKS] == ["none", "none", "A", "A"]


def test_runs_every_network_in_turn(data):
    lesson = DegradationLesson(data, seconds=1.5, subset=500, networks=TINY).start()
    assert lesson.join(timeout=180)
    rows = lesson.poll()
    assert [name for name, _ in rows] == ["plain-8", "resnet-8"]
    assert all(snap is not None and snap.status == "done" and snap.batches for _, snap in rows)
    assert all(snap.evaluation is not None for _, snap in rows)
    assert [j.name for j in lesson.finished_jobs()] == ["plain-8", "resnet-8"]


def test_stop_skips_the_rest(data):
    lesson = DegradationLesson(data, seconds=60, subset=500, networks=TINY).start()
    deadline = time.monotonic() + 60
    while not lesson.jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    lesson.stop()
    assert lesson.join(timeout=60)
    assert len(lesson.jobs) == 1 and lesson.jobs[0].status in ("stopped", "done")
    assert lesson.poll()[1][1] is None


def test_on_ray_the_networks_run_at_once_and_stop_together(data, monkeypatch):
    lesson = DegradationLesson(data, seconds=60, subset=500, networks=TINY, worker="thread")
    assert not lesson.parallel  # the server's own processes: one after another
    assert DegradationLesson(data, seconds=60, subset=500, networks=TINY, worker="ray").parallel
    lesson.parallel = True  # as on Ray, with the trainings in threads here
    lesson.start()
    deadline = time.monotonic() + 60
    while len(lesson.jobs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [j.name for j in lesson.jobs] == ["plain-8", "resnet-8"]  # both started before either ended
    assert all(j.active for j in lesson.jobs)
    lesson.stop()
    assert lesson.join(timeout=60)
    assert all(j.status in ("stopped", "done") for j in lesson.jobs)


def test_unwatched_lesson_stops_itself(data):
    lesson = DegradationLesson(data, seconds=60, subset=500, networks=TINY, idle_timeout=1.0).start()
    assert lesson.join(timeout=60)
    assert "nobody watched" in (lesson.stop_reason or "")
    assert len(lesson.jobs) == 1


def lesson_page(data_dir: str) -> None:
    import streamlit as st

    from explorer import degradation
    from explorer.annotate import build
    from explorer.config import ResNetConfig
    from explorer.ui import lessons
    from explorer.ui.train import DATA_DIR

    degradation.NETWORKS = (("plain-8", ResNetConfig(depth=8, filters=4, shortcut="none")),
                            ("resnet-8", ResNetConfig(depth=8, filters=4)))
    st.session_state.setdefault(DATA_DIR, data_dir)
    cfg = ResNetConfig(depth=8, filters=4)
    lessons.render_lessons_tab(cfg, build(cfg))


def test_degradation_subtab_runs_and_fills_compare(fixture_dir):
    at = AppTest.from_function(lesson_page, args=(str(fixture_dir),), default_timeout=120).run()
    assert not at.exception
    button = next(b for b in at.button if b.label == "Run the degradation lesson")
    button.click().run()
    assert not at.exception
    lesson = at.session_state["_degradation_lesson"]
    labels = [b.label for b in at.button]
    assert "Stop the lesson" in labels and "Run the degradation lesson" not in labels, labels  # redrawn at once
    budget = [s for s in at.select_slider if s.label in ("Seconds per network", "Training images")]
    assert len(budget) == 2 and all(s.disabled for s in budget)
    lesson.stop()
    assert lesson.join(timeout=60)
    at.run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "plain-8" in shown, shown[-500:]
