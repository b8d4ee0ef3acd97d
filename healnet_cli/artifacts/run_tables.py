"""The tables of a run folder, read and written here only: predictions (Parquet with the metadata
under the schema key ``healnet``), labels, splits, summary and failures.

Predictions (``healnet.predictions/1``): one row per patient with ``patient_id``, ``risk`` (higher =
earlier event), ``surv_0..surv_{B-1}`` (survival at the end of each time bin), ``has_<modality>``,
and ``fold``, ``time``, ``event`` for out-of-fold predictions (``time``/``event`` where labels
exist for external ones). Metadata: ``bin_edges`` (one list, or ``{fold: list}`` once gathered),
``time_unit``, ``model``, ``modalities``, ``loss``, ``kind`` (``out_of_fold`` or ``external``).
Files of schema-1 runs have the same columns and no ``schema`` key; they read the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from healnet_cli.artifacts._parquet import read_table, write_arrow
from healnet_cli.artifacts.run import HINT, PREDICTIONS_FILE, RunLayout
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError

PREDICTIONS_SCHEMA = "healnet.predictions/1"
OUT_OF_FOLD = "out_of_fold"
EXTERNAL = "external"
META_KEYS = ("time_unit", "model", "modalities", "loss")
#: Risk groups for which the run stores the cut-offs of its pooled out-of-fold risk.
GROUP_COUNTS = range(2, 7)


def write_predictions(path: str | os.PathLike[str], frame: pd.DataFrame, meta: Mapping[str, Any]) -> Path:
    """Atomically write a predictions table (no index) with ``meta`` + schema + version."""
    return write_arrow(path, pa.Table.from_pandas(frame, preserve_index=False), dict(meta), schema=PREDICTIONS_SCHEMA)


def read_predictions(path: str | os.PathLike[str], *, hint: str = HINT) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A predictions (or run labels) table and its healnet metadata (``{}`` for a schema-1 file without any)."""
    return read_table(path, schema=PREDICTIONS_SCHEMA, hint=hint, unversioned=True)


def _concat_folds(layout: RunLayout, folds: Sequence[int]) -> tuple[pd.DataFrame, dict[str, Any], list[Path]]:
    frames: list[pd.DataFrame] = []
    paths: list[Path] = []
    bin_edges: dict[str, Any] = {}
    meta: dict[str, Any] = {"bin_edges": bin_edges}
    for k in folds:
        path = layout.fold_predictions(k)
        frame, m = read_predictions(path)
        frames.append(frame)
        paths.append(path)
        bin_edges[str(k)] = m.get("bin_edges")
        meta.update({key: m[key] for key in META_KEYS if m.get(key) is not None})
    meta["kind"] = OUT_OF_FOLD
    return pd.concat(frames, ignore_index=True), meta, paths


def gather_predictions(layout: RunLayout, folds: Sequence[int]) -> pd.DataFrame | None:
    """Concatenate ``fold_<k>/predictions.parquet`` into ``predictions.parquet`` when every fold has
    one; returns the frame, or None when some fold is not finished."""
    if not all(layout.fold_predictions(k).is_file() for k in folds):
        return None
    frame, meta, _ = _concat_folds(layout, folds)
    frame = frame.sort_values(["fold", "patient_id"], kind="stable").reset_index(drop=True)
    write_predictions(layout.predictions, frame, meta)
    return frame


def read_oof_predictions(layout: RunLayout) -> tuple[pd.DataFrame, dict[str, Any], list[Path], bool]:
    """The out-of-fold predictions: ``predictions.parquet``, or (a fold array not gathered yet) the
    folds' files concatenated in memory. Returns frame, metadata, the files read and whether they
    came from the folds."""
    if layout.predictions.is_file():
        frame, meta = read_predictions(layout.predictions)
        return frame, meta, [layout.predictions], False
    present = [k for k in sorted(layout.fold_dirs()) if layout.fold_predictions(k).is_file()]
    if not present:
        raise InputError(f"{layout.predictions} not found (and no fold_<k>/{PREDICTIONS_FILE}); {HINT}")
    frame, meta, paths = _concat_folds(layout, present)
    return frame, meta, paths, True


def write_labels(layout: RunLayout, labels: pd.DataFrame, time_unit: str) -> Path:
    """The cohort's labels (index = patient id; ``time``, ``event``)."""
    frame = labels.rename_axis("patient_id").reset_index()
    return write_predictions(layout.labels, frame, {"time_unit": time_unit, "kind": "labels"})


def read_labels(layout: RunLayout) -> pd.DataFrame:
    """Index ``patient_id`` (str); ``time`` (float), ``event`` (bool)."""
    path = layout.labels
    if not path.is_file():
        raise InputError(f"{path} not found (needed for the training patients' censoring distribution); {HINT}")
    frame, _ = read_predictions(path)
    if "patient_id" in frame.columns:
        frame = frame.set_index("patient_id")
    if not {"time", "event"} <= set(frame.columns):
        raise InputError(f"{path}: columns 'time' and 'event' expected, found {list(frame.columns)}; {HINT}")
    frame.index = frame.index.astype(str)
    return pd.DataFrame({"time": frame["time"].astype(float), "event": frame["event"].astype(bool)})


def write_splits(layout: RunLayout, frame: pd.DataFrame) -> Path:
    return atomic.write_text(layout.splits, frame.to_csv(index=False))


def read_splits(layout: RunLayout) -> pd.DataFrame:
    """``patient_id`` (str), ``fold`` (int), ``split`` (``train``, ``val``, ``test``)."""
    path = layout.splits
    if not path.is_file():
        raise InputError(f"{path} not found (needed for each fold's training patients); {HINT}")
    try:
        frame = pd.read_csv(path, dtype={"patient_id": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be parsed as CSV ({' '.join(str(exc).split())}); {HINT}") from exc
    if not {"patient_id", "fold", "split"} <= set(frame.columns):
        raise InputError(f"{path}: columns patient_id, fold, split expected, found {list(frame.columns)}; {HINT}")
    return frame


def write_summary(layout: RunLayout, summary: dict[str, Any]) -> None:
    """``summary.json`` and ``summary.csv`` (c-index per fold, mean, sd)."""
    atomic.write_json(layout.summary_json, summary)
    table = pd.DataFrame(summary["folds"])
    extra = pd.DataFrame(
        [{"fold": "mean", "cindex": summary["cindex_mean"]}, {"fold": "sd", "cindex": summary["cindex_sd"]}]
    )
    atomic.write_text(layout.summary_csv, pd.concat([table, extra], ignore_index=True).to_csv(index=False))


def read_failures(layout: RunLayout) -> dict[str, str]:
    """``fold -> reason`` of the folds that failed (``{}`` when none or unreadable)."""
    try:
        return {str(k): str(v) for k, v in json.loads(layout.failures.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def record_failures(layout: RunLayout, failed: Mapping[int, str]) -> None:
    """Add ``failed`` to ``failures.json``; with nothing failed and every fold done, remove it."""
    if failed:
        atomic.write_json(layout.failures, {**read_failures(layout), **{str(k): v for k, v in failed.items()}})


def clear_failures(layout: RunLayout) -> None:
    layout.failures.unlink(missing_ok=True)


def risk_cutoffs(risk: np.ndarray) -> dict[str, list[float]]:
    """Quantile cut-offs of ``risk`` for 2..6 groups (``"2"``: the median)."""
    risk = np.asarray(risk, dtype=float)
    risk = risk[np.isfinite(risk)]
    if risk.size == 0:
        return {}
    return {str(n): np.quantile(risk, np.arange(1, n) / n).tolist() for n in GROUP_COUNTS}
