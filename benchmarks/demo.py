"""Benchmark `healnet demo`: wall time of the whole pipeline and the c-index of each run.

Runs the real command in a subprocess (as `make demo` does) in a temporary folder and prints
``name=value`` lines::

    seconds=...                 total wall time of the demo (cohort + every step)
    cohort_seconds=...          generating the synthetic cohort
    step_<step>_seconds=...     each pipeline step (tile, extract, omics, cohort, train-*, evaluate)
    cindex_<run>=...            mean Harrell c-index over folds of the wsi_rna / wsi / rna runs
    ablation_<condition>=...    the wsi+rna model with modalities removed at test time
    cpus=...                    CPUs this process may use

Target: seconds < 300 on 2 CPU cores (full size). ``--quick`` runs a reduced demo (16 patients,
small slides, 5 epochs, 2 folds) for a smoke check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced demo (smoke check)")
    parser.add_argument("--out", type=Path, default=None, help="demo folder (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = (
        ["--patients", "16", "--slide-px", "1024", "--epochs", "5", "--folds", "2", "--bootstrap", "50"]
        if args.quick
        else []
    )
    with tempfile.TemporaryDirectory(prefix="healnet-demo-bench-") as tmp:
        out = args.out or Path(tmp) / "demo"
        command = [sys.executable, "-m", "healnet_cli", "demo", "--out", str(out), "--seed", str(args.seed), *size]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if completed.returncode != 0:
            print(completed.stderr[-4000:], file=sys.stderr)
            print(f"error=healnet demo exited {completed.returncode}")
            return 1
        summary = json.loads((out / "demo.json").read_text())
    print(f"seconds={summary['total_seconds']:.1f}")
    print(f"wall_seconds_with_startup={wall:.1f}")
    print(f"cohort_seconds={summary['cohort_seconds']:.1f}")
    for step in summary["steps"]:
        print(f"step_{step['name'].replace('-', '_')}_seconds={step['seconds']:.1f}")
    for name, value in summary["cindex"].items():
        print(f"cindex_{name}={'nan' if value is None else f'{value:.3f}'}")
    for condition, value in summary.get("ablation", {}).items():
        key = condition.replace(" ", "_")
        print(f"ablation_{key}={'nan' if value is None else f'{value:.3f}'}")
    print(f"cpus={len(os.sched_getaffinity(0))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
