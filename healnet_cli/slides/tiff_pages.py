"""Regions of one TIFF page decoded segment by segment (tifffile + imagecodecs), and direct reads
of the tiled pyramid levels of slides that OpenSlide reads as generic TIFF or Aperio.

A whole-slide downsampled read (:func:`healnet_cli.slides.downsample.read_downsampled`) decodes
every tile of one level; decoding those tiles here (``os.pread`` + tifffile's decoder, both
releasing the GIL) skips OpenSlide's ARGB conversion, premultiplication and tile cache, which cost
several times the decoding itself (``benchmarks/tile_vs_clam.py --profile``). Only layouts whose
pixels are the same through both paths are read directly: tiled, 8-bit RGB, contiguous, and one of
:data:`DIRECT_COMPRESSIONS`; anything else (JPEG 2000, alpha, planar, other vendors) goes through
OpenSlide.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from healnet_cli.core.errors import ItemError
from healnet_cli.slides.base import BACKGROUND

#: ``fetch(offset, count) -> bytes`` of the file.
Fetch = Callable[[int, int], bytes]
#: OpenSlide vendors whose levels are plain tiled TIFF pages (read directly when the layout allows).
DIRECT_VENDORS = ("generic-tiff", "aperio")
#: TIFF compressions read directly: none, LZW, JPEG, Adobe deflate, deflate.
DIRECT_COMPRESSIONS = (1, 5, 7, 8, 32946)
_RGB, _YCBCR = 2, 6


def read_page_region(page, path: Path, x: int, y: int, w: int, h: int, fetch: Fetch) -> np.ndarray:
    """RGB ``uint8`` ``[h, w, 3]`` of the page's pixels ``[y, y + h) x [x, x + w)``; pixels outside
    the page and missing segments are white.

    Raises
    ------
    ItemError
        A segment that cannot be read or decoded (truncated or corrupt file).
    """
    out = np.full((h, w, 3), BACKGROUND, dtype=np.uint8)
    width, height = int(page.imagewidth), int(page.imagelength)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return out
    if page.is_tiled:
        seg_h, seg_w = int(page.tilelength), int(page.tilewidth)
    else:
        seg_h, seg_w = min(int(page.rowsperstrip or height), height), width
    per_row = -(-width // seg_w)
    jpegtables = getattr(page, "jpegtables", None)
    for row in range(y0 // seg_h, (y1 - 1) // seg_h + 1):
        for col in range(x0 // seg_w, (x1 - 1) // seg_w + 1):
            index = row * per_row + col
            count = int(page.databytecounts[index])
            if count == 0:
                continue
            try:
                data = fetch(int(page.dataoffsets[index]), count)
                if len(data) < count:
                    raise ValueError(f"file ends inside segment {index}")
                segment = page.decode(data, index, jpegtables=jpegtables)[0]
            except Exception as exc:
                raise ItemError(
                    f"{path}: cannot decode segment {index} ({' '.join(str(exc).split())}); "
                    "the file may be truncated or corrupt"
                ) from exc
            if segment is None:
                continue
            rgb = to_rgb(np.asarray(segment).reshape(segment.shape[-3], segment.shape[-2], -1))
            sy, sx = row * seg_h, col * seg_w
            ay0, ay1 = max(y0, sy), min(y1, sy + rgb.shape[0])
            ax0, ax1 = max(x0, sx), min(x1, sx + rgb.shape[1])
            if ay1 > ay0 and ax1 > ax0:
                out[ay0 - y : ay1 - y, ax0 - x : ax1 - x] = rgb[ay0 - sy : ay1 - sy, ax0 - sx : ax1 - sx]
    return out


def to_rgb(segment: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` of a decoded segment: 16-bit scaled to 8, gray repeated, RGBA over white."""
    if segment.dtype == np.uint16:
        segment = (segment >> 8).astype(np.uint8)
    channels = segment.shape[-1]
    if channels == 1:
        return np.repeat(segment, 3, axis=-1)
    if channels == 4:
        alpha = segment[..., 3:4].astype(np.uint16)
        rgb = (segment[..., :3].astype(np.uint16) * alpha + BACKGROUND * (255 - alpha) + 127) // 255
        return rgb.astype(np.uint8)
    return segment[..., :3]


class DirectLevel:
    """One tiled pyramid level of a TIFF-based slide, read without OpenSlide (thread-safe).

    Open it with :func:`open_direct_level`; ``read`` takes coordinates in pixels of this level.
    """

    def __init__(self, path: Path, tif, page):
        self.path, self._tif, self._page = path, tif, page
        self._fd = os.open(path, os.O_RDONLY)

    def _fetch(self, offset: int, count: int) -> bytes:
        return os.pread(self._fd, count, offset)

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]`` at level pixels ``(x, y)``; outside the level is white."""
        return read_page_region(self._page, self.path, x, y, w, h, self._fetch)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._tif.close()


def open_direct_level(reader, level: int) -> DirectLevel | None:
    """Direct tile access to ``level`` of an OpenSlide-read generic TIFF or Aperio slide, or None
    when the slide is another format or the level's layout is not one read directly (then read it
    through ``reader``)."""
    props = getattr(reader, "properties", {}) or {}
    if getattr(reader, "backend", "") != "openslide" or props.get("openslide.vendor") not in DIRECT_VENDORS:
        return None
    try:
        import tifffile

        tif = tifffile.TiffFile(reader.path)
    except Exception:  # anything tifffile cannot parse stays with OpenSlide
        return None
    try:
        size = tuple(reader.level_dimensions[level])
        matches = [p for p in tif.pages if _direct_layout(p) and (int(p.imagewidth), int(p.imagelength)) == size]
        base = tif.pages[0]
        if len(matches) == 1 and (int(base.imagewidth), int(base.imagelength)) == tuple(reader.dimensions):
            return DirectLevel(Path(reader.path), tif, matches[0])
    except Exception:
        pass
    tif.close()
    return None


def _direct_layout(page) -> bool:
    """Tiled 8-bit RGB (JPEG: RGB or YCbCr) in one plane, with a compression read directly."""
    if not getattr(page, "is_tiled", False) or int(page.compression) not in DIRECT_COMPRESSIONS:
        return False
    photometric = (_RGB, _YCBCR) if int(page.compression) == 7 else (_RGB,)
    return (
        int(page.photometric) in photometric
        and int(page.samplesperpixel) == 3
        and int(page.bitspersample) == 8
        and int(page.planarconfig) == 1
        and not getattr(page, "extrasamples", ())
    )
