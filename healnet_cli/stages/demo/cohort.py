"""The embedded demo cohort: slides, RNA and CNV tables and survival with a known, planted signal.

Generative model (all draws from one seed, so a cohort is reproducible bit for bit)::

    slide_factor s ~ N(0, 1)      -> share of DAB-rich tumour tissue on the slide, sigmoid(1.8 s)
    rna_factor   r ~ N(0, 1)      -> a few RNA genes = loading * r + noise (many pure-noise genes)
    log-hazard   = A * s + B * r  (A = B = 1.6)
    time  ~ Exponential(rate = BASE_HAZARD_PER_MONTH * exp(log-hazard))
    censor ~ Uniform(0, CENSOR_MAX_MONTHS); observed = min(time, censor), event = time <= censor

so a model needs *both* the slide and the RNA to rank patients well. Some patients have no slide,
others no RNA (disjoint sets); CNV levels exist for everyone, mostly noise, with a few genes that
weakly follow ``r``.

Files written under ``out_dir``::

    slides/DEMO-0001-01.tif   pyramidal TIFF, 0.5 µm/px at level 0, OpenSlide-readable
    slides.csv                path, case_id (for ``healnet tile --slides-csv``)
    demo_all_clean.csv        one row per patient: case_id, slide_id, age, is_female,
                              survival_months, censorship (1 = censored), *_rnaseq, *_cnv
                              (the layout of the TCGA study tables; empty RNA cells = no RNA)
    truth.csv                 the latent factors per patient (for checking, never for training)
    README.md                 what the cohort is
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError
from healnet_cli.stages.demo.synthetic_slides import write_pyramidal_tiff
from healnet_cli.stages.demo.tissue import compose_slide, load_patch_library

SLIDE_EFFECT = 1.6
RNA_EFFECT = 1.6
TUMOUR_SLOPE = 1.8
BASE_HAZARD_PER_MONTH = 1 / 30
CENSOR_MAX_MONTHS = 90.0
MPP = 0.5
N_RNA_GENES = 120
N_RNA_SIGNAL = 8
N_CNV_GENES = 60
N_CNV_SIGNAL = 4
MISSING_SLIDE_FRACTION = 0.1
MISSING_RNA_FRACTION = 0.1


@dataclass(frozen=True)
class DemoCohort:
    """Paths and counts of a generated demo cohort."""

    root: Path
    slides_dir: Path
    slides_csv: Path
    table_csv: Path
    truth_csv: Path
    n_patients: int
    n_slides: int
    n_with_rna: int
    n_events: int

    def summary(self) -> str:
        return (
            f"{self.n_patients} patients, {self.n_slides} slides, {self.n_with_rna} with RNA, "
            f"{self.n_events} events ({self.n_patients - self.n_events} censored)"
        )


def patient_ids(n_patients: int) -> list[str]:
    """``DEMO-0001`` … ``DEMO-<n>``."""
    return [f"DEMO-{i + 1:04d}" for i in range(n_patients)]


def draw_truth(n_patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """Latent factors, modality availability and survival of each patient.

    Returns
    -------
    pandas.DataFrame
        Index ``case_id``; columns ``slide_factor``, ``rna_factor``, ``log_hazard``,
        ``tumour_fraction``, ``has_slide``, ``has_rna``, ``time_months``, ``event``.
    """
    if n_patients < 6:
        raise InputError(f"--patients {n_patients}: the demo cohort needs at least 6 patients")
    slide = rng.normal(size=n_patients)
    rna = rng.normal(size=n_patients)
    log_hazard = SLIDE_EFFECT * slide + RNA_EFFECT * rna
    event_time = rng.exponential(size=n_patients) / (BASE_HAZARD_PER_MONTH * np.exp(log_hazard))
    censor_time = rng.uniform(0.0, CENSOR_MAX_MONTHS, size=n_patients)
    observed = np.maximum(np.minimum(event_time, censor_time), 0.1)
    order = rng.permutation(n_patients)
    n_no_slide = max(1, round(MISSING_SLIDE_FRACTION * n_patients))
    n_no_rna = max(1, round(MISSING_RNA_FRACTION * n_patients))
    has_slide = np.ones(n_patients, dtype=bool)
    has_rna = np.ones(n_patients, dtype=bool)
    has_slide[order[:n_no_slide]] = False
    has_rna[order[n_no_slide : n_no_slide + n_no_rna]] = False
    return pd.DataFrame(
        {
            "slide_factor": slide,
            "rna_factor": rna,
            "log_hazard": log_hazard,
            "tumour_fraction": 1.0 / (1.0 + np.exp(-TUMOUR_SLOPE * slide)),
            "has_slide": has_slide,
            "has_rna": has_rna,
            "time_months": observed.round(2),
            "event": event_time <= censor_time,
        },
        index=pd.Index(patient_ids(n_patients), name="case_id"),
    )


def draw_rna(truth: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, list[str]]:
    """RNA expression (z-score-like floats): ``N_RNA_SIGNAL`` genes follow ``rna_factor``.

    Returns the table (patients without RNA have empty rows) and the names of the signal genes.
    """
    n = len(truth)
    names = [f"DG{j + 1:03d}_rnaseq" for j in range(N_RNA_GENES)]
    values = rng.normal(size=(n, N_RNA_GENES)) + rng.normal(0, 0.5, size=N_RNA_GENES)
    signal = rng.choice(N_RNA_GENES, size=N_RNA_SIGNAL, replace=False)
    loadings = rng.choice([-1.0, 1.0], size=N_RNA_SIGNAL) * rng.uniform(0.8, 1.2, size=N_RNA_SIGNAL)
    values[:, signal] = truth["rna_factor"].to_numpy()[:, None] * loadings + rng.normal(0, 0.4, size=(n, N_RNA_SIGNAL))
    values[~truth["has_rna"].to_numpy()] = np.nan
    table = pd.DataFrame(values.round(4), index=truth.index, columns=names)
    return table, sorted(names[j] for j in signal)


def draw_cnv(truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Copy-number levels (integers -2..2), mostly 0; ``N_CNV_SIGNAL`` genes weakly follow ``rna_factor``."""
    n = len(truth)
    names = [f"DG{j + 1:03d}_cnv" for j in range(N_CNV_GENES)]
    levels = rng.choice([-2, -1, 0, 1, 2], p=[0.05, 0.15, 0.6, 0.15, 0.05], size=(n, N_CNV_GENES))
    drift = 0.7 * truth["rna_factor"].to_numpy()[:, None] + rng.normal(0, 0.7, size=(n, N_CNV_SIGNAL))
    levels[:, :N_CNV_SIGNAL] = np.clip(np.round(drift), -2, 2)
    return pd.DataFrame(levels.astype(int), index=truth.index, columns=names)


def build_demo_cohort(
    out_dir: str | os.PathLike[str],
    *,
    n_patients: int = 40,
    seed: int = 0,
    slide_px: int = 2048,
) -> DemoCohort:
    """Write the demo cohort (slides + tables) into ``out_dir``; no network, no shared data.

    Parameters
    ----------
    out_dir
        Folder to create (existing files of a previous cohort are overwritten).
    n_patients
        Number of patients (≥ 6).
    seed
        Seed of every random draw: the same seed gives the same cohort.
    slide_px
        Level-0 side of the slides in pixels (at 0.5 µm/px; ≥ 512).

    Returns
    -------
    DemoCohort

    Raises
    ------
    InputError
        Fewer than 6 patients or slides smaller than 512 px.
    """
    if slide_px < 512:
        raise InputError(f"--slide-px {slide_px}: demo slides need at least 512 px per side")
    root = Path(out_dir)
    slides_dir = root / "slides"
    slides_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = draw_truth(n_patients, rng)
    rna, signal_genes = draw_rna(truth, rng)
    cnv = draw_cnv(truth, rng)
    slide_rows = _write_slides(truth, slides_dir, rng=np.random.default_rng([seed, 1]), slide_px=slide_px)
    slides = pd.DataFrame(slide_rows, columns=["path", "case_id"])
    atomic.write_text(root / "slides.csv", slides.to_csv(index=False))

    _write_tables(root, pd.concat([_clinical(truth, rng), rna, cnv], axis=1), truth, _readme(truth, signal_genes, seed))
    return DemoCohort(
        root=root,
        slides_dir=slides_dir,
        slides_csv=root / "slides.csv",
        table_csv=root / "demo_all_clean.csv",
        truth_csv=root / "truth.csv",
        n_patients=len(truth),
        n_slides=len(slides),
        n_with_rna=int(truth["has_rna"].sum()),
        n_events=int(truth["event"].sum()),
    )


def _write_tables(root: Path, table: pd.DataFrame, truth: pd.DataFrame, readme: str) -> None:
    """The cohort's table (clinical + RNA + CNV, one row per case), the hidden truth and the README."""
    atomic.write_text(root / "demo_all_clean.csv", table.to_csv(index=True, index_label="case_id"))
    atomic.write_text(root / "truth.csv", truth.to_csv(index=True))
    atomic.write_text(root / "README.md", readme)


def _clinical(truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The clinical columns: each patient's slide name (empty without a slide), age, sex and survival."""
    return pd.DataFrame(
        {
            "slide_id": [
                f"{case}-01.tif" if has else "" for case, has in zip(truth.index, truth["has_slide"], strict=True)
            ],
            "age": rng.normal(62, 10, size=len(truth)).round(0).astype(int),
            "is_female": rng.integers(0, 2, size=len(truth)),
            "survival_months": truth["time_months"],
            "censorship": (~truth["event"]).astype(int),
        },
        index=truth.index,
    )


def _write_slides(
    truth: pd.DataFrame, slides_dir: Path, *, rng: np.random.Generator, slide_px: int
) -> list[tuple[str, str]]:
    library = load_patch_library(tile_px=128, seed=int(rng.integers(0, 2**31)))
    rows = []
    height_px = (slide_px * 3) // 4
    for case_id, row in truth.iterrows():
        if not row["has_slide"]:
            continue
        pixels = compose_slide(
            library, height_px=height_px, width_px=slide_px, tumour_fraction=float(row["tumour_fraction"]), rng=rng
        )
        path = slides_dir / f"{case_id}-01.tif"
        with atomic.atomic_path(path) as tmp:
            write_pyramidal_tiff(tmp, pixels, MPP, levels=3, level_factor=4, compression_level=1)
        rows.append((str(path.resolve()), str(case_id)))
    return rows


def _readme(truth: pd.DataFrame, signal_genes: list[str], seed: int) -> str:
    return f"""# healnet demo cohort (synthetic, seed {seed})

Generated by `healnet demo`; no real patient. Slides are composed from the immunohistochemistry
image that ships with scikit-image (DAB-brown tumour glands, haematoxylin-blue stroma) at
{MPP} µm/px. Survival follows an exponential model with

    log-hazard = {SLIDE_EFFECT} * slide_factor + {RNA_EFFECT} * rna_factor

- slide_factor sets the share of brown tumour tissue on the slide (more brown = higher risk);
- rna_factor drives {N_RNA_SIGNAL} of {N_RNA_GENES} RNA genes: {", ".join(signal_genes)};
- {int((~truth["has_slide"]).sum())} patients have no slide, {int((~truth["has_rna"]).sum())} have no RNA;
- {int(truth["event"].sum())} events, {int((~truth["event"]).sum())} censored.

`truth.csv` holds the latent factors (for checking a model, never for training it).
"""
