"""Read a ``healnet train`` run folder: out-of-fold predictions, labels, splits, bin edges.

Predictions come from ``predictions.parquet``; when it is absent (a SLURM fold array whose folds
were not gathered) the ``fold_<k>/predictions.parquet`` files are concatenated in memory.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from healnet_cli.core.errors import InputError
from healnet_cli.core.fingerprint import file_fingerprint

PREDICTIONS = "predictions.parquet"
_FOLD_DIR = re.compile(r"^fold_(\d+)$")
_HINT = "rerun `healnet train` (or pass the run's --out folder)"


@dataclass
class RunData:
    """What evaluate needs from one run.

    Attributes
    ----------
    predictions
        One row per out-of-fold prediction: ``patient_id`` (str), ``fold`` (int), ``risk``,
        ``surv_0..surv_{B-1}``, ``time``, ``event`` (bool), ``has_<modality>`` (bool).
    bin_edges
        ``fold -> [B+1]`` edges (time units) of that fold's discrete-time bins.
    train_ids
        ``fold -> patient ids`` not in the fold's test split (train + inner validation): the
        patients whose censoring distribution weights Uno's c-index, the Brier score and the AUC.
    labels
        Index ``patient_id``; ``time``, ``event`` for the whole cohort.
    """

    path: Path
    name: str
    options: dict[str, Any]
    predictions: pd.DataFrame
    bin_edges: dict[int, np.ndarray]
    train_ids: dict[int, list[str]]
    labels: pd.DataFrame
    meta: dict[str, Any]
    fingerprints: dict[str, str] = field(default_factory=dict)
    unfinished: dict[str, str] = field(default_factory=dict)

    @property
    def folds(self) -> list[int]:
        return sorted(int(k) for k in self.predictions["fold"].unique())

    @property
    def modalities(self) -> list[str]:
        mods = self.meta.get("modalities") or self.options.get("modalities") or []
        if isinstance(mods, str):
            mods = [m.strip() for m in mods.split(",") if m.strip()]
        return [str(m) for m in mods]

    @property
    def model_name(self) -> str:
        return str(self.meta.get("model") or self.options.get("model") or "unknown")

    @property
    def time_unit(self) -> str:
        return str(self.meta.get("time_unit") or "time units")

    def surv_columns(self) -> list[str]:
        cols = [c for c in self.predictions.columns if re.fullmatch(r"surv_\d+", str(c))]
        return sorted(cols, key=lambda c: int(c.split("_")[1]))


def fold_dirs(run_dir: Path) -> dict[int, Path]:
    """``fold_<k>`` sub-folders of ``run_dir`` by fold index."""
    return {int(m.group(1)): p for p in run_dir.iterdir() if p.is_dir() and (m := _FOLD_DIR.match(p.name))}


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); {_HINT}") from exc
    raw = (table.schema.metadata or {}).get(b"healnet")
    return table.to_pandas(), (json.loads(raw) if raw else {})


def _read_predictions(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any], list[Path]]:
    gathered = run_dir / PREDICTIONS
    if gathered.is_file():
        frame, meta = _read_parquet(gathered)
        return frame, meta, [gathered]
    per_fold = {k: d / PREDICTIONS for k, d in sorted(fold_dirs(run_dir).items())}
    present = {k: p for k, p in per_fold.items() if p.is_file()}
    if not present:
        raise InputError(f"{gathered} not found (and no fold_<k>/{PREDICTIONS}); {_HINT}")
    frames, meta = [], {"bin_edges": {}, "gathered_from_folds": True}
    for k, path in present.items():
        frame, m = _read_parquet(path)
        frames.append(frame)
        meta["bin_edges"][str(k)] = m.get("bin_edges")
        for key in ("time_unit", "model", "modalities", "loss"):
            if m.get(key) is not None:
                meta[key] = m[key]
    return pd.concat(frames, ignore_index=True), meta, list(present.values())


def _check_predictions(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    needed = {"patient_id", "fold", "risk", "time", "event"}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise InputError(f"{path}: column(s) {missing} missing from the predictions; {_HINT}")
    if not any(re.fullmatch(r"surv_\d+", str(c)) for c in frame.columns):
        raise InputError(f"{path}: no surv_<j> columns in the predictions; {_HINT}")
    if frame.empty:
        raise InputError(f"{path}: no predictions; {_HINT}")
    out = frame.copy()
    out["patient_id"] = out["patient_id"].astype(str)
    dup = out["patient_id"][out["patient_id"].duplicated()]
    if len(dup):
        folds = sorted(out.loc[out["patient_id"] == dup.iloc[0], "fold"].astype(int).tolist())
        raise InputError(
            f"{path}: {dup.nunique()} patient(s) predicted more than once (e.g. {dup.iloc[0]} in folds {folds}); "
            "out-of-fold predictions hold each patient once: check splits.csv"
        )
    out["fold"] = out["fold"].astype(int)
    out["event"] = out["event"].astype(bool)
    out["time"] = out["time"].astype(float)
    return out.sort_values(["fold", "patient_id"], kind="stable").reset_index(drop=True)


def _bin_edges(meta: dict[str, Any], folds: list[int], n_bins: int, path: Path) -> dict[int, np.ndarray]:
    raw = meta.get("bin_edges")
    out: dict[int, np.ndarray] = {}
    for position, k in enumerate(folds):
        if isinstance(raw, dict):
            edges = raw.get(str(k))
        elif isinstance(raw, list) and raw and isinstance(raw[0], list):
            edges = raw[position] if position < len(raw) else None
        else:
            edges = raw
        if edges is None:
            raise InputError(f"{path}: metadata has no bin_edges for fold {k}; {_HINT}")
        arr = np.array([np.inf if e is None else float(e) for e in edges], dtype=float)
        if arr.shape[0] != n_bins + 1 or np.any(np.diff(arr) <= 0):
            raise InputError(f"{path}: fold {k} bin_edges {edges} are not {n_bins + 1} increasing edges; {_HINT}")
        out[k] = arr
    return out


def _read_labels(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "labels.parquet"
    if not path.is_file():
        raise InputError(f"{path} not found (needed for the training patients' censoring distribution); {_HINT}")
    frame, _ = _read_parquet(path)
    if "patient_id" in frame.columns:
        frame = frame.set_index("patient_id")
    if not {"time", "event"} <= set(frame.columns):
        raise InputError(f"{path}: columns 'time' and 'event' expected, found {list(frame.columns)}; {_HINT}")
    frame.index = frame.index.astype(str)
    return pd.DataFrame({"time": frame["time"].astype(float), "event": frame["event"].astype(bool)})


def _read_splits(run_dir: Path, folds: list[int]) -> dict[int, list[str]]:
    path = run_dir / "splits.csv"
    if not path.is_file():
        raise InputError(f"{path} not found (needed for each fold's training patients); {_HINT}")
    try:
        frame = pd.read_csv(path, dtype={"patient_id": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be parsed as CSV ({' '.join(str(exc).split())}); {_HINT}") from exc
    if not {"patient_id", "fold", "split"} <= set(frame.columns):
        raise InputError(f"{path}: columns patient_id, fold, split expected, found {list(frame.columns)}; {_HINT}")
    out = {}
    for k in folds:
        part = frame[(frame["fold"] == k) & (frame["split"] != "test")]
        if part.empty:
            raise InputError(f"{path}: fold {k} has no training patients; {_HINT}")
        out[k] = part["patient_id"].astype(str).tolist()
    return out


def _unfinished_folds(run_dir: Path, folds: list[int]) -> dict[str, str]:
    """``fold_<k>/predictions.parquet -> why`` for folds in splits.csv without predictions (the
    reason from train's ``failures.json`` when it has one)."""
    try:
        expected = sorted(int(k) for k in pd.read_csv(run_dir / "splits.csv", usecols=["fold"])["fold"].unique())
    except (OSError, ValueError):
        return {}
    failures: dict[str, Any] = {}
    if (run_dir / "failures.json").is_file():
        try:
            failures = json.loads((run_dir / "failures.json").read_text())
        except ValueError:
            failures = {}
    return {
        f"fold_{k}/{PREDICTIONS}": f"training failed: {failures[str(k)]}" if str(k) in failures else "missing (fold not finished?)"
        for k in expected
        if k not in folds
    }


def _read_options(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML; {_HINT}") from exc
    return dict(data.get("options", {})) if isinstance(data, dict) else {}


def read_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read and validate one run folder.

    Raises
    ------
    InputError
        The folder, the predictions, labels or splits are missing or malformed (the message names
        the file).
    """
    base = Path(run_dir)
    if not base.is_dir():
        raise InputError(f"run folder {base} not found; pass the --out folder of `healnet train`")
    frame, meta, sources = _read_predictions(base)
    frame = _check_predictions(frame, sources[0])
    folds = sorted(int(k) for k in frame["fold"].unique())
    n_bins = sum(1 for c in frame.columns if re.fullmatch(r"surv_\d+", str(c)))
    edges = _bin_edges(meta, folds, n_bins, sources[0])
    labels = _read_labels(base)
    train_ids = _read_splits(base, folds)
    fingerprints = {str(p.relative_to(base)): file_fingerprint(p) for p in sources}
    for name in ("labels.parquet", "splits.csv", "config.yaml"):
        if (base / name).is_file():
            fingerprints[name] = file_fingerprint(base / name)
    unfinished = _unfinished_folds(base, folds) if meta.pop("gathered_from_folds", False) else {}
    return RunData(base, base.resolve().name, _read_options(base), frame, edges, train_ids, labels, meta, fingerprints,
                   unfinished)


def require_checkpoints(run: RunData) -> dict[int, Path]:
    """``fold -> checkpoint path`` for every fold with predictions (needed by --ablate / attention).

    Raises
    ------
    InputError
        A fold's ``checkpoint.pt`` is missing.
    """
    paths = {k: run.path / f"fold_{k}" / "checkpoint.pt" for k in run.folds}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"{', '.join(missing)} not found (needed by --ablate / --attention); {_HINT}")
    return paths
