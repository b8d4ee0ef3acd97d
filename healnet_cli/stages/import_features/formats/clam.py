"""CLAM (mahmoodlab/CLAM) patch features.

Layout (``create_patches_fp.py``, ``wsi_core/WholeSlideImage.py: process_contour``,
``extract_features_fp.py``)::

    <data_h5_dir>/patches/<slide>.h5      coords int [N, 2] + attributes (patch_size, patch_level,
                                          downsample, downsampled_level_dim, level_dim, name, save_path)
    <feat_dir>/h5_files/<slide>.h5        features float32 [N, D] + coords [N, 2], no attributes
    <feat_dir>/pt_files/<slide>.pt        the features tensor only, in the patches file's order

The coordinates are level-0 top-left corners: CLAM reads each patch with
``read_region(coord, patch_level, (patch_size, patch_size))``, so ``patch_level`` sets the patch
size at level 0 (``patch_size x downsample``), not the unit of the coordinates. The encoder is not
recorded: pass ``--encoder``. Patch size and resolution come from the patches files
(``--coords-dir``) and the slide mpp (``--slides-csv``/``--slide-mpp``), or ``--patch-size``/``--mpp``.
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

TOOL = "CLAM"


def discover(root: Path, coords_dir: Path | None) -> list[SourceSlide]:
    """The slides of a CLAM features folder (``h5_files/`` preferred, else ``pt_files/``).

    Raises
    ------
    InputError
        No CLAM features, or ``.pt`` features without ``--coords-dir``.
    """
    for folder, suffix in ((root / "h5_files", ".h5"), (root / "pt_files", ".pt"), (root, ".h5"), (root, ".pt")):
        files = files_under(folder, suffix) if folder.is_dir() else []
        if not files:
            continue
        if suffix == ".pt" and coords_dir is None:
            raise InputError(
                f"{folder}: CLAM .pt files hold the features only; pass --coords-dir with CLAM's patches/ folder "
                "(<data_h5_dir>/patches/<slide>.h5) for the coordinates"
            )
        coords = (lambda stem: coords_dir / f"{stem}.h5") if coords_dir is not None else (lambda stem: None)
        return unique_by_slide([SourceSlide(p.stem, p, coords(p.stem)) for p in files], root)
    raise InputError(
        f"{root}: no CLAM features found (expected h5_files/<slide>.h5 or pt_files/<slide>.pt); check --format"
    )


def header(slide: SourceSlide) -> SlideHeader:
    """CLAM records no encoder; the dimension from the file header (None where unreadable)."""
    if slide.features_file.suffix == ".pt":
        return SlideHeader(None, tensor_dim(slide.features_file))
    try:
        with open_h5(slide.features_file, TOOL) as handle:
            features = handle.get("features")
            return SlideHeader(None, int(features.shape[1]) if features is not None and features.ndim == 2 else None)
    except ItemError:
        return SlideHeader(None, None)


def read(slide: SourceSlide, ctx: ImportContext) -> ImportedBag:
    """One slide's features and level-0 coordinates.

    Raises
    ------
    ItemError
        Not a CLAM file, unreadable, missing patches file for ``.pt`` features, row counts that differ.
    """
    patch_attrs: dict = {}
    coords = None
    if slide.coords_file is not None:
        if slide.coords_file.is_file():
            coords, patch_attrs = _patches(slide.coords_file)
        elif slide.features_file.suffix == ".pt":
            raise ItemError(
                f"{slide.features_file}: no patches file {slide.coords_file} for its coordinates; check --coords-dir"
            )
    if slide.features_file.suffix == ".pt":
        features = load_tensor_file(slide.features_file, TOOL)
    else:
        with open_h5(slide.features_file, TOOL) as handle:
            features = np.asarray(dataset(handle, "features", slide.features_file, TOOL)[()])
            coords = np.asarray(dataset(handle, "coords", slide.features_file, TOOL)[()])
    if coords is None:  # discover() gives every .pt file a patches file
        raise ItemError(f"{slide.features_file}: CLAM .pt features without a patches file; pass --coords-dir")
    check_rows(features, coords, slide.features_file)
    return ImportedBag(
        features=features,
        coords_level0=coords.astype(np.int64),
        encoder=None,
        **_patch_geometry(slide.slide_id, patch_attrs, ctx),
        source={
            "tool": "clam",
            "features_file": str(slide.features_file),
            "coords_file": str(slide.coords_file) if slide.coords_file else None,
            "attrs": {"coords": patch_attrs},
        },
    )


def _patches(path: Path) -> tuple[np.ndarray, dict]:
    with open_h5(path, TOOL) as handle:
        coords = dataset(handle, "coords", path, TOOL)
        return np.asarray(coords[()]), attr_dict(coords)


def _patch_geometry(slide_id: str, attrs: dict, ctx: ImportContext) -> dict:
    patch_px = int(attrs["patch_size"]) if positive(attrs.get("patch_size")) else ctx.patch_px
    downsample = attrs.get("downsample")
    downsample = positive(downsample[0] if isinstance(downsample, (list, tuple)) else downsample)
    level0_px = int(round(patch_px * downsample)) if patch_px and downsample else None
    slide_mpp = ctx.mpp_of(slide_id)
    if slide_mpp and downsample:
        mpp, how = slide_mpp * downsample, "slide mpp x downsample of patch_level"
    elif ctx.mpp:
        mpp, how = ctx.mpp, "--mpp"
    else:
        mpp, how = None, ""
    if level0_px is None and patch_px and mpp and slide_mpp:
        level0_px = int(round(patch_px * mpp / slide_mpp))
    return {"patch_px": patch_px, "patch_px_level0": level0_px, "patch_mpp": mpp, "patch_mpp_source": how}
