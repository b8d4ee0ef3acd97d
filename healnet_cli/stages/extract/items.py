"""The slides to extract: every slide with a committed coordinates file under ``<workdir>/tiles``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.artifacts.coords import SUFFIX as COORDS_SUFFIX
from healnet_cli.artifacts.coords import read_coords
from healnet_cli.core.errors import InputError, ItemError
from healnet_cli.core.fingerprint import combine
from healnet_cli.core.runner import WorkItem
from healnet_cli.core.store import MANIFEST_SUFFIX, ArtifactStore


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
        fingerprint = combine([record.params_hash, record.input_fingerprint, str(stat.get("size")), str(stat.get("mtime_ns"))])
        items.append(WorkItem(id=slide_id, source=coords, fingerprint=fingerprint))
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
        Unreadable coords file or metadata without a valid read level / patch size.
    """
    try:
        coords = read_coords(item.source)
    except InputError as exc:
        raise ItemError(str(exc)) from exc
    meta = coords.meta
    try:
        read_level = int(meta["read_level"])
        read_patch_px = int(meta["read_patch_px"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ItemError(f"{item.source}: metadata lacks a valid read_level/read_patch_px ({exc}); rerun `healnet tile`") from exc
    if read_level < 0 or read_patch_px < 1:
        raise ItemError(f"{item.source}: read_level {read_level} / read_patch_px {read_patch_px} invalid; rerun `healnet tile`")
    return SlidePlan(
        slide_id=item.id,
        source_path=str(meta["source_path"]),
        read_level=read_level,
        read_patch_px=read_patch_px,
        xy=coords.xy,
        meta=dict(meta),
    )
