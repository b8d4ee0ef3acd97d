"""Feature files in the layouts CLAM, TRIDENT, STAMP and slideflow write, built from their documented
schemas (docs/extract.md "Importing features"; the readers' module docs cite each tool's source).

Every slide has the same level-0 grid: 512 px patches (0.25 µm/px slides, 0.5 µm/px patches of 256 px),
so each tool's coordinate unit converts back to :func:`level0_xy`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

SLIDE_MPP = 0.25
PATCH_PX = 256
LEVEL0_PX = 512
N_SLIDES = 18


def slide_ids(n: int = N_SLIDES) -> list[str]:
    """TCGA-style slide ids, one slide per patient."""
    return [f"TCGA-AB-{1000 + i}-01Z-00-DX1" for i in range(n)]


def level0_xy(index: int) -> np.ndarray:
    """The level-0 top-left corners of slide ``index``'s patches (a few rows of a grid)."""
    n = 6 + index % 5
    return np.array([((k % 4) * LEVEL0_PX + 2048, (k // 4) * LEVEL0_PX + 1024) for k in range(n)], dtype=np.int64)


def features(index: int, dim: int, risk: float) -> np.ndarray:
    """Deterministic features whose mean carries the patient's risk (so a model can learn it)."""
    rng = np.random.default_rng(index)
    return (rng.normal(size=(len(level0_xy(index)), dim)) + risk).astype(np.float32)


def risks(n: int = N_SLIDES) -> np.ndarray:
    return np.random.default_rng(42).normal(size=n)


def write_clam(root: Path, dim: int, *, n: int = N_SLIDES, pt: bool = False) -> tuple[Path, Path]:
    """``<root>/feat/h5_files/<slide>.h5`` (features + coords, no attributes), ``pt_files/<slide>.pt``,
    and ``<root>/patches/<slide>.h5`` (coords with CLAM's patching attributes). Returns (feat, patches)."""
    feat, patches = root / "feat", root / "patches"
    for folder in (feat / "h5_files", feat / "pt_files", patches):
        folder.mkdir(parents=True, exist_ok=True)
    for i, sid in enumerate(slide_ids(n)):
        xy, x = level0_xy(i).astype(np.int32), features(i, dim, risks(n)[i])
        with h5py.File(patches / f"{sid}.h5", "w") as f:
            d = f.create_dataset("coords", data=xy, maxshape=(None, 2), chunks=(1, 2))
            d.attrs.update(
                {
                    "patch_size": PATCH_PX,
                    "patch_level": 1,
                    "downsample": (2.0, 2.0),
                    "downsampled_level_dim": (8000, 6000),
                    "level_dim": (8000, 6000),
                    "name": sid,
                    "save_path": str(patches),
                }
            )
        with h5py.File(feat / "h5_files" / f"{sid}.h5", "w") as f:
            f.create_dataset("features", data=x, maxshape=(None, dim), chunks=(1, dim))
            f.create_dataset("coords", data=xy, maxshape=(None, 2), chunks=(1, 2))
        if pt:
            torch.save(torch.from_numpy(x), feat / "pt_files" / f"{sid}.pt")
    return feat, patches


def write_trident(root: Path, dim: int, *, encoder: str = "uni_v1", n: int = N_SLIDES) -> Path:
    """``<root>/20x_256px_0px_overlap/features_<encoder>/<slide>.h5`` with TRIDENT's attributes."""
    job = root / "20x_256px_0px_overlap"
    folder = job / f"features_{encoder}"
    folder.mkdir(parents=True, exist_ok=True)
    (job / "patches").mkdir(exist_ok=True)
    coords_attrs = {
        "patch_size": PATCH_PX,
        "patch_size_level0": LEVEL0_PX,
        "level0_magnification": 40,
        "target_magnification": 20,
        "overlap": 0,
        "savetodir": str(job / "patches"),
        "level0_width": 8000,
        "level0_height": 6000,
    }
    for i, sid in enumerate(slide_ids(n)):
        with h5py.File(folder / f"{sid}.h5", "w") as f:
            d = f.create_dataset("features", data=features(i, dim, risks(n)[i]))
            d.attrs.update({"name": sid, "savetodir": str(folder), "encoder": encoder})
            c = f.create_dataset("coords", data=level0_xy(i))
            c.attrs.update({**coords_attrs, "name": sid})
    return folder


def write_stamp(root: Path, dim: int, *, extractor: str = "uni", n: int = N_SLIDES) -> tuple[Path, Path]:
    """``<root>/<extractor>-1a2b3c4d/<cohort>/<slide>.h5`` (µm coordinates) and STAMP's slide table
    (PATIENT, FILENAME) with an mpp column. Returns (features folder, slide table)."""
    folder = root / f"{extractor}-1a2b3c4d"
    (folder / "cohort").mkdir(parents=True, exist_ok=True)
    rows = ["PATIENT,FILENAME,mpp"]
    for i, sid in enumerate(slide_ids(n)):
        with h5py.File(folder / "cohort" / f"{sid}.h5", "w") as f:
            f["coords"] = level0_xy(i).astype(np.float64) * SLIDE_MPP
            f["feats"] = features(i, dim, risks(n)[i]).astype(np.float16)
            f.attrs.update(
                {
                    "stamp_version": "2.3.0",
                    "extractor": extractor,
                    "unit": "um",
                    "tile_size_um": LEVEL0_PX * SLIDE_MPP,
                    "tile_size_px": PATCH_PX,
                    "code_hash": "1a2b3c4d",
                    "feat_type": "tile",
                }
            )
        rows.append(f"{sid[:12]},{sid}.h5,{SLIDE_MPP}")
    table = root / "slide_table.csv"
    table.write_text("\n".join(rows) + "\n")
    return folder, table


def write_slideflow(root: Path, dim: int, *, n: int = N_SLIDES) -> Path:
    """``<root>/bags/<slide>.pt`` + ``<slide>.index.npz`` (tile centres) + ``bags_config.json``."""
    bags = root / "bags"
    bags.mkdir(parents=True, exist_ok=True)
    tile_um = LEVEL0_PX * SLIDE_MPP
    for i, sid in enumerate(slide_ids(n)):
        torch.save(torch.from_numpy(features(i, dim, risks(n)[i])), bags / f"{sid}.pt")
        centres = level0_xy(i) + int(int(tile_um / SLIDE_MPP) / 2)
        np.savez(bags / f"{sid}.index", arr_0=centres)
    config = {
        "extractor": {"class": "slideflow.model.extractors.retccl.RetCCLFeatures", "kwargs": {"center_crop": False}},
        "normalizer": None,
        "num_features": dim,
        "tile_px": PATCH_PX,
        "tile_um": int(tile_um),
    }
    (bags / "bags_config.json").write_text(json.dumps(config))
    return bags
