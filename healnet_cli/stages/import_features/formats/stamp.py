"""STAMP (KatherLab/STAMP) patch features.

Layout (``src/stamp/preprocessing/__init__.py: extract_``, ``src/stamp/modeling/data.py: get_coords``)::

    <output_dir>/<extractor>-<code_hash>/<slide path relative to wsi_dir>.h5

- ``feats`` float16 ``[N, D]``;
- ``coords`` float ``[N, 2]``: top-left corners in **µm** from the slide's level-0 origin;
- file attributes ``stamp_version``, ``extractor`` (e.g. ``uni``, ``virchow2``), ``unit = "um"``,
  ``tile_size_um``, ``tile_size_px``, ``code_hash``, ``feat_type = "tile"``. STAMP 2.0 wrote
  ``tile_size`` (µm) with ``unit``; historic files have coordinates in 224-px units of 256 µm tiles.

Level-0 pixels are µm / slide mpp, so the slide's mpp is needed (``--slides-csv`` mpp column or
``--slide-mpp``); the patch resolution is ``tile_size_um / tile_size_px``. STAMP's ``virchow2``
is the class token only (1280-d), not the class ⊕ mean-token embedding of the ``virchow2`` preset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from healnet_cli.core.errors import InputError, ItemError
from healnet_cli.stages.import_features.formats.common import (
    ImportContext,
    ImportedBag,
    SlideHeader,
    SourceSlide,
    attr_dict,
    check_rows,
    dataset,
    files_under,
    open_h5,
    positive,
    unique_by_slide,
)

TOOL = "STAMP"
HISTORIC_TILE_UM, HISTORIC_TILE_PX = 256.0, 224


def discover(root: Path, coords_dir: Path | None) -> list[SourceSlide]:
    """Every ``.h5`` under the STAMP features folder (STAMP mirrors the slide folder's tree).

    Raises
    ------
    InputError
        No ``.h5`` files.
    """
    files = files_under(root, ".h5", recursive=True)
    if not files:
        raise InputError(
            f"{root}: no STAMP features found (expected <output_dir>/<extractor>-<hash>/**/<slide>.h5); check --format"
        )
    return unique_by_slide([SourceSlide(p.stem, p) for p in files], root)


def header(slide: SourceSlide) -> SlideHeader:
    """Encoder (``extractor`` attribute) and dimension from the header (None where unreadable)."""
    try:
        with open_h5(slide.features_file, TOOL) as handle:
            attrs = attr_dict(handle)
            feats = handle.get("feats")
            dim = int(feats.shape[1]) if feats is not None and feats.ndim == 2 else None
            encoder = attrs.get("extractor") or attrs.get("encoder")
            return SlideHeader(str(encoder) if encoder else None, dim)
    except ItemError:
        return SlideHeader(None, None)


def read(slide: SourceSlide, ctx: ImportContext) -> ImportedBag:
    """One slide's features with its µm coordinates converted to level-0 pixels.

    Raises
    ------
    ItemError
        Not a STAMP file, slide-level features, coordinates of unknown unit, no slide mpp, rows of
        features and coordinates that differ.
    """
    path = slide.features_file
    with open_h5(path, TOOL) as handle:
        attrs = attr_dict(handle)
        feats = dataset(handle, "feats", path, TOOL)
        feat_type = attrs.get("feat_type")
        if feat_type not in (None, "tile"):
            raise ItemError(
                f"{path}: {feat_type}-level features (feat_type={feat_type}), not patch features; import STAMP's "
                "tile-level features"
            )
        if "coords" not in handle:
            raise ItemError(
                f"{path}: no 'coords' dataset (features without patch positions); re-extract with `stamp preprocess`"
            )
        features = np.asarray(feats[()])
        coords = np.asarray(dataset(handle, "coords", path, TOOL)[()], dtype=np.float64)
    check_rows(features, coords, path)
    coords_um, tile_um, tile_px = _micrometres(coords, attrs, path, ctx)
    slide_mpp = ctx.mpp_of(slide.slide_id)
    if slide_mpp is None:
        raise ItemError(
            f"{path}: STAMP stores coordinates in µm; level-0 pixels need the slide's mpp: add an mpp column to "
            "--slides-csv (slide_id, case_id, mpp) or pass --slide-mpp"
        )
    return ImportedBag(
        features=features,
        coords_level0=np.round(coords_um / slide_mpp).astype(np.int64),
        encoder=attrs.get("extractor") or attrs.get("encoder"),
        patch_px=tile_px,
        patch_px_level0=int(round(tile_um / slide_mpp)),
        patch_mpp=tile_um / tile_px if tile_px else ctx.mpp,
        patch_mpp_source="tile_size_um / tile_size_px" if tile_px else ("--mpp" if ctx.mpp else ""),
        source={
            "tool": "stamp",
            "features_file": str(path),
            "tool_version": attrs.get("stamp_version"),
            "attrs": attrs,
        },
    )


def _micrometres(
    coords: np.ndarray, attrs: dict, path: Path, ctx: ImportContext
) -> tuple[np.ndarray, float, int | None]:
    """``(coords in µm, tile size in µm, tile size in px)`` by STAMP's own rules (``get_coords``)."""
    tile_px_attr = positive(attrs.get("tile_size_px"))
    tile_px = int(tile_px_attr) if tile_px_attr else ctx.patch_px
    if positive(attrs.get("tile_size")) and attrs.get("unit") == "um":  # STAMP 2.0
        return coords, float(attrs["tile_size"]), tile_px
    if positive(attrs.get("tile_size_um")):
        return coords, float(attrs["tile_size_um"]), tile_px
    if round(positive(attrs.get("tile_size")) or _stride(coords)) == HISTORIC_TILE_PX:
        return coords / HISTORIC_TILE_PX * HISTORIC_TILE_UM, HISTORIC_TILE_UM, tile_px or HISTORIC_TILE_PX
    raise ItemError(
        f"{path}: cannot tell the unit of 'coords' (no unit/tile_size_um attributes); re-extract with `stamp "
        "preprocess`"
    )


def _stride(coords: np.ndarray) -> float:
    """The grid step of the coordinates (smallest positive gap between distinct x or y), 0 if none."""
    gaps = [np.diff(np.unique(coords[:, axis])) for axis in (0, 1)]
    positive_gaps = np.concatenate([g[g > 0] for g in gaps]) if coords.size else np.zeros(0)
    return float(positive_gaps.min()) if positive_gaps.size else 0.0
