"""Benchmark ``healnet omics`` on a generated patients × genes count table.

Writes a CSV of ``--patients`` × ``--genes`` integer counts (TCGA patient barcodes in the first
column, header ``case_id,GENE00000,...``; reused from ``--data-dir`` when already there), runs
``healnet omics TABLE --modality rna --log1p`` in a subprocess and prints ``name=value`` lines:
``seconds=`` (wall time of the command) and ``peak_rss_mb=`` (its maximum resident set size, from
``resource.getrusage(RUSAGE_CHILDREN)``), plus ``cpu_seconds=`` (user + system CPU time, less
sensitive to other jobs on the machine than the wall time). Targets for 10,000 × 20,000: < 60 s and < 4 GB.

Usage: ``python benchmarks/omics.py [--quick] [--patients N] [--genes G] [--data-dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyarrow import csv as pacsv

_CHUNK_ROWS = 250


def write_table(path: Path, n_patients: int, n_genes: int, *, seed: int = 0) -> None:
    """Poisson-ish counts, written in row chunks so memory stays small."""
    rng = np.random.default_rng(seed)
    names = ["case_id"] + [f"GENE{g:05d}" for g in range(n_genes)]
    rates = rng.gamma(0.8, 50.0, size=n_genes)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([pa.field("case_id", pa.string())] + [pa.field(n, pa.int32()) for n in names[1:]])
    with pacsv.CSVWriter(str(tmp), schema) as writer:
        for start in range(0, n_patients, _CHUNK_ROWS):
            rows = min(_CHUNK_ROWS, n_patients - start)
            counts = rng.poisson(rates, size=(rows, n_genes)).astype(np.int32)
            ids = pa.array([f"TCGA-{(start + i) // 10000:02d}-{(start + i) % 10000:04d}" for i in range(rows)])
            writer.write_table(
                pa.Table.from_arrays([ids] + [pa.array(counts[:, g]) for g in range(n_genes)], schema=schema)
            )
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 patients × 2,000 genes")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "healnet_bench_omics")
    args = parser.parse_args()
    n_patients, n_genes = (1_000, 2_000) if args.quick else (args.patients, args.genes)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    table = args.data_dir / f"counts_{n_patients}x{n_genes}.csv"
    if not table.is_file():
        start = time.perf_counter()
        write_table(table, n_patients, n_genes)
        print(f"generate_seconds={time.perf_counter() - start:.1f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="healnet_bench_work_"))
    try:
        command = [
            sys.executable,
            "-m",
            "healnet_cli",
            "omics",
            str(table),
            "--modality",
            "rna",
            "--log1p",
            "-w",
            str(work),
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HEALNET_QUIET": "1"})
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"healnet omics failed ({result.returncode}): {result.stderr.strip()}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
        cpu_seconds = usage.ru_utime + usage.ru_stime
        out_mb = (work / "omics" / "rna.parquet").stat().st_size / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"patients={n_patients}")
    print(f"genes={n_genes}")
    print(f"csv_mb={table.stat().st_size / 2**20:.0f}")
    print(f"parquet_mb={out_mb:.0f}")
    print(f"seconds={seconds:.1f}")
    print(f"peak_rss_mb={peak_rss_mb:.0f}")
    print(f"cpu_seconds={cpu_seconds:.1f}")
    print(f"load_average_1min={os.getloadavg()[0]:.1f}")
    print(f"cpus={len(os.sched_getaffinity(0))}")
    print(f"python={platform.python_version()}")
    print(f"pyarrow={pa.__version__}")


if __name__ == "__main__":
    main()
