"""Which clinical columns become the ``clinical`` modality, and how each is encoded.

By default ``clinical`` holds patient covariates only, found by column name (case-insensitive,
any run of non-alphanumerics read as ``_``):

========  ==============================================================  =========================
role      columns (first found wins; then any name matching the pattern)  feature, encoding
========  ==============================================================  =========================
``age``   ``age_at_initial_pathologic_diagnosis``, ``age_at_diagnosis``,  ``age``: years (days —
          ``age_at_index``, ``diagnosis_age``, ``age``, ``days_to_birth``  by name, or a median
          …; pattern ``(^|_)age(_|$)``                                     over 150 — ÷ 365.25)
``sex``   ``is_female``, ``gender``, ``sex``, ``is_male``                  ``is_female``: 1/0
``stage`` ``ajcc_pathologic_tumor_stage``, ``ajcc_pathologic_stage``,     ``stage``: ordinal 0..4
          ``pathologic_stage``, ``tumor_stage``, ``stage``,                (substages collapsed:
          ``clinical_stage`` …; pattern ``stage`` (not T/N/M)              IIIB → 3)
``grade`` ``histological_grade``, ``neoplasm_histologic_grade``,          ``grade``: ordinal 1..4
          ``tumor_grade``, ``grade`` …; pattern ``grade``                 (G1/low → 1, G3/high → 3)
========  ==============================================================  =========================

A pattern match counts only when at least half of the column's values can be encoded (so
``ajcc_pathologic_t`` values ``T2a`` never pass for a stage). Tissue-source-site (centre) columns
(``site``, ``tss``, ``tissue_source_site``, ``center`` …) are **not** covariates by default: in TCGA
they are a known batch confounder. They, and any other column, are kept only on request:
``--clinical-columns age,sex,stage,grade,site`` (roles and/or column names, comma-separated),
``all`` (every clinical column: roles encoded as above, the others as numbers or one-hots) or
``none`` (no ``clinical`` modality). Every column left out is listed with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.core.errors import InputError

AGE, SEX, STAGE, GRADE, SITE = "age", "sex", "stage", "grade", "site"
ROLES = (AGE, SEX, STAGE, GRADE, SITE)
DEFAULT_ROLES = (AGE, SEX, STAGE, GRADE)
DEFAULT_REQUEST = ",".join(DEFAULT_ROLES)
ALL, NONE = "all", "none"
ENCODED_ROLES = frozenset({AGE, SEX, STAGE, GRADE})
FEATURE = {AGE: "age", SEX: "is_female", STAGE: "stage", GRADE: "grade"}

_CANDIDATES = {
    AGE: (
        "age_at_initial_pathologic_diagnosis",
        "age_at_diagnosis",
        "age_at_index",
        "diagnosis_age",
        "age_at_diagnosis_years",
        "age",
        "age_years",
        "patient_age",
        "days_to_birth",
    ),
    SEX: ("is_female", "gender", "sex", "is_male", "female", "male"),
    STAGE: (
        "ajcc_pathologic_tumor_stage",
        "ajcc_pathologic_stage",
        "pathologic_stage",
        "pathological_stage",
        "tumor_stage",
        "ajcc_stage",
        "stage",
        "overall_stage",
        "clinical_stage",
        "ajcc_clinical_stage",
        "neoplasm_disease_stage_american_joint_committee_on_cancer_code",
    ),
    GRADE: ("histological_grade", "histologic_grade", "neoplasm_histologic_grade", "tumor_grade", "grade"),
    SITE: ("site", "tss", "tissue_source_site", "tissue_source_site_code", "center", "centre", "institution", "bcr"),
}
_PATTERNS = {
    AGE: re.compile(r"(^|_)age(_|$)"),
    STAGE: re.compile(r"stage"),
    GRADE: re.compile(r"grade"),
}
# T / N / M and staging-system columns name a "stage" but are not the overall stage.
_NOT_STAGE = re.compile(
    r"(^|_)(t|n|m)(_|$)|lymph|node|metasta|tumor_stage_code|system|version|edition|(^|_)(t|n|m)_stage"
)
_MIN_ENCODED = 0.5
_DAYS_MEDIAN = 150.0
DAYS_PER_YEAR = 365.25

# Values that mean "not recorded" (TCGA's bracketed markers, stage X, grade X): missing, not coerced.
_MISSING = re.compile(
    r"^\[.*\]$|^(na|n/a|nan|none|null|unknown|not reported|not available|not applicable|not evaluated|"
    r"x|gx|stage x|grade x|indeterminate|discrepancy|-)$"
)
_STAGE = re.compile(
    r"^(?:ajcc\s*)?(?:(?:pathologic|clinical)\s*)?(?:stage\s*)?(iv|iii|ii|i|0|[1-4])\s*(?:[a-d]\d?|is|s)?$"
)
_ROMAN = {"0": 0, "i": 1, "ii": 2, "iii": 3, "iv": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_GRADE_WORDS = {
    "low": 1,
    "low grade": 1,
    "well differentiated": 1,
    "intermediate": 2,
    "intermediate grade": 2,
    "moderately differentiated": 2,
    "high": 3,
    "high grade": 3,
    "poorly differentiated": 3,
    "undifferentiated": 4,
}
_GRADE = re.compile(r"^(?:grade\s*|g)?([1-4])$")
_FEMALE = frozenset({"female", "f", "woman", "w"})
_MALE = frozenset({"male", "m", "man"})


def normalise(name: str) -> str:
    """``"Diagnosis Age"`` → ``diagnosis_age``: lower case, non-alphanumeric runs as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class Request:
    """What ``--clinical-columns`` asked for: roles, column names, or all / none."""

    roles: tuple[str, ...] = DEFAULT_ROLES
    names: tuple[str, ...] = ()
    every: bool = False
    nothing: bool = False
    text: str = DEFAULT_REQUEST


def parse_request(value: str | None) -> Request:
    """``--clinical-columns`` (``age,sex,stage,grade`` by default; roles or column names, ``all``, ``none``)."""
    text = DEFAULT_REQUEST if value is None else value.strip()
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not tokens:
        raise InputError(
            f"--clinical-columns {value!r}: empty; pass roles or column names, e.g. {DEFAULT_REQUEST},site (or all / "
            "none)"
        )
    lowered = [t.lower() for t in tokens]
    if (ALL in lowered or NONE in lowered) and len(tokens) > 1:
        raise InputError(
            f"--clinical-columns {value!r}: 'all' and 'none' stand alone; pass one of them or a list of columns"
        )
    if lowered == [ALL]:
        return Request(roles=ROLES, every=True, text=ALL)
    if lowered == [NONE]:
        return Request(roles=(), nothing=True, text=NONE)
    roles = tuple(dict.fromkeys(t for t in lowered if t in ROLES))
    names = tuple(dict.fromkeys(t for t in tokens if t.lower() not in ROLES))
    return Request(roles=roles, names=names, text=",".join(tokens))


@dataclass(frozen=True)
class Kept:
    """One clinical column kept: its source, the feature it becomes, its role and encoding."""

    column: str
    feature: str
    role: str  # age, sex, stage, grade, site or "" (a column asked for by name)
    encoding: str
    exact: bool = True  # found by a known name (else by a pattern: its values must encode)

    def as_dict(self) -> dict[str, str]:
        return {"column": self.column, "feature": self.feature, "role": self.role, "encoding": self.encoding}


@dataclass
class Selection:
    """The clinical columns of one table kept and dropped (with reasons), and roles not found."""

    request: Request
    kept: list[Kept] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # per column: what the encoding did

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.request.text,
            "kept": [
                {**k.as_dict(), **({"note": self.notes[k.column]} if k.column in self.notes else {})} for k in self.kept
            ],
            "dropped": [{"column": c, "reason": r} for c, r in self.dropped.items()],
            "roles_not_found": self.not_found,
        }


ENCODING = {AGE: "years", SEX: "1 = female, 0 = male", STAGE: "ordinal 0-4 (substages collapsed)",
            GRADE: "ordinal 1-4 (G1/low 1, G2/intermediate 2, G3/high 3, G4 4)", SITE: "one-hot"}  # fmt: skip
_CENTRE_REASON = ("tissue-source-site (centre) indicator: a batch confounder in TCGA, not a patient covariate; "
                  "ask for it with --clinical-columns {default},{column}")  # fmt: skip
_OTHER_REASON = (
    "not a patient covariate of the default set (age, sex, stage, grade); ask for it with "
    "--clinical-columns {default},{column}"
)


def _name_role(column: str) -> str | None:
    """The role a column's name gives it (exact candidate names first, then patterns)."""
    low = normalise(column)
    for role, names in _CANDIDATES.items():
        if low in names:
            return role
    for role, pattern in _PATTERNS.items():
        if pattern.search(low) and not (role == STAGE and _NOT_STAGE.search(low)):
            return role
    return None


def _rank(column: str, role: str) -> int:
    names = _CANDIDATES[role]
    low = normalise(column)
    return names.index(low) if low in names else len(names)


def select(columns: Sequence[str], request: Request) -> Selection:
    """Choose the clinical columns of one table by name (see the module docstring).

    A column whose role comes from a pattern rather than a known name is kept tentatively: the
    encoding drops it when fewer than half its values encode (:func:`check_share`).
    """
    selection = Selection(request)
    by_role: dict[str, list[str]] = {}
    for column in columns:
        named_role = _name_role(column)
        if named_role is not None:
            by_role.setdefault(named_role, []).append(column)
    chosen: dict[str, str] = {}
    named = {n.lower() for n in request.names}
    for role, found in by_role.items():
        found.sort(key=lambda c: _rank(c, role))
        chosen[found[0]] = role
        for other in found[1:]:
            if other.lower() not in named:  # a column named on the command line is kept as it is
                selection.dropped[other] = f"another column gives {role} ({found[0]})"
    for column in columns:
        if column in selection.dropped:
            continue
        role = chosen.get(column, "")
        exact = bool(role) and normalise(column) in _CANDIDATES[role]
        if role and not exact and column.lower() in named:
            role = ""  # named on the command line, its role only guessed from a pattern: taken as it is
        if role and (role in request.roles or column.lower() in named):
            feature = column if role == SITE else FEATURE[role]
            selection.kept.append(Kept(column, feature, role, ENCODING[role], exact=exact))
        elif column.lower() in named or (request.every and not role):
            selection.kept.append(Kept(column, column, "", "number, or one-hot for categories"))
        elif request.nothing:
            selection.dropped[column] = "--clinical-columns none"
        else:
            reason = _CENTRE_REASON if role == SITE else _OTHER_REASON
            selection.dropped[column] = reason.format(default=DEFAULT_REQUEST, column=SITE if role == SITE else column)
    selection.not_found = [r for r in request.roles if r not in by_role]
    return selection


def check_share(kept: Kept, values: pd.Series) -> str:
    """Why a column matched by pattern only is not its role after all ('' when it is)."""
    if kept.exact or kept.role in ("", SITE):
        return ""
    share = encoded_share(kept.role, kept.column, values)
    if share >= _MIN_ENCODED:
        return ""
    return (
        f"its name looks like {kept.role}, but only {share:.0%} of its values are (e.g. {_example(values)}); name "
        "it in --clinical-columns to keep it as a plain column (a number or one-hots)"
    )


def _example(values: pd.Series) -> str:
    present = [t for t in _text(values) if not _is_missing(t)]
    return repr(present[0]) if present else "no values"


def summary(selection: dict[str, Any]) -> str:
    """One line from :meth:`Selection.as_dict`: the columns kept (with their role) and dropped (why)."""
    kept = (
        ", ".join(
            f"{k['column']} ({k['role'] or 'as asked'})"
            if k["feature"] == k["column"]
            else f"{k['column']} → {k['feature']}"
            for k in selection["kept"]
        )
        or "none"
    )
    dropped = ", ".join(f"{d['column']} ({re.split(r'[:;]', d['reason'])[0]})" for d in selection["dropped"])
    missing = f"; no {', '.join(selection['roles_not_found'])} column" if selection["roles_not_found"] else ""
    return f"kept {kept}" + (f"; dropped {dropped}" if dropped else "") + missing


def check_names(request: Request, columns_by_table: dict[str, Sequence[str]]) -> None:
    """Every column named in ``--clinical-columns`` must be a clinical column of some table."""
    present = {c.lower() for cols in columns_by_table.values() for c in cols}
    missing = [n for n in request.names if n.lower() not in present]
    if missing:
        shown = ", ".join(sorted({c for cols in columns_by_table.values() for c in cols})[:20]) or "none"
        tables = ", ".join(columns_by_table)
        raise InputError(
            f"--clinical-columns: no clinical column {', '.join(repr(m) for m in missing)} in {tables} (clinical "
            f"columns: {shown}); "
            f"pass roles ({', '.join(ROLES)}), column names, all or none"
        )


# -- encodings ---------------------------------------------------------------------------------
def _text(values: pd.Series) -> pd.Series:
    """Each value as stripped text (None when missing); whole floats as integers (``63.0`` → ``63``)."""
    out = [
        None if pd.isna(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip())
        for v in values
    ]
    return pd.Series(out, index=values.index, dtype=object)


def _is_missing(text: str | None) -> bool:
    return text is None or not text or bool(_MISSING.match(text.lower()))


def encode_stage(text: str) -> float | None:
    """``Stage IIIB`` → 3, ``IV`` → 4, ``Stage 0is`` → 0, ``2A`` → 2; None when not a stage."""
    match = _STAGE.match(text.strip().lower())
    return float(_ROMAN[match.group(1)]) if match else None


def encode_grade(text: str) -> float | None:
    """``G2`` → 2, ``Grade 3`` → 3, ``High Grade`` → 3, ``low`` → 1; None when not a grade."""
    low = " ".join(text.strip().lower().replace("-", " ").split())
    if low in _GRADE_WORDS:
        return float(_GRADE_WORDS[low])
    match = _GRADE.match(low.replace(" ", ""))
    return float(match.group(1)) if match else None


def encode_sex(text: str, *, male_column: bool) -> float | None:
    """1 = female, 0 = male (words or 0/1 flags; an ``is_male`` flag is inverted)."""
    low = text.strip().lower()
    if low in _FEMALE:
        return 1.0
    if low in _MALE:
        return 0.0
    try:
        number = float(low)
    except ValueError:
        return None
    if number not in (0.0, 1.0):
        return None
    return 1.0 - number if male_column else number


def _encode_one(role: str, column: str, text: str) -> float | None:
    if role == STAGE:
        return encode_stage(text)
    if role == GRADE:
        return encode_grade(text)
    if role == SEX:
        return encode_sex(text, male_column=normalise(column) in ("is_male", "male"))
    try:
        return float(text)
    except ValueError:
        return None


def encoded_share(role: str, column: str, values: pd.Series) -> float:
    """The fraction of a column's recorded values that ``role``'s encoding accepts."""
    text = [t for t in _text(values) if not _is_missing(t)]
    if not text:
        return 0.0
    return sum(_encode_one(role, column, t) is not None for t in text) / len(text)


def encode(kept: Kept, values: pd.Series) -> tuple[np.ndarray, pd.Series, str]:
    """The float32 feature of one role column, the values that could not be encoded (for the
    report) and a note on what was done (e.g. days converted to years)."""
    text = _text(values)
    out = np.full(len(text), np.nan, dtype=np.float32)
    bad: list[int] = []
    for i, t in enumerate(text):
        if _is_missing(t):
            continue
        number = _encode_one(kept.role, kept.column, t)
        if number is None or not np.isfinite(number):
            bad.append(i)
        else:
            out[i] = number
    note = ""
    if kept.role == AGE:
        out, note = _age_in_years(kept.column, out)
    return out, text.iloc[bad], note


def _age_in_years(column: str, age: np.ndarray) -> tuple[np.ndarray, str]:
    """Ages recorded in days (by the column's name, or a median above 150) as years."""
    present = age[np.isfinite(age)]
    if present.size == 0:
        return age, ""
    median = float(np.median(np.abs(present)))
    if "days" in normalise(column) or median > _DAYS_MEDIAN:
        return (np.abs(age) / DAYS_PER_YEAR).astype(
            np.float32
        ), f"days converted to years (÷ {DAYS_PER_YEAR}; median {median:.0f} days)"
    return age, ""
