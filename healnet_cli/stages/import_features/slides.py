"""Which patient each imported slide belongs to, and its level-0 mpp.

``--slides-csv`` (CSV/TSV) has a slide column (``slide_id``; also ``slide``, ``filename``, ``wsi``
— STAMP's ``FILENAME``, slideflow's ``slide``), a patient column (``case_id``; also ``patient``,
``patient_id``, ``case`` — STAMP's ``PATIENT``) and optionally ``mpp`` (level-0 µm/px). File names
are reduced to slide ids (no folders, no extension). Slides not listed fall back to their TCGA
patient barcode (``TCGA-XX-XXXX``), else to the slide id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from healnet_cli.artifacts.patients import to_patient_id
from healnet_cli.core.csv_table import read_csv_table
from healnet_cli.core.errors import InputError
from healnet_cli.stages.import_features.formats.common import positive

SLIDE_COLUMNS = ("slide_id", "slide", "filename", "wsi", "slide_path")
CASE_COLUMNS = ("case_id", "patient", "patient_id", "case", "submitter_id")
_EXTENSIONS = re.compile(r"\.(h5|pt|svs|tif|tiff|ndpi|mrxs|scn|vms|vmu|bif|svslide|dcm|png|jpe?g|zarr)$", re.IGNORECASE)


@dataclass(frozen=True)
class SlideTable:
    """``--slides-csv`` as lookups: slide id → case id, slide id → level-0 mpp."""

    cases: dict[str, str] = field(default_factory=dict)
    mpp: dict[str, float] = field(default_factory=dict)

    def case_of(self, slide_id: str) -> str:
        """The patient (:func:`to_patient_id`) of the listed case id, else of the slide id."""
        return to_patient_id(self.cases.get(slide_id) or slide_id)


def slide_id_of(name: str) -> str:
    """A file name or path as a slide id: the last path component without a slide/feature extension."""
    return _EXTENSIONS.sub("", Path(str(name).strip()).name)


def read_slide_table(path: Path | None) -> SlideTable:
    """Read ``--slides-csv`` (None → an empty table).

    Raises
    ------
    InputError
        Missing or unreadable file, no slide or patient column, a slide listed twice with different
        patients or mpp, an mpp that is not a positive number.
    """
    if path is None:
        return SlideTable()
    frame = _read(path)
    columns = {c.strip().lower(): c for c in frame.columns}
    slide_col = next((columns[c] for c in SLIDE_COLUMNS if c in columns), None)
    case_col = next((columns[c] for c in CASE_COLUMNS if c in columns), None)
    if slide_col is None or (case_col is None and "mpp" not in columns):
        raise InputError(
            f"--slides-csv {path}: needs a slide column ({', '.join(SLIDE_COLUMNS)}) and a patient column "
            f"({', '.join(CASE_COLUMNS)}) or mpp; found: {', '.join(map(str, frame.columns)) or 'none'}"
        )
    cases: dict[str, str] = {}
    mpps: dict[str, float] = {}
    for i, row in frame.iterrows():
        sid = slide_id_of(row[slide_col])
        if not sid:
            continue
        where = f"--slides-csv {path} row {int(i) + 2}"
        if case_col is not None and str(row[case_col]).strip():
            _put(cases, sid, str(row[case_col]).strip(), where, "patient")
        if "mpp" in columns:
            value = _mpp(row[columns["mpp"]], where)
            if value is not None:
                _put(mpps, sid, value, where, "mpp")
    return SlideTable(cases, mpps)


def _read(path: Path) -> pd.DataFrame:
    return read_csv_table(path, "--slides-csv")


def _put(table: dict, key: str, value: object, where: str, what: str) -> None:
    if key in table and table[key] != value:
        raise InputError(
            f"{where}: slide {key} is listed again with {what} {value!r} (before: {table[key]!r}); keep one row per "
            "slide"
        )
    table[key] = value


def _mpp(text: object, where: str) -> float | None:
    """A CSV mpp cell: empty/NA → None, a positive number → float, anything else an InputError."""
    cell = str(text).strip()
    value = positive(cell)
    if value is None and cell.lower() not in ("", "na", "nan", "none"):
        raise InputError(f"{where}: mpp {cell!r} is not a positive number (level-0 µm per pixel, e.g. 0.25 or 0.5)")
    return value
