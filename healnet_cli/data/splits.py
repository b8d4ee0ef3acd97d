"""Patient-level cross-validation splits: from a splits folder or generated, plus inner validation.

A fold is ``(train, test)`` patient ids. The inner validation set used for early stopping is carved
from the fold's *training* patients only (stratified by event), never from its test patients.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from healnet_cli.core.errors import InputError

_SPLIT_FILE = re.compile(r"^splits_(\d+)\.csv$")


@dataclass
class Fold:
    """One fold: training patients (inner train + inner validation) and test patients."""

    index: int
    train: list[str]
    test: list[str]
    val: list[str] = field(default_factory=list)

    @property
    def fit(self) -> list[str]:
        """Training patients minus the inner validation set (what the weights are fitted on)."""
        held = set(self.val)
        return [p for p in self.train if p not in held]


@dataclass
class SplitsReport:
    """What reading a splits folder dropped: cohort patients in no column and unknown ids, per fold."""

    dropped: dict[int, list[str]] = field(default_factory=dict)
    unknown: dict[int, list[str]] = field(default_factory=dict)


def _column(frame: pd.DataFrame, name: str, path: Path) -> list[str]:
    if name not in frame.columns:
        raise InputError(
            f"splits file {path}: no column {name!r} (columns: {list(frame.columns)}); expected 'train' and 'val' "
            "columns of patient ids"
        )
    values = frame[name].dropna().astype(str).str.strip()
    return [v for v in values if v]


def read_splits_dir(folder: str | os.PathLike[str], patients: Sequence[str]) -> tuple[list[Fold], SplitsReport]:
    """Read ``splits_K.csv`` files (columns ``train``, ``val``; ``val`` = the fold's test patients).

    Blank cells pad the shorter column. Cohort patients in neither column are dropped from that
    fold; ids not in the cohort are ignored and reported.

    Raises
    ------
    InputError
        No ``splits_K.csv`` file, missing columns, non-contiguous fold numbers, a patient in both
        columns, or a fold with no cohort patient in one of its columns.
    """
    base = Path(folder)
    if not base.is_dir():
        raise InputError(f"--splits {base}: not a folder; pass the folder holding splits_0.csv, splits_1.csv, ...")
    files = {int(m.group(1)): p for p in base.iterdir() if (m := _SPLIT_FILE.match(p.name))}
    if not files:
        raise InputError(
            f"--splits {base}: no splits_K.csv files; expected splits_0.csv, splits_1.csv, ... with train/val columns"
        )
    if sorted(files) != list(range(len(files))):
        raise InputError(f"--splits {base}: fold numbers {sorted(files)} are not 0..{len(files) - 1}; rename the files")
    cohort = set(patients)
    folds, report = [], SplitsReport()
    for k in sorted(files):
        path = files[k]
        try:
            frame = pd.read_csv(path, dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"splits file {path}: cannot be parsed as CSV ({' '.join(str(exc).split())})") from exc
        train, test = _column(frame, "train", path), _column(frame, "val", path)
        both = sorted(set(train) & set(test))
        if both:
            raise InputError(
                f"splits file {path}: {len(both)} patient(s) in both train and val (e.g. {both[0]}); fix the file"
            )
        unknown = sorted((set(train) | set(test)) - cohort)
        train = sorted(dict.fromkeys(p for p in train if p in cohort))
        test = sorted(dict.fromkeys(p for p in test if p in cohort))
        if not train or not test:
            which = "train" if not train else "val"
            raise InputError(
                f"splits file {path}: no cohort patient in the {which!r} column; do the ids match the labels' "
                "patient ids?"
            )
        report.dropped[k] = sorted(cohort - set(train) - set(test))
        report.unknown[k] = unknown
        folds.append(Fold(k, train, test))
    return folds, report


def make_folds(labels: pd.DataFrame, n_folds: int, seed: int) -> list[Fold]:
    """Stratified (by event) patient-level K-fold splits of ``labels.index``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    ids = np.asarray(labels.index.astype(str))
    events = labels["event"].to_numpy(bool)
    if n_folds < 2:
        raise InputError(f"--folds {n_folds}: need at least 2 folds")
    if len(ids) < n_folds:
        raise InputError(f"--folds {n_folds}: only {len(ids)} patients in the cohort; use fewer folds")
    strat = min(events.sum(), (~events).sum()) >= n_folds
    splitter = (StratifiedKFold if strat else KFold)(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for k, (tr, te) in enumerate(splitter.split(ids, events if strat else None)):
        folds.append(Fold(k, sorted(ids[tr].tolist()), sorted(ids[te].tolist())))
    return folds


#: Fewer training patients than this: no inner validation set is drawn.
MIN_VAL_SOURCE = 4


def inner_validation(train: Sequence[str], events: pd.Series, fraction: float, seed: int) -> list[str]:
    """A stratified random ``fraction`` of the training patients, held out for early stopping."""
    from sklearn.model_selection import train_test_split

    ids = np.asarray(sorted(train))
    if fraction <= 0 or len(ids) < MIN_VAL_SOURCE:
        return []
    n_val = max(1, int(round(fraction * len(ids))))
    ev = events.loc[ids].to_numpy(bool)
    strat = ev if min(ev.sum(), (~ev).sum()) >= 2 and n_val >= 2 else None
    _, val = train_test_split(ids, test_size=n_val, random_state=seed, stratify=strat)
    return sorted(val.tolist())


def splits_frame(folds: Sequence[Fold]) -> pd.DataFrame:
    """Long table ``patient_id, fold, split`` with split in {train, val, test}."""
    rows = []
    for f in folds:
        held = set(f.val)
        rows += [(p, f.index, "val" if p in held else "train") for p in f.train]
        rows += [(p, f.index, "test") for p in f.test]
    return pd.DataFrame(rows, columns=["patient_id", "fold", "split"])


def folds_from_frame(frame: pd.DataFrame) -> list[Fold]:
    """Inverse of :func:`splits_frame`."""
    folds = []
    for k, part in frame.groupby("fold", sort=True):
        split = part.set_index("patient_id")["split"]
        train = sorted(split.index[split != "test"].astype(str))
        folds.append(
            Fold(
                int(k),
                train,
                sorted(split.index[split == "test"].astype(str)),
                sorted(split.index[split == "val"].astype(str)),
            )
        )
    return folds
