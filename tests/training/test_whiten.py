"""Patch-whitening initialisation of the first convolution (explorer.whiten)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.config import ResNetConfig
from explorer.whiten import sample_patches, whiten_first_conv, whitening_filters

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


def correlated_images(n: int = 300, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth, colour-correlated uint8 images: neighbouring pixels and channels are strongly correlated."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, size // 4, size // 4, 1))
    base = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)  # blocks of 4×4 pixels
    colour = base * np.array([1.0, 0.8, 0.6]) + 0.3 * rng.normal(size=(n, size, size, 3))
    return np.clip(128 + 40 * colour, 0, 255).astype(np.uint8)


def test_patches_are_normalised_like_the_training_input_and_flattened_as_the_kernel() -> None:
    images = np.zeros((2, 5, 6, 3), np.uint8)
    images[1, 2, 3] = (255, 0, 51)  # one marked pixel
    patches = sample_patches(images, 3, 3, MEAN, STD, count=4000, seed=1)
    assert patches.shape == (4000, 27)
    background = (0.0 - np.array(MEAN)) / np.array(STD)
    assert np.allclose(patches.reshape(-1, 3, 3, 3).min(axis=(0, 1, 2)), background)
    marked = (np.array([1.0, 0.0, 0.2]) - MEAN) / STD
    hits = np.all(np.isclose(patches.reshape(-1, 9, 3), marked), axis=2)  # (patch, position)
    assert hits.any(), "the marked pixel appears in some patch"
    assert (hits.sum(axis=1) <= 1).all()


def test_patches_smaller_images_than_the_kernel_are_refused() -> None:
    with pytest.raises(ValueError, match="smaller than the 7×7 kernel"):
        sample_patches(np.zeros((1, 4, 4, 3), np.uint8), 7, 7, MEAN, STD)


def test_whitening_filters_decorrelate_the_leading_directions_to_unit_variance() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6)) * np.array([5, 3, 2, 1, 0.5, 0.1])
    data = rng.normal(size=(20_000, 6)) @ mixing.T
    filters, explained = whitening_filters(data, pairs=4, eps=0.0)
    assert filters.shape == (6, 4)
    out = data @ filters
    assert np.allclose(np.cov(out, rowvar=False), np.eye(4), atol=0.05)
    assert 0.9 < explained < 1.0  # four of six directions hold most of the variance


def test_the_stem_of_resnet20_gets_plus_minus_pairs_that_whiten_its_input_patches() -> None:
    from explorer.keras_build import build_model

    model = build_model(ResNetConfig(depth=20))  # stem: 3×3 conv, 16 filters
    images = correlated_images()
    result = whiten_first_conv(model, images, MEAN, STD, seed=0)
    assert result is not None and (result.layer, result.pairs, result.filters) == ("stem_conv", 8, 16)
    assert 0.5 < result.explained < 1.0
    kernel = model.get_layer("stem_conv").kernel.numpy()
    assert np.array_equal(kernel[..., :8], -kernel[..., 8:])
    # The first eight filters' responses to fresh patches are decorrelated, with unit variance (up to eps).
    patches = sample_patches(images, 3, 3, MEAN, STD, seed=99)
    out = patches @ kernel[..., :8].reshape(27, 8)
    assert np.allclose(np.cov(out, rowvar=False), np.eye(8), atol=0.1)


def test_filters_beyond_twice_the_patch_size_keep_their_initialisation() -> None:
    from explorer.keras_build import build_model

    model = build_model(ResNetConfig(depth=8, filters=64))  # 3×3×3 = 27 dimensions < 64 / 2
    before = model.get_layer("stem_conv").kernel.numpy().copy()
    result = whiten_first_conv(model, correlated_images(n=100), MEAN, STD)
    assert result is not None and result.pairs == 27
    after = model.get_layer("stem_conv").kernel.numpy()
    assert np.array_equal(after[..., 54:], before[..., 54:])
    assert not np.allclose(after[..., :54], before[..., :54])


def test_only_the_indexed_images_are_sampled() -> None:
    images = np.zeros((4, 3, 3, 3), np.uint8)
    images[2] = 255
    patches = sample_patches(images, 3, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), index=np.array([2]), count=50)
    assert np.all(patches == 1.0)
