"""This session's trainings in one place: the state keys of the Train tab's job, its runs and data and the degradation lesson, and the one-job rule."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

JOB = "_train_job"  # the Train tab's TrainJob (one at a time, the degradation lesson included)
RUNS = "_train_runs"  # finished runs (explorer.training.RunRecord), oldest first, for the Compare tab
RECORDED = "_train_recorded"  # id() of the Train tab's job already added to RUNS
START_ERROR = "_train_start_error"  # why the last press of Train did not start a job
DATA_DIR = "train_data_dir"  # the CIFAR-10 folder typed into the Train tab (the lesson reads it too)
UPLOADED = "_train_uploaded"  # (key, images or the error) of the archive uploaded to the Train tab
LESSON = "_degradation_lesson"  # the Lessons tab's DegradationLesson
LESSON_RECORDED = "_degradation_recorded"  # id()s of the lesson's jobs already added to RUNS
LESSON_ERROR = "_degradation_error"  # why the last press of the lesson's button did not start it
MAX_RUNS = 30  # finished runs kept for the Compare tab


def busy_with(state: Mapping[str, Any]) -> str | None:
    """What this session is already training, as the reason a new training is refused; None when nothing runs.

    A session runs one job at a time: the Train tab's training or the degradation lesson (whose four trainings
    count as one job), never both.
    """
    job, lesson = state.get(JOB), state.get(LESSON)
    if job is not None and job.active:
        return (f"a training is already running in this session (**{job.name}**, Train tab): stop it (or wait for it) "
                "first — one training per session")
    if lesson is not None and lesson.active:
        return ("the degradation lesson is running in this session (Lessons tab): stop it (or wait for it) first — "
                "one training per session")
    return None


def runs(state: MutableMapping[str, Any]) -> list:
    """This session's finished runs (`explorer.training.RunRecord`), oldest first."""
    return state.setdefault(RUNS, [])


def add_run(state: MutableMapping[str, Any], record: Any) -> None:
    """Keep a finished run for the Compare tab (the newest MAX_RUNS)."""
    kept = runs(state)
    kept.append(record)
    del kept[:-MAX_RUNS]
