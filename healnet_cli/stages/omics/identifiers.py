"""Identifiers: TCGA barcodes, the sample-type filter, and where a table keeps its sample ids.

Orientation (``auto``): a table whose header names an identifier column (``case_id``,
``patient_id``, ...), or whose first column holds TCGA barcodes, has one sample per **row**; a table
whose header holds TCGA barcodes, or whose first column is headed like feature names (``gene``,
``Hugo_Symbol``, ...), has one sample per **column** and is transposed. Anything else is ambiguous
and must be told with ``--orientation`` (and ``--id-col``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from healnet_cli.artifacts.patients import to_patient_id
from healnet_cli.core.errors import InputError
from healnet_cli.stages.omics.tables import INDEX_NAME, TableHead

ROWS = "samples-by-features"
COLUMNS = "features-by-samples"
ORIENTATIONS = ("auto", ROWS, COLUMNS)

# Identifier column names, patient-level first (matched case-insensitively).
ID_COLUMNS = (
    "case_id", "patient_id", "patient", "case_submitter_id", "submitter_id", "bcr_patient_barcode",
    "participant", "subject_id", "sample_id", "sample", "sampleid", "sample_barcode",
    "tumor_sample_barcode", "barcode", "id",
)  # fmt: skip
FEATURE_NAME_COLUMNS = (
    "gene", "genes", "gene_id", "gene_name", "gene_symbol", "hugo_symbol", "symbol", "feature",
    "features", "probe", "probe_id", "ensembl_id", "entrez_gene_id", "name",
)  # fmt: skip
_TCGA = re.compile(r"^TCGA[-._][A-Z0-9]{2}[-._][A-Z0-9]{4}(?:[-._](\d{2})[A-Z]?)?(?:$|[-._])", re.IGNORECASE)
_TCGA_SHARE = 0.5


def is_tcga(value: str) -> bool:
    """True for a TCGA patient, sample, aliquot or slide barcode."""
    return _TCGA.match(str(value).strip()) is not None


def sample_type(value: str) -> str | None:
    """The two-digit TCGA sample type (``"01"`` primary solid tumour, ``"11"`` normal tissue, ...)
    of a sample-level barcode, None for patient-level barcodes and other identifiers."""
    match = _TCGA.match(str(value).strip())
    return match.group(1) if match and match.group(1) else None


def _tcga_share(values: Sequence[str]) -> float:
    values = [v for v in values if str(v).strip()]
    return sum(is_tcga(v) for v in values) / len(values) if values else 0.0


def _lookup(columns: Sequence[str], names: Sequence[str]) -> str | None:
    """The first of ``names`` present in ``columns`` (case-insensitive), as spelled in ``columns``."""
    lowered = {c.lower(): c for c in columns if c != INDEX_NAME}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Layout:
    """Where a table keeps its samples.

    ``orientation`` is ``samples-by-features`` (``id_column`` holds the sample ids) or
    ``features-by-samples`` (``feature_column`` holds the feature names; ``sample_columns`` are the
    samples, ``annotation_columns`` other per-feature columns that are dropped).
    """

    orientation: str
    id_column: str = ""
    feature_column: str = ""
    sample_columns: tuple[str, ...] = ()
    annotation_columns: tuple[str, ...] = ()
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"orientation": self.orientation, "detected_by": self.reason}
        if self.orientation == ROWS:
            out["id_column"] = self.id_column or "(first column)"
        else:
            out.update(feature_column=self.feature_column or "(first column)", n_samples=len(self.sample_columns))
            if self.annotation_columns:
                out["annotation_columns_dropped"] = list(self.annotation_columns)
        return out


def detect_layout(head: TableHead, *, orientation: str = "auto", id_col: str | None = None) -> Layout:
    """Decide the orientation and the identifier column of a table from its first lines.

    Raises
    ------
    InputError
        ``--id-col`` names a missing column, or the orientation cannot be told apart.
    """
    columns, path = head.columns, head.path
    if orientation not in ORIENTATIONS:
        raise InputError(f"--orientation {orientation!r} is not one of: {', '.join(ORIENTATIONS)}")
    if id_col and orientation == COLUMNS:
        raise InputError(
            "--id-col names the sample id column of a samples-by-features table; drop it with --orientation "
            "features-by-samples"
        )
    if id_col:
        found = id_col if id_col in columns else _lookup(columns, [id_col.lower()])
        if found is None:
            shown = ", ".join(repr(c) for c in columns[:8] if c) + (", ..." if len(columns) > 8 else "")
            raise InputError(
                f"{path}: no identifier column {id_col!r} (columns: {shown}); pass --id-col with one of them"
            )
        return Layout(ROWS, id_column=found, reason="--id-col")
    if orientation == COLUMNS:
        return _columns_layout(head, reason="--orientation")
    if orientation == "auto" and _tcga_share(columns[1:]) >= _TCGA_SHARE:  # e.g. Xena: sample, TCGA-..., ...
        return _columns_layout(head, reason="TCGA barcodes in the header")
    known = _lookup(columns, ID_COLUMNS)
    if known is not None:
        return Layout(ROWS, id_column=known, reason=f"identifier column {known!r}")
    if orientation == ROWS:
        return _rows_layout_without_name(head, reason="--orientation")
    if _tcga_share(head.first_values) >= _TCGA_SHARE:
        return Layout(ROWS, id_column=columns[0], reason="TCGA barcodes in the first column")
    if columns[0].lower() in FEATURE_NAME_COLUMNS:
        return _columns_layout(head, reason=f"feature names in the first column {columns[0]!r}")
    raise InputError(
        f"{path}: cannot tell whether samples are rows or columns (no {', '.join(ID_COLUMNS[:3])} column, no TCGA "
        "barcodes); pass --orientation samples-by-features --id-col COLUMN, or --orientation features-by-samples"
    )


def _rows_layout_without_name(head: TableHead, *, reason: str) -> Layout:
    """Samples are rows but no column is named like an identifier: use the first column if it
    holds identifiers (not numbers)."""
    first = head.columns[0]
    values = [v for v in head.first_values if v]
    if values and all(_is_number(v) for v in values) and not any(is_tcga(v) for v in values):
        label = "the unnamed first column" if first == INDEX_NAME else f"the first column {first!r}"
        raise InputError(
            f"{head.path}: missing identifier column: {label} holds numbers, not sample ids, and no column is named "
            f"{', '.join(ID_COLUMNS[:3])}, ...; pass --id-col COLUMN"
        )
    return Layout(ROWS, id_column=first, reason=reason)


def _columns_layout(head: TableHead, *, reason: str) -> Layout:
    header = head.columns[1:]
    if _tcga_share(header) >= _TCGA_SHARE:
        samples = tuple(c for c in header if is_tcga(c))
        annotations = tuple(c for c in header if not is_tcga(c))
    else:
        annotations = tuple(c for c in header if c.lower() in FEATURE_NAME_COLUMNS or c == INDEX_NAME)
        samples = tuple(c for c in header if c not in annotations)
    if not samples:
        raise InputError(
            f"{head.path}: features × samples layout but no sample columns in the header; check --orientation"
        )
    return Layout(
        COLUMNS, feature_column=head.columns[0], sample_columns=samples, annotation_columns=annotations, reason=reason
    )


@dataclass
class SampleFilter:
    """Which rows the sample-type filter keeps, and what it saw."""

    keep: np.ndarray
    patient_ids: list[str]
    seen: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    dropped_examples: list[str] = field(default_factory=list)

    def as_dict(self, allowed: Sequence[str] | None) -> dict[str, Any]:
        return {
            "sample_types_seen": self.seen,
            "kept": sorted(allowed) if allowed is not None else "all",
            "rows_dropped": self.dropped,
            "examples_dropped": self.dropped_examples,
        }


def filter_samples(identifiers: Sequence[str], allowed: Sequence[str] | None) -> SampleFilter:
    """Reduce identifiers to patients and keep the allowed TCGA sample types.

    Rows whose identifier carries no sample type (patient-level barcodes, non-TCGA ids) are kept;
    ``allowed=None`` keeps every sample type.
    """
    types = [sample_type(v) for v in identifiers]
    seen = Counter(t for t in types if t is not None)
    keep = np.array([t is None or allowed is None or t in allowed for t in types], dtype=bool)
    patients = [to_patient_id(v) for v in identifiers]
    dropped = [str(v) for v, k in zip(identifiers, keep, strict=True) if not k]
    return SampleFilter(keep, patients, dict(sorted(seen.items())), len(dropped), dropped[:5])
