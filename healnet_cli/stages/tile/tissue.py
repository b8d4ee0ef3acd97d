"""Tissue detection on a low-resolution RGB image (scikit-image / SciPy), in physical units.

Saturation channel -> median filter -> Otsu threshold clamped to [floor, cap] (a blank slide yields
no tissue, not noise; an all-tissue crop is not split into pale and dark tissue) -> morphological closing -> filling of
holes smaller than ``min_area_um2`` -> removal of objects smaller than ``min_area_um2``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

#: Saturation (0-255) below which a pixel is never tissue, whatever Otsu says: glass, dust and
#: scanner noise stay below it; eosin-stained tissue is well above it.
SATURATION_FLOOR = 20
#: Highest saturation threshold: pale tissue (fat, mucin, faint eosin) is often 25-40, glass < 15.
SATURATION_CAP = 40
#: Median filter and closing sizes, in µm (converted to pixels at the image's resolution).
MEDIAN_UM = 24.0
CLOSING_UM = 32.0


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation of an RGB ``uint8`` image, scaled to 0-255 (``uint8``); black counts as 0."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = np.maximum(np.maximum(r, g), b)
    low = np.minimum(np.minimum(r, g), b)
    diff = (high - low).astype(np.uint16)
    diff *= 255
    diff //= np.maximum(high, 1)
    return diff.astype(np.uint8)


def median_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Median filter with a ``size`` x ``size`` square (edges replicated); 3 x 3 via a sorting
    network of element-wise min/max (fast on large images), larger sizes via SciPy."""
    if size <= 1:
        return image
    if size != 3:
        return ndimage.median_filter(image, size=size, mode="nearest")
    padded = np.pad(image, 1, mode="edge")
    h, w = image.shape
    p = [padded[dy : dy + h, dx : dx + w].copy() for dy in range(3) for dx in range(3)]
    for i, j in _MEDIAN9:
        lo = np.minimum(p[i], p[j])
        np.maximum(p[i], p[j], out=p[j])
        p[i] = lo
    return p[4]


#: Compare-exchange pairs of a median-of-9 selection network (Paeth; Devillard's ``opt_med9``).
_MEDIAN9 = (
    (1, 2),
    (4, 5),
    (7, 8),
    (0, 1),
    (3, 4),
    (6, 7),
    (1, 2),
    (4, 5),
    (7, 8),
    (0, 3),
    (5, 8),
    (4, 7),
    (3, 6),
    (1, 4),
    (2, 5),
    (4, 7),
    (4, 2),
    (6, 4),
    (4, 2),
)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of a ``uint8`` image (histogram based; 0 for a constant image)."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256, dtype=np.float64)
    weight0 = np.cumsum(hist)
    weight1 = total - weight0
    mean0 = np.cumsum(hist * levels)
    mean_total = mean0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_total * weight0 - mean0 * total) ** 2 / (weight0 * weight1)
    between[~np.isfinite(between)] = 0
    best = between.max()
    if best <= 0:
        return 0.0
    # the middle of a plateau of maxima (two well separated classes leave a flat run of optima)
    ties = np.flatnonzero(between >= best * (1 - 1e-9))
    return float(np.floor(ties.mean()))


def tissue_threshold(sat: np.ndarray, *, floor: int = SATURATION_FLOOR, cap: int = SATURATION_CAP) -> float:
    """Saturation threshold between glass and tissue: Otsu's, clamped to ``[floor, cap]``.

    When Otsu's lower class is itself saturated (mean >= ``floor``) the image holds no glass (a crop
    of tissue) and Otsu only splits pale from dark tissue, so ``floor`` is used instead.
    """
    otsu = otsu_threshold(sat)
    below = sat[sat <= otsu]
    if below.size and float(below.mean()) >= floor:
        return float(floor)
    return float(min(max(otsu, floor), cap))


def _odd(px: float) -> int:
    return max(1, int(round(px)) | 1)


def detect_tissue(
    rgb: np.ndarray, um_per_px: float, *, min_area_um2: float, floor: int = SATURATION_FLOOR
) -> tuple[np.ndarray, float]:
    """A boolean tissue mask of ``rgb`` and the saturation threshold used.

    Parameters
    ----------
    rgb
        RGB ``uint8`` ``[h, w, 3]`` at ``um_per_px`` (about 8-16 µm/px).
    um_per_px
        Physical size of one pixel.
    min_area_um2
        Tissue objects, and holes inside tissue, smaller than this are removed / filled.
    floor
        Lowest saturation threshold (0-255).

    Returns
    -------
    tuple[numpy.ndarray, float]
        Mask ``[h, w]`` (bool) and the saturation threshold (:func:`tissue_threshold`).
    """
    sat = saturation(rgb)
    size = _odd(MEDIAN_UM / um_per_px)
    sat = median_filter(sat, size)
    threshold = tissue_threshold(sat, floor=floor)
    mask = sat > threshold
    if not mask.any():
        return mask, threshold
    mask = binary_closing(mask, _odd(CLOSING_UM / um_per_px))
    min_px = math.ceil(min_area_um2 / (um_per_px * um_per_px)) if min_area_um2 > 0 else 0
    mask = fill_small_holes(mask, min_px)
    mask = remove_small_objects(mask, min_px)
    return mask, threshold


def fill_small_holes(mask: np.ndarray, max_hole_px: int) -> np.ndarray:
    """Fill background regions enclosed by tissue that are smaller than ``max_hole_px`` pixels."""
    if max_hole_px <= 0:
        return mask
    background, count = ndimage.label(~mask)
    if count == 0:
        return mask
    sizes = np.bincount(background.ravel())
    edge_labels = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    small = sizes < max_hole_px
    small[0] = False
    small[edge_labels] = False
    return mask | small[background]


def remove_small_objects(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Remove 8-connected tissue objects smaller than ``min_px`` pixels."""
    if min_px <= 1:
        return mask
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def binary_closing(mask: np.ndarray, size: int) -> np.ndarray:
    """Closing with a ``size`` x ``size`` square (separable max/min filters; the image border does
    not erode tissue that touches it)."""
    if size <= 1:
        return mask
    pad = size
    image = np.pad(mask.view(np.uint8), pad, mode="constant")
    for axis in (0, 1):
        image = ndimage.maximum_filter1d(image, size, axis=axis)
    for axis in (0, 1):
        image = ndimage.minimum_filter1d(image, size, axis=axis, mode="nearest")
    return image[pad:-pad, pad:-pad].astype(bool)
