"""``healnet tile``: per slide, resolve the mpp, detect tissue on a low-resolution read, lay the patch
grid at the target mpp, keep patches with enough tissue, and write coordinates + QC images."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.artifacts.coords import SlideCoords, coords_path, write_coords
from healnet_cli.core.config import write_resolved_config
from healnet_cli.core.console import Console
from healnet_cli.core.errors import ItemError
from healnet_cli.core.fingerprint import combine, file_fingerprint
from healnet_cli.core.hpc import parse_shard
from healnet_cli.core.runner import ItemResult, WorkItem, report, run_items
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore
from healnet_cli.slides import open_slide, read_downsampled, resolve_mpp
from healnet_cli.slides.base import SlideReader, best_level_for_downsample, companion_folder
from healnet_cli.slides.downsample import thumbnail_downsample
from healnet_cli.stages.tile import export, qc
from healnet_cli.stages.tile.config import TileConfig
from healnet_cli.stages.tile.grid import GridSpec, grid_coords, grid_spec, tissue_fraction
from healnet_cli.stages.tile.inputs import SlideInput, collect_slides, read_mpp_csv, unreadable_reason
from healnet_cli.stages.tile.tissue import detect_tissue

#: Bump when the code changes a slide's outputs for the same options (recomputes cached slides).
ALGORITHM_VERSION = 1
#: Longest side of the segmentation image: bounds memory even for a wrong, huge mpp.
MAX_SEG_PX = 8192
#: A patch spans at least this many segmentation pixels per side.
MIN_MASK_PX_PER_PATCH = 4
#: A separate, sharper thumbnail read (for small slides) may read at most this many pixels.
MAX_THUMB_READ_PX = 16_000_000
THUMB_SUFFIX = ".thumb.png"
QC_SUFFIX = ".qc.png"


@dataclass
class TiledSlide:
    """The result of tiling one slide (before anything is written)."""

    coords: SlideCoords
    mask: np.ndarray
    mask_downsample: float
    thumb: np.ndarray
    thumb_downsample: float
    spec: GridSpec
    warnings: list[str]


def segmentation_mpp(config: TileConfig) -> float:
    """``--seg-mpp``, refined so that a patch spans at least :data:`MIN_MASK_PX_PER_PATCH` mask
    pixels (tissue fractions of small patches stay accurate)."""
    patch_um = config.patch_size * config.mpp
    return min(config.seg_mpp, patch_um / MIN_MASK_PX_PER_PATCH)


def segmentation_image(reader: SlideReader, mpp: float, config: TileConfig) -> tuple[np.ndarray, float]:
    """The whole slide at the segmentation resolution (RGB) and its downsample (level-0 px per px)."""
    width, height = reader.dimensions
    seg_ds = max(1.0, segmentation_mpp(config) / mpp, max(width, height) / MAX_SEG_PX)
    return read_downsampled(reader, seg_ds), seg_ds


def thumbnail_image(reader: SlideReader, seg_rgb: np.ndarray, seg_ds: float) -> tuple[np.ndarray, float]:
    """The QC thumbnail and its downsample: the segmentation image shrunk, or, for a small slide whose
    segmentation image is under :data:`qc.THUMB_MIN_PX`, a cheap sharper read."""
    thumb_ds = thumbnail_downsample(reader.dimensions, qc.THUMB_MIN_PX)
    thumb_level = best_level_for_downsample(list(reader.level_downsamples), thumb_ds)
    thumb_read_px = reader.level_dimensions[thumb_level][0] * reader.level_dimensions[thumb_level][1]
    if max(seg_rgb.shape[:2]) >= qc.THUMB_MIN_PX or seg_ds <= thumb_ds or thumb_read_px > MAX_THUMB_READ_PX:
        thumb = qc.shrink_to(seg_rgb)
        return thumb, seg_ds * seg_rgb.shape[1] / thumb.shape[1]
    return read_downsampled(reader, thumb_ds), thumb_ds


def tile_slide(reader: SlideReader, slide: SlideInput, config: TileConfig) -> TiledSlide:
    """Tile one open slide in memory (bounded by the segmentation image, not the slide size)."""
    mpp, mpp_source = resolve_mpp(reader, override=slide.mpp_override, default_mpp=config.default_mpp)
    seg_rgb, seg_ds = segmentation_image(reader, mpp, config)
    seg_um_per_px = mpp * seg_ds
    mask, threshold = detect_tissue(seg_rgb, seg_um_per_px, min_area_um2=config.min_area)
    thumb, thumb_ds = thumbnail_image(reader, seg_rgb, seg_ds)
    del seg_rgb

    spec = grid_spec(
        mpp=mpp,
        target_mpp=config.mpp,
        patch_px=config.patch_size,
        overlap_px=config.overlap,
        level_downsamples=list(reader.level_downsamples),
    )
    x, y = grid_coords(reader.dimensions, spec)
    tissue = tissue_fraction(mask, seg_ds, x, y, spec.patch_px_level0)
    keep = tissue >= config.min_tissue if config.min_tissue > 0 else np.ones_like(tissue, dtype=bool)
    tissue_area_um2 = float(mask.sum()) * seg_um_per_px**2
    warnings = slide_warnings(
        reader, spec, config, n_grid=int(x.size), n_kept=int(keep.sum()), area_um2=tissue_area_um2
    )
    meta = _coords_meta(
        reader,
        slide,
        config,
        spec,
        mpp=mpp,
        mpp_source=mpp_source,
        thumb_ds=thumb_ds,
        seg_um_per_px=seg_um_per_px,
        threshold=threshold,
        tissue_area_um2=tissue_area_um2,
        n_grid=int(x.size),
    )
    coords = SlideCoords(x[keep], y[keep], tissue[keep], meta)
    return TiledSlide(coords, mask, seg_ds, thumb, thumb_ds, spec, warnings)


def _coords_meta(
    reader: SlideReader,
    slide: SlideInput,
    config: TileConfig,
    spec: GridSpec,
    *,
    mpp: float,
    mpp_source: str,
    thumb_ds: float,
    seg_um_per_px: float,
    threshold: float,
    tissue_area_um2: float,
    n_grid: int,
) -> dict[str, Any]:
    """The metadata of a slide's coordinates file: source, resolution, grid, thumbnail and tissue detection."""
    width, height = reader.dimensions
    return {
        "slide_id": slide.slide_id,
        "case_id": slide.case_id,
        "source_path": str(Path(slide.path).resolve()),
        "reader": reader.backend,
        "mpp": mpp,
        "mpp_source": mpp_source,
        "target_mpp": config.mpp,
        "patch_px": config.patch_size,
        "patch_px_level0": spec.patch_px_level0,
        "stride_px_level0": spec.stride_px_level0,
        "read_level": spec.read_level,
        "read_downsample": spec.read_downsample,
        "read_patch_px": spec.read_patch_px,
        "overlap_px": config.overlap,
        "level0_width": width,
        "level0_height": height,
        "level_count": reader.level_count,
        "thumbnail_png": f"{slide.slide_id}{THUMB_SUFFIX}",
        "thumbnail_downsample": thumb_ds,
        "seg_mpp": seg_um_per_px,
        "seg_threshold": threshold,
        "tissue_area_um2": tissue_area_um2,
        "min_tissue": config.min_tissue,
        "min_area_um2": config.min_area,
        "n_grid_patches": n_grid,
    }


def slide_warnings(
    reader: SlideReader, spec: GridSpec, config: TileConfig, *, n_grid: int, n_kept: int, area_um2: float
) -> list[str]:
    """The warnings of one tiled slide (no patch fits, no tissue, tissue but no patch kept, upsampling)."""
    width, height = reader.dimensions
    warnings = []
    if n_grid == 0:
        warnings.append(
            f"slide ({width}x{height} px) is smaller than one patch ({spec.patch_px_level0} px at level 0): 0 "
            "patches written"
        )
    elif n_kept == 0:
        if area_um2 == 0:
            warnings.append("no tissue found (blank slide?): 0 patches written")
        else:
            warnings.append(
                f"tissue found ({area_um2 / 1e6:.3f} mm²) but no patch reaches --min-tissue {config.min_tissue}: 0 "
                "patches written"
            )
    if spec.upsampled:
        warnings.append(
            f"slide resolution {spec.mpp:g} µm/px is coarser than --mpp {config.mpp:g}: patches will be upsampled"
        )
    return warnings


def write_outputs(tiled: TiledSlide, store: ArtifactStore, config: TileConfig) -> list[Path]:
    """Write the coordinates, thumbnail, QC image and the requested exports of one slide."""
    sid = tiled.coords.slide_id
    meta = tiled.coords.meta
    outputs = [
        qc.write_png(store.output_path(sid, THUMB_SUFFIX), tiled.thumb),
        qc.write_png(
            store.output_path(sid, QC_SUFFIX),
            qc.qc_image(
                tiled.thumb,
                tiled.mask,
                tiled.coords.x,
                tiled.coords.y,
                tiled.spec.patch_px_level0,
                tiled.thumb_downsample,
            ),
        ),
    ]
    if "clam" in config.export:
        outputs.append(export.write_clam_h5(store.output_path(sid, ".h5"), tiled.coords.xy, meta))
    if "geojson" in config.export:
        polygons = export.tissue_polygons(tiled.mask, tiled.mask_downsample)
        outputs.append(export.write_geojson(store.output_path(sid, ".geojson"), polygons, slide_id=sid))
    export.remove_stale_exports(store.folder, sid, keep=config.export)
    # the coordinates last: extract looks for them
    outputs.append(write_coords(coords_path(store.folder, sid), tiled.coords))
    return outputs


@dataclass(frozen=True)
class SlideItem:
    """What :func:`process_slide` needs: the slide and the fingerprint of its file, mpp override and
    case id."""

    slide: SlideInput
    base_fingerprint: str


def item_fingerprint(base: str, *, uses_default_mpp: bool, default_mpp: float | None) -> str:
    """The cache key of a slide's input. ``--default-mpp`` is part of it only for slides whose mpp
    came from it, so adding ``--default-mpp`` to rerun the slides without mpp leaves the others
    fresh, and changing it recomputes exactly the slides that used it."""
    return combine([base, f"default_mpp={default_mpp}"]) if uses_default_mpp else base


def process_slide(item: WorkItem, *, store: ArtifactStore, config: TileConfig) -> ItemResult:
    """Tile one slide and write its outputs (the ``process`` of :func:`run_items`).

    Sets ``item.fingerprint`` to the key that matches where the slide's mpp came from (committed
    by :func:`run_items` after this returns).
    """
    source: SlideItem = item.source
    if source.slide.problem:
        raise ItemError(source.slide.problem)
    with open_slide(source.slide.path) as reader:
        tiled = tile_slide(reader, source.slide, config)
    outputs = write_outputs(tiled, store, config)
    meta = tiled.coords.meta
    item.fingerprint = item_fingerprint(
        source.base_fingerprint, uses_default_mpp=meta["mpp_source"] == "default", default_mpp=config.default_mpp
    )
    summary = {
        "n_patches": len(tiled.coords),
        "mpp": meta["mpp"],
        "mpp_source": meta["mpp_source"],
        "read_level": meta["read_level"],
        "tissue_area_um2": round(meta["tissue_area_um2"], 1),
        "slide_fingerprint": slide_fingerprint(source.slide.path),  # extract checks the slide is still this file
    }
    return ItemResult(outputs=outputs, meta=summary, warning="; ".join(tiled.warnings))


def slide_fingerprint(path: Path) -> str:
    """Fingerprint of a slide file and, for MIRAX, of its data folder (the pixels live there)."""
    folder = companion_folder(path)
    own = file_fingerprint(path)
    return own if folder is None else combine([own, file_fingerprint(folder)])


def work_items(slides: list[SlideInput], store: ArtifactStore, config: TileConfig) -> list[WorkItem]:
    """One item per slide; the fingerprint covers the file, its mpp override and case id, and
    ``--default-mpp`` when the slide's last committed result used it."""
    items = []
    for s in slides:
        try:
            own = slide_fingerprint(s.path)
        except OSError as exc:  # unreadable, dangling symlink, symlink loop: that slide fails, not the batch
            s = replace(s, problem=unreadable_reason(s.path, exc))
            items.append(WorkItem(s.slide_id, SlideItem(s, "unreadable"), "unreadable"))
            continue
        base = combine([own, f"mpp_override={s.mpp_override}", f"case_id={s.case_id}"])
        record = store.read_record(s.slide_id)
        used_default = record is not None and record.meta.get("mpp_source") == "default"
        fingerprint = item_fingerprint(base, uses_default_mpp=used_default, default_mpp=config.default_mpp)
        items.append(WorkItem(s.slide_id, SlideItem(s, base), fingerprint))
    return items


def run(
    config: TileConfig,
    *,
    console: Console,
    debug: bool = False,
    resolved: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
) -> int:
    """Tile every selected slide of this shard; return the exit code (0 ok, 3 some failed).

    Raises
    ------
    InputError
        Bad inputs found before any work (missing paths, duplicate slide ids, malformed CSVs).
    """
    shard = parse_shard(config.shard)
    slides = collect_slides(list(config.slides), slides_csv=config.slides_csv, mpp_csv=config.mpp_csv)
    selected = shard.select(slides, key=lambda s: s.slide_id)
    if config.mpp_csv is not None:
        unmatched = sorted(set(read_mpp_csv(config.mpp_csv)) - {s.slide_id for s in slides})
        if unmatched:
            console.warn(
                f"--mpp-csv {config.mpp_csv}: {len(unmatched)} row(s) match no slide ({', '.join(unmatched[:5])}"
                f"{', ...' if len(unmatched) > 5 else ''}); slide ids are file names without extension"
            )
    tiles_dir = config.tiles_dir
    tiles_dir.mkdir(parents=True, exist_ok=True)
    write_resolved_config(
        tiles_dir,
        resolved if resolved is not None else _plain_config(config),
        command="tile",
        sources=sources,
        shard=str(shard),
    )
    store = ArtifactStore(tiles_dir, "tile", config.output_params(), algorithm=ALGORITHM_VERSION)
    status = StatusTable("tile", shard=str(shard))
    console.info(f"tile: {len(selected)} of {len(slides)} slide(s) in shard {shard} -> {tiles_dir}")
    run_items(
        work_items(selected, store, config),
        lambda item: process_slide(item, store=store, config=config),
        store=store,
        status=status,
        console=console,
        force=config.force,
        on_error=config.on_error,  # type: ignore[arg-type]
        debug=debug,
        description="tile",
    )
    return report(status, console, folder=tiles_dir)


def _plain_config(config: TileConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)
