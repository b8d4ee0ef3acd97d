"""What train records beside the run contract: the environment (env.json) and the c-index summary."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli import __version__
from healnet_cli.metrics import compute_harrell, compute_safely


def environment(seeds: dict[str, Any], fingerprints: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    """Package versions, git revision (when the package is a git checkout), seeds and inputs."""
    versions = {"python": platform.python_version(), "healnet": __version__}
    for pkg in ("torch", "numpy", "pandas", "pyarrow", "scikit-survival", "scikit-learn", "safetensors"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        rev = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {"versions": versions, "git_revision": rev, "host": platform.node(), "seeds": seeds,
            "inputs": dict(sorted(fingerprints.items())), **extra}


def summarise(frame: pd.DataFrame, failed: dict[int, str], info: dict[str, Any]) -> dict[str, Any]:
    """Harrell's c-index per fold on the test predictions, mean and sd (ddof=0, as the paper)."""
    rows = []
    for k, part in frame.groupby("fold", sort=True):
        time, event, risk = part["time"].to_numpy(), part["event"].to_numpy(bool), part["risk"].to_numpy()
        c = compute_safely("harrell_c", compute_harrell, time, event, risk).as_float
        rows.append({"fold": int(k), "cindex": c, "n_test": len(part), "n_events": int(part["event"].sum())})
    values = np.array([r["cindex"] for r in rows], dtype=float)
    finite = values[np.isfinite(values)]
    return {
        **info,
        "folds": rows,
        "cindex_mean": float(finite.mean()) if len(finite) else None,
        "cindex_sd": float(finite.std(ddof=0)) if len(finite) else None,
        "failed": {str(k): v for k, v in failed.items()},
    }
