"""Tiny synthetic workspaces for the train/data tests (imported by the conftests of tests/data and
tests/stages/train)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from healnet_cli.artifacts.features import features_path, write_features
from healnet_cli.artifacts.omics import modality_path, write_labels, write_modality

WSI_DIM = 6


def make_workspace(
    root: Path,
    *,
    n_patients: int = 40,
    omics: dict[str, int] | None = None,
    wsi: bool = False,
    seed: int = 0,
    missing: dict[str, float] | None = None,
    id_prefix: str = "P",
    extractor: str = "toy",
    provenance: dict | None = None,
) -> Path:
    """Write ``omics/<m>.parquet``, ``omics/labels.parquet`` and optionally ``features/toy/*``.

    Survival depends on the first RNA feature (and the mean WSI feature), so models can learn.
    ``missing[m]`` is the share of patients without modality ``m``. ``id_prefix`` names the
    patients (``P000``...: another prefix gives a disjoint cohort); ``provenance`` is added to every
    feature file's provenance (written to ``features/<extractor>/``).
    """
    rng = np.random.default_rng(seed)
    omics = {"rna": 12, "cnv": 5} if omics is None else omics
    missing = missing or {}
    ids = [f"{id_prefix}{i:03d}" for i in range(n_patients)]
    signal = rng.normal(size=n_patients)
    hazard = np.exp(0.8 * signal)
    time = rng.exponential(12.0 / hazard) + 0.5
    event = rng.random(n_patients) < 0.7
    write_labels(
        modality_path(root / "omics", "labels"),
        pd.DataFrame({"time": time, "event": event}, index=pd.Index(ids, name="patient_id")),
        {"time_unit": "months"},
    )
    for name, dim in omics.items():
        x = rng.normal(size=(n_patients, dim)).astype(np.float32)
        x[:, 0] = signal + 0.3 * rng.normal(size=n_patients)
        frame = pd.DataFrame(x, index=ids, columns=[f"{name}_{j}" for j in range(dim)])
        keep = rng.random(n_patients) >= missing.get(name, 0.0)
        write_modality(modality_path(root / "omics", name), frame[keep], {"modality": name})
    if wsi:
        folder = root / "features" / extractor
        keep = rng.random(n_patients) >= missing.get("wsi", 0.0)
        for i, pid in enumerate(ids):
            if not keep[i]:
                continue
            for s in range(1 + i % 2):
                n = int(rng.integers(3, 12))
                feats = torch.from_numpy(rng.normal(size=(n, WSI_DIM)).astype(np.float32) + float(signal[i]))
                coords = torch.from_numpy(rng.integers(0, 20, size=(n, 2)) * 256)
                slide = f"{pid}-slide{s}"
                write_features(
                    features_path(folder, slide),
                    feats,
                    coords,
                    {"slide_id": slide, "case_id": pid, "extractor": extractor, **(provenance or {})},
                )
    return root
