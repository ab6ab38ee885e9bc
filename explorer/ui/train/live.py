"""The running training on the page: the Train tab's live panel (a fragment), the sidebar badge, and the heartbeat.

Nothing here is run by the worker: the page polls the job (`explorer.training.TrainJob`) from fragments that
rerun while it is active, and keeps each finished run for the Compare tab once.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from explorer import charts
from explorer.training import RunRecord, TrainJob, max_concurrent, timings_text
from explorer.ui import session


def current_job() -> TrainJob | None:
    """This session's job (the last one started), if any."""
    return st.session_state.get(session.JOB)


def fmt_seconds(seconds: float | None) -> str:
    """E.g. '42 s' or '1:30'."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def record_finished(job: TrainJob) -> None:
    """Keep a finished run for the Compare tab (once per job)."""
    if st.session_state.get(session.RECORDED) == id(job) or job.active:
        return
    st.session_state[session.RECORDED] = id(job)
    if job.status in ("done", "stopped") and job.batches:
        session.add_run(st.session_state, RunRecord.from_job(job))


def live_panel(drawn_active: bool = False) -> None:
    """Progress, live curves and (when done) a full rerun to show the evaluation. Runs as a fragment.

    `drawn_active` says the page around it was drawn while the job ran (Stop enabled, no results):
    then every tick after the job ends asks for a full rerun until one completes and registers
    this fragment again with `drawn_active=False` — a single request could be lost on a busy server,
    leaving a stale page (seen in the load test).
    """
    job = current_job()
    if job is None:
        return
    snap = job.poll()
    if snap.status == "waiting" and job.worker == "ray":
        st.info(f"**Waiting for a slot — {snap.queue_ahead} ahead** (trainings from this server that asked first): "
                "the Ray cluster has no room for another training now; it starts by itself when one ends.",
                icon=":material/hourglass_top:")
    elif snap.status == "waiting":
        ahead = f" {snap.queue_ahead} waiting before you (first come, first served)." if snap.queue_ahead else ""
        st.info(f"**Waiting for a slot** — another training is running on this server (at most {max_concurrent()} at "
                f"once, so each gets the whole CPU). It starts by itself.{ahead}", icon=":material/hourglass_top:")
    elif snap.active:
        parts = [snap.phase, f"{fmt_seconds(snap.wall)} since Train"]
        if snap.eta is not None:
            parts.append(f"result in ≈ {fmt_seconds(snap.eta)}" if job.settings.seconds is not None
                         else f"ETA {fmt_seconds(snap.eta)}")
        if snap.images_per_second:
            parts.append(f"{snap.images_per_second:,.0f} img/s")
        parts.append(f"epoch {snap.epoch:.2f}")
        st.progress(min(max(snap.progress, 0.0), 1.0), text=" · ".join(parts))
    if snap.batches:
        st.plotly_chart(charts.live_curves(snap.batches, snap.epochs, title=job.name), key="train_live_chart",
                        config={"displaylogo": False})
    elif snap.active and snap.status != "waiting":
        done = timings_text(snap.timings or {}, running=snap.part)
        st.caption(f"{done}. The first batch compiles the network; the curves start after it.")
    if not snap.active:
        if st.session_state.get(session.RECORDED) != id(job):
            record_finished(job)
        if drawn_active:
            st.rerun()  # the whole page: buttons, evaluation, compare tab


def keep_alive() -> None:
    """Poll this session's job, if any (call it on every page run so that another open tab does not look idle)."""
    job = current_job()
    if job is not None and job.active:
        job.poll()


def render_train_status() -> None:
    """A compact progress line for the sidebar that polls the job every 2 s while it runs (any tab)."""
    job = current_job()
    if job is None or not job.active:
        return

    def badge() -> Any:
        current = current_job()
        if current is None:
            return
        snap = current.poll()
        if snap.active:
            what = "waiting for a slot" if snap.status == "waiting" else f"{snap.progress:.0%}"
            st.caption(f":material/fitness_center: Training {current.name}: {what}")
        elif st.session_state.get(session.RECORDED) != id(current):
            record_finished(current)
            st.rerun()

    st.fragment(badge, run_every=2.0)()
