"""Turn one run's evaluation into ``metrics.json`` content and the report blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from healnet_cli import __version__
from healnet_cli.metrics import MetricValue
from healnet_cli.stages.evaluate.ablation import AblationResult
from healnet_cli.stages.evaluate.attention import AttentionResult
from healnet_cli.stages.evaluate.curves import Calibration, RiskGroups
from healnet_cli.stages.evaluate.report import Figure, Report
from healnet_cli.stages.evaluate.run_folder import RunData
from healnet_cli.stages.evaluate.scoring import METRICS, RunScores

LABELS = {
    "harrell_c": "Harrell's c-index",
    "uno_c": "Uno's c-index (IPCW)",
    "ibs": "Integrated Brier score",
    "mean_auc": "Mean time-dependent AUC",
}


@dataclass
class RunEvaluation:
    """Everything computed for one run; a group that failed is ``None`` with its reason in ``failed``."""

    run: RunData
    scores: RunScores | None = None
    groups: RiskGroups | None = None
    calibration: Calibration | None = None
    ablation: AblationResult | None = None
    attention: AttentionResult | None = None
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)


def conventions(ev: RunEvaluation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "risk": "higher risk = earlier event (sksurv convention); c-index ties count 0.5",
        "censoring_distribution": "Kaplan–Meier of each fold's training patients (splits.csv split != test)",
        "survival_at_t": "step function: S(t) = surv_j for bin_edges[j+1] <= t < bin_edges[j+2], 1 before the first bin end",
        "td_auc_estimate": "the risk score (cumulative cases / dynamic controls)",
        "ci": "95% percentile bootstrap over test patients (pooled: resampled within each fold); censoring weights fixed",
        "time_unit": ev.run.time_unit,
    }
    if ev.scores is not None:
        out["tau"] = ev.scores.tau
        out["tau_rule"] = "smallest over folds of min(largest test time, largest training time)"
        out["time_grid"] = ev.scores.grid.tolist()
    return out


def metrics_json(ev: RunEvaluation, options: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable ``metrics.json`` payload."""
    run, p = ev.run, ev.run.predictions
    payload: dict[str, Any] = {
        "schema": "healnet.evaluation/1",
        "healnet_version": __version__,
        "run": {
            "path": str(run.path), "name": run.name, "model": run.model_name, "modalities": run.modalities,
            "folds": run.folds, "n_patients": int(p["patient_id"].nunique()), "n_events": int(p["event"].sum()),
            "time_unit": run.time_unit,
        },
        "options": options,
        "inputs": run.fingerprints,
        "conventions": conventions(ev),
        "failed": ev.failed,
        "skipped": ev.skipped,
    }
    if ev.scores is not None:
        payload["folds"] = {str(k): s.as_dict() for k, s in ev.scores.folds.items()}
        payload["pooled"] = ev.scores.pooled.as_dict()
        payload["across_folds"] = ev.scores.across_folds()
    if ev.groups is not None:
        payload["risk_groups"] = ev.groups.as_dict()
    if ev.calibration is not None:
        payload["calibration"] = ev.calibration.as_dict()
    if ev.ablation is not None:
        payload["ablation"] = ev.ablation.as_dict()
    if ev.attention is not None:
        payload["attention"] = ev.attention.as_dict()
    return payload


def _mean_sd(entry: dict[str, Any]) -> str:
    if entry["mean"] is None:
        return "n/a (" + "; ".join(f"fold {k}: {r}" for k, r in entry.get("not_computable", {}).items()) + ")"
    return f"{entry['mean']:.3f} ± {entry['sd']:.3f} ({entry['n_folds']} folds)"


def _metric_sections(report: Report, ev: RunEvaluation) -> None:
    scores = ev.scores
    if scores is None:
        return
    report.heading("Discrimination and calibration")
    across = scores.across_folds()
    report.table(
        ["metric", "pooled out-of-fold (95% CI)", "mean ± sd over folds"],
        [[LABELS[m], scores.pooled.values[m].text(), _mean_sd(across[m])] for m in METRICS],
    )
    rows = []
    for k, s in scores.folds.items():
        rows.append([str(k), str(s.n), str(s.n_events)] + [s.values[m].text() for m in METRICS])
    report.heading("Per fold", 3)
    report.table(["fold", "patients", "events"] + [LABELS[m] for m in METRICS], rows)
    notes = [f"fold {k}: {s.grid_note}" for k, s in scores.folds.items() if s.grid_note]
    if scores.pooled.grid_note:
        notes.append(f"pooled: {scores.pooled.grid_note}")
    report.bullets(notes)
    for name in ("td_auc", "brier"):
        if name in ev.figures:
            report.figure(ev.figures[name])


def _group_sections(report: Report, ev: RunEvaluation) -> None:
    if ev.groups is not None:
        g = ev.groups
        report.heading("Risk groups")
        lr = f"log-rank p = {g.p_value:.3g} (χ² = {g.chisq:.2f})" if g.p_value is not None else f"log-rank: n/a ({g.reason})"
        report.text(f"Patients split at quantiles of the pooled out-of-fold risk ({len(g.names)} groups); {lr}.")
        report.table(
            ["group", "patients", "events"] + [f"at risk t={t:g}" for t in g.at_times],
            [[n, str(s), str(e)] + [str(c) for c in r] for n, s, e, r in zip(g.names, g.sizes, g.events, g.at_risk)],
        )
        if "km" in ev.figures:
            report.figure(ev.figures["km"])
    if ev.calibration is not None:
        report.heading("Calibration", 3)
        report.bullets([f"t = {t}: n/a ({why})" for t, why in ev.calibration.skipped.items()])
        if "calibration" in ev.figures:
            report.figure(ev.figures["calibration"])


def _ablation_section(report: Report, ab: AblationResult | None, figures: dict[str, Figure]) -> None:
    if ab is None:
        return
    report.heading("Missing modalities at inference")
    rows = []
    for r in ab.rows():
        mean = "n/a" if r["mean"] is None else f"{r['mean']:.3f} ± {r['sd']:.3f}"
        pooled = f"{r['pooled']:.3f}" if r["pooled"] is not None else f"n/a ({r['pooled_reason']})"
        rows.append([r["condition"], mean, pooled])
    report.table(["test-time modalities", "c-index mean ± sd over folds", "pooled c-index"], rows)
    report.bullets(ab.notes)
    if "ablation" in figures:
        report.figure(figures["ablation"])


def _attention_section(report: Report, att: AttentionResult | None, figures: dict[str, Figure]) -> None:
    if att is None:
        return
    report.heading("Interpretability")
    for m, top in att.top_features.items():
        report.heading(f"Top {m} features", 3)
        report.table(["rank", "feature", "mean weight"], [[str(i + 1), n, f"{w:.4g}"] for i, (n, w) in enumerate(top)])
        if f"top_{m}" in figures:
            report.figure(figures[f"top_{m}"])
    report.bullets([f"{m}: {why}" for m, why in att.unavailable.items()] + att.notes)
    for name, fig in figures.items():
        if name.startswith("heatmap_"):
            report.figure(fig)


def build_report(ev: RunEvaluation) -> Report:
    """The report of one run (also rendered as ``summary.md``)."""
    run, p = ev.run, ev.run.predictions
    report = Report(
        f"healnet evaluation: {run.name}",
        f"model {run.model_name} · modalities {', '.join(run.modalities) or '?'} · {p['patient_id'].nunique()} patients, "
        f"{int(p['event'].sum())} events · {len(run.folds)} folds · times in {run.time_unit}",
    )
    if ev.failed:
        report.heading("Not computed")
        report.bullets([f"{g}: {why}" for g, why in ev.failed.items()])
    _metric_sections(report, ev)
    _group_sections(report, ev)
    _ablation_section(report, ev.ablation, ev.figures)
    _attention_section(report, ev.attention, ev.figures)
    report.heading("Conventions")
    report.bullets([f"{k}: {v if not isinstance(v, list) else ', '.join(f'{x:.4g}' for x in v)}" for k, v in conventions(ev).items()])
    if ev.skipped:
        report.bullets([f"{g}: skipped ({why})" for g, why in ev.skipped.items()])
    return report


def headline(ev: RunEvaluation) -> dict[str, Any]:
    """Short summary for ``--json`` and the comparison table."""
    out: dict[str, Any] = {"run": ev.run.name, "path": str(ev.run.path), "failed": ev.failed}
    if ev.scores is not None:
        out["pooled"] = {m: ev.scores.pooled.values[m].value for m in METRICS}
        out["pooled_ci95"] = {m: _ci(ev.scores.pooled.values[m]) for m in METRICS}
        out["across_folds"] = {m: {"mean": v["mean"], "sd": v["sd"]} for m, v in ev.scores.across_folds().items()}
    return out


def _ci(v: MetricValue) -> list[float] | None:
    return [v.ci_low, v.ci_high] if v.ci_low is not None and v.ci_high is not None else None
