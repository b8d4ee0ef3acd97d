"""From input tables to per-modality patient × feature frames and labels, in memory.

:func:`plan_table` reads only a table's first lines (layout, modality columns, label columns), so
bad input fails before any work and a fresh rerun never parses the full tables.
:func:`build` reads every table once and returns the frames, the labels and the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from healnet_cli.core.errors import InputError
from healnet_cli.stages.omics import clean, clinical
from healnet_cli.stages.omics.config import OmicsConfig, TableSpec
from healnet_cli.stages.omics.identifiers import COLUMNS, Layout, detect_layout, filter_samples
from healnet_cli.stages.omics.labels import LabelResult, build_labels
from healnet_cli.stages.omics.layout import (
    CLINICAL,
    ColumnPlan,
    LabelColumns,
    find_label_columns,
    non_feature_columns,
    plan_columns,
)
from healnet_cli.stages.omics.tables import TableHead, read_full, read_head


@dataclass
class TableJob:
    """One input table: where its samples and features are (from its first lines)."""

    spec: TableSpec
    head: TableHead
    layout: Layout
    columns: ColumnPlan
    labels: LabelColumns | None
    modality_names: tuple[str, ...]
    clinical: clinical.Selection | None = None
    clinical_candidates: tuple[str, ...] = ()


def plan_table(spec: TableSpec, config: OmicsConfig) -> TableJob:
    """Read a table's first lines and decide its layout, modalities and label columns.

    Raises
    ------
    InputError
        The table is missing, empty, malformed or ambiguous (each with its fix).
    """
    head = read_head(spec.path)
    layout = detect_layout(head, orientation=config.orientation, id_col=config.id_col)
    modality = spec.modality or config.modality
    if layout.orientation == COLUMNS:
        plan_columns([], path=head.path, modality=modality, groups=config.groups, orientation=COLUMNS)
        names = (modality,) if modality else tuple(name for name, _ in config.groups)
        return TableJob(spec, head, layout, ColumnPlan(), None, names)
    excluded = non_feature_columns(head.columns, layout)
    plan = plan_columns(head.columns, path=head.path, modality=modality, groups=config.groups, excluded=excluded)
    plan.modalities = {m: cols for m, cols in plan.modalities.items() if cols}
    candidates: tuple[str, ...] = ()
    selection = None
    if CLINICAL in plan.modalities:
        candidates = tuple(c for c, _ in plan.modalities[CLINICAL])
        selection = clinical.select(candidates, config.clinical_request)
        plan.modalities[CLINICAL] = [(k.column, k.feature) for k in selection.kept]
        if not selection.kept:
            del plan.modalities[CLINICAL]
    labels = find_label_columns(head.columns)
    return TableJob(spec, head, layout, plan, labels, tuple(plan.modalities), selection, candidates)


@dataclass
class Built:
    """Everything one run computed: frames per modality, labels, per-item failures, the report."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    labels: LabelResult | None = None
    label_meta: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def _read(job: TableJob, float_columns: Sequence[str], string_columns: Sequence[str], note: dict[str, Any]) -> pa.Table:
    """Read with the fast typed parser; fall back to inferred types when a numeric column holds text."""
    try:
        return read_full(job.head, float_columns=float_columns, string_columns=string_columns)
    except ValueError as exc:
        note["typed_parse"] = f"re-read with inferred types: {str(exc)[:160]}"
    try:
        return read_full(job.head, string_columns=string_columns)
    except ValueError as exc:  # e.g. text that is not UTF-8
        raise InputError(f"{job.head.path}: cannot parse the table ({str(exc)[:200]}); save it as UTF-8 text") from exc


def _text_column(table: pa.Table, name: str) -> list[str]:
    values = table.column(name).cast(pa.string()).to_pylist()
    return ["" if v is None else str(v).strip() for v in values]


def _rows_table(
    job: TableJob, config: OmicsConfig
) -> tuple[dict[str, pd.DataFrame], list[tuple], dict[str, Any], dict[str, str]]:
    """A samples-by-features table: row-level frames per modality (index = patient id), label rows,
    the report note and per-modality failures."""
    layout, plan = job.layout, job.columns
    note: dict[str, Any] = {"path": str(job.head.path), "layout": layout.as_dict(), "columns": plan.as_dict()}
    if job.head.decimal != "." or job.head.decimal_note:
        note["decimal_separator"] = {"read": job.head.decimal, "note": job.head.decimal_note}
    if job.clinical is not None:
        note["clinical_columns"] = job.clinical.as_dict()  # replaced by the encoded result below
    numeric = [c for m, cols in plan.modalities.items() if m != CLINICAL for c, _ in cols]
    strings = [layout.id_column] + ([job.labels.time_col, job.labels.status_col] if job.labels else [])
    strings += [c for c, _ in plan.modalities.get(CLINICAL, []) if c.lower() in clean.CATEGORICAL_NAMES]
    table = _read(job, numeric, strings, note)
    ids = _text_column(table, layout.id_column)
    has_id = np.array([bool(v) for v in ids])
    sample_filter = filter_samples(ids, config.sample_types)
    keep = sample_filter.keep & has_id
    patients = pd.Index(
        [p for p, k in zip(sample_filter.patient_ids, keep, strict=True) if k], name="patient_id", dtype=object
    )
    note.update(rows=table.num_rows, rows_without_identifier=int((~has_id).sum()), patients=int(patients.nunique()))
    note["sample_type_filter"] = sample_filter.as_dict(config.sample_types)
    label_rows: list[tuple] = []
    if job.labels is not None:
        times = job.head.decimal_text(table.column(job.labels.time_col).to_pylist())
        statuses = table.column(job.labels.status_col).to_pylist()
        # labels are patient attributes: every row with an identifier counts, whatever its sample type
        label_rows = [
            (p, times[i], statuses[i])
            for i, (p, k) in enumerate(zip(sample_filter.patient_ids, has_id, strict=True))
            if k
        ]
        note["label_columns"] = {
            "time": job.labels.time_col,
            job.labels.kind: job.labels.status_col,
            "time_unit": job.labels.time_unit,
        }
    frames: dict[str, pd.DataFrame] = {}
    details: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for modality, columns in plan.modalities.items():
        coercion = clean.Coercion()
        details[modality] = {}
        try:
            if modality == CLINICAL:
                assert job.clinical is not None  # plan_table selected the clinical columns
                frame, report = clean.clinical_frame(table, job.clinical, keep, coercion, max_levels=config.max_levels)
                frame.index = patients
                details[modality]["clinical"] = report.as_dict()
                note["clinical_columns"] = report.as_dict()["columns"]
            else:
                matrix, names = clean.numeric_matrix(table, columns, keep, coercion, log1p=config.log1p)
                frame = pd.DataFrame(matrix, index=patients, columns=names, copy=False)
        except ValueError as exc:  # log1p of negative values
            errors[modality] = f"{modality}: {exc}"
            continue
        frames[modality] = frame
        details[modality].update(non_numeric=coercion.as_dict())
    del table
    _release_memory()
    for modality, frame in list(frames.items()):
        frames[modality], collapse = clean.collapse_patients(frame)
        details[modality].update(duplicates=collapse.as_dict(), features=frame.shape[1])
    note["modalities"] = details
    return frames, label_rows, note, errors


def _release_memory() -> None:
    """Hand the freed Arrow buffers of a parsed table back to the operating system."""
    pa.default_memory_pool().release_unused()


def _columns_table(
    job: TableJob, config: OmicsConfig
) -> tuple[dict[str, pd.DataFrame], list[tuple], dict[str, Any], dict[str, str]]:
    """A features-by-samples table: transpose to samples × features, then as for rows."""
    layout = job.layout
    modality = job.spec.modality or config.modality
    note: dict[str, Any] = {"path": str(job.head.path), "layout": layout.as_dict()}
    if job.head.decimal != "." or job.head.decimal_note:
        note["decimal_separator"] = {"read": job.head.decimal, "note": job.head.decimal_note}
    table = _read(job, layout.sample_columns, [layout.feature_column], note)
    names = _text_column(table, layout.feature_column)
    named = np.array([bool(n) for n in names])
    first = ~pd.Index(names).duplicated(keep="first") & named
    duplicated = sorted({n for n, f, k in zip(names, first, named, strict=True) if k and not f})
    coercion = clean.Coercion()
    try:
        matrix, _ = clean.numeric_matrix(
            table, [(s, s) for s in layout.sample_columns], first, coercion, log1p=config.log1p
        )
    except ValueError as exc:  # log1p of negative values
        return {}, [], note, {name: f"{name}: {exc}" for name in job.modality_names}
    finally:
        del table
        _release_memory()
    features = [n for n, f in zip(names, first, strict=True) if f]
    sample_filter = filter_samples(list(layout.sample_columns), config.sample_types)
    patients = pd.Index(
        [p for p, k in zip(sample_filter.patient_ids, sample_filter.keep, strict=True) if k],
        name="patient_id",
        dtype=object,
    )
    samples = matrix.T if sample_filter.keep.all() else matrix.T[sample_filter.keep]
    wide = pd.DataFrame(samples, index=patients, columns=features, copy=False)
    plan = plan_columns(features, path=job.head.path, modality=modality, groups=config.groups)
    note.update(
        rows=len(names), samples=len(layout.sample_columns), patients=int(patients.nunique()), columns=plan.as_dict()
    )
    note["features_without_name"] = int((~named).sum())
    note["duplicate_feature_names_kept_first"] = {"count": len(duplicated), "examples": duplicated[:10]}
    note["sample_type_filter"] = sample_filter.as_dict(config.sample_types)
    frames, details = {}, {}
    for name, columns in plan.modalities.items():
        part = wide if len(columns) == wide.shape[1] else wide.loc[:, [c for c, _ in columns]]
        frame, collapse = clean.collapse_patients(part)
        frames[name] = frame
        details[name] = {
            "non_numeric": coercion.as_dict(),
            "duplicates": collapse.as_dict(),
            "features": frame.shape[1],
        }
    note["modalities"] = details
    return frames, [], note, {}


def _finish(name: str, parts: list[tuple[str, pd.DataFrame]], config: OmicsConfig, built: Built) -> None:
    """Merge a modality's parts from several tables, drop empty / constant features, record missingness."""
    merged = None
    if len(parts) > 1:
        frame, collapse = clean.collapse_patients(
            pd.concat([p for _, p in parts], axis=0, join="outer").astype(np.float32)
        )
        merged = collapse.as_dict()
    else:
        frame = parts[0][1]
    sources = [path for path, _ in parts]
    if frame.shape[1] == 0 or len(frame) == 0:
        built.errors[name] = (
            f"no {'features' if len(frame) else 'patients'} left for {name} (from {', '.join(sources)}); check the "
            "table and --group/--sample-type"
        )
        return
    frame, dropped = clean.drop_uninformative(frame)
    summary = {
        "patients": len(frame),
        "features": frame.shape[1],
        "dropped": dropped.as_dict(),
        "merged_tables": merged,
    }
    built.report.setdefault("modalities", {})[name] = {**summary, "sources": sources}
    if frame.shape[1] == 0:
        built.errors[name] = f"every feature of {name} is all-missing or constant; check the table"
        return
    built.frames[name] = frame
    built.meta[name] = {
        "modality": name,
        "log1p": bool(config.log1p and name != CLINICAL),
        "missing_fraction": clean.missing_fractions(frame),
        "dropped_features": dropped.as_dict(),
        "collapse": "identical rows kept once; else max for binary 0/1 features, mean otherwise",
    }


def build(jobs: Sequence[TableJob], config: OmicsConfig, fingerprints: dict[str, str]) -> Built:
    """Read every table and build the modality frames and the labels (nothing written)."""
    built = Built(report={"inputs": [], "modalities": {}})
    parts: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    label_rows: list[tuple] = []
    label_kinds: set[tuple[str, str]] = set()
    for job in jobs:
        reader = _columns_table if job.layout.orientation == COLUMNS else _rows_table
        frames, rows, note, errors = reader(job, config)
        built.report["inputs"].append(note)
        built.errors.update(errors)
        for name, frame in frames.items():
            parts.setdefault(name, []).append((str(job.head.path), frame))
        for name in job.modality_names:
            if name not in frames:
                built.errors.setdefault(name, f"no feature of {job.head.path} matched {name!r}; check --group")
        if job.labels is not None:
            label_rows.extend(rows)
            label_kinds.add((job.labels.kind, job.labels.time_unit))
    for name in sorted(parts):
        if name in built.errors and "log1p" not in built.errors[name]:
            built.errors.pop(name)
        _finish(name, parts[name], config, built)
        sources = [{"path": path, "fingerprint": fingerprints.get(path, "")} for path, _ in parts[name]]
        if name in built.meta:
            built.meta[name]["sources"] = sources
    selections = [
        {"path": n["path"], **n["clinical_columns"]} for n in built.report["inputs"] if "clinical_columns" in n
    ]
    if selections:
        built.report["clinical_columns"] = selections
        if CLINICAL in built.meta:
            built.meta[CLINICAL]["clinical_columns"] = selections
    if label_rows:
        _labels(jobs, label_rows, label_kinds, fingerprints, built)
    return built


def _labels(
    jobs: Sequence[TableJob], rows: list[tuple], kinds: set[tuple[str, str]], fingerprints: dict[str, str], built: Built
) -> None:
    if len({unit for _, unit in kinds}) > 1:
        built.errors["labels"] = (
            f"the tables give label times in different units ({', '.join(sorted(u for _, u in kinds))}); use "
            "`healnet omics labels` on one table"
        )
        return
    kind, unit = next(iter(kinds))
    result = build_labels([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], kind=kind)
    built.report["labels"] = {**result.as_dict(), "time_unit": unit}
    if len(result.labels) == 0:
        built.errors["labels"] = f"every label row was rejected ({result.warning()})"
        return
    built.labels = result
    paths = [str(j.head.path) for j in jobs if j.labels is not None]
    built.label_meta = {
        "time_unit": unit,
        "sources": [{"path": p, "fingerprint": fingerprints.get(p, "")} for p in paths],
    }
