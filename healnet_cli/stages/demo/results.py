"""Read back what the pipeline produced (through the run contract): the c-index of each run, the
ablation table and where the report is."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.run import COMPARISON_DIR, METRICS_FILE, REPORT_HTML, RunLayout


def _number(value: Any) -> float | None:
    """A finite float, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def mean_harrell(metrics: Mapping[str, Any]) -> float | None:
    """Harrell's c-index averaged over folds (``across_folds.harrell_c.mean`` of evaluate's
    ``metrics.json``), else the pooled one (``pooled.harrell_c.value``); None when neither is there."""
    value = _number(_get(metrics, "across_folds", "harrell_c", "mean"))
    return value if value is not None else pooled_harrell(metrics)


def pooled_harrell(metrics: Mapping[str, Any]) -> float | None:
    """The pooled out-of-fold Harrell c-index (``pooled.harrell_c.value``), None when missing."""
    return _number(_get(metrics, "pooled", "harrell_c", "value"))


def _metrics(runs_dir: Path, name: str) -> Mapping[str, Any] | None:
    try:
        metrics = json.loads((RunLayout.at(Path(runs_dir) / name).evaluation / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, Mapping) else None


def collect_cindex(runs_dir: Path, names: Iterable[str]) -> dict[str, float | None]:
    """Harrell c-index per run name, averaged over folds (as ``healnet train`` prints it), from
    ``<run>/evaluation/metrics.json`` (None where the file is missing or has none)."""
    out: dict[str, float | None] = {}
    for name in names:
        metrics = _metrics(runs_dir, name)
        out[name] = mean_harrell(metrics) if metrics is not None else None
    return out


def ablation_table(runs_dir: Path, name: str) -> dict[str, float | None]:
    """The missing-modality ablation of one run: condition -> mean c-index over folds."""
    rows = _get(_metrics(runs_dir, name) or {}, "ablation", "conditions") or []
    return {str(r.get("condition")): _number(r.get("mean")) for r in rows if isinstance(r, Mapping)}


def find_report(runs_dir: Path, names: Iterable[str]) -> Path | None:
    """The first run's own report (the multimodal run, with every figure), else the comparison report."""
    candidates = [RunLayout.at(Path(runs_dir) / name).evaluation / REPORT_HTML for name in names]
    candidates.append(comparison_report(runs_dir))
    return next((p for p in candidates if p.is_file()), None)


def comparison_report(runs_dir: Path) -> Path:
    """Where the comparison of the demo's runs is written."""
    return Path(runs_dir) / COMPARISON_DIR / REPORT_HTML
