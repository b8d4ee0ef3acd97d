"""Synthetic slides with known tissue geometry for the tile tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff


def disk_slide(
    folder: Path,
    name: str = "disk.tif",
    *,
    size: tuple[int, int] = (2400, 2000),
    mpp: float | None = 0.5,
    radius_frac: float = 0.4,
    levels: int = 3,
    level_factor: int = 4,
    **kwargs,
) -> Path:
    """A pyramid with a disk of tissue (radius ``radius_frac`` x the short side) centred on the slide."""
    radius = radius_frac * min(size)
    fn = tissue_disk_tile_fn(*size, radius_px=radius)
    return write_pyramidal_tiff(Path(folder) / name, fn, mpp, levels, size=size, level_factor=level_factor, **kwargs)


def blank_slide(
    folder: Path, name: str = "blank.tif", *, size: tuple[int, int] = (1200, 1000), mpp: float = 0.5
) -> Path:
    """Glass only: near-white with scanner noise."""
    rng = np.random.default_rng(1)
    pixels = np.clip(240 + rng.integers(-6, 7, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return write_pyramidal_tiff(Path(folder) / name, pixels, mpp, 2)


def expected_disk_patches(
    size: tuple[int, int], radius: float, patch0: int, stride0: int, min_tissue: float, *, samples: int = 16
) -> int:
    """Grid cells whose area inside the disk is >= ``min_tissue``, by supersampling each cell."""
    width, height = size
    cx, cy = width / 2, height / 2
    offsets = (np.arange(samples) + 0.5) / samples * patch0
    count = 0
    for y in range(0, height - patch0 + 1, stride0):
        for x in range(0, width - patch0 + 1, stride0):
            xs, ys = x + offsets, y + offsets
            inside = (xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2 <= radius * radius
            count += inside.mean() >= min_tissue
    return int(count)


def analytic_disk_patches(radius: float, patch0: int) -> float:
    """Disk area over patch area."""
    return math.pi * radius * radius / (patch0 * patch0)
