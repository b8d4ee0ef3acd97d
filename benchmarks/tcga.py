"""Accuracy and speed of `healnet train` on a real TCGA cohort (omics only, the cohort's 5 splits).

Usage: ``python benchmarks/tcga.py COHORT_DIR [--quick] [--models healnet,ehpal,snn,coxnet]``

COHORT_DIR holds ``tcga_<cohort>_all_clean.csv.zip`` and ``splits_0..4.csv`` (see
../shared/data/README.md). The script builds a temporary workspace with ``healnet omics`` (rna/cnv/mut
per patient + labels; ``--local-conversion`` uses the script's own minimal conversion instead), runs
``healnet train`` in a subprocess per model with default settings and prints
``<model>_cindex=mean±sd`` and ``<model>_seconds_per_fold=`` lines. ``--quick`` trains fold 0 only.
Default settings include the per-fold seed ensemble (``--ensemble 3``); ``--extra "--ensemble 1"`` gives
single networks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SUFFIXES = {"rna": "_rnaseq", "cnv": "_cnv", "mut": "_mut"}


def omics_workspace(cohort_dir: Path, workdir: Path, clinical: bool = False) -> list[str]:
    """Run `healnet omics` on the cohort's wide CSV (rna/cnv/mut/clinical + labels); return the modalities."""
    csv = next(cohort_dir.glob("*.csv.zip"), None) or next(cohort_dir.glob("*.csv"))
    proc = subprocess.run(
        [sys.executable, "-m", "healnet_cli", "--quiet", "omics", str(csv), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"healnet omics failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    present = {p.stem for p in (workdir / "omics").glob("*.parquet")}
    return [m for m in (*SUFFIXES, *(["clinical"] if clinical else [])) if m in present]


def build_workspace(cohort_dir: Path, workdir: Path, clinical: bool = False) -> list[str]:
    """Local conversion (before `healnet omics` existed): rna/cnv/mut by column suffix, and with
    ``clinical`` age + sex only; returns the modalities written."""
    from healnet_cli.artifacts.omics import modality_path, write_labels, write_modality

    csv = next(cohort_dir.glob("*.csv.zip"), None) or next(cohort_dir.glob("*.csv"))
    raw = pd.read_csv(csv, index_col=0, low_memory=False)
    patients = raw.groupby("case_id", sort=True).first()
    omics_dir = workdir / "omics"
    labels = pd.DataFrame({"time": patients["survival_months"].astype(float), "event": patients["censorship"] == 0})
    labels = labels[labels["time"] > 0]
    write_labels(modality_path(omics_dir, "labels"), labels, {"time_unit": "months", "sources": [str(csv)]})
    written = []
    for name, suffix in SUFFIXES.items():
        cols = [c for c in patients.columns if c.endswith(suffix)]
        if cols:
            write_modality(
                modality_path(omics_dir, name),
                patients[cols].astype(np.float32),
                {"modality": name, "sources": [str(csv)]},
            )
            written.append(name)
    if clinical:
        table = patients[["age", "is_female"]].astype(np.float32)
        write_modality(modality_path(omics_dir, "clinical"), table, {"modality": "clinical", "sources": [str(csv)]})
        written.append("clinical")
    return written


def run_model(
    model: str, modalities: list[str], workdir: Path, cohort_dir: Path, out: Path, quick: bool, extra: list[str]
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "healnet_cli",
        "--quiet",
        "train",
        "--modalities",
        ",".join(modalities),
        "--model",
        model,
        "--workdir",
        str(workdir),
        "--splits",
        str(cohort_dir),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--json",
        *extra,
    ]
    if quick:
        cmd += ["--fold", "0"]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{model} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    n_folds = 1 if quick else 5
    if quick:
        from healnet_cli.metrics import compute_harrell, compute_safely

        pred = pd.read_parquet(out / "fold_0" / "predictions.parquet")
        c = compute_safely(
            "harrell_c", compute_harrell, pred["time"].to_numpy(), pred["event"].to_numpy(bool), pred["risk"].to_numpy()
        ).as_float
        return {"mean": c, "sd": 0.0, "folds": [c], "seconds_per_fold": seconds / n_folds}
    summary = json.loads((out / "summary.json").read_text())
    return {
        "mean": summary["cindex_mean"],
        "sd": summary["cindex_sd"],
        "folds": [f["cindex"] for f in summary["folds"]],
        "seconds_per_fold": seconds / n_folds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="fold 0 only")
    parser.add_argument("--models", default="healnet,coxnet,snn,ehpal")
    parser.add_argument(
        "--clinical",
        action="store_true",
        help="add age and sex as a 'clinical' modality (the paper's omics input included them)",
    )
    parser.add_argument(
        "--local-conversion",
        action="store_true",
        help="build the workspace with the script's own minimal conversion instead of `healnet omics` "
        "(clinical = age + sex only)",
    )
    parser.add_argument("--extra", default="", help="extra `healnet train` arguments, space-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="healnet-tcga-") as tmp:
        workdir = Path(tmp) / "work"
        build = build_workspace if args.local_conversion else omics_workspace
        modalities = build(args.cohort_dir, workdir, clinical=args.clinical)
        print(f"cohort={args.cohort_dir.name}")
        print(f"modalities={','.join(modalities)}")
        for model in args.models.split(","):
            res = run_model(
                model, modalities, workdir, args.cohort_dir, Path(tmp) / f"run-{model}", args.quick, args.extra.split()
            )
            tag = f"{model}+clinical" if args.clinical else model
            print(f"{tag}_cindex={res['mean']:.3f}±{res['sd']:.3f}")
            print(f"{tag}_folds={','.join(f'{c:.3f}' for c in res['folds'])}")
            print(f"{tag}_seconds_per_fold={res['seconds_per_fold']:.1f}", flush=True)


if __name__ == "__main__":
    main()
