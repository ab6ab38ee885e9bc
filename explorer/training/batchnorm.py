"""BatchNormalization while training (Keras side): TensorFlow's fused kernel, another momentum, exact statistics at the end."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from explorer.backend import load_keras

keras = load_keras()
import tensorflow as tf  # noqa: E402 - after load_keras, which sets TensorFlow's environment first


def _batchnorms(model: Any) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def fuse_batchnorm(model: Any) -> int:
    """Let the model's BatchNormalization layers train with TensorFlow's fused kernel.

    Keras 3 computes a BN layer in training from separate ops (moments, then normalise), each a pass
    over the activations and each differentiated on its own; `FusedBatchNormV3` (oneDNN on a CPU) is
    one pass forward and one backward. Same function, same variables, same moving-average update
    (Bessel's correction removed, as Keras' own statistics have none): on this 2-core CPU ResNet-20
    trains ~1.2× faster than plain Keras (benchmarks/bench_training.py) and its first batch traces
    sooner. In inference (evaluation, prediction) the fused kernel normalises with the moving
    statistics in one op instead of four: ~1.3× faster test-set evaluation. Only the instances'
    `call` changes — the classes, the config and a saved `.keras` stay plain Keras — and only float32
    NHWC batches take the fused path; anything else (frozen layers in training, masks, other dtypes
    or axes) runs Keras' own code.
    Returns the number of layers changed.
    """
    layers = [layer for layer in _batchnorms(model) if not getattr(layer, "renorm", False)]
    for layer in layers:
        plain = layer.call  # the bound Keras method

        def call(inputs: Any, training: Any = None, mask: Any = None, *, _layer: Any = layer, _plain: Any = plain) -> Any:
            if (not (training is None or isinstance(training, bool)) or mask is not None or len(inputs.shape) != 4
                    or _layer.axis not in (3, -1) or inputs.dtype != tf.float32 or getattr(_layer, "synchronized", False)
                    or (training is True and not _layer.trainable)):
                # (a frozen BN layer normalises with its moving statistics and never updates them, as in Keras)
                return _plain(inputs, training=training, mask=mask)
            channels = inputs.shape[-1]
            scale = _layer.gamma if _layer.scale else tf.ones((channels,), tf.float32)
            offset = _layer.beta if _layer.center else tf.zeros((channels,), tf.float32)
            if not training:  # inference with the moving statistics: one op instead of four
                return tf.compat.v1.nn.fused_batch_norm(inputs, scale, offset, mean=_layer.moving_mean,
                                                        variance=_layer.moving_variance, epsilon=_layer.epsilon,
                                                        data_format="NHWC", is_training=False)[0]
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(inputs, scale, offset, epsilon=_layer.epsilon,
                                                                 data_format="NHWC", is_training=True)[:3]
            n = tf.cast(tf.size(inputs) // channels, tf.float32)
            variance = variance * (n - 1.0) / n  # the fused kernel returns the unbiased variance
            m = _layer.momentum
            _layer.moving_mean.assign(_layer.moving_mean * m + tf.cast(mean, _layer.moving_mean.dtype) * (1.0 - m))
            _layer.moving_variance.assign(_layer.moving_variance * m
                                          + tf.cast(variance, _layer.moving_variance.dtype) * (1.0 - m))
            return y

        layer.call = call
    return len(layers)


@contextlib.contextmanager
def bn_momentum(model: Any, momentum: float | None) -> Iterator[None]:
    """Use another BatchNormalization momentum while training (set before the train function is traced)."""
    layers = _batchnorms(model) if momentum is not None else []
    old = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = momentum
    try:
        yield
    finally:
        for layer, value in zip(layers, old, strict=True):
            layer.momentum = value


def recalibrate_batchnorm(model: Any, dataset: Any, *, batches: int = 8,
                          should_stop: Callable[[], bool] | None = None) -> int:
    """Recompute every BN layer's moving mean and variance for the current weights ("precise BN").

    Runs `batches` training batches forward in training mode, eagerly, with the momentum of the
    i-th batch set to i/(i+1), so each moving statistic ends as the plain average over the batches.
    The weights do not change. Returns the number of batches used.
    """
    layers = _batchnorms(model)
    if not layers or batches <= 0:
        return 0
    old = [layer.momentum for layer in layers]
    used = 0
    try:
        for i, (x, _) in enumerate(dataset.take(batches)):
            if should_stop is not None and should_stop():
                break
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(x, training=True)
            used += 1
    finally:
        for layer, value in zip(layers, old, strict=True):
            layer.momentum = value
    return used


def scale_residual_gamma(model: Any, config: Any, value: float) -> int:
    """Start the BN scale (gamma) that ends each residual branch at `value` instead of 1 (the branch then adds
    `value`× its normalised output to the shortcut at first). Returns the number of layers changed."""
    from explorer.annotate import build

    graph = build(config).graph
    kinds = {node.name: node.op for node in graph.nodes}
    names = {node.inputs[0] for node in graph.nodes if node.op == "add" and kinds.get(node.inputs[0]) == "bn"}
    layers = [layer for layer in _batchnorms(model) if layer.name in names and layer.gamma is not None]
    for layer in layers:
        layer.gamma.assign(tf.fill(layer.gamma.shape, tf.constant(value, layer.gamma.dtype)))
    return len(layers)
