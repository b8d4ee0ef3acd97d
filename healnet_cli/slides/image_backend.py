"""Plain-image reader (PIL): PNG and JPEG, one level, decoded whole on first pixel access.

OpenSlide cannot open PNG, and plain images carry no trustworthy physical resolution, so their mpp
must come from ``--slides-csv``/``--mpp-csv`` or ``--default-mpp``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from healnet_cli.core.errors import ItemError
from healnet_cli.slides.base import BACKGROUND
from healnet_cli.slides.downsample import thumbnail_downsample

BACKEND = "image"
#: Plain images above this many pixels are refused (they are decoded whole); convert them to a
#: pyramidal TIFF instead.
MAX_PIXELS = 1_000_000_000


class ImageReader:
    """A PNG/JPEG image read with PIL (a single-level "slide")."""

    backend = BACKEND

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._pixels: np.ndarray | None = None
        try:
            with Image.open(self.path) as image:
                image.verify()
            with Image.open(self.path) as image:
                width, height = image.size
                fmt, mode = image.format or "", image.mode
        except Image.DecompressionBombError as exc:
            raise ItemError(
                f"{self.path}: plain image too large to decode whole ({' '.join(str(exc).split())}); "
                "convert it to a pyramidal TIFF (e.g. `vips tiffsave in.png out.tif --tile --pyramid`)"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ItemError(
                f"{self.path}: not a readable image ({' '.join(str(exc).split())}); check the file"
            ) from exc
        if width * height > MAX_PIXELS:
            raise ItemError(
                f"{self.path}: {width}x{height} plain image is too large to decode whole; "
                "convert it to a pyramidal TIFF (e.g. `vips tiffsave --tile --pyramid`)"
            )
        self.dimensions: tuple[int, int] = (int(width), int(height))
        self.level_count = 1
        self.level_dimensions: list[tuple[int, int]] = [self.dimensions]
        self.level_downsamples: list[float] = [1.0]
        self.properties: Mapping[str, str] = {"image.format": fmt, "image.mode": mode}

    def _load(self) -> np.ndarray:
        if self._pixels is None:
            try:
                with Image.open(self.path) as image:
                    image.load()
                    self._pixels = _to_rgb(image)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise ItemError(
                    f"{self.path}: cannot decode image ({' '.join(str(exc).split())}); the file may be truncated"
                ) from exc
        return self._pixels

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]``; areas outside the image are white."""
        if level != 0:
            raise ValueError(f"{self.path}: plain images have one level (asked for level {level})")
        pixels = self._load()
        x, y = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        out = np.full((h, w, 3), BACKGROUND, dtype=np.uint8)
        width, height = self.dimensions
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = pixels[y0:y1, x0:x1]
        return out

    def thumbnail(self, max_px: int) -> np.ndarray:
        """RGB thumbnail, longest side <= ``max_px`` (area average)."""
        downsample = thumbnail_downsample(self.dimensions, max_px)
        width, height = (max(1, int(np.ceil(d / downsample))) for d in self.dimensions)
        size = (width, height)
        image = Image.fromarray(self._load())
        if size == self.dimensions:
            return np.asarray(image)
        return np.asarray(image.resize(size, Image.Resampling.BOX))

    def close(self) -> None:
        self._pixels = None

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ImageReader({str(self.path)!r}, dimensions={self.dimensions})"


def _to_rgb(image: Image.Image) -> np.ndarray:
    """RGB array; transparency composited over white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (BACKGROUND,) * 3 + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))
