"""Write synthetic slides: OpenSlide-readable tiled pyramidal TIFFs, for the demo cohort, tests and
benchmarks (a writer: it lives with the demo that ships it, not with the slide readers).

Each pyramid level is its own tiled page in the main IFD chain (not SubIFDs), deflate-compressed,
with resolution tags and an optional Aperio-style description. Level 0 can come from a callable that
paints one tile at a time, and the coarse levels are built by a tile-wise block average, so slides
far larger than memory can be written (a 50k x 50k slide needs ~0.5 GB, kept in a temporary memory
map, not 7.5 GB).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: ``tile_fn(x, y, width, height) -> uint8 [height, width, 3]``: level-0 pixels of one region.
TileFn = Callable[[int, int, int, int], np.ndarray]
_IN_MEMORY_BYTES = 256 << 20


def write_pyramidal_tiff(
    path: str | os.PathLike[str],
    rgb_level0: np.ndarray | TileFn,
    mpp: float | None,
    levels: int = 3,
    tile: int = 256,
    description: str | None = None,
    resolution_unit: Literal["cm", "inch"] | None = "cm",
    *,
    size: tuple[int, int] | None = None,
    level_factor: int = 4,
    compression_level: int = 1,
    aperio_app_mag: float | None = None,
) -> Path:
    """Write a tiled pyramidal TIFF that OpenSlide opens (generic TIFF, or Aperio with a description).

    Parameters
    ----------
    path
        Output file (``.tif``/``.tiff``/``.svs``).
    rgb_level0
        Level 0 as an RGB ``uint8`` array ``[H, W, 3]``, or a ``tile_fn(x, y, width, height)``
        returning the RGB ``uint8`` pixels ``[height, width, 3]`` of that level-0 region (then ``size``
        is required). Called once per tile, so level 0 is never held in memory.
    mpp
        Level-0 µm/px written to the resolution tags (None: no resolution tags).
    levels
        Number of pyramid levels (level ``k`` is downsampled by ``level_factor ** k``); levels below
        one pixel are dropped.
    tile
        Tile side in pixels (a multiple of 16 and of ``level_factor``).
    description
        ImageDescription of level 0, e.g. ``"Aperio ...|AppMag = 20|MPP = 0.5"`` (see
        :func:`aperio_description`). None writes none.
    resolution_unit
        ``"cm"`` or ``"inch"`` for the resolution tags, or None for no tags.
    size
        ``(width, height)`` of level 0 when ``rgb_level0`` is a callable.
    level_factor
        Downsample between consecutive levels.
    compression_level
        zlib level of the deflate compression (1 fastest).
    aperio_app_mag
        Unused unless ``description`` is None: then writes an Aperio description with this AppMag
        (and ``MPP = mpp``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import tifffile

    path = Path(path)
    if tile % 16 or tile % level_factor:
        raise ValueError(f"tile {tile} must be a multiple of 16 and of level_factor {level_factor}")
    tile_fn, width, height = _level0_source(rgb_level0, size)
    if description is None and aperio_app_mag is not None:
        description = aperio_description(width, height, mpp=mpp, app_mag=aperio_app_mag, tile=tile)
    dims = _level_dims(width, height, levels, level_factor)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".synthetic-") as tmp:
        level1 = (
            _buffer(
                Path(tmp) / "level1.npy",
                _tiles(height, tile) * tile // level_factor,
                _tiles(width, tile) * tile // level_factor,
            )
            if len(dims) > 1
            else None
        )
        with tifffile.TiffWriter(path, bigtiff=width * height * 3 > 2**31) as writer:
            codec = _TileCodec(compression_level, level_factor)
            tiles0 = _level0_tiles(tile_fn, width, height, tile, codec, level1)
            _write_level(writer, tiles0, (height, width), tile, mpp, 1.0, resolution_unit, description, reduced=False)
            if level1 is not None:
                _write_reduced_levels(writer, level1, dims, Path(tmp), tile, level_factor, codec, mpp, resolution_unit)
    return path


def _level0_source(rgb_level0: np.ndarray | TileFn, size: tuple[int, int] | None) -> tuple[TileFn, int, int]:
    """The level-0 painter and ``(width, height)``: a view into an array, or the caller's ``tile_fn`` and ``size``."""
    if isinstance(rgb_level0, np.ndarray):
        array = _as_rgb(rgb_level0)
        return (lambda x, y, w, h: array[y : y + h, x : x + w]), array.shape[1], array.shape[0]
    if size is None:
        raise ValueError("size=(width, height) is required when rgb_level0 is a callable")
    return rgb_level0, int(size[0]), int(size[1])


def _write_reduced_levels(
    writer: Any,
    level1: np.ndarray,
    dims: list[tuple[int, int]],
    tmp: Path,
    tile: int,
    level_factor: int,
    codec: _TileCodec,
    mpp: float | None,
    resolution_unit: Literal["cm", "inch"] | None,
) -> None:
    """Levels 1.. from ``level1`` (filled while level 0 was written): each level is written from its buffer,
    which is first block-averaged into the next level's buffer (a memory map in ``tmp``)."""
    previous: np.ndarray | None = level1
    for k in range(1, len(dims)):
        level_w, level_h = dims[k]
        assert previous is not None
        current = previous[:level_h, :level_w]
        nxt = None
        if k + 1 < len(dims):
            nxt = _buffer(tmp / f"level{k + 1}.npy", *(math.ceil(d / level_factor) for d in (level_h, level_w)))
            _block_mean_into(current, level_factor, nxt)
        _write_level(
            writer,
            _array_tiles(current, tile, codec),
            (level_h, level_w),
            tile,
            mpp,
            float(level_factor**k),
            resolution_unit,
            None,
            reduced=True,
        )
        del current
        previous = nxt


def aperio_description(
    width: int, height: int, *, mpp: float | None, app_mag: float | None = 20, tile: int = 256
) -> str:
    """An Aperio-style ImageDescription (OpenSlide then reports ``aperio.MPP`` and ``aperio.AppMag``)."""
    fields = [f"Aperio Image Library healnet-synthetic\r\n{width}x{height} ({tile}x{tile}) DEFLATE"]
    if app_mag is not None:
        fields.append(f"AppMag = {app_mag:g}")
    if mpp is not None:
        fields.append(f"MPP = {mpp:.4f}")
    return "|".join(fields)


def tissue_disk_tile_fn(
    width: int, height: int, *, center: tuple[float, float] | None = None, radius_px: float | None = None, seed: int = 0
) -> TileFn:
    """A ``tile_fn`` painting a disk of H&E-like texture on a near-white background.

    The texture is a fixed random pattern (tiled), so tiles are cheap to make; the disk edge is
    exact, which makes the analytic patch count of tests exact up to the segmentation resolution.
    """
    cx, cy = center if center is not None else (width / 2, height / 2)
    r = radius_px if radius_px is not None else 0.4 * min(width, height)
    rng = np.random.default_rng(seed)
    pattern = 256
    # a small palette keeps the texture compressible (synthetic slides stay a few hundred MB)
    palette = np.array(
        [[200, 120, 170], [215, 140, 185], [185, 105, 160], [225, 160, 200], [170, 95, 150], [90, 60, 140]],
        dtype=np.uint8,
    )
    weights = np.array([0.3, 0.25, 0.2, 0.1, 0.07, 0.08])
    texture = palette[rng.choice(len(palette), size=(pattern, pattern), p=weights)]
    background = np.full((pattern, pattern, 3), 242, dtype=np.uint8)
    background[rng.random((pattern, pattern)) < 0.05] = 236

    def pick(source: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
        if x % pattern + w <= pattern and y % pattern + h <= pattern:
            return source[y % pattern : y % pattern + h, x % pattern : x % pattern + w]
        return source[np.ix_(np.arange(y, y + h) % pattern, np.arange(x, x + w) % pattern)]

    def tile_fn(x: int, y: int, w: int, h: int) -> np.ndarray:
        # nearest / farthest point of the tile from the centre decide the cheap cases
        nx, ny = min(max(cx, x), x + w), min(max(cy, y), y + h)
        fx, fy = max(abs(x - cx), abs(x + w - cx)), max(abs(y - cy), abs(y + h - cy))
        if (nx - cx) ** 2 + (ny - cy) ** 2 > r * r:
            return pick(background, x, y, w, h)
        if fx * fx + fy * fy <= r * r:
            return pick(texture, x, y, w, h)
        ys = np.arange(y, y + h) + 0.5
        xs = np.arange(x, x + w) + 0.5
        inside = (xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2 <= r * r
        return np.where(inside[..., None], pick(texture, x, y, w, h), pick(background, x, y, w, h))

    return tile_fn


# -- helpers -----------------------------------------------------------------------------------
def _as_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"rgb_level0 must be uint8 [H, W, 3], got {array.dtype} {array.shape}")
    return array[..., :3]


def _tiles(n: int, tile: int) -> int:
    return math.ceil(n / tile)


def _level_dims(width: int, height: int, levels: int, factor: int) -> list[tuple[int, int]]:
    dims = [(width, height)]
    for k in range(1, max(1, levels)):
        ds = factor**k
        if width / ds < 1 or height / ds < 1:
            break
        dims.append((math.ceil(width / ds), math.ceil(height / ds)))
    return dims


def _buffer(path: Path, height: int, width: int) -> np.ndarray:
    """A white uint8 [h, w, 3] buffer, memory-mapped on disk when large."""
    if height * width * 3 <= _IN_MEMORY_BYTES:
        return np.full((height, width, 3), 255, dtype=np.uint8)
    buf = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(height, width, 3))
    buf[:] = 255
    return buf


def _pad(block: np.ndarray, tile: int) -> np.ndarray:
    h, w = block.shape[:2]
    if (h, w) == (tile, tile):
        return np.ascontiguousarray(block)
    out = np.full((tile, tile, 3), 255, dtype=np.uint8)
    out[:h, :w] = block
    return out


def _shrink(block: np.ndarray, factor: int) -> np.ndarray:
    h, w = block.shape[0] // factor, block.shape[1] // factor
    view = block[: h * factor, : w * factor].reshape(h, factor, w, factor, 3)
    return (view.mean(axis=(1, 3), dtype=np.float32) + 0.5).astype(np.uint8)


class _TileCodec:
    """Deflate-compress tiles (and shrink them for the next level), reusing the result for tiles
    whose content was seen recently: synthetic slides repeat tiles, which makes large ones cheap."""

    def __init__(self, level: int, factor: int, capacity: int = 256):
        self.level, self.factor, self.capacity = level, factor, capacity
        self._cache: dict[bytes, tuple[bytes, np.ndarray]] = {}

    def encode(self, tile: np.ndarray) -> tuple[bytes, np.ndarray]:
        key = hashlib.blake2b(tile.data, digest_size=16).digest()
        hit = self._cache.get(key)
        if hit is None:
            hit = (zlib.compress(tile.data, self.level), _shrink(tile, self.factor))
            if len(self._cache) >= self.capacity:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = hit
        return hit


def _level0_tiles(
    tile_fn: TileFn, width: int, height: int, tile: int, codec: _TileCodec, level1: np.ndarray | None
) -> Iterator[bytes]:
    small = tile // codec.factor
    for ty in range(_tiles(height, tile)):
        for tx in range(_tiles(width, tile)):
            x, y = tx * tile, ty * tile
            w, h = min(tile, width - x), min(tile, height - y)
            block = np.asarray(tile_fn(x, y, w, h), dtype=np.uint8)[..., :3]
            if block.shape[:2] != (h, w):
                raise ValueError(f"tile_fn({x}, {y}, {w}, {h}) returned shape {block.shape}")
            data, shrunk = codec.encode(_pad(block, tile))
            if level1 is not None:
                level1[ty * small : (ty + 1) * small, tx * small : (tx + 1) * small] = shrunk
            yield data


def _array_tiles(array: np.ndarray, tile: int, codec: _TileCodec) -> Iterator[bytes]:
    height, width = array.shape[:2]
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            yield codec.encode(_pad(array[y : y + tile, x : x + tile], tile))[0]


def _block_mean_into(source: np.ndarray, factor: int, out: np.ndarray) -> None:
    """``out`` = ``source`` block-averaged by ``factor`` (white past the edge), in row bands."""
    band = factor * 256
    height, width = source.shape[:2]
    for y in range(0, height, band):
        rows = source[y : y + band]
        h = math.ceil(rows.shape[0] / factor) * factor
        w = math.ceil(width / factor) * factor
        padded = np.full((h, w, 3), 255, dtype=np.uint8)
        padded[: rows.shape[0], :width] = rows
        out[y // factor : y // factor + h // factor, : w // factor] = _shrink(padded, factor)


def _write_level(writer, tiles, shape, tile, mpp, downsample, unit, description, *, reduced: bool) -> None:
    kwargs = {}
    if mpp is not None and unit is not None:
        per_unit = {"cm": 1e4, "inch": 25400.0}[unit]
        res = per_unit / (mpp * downsample)
        kwargs = {"resolution": (res, res), "resolutionunit": "CENTIMETER" if unit == "cm" else "INCH"}
    writer.write(
        tiles,
        shape=(shape[0], shape[1], 3),
        dtype=np.uint8,
        tile=(tile, tile),
        photometric="rgb",
        compression="zlib",
        description=description,
        metadata=None,
        subfiletype=1 if reduced else 0,
        **kwargs,
    )
