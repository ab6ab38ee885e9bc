"""TrainJob on a tiny fixture written in the real binary layout: history, stop, idle stop, one job per session, slot cap, CLI."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from explorer import training as T
from explorer.config import ConfigError, ResNetConfig
from tests.helpers import TINY, long_settings, training, wait_for


def test_one_epoch_fills_history_and_evaluates(data):
    settings = T.TrainSettings(epochs=1, batch_size=50, val_split=0.2)
    job = T.TrainJob(TINY, data, settings, slots=threading.Semaphore(1)).start()
    assert job.join(120)
    snap = job.poll()
    assert snap.status == "done", snap.error
    assert snap.progress == pytest.approx(1.0)
    assert snap.steps == 16  # 800 training images / 50
    assert snap.batches and snap.batches[0]["step"] == 1
    for key in ("loss", "accuracy", "lr", "images_per_second", "epoch", "seconds"):
        assert key in snap.batches[-1]
    assert all(np.isfinite(b["loss"]) for b in snap.batches)
    assert [e["epoch"] for e in snap.epochs] == [1]
    epoch = snap.epochs[0]
    assert epoch["complete"] and epoch["val_accuracy"] is not None and epoch["loss"] is not None
    ev = snap.evaluation
    assert ev.test_images == 200 and ev.confusion.sum() == 200 and len(ev.per_class_accuracy) == 10
    assert ev.tta  # the short recipe averages each test image over its views (mirror, shifts)
    result = job.result()
    json.dumps(result)  # the CLI's --json object
    assert result["epochs_completed"] == 1 and result["test_images"] == 200
    assert result["train_images_per_second"] > 0
    assert job.model_bytes()[:2] == b"PK"  # a .keras file is a zip
    from explorer.training.loop import MuonSGD

    assert isinstance(job.model.optimizer, MuonSGD) and job.model.optimizer.muon  # the short recipe's Muon steps


def test_the_training_step_is_traced_once(data, monkeypatch):
    # Optimizer slots created inside the first step make tf.function trace it a second time (seconds of the
    # budget on a CPU); the job builds them beforehand.
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    original = TensorFlowTrainer.train_step

    def counting(self, batch):
        traces.append(1)
        return original(self, batch)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counting)
    job = T.TrainJob(TINY, data, T.TrainSettings(epochs=1, batch_size=50, val_split=0.0, evaluate=False),
                     slots=threading.Semaphore(1)).start()
    assert job.join(120)
    assert job.poll().status == "done", job.poll().error
    assert job.poll().steps == 20
    assert len(traces) == 1


def test_a_seconds_budget_is_wall_time_from_the_press_to_the_result(data):
    budget = 10.0
    job = T.TrainJob(TINY, data, T.TrainSettings(seconds=budget, batch_size=50, val_split=0.1),
                     slots=threading.Semaphore(1)).start()
    assert job.join(90)
    snap, r = job.poll(), job.result()
    assert snap.status == "done" and r["test_images"] == 200
    parts = r["timings"]
    assert list(parts)[:2] == ["starting", "waiting"] and list(parts)[-1] == "hand-back"
    for part in ("data", "model", "first batch", "training", "evaluating"):
        assert part in parts, part
    assert ("bn" in parts) == (r["bn_recalibration_seconds"] > 0)  # (BN statistics only when the budget has room)
    assert set(parts) <= set(T.PARTS)
    # every second from the press to the end is in exactly one part
    assert sum(parts.values()) == pytest.approx(r["wall_seconds"], abs=0.01)
    assert r["wall_seconds"] == pytest.approx(job.state.part_since - job.state.pressed, abs=0.01)
    # the training stopped when what follows it, as estimated from its own speed, just fitted in the budget ...
    assert r["reserved_seconds"] > 0
    assert r["budget_stop_seconds"] + r["reserved_seconds"] == pytest.approx(budget, abs=0.5)
    after = sum(v for k, v in parts.items() if k in ("bn", "evaluating", "hand-back"))
    assert after == pytest.approx(r["wall_seconds"] - r["budget_stop_seconds"], abs=0.5)  # (what came after the stop)
    assert after > 0
    # ... so the result came within the budget, give or take the estimate's error (small for this tiny network)
    assert r["wall_seconds"] <= budget + 3.0
    assert r["test_views"] == job.state.views and r["test_view_names"][0] == "image"  # (200 images: cheap views)
    peak = T.RECIPES["short"].peak_lr
    assert snap.batches[-1]["lr"] < 0.3 * peak  # the one-cycle schedule ran down with the clock


def test_test_time_views_are_chosen_by_what_they_cost_in_the_budget():
    from explorer.training.loop import after_training, choose_views

    # at 500 training img/s a view of 10,000 test images costs ~6.7 s: the budget's tenth pays for 1, 2 or 4 views
    assert [choose_views(b, 500.0, n_test=10_000, tta=True) for b in (30, 90, 180, 300)] == [1, 1, 2, 4]
    assert choose_views(30, 500.0, n_test=10_000, tta=False) == 1
    assert choose_views(None, 500.0, n_test=10_000, tta=True) == 4  # (a budget in epochs or steps: all views)
    one, four = (after_training(500.0, views=v, test_images=10_000, bn_images=1024) for v in (1, 4))
    assert 0 < one < four and after_training(1000.0, views=1, test_images=10_000, bn_images=1024) < one


def test_a_steps_budget_trains_exactly_that_many_steps_across_epochs(data):
    # 800 training images / 50 = 16 steps an epoch: 20 steps end a quarter into the second epoch
    job = T.TrainJob(TINY, data, T.TrainSettings(steps=20, batch_size=50, val_split=0.2, evaluate=False),
                     slots=threading.Semaphore(1)).start()
    assert job.join(60)
    snap = job.poll()
    assert snap.status == "done" and snap.steps == 20 and snap.progress == pytest.approx(1.0)
    assert snap.batches[-1]["step"] == 20 and snap.epoch == pytest.approx(1.25)
    assert snap.batches[-1]["lr"] < 0.1 * T.RECIPES["short"].peak_lr  # the one-cycle schedule ran down with the steps


def test_stop_takes_effect_within_two_seconds(data):
    job = T.TrainJob(TINY, data, long_settings(), slots=threading.Semaphore(1)).start()
    wait_for(lambda: training(job))
    asked = time.monotonic()
    job.stop()
    assert job.poll().status in ("stopping", "stopped")
    assert job.join(10)
    assert time.monotonic() - asked < 2.0
    snap = job.poll()
    assert snap.status == "stopped" and snap.error == "stopped by the user"
    assert snap.evaluation is None


def test_unpolled_job_stops_itself(data):
    job = T.TrainJob(TINY, data, long_settings(), idle_timeout=1.0, slots=threading.Semaphore(1)).start()
    assert job.join(30)
    assert job.status == "stopped"
    assert "nobody watched it" in job.stop_reason


def test_second_job_in_a_session_is_refused(data):
    first = T.start_job(None, TINY, data, long_settings(), slots=threading.Semaphore(2))
    try:
        with pytest.raises(T.JobBusy, match="already running"):
            T.start_job(first, TINY, data, long_settings())
    finally:
        first.stop()
        assert first.join(10)
    again = T.start_job(first, TINY, data, long_settings(), slots=threading.Semaphore(1))  # allowed once it ended
    again.stop()
    assert again.join(10)


def test_slot_cap_makes_the_second_job_wait(data):
    slots = threading.BoundedSemaphore(1)
    first = T.TrainJob(TINY, data, long_settings(), slots=slots).start()
    second = T.TrainJob(TINY, data, long_settings(), slots=slots).start()
    try:
        wait_for(lambda: training(first))
        snap = second.poll()
        assert snap.status == "waiting" and snap.phase == "waiting for a slot"
        first.stop()
        wait_for(lambda: second.poll().status == "running", timeout=30)
    finally:
        first.stop()
        second.stop()
        assert first.join(10) and second.join(10)
    # a waiting job can be stopped too
    blocker = T.TrainJob(TINY, data, long_settings(), slots=slots).start()
    waiting = T.TrainJob(TINY, data, long_settings(), slots=slots).start()
    wait_for(lambda: blocker.poll().status == "running")
    waiting.stop()
    assert waiting.join(5) and waiting.status == "stopped"
    blocker.stop()
    assert blocker.join(10)


def test_network_with_diagnostics_fails_with_a_message(data):
    broken = ResNetConfig(depth=8, filters=4, shortcut="identity")  # identity cannot change width
    job = T.TrainJob(broken, data, T.TrainSettings(epochs=1, batch_size=50), slots=threading.Semaphore(1)).start()
    assert job.join(30)
    assert job.status == "failed"
    assert "does not fit together" in job.error and "Traceback" not in job.error


def test_imagenet_config_is_refused_and_can_be_adapted(data):
    big = ResNetConfig(version=2, block="bottleneck", depth=50, stages=4, filters=64, input_shape=(224, 224, 3), classes=1000)
    message = T.cifar_mismatch(big)
    assert "32×32×3" in message and "10 classes" in message and "1000 classes" in message
    with pytest.raises(ConfigError, match="Adapt"):
        T.TrainJob(big, data)
    adapted = T.adapt_for_cifar(big)
    assert adapted.input_shape == (32, 32, 3) and adapted.classes == 10 and T.cifar_mismatch(adapted) is None


# --------------------------------------------------------------------------- pure parts
def test_schedules():
    short, paper = T.RECIPES["short"], T.RECIPES["paper"]
    assert short.lr_at(0.0) < short.lr_at(short.warmup) == pytest.approx(short.peak_lr)
    assert short.lr_at(1.0) == 0.0
    assert short.lr_at(0.6) > short.lr_at(0.8)
    assert paper.lr_at(0.1) == pytest.approx(0.1)
    assert paper.lr_at(0.6) == pytest.approx(0.01)
    assert paper.lr_at(0.9) == pytest.approx(0.001)


def test_settings_resolve_and_validate():
    s = T.TrainSettings().resolved()
    assert s.seconds == T.RECIPES["short"].seconds and s.epochs is None and s.batch_size == 64 and s.tta
    p = T.TrainSettings(recipe="paper").resolved()
    assert p.epochs == 182 and p.crop == 4 and p.batch_size == 128
    assert T.TrainSettings(epochs=3).budget_text() == "3 epochs"
    assert T.TrainSettings(steps=480).budget_text() == "480 steps" and T.TrainSettings(steps=480).resolved().seconds is None
    for bad in (dict(epochs=1, seconds=5.0), dict(steps=10, seconds=5.0), dict(steps=0), dict(steps=2.5), dict(epochs=0), dict(seconds=-1.0), dict(recipe="adam"), dict(subset=5),
                dict(batch_size=0), dict(precision="int8")):
        with pytest.raises(ConfigError):
            T.TrainSettings(**bad)


def test_evaluate_predictions():
    labels = np.array([0, 1, 2, 2])
    probs = np.full((4, 10), 0.01)
    probs[[0, 1, 2, 3], [0, 1, 2, 5]] = 0.91
    ev = T.evaluate_predictions(probs, labels)
    assert ev.test_accuracy == 0.75
    assert ev.confusion[2, 5] == 1 and ev.confusion.sum() == 4
    assert ev.per_class_accuracy[2] == 0.5 and np.isnan(ev.per_class_accuracy[3])
    assert ev.test_loss == pytest.approx(-(3 * np.log(0.91) + np.log(0.01)) / 4)


def test_mixed_precision_clone_keeps_the_network():
    model = T.build_training_model(TINY, precision="mixed_bfloat16")
    ref = T.build_training_model(TINY)
    assert [layer.name for layer in model.layers] == [layer.name for layer in ref.layers]
    assert model.count_params() == ref.count_params()
    assert model.layers[-1].dtype_policy.name == "float32"  # softmax and loss stay exact
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16"


def test_l2_is_added_to_kernel_gradients_only():
    import keras

    opt = T.make_optimizer(T.RECIPES["paper"])
    kernel = keras.Variable(np.ones((2,), np.float32), name="kernel")
    gamma = keras.Variable(np.ones((2,), np.float32), name="gamma")
    opt.learning_rate = 1.0
    opt.apply([np.zeros(2, np.float32), np.zeros(2, np.float32)], [kernel, gamma])
    assert np.allclose(kernel.numpy(), 1 - 1e-4) and np.allclose(gamma.numpy(), 1.0)


def test_muon_is_the_short_recipes_choice_and_can_be_turned_off():
    assert T.TrainSettings().resolved().muon is True
    assert T.TrainSettings(recipe="paper").resolved().muon is False
    assert T.TrainSettings(muon=False).resolved().muon is False
    with pytest.raises(ConfigError, match="plain SGD"):
        T.TrainSettings(recipe="paper", muon=True)


def test_newton_schulz_pushes_every_singular_value_towards_one():
    from explorer.training.loop import newton_schulz

    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(144, 32)))
    v, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    g = (u * np.geomspace(0.5, 10.0, 32)) @ v.T  # singular values spread over a factor of 20
    out = np.asarray(newton_schulz(g.astype(np.float32)))
    sv = np.linalg.svd(out, compute_uv=False)
    assert out.shape == (144, 32)
    assert sv.min() > 0.5 and sv.max() < 1.3, sv
    assert np.linalg.svd(np.asarray(newton_schulz(g.T.astype(np.float32))), compute_uv=False).max() < 1.3  # (wide too)


def test_muon_steps_go_to_the_convolutions_into_batchnorm_after_the_first():
    from explorer.training.loop import muon_kernels

    v1 = muon_kernels(T.build_training_model(ResNetConfig(depth=20)))
    assert len(v1) == 18 and "stem_conv/kernel" not in v1 and all(p.endswith("/kernel") for p in v1)
    # pre-activation: a block's last convolution feeds the addition, whose scale matters: plain SGD there
    v2 = muon_kernels(T.build_training_model(ResNetConfig(version=2, depth=20)))
    model = T.build_training_model(ResNetConfig(version=2, depth=20))
    into_add = [layer.kernel.path for layer in model.layers if layer.name.endswith("conv2")]
    assert into_add and not set(into_add) & set(v2) and any(p.endswith("conv1/kernel") for p in v2)
    assert muon_kernels(T.build_training_model(ResNetConfig(depth=20, batch_norm=False))) == ()


def test_a_muon_step_keeps_the_kernel_norm_and_moves_it_by_an_orthogonalised_step():
    import keras

    from explorer.training.loop import MuonSGD

    rng = np.random.default_rng(1)
    kernel = keras.Variable(rng.normal(size=(3, 3, 4, 8)).astype(np.float32), name="kernel")
    bias = keras.Variable(np.ones((8,), np.float32), name="bias")
    opt = MuonSGD(learning_rate=0.5, momentum=0.9, nesterov=True, muon=(kernel.path,), muon_lr=0.05, base_lr=0.5)
    before = kernel.numpy() * np.sqrt(8) / np.linalg.norm(kernel.numpy())
    g = rng.normal(size=(3, 3, 4, 8)).astype(np.float32)
    opt.apply([g, np.ones(8, np.float32)], [kernel, bias])
    step = (before - kernel.numpy()).reshape(36, 8) / 0.05  # this lr × muon_lr / base_lr
    sv = np.linalg.svd(step, compute_uv=False)
    assert sv.min() > 0.5 and sv.max() < 1.3, sv  # an orthogonalised step, whatever the gradient's scale
    assert np.linalg.norm(kernel.numpy()) == pytest.approx(np.sqrt(8), rel=0.15)
    assert np.allclose(bias.numpy(), 1 - 0.5 * (1 + 0.9))  # the rest: Nesterov SGD


def test_history_csv():
    text = T.history_csv([{"step": 1, "loss": 2.0}], [{"epoch": 1, "loss": 1.5, "val_loss": 1.6}])
    lines = text.strip().splitlines()
    assert lines[0].startswith("kind,") and lines[1].startswith("batch,") and lines[2].startswith("epoch,")


# --------------------------------------------------------------------------- CLI
def test_cli_train_json(fixture_dir, capsys):
    from explorer.cli import main

    code = main(["train", "--depth", "8", "--filters", "4", "--data-dir", str(fixture_dir), "--epochs", "1",
                 "--batch-size", "50", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("test_accuracy", "test_loss", "test_images", "train_images_per_second", "train_seconds",
                "epochs_completed", "history"):
        assert key in result
    assert result["test_images"] == 200 and result["epochs_completed"] == 1
    assert result["history"]["epochs"] and result["history"]["batches"]
    assert "epoch" in err  # progress lines go to stderr


def test_cli_train_missing_data_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from explorer.cli import main

    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    code = main(["train", "--preset", "resnet20", "--data-dir", str(tmp_path / "missing"), "--epochs", "1"])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "does not exist" in err and "cifar-10-binary.tar.gz" in err


def test_cli_train_bad_input_exit_2(fixture_dir, capsys):
    from explorer.cli import main

    code = main(["train", "--preset", "resnet50v2", "--data-dir", str(fixture_dir), "--epochs", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and "--adapt" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--depth", "8", "--data-dir", str(fixture_dir), "--epochs", "1", "--seconds", "5"])
    _, err = capsys.readouterr()
    assert stopped.value.code == 2 and "not allowed with" in err


def test_recalibrate_batchnorm_sets_exact_statistics():
    import keras
    import tensorflow as tf

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(40, 4)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x)).batch(10)
    assert T.recalibrate_batchnorm(model, ds, batches=4) == 4
    bn = model.get_layer("bn")
    assert np.allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=1e-5)  # the average of the four batch means
    assert bn.momentum == 0.99  # restored
    with T.bn_momentum(model, 0.9):
        assert bn.momentum == 0.9
    assert bn.momentum == 0.99


def test_fused_batchnorm_computes_what_keras_does_and_saves_plain_keras(tmp_path):
    """The fused training kernel: same outputs, gradients and moving statistics as Keras' own BN, a plain
    `.keras` file, and the same outputs in inference (its fused inference path)."""
    import keras
    import tensorflow as tf

    from explorer.keras_build import build_model

    keras.utils.set_random_seed(0)  # (the same weights in every run: this compares float32 sums in another order)
    plain, fused = build_model(ResNetConfig(depth=8)), build_model(ResNetConfig(depth=8))
    fused.set_weights(plain.get_weights())
    assert T.fuse_batchnorm(fused) == 7
    x = tf.constant(np.random.default_rng(0).normal(1.0, 2.0, size=(8, 32, 32, 3)).astype(np.float32))
    weight = tf.range(10, dtype=tf.float32)

    def forward_backward(model):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y * weight)
        return np.asarray(y), tape.gradient(loss, model.trainable_variables)

    (y_plain, g_plain), (y_fused, g_fused) = forward_backward(plain), forward_backward(fused)
    assert np.allclose(y_plain, y_fused, atol=1e-5)
    for a, b in zip(g_plain, g_fused, strict=True):  # each gradient tensor within 0.1 % (relative norm)
        a, b = np.asarray(a), np.asarray(b)
        assert np.linalg.norm(a - b) <= 1e-3 * np.linalg.norm(a) + 1e-7
    for a, b in zip(plain.non_trainable_weights, fused.non_trainable_weights, strict=True):  # moving mean/variance
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert not np.allclose(plain.get_layer("stem_bn").moving_variance.numpy(), 1.0)  # they did move
    assert np.allclose(np.asarray(plain(x, training=False)), np.asarray(fused(x, training=False)), atol=1e-5)
    frozen = fused.get_layer("stem_bn")  # a frozen BN layer uses its moving statistics and keeps them, as in Keras
    frozen.trainable, before = False, frozen.moving_mean.numpy().copy()
    h = tf.random.normal((4, 8, 8, 16), 2.0, 3.0)
    assert np.allclose(np.asarray(frozen(h, training=True)), np.asarray(frozen(h, training=False)), atol=1e-5)
    assert np.array_equal(frozen.moving_mean.numpy(), before)
    frozen.trainable = True
    assert not np.allclose(np.asarray(frozen(h, training=True)), np.asarray(frozen(h, training=False)), atol=1e-3)
    frozen.moving_mean.assign(before)
    fused.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("stem_bn")) is keras.layers.BatchNormalization
    assert np.allclose(np.asarray(loaded(x, training=False)), np.asarray(fused(x, training=False)), atol=1e-6)


def test_the_short_recipe_whitens_the_stem_and_the_paper_recipe_does_not(data):
    short = T.TrainJob(TINY, data, T.TrainSettings(epochs=1, batch_size=50, evaluate=False), slots=threading.Semaphore(1))
    result = short.start().join(120) and short.result()
    assert result["status"] == "done", result["error"]
    whitening = result["stem_whitening"]
    assert (whitening["layer"], whitening["pairs"], whitening["filters"]) == ("stem_conv", 2, 4)  # 4 filters: 2 ± pairs
    assert 0 < whitening["explained"] <= 1
    paper = T.TrainJob(TINY, data, T.TrainSettings(recipe="paper", epochs=1, batch_size=50, evaluate=False),
                       slots=threading.Semaphore(1))
    assert paper.start().join(120) and paper.result()["stem_whitening"] is None


def _view(x, mirrored, dy, dx):
    """A test-time view computed independently of Keras: mirror, reflect-pad one pixel, crop off-centre."""
    v = x[:, :, ::-1] if mirrored else x
    p = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    return p[:, 1 + dy:1 + dy + x.shape[1], 1 + dx:1 + dx + x.shape[2]]


def test_tta_averages_each_image_over_its_views_in_one_pass():
    import tensorflow as tf

    from explorer.keras_build import build_model

    model = build_model(TINY)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, 30)
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(10, dtype=np.float32)[labels])).batch(8)
    seen: list[float] = []
    ev = T.evaluate_model(model, ds, labels, tta=True, progress=seen.append)
    assert T.TTA_VIEWS == ((False, 0, 0), (True, 0, 0), (False, -1, -1), (True, 1, 1))  # image, mirror, both moved
    outputs = [np.asarray(model(_view(x, *view), training=False)) for view in T.TTA_VIEWS]
    assert not np.allclose(outputs[0], outputs[2]) and not np.allclose(outputs[1], outputs[3])  # really other views
    expected = sum(outputs) / len(outputs)
    assert ev.tta and np.array_equal(ev.predictions, expected.argmax(axis=1))
    assert np.allclose(ev.confidence, expected.max(axis=1), atol=1e-5)
    assert seen == [0.25, 0.5, 0.75, 1.0]  # 4 batches
    plain = T.evaluate_model(model, ds, labels)
    assert not plain.tta and np.allclose(plain.confidence, np.asarray(model(x, training=False)).max(axis=1), atol=1e-5)


def _initial_weights(data, monkeypatch, seed: int, **recipe_fields) -> dict:
    """The weights a short-recipe job starts training from (captured when BN is fused, after initialisation and
    whitening), by layer and variable name."""
    from dataclasses import replace

    import explorer.training.loop as L
    from explorer.training.batchnorm import fuse_batchnorm as original

    captured = {}

    def capture(model):
        captured.update({f"{layer.name}/{v.name}": np.array(v) for layer in model.layers for v in layer.weights})
        return original(model)

    monkeypatch.setattr(L, "fuse_batchnorm", capture)
    if recipe_fields:
        monkeypatch.setitem(T.RECIPES, "short", replace(T.RECIPES["short"], **recipe_fields))
    job = T.TrainJob(TINY, data, T.TrainSettings(steps=1, batch_size=50, evaluate=False, seed=seed),
                     slots=threading.Semaphore(1)).start()
    assert job.join(120) and job.poll().status == "done", job.poll().error
    return captured


def test_the_seed_decides_the_initial_weights(data, monkeypatch):
    first, again, other = (_initial_weights(data, monkeypatch, seed) for seed in (3, 3, 4))
    kernel = "stage1_block1_conv1/kernel"
    assert np.array_equal(first[kernel], again[kernel]) and not np.array_equal(first[kernel], other[kernel])
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_residual_gamma_starts_the_last_bn_of_each_branch_there(data, monkeypatch):
    weights = _initial_weights(data, monkeypatch, 0, residual_gamma=0.5)
    assert np.all(weights["stage1_block1_bn2/gamma"] == 0.5)  # the BN before the add
    assert np.all(weights["stage1_block1_bn1/gamma"] == 1.0) and np.all(weights["stem_bn/gamma"] == 1.0)
