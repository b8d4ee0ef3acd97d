"""Write a small OpenSlide-readable pyramidal TIFF (one tiled page per level, resolution tags)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from healnet_cli.core import atomic


def downsample(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downsample of an ``[h, w, 3]`` uint8 image by an integer ``factor`` (edges cropped)."""
    h, w = (pixels.shape[0] // factor) * factor, (pixels.shape[1] // factor) * factor
    blocks = pixels[:h, :w].reshape(h // factor, factor, w // factor, factor, 3)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def write_pyramid(path: str | os.PathLike[str], pixels: np.ndarray, *, mpp: float, n_levels: int = 3, factor: int = 4) -> Path:
    """Atomically write ``pixels`` as a tiled, deflate-compressed pyramidal TIFF.

    Parameters
    ----------
    path
        Output ``.tif`` path.
    pixels
        Level-0 RGB uint8 image ``[h, w, 3]``.
    mpp
        Level-0 resolution in µm/px, stored as TIFF resolution tags (pixels per cm) that OpenSlide
        reports as ``openslide.mpp-x/y``.
    n_levels
        Number of pyramid levels (a level is skipped once it would be smaller than 64 px).
    factor
        Downsample between consecutive levels.

    Returns
    -------
    pathlib.Path
    """
    import tifffile

    levels = [pixels]
    while len(levels) < n_levels and min(levels[-1].shape[:2]) // factor >= 64:
        levels.append(downsample(levels[-1], factor))
    with atomic.atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tif:
        for index, level in enumerate(levels):
            level_mpp = mpp * pixels.shape[1] / level.shape[1]
            tile = 256 if min(level.shape[:2]) >= 256 else 64
            tif.write(
                level,
                tile=(tile, tile),
                photometric="rgb",
                compression="zlib",
                compressionargs={"level": 1},
                resolution=(1e4 / level_mpp, 1e4 / level_mpp),
                resolutionunit="CENTIMETER",
                subfiletype=1 if index else 0,
                metadata=None,
            )
    return Path(path)
