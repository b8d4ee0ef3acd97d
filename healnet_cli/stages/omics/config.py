"""The resolved options of ``healnet omics`` and ``healnet omics labels``, validated once."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.omics import LABELS_NAME
from healnet_cli.core.errors import InputError
from healnet_cli.stages.omics import clinical
from healnet_cli.stages.omics.identifiers import ORIENTATIONS

RESERVED_NAMES = frozenset({LABELS_NAME, "report", "config", "status", "cohort", "labels_report", "labels_config"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_SAMPLE_TYPES = ("01",)


def check_modality_name(name: str, *, what: str = "modality name") -> str:
    """A modality name must be file-name safe and not one of the reserved names."""
    if not _NAME.match(name) or name in RESERVED_NAMES:
        raise InputError(
            f"{what} {name!r} is not allowed; use letters, digits, '_', '-' or '.' "
            f"(not {', '.join(sorted(RESERVED_NAMES))})"
        )
    return name


@dataclass(frozen=True)
class TableSpec:
    """One input table and the modality it was named on the command line (``NAME=PATH``)."""

    path: Path
    modality: str | None = None

    @classmethod
    def parse(cls, text: str) -> TableSpec:
        """``PATH`` or ``NAME=PATH`` (an existing path containing ``=`` is taken as a path)."""
        if "=" in text and not Path(text).exists():
            name, _, path = text.partition("=")
            return cls(Path(path), check_modality_name(name.strip(), what=f"modality name in {text!r}"))
        return cls(Path(text))


def parse_groups(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``--group NAME=REGEX`` values as (name, pattern) pairs; the regex must compile."""
    groups = []
    for value in values or []:
        name, sep, pattern = value.partition("=")
        if not sep or not name.strip() or not pattern:
            raise InputError(f"--group {value!r}: expected NAME=REGEX, e.g. --group rna='_rnaseq$'")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"--group {value!r}: invalid regular expression ({exc}); fix the pattern") from exc
        groups.append((check_modality_name(name.strip(), what="--group name"), pattern))
    return tuple(groups)


def parse_sample_types(value: str) -> tuple[str, ...] | None:
    """``--sample-type`` as two-digit TCGA codes (``01``, ``01,03``) or None for ``all``."""
    text = value.strip().lower()
    if text == "all":
        return None
    codes = tuple(sorted({c.strip().zfill(2) for c in text.split(",") if c.strip()}))
    if not codes or not all(re.fullmatch(r"\d{2}", c) for c in codes):
        raise InputError(f"--sample-type {value!r}: expected two-digit TCGA sample types (e.g. 01 or 01,03) or 'all'")
    return codes


@dataclass(frozen=True)
class OmicsConfig:
    """Options of ``healnet omics``: how tables are laid out and cleaned (all stateless)."""

    modality: str | None = None
    groups: tuple[tuple[str, str], ...] = ()
    id_col: str | None = None
    orientation: str = "auto"
    log1p: bool = False
    sample_types: tuple[str, ...] | None = DEFAULT_SAMPLE_TYPES
    max_levels: int = 50
    clinical_columns: str = clinical.DEFAULT_REQUEST
    tables: tuple[TableSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        clinical.parse_request(self.clinical_columns)  # fails early on a bad value
        if self.orientation not in ORIENTATIONS:
            raise InputError(f"--orientation {self.orientation!r} is not one of: {', '.join(ORIENTATIONS)}")
        if self.modality is not None:
            check_modality_name(self.modality, what="--modality")
        if self.modality and self.groups:
            raise InputError("--modality and --group exclude each other: use one name for the whole table, or groups")

    def params(self) -> dict[str, Any]:
        """What determines the outputs (keys the cache together with the inputs' fingerprints)."""
        out = asdict(self)
        out["tables"] = [[spec.path.name, spec.modality] for spec in self.tables]
        out["clinical_columns"] = self.clinical_request.text
        out["schema"] = 2  # 2: clinical covariates selected (age, sex, stage, grade by default)
        return out

    @property
    def clinical_request(self) -> clinical.Request:
        """``--clinical-columns``, parsed."""
        return clinical.parse_request(self.clinical_columns)


@dataclass(frozen=True)
class LabelsConfig:
    """Options of ``healnet omics labels``."""

    time_col: str
    event_col: str | None = None
    censor_col: str | None = None
    id_col: str | None = None
    time_unit: str = "months"
    status_as_is: bool = False

    def __post_init__(self) -> None:
        if (self.event_col is None) == (self.censor_col is None):
            raise InputError("pass exactly one of --event-col (1 = event observed) or --censor-col (1 = censored)")
        if self.status_as_is:
            return
        if self.event_col is not None and _says_censoring(self.event_col):
            raise InputError(
                f"--event-col {self.event_col!r}: the name says censoring (1 = censored), and reading it as 1 = "
                "event would invert "
                f"every label; pass --censor-col {self.event_col}, or add --status-as-is if 1 really means the event "
                "was observed"
            )
        if self.censor_col is not None and _says_event(self.censor_col):
            raise InputError(
                f"--censor-col {self.censor_col!r}: the name says event (1 = event observed), and reading it as 1 = "
                "censored would "
                f"invert every label; pass --event-col {self.censor_col}, or add --status-as-is if 1 really means "
                "censored"
            )

    @property
    def status_col(self) -> str:
        return self.event_col or self.censor_col or ""

    @property
    def kind(self) -> str:
        """``event`` (1 = event) or ``censor`` (1 = censored)."""
        return "event" if self.event_col else "censor"

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("status_as_is")  # a confirmation, not a parameter of the output
        return {**out, "schema": 1}


_EVENT_WORDS = frozenset(
    {"event", "events", "dead", "death", "died", "deceased", "os", "dss", "pfi", "dfi", "pfs", "efs"}
)


def _says_censoring(name: str) -> bool:
    """A column name that says censoring (``censorship``, ``is_censored``, ``Censor``)."""
    return "censor" in name.lower()


def _says_event(name: str) -> bool:
    """A column name that says event (``event``, ``OS``, ``death``, ``dss_event``), and not censoring."""
    tokens = set(re.split(r"[^a-z0-9]+", name.lower()))
    return bool(tokens & _EVENT_WORDS) and not _says_censoring(name)
