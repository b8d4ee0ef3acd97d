"""Factories of tiny synthetic omics tables (a uniquely named module: importable from tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def wide_frame(n_patients: int = 6, *, seed: int = 0, slides_per_patient: int = 1) -> pd.DataFrame:
    """A miniature ``*_all_clean.csv`` table: one row per slide, unnamed integer index."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        case = f"TCGA-AA-{i:04d}"
        omics = {
            "GENE1_rnaseq": rng.normal(), "GENE2_rnaseq": rng.normal(), "FLAT_rnaseq": 1.5,
            "GENE1_cnv": int(rng.integers(-2, 3)), "GENE2_cnv": int(rng.integers(-2, 3)),
            "TP53_mut": i % 2, "KRAS_mut": (i + 1) % 2,
        }  # fmt: skip
        clinical = {"age": 50.0 + i, "site": ["AA", "BB"][i % 2], "is_female": i % 2, "oncotree_code": "BLCA"}
        labels = {"survival_months": 10.0 + i, "censorship": i % 3 == 0}
        for s in range(slides_per_patient):
            rows.append(
                {"case_id": case, "slide_id": f"{case}-01Z-00-DX{s + 1}.svs", **clinical, **labels, "train": 1, **omics}
            )
    frame = pd.DataFrame(rows)
    frame["censorship"] = frame["censorship"].astype(int)
    return frame
