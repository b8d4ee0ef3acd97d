"""Accuracy and speed of `healnet train` on a real TCGA cohort (the cohort's 5 splits).

Usage: ``python benchmarks/tcga.py COHORT_DIR [--quick] [--models healnet,ehpal,snn,coxnet,cox-clinical]
[--variants omics,clinical]``

COHORT_DIR holds ``tcga_<cohort>_all_clean.csv.zip`` and ``splits_0..4.csv`` (see
../shared/data/README.md). The script builds a temporary workspace with ``healnet omics`` (rna/cnv/mut
per patient + labels; ``--local-conversion`` uses the script's own minimal conversion instead), runs
``healnet train`` in a subprocess per model with default settings and prints
``<model>_cindex=mean±sd`` and ``<model>_seconds_per_fold=`` lines. ``--variants`` picks the inputs:
``omics`` (rna, cnv, mut) and/or ``clinical`` (the same plus the ``clinical`` modality; printed as
``<model>+clinical``); ``cox-clinical`` always uses ``clinical`` alone, and ``age_cindex`` (age as the
risk score on each fold's test patients, mean over folds) is printed when the workspace has an age
column. ``--quick`` trains fold 0 only.
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
        "inner": inner_validation(out),
    }


def inner_validation(run: Path) -> float | None:
    """Mean over folds and ensemble members of the inner-validation c-index at the early-stopping
    epoch (training patients only; None for closed-form models)."""
    values = []
    for path in sorted(run.glob("fold_*/**/history.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows or "best_epoch" not in rows[-1]:
            continue
        best = int(rows[-1]["best_epoch"])
        values += [r["val_cindex"] for r in rows if r.get("epoch") == best and r.get("val_cindex") is not None]
    return float(np.mean(values)) if values else None


def age_alone(cohort_dir: Path, workdir: Path, quick: bool) -> list[float] | None:
    """Harrell's c of age (older = higher risk) on each fold's test patients; None without age."""
    from healnet_cli.artifacts.omics import read_labels, read_modality
    from healnet_cli.metrics import compute_harrell, compute_safely

    path = workdir / "omics" / "clinical.parquet"
    if not path.exists():
        return None
    clinical, _ = read_modality(path)
    if "age" not in clinical.columns:
        return None
    labels, _ = read_labels(workdir / "omics" / "labels.parquet")
    out = []
    for k in range(1 if quick else 5):
        test = pd.read_csv(cohort_dir / f"splits_{k}.csv")["val"].dropna().astype(str)
        ids = [p for p in test if p in labels.index and p in clinical.index and np.isfinite(clinical.loc[p, "age"])]
        out.append(
            compute_safely(
                "harrell_c",
                compute_harrell,
                labels.loc[ids, "time"].to_numpy(float),
                labels.loc[ids, "event"].to_numpy(bool),
                clinical.loc[ids, "age"].to_numpy(float),
            ).as_float
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort_dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="fold 0 only")
    parser.add_argument("--models", default="healnet,coxnet,snn,ehpal")
    parser.add_argument(
        "--variants",
        default="omics",
        help="omics and/or clinical (comma-separated): without and with the 'clinical' modality",
    )
    parser.add_argument("--clinical", action="store_true", help="same as --variants clinical")
    parser.add_argument(
        "--local-conversion",
        action="store_true",
        help="build the workspace with the script's own minimal conversion instead of `healnet omics` "
        "(clinical = age + sex only)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the workspace and run folders here")
    parser.add_argument("--extra", default="", help="extra `healnet train` arguments, space-separated")
    args = parser.parse_args()
    variants = ["clinical"] if args.clinical else [v.strip() for v in args.variants.split(",") if v.strip()]
    with tempfile.TemporaryDirectory(prefix="healnet-tcga-") as tmp:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        workdir = Path(tmp) / "work"
        build = build_workspace if args.local_conversion else omics_workspace
        modalities = build(args.cohort_dir, workdir, clinical=True)
        omics = [m for m in modalities if m != "clinical"]
        print(f"cohort={args.cohort_dir.name}")
        print(f"modalities={','.join(modalities)}")
        age = age_alone(args.cohort_dir, workdir, args.quick)
        if age is not None:
            print(f"age_cindex={np.mean(age):.3f}±{np.std(age):.3f}")
            print(f"age_folds={','.join(f'{c:.3f}' for c in age)}", flush=True)
        for model in args.models.split(","):
            runs = (
                [("cox-clinical", ["clinical"])]
                if model == "cox-clinical"
                else [
                    (model if v == "omics" else f"{model}+clinical", omics if v == "omics" else modalities)
                    for v in variants
                ]
            )
            for tag, mods in runs:
                if "clinical" in tag and "clinical" not in modalities:
                    print(f"{tag}_cindex=n/a (no clinical modality)")
                    continue
                out = Path(tmp) / f"run-{tag}"
                res = run_model(model, mods, workdir, args.cohort_dir, out, args.quick, args.extra.split())
                print(f"{tag}_cindex={res['mean']:.3f}±{res['sd']:.3f}")
                print(f"{tag}_folds={','.join(f'{c:.3f}' for c in res['folds'])}")
                if res.get("inner") is not None:
                    print(f"{tag}_inner_val_cindex={res['inner']:.3f}")
                print(f"{tag}_seconds_per_fold={res['seconds_per_fold']:.1f}", flush=True)


if __name__ == "__main__":
    main()
