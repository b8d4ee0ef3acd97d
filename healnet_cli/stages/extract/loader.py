"""One DataLoader over every patch of a shard's slides, so the model never waits between slides.

The work is cut into chunks of ``batch_size`` patches, in slide order; worker ``w`` of ``W`` takes
chunks ``w, w + W, ...``. The DataLoader hands chunks back in that global order, so while the model
encodes the last chunks of slide *k*, the other workers already read slide *k + 1*. Each worker opens
its own slide handle lazily (one at a time, closed when it moves on) — handles are never shared
across processes. A chunk is ``uint8 [b, 3, s, s]`` (resized in the worker, see
:mod:`healnet_cli.extractors.transform`), or ``float32 [b, D]`` features for CPU extractors that run
in the workers, or an error message when the slide cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from healnet_cli.core.errors import one_line
from healnet_cli.extractors.transform import resize_patches
from healnet_cli.stages.extract.items import SlidePlan


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
    """One open slide per worker: the current one (chunks arrive in slide order)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.reader: Any = None
        self.error: str = ""

    def get(self, path: str) -> Any:
        if path != self.path:
            self.close()
            self.path = path
            try:
                from healnet_cli.slides import open_slide

                self.reader = open_slide(path)
            except Exception as exc:  # noqa: BLE001 - recorded as this slide's failure
                self.error = one_line(exc)
        if self.error:
            raise RuntimeError(self.error)
        return self.reader

    def close(self) -> None:
        if self.reader is not None:
            try:
                self.reader.close()
            except Exception:  # noqa: BLE001 - closing a broken handle must not fail the batch
                pass
        self.reader, self.path, self.error = None, None, ""


class PatchChunks(IterableDataset):
    """Iterable over this worker's chunks: dicts ``{"slide", "start", "data" | "error"}``.

    Parameters
    ----------
    plans
        The slides, in processing order.
    chunks
        From :func:`make_chunks`.
    input_px, interpolation
        The extractor's eval transform (resize done here, in the worker).
    worker_fn
        Optional CPU feature function applied in the worker (``uint8`` batch → ``float32 [b, D]``).
    """

    def __init__(
        self,
        plans: list[SlidePlan],
        chunks: list[Chunk],
        *,
        input_px: int,
        interpolation: str,
        worker_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        self.plans = plans
        self.chunks = chunks
        self.input_px = input_px
        self.interpolation = interpolation
        self.worker_fn = worker_fn

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, count = (info.id, info.num_workers) if info is not None else (0, 1)
        cache = _SlideCache()
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
            out["data"] = self.read_chunk(reader, plan, chunk)
        except Exception as exc:  # noqa: BLE001 - one unreadable slide must not stop the others
            out["error"] = f"{plan.source_path}: {exc}" if plan.source_path not in str(exc) else str(exc)
        return out

    def read_chunk(self, reader: Any, plan: SlidePlan, chunk: Chunk) -> torch.Tensor:
        """Read, resize (and featurise, for worker extractors) one chunk."""
        size_px = plan.read_patch_px
        images = np.empty((chunk.n, size_px, size_px, 3), dtype=np.uint8)
        for i, (x, y) in enumerate(plan.xy[chunk.start : chunk.start + chunk.n]):
            region = reader.read_region((int(x), int(y)), plan.read_level, (size_px, size_px))
            if region.shape != (size_px, size_px, 3):
                raise RuntimeError(f"read_region returned {region.shape} for a {size_px} px patch at ({x}, {y})")
            images[i] = region
        batch = torch.from_numpy(images).permute(0, 3, 1, 2)  # b 3 h w view of b h w 3: channels-last memory
        batch = resize_patches(batch, self.input_px, self.interpolation)
        if self.worker_fn is not None:
            return self.worker_fn(batch)
        return batch


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers read and resize; the model owns the remaining cores


def make_loader(dataset: PatchChunks, *, num_workers: int, pin_memory: bool, prefetch_factor: int = 2) -> DataLoader:
    """The DataLoader over ``dataset`` (chunks are already batches: ``batch_size=None``)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": prefetch_factor, "worker_init_fn": _worker_init, "persistent_workers": False}
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kwargs)
