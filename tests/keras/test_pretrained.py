"""ImageNet ResNetV2 weights load into our models layer by layer (tested with a locally saved weights file)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from explorer.annotate import build
from explorer.keras_build import build_model
from explorer.presets import PRESETS
from explorer.pretrained import WeightsError, base_preset, load_imagenet_weights, reference_name

SIDE = 64  # small input: the weights do not depend on it, the test runs fast


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    """keras.applications ResNet50V2 with random weights, saved as a weights file (as the downloaded one is)."""
    keras.utils.set_random_seed(7)
    ref = keras.applications.ResNet50V2(weights=None, input_shape=(SIDE, SIDE, 3))
    path = tmp_path_factory.mktemp("w") / "resnet50v2.weights.h5"
    ref.save_weights(str(path))
    return ref, path


def test_every_weighted_layer_has_a_reference_name():
    ag = build(PRESETS["resnet152v2"].config)
    ref = keras.applications.ResNet152V2(weights=None)
    ref_names = {layer.name for layer in ref.layers}
    for node in ag.graph:
        if node.op in ("conv", "bn", "dense"):
            assert reference_name(node.name) in ref_names, node.name


def test_our_model_with_their_weights_computes_the_same(reference_file):
    ref, path = reference_file
    cfg = PRESETS["resnet50v2"].config.replace(input_shape=(SIDE, SIDE, 3))
    ours = build_model(cfg)
    report = load_imagenet_weights(ours, cfg, weights=path, download=False)
    assert report.preset == "resnet50v2" and report.skipped == ()
    assert report.params == ref.count_params()
    x = np.random.default_rng(0).random((2, SIDE, SIDE, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(ours(x, training=False)), np.asarray(ref(x, training=False)), atol=1e-5)


def test_fine_tune_new_head_and_frozen_body(reference_file):
    _, path = reference_file
    cfg = PRESETS["resnet50v2"].config.replace(input_shape=(SIDE, SIDE, 3), classes=5, freeze=4)
    assert base_preset(cfg) == "resnet50v2"
    ours = build_model(cfg)
    report = load_imagenet_weights(ours, cfg, weights=path, download=False)
    assert report.skipped == ("predictions",)
    ag = build(cfg)
    trainable = sum(int(np.prod(w.shape)) for w in ours.trainable_weights)
    assert trainable == ag.trainable_params
    # only the post-activation BN's γ/β and the new classifier train
    assert ag.trainable_params == 2 * 2048 + 2048 * 5 + 5


def test_refusals(tmp_path):
    cfg = PRESETS["resnet50v2"].config
    with pytest.raises(WeightsError) as err:
        load_imagenet_weights(None, PRESETS["resnet20"].config, download=False)
    assert "resnet50v2" in err.value.hint
    with pytest.raises(WeightsError) as err:
        load_imagenet_weights(None, cfg, weights=tmp_path / "missing.h5", download=False)
    assert "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5" in err.value.hint
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(WeightsError):
        load_imagenet_weights(build_model(cfg.replace(input_shape=(SIDE, SIDE, 3))),
                              cfg.replace(input_shape=(SIDE, SIDE, 3)), weights=bad, download=False)
