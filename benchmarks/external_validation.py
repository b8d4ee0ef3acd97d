"""External validation on a real TCGA cohort: train on some tissue-source sites, predict the others.

Usage: ``python benchmarks/external_validation.py [COHORT_DIR] [--holdout-sites XF,DK,E7,BT] [--quick]``

COHORT_DIR (default ``../shared/data/tcga/blca``; the script says so and exits 0 when it is absent) holds
``tcga_<cohort>_all_clean.csv.zip`` (see ../shared/data/README.md). The patients of the ``--holdout-sites`` (TCGA
tissue-source site, the barcode's second field) become the external
cohort B; the others the training cohort A. Each gets its own workspace from its own table
(``healnet omics``: B's cleaning may drop other features than A's, as a hospital's table would),
then, as a user would type them:

    healnet train    -w A -m rna,cnv,mut --model healnet --out run --refit-all
    healnet evaluate run                                   (internal: A's out-of-fold predictions)
    healnet predict  run -w B --out pred_folds             (the fold ensemble)
    healnet predict  run -w B --model refit --out pred_refit
    healnet evaluate pred_folds ; healnet evaluate pred_refit

and prints ``name=value`` lines: cohort sizes, the internal and external c-indices with their 95% CIs,
Uno's c-index, the IBS, the log-rank p of the training cut-off, and seconds per step. ``--quick``: 2
epochs, 3 folds, 200 bootstrap resamples. ``--out DIR`` keeps the workspaces and runs (default: a
temporary folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

DEFAULT_COHORT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tcga" / "blca"


def split_table(csv: Path, sites: list[str], out: Path) -> tuple[Path, Path, int, int]:
    """The cohort table cut by tissue-source site into A (training) and B (external) CSVs."""
    table = pd.read_csv(csv, index_col=0, low_memory=False)
    site = table["case_id"].astype(str).str.split("-").str[1]
    external = site.isin(sites)
    a, b = out / "cohort_A.csv", out / "cohort_B.csv"
    table[~external].to_csv(a)
    table[external].to_csv(b)
    return a, b, table.loc[~external, "case_id"].nunique(), table.loc[external, "case_id"].nunique()


def healnet(*args: str, seconds: dict[str, float], step: str) -> str:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "healnet_cli", "--quiet", *args], capture_output=True, text=True, check=False
    )
    seconds[step] = time.monotonic() - start
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"healnet {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _metric(metrics: dict, name: str) -> str:
    v = metrics["pooled"][name]
    ci = v.get("ci95") or [float("nan"), float("nan")]
    return f"{v['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if v.get("value") is not None else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort_dir", type=Path, nargs="?", default=DEFAULT_COHORT)
    parser.add_argument("--holdout-sites", default="XF,DK,E7,BT")
    parser.add_argument("--modalities", default="rna,cnv,mut")
    parser.add_argument("--model", default="healnet")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not args.cohort_dir.is_dir():
        print(f"skipped: no cohort folder {args.cohort_dir} (see ../shared/data/README.md)")
        return 0
    root = args.out or Path(tempfile.mkdtemp(prefix="healnet_external_"))
    root.mkdir(parents=True, exist_ok=True)
    csv = next(args.cohort_dir.glob("*.csv.zip"), None) or next(args.cohort_dir.glob("*.csv"))
    a_csv, b_csv, n_a, n_b = split_table(csv, args.holdout_sites.split(","), root)
    print(f"n_train_patients={n_a}\nn_external_patients={n_b}\nholdout_sites={args.holdout_sites}")
    seconds: dict[str, float] = {}
    for name, table in (("A", a_csv), ("B", b_csv)):
        healnet("omics", str(table), "--workdir", str(root / f"work_{name}"), seconds=seconds, step=f"omics_{name}")
    boot = ["--bootstrap", "200" if args.quick else "1000"]
    quick = ["--epochs", "2", "--folds", "3"] if args.quick else []
    run = root / "run"
    healnet(
        "train",
        "-w",
        str(root / "work_A"),
        "-m",
        args.modalities,
        "--model",
        args.model,
        "--out",
        str(run),
        "--device",
        "cpu",
        "--refit-all",
        *quick,
        seconds=seconds,
        step="train",
    )
    healnet("evaluate", str(run), *boot, "--no-attention", seconds=seconds, step="evaluate_internal")
    internal = json.loads((run / "evaluation" / "metrics.json").read_text())
    print(f"internal_harrell_pooled={_metric(internal, 'harrell_c')}")
    h = internal["across_folds"]["harrell_c"]
    print(f"internal_harrell_mean_sd={h['mean']:.3f}±{h['sd']:.3f}")
    for kind, extra in (("folds", []), ("refit", ["--model", "refit"])):
        pred = root / f"pred_{kind}"
        healnet(
            "predict",
            str(run),
            "-w",
            str(root / "work_B"),
            "--out",
            str(pred),
            *extra,
            seconds=seconds,
            step=f"predict_{kind}",
        )
        healnet("evaluate", str(pred), *boot, seconds=seconds, step=f"evaluate_{kind}")
        metrics = json.loads((pred / "evaluation" / "metrics.json").read_text())
        ext = metrics["external_validation"]
        for name in ("harrell_c", "uno_c", "ibs", "mean_auc"):
            print(f"external_{kind}_{name}={_metric(metrics, name)}")
        groups = metrics.get("risk_groups", {})
        print(f"external_{kind}_groups_n={[g['n'] for g in groups.get('groups', [])]}")
        print(f"external_{kind}_logrank_p={(groups.get('logrank') or {}).get('p_value')}")
        print(f"external_{kind}_imputed={ {m: f['n_imputed'] for m, f in ext['features'].items()} }")
    for step, s in seconds.items():
        print(f"{step}_seconds={s:.1f}")
    print(f"out={root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
