"""``stain-texture``: hand-crafted, weight-free patch features with scikit-image.

Input: ``uint8 [b, 3, 128, 128]`` RGB patches (the registry's eval transform: the patch resized
to 128 px, bilinear with antialiasing; ~1 µm/px for 256 px patches at 0.5 µm/px). Output: ``float32
[b, DIM]`` in this fixed order (names from :func:`feature_names`):

- ``hed_{h,e,d}_{mean,std,p10,p50,p90}`` (15): colour deconvolution (``skimage.color.rgb2hed``,
  Ruifrok & Johnston H&E/DAB stain vectors) of every pixel; per stain channel: mean, standard
  deviation and 10th/50th/90th percentiles of the optical-density concentration.
- ``hist_{r,g,b}_{0..7}`` (24): fraction of pixels in 8 equal-width bins of each RGB channel.
- ``grey_mean``, ``grey_std`` (2): luminance (``skimage.color.rgb2gray`` weights) in ``[0, 1]``.
- ``glcm_{contrast,dissimilarity,homogeneity,energy,correlation,ASM}_d{1,3}`` (12): grey-level
  co-occurrence matrix of the luminance quantised to 16 levels, symmetric and normalised, at
  distances 1 and 3 px, averaged over the angles 0, 45, 90 and 135 degrees
  (``skimage.feature.graycoprops``; the matrices are built for the whole batch at once and equal
  ``skimage.feature.graycomatrix``'s).
- ``lbp_{0..9}`` (10): histogram of uniform rotation-invariant local binary patterns (``riu2``,
  8 neighbours on the 3x3 ring) of the 8-bit luminance; see :func:`_lbp_histograms`.

The stain concentrations use ``rgb2hed``'s formula through a lookup table (:func:`rgb_to_hed`); the
percentiles use every other row and column. Everything is vectorised over sub-batches of
:data:`SUB_BATCH` patches (each patch's features do not depend on the others).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

GLCM_LEVELS = 16
GLCM_DISTANCES_PX = (1, 3)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
HIST_BINS = 8
LBP_POINTS = 8
LBP_RADIUS_PX = 1
_PERCENTILES = (10.0, 50.0, 90.0)
SUB_BATCH = 16  # patches per vectorised pass: larger batches spend ~1 ms/patch in page faults
_GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)  # skimage.color.rgb2gray


def feature_names() -> list[str]:
    """The names of the output columns, in order."""
    names = [f"hed_{c}_{s}" for c in "hed" for s in ("mean", "std", "p10", "p50", "p90")]
    names += [f"hist_{c}_{i}" for c in "rgb" for i in range(HIST_BINS)]
    names += ["grey_mean", "grey_std"]
    names += [f"glcm_{p}_d{d}" for d in GLCM_DISTANCES_PX for p in GLCM_PROPS]
    names += [f"lbp_{i}" for i in range(LBP_POINTS + 2)]
    return names


DIM = len(feature_names())


def stain_texture_features(images_u8: torch.Tensor | np.ndarray) -> np.ndarray:
    """Features of a batch of RGB patches.

    Parameters
    ----------
    images_u8
        ``uint8 [b, 3, h, w]`` (torch or numpy).

    Returns
    -------
    numpy.ndarray
        ``float32 [b, DIM]``.
    """
    rgb = np.asarray(images_u8.cpu() if isinstance(images_u8, torch.Tensor) else images_u8)
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected uint8 [b, 3, h, w], got {rgb.shape}")
    b = rgb.shape[0]
    if b == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    if b > SUB_BATCH:  # same values; temporaries small enough to stay in the allocator's cache
        return np.concatenate([stain_texture_features(rgb[i : i + SUB_BATCH]) for i in range(0, b, SUB_BATCH)])
    hwc = np.ascontiguousarray(rgb.transpose(0, 2, 3, 1))  # b h w 3 (free for channels-last input)
    grey = (hwc.astype(np.float32) @ _GREY_WEIGHTS) / 255.0  # b h w
    parts = [
        _hed_stats(hwc),
        _colour_histograms(hwc),
        np.stack([grey.mean(axis=(1, 2)), grey.std(axis=(1, 2))], axis=1),
        _glcm_features(grey),
        _lbp_histograms(grey),
    ]
    return np.concatenate(parts, axis=1).astype(np.float32)


def stain_texture_tensor(images_u8: torch.Tensor) -> torch.Tensor:
    """:func:`stain_texture_features` as a ``float32 [b, DIM]`` tensor (the DataLoader workers' function)."""
    return torch.from_numpy(stain_texture_features(images_u8))


def _hed_stats(hwc: np.ndarray) -> np.ndarray:
    hed = rgb_to_hed(hwc)  # b h w 3
    b = hed.shape[0]
    flat = np.ascontiguousarray(hed.transpose(0, 3, 1, 2)).reshape(b, 3, -1)  # b 3 n
    mean = flat.mean(axis=2, dtype=np.float64)
    std = flat.std(axis=2, dtype=np.float64)
    sub = hed[:, ::2, ::2].reshape(b, -1, 3)  # percentiles on every other row and column
    pct = np.percentile(sub, _PERCENTILES, axis=1)  # 3 b 3
    stats = np.stack([mean, std, pct[0], pct[1], pct[2]], axis=2)  # b 3(channel) 5(stat)
    return stats.reshape(b, -1)


def rgb_to_hed(hwc: np.ndarray) -> np.ndarray:
    """``skimage.color.rgb2hed`` of ``uint8 [..., 3]`` through a 256-entry lookup table (float32).

    Same formula: ``max(rgb / 255, 1e-6)`` → ``log(.) / log(1e-6)`` → ``@ hed_from_rgb`` → clip at 0.
    """
    from skimage.color import hed_from_rgb

    lut = (np.log(np.maximum(np.arange(256) / 255.0, 1e-6)) / np.log(1e-6)).astype(np.float32)
    stains = lut[hwc] @ hed_from_rgb.astype(np.float32)
    return np.maximum(stains, 0, out=stains)


def _colour_histograms(hwc: np.ndarray) -> np.ndarray:
    b = hwc.shape[0]
    bins = hwc.reshape(b, -1, 3) // (256 // HIST_BINS)  # b n 3, uint8
    offsets = (np.arange(b, dtype=np.int64) * 3 * HIST_BINS).reshape(b, 1, 1) + np.arange(3) * HIST_BINS
    counts = np.bincount((bins + offsets).ravel(), minlength=b * 3 * HIST_BINS)
    return (counts.reshape(b, 3 * HIST_BINS) / bins.shape[1]).astype(np.float32)  # [r0..r7, g0..g7, b0..b7]


def _glcm_features(grey: np.ndarray) -> np.ndarray:
    from skimage.feature import graycoprops

    b = grey.shape[0]
    levels = np.minimum((grey * GLCM_LEVELS).astype(np.int64), GLCM_LEVELS - 1)  # b h w
    glcm = batch_glcm(levels, GLCM_LEVELS, GLCM_DISTANCES_PX, GLCM_ANGLES)  # L L d (b*a)
    out = []
    for prop in GLCM_PROPS:
        values = graycoprops(glcm, prop).reshape(len(GLCM_DISTANCES_PX), b, len(GLCM_ANGLES))
        out.append(values.mean(axis=2))  # d b
    return np.stack(out, axis=0).transpose(2, 1, 0).reshape(b, -1)  # b (d p)


def batch_glcm(levels: np.ndarray, n_levels: int, distances: tuple[int, ...], angles: tuple[float, ...]) -> np.ndarray:
    """Symmetric, normalised co-occurrence matrices of a batch, in ``graycomatrix``'s layout.

    Parameters
    ----------
    levels
        ``int [b, h, w]`` grey levels in ``[0, n_levels)``.

    Returns
    -------
    numpy.ndarray
        ``float64 [n_levels, n_levels, len(distances), b * len(angles)]`` (column ``i * len(angles) + a``
        is patch ``i`` at angle ``a``).
    """
    b, h, w = levels.shape
    out = np.zeros((n_levels, n_levels, len(distances), b * len(angles)), dtype=np.float64)
    patch_offset = (np.arange(b, dtype=np.int64) * n_levels * n_levels).reshape(b, 1, 1)
    for di, dist in enumerate(distances):
        for ai, angle in enumerate(angles):
            dr = int(round(np.sin(angle) * dist))
            dc = int(round(np.cos(angle) * dist))
            # graycomatrix pairs i = image[r, c] with j = image[r + dr, c + dc]
            src = levels[:, max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
            dst = levels[:, max(0, dr) : h + min(0, dr), max(0, dc) : w + min(0, dc)]
            index = src * n_levels + dst + patch_offset
            counts = np.bincount(index.ravel(), minlength=b * n_levels * n_levels).reshape(b, n_levels, n_levels)
            counts = counts + counts.transpose(0, 2, 1)
            totals = counts.sum(axis=(1, 2), keepdims=True)
            counts = counts / np.maximum(totals, 1)
            out[:, :, di, ai :: len(angles)] = counts.transpose(1, 2, 0)
    return out


def _lbp_histograms(grey: np.ndarray) -> np.ndarray:
    """Uniform rotation-invariant LBP (``riu2``) histograms of the 8-bit luminance, vectorised.

    The 8 neighbours are the integer 3x3 ring (Ojala et al. 2002's square variant; skimage's
    ``local_binary_pattern`` interpolates the diagonal ones, one call per patch, ~30x slower). A neighbour counts as 1
    when ``>=`` the centre; a pattern with at most two 0/1 transitions around the ring gets the number
    of ones (0..8), any other pattern 9. Border pixels are left out.
    """
    grey8 = np.round(grey * 255).astype(np.int16)
    b, h, w = grey8.shape
    centre = grey8[:, 1:-1, 1:-1]
    code = np.zeros(centre.shape, dtype=np.int64)
    for bit, (dr, dc) in enumerate(_LBP_RING):
        neighbour = grey8[:, 1 + dr : h - 1 + dr, 1 + dc : w - 1 + dc]
        code |= (neighbour >= centre).astype(np.int64) << bit
    n_bins = LBP_POINTS + 2
    labels = _riu2_table()[code]
    offsets = (np.arange(b, dtype=np.int64) * n_bins).reshape(b, 1, 1)
    counts = np.bincount((labels + offsets).ravel(), minlength=b * n_bins).reshape(b, n_bins)
    return (counts / labels[0].size).astype(np.float32)


_LBP_RING = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


@lru_cache(maxsize=1)
def _riu2_table() -> np.ndarray:
    table = np.empty(256, dtype=np.int64)
    for value in range(256):
        bits = [(value >> i) & 1 for i in range(LBP_POINTS)]
        transitions = sum(bits[i] != bits[(i + 1) % LBP_POINTS] for i in range(LBP_POINTS))
        table[value] = sum(bits) if transitions <= 2 else LBP_POINTS + 1
    table.setflags(write=False)
    return table
