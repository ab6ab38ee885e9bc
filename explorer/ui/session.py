"""This session's state in one place: the widget values kept across tabs, the Train tab's job, its runs and data,
the degradation lesson, and the one-job rule."""

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

KEPT_WIDGETS: tuple[str, ...] = (
    # Architecture: the diagram's view controls and the Compare-networks view
    "view_level", "view_expand", "view_rankdir", "view_color", "view_rollup", "view_params", "arch_mode",
    "cmp_other", "cmp_preset", "cmp_link",
    # Layers
    "layers_stages", "layers_roles", "layers_name",
    # Lessons
    "lesson_twin", "lesson_no_bn", "lesson_zero_init", "lesson_batch", "lesson_rf_layer", "lesson_rf_row",
    "lesson_rf_col", "lesson_rf_image", "lesson_anatomy_axis", "lesson_steps", "lesson_subset",
    # Train (and its Predict expander)
    "train_source", "train_folder_root", "train_folder_val", "train_folder_split", "train_adapt", "train_folder_adapt",
    "train_recipe", "train_budget_kind", "train_seconds", "train_epochs", "train_subset", "train_batch", "train_flip",
    "train_crop", "train_muon", DATA_DIR, "train_cb_early_stopping", "train_cb_plateau", "train_cb_best", "train_weights_on",
    "train_weights_file", "predict_source",
    # Compare
    "compare_runs", "compare_metric", "compare_x",
)
"""The keys of the value widgets on the tabs (not buttons or uploaders, whose values cannot be set; not the sidebar,
which is drawn on every run)."""


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


def keep_widgets(state: MutableMapping[str, Any]) -> None:
    """Keep the tabs' widget values across runs that do not draw them; call it at the start and at the end of every
    page run.

    Streamlit forgets a widget's value at the end of a run that does not draw it (a closed tab, a control under a
    condition): the widget comes back at its default, or at a value set before it was first drawn. This writes the
    value of every `KEPT_WIDGETS` key the session holds back into the session state. At the end of a run that makes
    the value of a widget not drawn a plain session value, which survives; at the start of a run it marks the value
    as set in this run, so a widget drawn again shows it in the browser too (Streamlit sends a widget's value to the
    browser only when it was set in the same run). Streamlit refuses the write for a widget already drawn in this
    run: that one keeps its value anyway. A kept value the widget no longer offers (an *Expand* choice of another
    network) is the widget's to refuse: Streamlit's option widgets fall back to their first option, and a tab checks
    what it must (e.g. a slider's range) before drawing.
    """
    from streamlit.errors import StreamlitAPIException

    for key in KEPT_WIDGETS:
        if key in state:
            try:
                state[key] = state[key]
            except StreamlitAPIException:  # drawn in this run
                pass
