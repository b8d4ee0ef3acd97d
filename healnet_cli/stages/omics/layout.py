"""Which columns of a table are features of which modality, which are labels, which are neither.

Wide study tables (MCAT / PORPOISE / HEALNet ``*_all_clean.csv``) split by column suffix:
``_rnaseq`` → ``rna``, ``_cnv`` → ``cnv``, ``_mut`` → ``mut`` (suffix stripped from the feature
name); the remaining non-metadata columns (age, is_female, site, oncotree_code, ...) form
``clinical``. ``--modality NAME`` makes the whole table one modality; ``--group NAME=REGEX`` carves
column groups (first matching group wins; unmatched columns are ignored and reported).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.omics import CLINICAL
from healnet_cli.core.errors import InputError
from healnet_cli.stages.omics.identifiers import COLUMNS, ID_COLUMNS, Layout
from healnet_cli.stages.omics.tables import INDEX_NAME

SUFFIXES = (("_rnaseq", "rna"), ("_cnv", "cnv"), ("_mut", "mut"))
# Columns that are never features: row bookkeeping of the study tables.
METADATA_COLUMNS = frozenset(
    {"slide_id", "slide", "filename", "file", "train", "split", "fold", "y_disc", "disc_label", "label"}
)
# (time column, status column, status kind, time unit): survival labels found in wide tables.
LABEL_PAIRS = (
    ("survival_months", "censorship", "censor", "months"),
    ("os_months", "os_status", "event", "months"),
    ("os.time", "os", "event", "days"),
)
# Survival-like columns that are never features, even without their partner column.
LABEL_COLUMNS = frozenset({p[0] for p in LABEL_PAIRS} | {p[1] for p in LABEL_PAIRS} | {
    "vital_status", "days_to_death", "days_to_last_follow_up", "dss", "dss.time", "pfi", "pfi.time", "dfi", "dfi.time",
})  # fmt: skip


@dataclass(frozen=True)
class LabelColumns:
    """The survival columns of a table."""

    time_col: str
    status_col: str
    kind: str  # "event" or "censor"
    time_unit: str


@dataclass
class ColumnPlan:
    """Modality → [(source column, feature name)], plus the columns left out and why."""

    modalities: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "features_per_modality": {m: len(cols) for m, cols in self.modalities.items()},
            "non_feature_columns": self.excluded[:20],
            "unmatched_columns": {"count": len(self.unmatched), "examples": self.unmatched[:10]},
        }


def find_label_columns(columns: Sequence[str]) -> LabelColumns | None:
    """The first known (time, status) pair present in ``columns`` (case-insensitive)."""
    lowered = {c.lower(): c for c in columns}
    for time_name, status_name, kind, unit in LABEL_PAIRS:
        if time_name in lowered and status_name in lowered:
            return LabelColumns(lowered[time_name], lowered[status_name], kind, unit)
    return None


def non_feature_columns(columns: Sequence[str], layout: Layout) -> list[str]:
    """Index, identifier, metadata and survival columns of a samples-by-features table."""
    out = []
    for i, column in enumerate(columns):
        low = column.lower()
        if (
            (column == INDEX_NAME and i == 0)
            or column == layout.id_column
            or low in ID_COLUMNS
            or low in METADATA_COLUMNS
            or low in LABEL_COLUMNS
        ):
            out.append(column)
    return out


def plan_columns(
    features: Sequence[str],
    *,
    path: Path,
    modality: str | None,
    groups: Sequence[tuple[str, str]],
    excluded: Sequence[str] = (),
    orientation: str = "",
) -> ColumnPlan:
    """Assign feature columns to modalities (see the module docstring for the rules)."""
    skip = set(excluded)
    candidates = [c for c in features if c not in skip]
    plan = ColumnPlan(excluded=[c for c in features if c in skip])
    if modality:
        plan.modalities[modality] = [(c, c) for c in candidates]
        return plan
    if groups:
        compiled = [(name, re.compile(pattern)) for name, pattern in groups]
        for column in candidates:
            name = next((n for n, rx in compiled if rx.search(column)), None)
            if name is None:
                plan.unmatched.append(column)
            else:
                plan.modalities.setdefault(name, []).append((column, column))
        return plan
    if orientation == COLUMNS:
        raise InputError(
            f"{path}: a features × samples table is one modality; name it with --modality NAME (or NAME={path})"
        )
    for column in candidates:
        low = column.lower()
        suffix = next(((s, m) for s, m in SUFFIXES if low.endswith(s) and len(column) > len(s)), None)
        if suffix is None:
            plan.modalities.setdefault(CLINICAL, []).append((column, column))
        else:
            plan.modalities.setdefault(suffix[1], []).append((column, column[: -len(suffix[0])]))
    if not any(m != CLINICAL for m in plan.modalities):
        raise InputError(
            f"{path}: no column ends with a modality suffix ({', '.join(s for s, _ in SUFFIXES)}); "
            f"pass --modality NAME (or NAME={path}) for a one-modality table, or --group NAME=REGEX"
        )
    return plan
