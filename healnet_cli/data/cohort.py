"""Cohort assembly: labels ∩ requested modalities, read from a workspace.

A patient belongs to the cohort when it has a survival label and at least one requested modality
(all of them with ``require_all``). Omics rows that are entirely NaN count as absent. WSI bags are
the concatenation of all of a patient's slides (grouped by the provenance ``case_id``, slides in
sorted ``slide_id`` order — MCAT's convention).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from healnet_cli.artifacts.features import SUFFIX, encoder_identity, read_features, read_provenance, short_identity
from healnet_cli.artifacts.omics import (
    LABELS_NAME,
    list_modalities,
    modality_path,
    present_patients,
    read_labels,
    read_modality,
)
from healnet_cli.artifacts.patients import slide_patient
from healnet_cli.artifacts.run import WSI
from healnet_cli.core.errors import InputError
from healnet_cli.core.fingerprint import file_fingerprint
from healnet_cli.core.workspace import Workspace

__all__ = ["WSI", "Cohort", "SlideRef", "load_cohort", "resolve_extractor"]


@dataclass
class SlideRef:
    """One slide's features file and its size."""

    slide_id: str
    path: Path
    n_patches: int


@dataclass
class Cohort:
    """Everything training and inference read about the patients of a run.

    Attributes
    ----------
    labels : DataFrame
        Index ``patient_id``; ``time`` (float) and ``event`` (bool), cohort patients only, sorted.
    modalities : list of str
        Requested modalities in the order given.
    omics : dict
        Raw omics tables (patients × features, float32, NaN = missing) restricted to cohort patients.
    slides : dict
        ``patient_id -> [SlideRef]`` for patients with at least one non-empty slide.
    wsi_dim : int or None
        Feature dimension of the bags.
    presence : DataFrame
        Bool per modality (columns) per cohort patient (index).
    """

    labels: pd.DataFrame
    modalities: list[str]
    omics: dict[str, pd.DataFrame]
    slides: dict[str, list[SlideRef]]
    wsi_dim: int | None
    presence: pd.DataFrame
    time_unit: str
    workdir: Path
    extractor: str | None
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def patients(self) -> list[str]:
        return list(self.labels.index)

    def bag_dim(self) -> int:
        """``wsi_dim`` of a cohort that uses WSI (``ValueError`` otherwise: a programming error)."""
        if self.wsi_dim is None:
            raise ValueError("this cohort has no WSI features (wsi_dim is None)")
        return int(self.wsi_dim)

    def pattern_counts(self) -> dict[str, int]:
        """Patients per modality pattern, e.g. ``{"rna+wsi": 120, "rna": 30}``."""
        keys = self.presence.apply(lambda r: "+".join(m for m in self.modalities if r[m]) or "none", axis=1)
        return {str(k): int(v) for k, v in keys.value_counts().sort_index().items()}

    def load_bag(self, patient_id: str) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]]]:
        """A patient's concatenated bag: features ``[N, D]`` float32, coords ``[N, 2]`` float32 and the
        per-slide ``(slide_id, coords)`` in concatenation order."""
        feats, coords, parts = [], [], []
        for ref in self.slides.get(patient_id, []):
            bag = read_features(ref.path)
            f = bag.features.float().numpy()
            c = bag.coords.numpy()
            feats.append(f)
            coords.append(c.astype(np.float32))
            parts.append((ref.slide_id, c))
        if not feats:
            raise KeyError(f"patient {patient_id} has no WSI features")
        return np.concatenate(feats), np.concatenate(coords), parts


def resolve_extractor(workspace: Workspace, extractor: str | None) -> str:
    """The features folder to use: ``extractor`` when given, else the only one present."""
    found = workspace.extractors()
    if extractor is not None:
        if not workspace.features_dir(extractor).is_dir():
            raise InputError(
                f"--extractor {extractor}: no folder {workspace.features_dir(extractor)}; "
                f"found: {', '.join(found) or 'none'} (run `healnet extract` first)"
            )
        return extractor
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError(f"modality wsi: no features under {workspace.features_root}; run `healnet extract` first")
    raise InputError(
        f"modality wsi: several feature folders under {workspace.features_root} ({', '.join(found)}); pass "
        "--extractor NAME"
    )


def _index_slides(folder: Path) -> tuple[dict[str, list[SlideRef]], int | None, dict[str, str]]:
    slides: dict[str, list[SlideRef]] = {}
    dims: set[int] = set()
    prints: dict[str, str] = {}
    encoders: dict[str, list[str]] = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if path.name.startswith("."):
            continue
        meta = read_provenance(path)
        prints[str(path)] = file_fingerprint(path)
        dims.add(int(meta["dim"]))
        encoders.setdefault(encoder_identity(meta), []).append(path.stem)
        patient = slide_patient(meta)
        if patient is not None:
            slides.setdefault(patient, []).append(SlideRef(str(meta["slide_id"]), path, int(meta["n_patches"])))
    if len(encoders) > 1:
        listed = "; ".join(f"{short_identity(k)} ({len(v)} slide(s), e.g. {v[0]})" for k, v in sorted(encoders.items()))
        raise InputError(
            f"{folder}: features of different encoders or weights are mixed ({listed}); they are not comparable: "
            "re-extract (or re-import) the odd slides, or keep each set in its own folder (--name) and pick one with "
            "--extractor"
        )
    if len(dims) > 1:
        raise InputError(
            f"{folder}: feature files have different dimensions {sorted(dims)}; re-extract with one extractor"
        )
    for refs in slides.values():
        refs.sort(key=lambda r: r.slide_id)
    return slides, (dims.pop() if dims else None), prints


def _labels(path: Path, *, required: bool) -> tuple[pd.DataFrame, dict, dict[str, str]]:
    """The labels table, its metadata and fingerprint; without the file (and not ``required``) empty."""
    if path.is_file():
        labels, meta = read_labels(path)
        return labels, meta, {str(path): file_fingerprint(path)}
    if required:
        raise InputError(f"no labels at {path}; run `healnet omics labels` first")
    return pd.DataFrame({"time": [], "event": []}, index=pd.Index([], dtype=object)), {}, {}


def load_cohort(
    workdir: str | os.PathLike[str],
    modalities: Sequence[str],
    *,
    extractor: str | None = None,
    require_all: bool = False,
    require_labels: bool = True,
) -> Cohort:
    """Assemble the cohort of a run from a workspace.

    With ``require_labels=False`` (``healnet predict``) patients need only a modality: the labels
    file may be absent, and unlabelled patients get ``time`` NaN and ``event`` False.

    Raises
    ------
    InputError
        No labels, an unknown modality, no features, or no patient left.
    """
    ws = Workspace.at(workdir)
    mods = list(dict.fromkeys(m.strip() for m in modalities if m.strip()))
    if not mods:
        raise InputError("--modalities is empty; name at least one, e.g. --modalities rna or wsi,rna")
    labels_file = modality_path(ws.omics_dir, LABELS_NAME)
    labels, lmeta, prints = _labels(labels_file, required=require_labels)
    _check_known(mods, ws)
    omics, presence = _read_omics(ws, mods, prints)
    slides: dict[str, list[SlideRef]] = {}
    wsi_dim = None
    used_extractor = None
    if WSI in mods:
        used_extractor = resolve_extractor(ws, extractor)
        slides, wsi_dim, slide_prints = _index_slides(ws.features_dir(used_extractor))
        prints.update(slide_prints)
        presence[WSI] = pd.Series(True, index=pd.Index(sorted(slides), dtype=object))
    pres = _presence_matrix(labels, presence, mods, require_all=require_all, require_labels=require_labels)
    if pres.empty:
        need = "all" if require_all else "any"
        raise InputError(
            f"no patients: none of the {len(labels)} labelled patients in {labels_file} has {need} of "
            f"{', '.join(mods)}; check that patient ids match between labels and the modality tables"
        )
    lab = labels.reindex(pres.index)[["time", "event"]].copy()
    lab["time"] = lab["time"].astype(float)
    lab["event"] = lab["event"].eq(True).astype(bool)
    return Cohort(
        labels=lab,
        modalities=mods,
        omics={m: f.loc[f.index.intersection(pres.index[pres[m]])] for m, f in omics.items()},
        slides={p: s for p, s in slides.items() if p in pres.index},
        wsi_dim=wsi_dim,
        presence=pres,
        time_unit=str(lmeta.get("time_unit", "unknown")),
        workdir=ws.root.resolve(),
        extractor=used_extractor,
        fingerprints=prints,
    )


def _check_known(mods: list[str], ws: Workspace) -> None:
    """Each modality must be wsi or an omics table of ``ws``."""
    available = list_modalities(ws.omics_dir)
    unknown = [m for m in mods if m != WSI and m not in available]
    if unknown:
        raise InputError(
            f"--modalities: unknown modality {', '.join(unknown)}; available: {', '.join([WSI, *available])} "
            f"(omics tables under {ws.omics_dir}, wsi = features/<extractor>)"
        )


def _read_omics(
    ws: Workspace, mods: list[str], prints: dict[str, str]
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """Each omics modality's table (first row per patient) and its patients with values; adds the
    tables' fingerprints to ``prints``."""
    omics: dict[str, pd.DataFrame] = {}
    presence: dict[str, pd.Series] = {}
    for m in mods:
        if m == WSI:
            continue
        path = modality_path(ws.omics_dir, m)
        frame, _ = read_modality(path)
        frame = frame[~frame.index.duplicated()]
        prints[str(path)] = file_fingerprint(path)
        omics[m] = frame
        presence[m] = pd.Series(True, index=present_patients(frame))
    return omics, presence


def _presence_matrix(
    labels: pd.DataFrame,
    presence: dict[str, pd.Series],
    mods: list[str],
    *,
    require_all: bool,
    require_labels: bool,
) -> pd.DataFrame:
    """Patients × modalities (True where present), sorted, of the patients kept: labelled ones (or, without
    ``require_labels``, any with a modality) with all (``require_all``) or any of the modalities."""
    candidates = labels.index.astype(str)
    if not require_labels:
        candidates = pd.Index(
            sorted(set(candidates) | {str(p) for s in presence.values() for p in s.index}), dtype=object
        )
    pres = pd.DataFrame({m: candidates.isin(presence[m].index) for m in mods}, index=candidates)
    keep = pres.all(axis=1) if require_all else pres.any(axis=1)
    return pres[keep].sort_index()
