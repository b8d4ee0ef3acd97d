"""The patch grid at a physical resolution, and each patch's tissue fraction from a mask.

Coordinates are level-0 pixels of the patch's top-left corner; the grid starts at (0, 0) with a
stride of ``patch_px - overlap_px`` target pixels, converted to level-0 pixels once (so every patch
of a slide has the same level-0 size and the grid is exactly regular). Only patches that lie fully
inside the slide are generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from healnet_cli.slides.base import best_level_for_downsample


@dataclass(frozen=True)
class GridSpec:
    """The patch geometry of one slide.

    Attributes
    ----------
    patch_px_level0
        Patch side in level-0 pixels.
    stride_px_level0
        Grid step in level-0 pixels.
    read_level, read_downsample, read_patch_px
        Pyramid level to read a patch from (the coarsest one not coarser than the target), its
        downsample and the patch side at that level (then resized to ``patch_px``).
    """

    patch_px: int
    overlap_px: int
    target_mpp: float
    mpp: float
    patch_px_level0: int
    stride_px_level0: int
    read_level: int
    read_downsample: float
    read_patch_px: int

    @property
    def upsampled(self) -> bool:
        """True when the slide is coarser than the target resolution (patches are upsampled)."""
        return self.mpp > self.target_mpp * (1 + 1e-3)


def grid_spec(
    *, mpp: float, target_mpp: float, patch_px: int, overlap_px: int, level_downsamples: list[float]
) -> GridSpec:
    """The level-0 patch size and stride, and where to read patches from."""
    scale = target_mpp / mpp  # level-0 px per target px
    patch0 = max(1, int(round(patch_px * scale)))
    stride0 = max(1, int(round((patch_px - overlap_px) * scale)))
    level = best_level_for_downsample(level_downsamples, scale)
    level_ds = float(level_downsamples[level])
    read_px = max(1, int(round(patch0 / level_ds)))
    return GridSpec(patch_px, overlap_px, target_mpp, mpp, patch0, stride0, level, level_ds, read_px)


def grid_coords(dimensions: tuple[int, int], spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 (x, y) of every grid patch lying fully inside the slide (row-major order)."""
    width, height = dimensions
    xs = np.arange(0, width - spec.patch_px_level0 + 1, spec.stride_px_level0, dtype=np.int64)
    ys = np.arange(0, height - spec.patch_px_level0 + 1, spec.stride_px_level0, dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys)
    return gx.ravel(), gy.ravel()


def tissue_fraction(mask: np.ndarray, mask_downsample: float, x: np.ndarray, y: np.ndarray, size0: int) -> np.ndarray:
    """Fraction of each patch covered by tissue, exact for a mask of constant pixels.

    Parameters
    ----------
    mask
        Boolean ``[h, w]``; mask pixel (i, j) covers level-0 ``[j, j+1) x [i, i+1)`` times
        ``mask_downsample``.
    mask_downsample
        Level-0 pixels per mask pixel.
    x, y
        Level-0 top-left corners of the patches.
    size0
        Patch side in level-0 pixels.

    Returns
    -------
    numpy.ndarray
        ``float32`` in [0, 1], one per patch. The integral image is interpolated bilinearly at the
        patch corners, which gives the exact covered area at fractional mask coordinates.
    """
    if x.size == 0:
        return np.zeros(0, dtype=np.float32)
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.float64)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.float64), axis=1, out=integral[1:, 1:])
    u0, v0 = x / mask_downsample, y / mask_downsample
    u1, v1 = (x + size0) / mask_downsample, (y + size0) / mask_downsample
    area = _sample(integral, u1, v1) - _sample(integral, u0, v1) - _sample(integral, u1, v0) + _sample(integral, u0, v0)
    fraction = area / ((u1 - u0) * (v1 - v0))
    return np.clip(fraction, 0.0, 1.0).astype(np.float32)


def _sample(integral: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of the integral image at (u, v) (column, row), clamped to the mask."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    u = np.clip(u, 0, w)
    v = np.clip(v, 0, h)
    c0 = np.minimum(np.floor(u).astype(np.int64), w - 1) if w > 0 else np.zeros_like(u, dtype=np.int64)
    r0 = np.minimum(np.floor(v).astype(np.int64), h - 1) if h > 0 else np.zeros_like(v, dtype=np.int64)
    fu, fv = u - c0, v - r0
    top = integral[r0, c0] * (1 - fu) + integral[r0, c0 + 1] * fu
    bottom = integral[r0 + 1, c0] * (1 - fu) + integral[r0 + 1, c0 + 1] * fu
    return top * (1 - fv) + bottom * fv
