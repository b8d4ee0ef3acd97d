"""Read back what the pipeline produced: the c-index of each run and where the report is."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"


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
    """Pooled Harrell c-index per run name (None where ``metrics.json`` is missing or has none)."""
    out: dict[str, float | None] = {}
    for name in names:
        path = Path(runs_dir) / name / METRICS_FILE
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            out[name] = None
            continue
        out[name] = pooled_harrell(metrics) if isinstance(metrics, Mapping) else None
    return out


def find_report(runs_dir: Path, names: Iterable[str]) -> Path | None:
    """The HTML report of the first run that has one (the multimodal run comes first)."""
    for name in names:
        path = Path(runs_dir) / name / REPORT_FILE
        if path.is_file():
            return path
    return None
