"""The cohort availability matrix: which patients have which modality, labels and events.

Modalities are the omics tables in ``omics/`` and ``wsi:<extractor>`` for every
``features/<extractor>/`` folder. Presence follows the rules ``healnet train`` uses
(:mod:`healnet_cli.artifacts.patients`): an omics row with at least one value, a slide with at
least one patch, whose patient is its provenance ``case_id`` as a patient id. Nothing is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.omics import (
    LABELS_NAME,
    list_modalities,
    modality_path,
    present_patients,
    read_labels,
    read_modality,
)
from healnet_cli.artifacts.patients import slide_patient
from healnet_cli.core.errors import InputError
from healnet_cli.core.workspace import Workspace

WSI_PREFIX = "wsi:"
_EXAMPLES = 10


@dataclass
class CohortMatrix:
    """What ``healnet cohort`` shows: patients per modality, labels, availability patterns and
    mismatches (the cohort a run trains on is :class:`healnet_cli.data.cohort.Cohort`)."""

    workdir: str
    modalities: dict[str, set[str]] = field(default_factory=dict)
    slides: dict[str, dict[str, str]] = field(default_factory=dict)  # modality -> slide_id -> patient
    labels: dict[str, bool] | None = None  # patient -> event
    time_unit: str = ""
    unreadable: list[str] = field(default_factory=list)

    def patients(self) -> set[str]:
        out: set[str] = set().union(*self.modalities.values()) if self.modalities else set()
        return out | set(self.labels or {})

    def patterns(self) -> list[dict[str, Any]]:
        """Patients per availability pattern (which modalities, labelled or not), most common first."""
        names = sorted(self.modalities)
        counts: Counter[tuple[tuple[str, ...], bool]] = Counter()
        for patient in self.patients():
            present = tuple(n for n in names if patient in self.modalities[n])
            counts[(present, self.labels is not None and patient in self.labels)] += 1
        rows = [{"modalities": list(k[0]), "labelled": k[1], "patients": n} for k, n in counts.items()]
        return sorted(rows, key=lambda r: (-r["patients"], r["modalities"]))

    def as_dict(self) -> dict[str, Any]:
        labelled = set(self.labels or {})
        with_data = set().union(*self.modalities.values()) if self.modalities else set()
        per_modality = {
            name: {
                "patients": len(ids),
                "labelled": len(ids & labelled),
                "events": sum(bool(self.labels and self.labels.get(p)) for p in ids),
            }
            for name, ids in sorted(self.modalities.items())
        }
        orphan_slides = sorted(
            f"{m[len(WSI_PREFIX) :]}/{slide}"
            for m, slides in self.slides.items()
            for slide, p in slides.items()
            if p not in labelled
        )
        no_labels = sorted(with_data - labelled) if self.labels is not None else sorted(with_data)
        no_data = sorted(labelled - with_data)
        return {
            "workdir": self.workdir,
            "patients": len(self.patients()),
            "modalities": per_modality,
            "labels": None if self.labels is None else {
                "patients": len(labelled), "events": sum(self.labels.values()), "time_unit": self.time_unit,
            },
            "patterns": self.patterns(),
            "mismatches": {
                "patients_with_data_but_no_labels": {"count": len(no_labels), "examples": no_labels[:_EXAMPLES]},
                "labelled_patients_without_data": {"count": len(no_data), "examples": no_data[:_EXAMPLES]},
                "slides_without_labelled_patient": {"count": len(orphan_slides), "examples": orphan_slides[:_EXAMPLES]},
            },
            "unreadable_files": self.unreadable,
        }  # fmt: skip


def _wsi_patients(folder: Path, cohort: CohortMatrix) -> dict[str, str]:
    from healnet_cli.artifacts.features import SUFFIX, read_provenance  # imports torch: only when needed

    slides = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if path.name.startswith("."):
            continue
        try:
            meta = read_provenance(path)
        except InputError as exc:
            cohort.unreadable.append(str(exc))
            continue
        patient = slide_patient({"slide_id": path.stem, **meta})
        if patient is not None:
            slides[str(meta.get("slide_id") or path.stem)] = patient
    return slides


def compute_cohort(workdir: str | Path, *, extractor: str | None = None) -> CohortMatrix:
    """Collect the availability of every modality in ``workdir`` (feature file headers, omics tables).

    Raises
    ------
    InputError
        Nothing to show (no omics tables, labels or features), or ``extractor`` has no folder.
    """
    workspace = Workspace.at(workdir)
    cohort = CohortMatrix(str(workspace.root))
    omics_dir = workspace.omics_dir
    for name in list_modalities(omics_dir):
        try:
            cohort.modalities[name] = set(present_patients(read_modality(modality_path(omics_dir, name))[0]))
        except InputError as exc:
            cohort.unreadable.append(str(exc))
    labels_path = omics_dir / f"{LABELS_NAME}.parquet"
    if labels_path.is_file():
        frame, meta = read_labels(labels_path)
        cohort.labels = {str(p): bool(e) for p, e in frame["event"].items()}
        cohort.time_unit = str(meta.get("time_unit", ""))
    extractors = workspace.extractors()
    if extractor is not None:
        folder = workspace.features_dir(extractor)
        if not folder.is_dir():
            raise InputError(
                f"no features folder {folder} (found: {', '.join(extractors) or 'none'}); run `healnet extract` or "
                "pick one of them"
            )
        extractors = [folder.name]
    for name in extractors:
        slides = _wsi_patients(workspace.features_dir(name), cohort)
        cohort.slides[f"{WSI_PREFIX}{name}"] = slides
        cohort.modalities[f"{WSI_PREFIX}{name}"] = set(slides.values())
    if not cohort.modalities and cohort.labels is None:
        raise InputError(
            f"{workspace.root}: no omics tables, labels or features found; run `healnet omics` / `healnet extract` "
            "first (or pass --workdir)"
        )
    return cohort
