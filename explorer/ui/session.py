"""This session's trainings in one place: the state keys of the Train tab's job and the degradation lesson, and the one-job rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JOB = "_train_job"  # the Train tab's TrainJob
LESSON = "_degradation_lesson"  # the Lessons tab's DegradationLesson


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
