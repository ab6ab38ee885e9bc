"""Gradient flow at initialisation: per-conv gradient norms and per-block output spread, residual vs plain twin."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer import guards
from explorer.annotate import AnnotatedGraph, build
from explorer.config import ConfigError, ResNetConfig

MAX_LAYERS = 1500  # one forward/backward pass of ResNet-1202 takes minutes on a CPU


@dataclass(frozen=True)
class Batch:
    """One batch of images (N, H, W, C) float32 in [0, 1] and integer labels, with where it came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str


def random_batch(config: ResNetConfig, size: int = 64, *, seed: int = 0) -> Batch:
    """A fixed random batch (uniform pixels, random labels) for when no dataset is at hand."""
    rng = np.random.default_rng(seed)
    h, w, c = config.input_shape
    images = rng.random((size, h, w, c), dtype=np.float32)
    labels = rng.integers(0, config.classes, size=size)
    return Batch(images, labels, f"a fixed random batch of {size} images (no dataset used)")


def check_size(config: ResNetConfig, *, batch_size: int, extra: int = 0) -> int:
    """Refuse a gradient-flow pass of `config` that would not fit in memory (its plain twin is no larger).

    Args:
        config: The network.
        batch_size: Images in the pass.
        extra: Bytes to add, e.g. `guards.PROCESS_BYTES` when the pass runs in a process of its own.

    Returns:
        The estimate in bytes.

    Raises:
        ConfigError: Too many parameters, or more memory than this server allows (`guards.check_build_memory`).
    """
    return guards.check_build_memory(build(config), what="this network's gradient-flow pass", batch_size=batch_size,
                                     extra=extra)


def load_batch(config: ResNetConfig, *, size: int = 64, data_dir: str | None = None, seed: int = 0,
               extra: int = 0) -> Batch:
    """A batch of CIFAR-10 test images when a dataset is at hand and fits the network, else a random batch.

    The pass is sized first (`check_size`, with `extra`), so a network that does not fit is refused before
    anything is allocated.
    """
    if not 1 <= size <= 1024:
        raise ConfigError("batch_size", f"{size} is out of range", "give a batch size from 1 to 1024")
    check_size(config, batch_size=size, extra=extra)
    fits = tuple(config.input_shape) == (32, 32, 3) and config.classes == 10
    if fits:
        from explorer import data

        found = data.sample_batch(size, data_dir=data_dir, seed=seed)
        if found is not None:
            images, labels, source = found
            return Batch(images, labels, source)
    return random_batch(config, size, seed=seed)


def twin_of(config: ResNetConfig) -> ResNetConfig:
    """The plain twin: the same network without any skip connection."""
    return config.replace(shortcut="none")


def _depth_indices(ag: AnnotatedGraph) -> dict[str, int]:
    """Depth index of each main-path weighted layer (stem conv = 1, …, classifier = depth)."""
    index = {name: i for i, name in enumerate(ag.main_convs, start=1)}
    index[ag.graph.output.name] = ag.depth
    return index


SEEDED = ("kernel", "depthwise_kernel", "bias", "gamma", "beta")
"""Weights a layer draws from its `<name>_initializer` (those with a seed are redrawn by `seed_weights`)."""


def seed_weights(model: Any, seed: int) -> None:
    """Redraw every random weight of `model` (and reset its dropout generators) from `seed` alone.

    Each layer's initializer is remade with its own integer seed, derived from `seed` and the
    layer's position, so the same seed gives the same model — without `keras.utils.set_random_seed`,
    which would reset the random state of the whole server process.
    """
    for i, layer in enumerate(model.layers):
        base = (int(seed) * 1_000_003 + i * len(SEEDED)) % (2**31 - len(SEEDED))
        for j, attr in enumerate(SEEDED):
            init, var = getattr(layer, f"{attr}_initializer", None), getattr(layer, attr, None)
            if init is None or var is None or not hasattr(init, "get_config") or "seed" not in init.get_config():
                continue
            seeded = type(init).from_config({**init.get_config(), "seed": base + j})
            var.assign(seeded(tuple(var.shape), dtype=var.dtype))
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            generator.state.assign(np.asarray([base, 0], dtype=generator.state.dtype))


def measure(config: ResNetConfig, batch: Batch, *, seed: int = 0) -> dict[str, Any]:
    """One forward and backward pass at initialisation (BN in training mode, as in the first step).

    Args:
        config: The network.
        batch: Images and labels (their shape must match the config's input and classes).
        seed: Seed for the weight initialisation and dropout of this model only (nothing process-wide).

    Returns:
        {"layers": [{name, depth_index, grad_norm, activation_std}], "blocks": [{name, depth_index,
        activation_std}], "loss": float}, layers in depth order. grad_norm is the L2 norm of the
        gradient of the loss with respect to the conv's kernel; activation_std the standard deviation
        of the layer's (or block's) output over the batch.
    """
    ag = build(config)
    guards.check_build_memory(ag, what="this network's gradient-flow pass", batch_size=len(batch.images))
    if len(ag.graph) > MAX_LAYERS:
        raise ConfigError("depth", f"{len(ag.graph)} layers is too many for a gradient-flow pass here",
                          f"use a network of at most {MAX_LAYERS} layers")
    if batch.images.shape[1:] != tuple(config.input_shape):
        raise ConfigError("input", f"the batch has images of {batch.images.shape[1:]} but the network takes "
                          f"{tuple(config.input_shape)}", "use the network's input size")
    from explorer.backend import load_keras
    from explorer.keras_build import build_model

    keras = load_keras()
    import tensorflow as tf

    model = build_model(ag)
    seed_weights(model, seed)
    depth = _depth_indices(ag)
    convs = ag.main_convs
    block_outs = [b.output for b in ag.graph.blocks]
    names = convs + block_outs
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names] + [model.output])
    kernels = [model.get_layer(n).kernel for n in convs]
    x = tf.convert_to_tensor(batch.images)
    y = tf.convert_to_tensor(batch.labels)
    with tf.GradientTape() as tape:
        outs = probe(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, outs[-1]))
    grads = tape.gradient(loss, kernels)
    stds = [float(np.std(np.asarray(o))) for o in outs[:-1]]
    layers = [
        {"name": n, "depth_index": depth[n], "grad_norm": float(np.linalg.norm(np.asarray(g))), "activation_std": s}
        for n, g, s in zip(convs, grads, stds[: len(convs)], strict=True)
    ]
    last_conv = {}
    for b in ag.graph.blocks:
        in_block = [n for n in b.nodes if n in depth]
        last_conv[b.output] = depth[in_block[-1]] if in_block else 0
    blocks = [
        {"name": n, "depth_index": last_conv[n], "activation_std": s}
        for n, s in zip(block_outs, stds[len(convs):], strict=True)
    ]
    return {"layers": layers, "blocks": blocks, "loss": float(loss)}


def report(config: ResNetConfig, batch: Batch, *, twin: bool = True, seed: int = 0) -> dict[str, Any]:
    """Gradient flow of the network and (optionally) its plain twin, ready for JSON and charts."""
    networks = [("residual" if config.shortcut != "none" else "plain", config)]
    if twin and config.shortcut != "none":
        networks.append(("plain twin", twin_of(config)))
    out = {"source": batch.source, "networks": []}
    for label, cfg in networks:
        result = measure(cfg, batch, seed=seed)
        out["networks"].append({"label": label, "config": cfg.to_dict(), **result})
    return out


def summary_ratio(network: dict[str, Any]) -> float:
    """Gradient norm of the first conv over that of the last conv (how much the signal decays)."""
    norms = [layer["grad_norm"] for layer in network["layers"]]
    if not norms or norms[-1] == 0:
        return math.inf
    return norms[0] / norms[-1]
