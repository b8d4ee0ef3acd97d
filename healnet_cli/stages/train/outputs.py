"""Run-folder writers: env.json, cohort.json, per-fold and gathered predictions, summary."""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from healnet_cli import __version__
from healnet_cli.core import atomic
from healnet_cli.data.survival import harrell_cindex

META_KEY = b"healnet"
PREDICTIONS = "predictions.parquet"


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


def write_parquet(path: Path, frame: pd.DataFrame, meta: dict[str, Any]) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})


def gather_predictions(out: Path, folds: Sequence[int]) -> pd.DataFrame | None:
    """Concatenate ``fold_<k>/predictions.parquet`` into ``predictions.parquet`` when every fold has
    one; returns the frame, or None when some fold is not finished."""
    frames, meta = [], {}
    for k in folds:
        path = out / f"fold_{k}" / PREDICTIONS
        if not path.is_file():
            return None
        frame, m = read_parquet(path)
        frames.append(frame)
        meta.setdefault("bin_edges", {})[str(k)] = m.get("bin_edges")
        for key in ("time_unit", "model", "modalities", "loss"):
            meta[key] = m.get(key)
    frame = pd.concat(frames, ignore_index=True).sort_values(["fold", "patient_id"], kind="stable").reset_index(drop=True)
    write_parquet(out / PREDICTIONS, frame, meta)
    return frame


def summarise(frame: pd.DataFrame, failed: dict[int, str], info: dict[str, Any]) -> dict[str, Any]:
    """Harrell's c-index per fold on the test predictions, mean and sd (ddof=0, as the paper)."""
    rows = []
    for k, part in frame.groupby("fold", sort=True):
        c = harrell_cindex(part["time"].to_numpy(), part["event"].to_numpy(bool), part["risk"].to_numpy())
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


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    atomic.write_json(out / "summary.json", summary)
    table = pd.DataFrame(summary["folds"])
    extra = pd.DataFrame([
        {"fold": "mean", "cindex": summary["cindex_mean"]},
        {"fold": "sd", "cindex": summary["cindex_sd"]},
    ])
    atomic.write_text(out / "summary.csv", pd.concat([table, extra], ignore_index=True).to_csv(index=False))
