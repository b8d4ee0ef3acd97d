"""slideflow (slideflow/slideflow) feature bags.

Layout (``slideflow/model/features.py: DatasetFeatures.to_torch, dump_config``,
``slideflow/util/tfrecord2idx.py: save_index``, ``slideflow/slide/wsi.py``)::

    <bags>/<slide>.pt            float32 [N, D] (one tensor, torch.save)
    <bags>/<slide>.index.npz     arr_0: [N, 2] tile locations (``.index.npy`` without zip support)
    <bags>/bags_config.json      extractor {class, kwargs}, normalizer, num_features, tile_px, tile_um

The locations are tile **centres** in level-0 pixels: slideflow extracts ``full_extract_px =
int(tile_um / mpp)`` level-0 pixels per tile and stores ``top-left + int(full_extract_px / 2)``. The
top-left corner therefore needs the slide's mpp (``--slides-csv`` mpp column or ``--slide-mpp``).
``tile_um`` given as a magnification (``"20x"``) is read as 10 / magnification µm/px (approximate).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.core.errors import InputError, ItemError, one_line
from healnet_cli.stages.import_features.formats.common import (
    ImportContext,
    ImportedBag,
    SlideHeader,
    SourceSlide,
    check_rows,
    files_under,
    load_tensor_file,
    positive,
    tensor_dim,
    unique_by_slide,
)

TOOL = "slideflow"
CONFIG = "bags_config.json"
_LAYER_EXTRACTORS = ("TorchImagenetLayerExtractor", "TensorflowImagenetLayerExtractor")


def discover(root: Path, coords_dir: Path | None) -> list[SourceSlide]:
    """The bags (``<slide>.pt`` with ``<slide>.index.npz``) of a slideflow bags folder.

    Raises
    ------
    InputError
        No ``.pt`` bags.
    """
    index_dir = coords_dir if coords_dir is not None else root
    bags = files_under(root, ".pt")
    if not bags:
        raise InputError(
            f"{root}: no slideflow bags found (expected <slide>.pt, <slide>.index.npz, {CONFIG}); check --format"
        )
    found = []
    for bag in bags:
        npz, npy = index_dir / f"{bag.stem}.index.npz", index_dir / f"{bag.stem}.index.npy"
        found.append(SourceSlide(bag.stem, bag, npz if npz.is_file() or not npy.is_file() else npy))
    return unique_by_slide(found, root)


@lru_cache(maxsize=8)
def bags_config(folder: Path) -> dict[str, Any]:
    """``bags_config.json`` of a bags folder ({} when absent); malformed JSON is an InputError."""
    path = folder / CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON ({one_line(exc)}); fix or remove it") from exc
    return data if isinstance(data, dict) else {}


def encoder_name(config: dict[str, Any]) -> str | None:
    """slideflow's extractor name from ``bags_config.json`` (``UNIFeatures`` → ``uni``; ImageNet
    layer extractors → their ``model_name``)."""
    extractor = config.get("extractor") or {}
    if not isinstance(extractor, dict):
        return str(extractor) or None
    cls = str(extractor.get("class", "")).rsplit(".", 1)[-1]
    kwargs = extractor.get("kwargs") or {}
    if cls in _LAYER_EXTRACTORS:
        return str(kwargs.get("model_name") or cls) or None
    for suffix in ("_Features", "Features", "Extractor"):
        if cls.endswith(suffix):
            cls = cls[: -len(suffix)]
    return cls.lower() or None


def header(slide: SourceSlide) -> SlideHeader:
    """Encoder (from ``bags_config.json``) and dimension (memory-mapped tensor)."""
    return SlideHeader(encoder_name(bags_config(slide.features_file.parent)), tensor_dim(slide.features_file))


def read(slide: SourceSlide, ctx: ImportContext) -> ImportedBag:
    """One bag with its tile centres converted to level-0 top-left corners.

    Raises
    ------
    ItemError
        Unreadable bag or index, rows that differ, no slide mpp, no tile size.
    """
    features = load_tensor_file(slide.features_file, TOOL)
    centres = _index(slide)
    check_rows(features, centres, slide.features_file)
    config = bags_config(slide.features_file.parent)
    tile_px = int(positive(config.get("tile_px")) or 0) or ctx.patch_px
    tile_um, how = _tile_um(config.get("tile_um"), tile_px, ctx)
    slide_mpp = ctx.mpp_of(slide.slide_id)
    if slide_mpp is None or tile_um is None or not tile_px:
        missing = (
            "the slide's mpp (--slides-csv mpp column or --slide-mpp)"
            if slide_mpp is None
            else f"tile_um/tile_px ({CONFIG}, or --mpp and --patch-size)"
        )
        raise ItemError(
            f"{slide.features_file}: slideflow stores tile centres; their top-left corners in level-0 pixels need "
            f"{missing}"
        )
    extract_px = int(tile_um / slide_mpp)  # slideflow's full_extract_px
    return ImportedBag(
        features=features,
        coords_level0=(np.asarray(centres, dtype=np.int64) - int(extract_px / 2)),
        encoder=encoder_name(config),
        patch_px=tile_px,
        patch_px_level0=extract_px,
        patch_mpp=tile_um / tile_px,
        patch_mpp_source=how,
        source={
            "tool": "slideflow",
            "features_file": str(slide.features_file),
            "coords_file": str(slide.coords_file),
            "attrs": {k: v for k, v in config.items() if k != "normalizer"}
            | {"normalizer": bool(config.get("normalizer"))},
        },
    )


def _index(slide: SourceSlide) -> np.ndarray:
    path = slide.coords_file
    if path is None or not path.is_file():
        raise ItemError(
            f"{slide.features_file}: no tile index {path} (slideflow writes <slide>.index.npz beside the bag)"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        centres = loaded["arr_0"] if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    except (OSError, ValueError, KeyError) as exc:
        raise ItemError(f"{path}: not a readable slideflow index ({one_line(exc)}); regenerate the bags") from exc
    return np.asarray(centres)[:, :2] if np.ndim(centres) == 2 else np.asarray(centres)


def _tile_um(tile_um: Any, tile_px: int | None, ctx: ImportContext) -> tuple[float | None, str]:
    """The tile's side in µm and how the patch mpp follows from it."""
    if isinstance(tile_um, str) and tile_um.lower().endswith("x") and positive(tile_um[:-1]) and tile_px:
        return 10.0 / float(tile_um[:-1]) * tile_px, "10 / magnification of tile_um (approximate)"
    if positive(tile_um):
        return float(tile_um), "tile_um / tile_px"
    if ctx.mpp and tile_px:
        return ctx.mpp * tile_px, "--mpp"
    return None, ""
