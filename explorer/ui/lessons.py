"""The Lessons tab: gradient flow (residual vs plain twin), receptive field along depth, block anatomy side by side."""

from __future__ import annotations

import math
import os

import numpy as np
import streamlit as st

from explorer import guards
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig
from explorer.teaching import anatomy, anatomy_dot, output_centre, receptive_box, ribbon
from explorer.teaching_charts import (
    gradient_flow_figure,
    load_sample,
    receptive_field_figure,
    ribbon_figure,
    sample_names,
)
from explorer.ui import common, session

GRADFLOW_LIMIT = 600  # layers; beyond this one pass takes too long for a lesson on a CPU
RESULTS = "_gradflow_results"


def render(config: ResNetConfig, ag: AnnotatedGraph, preset: str) -> None:
    """Draw the Lessons tab (`render_lessons_tab`; every tab has this signature)."""
    del preset
    render_lessons_tab(config, ag)


def render_lessons_tab(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    """Draw the three lessons for the configured network."""
    st.markdown("Three short lessons on **why skip connections matter**, measured on the network you configured.")
    flow, field, block, degradation = st.tabs(["Gradient flow", "Receptive field", "Block anatomy", "Degradation"])
    with flow:
        _gradient_flow(config, ag)
    with field:
        _receptive_field(ag)
    with block:
        _anatomy(config)
    with degradation:
        _degradation()


def _gradient_flow(config: ResNetConfig, ag: AnnotatedGraph) -> None:
    st.caption(
        "One forward and backward pass at initialisation, before any training. Left: how large the gradient that "
        "reaches each conv's weights is. Right: how spread out each block's output is. Flat curves mean the signal "
        "travels through the whole depth; curves that climb or fall by orders of magnitude mean the first layers get "
        "a very different learning signal from the last. The dashed line is the *plain twin*: the same network "
        "with every skip connection removed."
    )
    cols = st.columns(4)
    _seed("lesson_twin", config.shortcut != "none")
    _seed("lesson_no_bn", not config.batch_norm)
    _seed("lesson_zero_init", config.zero_init)
    _seed("lesson_batch", 32)
    twin = cols[0].toggle("Plain twin", key="lesson_twin", disabled=config.shortcut == "none",
                          help="Also measure the same network without skip connections.")
    no_bn = cols[1].toggle("Without BatchNorm", key="lesson_no_bn")
    zero = cols[2].toggle("Zero-init residual", key="lesson_zero_init",
                          help="The last BN γ (v1) or last conv (v2) of each block starts at 0: every block starts "
                          "as the identity.")
    size = cols[3].select_slider("Batch", options=[8, 16, 32, 64, 128], key="lesson_batch")
    measured = config.replace(batch_norm=not no_bn, zero_init=zero)
    if build(measured).errors:
        st.warning("This network does not fit together (see the Debug tab), so there is nothing to measure yet.")
        return
    if len(ag.graph) > GRADFLOW_LIMIT:
        st.info(f"This network has {len(ag.graph):,} layers; a gradient-flow pass is offered up to "
                f"{GRADFLOW_LIMIT} layers so that it stays a matter of seconds. Pick a shallower depth.")
        return
    key = (measured.to_json(), twin, size)
    results = st.session_state.setdefault(RESULTS, {})
    if st.button("Measure gradient flow", type="primary", help="Builds the Keras model(s); takes a few seconds."):
        from explorer import gradflow

        with st.spinner("Building the network and running one forward/backward pass…"):
            def measure() -> dict:  # sized first; then a child process, killed when it runs over the time limit
                batch = gradflow.load_batch(measured, size=size, extra=guards.PROCESS_BYTES)
                return guards.run_killable(guards.rerun_seconds(), gradflow.report, measured, batch, twin=twin)

            result = common.slow_result(measure, what="The pass",
                                        advice="Pick a shallower network or a smaller batch.", title="No pass —")
            if result is None:
                return
            results.clear()  # keep one result per session: they hold small lists, but no need to pile up
            results[key] = result
    result = results.get(key)
    if result is None:
        st.info("Press **Measure gradient flow** to run the pass for the current settings.")
        return
    st.plotly_chart(gradient_flow_figure(result), width="stretch")
    from explorer.gradflow import summary_ratio

    lines = [f"**{n['label']}**: first-conv gradient is {summary_ratio(n):.3g}× the last conv's; "
             f"loss at initialisation {n['loss']:.2f}" for n in result["networks"]]
    st.markdown("  \n".join(lines))
    why = _why_loss_is_high(result, config.classes)
    if why:
        st.caption(why)
    st.caption(f"Batch: {result['source']}.")


def _why_loss_is_high(result: dict, classes: int) -> str | None:
    """Why a residual network's loss at initialisation is above ln(classes) (an even guess), when it is."""
    chance = math.log(max(classes, 2))
    for n in result["networks"]:
        spread = [b["activation_std"] for b in n["blocks"]]
        if n["label"] == "residual" and n["loss"] > 1.25 * chance and len(spread) > 1 and spread[-1] > spread[0]:
            return (f"Why is the loss above ln {classes} ≈ {chance:.2f}, the loss of an even guess? Each residual block "
                    f"adds its branch to the identity, so the activations' spread grows with depth (here from "
                    f"{spread[0]:.2g} after the first block to {spread[-1]:.2g} after the last) and the classifier "
                    "turns it into large, confidently wrong scores; the plain twin keeps its spread, and *Zero-init "
                    "residual* (every block starts as the identity) brings the loss back to about ln "
                    f"{classes}.")
    return None


SEEDS = "_lesson_seeds"  # {widget key: the default it was last given}


def _seed(key: str, default: object, *, allowed: object = None) -> None:
    """Give a lesson widget its default before it is drawn, and again whenever that default changes (another
    network) or its value is no longer `allowed` (a row beyond the layer's map); a value the user chose stays."""
    ss = st.session_state
    seeds = ss.setdefault(SEEDS, {})
    if key not in ss or seeds.get(key) != default or (allowed is not None and ss[key] not in allowed):
        ss[key] = default
    seeds[key] = default


def _receptive_field(ag: AnnotatedGraph) -> None:
    rows = ribbon(ag)
    st.caption(
        "How far each layer can see. The **receptive field** is the square of input pixels that one output pixel "
        "depends on; it grows by (kernel − 1) × stride with every conv. The **effective stride** doubles at every "
        "downsampling step, while the map shrinks and the channels grow."
    )
    st.plotly_chart(ribbon_figure(rows), width="stretch")
    if tuple(ag.config.input_shape[2:]) != (3,):
        return
    names = [r["name"] for r in rows]
    left, right = st.columns([1, 1])
    with left:
        _seed("lesson_rf_layer", names[min(len(names) - 1, len(names) // 2)], allowed=names)
        layer = st.selectbox("Layer", names, key="lesson_rf_layer")
        info = ag.info[layer]
        h, w = info.shape[:2]
        _seed("lesson_rf_row", h // 2, allowed=range(h))
        _seed("lesson_rf_col", w // 2, allowed=range(w))
        row = st.slider("Output row", 0, max(h - 1, 0), key="lesson_rf_row", disabled=h <= 1)
        col = st.slider("Output column", 0, max(w - 1, 0), key="lesson_rf_col", disabled=w <= 1)
        _seed("lesson_rf_image", "cat")
        image_name = st.selectbox("Image", sample_names(), key="lesson_rf_image")
        top, left_px, bottom, right_px = receptive_box(ag, layer, row=row, col=col)
        st.markdown(
            f"**{layer}** sees a {info.rf}×{info.rf} window (clipped to {bottom - top + 1}×{right_px - left_px + 1} "
            f"by the image border); neighbouring output pixels are {info.jump} input pixels apart."
        )
    with right:
        image = load_sample(image_name)
        if image.shape[:2] != tuple(ag.config.input_shape[:2]):
            from PIL import Image

            size = (ag.config.input_shape[1], ag.config.input_shape[0])
            image = np.asarray(Image.fromarray(image).resize(size, Image.NEAREST))
        centre = output_centre(ag, layer, row=row, col=col)
        fig = receptive_field_figure(image, (top, left_px, bottom, right_px), centre=centre,
                                     title=f"{image_name}: what {layer}[{row}, {col}] sees")
        st.plotly_chart(fig, width="content")


def _anatomy(config: ResNetConfig) -> None:
    axis = st.radio("Compare with", ["version", "block"], horizontal=True, key="lesson_anatomy_axis",
                    format_func=lambda a: "the other version (v1 ↔ v2)" if a == "version"
                    else "the other block (basic ↔ bottleneck)")
    try:
        pair = anatomy(config, axis)
    except ConfigError as exc:
        st.info(f"No counterpart for this network: {exc.message}. {exc.hint}")
        return
    st.caption(
        f"A typical block of your network (**{pair[0].title}**) beside the same block as **{pair[1].title}**. "
        "Yellow marks what differs; the dashed blue line is the shortcut. In v1 the ReLU comes *after* the add, "
        "so the identity path passes through a non-linearity; in v2 BN-ReLU move *before* each conv and the "
        "shortcut is a clean identity from block to block."
    )
    from explorer.ui import classroom, viewer

    dot = anatomy_dot(pair)
    viewer.show([viewer.Pane("a", f"{pair[0].title} vs {pair[1].title}", dot, viewer.view_key(dot))],
                key="anatomy_viewer", present=classroom.current(st.session_state).present, height=560)


LESSON, LESSON_RECORDED, LESSON_ERROR = session.LESSON, session.LESSON_RECORDED, session.LESSON_ERROR
LESSON_STEPS, LESSON_SUBSET = "lesson_steps", "lesson_subset"
STEP_OPTIONS = (200, 300, 500, 800, 1200)
SUBSET_OPTIONS = (1_000, 2_000, 5_000, 10_000)


def _degradation() -> None:
    from explorer import degradation as D

    widths = "/".join(map(str, D.DEFAULT_WIDTHS))
    st.caption(
        "He et al. (2015), Figure 1: a deeper *plain* network reaches a **higher training error** than a shallower "
        "one — not overfitting (it fits its own training images worse), but because it is harder to optimise — "
        "while a deeper *residual* network trains at least as well as the shallower one. This trains plain-20, "
        "plain-56, ResNet-20 and ResNet-56 for the **same number of steps** on the same small training subset "
        f"(several epochs of it; widths {widths}, half the paper's, to fit in a few minutes on a CPU) and draws "
        "their training error against steps. At the end each final network is evaluated once on the whole "
        "training subset in inference mode; that is the training error compared. The test set is not evaluated "
        "(it would take longer than the lesson). A few hundred steps are far from the paper's 64k: the page says "
        "what *this* run showed."
    )
    ss = st.session_state
    lesson = ss.get(LESSON)
    running = lesson is not None and lesson.active
    c1, c2, c3 = st.columns([1, 1, 1])
    if ss.get(LESSON_STEPS) not in STEP_OPTIONS:
        ss[LESSON_STEPS] = D.DEFAULT_STEPS
    limit = guards.max_train_seconds()
    c1.select_slider("Steps per network", options=STEP_OPTIONS, disabled=running, key=LESSON_STEPS,
                     help=f"Batches of {D.DEFAULT_BATCH} images, the same for all four. The four trainings count as "
                          "one training of this session" + (f": together they stop at {limit:g} s on this server."
                                                            if limit else "."))
    if ss.get(LESSON_SUBSET) not in SUBSET_OPTIONS:
        ss[LESSON_SUBSET] = D.DEFAULT_SUBSET
    c2.select_slider("Training images", options=SUBSET_OPTIONS, format_func=lambda n: f"{n:,}", disabled=running,
                     key=LESSON_SUBSET, help="Fewer images are fitted for more epochs: the difference in what each "
                                             "network can fit shows sooner.")
    if running:
        c3.button("Stop the lesson", on_click=lesson.stop, icon=":material/stop:")
    else:
        c3.button("Run the degradation lesson", type="primary", icon=":material/play_arrow:", on_click=_start_lesson)
    problem = ss.pop(LESSON_ERROR, None)
    if problem:
        st.error(problem, icon=":material/folder_off:")
    if lesson is not None:
        st.fragment(run_every=1.0 if running else None)(_degradation_live)(drawn_running=running)


def _start_lesson() -> None:
    """Run button callback (before the rerun, so the page redraws with Stop and locked sliders)."""
    from explorer import degradation
    from explorer.data import ENV_VAR, DataError
    from explorer.ui.train.data_source import cifar_dir, shared_cifar10

    ss = st.session_state
    lesson = ss.get(LESSON)
    if lesson is not None and lesson.active:  # a second click (or a second tab) never starts a second lesson
        return
    busy = session.busy_with(ss)
    if busy:  # the Train tab's training: one job per session
        ss[LESSON_ERROR] = busy[0].upper() + busy[1:] + "."
        return
    try:
        data = shared_cifar10(cifar_dir(str(ss.get(session.DATA_DIR, ""))), os.environ.get(ENV_VAR, ""))  # the Train tab's folder, if allowed
        ss[LESSON] = degradation.DegradationLesson(data, steps=int(ss.get(LESSON_STEPS, degradation.DEFAULT_STEPS)),
                                                   subset=int(ss.get(LESSON_SUBSET, degradation.DEFAULT_SUBSET)),
                                                   networks=degradation.NETWORKS,
                                                   max_seconds=guards.max_train_seconds()).start()
    except DataError as exc:
        ss[LESSON_ERROR] = f"**CIFAR-10 is not available.** {exc}"
        return
    except ConfigError as exc:
        ss[LESSON_ERROR] = f"**{exc.message[0].upper() + exc.message[1:]}.** {exc.hint[0].upper() + exc.hint[1:]}."
        return
    ss[LESSON_RECORDED] = set()


def _state_line(name: str, snap, steps: int) -> str:
    if snap is None:
        return f"**{name}**: waiting"
    if snap.status == "waiting":
        ahead = f" ({snap.queue_ahead} ahead)" if snap.queue_ahead else ""
        return f"**{name}**: waiting for a training slot{ahead}"
    speed = f" · {snap.images_per_second:,.0f} img/s" if snap.images_per_second else ""
    if snap.active:
        return f"**{name}**: {snap.phase or snap.status}, step {snap.steps:,} of {steps:,}{speed}"
    why = f" ({snap.error})" if snap.error and snap.status != "done" else ""
    return f"**{name}**: {snap.status}{why}, {snap.steps:,} steps{speed}"


def _degradation_live(drawn_running: bool = False) -> None:
    """The lesson's curves and results (a fragment). `drawn_running`: the page around it shows Stop, so once the
    lesson ends every tick asks for a full redraw until one registers this fragment with False."""
    from explorer.degradation import verdict
    from explorer.teaching_charts import degradation_figure

    lesson = st.session_state.get(LESSON)
    if lesson is None:
        return
    rows = lesson.poll()
    configs = dict(lesson.networks)
    series = [(name, configs[name].resolved_depth, configs[name].shortcut == "none", snap.batches)
              for name, snap in rows if snap is not None and snap.batches]
    st.plotly_chart(degradation_figure(series), width="stretch")
    st.markdown("  \n".join(_state_line(name, snap, lesson.steps) for name, snap in rows))
    results = lesson.results(rows)
    if results:
        st.markdown("**Final training error**, " + " · ".join(
            f"{r.name} **{r.train_error:.1%}**" + ("" if r.measured == "evaluation" else " (last steps)")
            for r in results))
        st.caption(f"Measured once on the {lesson.train_images:,} training images in inference mode, after "
                   f"{lesson.steps:,} steps each (a network stopped early: the mean over its last 10 % of steps). "
                   "The curves are the training batches as they went (random flips, training-mode BatchNorm), "
                   "smoothed.")
    if not lesson.active:
        for sentence in verdict(results):
            st.markdown(sentence)
        if lesson.wall_seconds is not None and results:
            st.caption(f"All four took {lesson.wall_seconds:.0f} s.")
    _record_lesson_runs(lesson)
    if not lesson.active and drawn_running:
        st.rerun()  # the whole page: the Run button and the sliders come back
    if not lesson.active and lesson.stop_reason:
        st.caption(f"The lesson {lesson.stop_reason}.")


def _record_lesson_runs(lesson) -> None:
    """Put the finished lesson runs into the Compare tab (once each); their evaluation was on the training images,
    so they carry no test accuracy."""
    from dataclasses import replace

    from explorer.training import RunRecord

    done = st.session_state.setdefault(LESSON_RECORDED, set())
    for job in lesson.finished_jobs():
        if id(job) not in done and job.status in ("done", "stopped") and job.batches:
            done.add(id(job))
            record = replace(RunRecord.from_job(job, name=f"lesson · {job.name}"), test_accuracy=None, test_loss=None)
            session.add_run(st.session_state, record)
