"""What the Train tab shows besides the live panel: the memory line, how the run ended, its evaluation, images and downloads."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import charts, fmt
from explorer.training import RunPlan, TrainJob, history_csv, history_html, timings_text
from explorer.training.evaluation import VIEW_NAMES
from explorer.ui.train.live import fmt_seconds

GRID_IMAGES = 24


def memory_line(plan: RunPlan) -> None:
    """The estimated memory of the prepared training (the job's own estimate), against what the machine has free."""
    if plan.memory_estimate is None:
        return
    need, free = plan.memory_estimate, plan.memory_free
    text = f"Memory: about {fmt.memory(need)} for this training"
    if free is None:
        st.caption(text + ".")
    elif plan.memory_refused:
        st.warning(f"{text}, but the server has only {fmt.memory(free)} free: it will be refused. "
                   "Choose a smaller batch size or a smaller network.", icon=":material/memory:")
    else:
        st.caption(f"{text} ({fmt.memory(free)} free on the server).")


def _on(job: TrainJob) -> str:
    """What the evaluation images are: image folders' validation images, else CIFAR-10's test set."""
    return "Validation" if job.data.holds_validation_images else "Test"


def status_line(job: TrainJob) -> None:
    snap = job.poll()
    if snap.status == "done" and job.capped:
        st.info(f"Ended at the server's limit of {job.max_seconds:g} s per training (set by the teacher); "
                "evaluated as it stood.", icon=":material/timer:")
    report = job.weights_report
    if report is not None:
        new = f"; new: {', '.join(report.skipped)}" if report.skipped else ""
        st.caption(f":material/ac_unit: Started from ImageNet weights: {report.layers} layers ({report.params:,} params) "
                   f"copied from `{report.source}`{new}.")
    if snap.status == "failed":
        st.error(f"**Training failed.** {snap.error}", icon=":material/error:")
    elif snap.status == "stopped":
        st.warning(f"**Stopped** after {snap.epoch:.2f} epochs ({snap.error or 'stopped'}). No test evaluation.",
                   icon=":material/stop_circle:")


def evaluation(job: TrainJob) -> None:
    snap = job.poll()
    ev = snap.evaluation
    if snap.status != "done" or ev is None:
        return
    result = job.result()
    cols = st.columns(5)
    on = _on(job)
    views = ev.views
    seen = (f" · each averaged over {views} views: {', '.join(VIEW_NAMES[:views])}" if views > 1
            else " · each seen once (no test-time views: a short budget spends its seconds on training)")
    cols[0].metric(f"{on} accuracy", f"{ev.test_accuracy:.1%}", help=f"{ev.test_images:,} {on.lower()} images{seen}")
    cols[1].metric(f"{on} loss", f"{ev.test_loss:.3f}")
    budget = job.settings.seconds
    cols[2].metric("Train → result", fmt_seconds(result["wall_seconds"]),
                   help=(f"of a {budget:g}-s budget; " if budget is not None else "")
                   + f"{fmt_seconds(result['train_seconds'])} of it training")
    ips = result["train_images_per_second"]
    cols[3].metric("Images / s", f"{ips:,.0f}" if ips else "—", help=f"{job.precision} on {job.device}")
    cols[4].metric("Epochs", f"{result['epochs_fractional']:.2f}")
    budget_words = f" (budget {budget:g} s)" if budget is not None else ""
    st.caption(f":material/timer: **{result['wall_seconds']:.1f} s from Train to this result**{budget_words}: "
               + timings_text(result["timings"], views=views) + ".")
    left, right = st.columns([1.1, 1])
    left.plotly_chart(charts.confusion_matrix(ev.confusion, classes=ev.classes), key="train_confusion",
                      config={"displaylogo": False})
    right.plotly_chart(charts.per_class_accuracy(ev.per_class_accuracy, classes=ev.classes), key="train_per_class",
                       config={"displaylogo": False})
    image_grid(job)
    if job.stop_reason:  # e.g. early stopping
        st.caption(f"Ended before the budget: {job.stop_reason}.")
    if job.restored_best:
        st.caption(f"The model holds the weights of **epoch {job.best_epoch}** (lowest {job.monitor}), restored before "
                   "the test evaluation; the download below is that model.")
    d1, d3, d2 = st.columns(3)
    d1.download_button("History (CSV)", history_csv(snap.batches, snap.epochs), file_name="history.csv",
                       mime="text/csv", key="train_dl_history", icon=":material/download:")
    d3.download_button("History plot (HTML)",
                       lambda: history_html(snap.batches, snap.epochs, title=job.name, best_epoch=job.best_epoch),
                       file_name="history.html", mime="text/html", key="train_dl_history_html",
                       icon=":material/download:", help="Loss and accuracy curves; opens offline in a browser.")
    d2.download_button("Trained model (.keras)", job.model_bytes, file_name="model.keras",
                       mime="application/octet-stream", key="train_dl_model", icon=":material/download:")


def image_grid(job: TrainJob) -> None:
    ev = job.evaluation
    if ev is None:
        return
    labels = np.asarray(job.data.y_test).astype(np.int64)
    wrong = np.flatnonzero(ev.predictions != labels)
    right = np.flatnonzero(ev.predictions == labels)
    # Mistakes first, the most confident first (those teach the most), then a few correct ones.
    wrong = wrong[np.argsort(-ev.confidence[wrong])]
    picked = np.concatenate([wrong[: GRID_IMAGES * 2 // 3], right[: GRID_IMAGES]])[:GRID_IMAGES]
    names = ev.classes
    on = _on(job)
    with st.expander(f"{on} images — {len(wrong):,} mistakes of {len(labels):,} (mistakes first)", expanded=False):
        captions = [
            f"{'✗' if ev.predictions[i] != labels[i] else '✓'} {names[ev.predictions[i]]} "
            f"({ev.confidence[i]:.0%}) · true {names[labels[i]]}"
            for i in picked
        ]
        st.image([job.data.x_test[i] for i in picked], caption=captions, width=96, clamp=True)
