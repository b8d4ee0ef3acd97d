"""The extraction loop: stream chunks from the loader, encode them, commit each slide when complete.

Each complete slide is committed by the stages' one protocol, :func:`healnet_cli.core.runner.write_item`
(old manifest removed, outputs written atomically, new manifest last, nothing committed once the
lock was lost), so a killed job leaves each slide either committed or recomputed on the rerun. Failures (unreadable
slide, non-finite features) are recorded per slide and the batch goes on unless ``on_error="fail"``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from healnet_cli.artifacts.features import features_path, write_clam_pt, write_features
from healnet_cli.core import atomic
from healnet_cli.core.console import Console
from healnet_cli.core.errors import ItemError, one_line
from healnet_cli.core.runner import ItemResult, WorkItem, write_item
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore
from healnet_cli.extractors import Extractor
from healnet_cli.stages.extract.items import SlidePlan
from healnet_cli.stages.extract.loader import PatchChunks, make_chunks, make_loader


@dataclass
class EngineOptions:
    """Loop settings (not part of the cache key, except ``dtype`` and ``export_clam``)."""

    batch_size: int = 64
    num_workers: int = 1
    out_dtype: torch.dtype = torch.float16
    export_clam: bool = False
    on_error: str = "continue"
    debug: bool = False


@dataclass
class _Slide:
    item: WorkItem
    plan: SlidePlan
    n_chunks: int
    parts: list[torch.Tensor] = field(default_factory=list)
    received: int = 0
    done: bool = False


@dataclass
class EngineStats:
    """What one run of the loop did (for benchmarks and logs)."""

    patches: int = 0
    seconds: float = 0.0
    slides_done: int = 0

    @property
    def patches_per_s(self) -> float:
        return self.patches / self.seconds if self.seconds > 0 else 0.0


def extract_slides(
    work: list[tuple[WorkItem, SlidePlan]],
    extractor: Extractor,
    *,
    store: ArtifactStore,
    status: StatusTable,
    console: Console,
    options: EngineOptions,
) -> EngineStats:
    """Extract and commit every slide of ``work`` (already locked by the caller), recording outcomes."""
    plans = [plan for _, plan in work]
    slides = [_Slide(item, plan, -(-plan.n_patches // options.batch_size)) for item, plan in work]
    chunks = make_chunks(plans, options.batch_size)
    dataset = PatchChunks(
        plans,
        chunks,
        input_px=extractor.transform.input_px,
        interpolation=extractor.transform.interpolation,
        crop_px=extractor.transform.crop_px,
        worker_fn=extractor.worker_fn,
        coarse_read=extractor.coarse_read,
    )
    num_workers = min(options.num_workers, len(chunks))
    pin = extractor.device.type == "cuda" and extractor.worker_fn is None
    loader = make_loader(dataset, num_workers=num_workers, pin_memory=pin)
    stats = EngineStats()
    clock = _Clock()
    for slide in slides:  # slides without patches: nothing to read
        if slide.n_chunks == 0 and not _finish(slide, extractor, store, status, console, options, clock, stats):
            return stats
    progress = console.track(
        _guarded(loader),
        total=sum(plan.n_patches for plan in plans),
        description="extract",
        unit="patches",
        weight=lambda batch: int(batch.get("n", 0)),
        extra=lambda: f"{sum(slide.done for slide in slides)}/{len(slides)} slides",
    )
    for batch in progress:
        if "crash" in batch:  # a worker died (segfault in a reader, out of shared memory): fail the rest
            for slide in slides:
                if not slide.done:
                    _fail(slide, f"patch loader failed: {batch['crash']}", status, console, options, clock)
            break
        slide = slides[batch["slide"]]
        if slide.done:
            continue
        if "error" in batch:
            if _fail(slide, batch["error"], status, console, options, clock):
                break
            continue
        _receive(slide, batch, extractor, stats)
        if slide.received == slide.n_chunks and not _finish(
            slide, extractor, store, status, console, options, clock, stats
        ):
            break
    del loader
    stats.seconds = clock.total()
    return stats


def _receive(slide: _Slide, batch: dict[str, Any], extractor: Extractor, stats: EngineStats) -> None:
    """Encode (unless the workers did) and keep one chunk; record the level it was read from."""
    data = batch["data"]
    if extractor.worker_fn is None:
        data = extractor.encode(data.to(extractor.device, non_blocking=True))
    slide.parts.append(data)
    slide.received += 1
    slide.plan.read_level, slide.plan.read_patch_px = int(batch["read_level"]), int(batch["read_patch_px"])
    stats.patches += int(data.shape[0])


def _guarded(loader: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The loader's batches; a crash of the loader itself becomes a final ``{"crash": reason}``."""
    try:
        yield from loader
    except Exception as exc:  # noqa: BLE001 - reported per remaining slide, the run still reports
        yield {"crash": one_line(exc)}


class _Clock:
    """Seconds since the loop started, and per slide since the previous slide finished."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds

    def total(self) -> float:
        return time.perf_counter() - self.start


def _finish(
    slide: _Slide,
    extractor: Extractor,
    store: ArtifactStore,
    status: StatusTable,
    console: Console,
    options: EngineOptions,
    clock: _Clock,
    stats: EngineStats,
) -> bool:
    """Check, write and commit one complete slide; False when the batch must stop."""
    try:
        committed = write_item(slide.item, lambda: _write_slide(slide, extractor, store, options),
                               store=store, status=status, console=console, start=clock.last)  # fmt: skip
        clock.lap()
    except Exception as exc:  # noqa: BLE001 - one bad slide never sinks the batch
        full = atomic.disk_full_error(exc, store.folder / slide.item.id)
        if full is not None:  # every further slide would fail too: stop, keep what is committed
            _fail(slide, one_line(full), status, console, options, clock, exc=exc)
            raise full from exc
        return not _fail(slide, one_line(exc), status, console, options, clock, exc=exc)
    finally:
        slide.done = True
        slide.parts.clear()
        store.release_lock(slide.item.id)
    stats.slides_done += committed
    return True


def _fail(
    slide: _Slide,
    reason: str,
    status: StatusTable,
    console: Console,
    options: EngineOptions,
    clock: _Clock,
    *,
    exc: BaseException | None = None,
) -> bool:
    """Record ``slide`` as failed; True when ``--on-error fail`` stops the batch."""
    slide.done = True
    slide.parts.clear()
    status.add(slide.item.id, "failed", reason=reason, seconds=clock.lap())
    console.error(f"{slide.item.id}: {reason}")
    if options.debug and exc is not None:
        traceback.print_exception(exc)
    return options.on_error == "fail"


def _write_slide(slide: _Slide, extractor: Extractor, store: ArtifactStore, options: EngineOptions) -> ItemResult:
    features = torch.cat(slide.parts) if slide.parts else torch.zeros((0, extractor.dim))
    if features.shape != (slide.plan.n_patches, extractor.dim):
        raise ItemError(f"features {tuple(features.shape)} for {slide.plan.n_patches} patches of dim {extractor.dim}")
    bad = int((~torch.isfinite(features)).sum())
    if bad:
        raise ItemError(
            f"{bad} non-finite feature values (NaN/inf) from {extractor.name} under {extractor.precision}; "
            "check the weights file, or rerun with --precision fp32"
        )
    features = features.float().cpu()
    out = features.to(options.out_dtype)
    if not torch.isfinite(out).all():
        raise ItemError(
            f"features overflow {options.out_dtype} (max |x| = {features.abs().max():.3g}); rerun with --dtype float32"
        )
    item_id = slide.item.id
    path = features_path(store.folder, item_id)
    coords = torch.from_numpy(slide.plan.xy).to(torch.int64)
    write_features(path, out, coords, slide_provenance(slide.plan, extractor))
    outputs = [path]
    if options.export_clam:
        outputs.append(write_clam_pt(store.output_path(item_id, ".pt"), features))
    warning = f"0 patches; wrote a (0, {extractor.dim}) matrix" if slide.plan.n_patches == 0 else ""
    return ItemResult(outputs, {"n_patches": slide.plan.n_patches, "dim": extractor.dim}, warning)


def slide_provenance(plan: SlidePlan, extractor: Extractor) -> dict[str, Any]:
    """The provenance written into a slide's features file."""
    meta = plan.meta
    patch_mpp = meta.get("target_mpp")
    if patch_mpp is None and meta.get("mpp") is not None:
        patch_mpp = float(meta["mpp"]) * float(meta.get("patch_px_level0", 1)) / float(meta.get("patch_px", 1))
    return {
        **extractor.provenance(),
        "slide_id": plan.slide_id,
        "case_id": meta.get("case_id") or plan.slide_id,
        "source_path": plan.source_path,
        "patch_mpp": patch_mpp,
        "patch_px": meta.get("patch_px"),
        "read_level": plan.read_level,
        "read_patch_px": plan.read_patch_px,
    }
