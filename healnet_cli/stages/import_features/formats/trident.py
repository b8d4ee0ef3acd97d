"""TRIDENT (mahmoodlab/TRIDENT) patch features.

Layout (``trident/Processor.py``, ``trident/wsi_objects/WSI.py: extract_patch_features``,
``trident/IO.py: coords_to_h5``)::

    <job>/<mag>x_<ps>px_<ov>px_overlap/patches/<slide>_patches.h5      coords + attributes
    <job>/<mag>x_<ps>px_<ov>px_overlap/features_<encoder>/<slide>.h5   features + coords

- ``features`` ``[N, D]`` (the dtype the encoder ran in), attributes ``name``, ``savetodir``,
  ``encoder`` (TRIDENT's encoder name, e.g. ``uni_v1``); a slide without patches has ``(0, D)`` or ``(0,)``;
- ``coords`` int64 ``[N, 2]``, level-0 top-left corners, with the patching attributes copied:
  ``patch_size`` (pixels at the target magnification), ``patch_size_level0``,
  ``level0_magnification``, ``target_magnification``, ``overlap``, ``level0_width/height``.

With ``saveas='pt'`` the features are a bare tensor and the coordinates come from
``patches/<slide>_patches.h5`` (next to the features folder, or ``--coords-dir``).
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
    load_tensor_file,
    open_h5,
    positive,
    tensor_dim,
    unique_by_slide,
)

TOOL = "TRIDENT"
_PATCHES_SUFFIX = "_patches.h5"


def discover(root: Path, coords_dir: Path | None) -> list[SourceSlide]:
    """The slides of a TRIDENT features folder (``features_<encoder>/``), or of the one such folder
    under a job folder.

    Raises
    ------
    InputError
        No TRIDENT features, or several ``features_*`` folders (pick one).
    """
    folder = _features_folder(root)
    h5 = files_under(folder, ".h5")
    pt = files_under(folder, ".pt")
    patches = coords_dir if coords_dir is not None else folder.parent / "patches"
    if h5:
        return unique_by_slide([SourceSlide(p.stem, p) for p in h5], root)
    return unique_by_slide([SourceSlide(p.stem, p, patches / f"{p.stem}{_PATCHES_SUFFIX}") for p in pt], root)


def _features_folder(root: Path) -> Path:
    if files_under(root, ".h5") or files_under(root, ".pt"):
        return root
    found = sorted(
        p for p in root.rglob("features_*") if p.is_dir() and (files_under(p, ".h5") or files_under(p, ".pt"))
    )
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(str(p) for p in found[:6])
        raise InputError(f"{root}: several TRIDENT feature folders ({listed}); pass the one to import as DIR")
    raise InputError(
        f"{root}: no TRIDENT features found (expected "
        "<job>/<mag>x_<ps>px_<ov>px_overlap/features_<encoder>/<slide>.h5); "
        "pass that folder, or check --format"
    )


def _encoder_from_folder(path: Path) -> str | None:
    name = path.parent.name
    return name[len("features_") :] if name.startswith("features_") else None


def header(slide: SourceSlide) -> SlideHeader:
    """Encoder name and feature dimension, from the file's header (None where unreadable)."""
    if slide.features_file.suffix == ".pt":
        return SlideHeader(_encoder_from_folder(slide.features_file), tensor_dim(slide.features_file))
    try:
        with open_h5(slide.features_file, TOOL) as handle:
            features = handle.get("features")
            if features is None:
                return SlideHeader(None, None)
            encoder = attr_dict(features).get("encoder") or _encoder_from_folder(slide.features_file)
            dim = int(features.shape[1]) if features.ndim == 2 else None
            return SlideHeader(str(encoder) if encoder else None, dim)
    except ItemError:
        return SlideHeader(None, None)


def read(slide: SourceSlide, ctx: ImportContext) -> ImportedBag:
    """One slide's features and level-0 coordinates.

    Raises
    ------
    ItemError
        Not a TRIDENT file, unreadable, rows of features and coordinates that differ.
    """
    if slide.features_file.suffix == ".pt":
        features = load_tensor_file(slide.features_file, TOOL)
        coords, coords_attrs = _patches(slide)
        feature_attrs = {"encoder": _encoder_from_folder(slide.features_file)}
    else:
        with open_h5(slide.features_file, TOOL) as handle:
            feats = dataset(handle, "features", slide.features_file, TOOL)
            coords_ds = dataset(handle, "coords", slide.features_file, TOOL)
            features, feature_attrs = np.asarray(feats[()]), attr_dict(feats)
            coords, coords_attrs = np.asarray(coords_ds[()]), attr_dict(coords_ds)
    if features.ndim == 1 and features.size == 0:
        features = features.reshape(0, 0)
    check_rows(features, coords, slide.features_file)
    return ImportedBag(
        features=features,
        coords_level0=coords.astype(np.int64),  # TRIDENT's coordinates are level-0 already
        encoder=feature_attrs.get("encoder") or _encoder_from_folder(slide.features_file),
        **_patch_geometry(slide.slide_id, coords_attrs, ctx),
        source={
            "tool": "trident",
            "features_file": str(slide.features_file),
            "coords_file": str(slide.coords_file) if slide.coords_file else None,
            "attrs": {"features": feature_attrs, "coords": coords_attrs},
        },
    )


def _patches(slide: SourceSlide) -> tuple[np.ndarray, dict]:
    path = slide.coords_file
    if path is None or not path.is_file():
        raise ItemError(
            f"{slide.features_file}: TRIDENT .pt features hold no coordinates and {path} is missing; pass "
            "--coords-dir with the job's patches/ folder (<slide>_patches.h5)"
        )
    with open_h5(path, TOOL) as handle:
        coords = dataset(handle, "coords", path, TOOL)
        return np.asarray(coords[()]), attr_dict(coords)


def _patch_geometry(slide_id: str, attrs: dict, ctx: ImportContext) -> dict:
    patch_px = int(attrs["patch_size"]) if positive(attrs.get("patch_size")) else ctx.patch_px
    level0_px = int(attrs["patch_size_level0"]) if positive(attrs.get("patch_size_level0")) else None
    slide_mpp = ctx.mpp_of(slide_id)
    target_mag = positive(attrs.get("target_magnification"))
    if slide_mpp and patch_px and level0_px:
        mpp, how = slide_mpp * level0_px / patch_px, "slide mpp x patch_size_level0 / patch_size"
    elif target_mag:
        mpp, how = 10.0 / target_mag, "10 / target_magnification (TRIDENT's magnification convention, approximate)"
    elif ctx.mpp:
        mpp, how = ctx.mpp, "--mpp"
    else:
        mpp, how = None, ""
    return {"patch_px": patch_px, "patch_px_level0": level0_px, "patch_mpp": mpp, "patch_mpp_source": how}
