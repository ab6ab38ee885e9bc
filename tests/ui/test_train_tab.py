"""AppTest of the Train and Compare tabs on a small page: train on the fixture, see progress, curves, evaluation; errors as messages."""

from __future__ import annotations

import json

import pytest

from tests.helpers import job_of, page, set_budget, texts, train_until_done, write_layout


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar-tab")
    write_layout(root, "python", n_per_class=20)
    return root


@pytest.fixture
def app(fixture_dir, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(fixture_dir))
    at = page().run()
    assert not at.exception
    return at


def test_train_on_fixture_shows_progress_curves_and_evaluation(app):
    assert "Data: Python layout" in texts(app) and "(from CIFAR10_DIR)" in texts(app)
    set_budget(app, epochs=2)
    job, seen_progress = train_until_done(app)
    assert job.status == "done", job.error
    assert seen_progress
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Test accuracy"].endswith("%")
    charts = app.get("plotly_chart")
    assert len(charts) >= 3  # live curves, confusion matrix, per-class accuracy
    assert any("confusion matrix" in json.dumps(json.loads(c.proto.spec)) for c in charts)
    assert app.button(key="train_start").disabled is False
    # the Compare tab lists the finished run
    frame = app.dataframe[0].value
    assert len(frame) == 1 and frame["run"][0].startswith("resnet-8")


def test_stop_button_stops_the_run(app):
    set_budget(app, epochs=400)
    app.button(key="train_start").click().run()
    job = job_of(app)
    assert app.button(key="train_start").disabled is True
    app.button(key="train_stop").click().run()
    assert job.join(10) and job.status == "stopped"
    app.run()
    assert not app.exception
    assert "Stopped" in texts(app)


def test_missing_data_is_an_error_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    at = page().run()
    at.text_input(key="train_data_dir").input(str(tmp_path / "nowhere")).run()
    assert "does not exist" in texts(at)
    at.button(key="train_start").click().run()
    assert not at.exception
    assert "cifar-10-binary.tar.gz" in "\n".join(e.value for e in at.error)
    assert "_train_job" not in at.session_state
    assert not hint(at)  # the error alone, not beside "Choose a budget and press Train"


def test_data_that_cannot_be_read_is_one_message(monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", "/nowhere/cifar")
    at = page().run()
    assert not at.exception
    assert "does not exist" in "\n".join(e.value for e in at.error) and not hint(at)
    monkeypatch.delenv("CIFAR10_DIR")
    at.run()
    assert hint(at)


def hint(at) -> list[str]:
    """The Train tab's blue hint, if shown."""
    return [i.value for i in at.info if "Choose a budget and press" in i.value]


def test_imagenet_config_offers_to_adapt(fixture_dir, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(fixture_dir))
    at = page({"depth": 8, "filters": 4, "input_shape": [64, 64, 3], "classes": 100}).run()
    assert not at.exception
    assert "CIFAR-10 needs a 32×32×3 input and 10 classes" in texts(at)
    assert not at.button  # no Train button until adapted
    at.toggle(key="train_adapt").set_value(True).run()
    assert at.button(key="train_start")


def test_network_with_errors_cannot_be_trained(monkeypatch):
    at = page({"depth": 8, "filters": 4, "shortcut": "identity"}).run()
    assert not at.exception
    assert "cannot be trained" in "\n".join(e.value for e in at.error)


def test_stop_while_waiting_for_a_slot_says_stopped(app):
    from explorer import training

    set_budget(app, epochs=400)
    assert training.SLOTS.acquire(timeout=30)  # another session's training holds the only slot
    try:
        app.button(key="train_start").click().run()
        job = job_of(app)
        assert job.status == "waiting"
        assert "Waiting for a slot" in texts(app)
        app.button(key="train_stop").click().run()
        assert job.join(10) and job.status == "stopped"
    finally:
        training.SLOTS.release()
    for _ in range(3):  # the page settles: Train enabled again, Stop disabled, the status said
        app.run()
    assert not app.exception
    assert "Stopped" in texts(app)
    assert app.button(key="train_start").disabled is False and app.button(key="train_stop").disabled is True
