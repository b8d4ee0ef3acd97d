"""Several runs: one comparison table and paired bootstrap tests of the pooled Harrell c-index
difference on the patients every run predicted."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.metrics import NotComputable, compute_weighted_concordance, concordance_counts, paired_bootstrap
from healnet_cli.stages.evaluate.document import LABELS, RunEvaluation
from healnet_cli.stages.evaluate.report import Report
from healnet_cli.stages.evaluate.scoring import METRICS


def _shared(evals: list[RunEvaluation]) -> tuple[pd.DataFrame, list[str]]:
    """Out-of-fold risk of each run on the shared patients (one row per patient) + notes."""
    frames, notes = [], []
    for i, ev in enumerate(evals):
        p = ev.run.predictions.drop_duplicates("patient_id").set_index("patient_id")
        frames.append(
            p[["time", "event", "risk"]].rename(
                columns={"risk": f"risk_{i}", "time": f"time_{i}", "event": f"event_{i}"}
            )
        )
    joined = pd.concat(frames, axis=1, join="inner")
    for i in range(1, len(evals)):
        differ = (joined["time_0"] != joined[f"time_{i}"]) | (joined["event_0"] != joined[f"event_{i}"])
        if differ.any():
            notes.append(
                f"{int(differ.sum())} shared patient(s) have different labels in {evals[i].run.name}; the first "
                "run's labels are used"
            )
    return joined, notes


def _harrell_on(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Harrell's c of ``risk`` on resamples given as patient multiplicities (a paired-bootstrap statistic)."""
    return lambda counts: concordance_counts(time, event, risk, counts)


def paired_harrell(
    time: np.ndarray, event: np.ndarray, ra: np.ndarray, rb: np.ndarray, *, n_boot: int, seed: int
) -> dict[str, Any]:
    """Harrell's c of ``ra`` and ``rb`` on the same patients and a paired bootstrap of their difference
    (the fields of a comparison row). Raises :class:`NotComputable` when it cannot be computed."""
    c_a = compute_weighted_concordance(time, event, ra)  # raises with the reason when not computable
    c_b = compute_weighted_concordance(time, event, rb)
    res = paired_bootstrap(
        _harrell_on(time, event, ra), _harrell_on(time, event, rb), time.size, n_boot=n_boot, seed=seed
    )
    return {
        "c_a": c_a,
        "c_b": c_b,
        "difference": res.difference,
        "ci95": [res.ci_low, res.ci_high] if res.ci_low is not None else None,
        "p_value": res.p_value,
        "bootstrap_valid": f"{res.n_valid}/{res.n_boot}",
        **({"reason": res.reason} if res.reason else {}),
    }


def compare_runs(evals: list[RunEvaluation], *, n_boot: int, seed: int) -> dict[str, Any]:
    """Comparison table rows and the pairwise paired bootstrap of Harrell's c on shared patients."""
    names = [ev.run.name if sum(e.run.name == ev.run.name for e in evals) == 1 else str(ev.run.path) for ev in evals]
    table = []
    for name, ev in zip(names, evals, strict=True):
        row: dict[str, Any] = {
            "run": name,
            "model": ev.run.model_name,
            "modalities": ev.run.modalities,
            "n_patients": int(ev.run.predictions["patient_id"].nunique()),
        }
        if ev.scores is not None:
            row.update({m: ev.scores.pooled.values[m].as_dict() for m in METRICS})
            row["harrell_c_across_folds"] = ev.scores.across_folds()["harrell_c"]
        table.append(row)
    joined, notes = _shared(evals)
    time, event = joined["time_0"].to_numpy(float), joined["event_0"].to_numpy(bool)
    tests = []
    for a, b in combinations(range(len(evals)), 2):
        ra, rb = joined[f"risk_{a}"].to_numpy(float), joined[f"risk_{b}"].to_numpy(float)
        entry: dict[str, Any] = {"a": names[a], "b": names[b], "n_shared": int(time.size), "metric": "harrell_c"}
        try:
            entry.update(paired_harrell(time, event, ra, rb, n_boot=n_boot, seed=seed))
        except NotComputable as exc:
            entry.update({"difference": None, "p_value": None, "reason": f"{exc} (on {time.size} shared patients)"})
        tests.append(entry)
    for name, ev in zip(names, evals, strict=True):  # each run against its clinical baseline (same patients and folds)
        if ev.clinical_baseline is not None:
            tests.append({"a": name, "b": f"clinical baseline ({name})", **ev.clinical_baseline.difference})
    return {"runs": table, "paired_tests": tests, "notes": notes}


def comparison_report(result: dict[str, Any]) -> Report:
    report = Report("healnet evaluation: comparison of runs", f"{len(result['runs'])} runs")
    report.heading("Pooled out-of-fold metrics")
    rows = []
    for r in result["runs"]:
        cells = []
        for m in METRICS:
            v = r.get(m)
            if v is None:
                cells.append("n/a (not scored)")
            elif v["value"] is None:
                cells.append(f"n/a ({v.get('reason', '')})")
            else:
                ci = f" ({v['ci95'][0]:.3f}–{v['ci95'][1]:.3f})" if v.get("ci95") else ""
                cells.append(f"{v['value']:.3f}{ci}")
        rows.append([r["run"], r["model"], ", ".join(r["modalities"]), str(r["n_patients"])] + cells)
    report.table(["run", "model", "modalities", "patients"] + [LABELS[m] for m in METRICS], rows)
    report.heading("Paired bootstrap of Harrell's c-index (shared patients)")
    rows = []
    for t in result["paired_tests"]:
        if t.get("difference") is None or t.get("p_value") is None:
            rows.append([t["a"], t["b"], str(t["n_shared"]), "n/a", "n/a", f"n/a ({t.get('reason', '')})"])
            continue
        ci = f"{t['ci95'][0]:+.3f} to {t['ci95'][1]:+.3f}" if t["ci95"] else "n/a"
        rows.append(
            [
                t["a"],
                t["b"],
                str(t["n_shared"]),
                f"{t['c_a']:.3f} vs {t['c_b']:.3f}",
                f"{t['difference']:+.3f} ({ci})",
                f"{t['p_value']:.3g}",
            ]
        )
    report.table(["run A", "run B", "shared patients", "c-index A vs B", "A − B (95% CI)", "p (two-sided)"], rows)
    report.bullets(result["notes"] + ["p: 2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0)) over paired resamples of the shared patients"])
    return report
