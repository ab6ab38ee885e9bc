"""The Train tab's controls: recipe, budget, images, batch, augmentation, the paper recipe's callbacks, ImageNet weights.

The settings are read back from the session state (`settings_from_state`), so a button callback sees them too.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from explorer import guards
from explorer.config import ResNetConfig
from explorer.data import ENV_VAR, DataError
from explorer.pretrained import WeightsError, base_preset, find_weights, where_to_put
from explorer.training import RECIPES, TrainSettings
from explorer.ui import session
from explorer.ui.train.data_source import folders_chosen, path_policy

# Widget keys.
RECIPE, BUDGET_KIND, SECONDS, EPOCHS = "train_recipe", "train_budget_kind", "train_seconds", "train_epochs"
SUBSET, BATCH, FLIP, CROP, DATA_DIR = "train_subset", "train_batch", "train_flip", "train_crop", session.DATA_DIR
MUON = "train_muon"  # recipes with Muon steps only
CB_EARLY, CB_PLATEAU, CB_BEST = "train_cb_early_stopping", "train_cb_plateau", "train_cb_best"  # paper recipe only
WEIGHTS_ON, WEIGHTS_FILE = "train_weights_on", "train_weights_file"  # resnet50v2/101v2/152v2 bodies only
SUBSETS = ("1,000", "2,500", "5,000", "10,000", "25,000", "all")
BATCH_SIZES = (32, 64, 128, 256, 512)


def on_recipe_change() -> None:
    """A new recipe brings its batch size and augmentation."""
    recipe = RECIPES[st.session_state[RECIPE]]
    st.session_state[BATCH] = recipe.batch_size
    st.session_state[FLIP] = recipe.flip
    st.session_state[CROP] = bool(recipe.crop)
    st.session_state[MUON] = recipe.muon_lr > 0


def seed_controls() -> None:
    """Give the controls their first values (the recipe's), right before they are drawn.

    Called only where the widgets follow in the same run: a value set in a run that does not draw its
    widget is dropped by Streamlit at the end of that run (the batch size then fell back to the select
    box's first option). `settings_from_state` falls back to the same recipe values.
    """
    st.session_state.setdefault(RECIPE, "short")
    st.session_state.setdefault(BATCH, RECIPES[st.session_state[RECIPE]].batch_size)
    st.session_state.setdefault(FLIP, RECIPES[st.session_state[RECIPE]].flip)
    st.session_state.setdefault(CROP, bool(RECIPES[st.session_state[RECIPE]].crop))
    st.session_state.setdefault(MUON, RECIPES[st.session_state[RECIPE]].muon_lr > 0)
    st.session_state.setdefault(DATA_DIR, "")
    st.session_state.setdefault(SECONDS, min(90, int(guards.max_train_seconds() or 3600)))
    st.session_state.setdefault(EPOCHS, 3)
    st.session_state.setdefault(SUBSET, "all")
    st.session_state.setdefault(CB_EARLY, 0)
    st.session_state.setdefault(CB_PLATEAU, 0)


def controls() -> tuple[TrainSettings, str]:
    """Draw the training controls; return the settings and the data directory typed in."""
    seed_controls()
    left, middle, right = st.columns([1.2, 1, 1])
    with left:
        recipe = st.radio("Recipe", list(RECIPES), key=RECIPE, horizontal=True, on_change=on_recipe_change,
                          format_func=lambda name: RECIPES[name].label)
        st.caption(RECIPES[recipe].description)
    with middle:
        kind = st.radio("Budget", ("seconds", "epochs"), key=BUDGET_KIND, horizontal=True,
                        help="Seconds: the whole wait from Train to the test accuracy on screen — starting, "
                             "training, BatchNorm statistics and the test set all come out of it; the learning-rate "
                             "schedule follows the clock. Epochs: a fixed amount of training (the wait is reported).")
        if kind == "seconds":
            limit = int(guards.max_train_seconds() or 3600)
            st.number_input("Seconds, Train → result", min_value=5, max_value=limit, step=15, key=SECONDS,
                            help=f"At most {limit:,} s per training on this server. Under ~20 s little time is "
                                 "left for training once the network is compiled and the test set evaluated.")
        else:
            st.number_input("Epochs", min_value=1, max_value=500, step=1, key=EPOCHS)
        st.select_slider("Training images", SUBSETS, key=SUBSET,
                                  help="A class-balanced subset of the 50,000 (10 % of it is held out for validation).")
    with right:
        st.selectbox("Batch size", BATCH_SIZES, key=BATCH)
        st.checkbox("Random flips", key=FLIP)
        st.checkbox("Random 4-pixel shifts", key=CROP)
        if RECIPES[recipe].muon_lr:
            st.checkbox("Muon steps", key=MUON,
                        help="The convolutions into a BatchNorm step along their orthogonalised momentum (about "
                             "+5 points at 480 steps here); off: plain SGD for every weight, as in the papers.")
        data_dir = "" if folders_chosen() else st.text_input(
            "CIFAR-10 directory", key=DATA_DIR, placeholder=f"(empty: {ENV_VAR} or the Keras cache)",
            help="A folder holding cifar-10-batches-bin/, cifar-10-batches-py/ or the official .tar.gz")
    if recipe == "paper":
        _callback_controls()
    return settings_from_state(), data_dir.strip()


def _callback_controls() -> None:
    """Early stopping, LR on plateau and the best-epoch checkpoint (epoch by epoch: options of the paper recipe)."""
    with st.expander("Callbacks (paper recipe)", expanded=False, icon=":material/tune:"):
        st.caption("Each watches the validation loss after every epoch (the training loss when nothing is held out).")
        c1, c2, c3 = st.columns(3)
        c1.number_input("Early stopping: patience (epochs, 0 = off)", min_value=0, max_value=100, step=1,
                        key=CB_EARLY, help="Stop when the loss has not improved for this many epochs.")
        c2.number_input("LR ÷10 on a plateau: patience (epochs, 0 = off)", min_value=0, max_value=100, step=1,
                        key=CB_PLATEAU, help="Replaces the step decay: the LR stays at its peak and drops ÷10 when the "
                        "loss has not improved for this many epochs (down to 1e-4 × the peak).")
        c3.checkbox("Keep the best epoch's weights", key=CB_BEST,
                    help="Restore the weights of the epoch with the lowest loss before the test evaluation.")


def settings_from_state() -> TrainSettings:
    """The settings the controls hold (read from the session state, so a button callback sees them too)."""
    state = st.session_state
    by_time = state.get(BUDGET_KIND, "seconds") == "seconds"
    subset = state.get(SUBSET, "all")
    recipe = RECIPES[state.get(RECIPE, "short")]  # what the controls start from before they are first drawn
    return TrainSettings(
        recipe=state.get(RECIPE, "short"),
        seconds=float(state.get(SECONDS, 90)) if by_time else None,
        epochs=None if by_time else int(state.get(EPOCHS, 3)),
        subset=None if subset == "all" else int(str(subset).replace(",", "")),
        batch_size=int(state.get(BATCH, recipe.batch_size)), flip=bool(state.get(FLIP, recipe.flip)),
        crop=4 if state.get(CROP, bool(recipe.crop)) else 0,
        muon=bool(state.get(MUON, True)) if recipe.muon_lr else None,
        **_callback_settings(state),
    )


def _callback_settings(state: Any) -> dict:
    """The paper recipe's callback options the controls hold (none under the short recipe)."""
    if state.get(RECIPE, "short") != "paper":
        return {}
    early, plateau = int(state.get(CB_EARLY) or 0), int(state.get(CB_PLATEAU) or 0)
    return {"early_stopping": early or None, "reduce_lr_on_plateau": plateau or None,
            "checkpoint_best": bool(state.get(CB_BEST, False))}


def weights_choice(config: ResNetConfig) -> str | None:
    """The settings' `weights`: None (random), "imagenet" (the Keras cache or a download) or the file typed in.

    Raises:
        DataError: A file this page may not name (see `explorer.serverpaths`).
    """
    state = st.session_state
    if base_preset(config) is None or not state.get(WEIGHTS_ON):
        return None
    typed = str(state.get(WEIGHTS_FILE, "")).strip()
    return str(_weights_path(typed)) if typed else "imagenet"


def _weights_path(typed: str) -> Any:
    return path_policy().check(typed, what="weights file", hint="Leave it empty to use the server's Keras cache.")


def weights_section(config: ResNetConfig) -> None:
    """For a resnet50v2/101v2/152v2 body: start from ImageNet weights, from a file or the Keras cache (or a download).

    Says whether the weights are found and, when not, where to put the file (no traceback).
    """
    preset = base_preset(config)
    if preset is None:
        return
    st.checkbox("Start from ImageNet weights", key=WEIGHTS_ON,
                help=f"keras.applications' ImageNet weights of {preset}, copied layer by layer into this network; "
                     "a head for other classes starts new. Set *Freeze (fine-tuning)* in the sidebar to keep the body fixed.")
    if not st.session_state.get(WEIGHTS_ON):
        return
    typed = st.text_input("Weights file", key=WEIGHTS_FILE,
                          placeholder="~/.keras/models/… (empty: the Keras cache or a download)",
                          help="A keras.applications weights file (.h5, with or without the classifier).").strip()
    if config.freeze:
        body = "the whole body — only the head trains" if config.freeze == config.stages else f"stem + stage 1–{config.freeze}"
        st.caption(f":material/ac_unit: Frozen: {body}.")
    else:
        st.caption("Nothing frozen: every layer trains from the ImageNet start (set *Freeze (fine-tuning)* in the "
                   "sidebar to train only the head).")
    try:
        checked = str(_weights_path(typed)) if typed else None
    except DataError as exc:
        st.warning(str(exc)[0].upper() + str(exc)[1:], icon=":material/file_present:")
        return
    try:
        path = find_weights(preset, weights=checked, include_top=config.classes == 1000, either=True)
    except WeightsError as exc:
        st.warning(f"**{exc.message[0].upper() + exc.message[1:]}.** {exc.hint[0].upper() + exc.hint[1:]}.",
                   icon=":material/file_present:")
        return
    if path is None:
        st.info(f"No ImageNet weights for {preset} on this server yet: **Train** will try to download them through "
                f"Keras (about 100 MB). Offline? {where_to_put(preset)[0].upper() + where_to_put(preset)[1:]}.",
                icon=":material/cloud_download:")
    else:
        size = path.stat().st_size / 2**20
        st.caption(f"Weights found: `{path}` ({size:,.1f} MB). ImageNet was trained on inputs scaled to [-1, 1]; "
                   "this pipeline standardises per channel, which fine-tuning absorbs.")
