"""stain-texture: stain separation, histograms, GLCM and LBP on hand-checkable patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import hed2rgb, rgb2hed
from skimage.feature import graycomatrix, graycoprops

from healnet_cli.extractors import load_extractor
from healnet_cli.extractors.stain_texture import (
    DIM,
    GLCM_ANGLES,
    GLCM_DISTANCES_PX,
    batch_glcm,
    feature_names,
    rgb_to_hed,
    stain_texture_features,
)

NAMES = feature_names()


def _stain_patch(channel: int, size_px: int = 128, seed: int = 0) -> np.ndarray:
    """A patch made of one pure stain (0 = haematoxylin, 1 = eosin), varying concentration."""
    rng = np.random.default_rng(seed)
    hed = np.zeros((size_px, size_px, 3))
    hed[..., channel] = rng.uniform(0.05, 0.3, (size_px, size_px))
    rgb = (hed2rgb(hed) * 255).round().clip(0, 255).astype(np.uint8)
    return rgb.transpose(2, 0, 1)


def _col(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, NAMES.index(name)]


def test_haematoxylin_vs_eosin_components() -> None:
    batch = np.stack([_stain_patch(0), _stain_patch(1)])
    feats = stain_texture_features(batch)
    assert feats.shape == (2, DIM) and feats.dtype == np.float32 and np.isfinite(feats).all()
    h_mean, e_mean = _col(feats, "hed_h_mean"), _col(feats, "hed_e_mean")
    assert h_mean[0] > 3 * h_mean[1]  # haematoxylin patch: high H, low E
    assert e_mean[1] > 3 * e_mean[0]  # eosin patch: high E, low H
    # haematoxylin is blue-purple (blue brighter than red), eosin pink (red brighter than blue)
    red = sum(i * _col(feats, f"hist_r_{i}") for i in range(8))
    blue = sum(i * _col(feats, f"hist_b_{i}") for i in range(8))
    assert blue[0] > red[0] and red[1] > blue[1]


def test_lookup_table_equals_rgb2hed() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert np.abs(rgb_to_hed(rgb) - rgb2hed(rgb)).max() < 1e-5


def test_batched_glcm_equals_skimage() -> None:
    levels = np.random.default_rng(1).integers(0, 16, (3, 19, 23))
    ours = batch_glcm(levels, 16, GLCM_DISTANCES_PX, GLCM_ANGLES)
    for i in range(3):
        ref = graycomatrix(
            levels[i].astype(np.uint8),
            list(GLCM_DISTANCES_PX),
            list(GLCM_ANGLES),
            levels=16,
            symmetric=True,
            normed=True,
        )
        block = ours[:, :, :, i * len(GLCM_ANGLES) : (i + 1) * len(GLCM_ANGLES)]
        assert np.abs(block - ref).max() < 1e-12
        assert np.allclose(graycoprops(block, "contrast"), graycoprops(ref, "contrast"))


def test_flat_patch_texture() -> None:
    flat = np.full((1, 3, 32, 32), 200, dtype=np.uint8)
    feats = stain_texture_features(flat)
    assert _col(feats, "lbp_8")[0] == pytest.approx(1.0)  # every neighbour >= centre
    assert _col(feats, "glcm_contrast_d1")[0] == 0 and _col(feats, "glcm_energy_d1")[0] == pytest.approx(1.0)
    assert _col(feats, "grey_std")[0] == pytest.approx(0.0, abs=1e-6)
    assert _col(feats, "hist_r_6")[0] == pytest.approx(1.0)  # 200 // 32 = 6


def test_texture_responds_to_stripes() -> None:
    stripes = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    stripes[:, :, :, ::2] = 255
    feats = stain_texture_features(np.concatenate([stripes, np.full_like(stripes, 128)]))
    assert _col(feats, "glcm_contrast_d1")[0] > 10 * (_col(feats, "glcm_contrast_d1")[1] + 1e-3)


def test_empty_batch_and_extractor_wrapper() -> None:
    assert stain_texture_features(np.zeros((0, 3, 8, 8), np.uint8)).shape == (0, DIM)
    ext = load_extractor("stain-texture")
    assert ext.weights.key == "none" and ext.worker_fn is not None and ext.transform.input_px == 128
    out = ext.encode(torch.from_numpy(np.stack([_stain_patch(0)])))
    assert out.shape == (1, DIM) and out.dtype == torch.float32
