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
from healnet_cli.metrics.concordance import compute_harrell
from healnet_cli.metrics.result import compute_safely


def environment(seeds: dict[str, Any], fingerprints: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    """Package versions, git revision (when the package is a git checkout), seeds and inputs."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "healnet": __version__}
    for pkg in ("torch", "numpy", "pandas", "pyarrow", "scikit-survival", "scikit-learn", "safetensors"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        rev = (
            subprocess.run(
                ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {
        "versions": versions,
        "git_revision": rev,
        "host": platform.node(),
        "seeds": seeds,
        "inputs": dict(sorted(fingerprints.items())),
        **extra,
    }


def summarise(frame: pd.DataFrame, failed: dict[int, str], info: dict[str, Any]) -> dict[str, Any]:
    """Harrell's c-index per fold on the test predictions, mean and sd (ddof=0, as the paper) over
    the folds where it was computable; a fold without one has ``cindex: null`` and its ``reason``."""
    rows = []
    for k, part in frame.groupby("fold", sort=True):
        value = compute_safely(
            "harrell_c",
            compute_harrell,
            part["time"].to_numpy(float),
            part["event"].to_numpy(bool),
            part["risk"].to_numpy(float),
        )
        row = {"fold": int(k), "cindex": value.value, "n_test": len(part), "n_events": int(part["event"].sum())}
        rows.append(row if value.ok else {**row, "reason": value.reason})
    scored = np.array([r["cindex"] for r in rows if r["cindex"] is not None], dtype=float)
    out = {
        **info,
        "folds": rows,
        "n_folds": len(rows),
        "n_folds_scored": int(scored.size),
        "not_scored": {str(r["fold"]): r["reason"] for r in rows if r["cindex"] is None},
        "cindex_mean": float(scored.mean()) if scored.size else None,
        "cindex_sd": float(scored.std(ddof=0)) if scored.size >= 2 else None,
        "failed": {str(k): v for k, v in failed.items()},
    }
    if not scored.size:
        out["cindex_reason"] = "no fold's test set has a computable c-index (see not_scored)"
    elif scored.size < 2:
        out["cindex_sd_reason"] = "only one fold was scored"
    return out


def summary_line(summary: dict[str, Any]) -> str:
    """The run's c-index as one line: mean ± sd over the scored folds, and why others were not."""
    n, k = summary["n_folds_scored"], summary["n_folds"]
    skipped = "; ".join(f"fold {f}: {why}" for f, why in summary["not_scored"].items())
    if n == 0:
        return f"c-index not computable on any of {k} folds ({skipped})"
    text = f"c-index {summary['cindex_mean']:.3f}"
    text += f" ± {summary['cindex_sd']:.3f} over {n} folds" if n >= 2 else " on 1 fold (no sd)"
    if n < k:
        text += f"; {n} of {k} folds scored ({skipped})"
    return text
