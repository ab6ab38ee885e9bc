"""Degradation lesson: equal steps for every network, the training-subset evaluation, the Figure-1 chart, the sentence
that says what a run showed, stop and idle stop, and the Lessons sub-tab."""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from explorer.config import ResNetConfig
from explorer.degradation import (
    DEFAULT_WIDTHS,
    NETWORKS,
    DegradationLesson,
    NetResult,
    lesson_networks,
    tail_error,
    training_subset,
    verdict,
)

TINY = (("plain-8", ResNetConfig(depth=8, filters=4, shortcut="none")), ("resnet-8", ResNetConfig(depth=8, filters=4)))
FOUR = (("plain-8", ResNetConfig(depth=8, filters=4, shortcut="none")),
        ("plain-14", ResNetConfig(depth=14, filters=4, shortcut="none")),
        ("resnet-8", ResNetConfig(depth=8, filters=4)), ("resnet-14", ResNetConfig(depth=14, filters=4)))


def test_the_lesson_networks():
    names = [n for n, _ in NETWORKS]
    assert names == ["plain-20", "plain-56", "resnet-20", "resnet-56"]
    depths = {n: c.resolved_depth for n, c in NETWORKS}
    assert depths == {"plain-20": 20, "plain-56": 56, "resnet-20": 20, "resnet-56": 56}
    assert [c.shortcut for _, c in NETWORKS] == ["none", "none", "A", "A"]
    assert all(c.widths == DEFAULT_WIDTHS for _, c in NETWORKS)
    from explorer.annotate import build

    assert all(not build(c).errors for _, c in NETWORKS)  # (the stem follows the widths: shortcut A never shrinks)
    assert all(not build(c).errors for _, c in lesson_networks((4, 8, 16)))
    paper = dict(lesson_networks(None))
    assert paper["resnet-56"].widths is None and [w for w, _ in paper["resnet-56"].stage_widths()] == [16, 32, 64]


def test_the_training_subset_is_also_what_is_evaluated(data):
    sub = training_subset(data, 200, seed=0)
    assert sub.n_train == sub.n_test == 200
    assert (sub.x_test == sub.x_train).all() and (sub.y_test == sub.y_train).all()
    assert sorted(set(sub.y_train.tolist())) == list(range(10))  # class-balanced: every class is there
    assert training_subset(data, 200, seed=1).y_train.tolist() != sub.y_train.tolist() or \
        (training_subset(data, 200, seed=1).x_train != sub.x_train).any()


def test_every_network_trains_the_same_number_of_steps(data):
    lesson = DegradationLesson(data, steps=7, subset=200, batch_size=20, networks=FOUR, idle_timeout=None,
                               slots=threading.Semaphore(4), worker="thread").start()
    assert lesson.join(timeout=300)
    rows = lesson.poll()
    assert [name for name, _ in rows] == ["plain-8", "plain-14", "resnet-8", "resnet-14"]
    assert all(snap.status == "done" for _, snap in rows), [(n, s.status, s.error) for n, s in rows]
    assert {job.settings.steps for job in lesson.jobs} == {7}
    assert [snap.steps for _, snap in rows] == [7, 7, 7, 7]
    assert all(snap.batches[-1]["step"] == 7 for _, snap in rows)
    assert all(job.settings.seconds is None and job.settings.epochs is None for job in lesson.jobs)
    # the final evaluation ran on the 200 training images, and is the training error shown
    assert all(snap.evaluation is not None and snap.evaluation.test_images == 200 for _, snap in rows)
    results = lesson.results(rows)
    assert [r.name for r in results] == ["plain-8", "plain-14", "resnet-8", "resnet-14"]
    assert [(r.depth, r.plain) for r in results] == [(8, True), (14, True), (8, False), (14, False)]
    for (_, snap), r in zip(rows, results, strict=True):
        assert r.measured == "evaluation" and r.train_error == pytest.approx(1.0 - snap.evaluation.test_accuracy)
    assert len(verdict(results)) >= 2
    assert lesson.wall_seconds is not None and lesson.wall_seconds > 0


def test_runs_every_network_in_turn(data):
    lesson = DegradationLesson(data, steps=5, subset=200, batch_size=20, networks=TINY, parallel=False).start()
    assert lesson.join(timeout=180)
    rows = lesson.poll()
    assert [name for name, _ in rows] == ["plain-8", "resnet-8"]
    assert all(snap is not None and snap.status == "done" and snap.steps == 5 for _, snap in rows)
    assert [j.name for j in lesson.finished_jobs()] == ["plain-8", "resnet-8"]


def test_stop_skips_the_rest(data):
    lesson = DegradationLesson(data, steps=100_000, subset=200, batch_size=20, networks=TINY, parallel=False).start()
    deadline = time.monotonic() + 60
    while not lesson.jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    lesson.stop()
    assert lesson.join(timeout=60)
    assert len(lesson.jobs) == 1 and lesson.jobs[0].status in ("stopped", "done")
    assert lesson.poll()[1][1] is None


def test_at_once_by_default_and_they_stop_together(data):
    lesson = DegradationLesson(data, steps=100_000, subset=200, batch_size=20, networks=TINY,
                               slots=threading.Semaphore(2), worker="thread")
    assert lesson.parallel
    assert not DegradationLesson(data, networks=TINY, parallel=False).parallel
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
    lesson = DegradationLesson(data, steps=100_000, subset=200, batch_size=20, networks=TINY, idle_timeout=1.0,
                               parallel=False).start()
    assert lesson.join(timeout=60)
    assert "nobody watched" in (lesson.stop_reason or "")
    assert len(lesson.jobs) == 1


# --------------------------------------------------------------------------- what a run showed
def result(name: str, error: float) -> NetResult:
    depth = int(name.split("-")[1])
    return NetResult(name=name, depth=depth, plain=name.startswith("plain"), train_error=error, measured="evaluation",
                     tail_error=error, steps=600, images_per_second=500.0, status="done")


def test_the_sentence_when_the_run_shows_degradation():
    lines = verdict([result("plain-20", 0.31), result("plain-56", 0.38), result("resnet-20", 0.25),
                     result("resnet-56", 0.22)])
    assert "**plain-56** ended at **38.0%** training error, above plain-20's 31.0%" in lines[0]
    assert "degradation" in lines[0] and "not" not in lines[0]
    assert "**resnet-56** ended at **22.0%**, at or below resnet-20's 25.0%" in lines[1]
    assert "at least as well" in lines[1]
    assert "worth 16.0% of training error" in lines[2]


def test_the_sentence_when_the_run_does_not_show_it():
    lines = verdict([result("plain-20", 0.40), result("plain-56", 0.35), result("resnet-20", 0.20),
                     result("resnet-56", 0.27)])
    assert "**plain-56** ended at **35.0%** training error, not above plain-20's 40.0%" in lines[0]
    assert "did **not** show degradation" in lines[0] and "more steps" in lines[0]
    assert "**resnet-56** ended at **27.0%**, above resnet-20's 20.0%" in lines[1]
    assert "trained worse too" in lines[1]


def test_the_sentence_waits_for_both_of_a_pair():
    assert verdict([result("plain-20", 0.3)]) == []
    assert len(verdict([result("plain-20", 0.3), result("plain-56", 0.4)])) == 1


def test_tail_error_weights_the_last_steps():
    batches = [{"step": s, "accuracy": 0.0 if s <= 90 else 0.5} for s in range(10, 101, 10)]
    assert tail_error(batches) == pytest.approx(0.5)  # steps 91..100: the last record only
    assert tail_error(batches, fraction=0.2) == pytest.approx(0.75)  # steps 81..100: half at error 1, half at 0.5
    assert tail_error([]) is None


def test_the_chart_draws_four_curves_against_steps():
    from explorer.teaching_charts import degradation_figure

    series = [(name, depth, plain, [{"step": s, "accuracy": 0.1 + s / 1000, "loss": 2.3 - s / 500}
                                    for s in (1, 50, 100)])
              for name, depth, plain in (("plain-20", 20, True), ("plain-56", 56, True), ("resnet-20", 20, False),
                                         ("resnet-56", 56, False))]
    fig = degradation_figure(series)
    error = [t for t in fig.data if t.xaxis == "x"]
    loss = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in error] == ["plain-20", "plain-56", "resnet-20", "resnet-56"]
    assert len(loss) == 4
    assert all(list(t.x) == [1, 50, 100] for t in fig.data)
    assert [t.line.dash for t in error] == ["dash", "dash", "solid", "solid"]
    assert error[0].line.color == error[2].line.color != error[1].line.color == error[3].line.color
    assert error[0].y[0] == pytest.approx(100 * (1 - 0.101))  # training error in %, from accuracy
    assert "steps" in fig.layout.xaxis.title.text


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
    st.session_state.setdefault(lessons.LESSON_STEPS, 200)
    st.session_state.setdefault(lessons.LESSON_SUBSET, 1_000)
    cfg = ResNetConfig(depth=8, filters=4)
    lessons.render_lessons_tab(cfg, build(cfg))


def test_degradation_subtab_runs_and_fills_compare(fixture_dir):
    at = AppTest.from_function(lesson_page, args=(str(fixture_dir),), default_timeout=120).run()
    assert not at.exception
    assert any("same number of steps" in c.value for c in at.caption)
    button = next(b for b in at.button if b.label == "Run the degradation lesson")
    button.click().run()
    assert not at.exception
    lesson = at.session_state["_degradation_lesson"]
    assert lesson.steps == 200 and lesson.train_images == 1_000
    labels = [b.label for b in at.button]
    assert "Stop the lesson" in labels and "Run the degradation lesson" not in labels, labels  # redrawn at once
    budget = [s for s in at.select_slider if s.label in ("Steps per network", "Training images")]
    assert len(budget) == 2 and all(s.disabled for s in budget)
    assert lesson.join(timeout=240)
    at.run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "plain-8" in shown and "Final training error" in shown, shown[-800:]
    charts = at.get("plotly_chart")
    assert charts
    from explorer.ui import session

    runs = at.session_state[session.RUNS]
    names = [r.name for r in (runs.values() if isinstance(runs, dict) else runs)]
    assert "lesson · plain-8" in names and "lesson · resnet-8" in names


def test_the_lesson_trains_with_plain_sgd_as_in_the_paper():
    from explorer.degradation import lesson_settings

    settings = lesson_settings()
    assert settings.muon is False and settings.resolved().muon is False and settings.steps is not None
