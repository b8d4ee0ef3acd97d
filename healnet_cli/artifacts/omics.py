"""Per-modality omics tables and survival labels in ``omics/``, written by ``healnet omics``.

``omics/<modality>.parquet``: one row per patient, index ``patient_id`` (str), float32 feature
columns (NaN = missing). Metadata: ``modality``, ``sources`` (input files + fingerprints),
``n_patients``, ``n_features``, ``missing_fraction`` (per feature), ``log1p``.

``omics/labels.parquet``: index ``patient_id``; ``time`` (float64, > 0) and ``event`` (bool, True
= event observed). Metadata: ``time_unit``, ``sources``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.artifacts._parquet import read_table, write_table
from healnet_cli.core.errors import InputError

OMICS_SCHEMA = "healnet.omics/1"
LABELS_SCHEMA = "healnet.labels/1"
LABELS_NAME = "labels"
CLINICAL = "clinical"  # the modality of patient covariates (age, sex, stage, grade)
INDEX = "patient_id"
_HINT = "rerun `healnet omics`"


def modality_path(omics_dir: str | os.PathLike[str], modality: str) -> Path:
    return Path(omics_dir) / f"{modality}.parquet"


def list_modalities(omics_dir: str | os.PathLike[str]) -> list[str]:
    """Modality names with a table in ``omics_dir`` (labels excluded)."""
    folder = Path(omics_dir)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.parquet") if p.stem != LABELS_NAME and not p.name.startswith("."))


def write_modality(path: str | os.PathLike[str], frame: pd.DataFrame, meta: dict[str, Any]) -> Path:
    """Atomically write a modality table (patients × features, float32)."""
    out = frame.astype(np.float32)
    out.index = out.index.astype(str)
    out.index.name = INDEX
    out.columns = [str(c) for c in out.columns]
    return write_table(path, out, {**meta, "n_patients": len(out), "n_features": out.shape[1]}, schema=OMICS_SCHEMA)


def read_modality(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a modality table; index = patient ids, float32 columns."""
    frame, meta = read_table(path, schema=OMICS_SCHEMA, hint=_HINT)
    if frame.index.name != INDEX:
        raise InputError(f"{path}: index is {frame.index.name!r}, expected {INDEX!r}; {_HINT}")
    return frame, meta


def write_labels(path: str | os.PathLike[str], frame: pd.DataFrame, meta: dict[str, Any]) -> Path:
    """Atomically write survival labels (``time`` > 0 float, ``event`` bool) per patient."""
    if list(frame.columns) != ["time", "event"]:
        raise ValueError(f"labels need exactly the columns time, event; got {list(frame.columns)}")
    out = pd.DataFrame({"time": frame["time"].astype(np.float64), "event": frame["event"].astype(bool)})
    out.index = frame.index.astype(str)
    out.index.name = INDEX
    if (out["time"] <= 0).any() or out["time"].isna().any():
        raise ValueError("label times must be > 0 and not missing")
    return write_table(
        path, out, {**meta, "n_patients": len(out), "n_events": int(out["event"].sum())}, schema=LABELS_SCHEMA
    )


def read_labels(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    frame, meta = read_table(path, schema=LABELS_SCHEMA, hint="rerun `healnet omics labels`")
    if list(frame.columns) != ["time", "event"] or frame.index.name != INDEX:
        raise InputError(f"{path}: expected index {INDEX} and columns time, event; rerun `healnet omics labels`")
    return frame, meta


def present_patients(frame: pd.DataFrame) -> pd.Index:
    """The patients a modality table gives data for: rows with at least one value (a row that is
    all NaN counts as absent), each id once. ``healnet cohort`` and ``healnet train`` both count
    presence with this rule."""
    frame = frame[~frame.index.duplicated()]
    return frame.index[frame.notna().to_numpy().any(axis=1)].astype(str)
