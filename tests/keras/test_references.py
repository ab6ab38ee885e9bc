"""The presets equal the code they reproduce: keras.applications, the Keras example, the tutorial."""

from __future__ import annotations

import keras
import pytest

from explorer.annotate import build
from explorer.keras_build import build_model
from explorer.presets import PRESETS
from explorer.pretrained import reference_name
from tests.keras import reference_nets
from tests.keras.keras_compare import graph_signature, layer_shape, signature

APPS = {"resnet50v2": keras.applications.ResNet50V2, "resnet101v2": keras.applications.ResNet101V2,
        "resnet152v2": keras.applications.ResNet152V2}


@pytest.mark.parametrize("name", list(APPS))
def test_equal_to_keras_applications(name):
    ag = build(PRESETS[name].config)
    ref = APPS[name](weights=None)
    assert ref.count_params() == ag.total_params == PRESETS[name].reported_params
    assert len(ref.layers) == len(ag.graph)
    ref_names = {layer.name for layer in ref.layers}
    checked = 0
    for node, info in ag:
        target = reference_name(node.name)
        if node.op == "maxpool" and node.role == "shortcut":
            continue  # unnamed in keras.applications; covered by the signature below
        if node.op == "input":
            target = ref.layers[0].name
        assert target in ref_names, (node.name, target)
        layer = ref.get_layer(target)
        assert layer_shape(layer) == info.shape, node.name
        assert layer.count_params() == info.params, node.name
        assert type(layer).__name__ == node.keras_class, node.name
        checked += 1
    assert checked >= len(ag.graph) - 3
    assert signature(ref) == graph_signature(ag)


@pytest.mark.parametrize(("name", "reference", "depth"), [
    ("keras-resnet20v1", reference_nets.keras_example_v1, 20),
    ("keras-resnet56v2", reference_nets.keras_example_v2, 56),
    ("keras-resnet110v2", reference_nets.keras_example_v2, 110),
    ("tutorial", reference_nets.tutorial, 56),
    ("tutorial", reference_nets.tutorial, 11),
    ("tutorial", reference_nets.tutorial, 29),
])
def test_equal_to_transcribed_reference(name, reference, depth):
    ag = build(PRESETS[name].config.replace(depth=depth))
    ref = reference(depth)
    ours = build_model(ag)
    assert ref.count_params() == ours.count_params() == ag.total_params
    assert signature(ref) == signature(ours) == graph_signature(ag)
    # same regularisation and initialisers as the reference
    assert len(ref.losses) == len(ours.losses)


def test_keras_resnet20v1_matches_its_published_count():
    assert build(PRESETS["keras-resnet20v1"].config).total_params == 274_442
