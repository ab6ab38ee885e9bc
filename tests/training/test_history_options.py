"""Paper-recipe options: early stopping, LR on plateau, best-epoch checkpoint; saved history (CSV, HTML, models); CLI --out."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from explorer import training as T
from explorer.config import ConfigError
from tests.helpers import TINY

HUGE_LR = 1e30  # the weights overflow within a few batches: every later loss is NaN, so it never improves


@dataclass(frozen=True, kw_only=True)
class DivergesLater(T.Recipe):
    """The paper recipe at LR 0.05 for the first `good` of the budget, then an LR that makes it diverge."""

    good: float = 0.25

    def lr_at(self, progress: float) -> float:
        return 0.05 if progress < self.good else HUGE_LR




def paper(monkeypatch, **recipe_fields) -> None:
    """Replace the paper recipe while `monkeypatch` lasts (the options are checked against the name "paper")."""
    base = vars(T.RECIPES["paper"])
    recipe = DivergesLater(**{**base, **recipe_fields}) if "good" in recipe_fields else T.Recipe(**{**base, **recipe_fields})
    monkeypatch.setitem(T.RECIPES, "paper", recipe)


def run(data, **settings) -> T.TrainJob:
    base = dict(recipe="paper", batch_size=50, val_split=0.2)
    job = T.TrainJob(TINY, data, T.TrainSettings(**{**base, **settings}), idle_timeout=None,
                     slots=threading.Semaphore(1)).start()
    assert job.join(120)
    assert job.status == "done", job.error
    return job


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("kw", "field", "says"), [
    (dict(early_stopping=3), "early_stopping", "paper recipe"),
    (dict(reduce_lr_on_plateau=2), "reduce_lr_on_plateau", "paper recipe"),
    (dict(checkpoint_best=True), "checkpoint_best", "paper recipe"),
    (dict(recipe="paper", early_stopping=0), "early_stopping", "1 to 1000"),
    (dict(recipe="paper", early_stopping=True), "early_stopping", "whole number"),
    (dict(recipe="paper", reduce_lr_on_plateau=2.5), "reduce_lr_on_plateau", "whole number"),
    (dict(recipe="paper", checkpoint_best="yes"), "checkpoint_best", "true or false"),
])
def test_options_are_validated(kw, field, says):
    with pytest.raises(ConfigError) as raised:
        T.TrainSettings(**kw)
    assert raised.value.field == field and says in raised.value.message and raised.value.hint
    if "recipe" not in kw:
        assert "--recipe paper" in raised.value.hint


def test_options_are_accepted_under_the_paper_recipe():
    s = T.TrainSettings(recipe="paper", epochs=3, early_stopping=2, reduce_lr_on_plateau=1, checkpoint_best=True)
    assert s.resolved().early_stopping == 2 and s.callbacks_on
    assert not T.TrainSettings().callbacks_on


# --------------------------------------------------------------------------- tiny trainings
@pytest.fixture(scope="module")
def early_stopped(data):
    with pytest.MonkeyPatch.context() as monkeypatch:
        paper(monkeypatch, good=0.25)  # epoch 1 of 4 learns; from epoch 2 on it diverges (val loss NaN)
        return run(data, epochs=4, early_stopping=2, checkpoint_best=True)


def test_early_stopping_and_checkpoint_restore_the_best_epoch(early_stopped):
    job = early_stopped
    epochs = job.poll().epochs
    assert [e["epoch"] for e in epochs] == [1, 2, 3]  # stopped before the budget of 4
    assert job.stop_reason == "early stopping: val_loss did not improve for 2 epochs"
    assert [e["best"] for e in epochs] == [True, False, False] and job.best_epoch == 1
    assert epochs[0]["val_loss"] is not None and epochs[1]["val_loss"] is None  # diverged after epoch 1
    # the model holds epoch 1's weights again (BN statistics are then recomputed for them)
    assert job.restored_best and job.best_weights is not None
    for variable, saved in zip(job.model.weights, job.best_weights, strict=True):
        if variable.trainable:
            np.testing.assert_array_equal(variable.numpy(), saved)
    ev = job.evaluation
    assert ev is not None and math.isfinite(ev.test_loss) and ev.test_accuracy > 0.0
    result = job.result()
    assert result["best_epoch"] == 1 and result["monitor"] == "val_loss" and result["restored_best"]
    assert result["settings"]["early_stopping"] == 2
    json.dumps(result)


def test_plateau_lowers_the_lr_epoch_by_epoch(data, monkeypatch):
    paper(monkeypatch, peak_lr=HUGE_LR)  # never improves: every epoch is a plateau of 1
    job = run(data, epochs=3, reduce_lr_on_plateau=1, val_split=0.0, evaluate=False)
    epochs = job.poll().epochs
    assert job.monitor == "loss"  # no validation split: the training loss is watched
    lrs = [e["lr"] for e in epochs]
    assert lrs == pytest.approx([HUGE_LR, HUGE_LR * 0.1, HUGE_LR * 0.01])  # the step schedule's drops are off
    assert [e["lr_reduced_to"] for e in epochs[:2]] == pytest.approx([HUGE_LR * 0.1, HUGE_LR * 0.01])
    assert epochs[-1]["lr_reduced_to"] is None  # (no drop after the last epoch)
    assert job.stop_reason is None and job.best_epoch is None


# --------------------------------------------------------------------------- Train tab
def test_train_tab_offers_the_callbacks_under_the_paper_recipe_and_says_which_epoch(early_stopped):
    from tests.helpers import page

    at = page().run()
    assert not at.exception
    assert not any(e.label == "Callbacks (paper recipe)" for e in at.expander)
    at.radio(key="train_recipe").set_value("paper").run()
    assert any(e.label == "Callbacks (paper recipe)" for e in at.expander)
    at.number_input(key="train_cb_early_stopping").set_value(3)
    at.checkbox(key="train_cb_best").check().run()
    from explorer.ui.train import _callback_settings

    state = {k: at.session_state[k] for k in ("train_recipe", "train_cb_early_stopping", "train_cb_plateau", "train_cb_best")}
    assert _callback_settings(state) == {"early_stopping": 3, "reduce_lr_on_plateau": None, "checkpoint_best": True}
    assert _callback_settings({**state, "train_recipe": "short"}) == {}
    at.session_state["_train_job"] = early_stopped  # a finished run: its evaluation, notes and downloads
    at.run()
    assert not at.exception
    shown = "\n".join(str(c.value) for c in at.caption)
    assert "weights of **epoch 1**" in shown and "early stopping: val_loss did not improve" in shown
    labels = [b.label for b in at.get("download_button")]
    assert "History (CSV)" in labels and "History plot (HTML)" in labels


# --------------------------------------------------------------------------- saved history and the CLI
def test_save_history_from_a_result_dict(tmp_path):
    result = {"name": "run", "best_epoch": 2, "history": {
        "batches": [{"step": 1, "epoch": 0.5, "loss": 2.25, "accuracy": 0.125}],
        "epochs": [{"epoch": 1, "fraction": 1.0, "loss": 2.0, "accuracy": 0.2, "val_loss": 1.875, "val_accuracy": 0.25,
                    "best": False, "lr_reduced_to": None},
                   {"epoch": 2, "fraction": 1.0, "loss": 1.5, "accuracy": 0.3, "val_loss": 1.625, "val_accuracy": 0.375,
                    "best": True, "lr_reduced_to": 0.01}]}}
    paths = T.save_history(result, tmp_path / "out")
    names = [p.name for p in paths]
    assert names[:2] == ["history.csv", "history.html"] and "model.keras" not in names
    csv = (tmp_path / "out" / "history.csv").read_text()
    assert csv.startswith("kind,") and "1.625" in csv
    html = (tmp_path / "out" / "history.html").read_text()
    assert "1.625" in html and "validation (epoch)" in html and "best (epoch 2)" in html
    assert "<script src=\"http" not in html  # plotly.js is inlined: it opens offline


def test_cli_out_writes_history_and_models(fixture_dir, tmp_path, capsys):
    from explorer.cli import main

    out_dir = tmp_path / "run"
    code = main(["train", "--depth", "8", "--filters", "4", "--data-dir", str(fixture_dir), "--recipe", "paper",
                 "--epochs", "2", "--batch-size", "50", "--checkpoint-best", "--early-stopping", "5",
                 "--reduce-lr-on-plateau", "3", "--out", str(out_dir), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["best_epoch"] in (1, 2)
    names = {p.rsplit("/", 1)[-1] for p in result["files"]}
    assert {"history.csv", "history.html", "model.keras", "best.keras"} <= names
    for path in result["files"]:
        assert (out_dir / path.rsplit("/", 1)[-1]).is_file() and path in err  # paths printed on stderr
    assert (out_dir / "model.keras").read_bytes()[:2] == b"PK"
    assert "best" in (out_dir / "history.csv").read_text().splitlines()[0]
    code = main(["train", "--depth", "8", "--data-dir", str(fixture_dir), "--epochs", "1", "--early-stopping", "2"])
    _, err = capsys.readouterr()
    assert code == 2 and "--recipe paper" in err
