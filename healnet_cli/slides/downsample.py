"""Downsampled whole-slide reads in bounded memory (thumbnails, segmentation images).

The slide is read block by block from the best pyramid level and each block is shrunk (area
average) before the next is read, so memory is the output image plus one block, whatever the size
of the slide. A slide without a pyramid (a single huge level) is handled the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from PIL import Image

from healnet_cli.core.hpc import available_cpus
from healnet_cli.slides.base import SlideReader, best_level_for_downsample
from healnet_cli.slides.tiff_pages import open_direct_level

#: Largest side (in pixels of the level read) of one block.
BLOCK_PX = 2048
#: Most blocks read at once (for thread-safe readers and directly decoded levels).
MAX_THREADS = 4
#: ``read(x, y, w, h)`` of one level's pixels, in level coordinates.
LevelRead = Callable[[int, int, int, int], np.ndarray]


def downsampled_size(dimensions: tuple[int, int], downsample: float) -> tuple[int, int]:
    """(w, h) of the whole slide at ``downsample`` (at least 1 x 1)."""
    width, height = dimensions
    return max(1, math.ceil(width / downsample)), max(1, math.ceil(height / downsample))


def read_downsampled(
    reader: SlideReader, downsample: float, *, block_px: int = BLOCK_PX, max_threads: int = MAX_THREADS
) -> np.ndarray:
    """The whole slide at ``downsample`` (level-0 px per output px, >= 1) as RGB ``uint8``.

    Parameters
    ----------
    reader
        An open slide.
    downsample
        Level-0 pixels per output pixel; values below 1 are clamped to 1.
    block_px
        Largest block side read at once, in pixels of the level read (bounds the memory).
    max_threads
        Blocks read concurrently when the reader is ``thread_safe`` or the level is decoded
        directly (capped by the CPUs this job may use).

    Returns
    -------
    numpy.ndarray
        ``[ceil(H / downsample), ceil(W / downsample), 3]``.
    """
    downsample = max(1.0, float(downsample))
    out_w, out_h = downsampled_size(reader.dimensions, downsample)
    level = best_level_for_downsample(list(reader.level_downsamples), downsample)
    level_ds = float(reader.level_downsamples[level])
    level_w, level_h = reader.level_dimensions[level]
    factor = downsample / level_ds  # level px per output px, >= ~1
    out = np.empty((out_h, out_w, 3), dtype=np.uint8)
    step = max(1, int(block_px // max(factor, 1.0)))
    blocks = [
        (oy0, min(out_h, oy0 + step), ox0, min(out_w, ox0 + step))
        for oy0 in range(0, out_h, step)
        for ox0 in range(0, out_w, step)
    ]

    def read_block(read_level: LevelRead, block: tuple[int, int, int, int]) -> None:
        oy0, oy1, ox0, ox1 = block
        ly0, ly1 = _span(oy0, oy1, factor, level_h)
        lx0, lx1 = _span(ox0, ox1, factor, level_w)
        pixels = read_level(lx0, ly0, lx1 - lx0, ly1 - ly0)
        box = (ox0 * factor - lx0, oy0 * factor - ly0, ox1 * factor - lx0, oy1 * factor - ly0)
        out[oy0:oy1, ox0:ox1] = _shrink(pixels, (ox1 - ox0, oy1 - oy0), box)

    with level_reader(reader, level) as (read_level, thread_safe):
        threads = min(max_threads, available_cpus(), len(blocks)) if thread_safe else 1
        if threads <= 1:
            for block in blocks:
                read_block(read_level, block)
        else:  # decoders release the GIL; memory stays ~ threads blocks
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(lambda block: read_block(read_level, block), blocks):
                    pass
    return out


@contextmanager
def level_reader(reader: SlideReader, level: int) -> Iterator[tuple[LevelRead, bool]]:
    """``read(x, y, w, h)`` of pixels of ``level`` (level coordinates) and whether it may be called
    from several threads: tiles decoded directly for generic-TIFF / Aperio levels
    (:func:`healnet_cli.slides.tiff_pages.open_direct_level`), else the reader's ``read_region``."""
    direct = open_direct_level(reader, level)
    if direct is not None:
        try:
            yield direct.read, True
        finally:
            direct.close()
        return
    level_ds = float(reader.level_downsamples[level])

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        return reader.read_region((int(round(x * level_ds)), int(round(y * level_ds))), level, (w, h))

    yield read, bool(getattr(reader, "thread_safe", False))


def _span(o0: int, o1: int, factor: float, limit: int) -> tuple[int, int]:
    """Level-pixel span covered by output pixels [o0, o1) (at least one pixel, inside the level
    when possible; pixels past the edge are read as background)."""
    start = min(int(math.floor(o0 * factor)), max(limit - 1, 0))
    end = max(start + 1, int(math.ceil(o1 * factor)))
    return start, end


def _shrink(block: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """Area-average the region ``box`` (left, top, right, bottom; fractional pixels) of ``block`` to
    ``size`` = (w, h)."""
    height, width = block.shape[:2]
    fx, fy = (box[2] - box[0]) / size[0], (box[3] - box[1]) / size[1]
    if box == (0, 0, width, height) and fx == fy and float(fx).is_integer():
        k = int(fx)
        if k == 1:
            return block
        if k & (k - 1) == 0:  # PIL's box reduction: exact (round half up) for powers of two, ~8x faster
            return np.asarray(Image.fromarray(block).reduce(k))
        view = block.reshape(size[1], k, size[0], k, 3)
        return (view.mean(axis=(1, 3), dtype=np.float32) + 0.5).astype(np.uint8)
    return np.asarray(Image.fromarray(block).resize(size, Image.Resampling.BOX, box=box))


def thumbnail_downsample(dimensions: tuple[int, int], max_px: int) -> float:
    """The downsample that makes the longest side of the slide at most ``max_px``."""
    longest = max(dimensions)
    return max(1.0, longest / max(1, int(max_px)))


def read_thumbnail(reader: SlideReader, max_px: int) -> np.ndarray:
    """A thumbnail whose longest side is at most ``max_px``, in bounded memory."""
    return read_downsampled(reader, thumbnail_downsample(reader.dimensions, max_px))
