"""One DataLoader over every patch of a shard's slides, so the model never waits between slides.

The work is cut into chunks of ``batch_size`` patches, in slide order; worker ``w`` of ``W`` takes
chunks ``w, w + W, ...``. The DataLoader hands chunks back in that global order, so while the model
encodes the last chunks of slide *k*, the other workers already read slide *k + 1*. Each worker opens
its own slide handle lazily (one at a time, closed when it moves on) — handles are never shared
across processes. Neighbouring patches of a grid row are read as one strip
(:func:`strip_runs`: one ``read_region`` call instead of up to :data:`MAX_STRIP_PATCHES`), which
gives the same pixels with fewer calls and colour conversions. Generic-TIFF and Aperio slides are
read through :class:`~healnet_cli.slides.direct_regions.DirectRegions` (:data:`DIRECT_TILES`): the
tiles a strip covers are decoded directly (tifffile), several times cheaper than OpenSlide's
decode and ARGB conversion, wherever that gives OpenSlide's pixels exactly, and kept in a
per-worker cache bounded in bytes (:data:`TILE_CACHE_BYTES`). Extractors defined at their input
resolution (``coarse_read``: ``stain-texture``) read each patch from the coarsest pyramid level that
still holds ``input_px`` pixels (:func:`read_geometry`), which decodes up to 16x fewer pixels on
40x slides. A chunk is ``uint8 [b, 3, s, s]`` (resized in the worker, see
:mod:`healnet_cli.extractors.transform`), or ``float32 [b, D]`` features for CPU extractors that run
in the workers, or an error message when the slide cannot be read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from healnet_cli.core.errors import one_line
from healnet_cli.extractors.transform import resize_patches
from healnet_cli.stages.extract.items import SlidePlan

MAX_STRIP_PATCHES = 16
#: Read generic-TIFF / Aperio tiles directly (same pixels as OpenSlide; False: OpenSlide only).
DIRECT_TILES = True
#: Byte cap of each worker's decoded-tile cache.
TILE_CACHE_BYTES = 32 << 20


@dataclass(frozen=True)
class Chunk:
    """``n`` consecutive patches of one slide (``slide`` indexes the plan list)."""

    slide: int
    start: int
    n: int


def make_chunks(plans: list[SlidePlan], batch_size: int) -> list[Chunk]:
    """Every slide's patches cut into chunks of at most ``batch_size``, in slide order."""
    return [
        Chunk(index, start, min(batch_size, plan.n_patches - start))
        for index, plan in enumerate(plans)
        for start in range(0, plan.n_patches, batch_size)
    ]


class _SlideCache:
    """One open slide per worker: the current one (chunks arrive in slide order), with its tiles
    decoded directly when ``direct_tiles``."""

    def __init__(self, direct_tiles: bool = True) -> None:
        self.direct_tiles = direct_tiles
        self.path: str | None = None
        self.reader: Any = None
        self.error: str = ""

    def get(self, path: str) -> Any:
        if path != self.path:
            self.close()
            self.path = path
            try:
                from healnet_cli.slides import open_slide
                from healnet_cli.slides.direct_regions import direct_regions

                reader = open_slide(path)
                self.reader = direct_regions(reader, cache_bytes=TILE_CACHE_BYTES) if self.direct_tiles else reader
            except Exception as exc:  # noqa: BLE001 - recorded as this slide's failure
                self.error = one_line(exc)
        if self.error:
            raise RuntimeError(self.error)
        return self.reader

    def close(self) -> None:
        if self.reader is not None:
            with contextlib.suppress(Exception):  # closing a broken handle must not fail the batch
                self.reader.close()
        self.reader, self.path, self.error = None, None, ""


class PatchChunks(IterableDataset):
    """Iterable over this worker's chunks: dicts ``{"slide", "start", "data" | "error"}``.

    Parameters
    ----------
    plans
        The slides, in processing order.
    chunks
        From :func:`make_chunks`.
    input_px, interpolation, crop_px
        The extractor's eval transform (resize and crop done here, in the worker).
    worker_fn
        Optional CPU feature function applied in the worker (``uint8`` batch → ``float32 [b, D]``).
    coarse_read
        Read from the coarsest level holding ``input_px`` pixels (see :func:`read_geometry`).
    direct_tiles
        Decode generic-TIFF / Aperio tiles directly (default :data:`DIRECT_TILES`).
    """

    def __init__(
        self,
        plans: list[SlidePlan],
        chunks: list[Chunk],
        *,
        input_px: int,
        interpolation: str,
        crop_px: int | None = None,
        worker_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        coarse_read: bool = False,
        direct_tiles: bool | None = None,
    ):
        super().__init__()
        self.plans = plans
        self.chunks = chunks
        self.input_px = input_px
        self.interpolation = interpolation
        self.crop_px = crop_px
        self.worker_fn = worker_fn
        self.coarse_read = coarse_read
        self.direct_tiles = DIRECT_TILES if direct_tiles is None else bool(direct_tiles)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, count = (info.id, info.num_workers) if info is not None else (0, 1)
        cache = _SlideCache(self.direct_tiles)
        try:
            for chunk in self.chunks[worker::count]:
                yield self._load(chunk, cache)
        finally:
            cache.close()

    def _load(self, chunk: Chunk, cache: _SlideCache) -> dict[str, Any]:
        plan = self.plans[chunk.slide]
        out: dict[str, Any] = {"slide": chunk.slide, "start": chunk.start, "n": chunk.n}
        try:
            reader = cache.get(plan.source_path)
            out["read_level"], out["read_patch_px"] = read_geometry(plan, reader.level_downsamples, self._min_px)
            out["data"] = self.read_chunk(reader, plan, chunk)
        except Exception as exc:  # noqa: BLE001 - one unreadable slide must not stop the others
            out["error"] = f"{plan.source_path}: {exc}" if plan.source_path not in str(exc) else str(exc)
        return out

    @property
    def _min_px(self) -> int | None:
        return self.input_px if self.coarse_read else None

    def read_chunk(self, reader: Any, plan: SlidePlan, chunk: Chunk) -> torch.Tensor:
        """Read (in row strips), resize (and featurise, for worker extractors) one chunk."""
        level, size_px = read_geometry(plan, reader.level_downsamples, self._min_px)
        images = np.empty((chunk.n, size_px, size_px, 3), dtype=np.uint8)
        xy = plan.xy[chunk.start : chunk.start + chunk.n]
        downsample = float(reader.level_downsamples[level])
        for first, count in strip_runs(xy, size_px, downsample):
            x, y = (int(v) for v in xy[first])
            region = reader.read_region((x, y), level, (count * size_px, size_px))
            if region.shape != (size_px, count * size_px, 3):
                raise RuntimeError(
                    f"read_region returned {region.shape} for {count} patch(es) of {size_px} px at ({x}, {y})"
                )
            images[first : first + count] = region.reshape(size_px, count, size_px, 3).transpose(1, 0, 2, 3)
        batch = torch.from_numpy(images).permute(0, 3, 1, 2)  # b 3 h w view of b h w 3: channels-last memory
        batch = resize_patches(batch, self.input_px, self.interpolation, self.crop_px)
        if self.worker_fn is not None:
            return self.worker_fn(batch)
        return batch


def read_geometry(plan: SlidePlan, level_downsamples: list[float], min_px: int | None) -> tuple[int, int]:
    """``(level, patch px at that level)`` to read ``plan``'s patches from.

    The tile stage's level, or with ``min_px`` the coarsest level on which the patch (the same
    level-0 area) spans a whole number of at least ``min_px`` pixels: never coarser than the
    extractor's input, never a fractional patch size.
    """
    best_level, best_px = plan.read_level, plan.read_patch_px
    if min_px is None:
        return best_level, best_px
    span = plan.read_patch_px * float(level_downsamples[plan.read_level])  # level-0 pixels per patch
    for level, downsample in enumerate(level_downsamples):
        px = span / float(downsample)
        if downsample > level_downsamples[best_level] and abs(px - round(px)) < 1e-6 and round(px) >= min_px:
            best_level, best_px = level, int(round(px))
    return best_level, best_px


def strip_runs(
    xy: np.ndarray, size_px: int, downsample: float, max_run: int = MAX_STRIP_PATCHES
) -> list[tuple[int, int]]:
    """``(first, count)`` runs of consecutive patches that tile one row without gaps, so that one
    ``read_region`` of ``count * size_px`` pixels gives exactly the pixels of the separate reads.

    Patches join a run when they share ``y`` and start ``size_px`` level pixels after the previous
    one, on a level whose downsample is a whole number and at level-0 positions divisible by it
    (no sub-pixel offsets); any other patch starts a run of its own.
    """
    n = int(xy.shape[0])
    ds = int(round(downsample))
    exact = abs(downsample - ds) < 1e-9 and ds >= 1
    if n == 0:
        return []
    if not exact:
        return [(i, 1) for i in range(n)]
    step = size_px * ds
    aligned = (xy[:, 0] % ds == 0) & (xy[:, 1] % ds == 0)
    joins = np.zeros(n, dtype=bool)
    joins[1:] = (xy[1:, 1] == xy[:-1, 1]) & (xy[1:, 0] - xy[:-1, 0] == step) & aligned[1:] & aligned[:-1]
    runs: list[tuple[int, int]] = []
    for i in range(n):
        if joins[i] and runs and runs[-1][1] < max_run:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers read and resize; the model owns the remaining cores


def make_loader(dataset: PatchChunks, *, num_workers: int, pin_memory: bool, prefetch_factor: int = 2) -> DataLoader:
    """The DataLoader over ``dataset`` (chunks are already batches: ``batch_size=None``)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": prefetch_factor, "worker_init_fn": _worker_init, "persistent_workers": False}
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kwargs)
