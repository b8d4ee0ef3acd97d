"""Read what evaluate scores: a ``healnet train`` run folder (out-of-fold predictions, labels,
splits, bin edges) or a ``healnet predict`` folder (external predictions), through the run
contract (:mod:`healnet_cli.artifacts.run`).

Out-of-fold predictions come from ``predictions.parquet``; when it is absent (a SLURM fold array
whose folds were not gathered) the ``fold_<k>/predictions.parquet`` files are concatenated in
memory. External predictions are scored as one set whose censoring distribution is the external
cohort's own; their risk groups are cut at the training run's cut-offs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.artifacts.run import HINT, RunLayout, read_manifest, read_options
from healnet_cli.artifacts.run_external import PredictLayout, is_predict_dir, read_external
from healnet_cli.artifacts.run_tables import read_failures, read_labels, read_oof_predictions, read_splits
from healnet_cli.core.errors import InputError
from healnet_cli.core.fingerprint import file_fingerprint

_HINT = HINT


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
    external
        For ``healnet predict`` output: its ``predict.json`` (the training run, coverage, shared
        patients). Its one "fold" (0) holds every labelled patient, who are also its ``train_ids``.
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
    external: dict[str, Any] | None = None  # predict.json of external predictions (None: a run's out-of-fold)
    risk_cutoffs: dict[str, list[float]] = field(default_factory=dict)  # "n groups" -> the training run's cut-offs

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


def _train_ids(splits: pd.DataFrame, folds: list[int], path: Path) -> dict[int, list[str]]:
    out = {}
    for k in folds:
        part = splits[(splits["fold"] == k) & (splits["split"] != "test")]
        if part.empty:
            raise InputError(f"{path}: fold {k} has no training patients; {_HINT}")
        out[k] = part["patient_id"].astype(str).tolist()
    return out


def _unfinished_folds(layout: RunLayout, folds: list[int]) -> dict[str, str]:
    """``fold_<k>/predictions.parquet -> why`` for folds in splits.csv without predictions (the
    reason from train's ``failures.json`` when it has one)."""
    try:
        expected = sorted(int(k) for k in read_splits(layout)["fold"].unique())
    except InputError:
        return {}
    failures = read_failures(layout)
    return {
        str(layout.fold_predictions(k).relative_to(layout.root)): f"training failed: {failures[str(k)]}"
        if str(k) in failures
        else "missing (fold not finished?)"
        for k in expected
        if k not in folds
    }


def read_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read and validate one run folder, or one ``healnet predict`` folder.

    Raises
    ------
    InputError
        The folder, the predictions, labels or splits are missing or malformed (the message names
        the file).
    """
    base = Path(run_dir)
    if not base.is_dir():
        raise InputError(f"run folder {base} not found; pass the --out folder of `healnet train` or `healnet predict`")
    if is_predict_dir(base):
        return read_external_run(base)
    layout = RunLayout(base)
    frame, meta, sources, from_folds = read_oof_predictions(layout)
    frame = _check_predictions(frame, sources[0])
    folds = sorted(int(k) for k in frame["fold"].unique())
    n_bins = sum(1 for c in frame.columns if re.fullmatch(r"surv_\d+", str(c)))
    edges = _bin_edges(meta, folds, n_bins, sources[0])
    labels = read_labels(layout)
    train_ids = _train_ids(read_splits(layout), folds, layout.splits)
    fingerprints = {str(p.relative_to(base)): file_fingerprint(p) for p in sources}
    for path in (layout.labels, layout.splits, layout.config):
        if path.is_file():
            fingerprints[path.name] = file_fingerprint(path)
    unfinished = _unfinished_folds(layout, folds) if from_folds else {}
    cutoffs = read_manifest(layout).risk_cutoffs if layout.is_run() else {}
    return RunData(
        base,
        base.resolve().name,
        read_options(base),
        frame,
        edges,
        train_ids,
        labels,
        meta,
        fingerprints,
        unfinished,
        None,
        cutoffs,
    )


def read_external_run(base: Path) -> RunData:
    """The output of ``healnet predict`` as one scored set (labelled patients only).

    Raises
    ------
    InputError
        No patient has a label, or the files are malformed.
    """
    layout = PredictLayout(base)
    frame, meta, record = read_external(base)
    path = layout.predictions
    labelled = frame["time"].notna() if "time" in frame.columns else pd.Series(False, index=frame.index)
    if not labelled.any():
        raise InputError(
            f"{path}: no patient has a label (time, event), so there is nothing to score; add the external "
            f"cohort's labels (`healnet omics labels ... --workdir {record.get('workdir', 'W')}`) and rerun `healnet "
            "predict`"
        )
    scored = frame[labelled].copy()
    scored["fold"] = 0
    scored = _check_predictions(scored, path)
    n_bins = sum(1 for c in scored.columns if re.fullmatch(r"surv_\d+", str(c)))
    edges = _bin_edges({"bin_edges": meta.get("bin_edges")}, [0], n_bins, path)
    labels = scored.set_index("patient_id")[["time", "event"]]
    external = {
        **record,
        "n_predicted": int(len(frame)),
        "n_scored": int(len(scored)),
        "n_unlabelled": int((~labelled).sum()),
    }
    opts = {"model": meta.get("model"), "modalities": meta.get("modalities"), **dict(record.get("options") or {})}
    fingerprints = {p.name: file_fingerprint(p) for p in (layout.predictions, layout.record)}
    return RunData(
        base,
        base.resolve().name,
        opts,
        scored,
        edges,
        {0: labels.index.tolist()},
        labels,
        meta,
        fingerprints,
        {},
        external,
        dict(record.get("risk_cutoffs") or {}),
    )


def require_checkpoints(run: RunData) -> dict[int, Path]:
    """``fold -> checkpoint path`` for every fold with predictions (needed by --ablate / attention).

    Raises
    ------
    InputError
        A fold's ``checkpoint.pt`` is missing.
    """
    layout = RunLayout(run.path)
    paths = {k: layout.checkpoint(k) for k in run.folds}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"{', '.join(missing)} not found (needed by --ablate / --attention); {_HINT}")
    return paths
