"""Helpers that compare a Keras model with an annotated graph, layer by layer."""

from __future__ import annotations

from collections import Counter

from explorer.annotate import AnnotatedGraph


def trainable_count(model) -> int:
    return sum(int(w.shape.num_elements() if hasattr(w.shape, "num_elements") else _size(w.shape))
               for w in model.trainable_weights)


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def layer_shape(layer) -> tuple:
    return tuple(int(d) for d in layer.output.shape[1:])


def assert_node_by_node(ag: AnnotatedGraph, model) -> None:
    """Every node's Keras layer has the annotated shape and parameter count; totals agree."""
    assert len(model.layers) == len(ag.graph)
    for node, info in ag:
        layer = model.get_layer(node.name)
        assert type(layer).__name__ == node.keras_class, node.name
        assert layer_shape(layer) == info.shape, (node.name, layer_shape(layer), info.shape)
        assert layer.count_params() == info.params, (node.name, layer.count_params(), info.params)
    assert model.count_params() == ag.total_params
    assert sum(_size(w.shape) for w in model.trainable_weights) == ag.trainable_params


def signature(model) -> Counter:
    """Multiset of (layer class, output shape, params): equal for structurally equal models."""
    return Counter(
        (type(layer).__name__, layer_shape(layer), layer.count_params())
        for layer in model.layers
    )


def graph_signature(ag: AnnotatedGraph) -> Counter:
    return Counter((node.keras_class, info.shape, info.params) for node, info in ag)
