"""Patch coordinates of one slide (``tiles/<slide_id>.parquet``), written by ``healnet tile``.

Columns: ``x``, ``y`` (int64, level-0 pixel coordinates of the patch's top-left corner) and
``tissue`` (float32, tissue fraction of the patch). Metadata (a JSON object, see
:func:`healnet_cli.artifacts._parquet.read_meta`) holds at least:

``slide_id``, ``case_id``, ``source_path``, ``reader``, ``mpp`` (level-0 µm/px), ``mpp_source``,
``target_mpp``, ``patch_px`` (size at the target mpp), ``patch_px_level0`` (size at level 0),
``read_level`` (pyramid level to read patches from), ``read_downsample`` (that level's downsample),
``read_patch_px`` (patch size to read at ``read_level``, then resize to ``patch_px``),
``overlap_px``, ``level0_width``, ``level0_height``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from healnet_cli.artifacts._parquet import read_meta, read_table, write_arrow

SCHEMA = "healnet.coords/1"
SUFFIX = ".parquet"
REQUIRED_META = (
    "slide_id",
    "case_id",
    "source_path",
    "mpp",
    "patch_px",
    "patch_px_level0",
    "read_level",
    "read_patch_px",
)
_HINT = "rerun `healnet tile`"


@dataclass
class SlideCoords:
    """Patch grid of one slide: level-0 top-left coordinates, tissue fractions and metadata."""

    x: np.ndarray
    y: np.ndarray
    tissue: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def slide_id(self) -> str:
        return str(self.meta["slide_id"])

    @property
    def case_id(self) -> str:
        return str(self.meta.get("case_id") or self.meta["slide_id"])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def xy(self) -> np.ndarray:
        """``[N, 2]`` int64 array of (x, y)."""
        return np.stack([self.x, self.y], axis=1).astype(np.int64, copy=False)


def coords_path(tiles_dir: str | os.PathLike[str], slide_id: str) -> Path:
    return Path(tiles_dir) / f"{slide_id}{SUFFIX}"


def write_coords(path: str | os.PathLike[str], coords: SlideCoords) -> Path:
    """Atomically write a slide's coordinates with their metadata."""
    missing = [k for k in REQUIRED_META if k not in coords.meta]
    if missing:
        raise ValueError(f"coords metadata lacks {missing}")
    table = pa.Table.from_arrays(
        [_column(coords.x, np.int64), _column(coords.y, np.int64), _column(coords.tissue, np.float32)],
        names=["x", "y", "tissue"],
    )
    return write_arrow(path, table, {**coords.meta, "n_patches": table.num_rows}, schema=SCHEMA)


def _column(values: np.ndarray, dtype: type) -> pa.Array:
    """An Arrow column of a 1-D numpy array, built from its buffer (``pa.array`` would import pandas)."""
    array: np.ndarray = np.ascontiguousarray(values, dtype=dtype).ravel()
    return pa.Array.from_buffers(pa.from_numpy_dtype(array.dtype), len(array), [None, pa.py_buffer(array)])


def read_coords(path: str | os.PathLike[str]) -> SlideCoords:
    """Read and validate a coordinates file."""
    frame, meta = read_table(path, schema=SCHEMA, hint=_HINT)
    for column in ("x", "y", "tissue"):
        if column not in frame.columns:
            raise_missing(path, column)
    return SlideCoords(
        frame["x"].to_numpy(np.int64), frame["y"].to_numpy(np.int64), frame["tissue"].to_numpy(np.float32), meta
    )


def read_coords_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A coordinates file's metadata without reading its rows."""
    return read_meta(path, schema=SCHEMA, hint=_HINT)


def raise_missing(path: str | os.PathLike[str], column: str) -> None:
    from healnet_cli.core.errors import InputError

    raise InputError(f"{path}: column {column!r} missing; {_HINT}")
