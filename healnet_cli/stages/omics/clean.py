"""Stateless cleaning: numeric coercion, clinical encodings, categorical one-hot, duplicate collapse, dropping empty
and constant features, optional log1p, per-feature missingness.

Nothing here is fitted on data: z-scoring, clipping, imputation and feature selection depend on
which patients are in the training fold, so ``healnet train`` fits them per fold.

Duplicate rows of one patient (several slides, replicate samples) collapse deterministically:
rows identical in every feature (NaN equal to NaN) are kept once; otherwise each feature is
aggregated over the patient's rows ignoring missing values, with ``max`` for binary 0/1 features
(a gene counts as mutated when any sample is) and the ``mean`` for all others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from healnet_cli.stages.omics import clinical

# Text columns of clinical tables that are categories even when most values look like numbers
# (TCGA tissue-source-site codes such as "55" or "MP").
CATEGORICAL_NAMES = frozenset(
    {"site", "tss", "oncotree_code", "sex", "gender", "race", "ethnicity", "stage", "grade", "cancer_type"}
)
_NUMERIC_SHARE = 0.5
_MAX_TEXT_VALUES = 3
_EXAMPLES = 5


@dataclass
class Coercion:
    """Non-numeric cells turned into missing values, and non-finite values dropped."""

    cells: int = 0
    columns: int = 0
    examples: list[str] = field(default_factory=list)
    non_finite: int = 0

    def add(self, column: str, bad: pd.Series) -> None:
        if bad.empty:
            return
        self.cells += len(bad)
        self.columns += 1
        for value in bad.unique()[: _EXAMPLES - len(self.examples)]:
            self.examples.append(f"{column}={value!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "cells": self.cells,
            "columns": self.columns,
            "examples": self.examples,
            "non_finite_to_missing": self.non_finite,
        }


def _as_float(column: pa.ChunkedArray, name: str, coercion: Coercion) -> np.ndarray:
    """One arrow column as float32 (text coerced, reported)."""
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
        values = column.cast(pa.float32()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float32)
    text = pd.Series(column.to_pandas(), dtype=object).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    coercion.add(name, text[text.notna() & numbers.isna()])
    return numbers.to_numpy(dtype=np.float32)


def numeric_matrix(
    table: pa.Table, columns: Sequence[tuple[str, str]], rows: np.ndarray, coercion: Coercion, *, log1p: bool = False
) -> tuple[np.ndarray, list[str]]:
    """The ``columns`` (source, feature name) of ``table`` as a float32 matrix of the kept ``rows``,
    with ``log(1 + x)`` applied in place when ``log1p``.

    Raises
    ------
    ValueError
        ``log1p`` of negative values.
    """
    out = np.empty((int(rows.sum()), len(columns)), dtype=np.float32, order="F")
    all_rows = bool(rows.all())
    for j, (source, _) in enumerate(columns):
        values = _as_float(table.column(source), source, coercion)
        out[:, j] = values if all_rows else values[rows]
    infinite = np.isinf(out)
    if infinite.any():
        coercion.non_finite += int(infinite.sum())
        out[infinite] = np.nan
    del infinite
    if log1p:
        _log1p_inplace(out)
    return out, [name for _, name in columns]


def _log1p_inplace(values: np.ndarray) -> None:
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduce(values, axis=None) if values.size else 0.0
    if low < 0:
        raise ValueError(
            f"negative values (min {low:.4g}): --log1p is for non-negative counts; drop --log1p for log or z-scored "
            "data"
        )
    np.log1p(values, out=values)


def _looks_numeric(text: pd.Series) -> bool:
    present = text.dropna()
    if present.empty:
        return True
    numbers = pd.to_numeric(present, errors="coerce")
    failed = present[numbers.isna()]
    return numbers.notna().mean() >= _NUMERIC_SHARE and failed.nunique() <= _MAX_TEXT_VALUES


@dataclass
class ClinicalReport:
    one_hot: dict[str, int] = field(default_factory=dict)
    dropped_text: dict[str, int] = field(default_factory=dict)
    selection: clinical.Selection | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"one_hot_columns": self.one_hot, "dropped_high_cardinality_text": self.dropped_text}
        if self.selection is not None:
            out["columns"] = self.selection.as_dict()
        return out


def clinical_frame(
    table: pa.Table, selection: clinical.Selection, rows: np.ndarray, coercion: Coercion, *, max_levels: int
) -> tuple[pd.DataFrame, ClinicalReport]:
    """The clinical columns ``selection`` keeps (see :mod:`healnet_cli.stages.omics.clinical`):
    age, sex, stage and grade by their encodings; other columns asked for as numbers, or one-hot
    encoded categories (``col=level``; a missing category gives NaN in all its indicator columns),
    text with more than ``max_levels`` values dropped."""
    parts: list[pd.DataFrame] = []
    final = clinical.Selection(selection.request, dropped=dict(selection.dropped), not_found=list(selection.not_found))
    report = ClinicalReport(selection=final)
    for kept in selection.kept:
        source, name = kept.column, kept.feature
        if kept.role in clinical.ENCODED_ROLES:
            values = pd.Series(table.column(source).to_pandas(), dtype=object)[rows].reset_index(drop=True)
            reason = clinical.check_share(kept, values)
            if reason:
                final.dropped[source] = reason
                continue
            feature, bad, note = clinical.encode(kept, values)
            coercion.add(source, bad)
            parts.append(pd.DataFrame({name: feature}))
            final.kept.append(kept)
            if note:
                final.notes[source] = note
            continue
        final.kept.append(kept)
        column = table.column(source)
        categorical = kept.role == clinical.SITE or name.lower() in CATEGORICAL_NAMES
        if categorical:
            column = column.cast(pa.string())
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            values, _ = numeric_matrix(table, [(source, name)], rows, coercion)
            parts.append(pd.DataFrame({name: values[:, 0]}))
            continue
        text = pd.Series(column.to_pandas(), dtype=object)[rows].reset_index(drop=True).str.strip()
        if not categorical and _looks_numeric(text):
            numbers = pd.to_numeric(text, errors="coerce")
            coercion.add(source, text[text.notna() & numbers.isna()])
            parts.append(pd.DataFrame({name: numbers.to_numpy(dtype=np.float32)}))
            continue
        levels = sorted(text.dropna().unique())
        if len(levels) > max_levels:
            report.dropped_text[name] = len(levels)
            final.kept.pop()
            final.dropped[source] = (
                f"text with {len(levels)} distinct values (more than --max-levels {max_levels}): an identifier or "
                "free text"
            )
            continue
        encoded = pd.DataFrame({f"{name}={level}": (text == level).astype(np.float32) for level in levels})
        encoded.loc[text.isna().to_numpy()] = np.nan
        report.one_hot[name] = len(levels)
        parts.append(encoded)
    frame = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(int(rows.sum())))
    return frame.astype(np.float32), report


@dataclass
class Collapse:
    """Patients with several rows: identical rows kept once, the others aggregated."""

    rows: int = 0
    patients: int = 0
    patients_with_several_rows: int = 0
    identical: int = 0
    aggregated: int = 0
    examples_aggregated: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "patients": self.patients,
            "patients_with_several_rows": self.patients_with_several_rows,
            "identical_rows_kept_once": self.identical,
            "conflicting_rows_aggregated": self.aggregated,
            "examples_aggregated": self.examples_aggregated,
            "aggregate": "max for binary 0/1 features, mean (ignoring missing) otherwise",
        }


def collapse_patients(frame: pd.DataFrame) -> tuple[pd.DataFrame, Collapse]:
    """One row per patient (index), sorted by patient id; see the module docstring for the rule."""
    stats = Collapse(rows=len(frame))
    several = frame.index.duplicated(keep=False)
    if not several.any():
        out = frame if frame.index.is_monotonic_increasing else frame.sort_index()
        stats.patients = len(out)
        return out, stats
    dups = frame[several]
    first = dups.groupby(level=0, sort=False).head(1)
    reference = first.loc[dups.index].to_numpy()
    values = dups.to_numpy()
    same = (values == reference) | (np.isnan(values) & np.isnan(reference))
    row_same = pd.Series(same.all(axis=1), index=dups.index)
    patient_same = row_same.groupby(level=0, sort=False).all()
    conflicting = patient_same.index[~patient_same.to_numpy()]
    merged = [frame[~several], first[first.index.isin(patient_same.index[patient_same.to_numpy()])]]
    if len(conflicting):
        rows = dups[dups.index.isin(conflicting)]
        binary = _binary_columns(frame)
        grouped = rows.groupby(level=0, sort=False)
        agg = grouped.mean()
        if binary.any():
            agg.loc[:, binary] = grouped.max().loc[:, binary]
        merged.append(agg.astype(np.float32))
    out = pd.concat(merged).sort_index()
    stats.patients = len(out)
    stats.patients_with_several_rows = len(patient_same)
    stats.identical = int(patient_same.sum())
    stats.aggregated = len(conflicting)
    stats.examples_aggregated = [str(p) for p in conflicting[:_EXAMPLES]]
    return out, stats


def _binary_columns(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy()
    ok = np.isnan(values) | (values == 0) | (values == 1)
    return ok.all(axis=0)


@dataclass
class Dropped:
    all_missing: list[str] = field(default_factory=list)
    constant: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "all_missing": {"count": len(self.all_missing), "examples": self.all_missing[:10]},
            "constant": {"count": len(self.constant), "examples": self.constant[:10]},
        }


def drop_uninformative(frame: pd.DataFrame) -> tuple[pd.DataFrame, Dropped]:
    """Drop features with no value at all, or with a single distinct value (NaN ignored)."""
    values = frame.to_numpy()
    with np.errstate(all="ignore"):
        low = np.fmin.reduce(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
        high = np.fmax.reduce(values, axis=0) if len(values) else low
    empty = np.isnan(low)
    constant = ~empty & (low == high)
    columns = frame.columns
    dropped = Dropped([str(c) for c in columns[empty]], [str(c) for c in columns[constant]])
    keep = ~(empty | constant)
    return (frame.loc[:, keep] if not keep.all() else frame), dropped


def log1p_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``log(1 + x)`` of non-negative counts (a new frame).

    Raises
    ------
    ValueError
        Negative values (already log-transformed or z-scored data).
    """
    values = frame.to_numpy(dtype=np.float32, copy=True)
    _log1p_inplace(values)
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def missing_fractions(frame: pd.DataFrame) -> dict[str, float]:
    """Per-feature fraction of patients without a value."""
    fractions = np.isnan(frame.to_numpy()).mean(axis=0) if len(frame) else np.zeros(frame.shape[1])
    return {str(c): round(float(f), 6) for c, f in zip(frame.columns, fractions, strict=True)}
