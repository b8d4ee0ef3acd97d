"""``read_region`` of an OpenSlide-read generic TIFF or Aperio slide with its tiles decoded directly.

:class:`DirectRegions` wraps a :class:`~healnet_cli.slides.base.SlideReader` and answers a
``read_region`` from the tiles of the level (tifffile's decoder, see
:mod:`healnet_cli.slides.tiff_pages`) whenever that gives exactly OpenSlide's pixels:

- the level's layout is one read directly (tiled 8-bit RGB, a compression whose codec is
  installed), and the level's downsample is a whole number dividing the requested location (other
  locations fall between level pixels, where OpenSlide resamples);
- for JPEG tiles, a probe tile (the level's largest, so the most detailed) decodes to the same
  pixels as through OpenSlide; with another libjpeg build the level stays with OpenSlide.

Everything else (other vendors, JPEG 2000, alpha, planar, fractional downsamples) goes to the
wrapped reader. Decoded tiles are kept in one least-recently-used :class:`TileCache` of at most
``cache_bytes`` per wrapper, so overlapping reads (patch grids not aligned with the tiles) decode
each tile once. Like every reader, a wrapper is used by one process: its levels are opened there
lazily and dropped when it is pickled (DataLoader workers open their own).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from healnet_cli.slides._handle import ProcessLocalHandle
from healnet_cli.slides.base import SlideReader
from healnet_cli.slides.tiff_pages import DIRECT_VENDORS, DirectLevel, TileCache, open_direct_level

#: Default byte cap of a wrapper's decoded-tile cache (a 256 px RGB tile is 192 KiB).
TILE_CACHE_BYTES = 32 << 20


class _Levels:
    """The direct levels one process opened (``None``: read through OpenSlide), closed together."""

    def __init__(self) -> None:
        self.levels: dict[int, DirectLevel | None] = {}

    def close(self) -> None:
        for level in self.levels.values():
            if level is not None:
                level.close()
        self.levels.clear()


class DirectRegions(ProcessLocalHandle):
    """A slide reader whose ``read_region`` decodes tiles directly where the pixels are OpenSlide's.

    Parameters
    ----------
    reader
        An open slide (owned by the wrapper from now on: closing the wrapper closes it).
    cache_bytes
        Byte cap of the decoded-tile cache (0: no cache).
    """

    def __init__(self, reader: SlideReader, *, cache_bytes: int = TILE_CACHE_BYTES):
        self.reader = reader
        self.path: Path = reader.path
        self.backend: str = reader.backend
        self.dimensions: tuple[int, int] = reader.dimensions
        self.level_count: int = reader.level_count
        self.level_dimensions: list[tuple[int, int]] = reader.level_dimensions
        self.level_downsamples: list[float] = reader.level_downsamples
        self.properties: Mapping[str, str] = reader.properties
        self.thread_safe = bool(getattr(reader, "thread_safe", False))
        self.cache = TileCache(cache_bytes)
        self._handle: _Levels | None = None
        self._pid = -1

    def _levels(self) -> _Levels:
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = _Levels(), os.getpid()
            self.cache = TileCache(self.cache.max_bytes)  # new, not cleared: a forked lock may be held
        return self._handle

    def direct_level(self, level: int) -> DirectLevel | None:
        """The direct reader of ``level`` (opened and checked on first use), or None when the
        level is read through the wrapped reader."""
        levels = self._levels().levels
        if level not in levels:
            levels[level] = self._open_level(level)
        return levels[level]

    def _open_level(self, level: int) -> DirectLevel | None:
        if _whole(self.level_downsamples[level]) is None:
            return None
        direct = open_direct_level(self.reader, level, cache=self.cache)
        if direct is not None and direct.lossy and not self._probe_matches(direct, level):
            direct.close()
            return None
        return direct

    def _probe_matches(self, direct: DirectLevel, level: int) -> bool:
        """Whether the level's largest tile decodes to the wrapped reader's pixels."""
        page = direct.page
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        if counts.size == 0 or counts.max() == 0:
            return True  # no tile holds data: every pixel is background either way
        index = int(counts.argmax())
        tile_w, tile_h = int(page.tilewidth), int(page.tilelength)
        per_row = -(-int(page.imagewidth) // tile_w)
        x, y = (index % per_row) * tile_w, (index // per_row) * tile_h
        w, h = min(tile_w, int(page.imagewidth) - x), min(tile_h, int(page.imagelength) - y)
        ds = int(round(self.level_downsamples[level]))
        expected = self.reader.read_region((x * ds, y * ds), level, (w, h))
        return bool(np.array_equal(direct.read(x, y, w, h), expected))

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]``, the wrapped reader's pixels (see the module docstring)."""
        level = int(level)
        ds = _whole(self.level_downsamples[level])
        x, y = int(location[0]), int(location[1])
        if ds is not None and x % ds == 0 and y % ds == 0:
            direct = self.direct_level(level)
            if direct is not None:
                return direct.read(x // ds, y // ds, int(size[0]), int(size[1]))
        return self.reader.read_region((x, y), level, size)

    def close(self) -> None:
        super().close()
        self.cache.clear()
        self.reader.close()

    def __repr__(self) -> str:
        return f"DirectRegions({self.reader!r})"


def direct_regions(reader: SlideReader, *, cache_bytes: int = TILE_CACHE_BYTES) -> SlideReader:
    """``reader`` wrapped in :class:`DirectRegions` when it is an OpenSlide generic-TIFF or Aperio
    slide (whose levels may be read directly), else ``reader`` itself."""
    props = getattr(reader, "properties", {}) or {}
    if getattr(reader, "backend", "") != "openslide" or props.get("openslide.vendor") not in DIRECT_VENDORS:
        return reader
    return DirectRegions(reader, cache_bytes=cache_bytes)


def _whole(downsample: float) -> int | None:
    """``downsample`` as an int when it is a whole number (>= 1), else None."""
    k = int(round(float(downsample)))
    return k if k >= 1 and abs(float(downsample) - k) < 1e-9 else None
