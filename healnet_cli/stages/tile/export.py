"""Optional exports: CLAM-compatible ``.h5`` coordinates and QuPath-readable GeoJSON tissue contours."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.core import atomic

EXPORTS = ("clam", "geojson")
#: The file each export writes per slide, ``<slide_id><suffix>`` in the tiles folder.
EXPORT_SUFFIXES = {"clam": ".h5", "geojson": ".geojson"}


def remove_stale_exports(
    folder: str | os.PathLike[str], slide_id: str, *, keep: tuple[str, ...] | list[str]
) -> list[Path]:
    """Delete the exports of ``slide_id`` that this run does not write (``keep``: the requested
    formats), so a re-tile without ``--export`` leaves no CLAM/GeoJSON file with old coordinates.

    Returns the removed paths.
    """
    removed = []
    for name, suffix in EXPORT_SUFFIXES.items():
        path = Path(folder) / f"{slide_id}{suffix}"
        if name not in keep and path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def write_clam_h5(path: str | os.PathLike[str], xy: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write CLAM's ``patches/<slide>.h5`` layout.

    Dataset ``coords`` (int64 ``[N, 2]``, level-0 top-left x, y). Attributes follow CLAM's
    ``patch_level = 0`` convention: ``patch_size`` is the patch side in level-0 pixels
    (``patch_px_level0``), ``patch_level`` is 0, ``downsample`` is (1, 1); a CLAM feature extractor
    reading ``patch_size`` pixels at level 0 and resizing to ``target_patch_px`` reproduces healnet's
    patches. healnet extras: ``target_mpp``, ``target_patch_px``, ``mpp``, ``mpp_source``,
    ``read_level``, ``read_patch_px``, ``overlap_px``.
    """
    import h5py

    xy = np.asarray(xy, dtype=np.int64).reshape(-1, 2)
    with atomic.atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        dataset = handle.create_dataset("coords", data=xy, maxshape=(None, 2), chunks=(max(1, min(len(xy), 512)), 2))
        attrs = {
            "patch_size": int(meta["patch_px_level0"]),
            "patch_level": 0,
            "downsample": np.array([1.0, 1.0]),
            "level_dim": np.array([meta["level0_width"], meta["level0_height"]], dtype=np.int64),
            "downsampled_level_dim": np.array([meta["level0_width"], meta["level0_height"]], dtype=np.int64),
            "name": str(meta["slide_id"]),
            "target_mpp": float(meta["target_mpp"]),
            "target_patch_px": int(meta["patch_px"]),
            "mpp": float(meta["mpp"]),
            "mpp_source": str(meta["mpp_source"]),
            "read_level": int(meta["read_level"]),
            "read_patch_px": int(meta["read_patch_px"]),
            "overlap_px": int(meta["overlap_px"]),
        }
        for key, value in attrs.items():
            dataset.attrs[key] = value
    return Path(path)


def tissue_polygons(
    mask: np.ndarray, mask_downsample: float, *, tolerance_px: float = 0.75
) -> list[list[list[list[float]]]]:
    """Tissue regions of ``mask`` as polygons in level-0 coordinates.

    Returns a list of polygons, each ``[exterior, hole, ...]`` with rings as closed lists of
    ``[x, y]`` (exterior counter-clockwise, holes clockwise in x-right/y-down image axes as GeoJSON
    viewers expect after their y flip; QuPath accepts either).
    """
    from skimage import measure

    labels = measure.label(mask, connectivity=2)
    polygons = []
    for region in measure.regionprops(labels):
        r0, c0, r1, c1 = region.bbox
        sub = np.pad(region.image, 1)
        rings = []
        for contour in measure.find_contours(sub.astype(np.float32), 0.5):
            contour = measure.approximate_polygon(contour, tolerance_px)
            if len(contour) < 4:
                continue
            # contour is (row, col) in padded sub-image pixel-centre units -> level-0 (x, y)
            xs = (contour[:, 1] - 1 + c0 + 0.5) * mask_downsample
            ys = (contour[:, 0] - 1 + r0 + 0.5) * mask_downsample
            ring = np.stack([xs, ys], axis=1)
            rings.append((abs(_signed_area(ring)), ring))
        if not rings:
            continue
        rings.sort(key=lambda item: -item[0])
        exterior = _oriented(rings[0][1], ccw=True)
        holes = [_oriented(ring, ccw=False) for _, ring in rings[1:]]
        polygons.append([_closed(exterior)] + [_closed(h) for h in holes])
    return polygons


def write_geojson(path: str | os.PathLike[str], polygons: list, *, slide_id: str) -> Path:
    """A QuPath-compatible FeatureCollection of tissue annotations (level-0 pixel coordinates)."""
    features = [
        {
            "type": "Feature",
            "id": f"{slide_id}-tissue-{i}",
            "geometry": {"type": "Polygon", "coordinates": polygon},
            "properties": {
                "objectType": "annotation",
                "name": f"tissue {i}",
                "classification": {"name": "Tissue", "color": [0, 160, 0]},
                "isLocked": False,
            },
        }
        for i, polygon in enumerate(polygons)
    ]
    payload = {"type": "FeatureCollection", "features": features}
    return atomic.write_text(path, json.dumps(payload, separators=(",", ":")))


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _oriented(ring: np.ndarray, *, ccw: bool) -> np.ndarray:
    # In image axes (y down) a positive shoelace area is clockwise on screen; GeoJSON (RFC 7946)
    # orientation is defined for y-up, where positive area is counter-clockwise.
    return ring if (_signed_area(ring) > 0) == ccw else ring[::-1]


def _closed(ring: np.ndarray) -> list[list[float]]:
    points = [[round(float(x), 1), round(float(y), 1)] for x, y in ring]
    if points[0] != points[-1]:
        points.append(points[0])
    return points
