"""Regions of one TIFF page decoded segment by segment (tifffile + imagecodecs), and direct reads
of the tiled pyramid levels of slides that OpenSlide reads as generic TIFF or Aperio.

A whole-slide downsampled read (:func:`healnet_cli.slides.downsample.read_downsampled`) decodes
every tile of one level; decoding those tiles here (``os.pread`` + tifffile's decoder, both
releasing the GIL) skips OpenSlide's ARGB conversion, premultiplication and tile cache, which cost
several times the decoding itself (``benchmarks/tile_vs_clam.py --profile``). Only layouts whose
pixels are the same through both paths are read directly: tiled, 8-bit RGB, contiguous, and one of
:data:`DIRECT_COMPRESSIONS`; anything else (JPEG 2000, alpha, planar, other vendors) goes through
OpenSlide. A compression whose codec is not installed (tifffile decodes JPEG and LZW only with
``imagecodecs``) also goes through OpenSlide.

Decoded tiles can be kept in a :class:`TileCache` (least recently used dropped first, bounded in
bytes), so that neighbouring reads covering the same tile decode it once.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import cast

import numpy as np

from healnet_cli.core.errors import ItemError
from healnet_cli.slides.base import BACKGROUND

#: ``fetch(offset, count) -> bytes`` of the file.
Fetch = Callable[[int, int], bytes]
#: OpenSlide vendors whose levels are plain tiled TIFF pages (read directly when the layout allows).
DIRECT_VENDORS = ("generic-tiff", "aperio")
#: TIFF compressions read directly: none, LZW, JPEG, Adobe deflate, deflate.
DIRECT_COMPRESSIONS = (1, 5, 7, 8, 32946)
#: Lossy compressions among them (JPEG): their pixels depend on the decoder build.
LOSSY_COMPRESSIONS = (7,)
_RGB, _YCBCR = 2, 6
#: Cache keys of open levels (never reused in a process, unlike ``id()``).
_LEVEL_KEYS = itertools.count()


class TileCache:
    """Decoded segments keyed by the caller, least recently used dropped first once the cached
    arrays hold more than ``max_bytes`` (thread-safe; arrays are stored read-only).

    Parameters
    ----------
    max_bytes
        Byte cap of the cached arrays (0 caches nothing).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._tiles: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tiles)

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile

    def put(self, key: Hashable, tile: np.ndarray) -> None:
        if tile.nbytes > self.max_bytes:
            return
        tile = np.ascontiguousarray(tile)
        tile.flags.writeable = False
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._tiles[key] = tile
            self.nbytes += tile.nbytes
            while self.nbytes > self.max_bytes:
                _, dropped = self._tiles.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self.nbytes = 0

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes}  # a copy in another process starts empty

    def __setstate__(self, state: dict) -> None:
        TileCache.__init__(self, state["max_bytes"])


def read_page_region(
    page,
    path: Path,
    x: int,
    y: int,
    w: int,
    h: int,
    fetch: Fetch,
    *,
    cache: TileCache | None = None,
    cache_key: Hashable = None,
) -> np.ndarray:
    """RGB ``uint8`` ``[h, w, 3]`` of the page's pixels ``[y, y + h) x [x, x + w)``; pixels outside
    the page and missing segments are white. With ``cache``, decoded segments are looked up and
    kept under ``(cache_key, segment index)`` (``cache_key`` must name the page).

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
            rgb = cache.get((cache_key, index)) if cache is not None else None
            if rgb is None:
                rgb = _decode_segment(page, path, index, fetch, jpegtables)
                if rgb is None:
                    continue
                if cache is not None:
                    cache.put((cache_key, index), rgb)
            sy, sx = row * seg_h, col * seg_w
            ay0, ay1 = max(y0, sy), min(y1, sy + rgb.shape[0])
            ax0, ax1 = max(x0, sx), min(x1, sx + rgb.shape[1])
            if ay1 > ay0 and ax1 > ax0:
                out[ay0 - y : ay1 - y, ax0 - x : ax1 - x] = rgb[ay0 - sy : ay1 - sy, ax0 - sx : ax1 - sx]
    return out


def _decode_segment(page, path: Path, index: int, fetch: Fetch, jpegtables) -> np.ndarray | None:
    """RGB ``uint8`` of segment ``index`` (tile or strip, padded to the full segment size), or None
    when the file holds no data for it."""
    count = int(page.databytecounts[index])
    if count == 0:
        return None
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
        return None
    return to_rgb(np.asarray(segment).reshape(segment.shape[-3], segment.shape[-2], -1))


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

    def __init__(self, path: Path, tif, page, *, cache: TileCache | None = None):
        self.path, self._tif, self._page, self.cache = path, tif, page, cache
        self._key = next(_LEVEL_KEYS)
        self._fd = os.open(path, os.O_RDONLY)

    @property
    def page(self):
        """The tifffile page of this level."""
        return self._page

    @property
    def lossy(self) -> bool:
        """Whether the tiles are JPEG (pixels depend on the decoder build)."""
        return int(self._page.compression) in LOSSY_COMPRESSIONS

    def _fetch(self, offset: int, count: int) -> bytes:
        return os.pread(self._fd, count, offset)

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]`` at level pixels ``(x, y)``; outside the level is white."""
        return read_page_region(self._page, self.path, x, y, w, h, self._fetch, cache=self.cache, cache_key=self._key)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._tif.close()


def open_direct_level(reader, level: int, *, cache: TileCache | None = None) -> DirectLevel | None:
    """Direct tile access to ``level`` of an OpenSlide-read generic TIFF or Aperio slide, or None
    when the slide is another format or the level's layout is not one read directly (then read it
    through ``reader``). Decoded tiles go to ``cache`` when given."""
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
        pages = cast("Iterable[tifffile.TiffPage]", tif.pages)  # useframes is off: every page is a TiffPage
        matches = [p for p in pages if _direct_layout(p) and (int(p.imagewidth), int(p.imagelength)) == size]
        base = cast(tifffile.TiffPage, tif.pages[0])
        if len(matches) == 1 and (int(base.imagewidth), int(base.imagelength)) == tuple(reader.dimensions):
            return DirectLevel(Path(reader.path), tif, matches[0], cache=cache)
    except Exception:
        pass
    tif.close()
    return None


def _direct_layout(page) -> bool:
    """Tiled 8-bit RGB (JPEG: RGB or YCbCr) in one plane, with a compression read directly whose
    codec is installed."""
    if not getattr(page, "is_tiled", False) or int(page.compression) not in DIRECT_COMPRESSIONS:
        return False
    if not codec_available(int(page.compression)):
        return False
    photometric = (_RGB, _YCBCR) if int(page.compression) == 7 else (_RGB,)
    return (
        int(page.photometric) in photometric
        and int(page.samplesperpixel) == 3
        and int(page.bitspersample) == 8
        and int(page.planarconfig) == 1
        and not getattr(page, "extrasamples", ())
    )


def codec_available(compression: int) -> bool:
    """Whether tifffile can decode ``compression`` here (JPEG and LZW need ``imagecodecs``)."""
    import tifffile

    return compression in tifffile.TIFF.DECOMPRESSORS
