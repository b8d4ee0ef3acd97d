"""The slides to extract: every slide with a committed coordinates file under ``<workdir>/tiles``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.artifacts.coords import SUFFIX as COORDS_SUFFIX
from healnet_cli.artifacts.coords import read_coords
from healnet_cli.core.errors import InputError, ItemError
from healnet_cli.core.fingerprint import combine, file_fingerprint
from healnet_cli.core.runner import WorkItem
from healnet_cli.core.store import MANIFEST_SUFFIX, ArtifactStore
from healnet_cli.slides.base import companion_folder

SLIDE_FINGERPRINT_KEY = "slide_fingerprint"  # in the tile manifest's meta (healnet tile records it)


@dataclass(frozen=True)
class TiledSlide:
    """A committed tile result: the coordinates file and what the tile manifest recorded."""

    coords: Path
    tile_input: str
    tile_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SlidePlan:
    """What the loader needs to read one slide's patches.

    Attributes
    ----------
    xy
        ``int64 [N, 2]`` level-0 top-left corners, in the coordinates file's order.
    read_level, read_patch_px
        Pyramid level and patch size (pixels at that level) chosen by the tile stage.
    """

    slide_id: str
    source_path: str
    read_level: int
    read_patch_px: int
    xy: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_patches(self) -> int:
        return int(self.xy.shape[0])


def discover_items(tiles_dir: Path) -> tuple[list[WorkItem], list[str]]:
    """Committed slides under ``tiles_dir`` as work items, and notes about what was left out.

    An item's fingerprint combines the tile manifest's parameters, the slide's fingerprint and the
    committed coords file's size and mtime, so a re-tiled slide is stale for ``extract``.

    Raises
    ------
    InputError
        No tiles folder, or no committed coordinates in it.
    """
    if not tiles_dir.is_dir():
        raise InputError(f"no tiles folder at {tiles_dir}; run `healnet tile` first (or pass the right --workdir)")
    store = ArtifactStore(tiles_dir, "tile", {})
    items: list[WorkItem] = []
    notes: list[str] = []
    committed = set()
    for manifest in sorted(tiles_dir.glob(f"*{MANIFEST_SUFFIX}")):
        slide_id = manifest.name[: -len(MANIFEST_SUFFIX)]
        record = store.read_record(slide_id)
        coords = tiles_dir / f"{slide_id}{COORDS_SUFFIX}"
        if record is None or not coords.is_file():
            notes.append(f"{slide_id}: tile manifest without a readable coords file; rerun `healnet tile`")
            continue
        committed.add(slide_id)
        stat = record.outputs.get(coords.name, {})
        fingerprint = combine(
            [record.params_hash, record.input_fingerprint, str(stat.get("size")), str(stat.get("mtime_ns"))]
        )
        source = TiledSlide(coords, record.input_fingerprint, dict(record.meta))
        items.append(WorkItem(id=slide_id, source=source, fingerprint=fingerprint))
    uncommitted = [p.stem for p in tiles_dir.glob(f"*{COORDS_SUFFIX}") if p.stem not in committed]
    if uncommitted:
        notes.append(
            f"{len(uncommitted)} coords file(s) without a tile manifest skipped (tiling still running or interrupted; "
            f"rerun `healnet tile`): {', '.join(sorted(uncommitted)[:5])}"
        )
    if not items:
        raise InputError(f"no committed coordinates under {tiles_dir}; run `healnet tile` first")
    return items, notes


def read_plan(item: WorkItem) -> SlidePlan:
    """Read an item's coordinates into a :class:`SlidePlan`.

    Raises
    ------
    ItemError
        Unreadable coords file, metadata without a valid read level / patch size, or a slide file
        that is missing or no longer the one that was tiled.
    """
    source: TiledSlide = item.source
    try:
        coords = read_coords(source.coords)
    except InputError as exc:
        raise ItemError(str(exc)) from exc
    meta = coords.meta
    try:
        read_level = int(meta["read_level"])
        read_patch_px = int(meta["read_patch_px"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ItemError(
            f"{source.coords}: metadata lacks a valid read_level/read_patch_px ({exc}); rerun `healnet tile`"
        ) from exc
    if read_level < 0 or read_patch_px < 1:
        raise ItemError(
            f"{source.coords}: read_level {read_level} / read_patch_px {read_patch_px} invalid; rerun `healnet tile`"
        )
    check_slide_unchanged(source, meta)
    return SlidePlan(
        slide_id=item.id,
        source_path=str(meta["source_path"]),
        read_level=read_level,
        read_patch_px=read_patch_px,
        xy=coords.xy,
        meta=dict(meta),
    )


def check_slide_unchanged(source: TiledSlide, meta: dict[str, Any]) -> None:
    """Fail when the slide file is gone or is not the file that was tiled (its fingerprint differs
    from the one in the tile manifest), so old coordinates are never read from a new image.

    Tile manifests record the slide's fingerprint (``slide_fingerprint``); older ones only hold the
    tile input key, which is rebuilt here the way ``healnet tile`` built it (file fingerprint, mpp
    override, case id, and ``--default-mpp`` when the mpp came from it).

    Raises
    ------
    ItemError
        Missing slide file, or a different file at its path.
    """
    path = Path(str(meta["source_path"]))
    if not path.exists():
        raise ItemError(
            f"{path}: slide file not found (moved or deleted since `healnet tile`); restore it, or tile it again"
        )
    current = slide_file_fingerprint(path)
    recorded = source.tile_meta.get(SLIDE_FINGERPRINT_KEY)
    if recorded is not None:
        same = current == recorded
    else:
        override = meta.get("mpp") if meta.get("mpp_source") == "csv" else None
        key = combine([current, f"mpp_override={override}", f"case_id={meta.get('case_id')}"])
        if meta.get("mpp_source") == "default":
            key = combine([key, f"default_mpp={meta.get('mpp')}"])
        same = key == source.tile_input
    if not same:
        raise ItemError(
            f"{path}: the slide file changed since it was tiled (size, time or content differ from the tile manifest), "
            "so its patch coordinates may not fit it; run `healnet tile` again for this slide, then `healnet extract`"
        )


def slide_file_fingerprint(path: Path) -> str:
    """Fingerprint of a slide file and, for MIRAX, of its data folder (as ``healnet tile`` takes it)."""
    folder = companion_folder(path)
    own = file_fingerprint(path)
    return own if folder is None else combine([own, file_fingerprint(folder)])
