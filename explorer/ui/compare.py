"""The Compare tab: overlay the curves of this session's finished runs (Train tab and degradation lesson), and a table of them."""

from __future__ import annotations

import streamlit as st

from explorer import charts
from explorer.annotate import AnnotatedGraph
from explorer.config import ResNetConfig
from explorer.ui import session

RUNS = "compare_runs"  # the runs drawn
SEEN = "_compare_seen"  # the run names the selection has been offered


def _select_new_runs(names: list[str]) -> None:
    """Select the newest six runs at first, and every run that finished since (a run left out stays out)."""
    ss = st.session_state
    seen = ss.get(SEEN)
    chosen = list(ss.get(RUNS, [])) if seen is not None else []
    new = names[-6:] if seen is None else [n for n in names if n not in seen]
    want = [n for n in names if n in chosen or n in new]
    if ss.get(RUNS) != want:
        ss[RUNS] = want
    ss[SEEN] = list(names)


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Compare tab (the runs of this session; the configured network does not matter here)."""
    del config, ag, preset
    render_compare_tab()


def render_compare_tab() -> None:
    """Draw the Compare tab: overlay the curves of this session's finished runs, and a table of them."""
    st.subheader("Compare runs")
    runs = session.runs(st.session_state)
    job = st.session_state.get(session.JOB)
    if job is not None and not job.active:
        from explorer.ui.train.live import record_finished

        record_finished(job)
    if not runs:
        st.info("Every finished training of this session appears here. Train e.g. a plain-20 and a resnet-20 "
                "(shortcut *none* vs *A*), then plain-56 and resnet-56, to see the degradation problem of the paper.",
                icon=":material/compare_arrows:")
        return
    names = [r.name for r in runs]
    _select_new_runs(names)
    c1, c2, c3 = st.columns([2, 1, 1])
    chosen = c1.multiselect("Runs", names, key=RUNS)
    metric = c2.selectbox("Metric", list(charts.METRICS), format_func=charts.METRICS.get, key="compare_metric")
    x = c3.selectbox("Against", list(charts.X_AXES), format_func=charts.X_AXES.get, key="compare_x",
                     help="Images seen or steps compare networks at equal work; seconds at equal time.")
    selected = [r for r in runs if r.name in chosen]
    if selected:
        st.plotly_chart(charts.comparison(selected, metric=metric, x=x), key="compare_chart", config={"displaylogo": False})
    rows = []
    for r in runs:
        c = r.config
        rows.append({
            "run": r.name, "depth": c.resolved_depth, "version": c.version, "block": c.block, "shortcut": c.shortcut,
            "recipe": r.settings.recipe, "budget": r.settings.budget_text(), "status": r.status,
            "test accuracy": r.test_accuracy, "test loss": r.test_loss,
            "last val accuracy": next((e["val_accuracy"] for e in reversed(r.epochs) if e.get("val_accuracy") is not None), None),
            "train s": round(r.train_seconds, 1), "img/s": None if r.images_per_second is None else round(r.images_per_second),
        })
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "last val accuracy": st.column_config.NumberColumn(format="percent"),
    })
    if st.button("Clear runs", key="compare_clear", icon=":material/delete:"):
        runs.clear()
        st.rerun()
