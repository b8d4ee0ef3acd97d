"""Factories shared by the cross-stage tests (fault injection, bad-input catalogue, file modes):
tiny slides and tables, a subprocess runner that can kill healnet at a chosen point, snapshots."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

REPO = Path(__file__).resolve().parents[1]
#: Cheap tile options for the tiny slides below (a few patches each).
TILE_ARGS = ("--patch-size", "64", "--seg-mpp", "8")
#: A tiny offline extractor (random init: no weights needed).
EXTRACT_ARGS = ("-e", "timm:test_resnet", "--random-init", "--device", "cpu", "--batch-size", "8", "--num-workers", "0")

DRIVER = textwrap.dedent(
    """
    # Run `healnet ARGS...` and send SIGNAL to itself at the KILL_AT-th call of SEAM:
    #   commit  - an item's outputs are written, its manifest is not (mid-item)
    #   replace - a temporary file is written, not yet renamed (mid-write: leaves a temporary)
    import os, signal, sys, time
    from healnet_cli.core import atomic, store

    seam, kill_at, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
    calls = [0]

    def trip():
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), sig)
            time.sleep(0.2)  # SIGTERM: the handler raises here

    if seam == "commit":
        original = store.ArtifactStore.commit
        def commit(self, *args, **kwargs):
            trip()
            return original(self, *args, **kwargs)
        store.ArtifactStore.commit = commit
    else:
        real_replace = os.replace
        class Os:
            def __getattr__(self, name):
                return getattr(os, name)
            @staticmethod
            def replace(src, dst):
                if str(src).rsplit("/", 1)[-1].startswith(atomic.TMP_PREFIX):
                    trip()
                return real_replace(src, dst)
        atomic.os = Os()

    from healnet_cli.cli import main
    sys.argv = ["healnet", *sys.argv[4:]]
    main()
    """
)


def make_slides(folder: Path, n: int = 6, *, size: tuple[int, int] = (512, 384)) -> Path:
    """``n`` small pyramidal TIFFs (``slide_0.tif`` ...) with a disk of tissue each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        fn = tissue_disk_tile_fn(*size, radius_px=(0.3 + 0.03 * i) * min(size))
        write_pyramidal_tiff(folder / f"slide_{i}.tif", fn, 0.5, 2, size=size, tile=128, level_factor=2)
    return folder


def wide_table(path: Path, n_patients: int = 12, *, seed: int = 0) -> Path:
    """A ``*_all_clean.csv``-style table: rna, cnv, mut, clinical columns and survival labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        row = {"case_id": f"TCGA-AA-{i:04d}", "slide_id": f"TCGA-AA-{i:04d}-01Z-00-DX1.svs", "age": 50.0 + i}
        row.update({f"G{g}_rnaseq": rng.normal() for g in range(6)})
        row.update({f"G{g}_cnv": int(rng.integers(-2, 3)) for g in range(4)})
        row.update({"TP53_mut": i % 2, "survival_months": 5.0 + 3 * i, "censorship": int(i % 3 == 0)})
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path)
    return path


def run_healnet(args: list[str], *, env: dict[str, str] | None = None, kill: tuple[str, int, str] | None = None,
                prefix: list[str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:  # fmt: skip
    """``healnet ARGS`` in a subprocess; with ``kill=(seam, n, signal)`` it signals itself at the
    n-th call of the seam (see :data:`DRIVER`); ``prefix`` wraps the command (``unshare --user``)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    if kill is None:
        command = [sys.executable, "-m", "healnet_cli", *args]
    else:
        command = [sys.executable, "-c", DRIVER, kill[0], str(kill[1]), kill[2], *args]
    return subprocess.run([*(prefix or []), *command], env=full_env, capture_output=True, text=True, timeout=timeout)


def snapshot(folder: Path, *, suffixes: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` with one of ``suffixes`` (relative path → digest)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name.endswith(suffixes)
    }


def leftovers(folder: Path) -> list[str]:
    """Lock files and temporaries under ``folder`` (none may survive a finished run)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith(".lock") or p.name.startswith((".tmp-", ".lock-tmp-"))
    )
