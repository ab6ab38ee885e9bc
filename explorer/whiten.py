"""Patch-whitening initialisation of a network's first convolution (an option of the short recipe).

Before training, the first convolution's kernels are set to the principal directions of the
training images' own k×k patches, scaled to unit variance: filter i is e_i / sqrt(λ_i + eps),
and filter i + half is its negative (so that a ReLU after the stem keeps both signs). The
network's shape and parameter count are unchanged; only the starting point differs, and the
filters keep training. A network that starts from random 3×3 filters spends its first hundred
steps discovering edges and colour contrasts; starting from the data's decorrelated directions
it learns from the first step. (The idea is from Coates & Ng 2012 and Keller Jordan's
"airbench"; on a 2-core CPU it lifted ResNet-20's 90-second CIFAR-10 test accuracy by 3 to 8
points in our runs, see docs/training.md.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PATCHES = 40_000  # patches sampled for the covariance (27×27 for a 3×3 RGB kernel: plenty)
EPS = 5e-4  # added to each eigenvalue (in units of the normalised data's variance)


@dataclass(frozen=True)
class Whitening:
    """What `whiten_first_conv` did: the layer, how many ± filter pairs it set, the variance they keep."""

    layer: str
    pairs: int
    filters: int
    explained: float  # fraction of the patches' variance in the `pairs` directions


def sample_patches(images: np.ndarray, kh: int, kw: int, mean: tuple[float, ...], std: tuple[float, ...], *,
                   index: np.ndarray | None = None, count: int = PATCHES, seed: int = 0) -> np.ndarray:
    """`count` random kh×kw patches (flattened as the kernel is: row, column, channel) of uint8
    images (N, H, W, C) — only of the images `index` names, when given — normalised with
    `mean`/`std` (in [0, 1] units) as the training input is."""
    rng = np.random.default_rng(seed)
    n, h, w, c = images.shape
    if h < kh or w < kw:
        raise ValueError(f"images of {h}×{w} are smaller than the {kh}×{kw} kernel")
    which = rng.integers(0, n, count) if index is None else rng.choice(np.asarray(index), count)
    top = rng.integers(0, h - kh + 1, count)
    left = rng.integers(0, w - kw + 1, count)
    rows = top[:, None, None] + np.arange(kh)[None, :, None]  # (count, kh, 1)
    cols = left[:, None, None] + np.arange(kw)[None, None, :]  # (count, 1, kw)
    patches = images[which[:, None, None], rows, cols].astype(np.float64) / 255.0  # (count, kh, kw, c)
    patches = (patches - np.asarray(mean)) / np.asarray(std)
    return patches.reshape(count, kh * kw * c)


def whitening_filters(patches: np.ndarray, pairs: int, eps: float = EPS) -> tuple[np.ndarray, float]:
    """The `pairs` leading whitening directions of `patches` (D, pairs) and the fraction of the variance they hold."""
    eigenvalues, vectors = np.linalg.eigh(np.cov(patches, rowvar=False))
    order = np.argsort(eigenvalues)[::-1][:pairs]
    explained = float(eigenvalues[order].sum() / max(eigenvalues.sum(), 1e-12))
    return vectors[:, order] / np.sqrt(np.maximum(eigenvalues[order], 0.0) + eps), explained


def first_conv(model: Any) -> Any | None:
    """The model's first plain Conv2D (the stem), or None."""
    import keras

    for layer in model.layers:
        if type(layer) is keras.layers.Conv2D and layer.groups == 1:
            return layer
    return None


def whiten_first_conv(model: Any, images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], *,
                      index: np.ndarray | None = None, seed: int = 0) -> Whitening | None:
    """Set the first convolution's kernels to ± whitening directions of `images`' patches
    (of `images[index]`, when given: the training images, not the held-out ones).

    With F filters and D = kh·kw·C patch dimensions, min(F // 2, D) pairs are set; any other filters
    keep their random initialisation. Returns None (nothing changed) when the model has no Conv2D.
    """
    conv = first_conv(model)
    if conv is None:
        return None
    kh, kw, c, filters = (int(d) for d in conv.kernel.shape)
    pairs = min(filters // 2, kh * kw * c)
    if pairs == 0:
        return None
    directions, explained = whitening_filters(sample_patches(images, kh, kw, mean, std, index=index, seed=seed), pairs)
    kernel = np.array(conv.kernel.numpy(), dtype=np.float32)
    directions = directions.reshape(kh, kw, c, pairs).astype(np.float32)
    kernel[..., :pairs] = directions
    kernel[..., pairs:2 * pairs] = -directions
    conv.kernel.assign(kernel)
    if conv.use_bias:
        conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
    return Whitening(layer=conv.name, pairs=pairs, filters=filters, explained=explained)
