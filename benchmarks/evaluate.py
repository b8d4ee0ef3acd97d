"""Wall and CPU time of `healnet evaluate`, with a per-phase breakdown.

Usage: ``python benchmarks/evaluate.py RUN_OR_COHORT_DIR [--repeat N] [--bootstrap B] [--extra "..."]``

RUN_OR_COHORT_DIR is either a run folder written by `healnet train`, or a TCGA cohort folder
(``tcga_<cohort>_all_clean.csv.zip`` + ``splits_0..4.csv``, see ../shared/data/README.md): then the
script builds a workspace with `healnet omics`, trains an omics-only run (``--modalities
rna,cnv,mut``, default model and settings, the cohort's splits) in a temporary folder and evaluates
that. `healnet evaluate RUN --out TMP --json` runs in a subprocess (as a user would type it), ``--repeat``
times; the script prints ``name=value`` lines: ``evaluate_s`` (median wall time of the whole command,
interpreter start and imports included), ``evaluate_cpu_s`` (its user + system CPU time) and
``phase_<name>_s`` for each phase evaluate reports in ``--json`` (read, metrics, risk_groups,
calibration, attention, ablation, figures, write), plus what was skipped and why.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tcga import omics_workspace  # noqa: E402 - the sibling benchmark's workspace builder


def train_omics_run(cohort_dir: Path, tmp: Path) -> Path:
    """An omics-only run (rna, cnv, mut) on the cohort's splits, default model and settings."""
    workdir, run = tmp / "work", tmp / "run"
    modalities = omics_workspace(cohort_dir, workdir)
    cmd = [
        sys.executable,
        "-m",
        "healnet_cli",
        "--quiet",
        "train",
        "--modalities",
        ",".join(modalities),
        "--workdir",
        str(workdir),
        "--splits",
        str(cohort_dir),
        "--out",
        str(run),
        "--device",
        "cpu",
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"healnet train failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    print(f"train_s={time.monotonic() - start:.1f}")
    return run


def evaluate_once(run: Path, out: Path, bootstrap: int, extra: list[str]) -> tuple[float, float, dict]:
    """(wall s, CPU s, the --json payload) of one `healnet evaluate` subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "healnet_cli",
            "evaluate",
            str(run),
            "--out",
            str(out),
            "--bootstrap",
            str(bootstrap),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"healnet evaluate failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run folder, or a TCGA cohort folder to train an omics run on")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--extra", default="", help="extra `healnet evaluate` arguments, space-separated")
    args = parser.parse_args()
    if not args.path.is_dir():
        print(f"skipped=no folder {args.path}")
        return
    with tempfile.TemporaryDirectory(prefix="healnet-evaluate-") as tmp_name:
        tmp = Path(tmp_name)
        run = args.path if (args.path / "splits.csv").is_file() else train_omics_run(args.path, tmp)
        print(f"run={run}")
        print(f"cpus={len(os.sched_getaffinity(0))}")
        print(f"load_average_1min={os.getloadavg()[0]:.2f}")
        walls, cpus, payload = [], [], {}
        for i in range(args.repeat):
            wall, cpu, payload = evaluate_once(run, tmp / f"evaluation_{i}", args.bootstrap, args.extra.split())
            walls.append(wall)
            cpus.append(cpu)
        print(f"evaluate_s={statistics.median(walls):.2f}")
        print(f"evaluate_s_all={','.join(f'{w:.2f}' for w in walls)}")
        print(f"evaluate_cpu_s={statistics.median(cpus):.2f}")
        entry = payload["runs"][0]
        for name, seconds in entry.get("timings_s", {}).items():
            print(f"phase_{name}_s={seconds:.2f}")
        metrics = json.loads((tmp / f"evaluation_{args.repeat - 1}" / "metrics.json").read_text())
        for group, why in metrics.get("skipped", {}).items():
            print(f"skipped_{group}={why}")
        print(f"harrell_c={entry.get('pooled', {}).get('harrell_c')}")
        print(f"exit_code={payload['exit_code']}")


if __name__ == "__main__":
    main()
