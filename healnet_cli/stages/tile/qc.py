"""QC images: a plain thumbnail, and the thumbnail with the tissue contour and the kept patch grid."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from healnet_cli.core import atomic

#: Longest side of the saved thumbnail and QC image: the segmentation image shrunk to at most
#: THUMB_MAX_PX, or, when that image is smaller than THUMB_MIN_PX, a separate THUMB_MIN_PX read.
THUMB_MAX_PX = 1024
THUMB_MIN_PX = 512
CONTOUR_RGB = (0, 170, 0)
PATCH_RGB = (30, 60, 230)


def shrink_to(rgb: np.ndarray, max_px: int = THUMB_MAX_PX) -> np.ndarray:
    """``rgb`` area-averaged so that its longest side is at most ``max_px``."""
    h, w = rgb.shape[:2]
    scale = max(h, w) / max_px
    if scale <= 1:
        return rgb
    size = (max(1, int(round(w / scale))), max(1, int(round(h / scale))))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


def qc_image(
    thumb: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray, patch_px_level0: int, thumb_downsample: float
) -> np.ndarray:
    """The thumbnail with the tissue contour (green) and the kept patches (blue outlines, or a blue
    tint when patches are smaller than 3 thumbnail pixels)."""
    h, w = thumb.shape[:2]
    image = Image.fromarray(thumb.copy())
    side = patch_px_level0 / thumb_downsample
    if x.size:
        if side >= 3:
            draw = ImageDraw.Draw(image)
            for x0, y0 in zip((x / thumb_downsample).tolist(), (y / thumb_downsample).tolist(), strict=True):
                draw.rectangle((x0, y0, x0 + side - 1, y0 + side - 1), outline=PATCH_RGB)
        else:
            kept = np.zeros((h, w), dtype=bool)
            cols = np.clip((x / thumb_downsample).astype(int), 0, w - 1)
            rows = np.clip((y / thumb_downsample).astype(int), 0, h - 1)
            span = max(1, int(np.ceil(side)))
            for dy in range(span):
                for dx in range(span):
                    kept[np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)] = True
            pixels = np.asarray(image).copy()
            pixels[kept] = (0.5 * pixels[kept] + 0.5 * np.array(PATCH_RGB)).astype(np.uint8)
            image = Image.fromarray(pixels)
    pixels = np.asarray(image).copy()
    mask_thumb = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)) > 127
    edge = mask_thumb & ~ndimage.binary_erosion(mask_thumb, border_value=0)
    edge = ndimage.binary_dilation(edge) if max(h, w) >= 512 else edge
    pixels[edge] = CONTOUR_RGB
    return pixels


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> Path:
    """Atomically write an RGB PNG (fast compression)."""
    with atomic.atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=1)
    return Path(path)
