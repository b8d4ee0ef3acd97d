"""Read back what the pipeline produced: the c-index of each run and where the report is."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
COMPARISON_DIR = "comparison"


def _number(value: Any) -> float | None:
    """A finite float from a metric entry (a number, or a mapping with ``value``/``mean``/``estimate``)."""
    if isinstance(value, Mapping):
        for key in ("value", "estimate", "mean", "point"):
            if key in value:
                return _number(value[key])
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def mean_harrell(metrics: Mapping[str, Any]) -> float | None:
    """The Harrell c-index averaged over folds in an ``evaluate`` ``metrics.json`` (None when missing)."""
    node = metrics.get("across_folds")
    if isinstance(node, Mapping) and isinstance(node.get("harrell_c"), Mapping):
        return _number(node["harrell_c"])
    return pooled_harrell(metrics)


def pooled_harrell(metrics: Mapping[str, Any]) -> float | None:
    """The pooled out-of-fold Harrell c-index in an ``evaluate`` ``metrics.json`` (None when missing)."""
    for section in ("pooled", "overall", "all"):
        node = metrics.get(section)
        if isinstance(node, Mapping):
            for key in ("harrell_c", "c_index", "cindex"):
                if key in node:
                    return _number(node[key])
    for key in ("harrell_c", "c_index", "cindex"):
        if key in metrics:
            return _number(metrics[key])
    return None


def collect_cindex(runs_dir: Path, names: Iterable[str]) -> dict[str, float | None]:
    """Harrell c-index per run name, averaged over folds (as ``healnet train`` prints it), from
    ``<run>/evaluation/metrics.json`` (None where the file is missing or has none)."""
    out: dict[str, float | None] = {}
    for name in names:
        path = Path(runs_dir) / name / EVALUATION_DIR / METRICS_FILE
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            out[name] = None
            continue
        out[name] = mean_harrell(metrics) if isinstance(metrics, Mapping) else None
    return out


def ablation_table(runs_dir: Path, name: str) -> dict[str, float | None]:
    """The missing-modality ablation of one run: condition -> mean c-index over folds."""
    try:
        metrics = json.loads((Path(runs_dir) / name / EVALUATION_DIR / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    node = metrics.get("ablation") if isinstance(metrics, Mapping) else None
    rows = node.get("conditions", []) if isinstance(node, Mapping) else []
    return {str(r.get("condition")): _number(r.get("mean")) for r in rows if isinstance(r, Mapping)}


def find_report(runs_dir: Path, names: Iterable[str]) -> Path | None:
    """The first run's own report (the multimodal run, with every figure), else the comparison report."""
    candidates = [Path(runs_dir) / name / EVALUATION_DIR / REPORT_FILE for name in names]
    candidates.append(comparison_report(runs_dir))
    return next((p for p in candidates if p.is_file()), None)


def comparison_report(runs_dir: Path) -> Path:
    """Where the comparison of the demo's runs is written."""
    return Path(runs_dir) / COMPARISON_DIR / REPORT_FILE
