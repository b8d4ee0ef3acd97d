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
from healnet_cli.stages.evaluate.scoring import METRICS, NULL_MODEL, RunScores
from healnet_cli.stages.evaluate.training import (
    early_stopping_text,
    modality_patterns,
    settings_rows,
    training_settings,
)

EVALUATION_SCHEMA = "healnet.evaluation/1"

NULL_LABEL = "Integrated Brier score, null model (KM)"

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
    clinical_baseline: Any = None  # clinical.ClinicalBaseline
    adjusted_cox: Any = None  # clinical.AdjustedCox
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per metric group (benchmarks/evaluate.py)


def conventions(ev: RunEvaluation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "risk": "higher risk = earlier event (sksurv convention); c-index ties count 0.5",
        "censoring_distribution": "Kaplan–Meier of each fold's training patients (splits.csv split != test)",
        "survival_at_t": (
            "step function: S(t) = surv_j for bin_edges[j+1] <= t < bin_edges[j+2], 1 before the first bin end "
            "(Brier score, IBS); calibration interpolates it (see Calibration)"
        ),
        "td_auc_estimate": "the risk score (cumulative cases / dynamic controls)",
        "ci": (
            "95% percentile bootstrap over test patients (pooled: resampled within each fold); censoring weights fixed"
        ),
        "time_unit": ev.run.time_unit,
    }
    if ev.run.external is not None:
        out["censoring_distribution"] = (
            "Kaplan–Meier of the external cohort's own censoring (the training cohort's "
            "follow-up does not apply to another cohort)"
        )
        out["ci"] = "95% percentile bootstrap over the external patients; censoring weights fixed"
        out["risk_groups"] = "cut at the training run's cut-offs (quantiles of its pooled out-of-fold risk)"
    if ev.scores is not None:
        out["tau"] = ev.scores.tau
        out["tau_rule"] = (
            "the largest external follow-up time"
            if ev.run.external
            else "smallest over folds of min(largest test time, largest training time)"
        )
        out["time_grid"] = ev.scores.grid.tolist()
    return out


def external_summary(run: RunData) -> dict[str, Any]:
    """What ``metrics.json → external_validation`` and the report say about external predictions."""
    ext = run.external or {}
    shared = ext.get("shared_patients") or {}
    return {
        "training_run": ext.get("run", {}),
        "workdir": ext.get("workdir"),
        "model_used": ext.get("model_used"),
        "members": [m.get("name") for m in ext.get("members", [])],
        "n_predicted": ext.get("n_predicted"),
        "n_scored": ext.get("n_scored"),
        "n_unlabelled": ext.get("n_unlabelled"),
        "coverage": ext.get("coverage", {}),
        "features": ext.get("features", {}),
        "shared_with_training": int(shared.get("n", 0)),
        "shared_ids": list(shared.get("ids", [])),
        "warnings": list(ext.get("warnings", [])),
    }


def metrics_json(ev: RunEvaluation, options: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable ``metrics.json`` payload."""
    run, p = ev.run, ev.run.predictions
    payload: dict[str, Any] = {
        "schema": EVALUATION_SCHEMA,
        "healnet_version": __version__,
        "run": {
            "path": str(run.path),
            "name": run.name,
            "model": run.model_name,
            "modalities": run.modalities,
            "folds": run.folds,
            "n_patients": int(p["patient_id"].nunique()),
            "n_events": int(p["event"].sum()),
            "time_unit": run.time_unit,
            "modality_patterns": modality_patterns(run),
        },
        "training": training_settings(run) or None,
        "options": options,
        "inputs": run.fingerprints,
        "conventions": conventions(ev),
        "failed": ev.failed,
        "skipped": ev.skipped,
    }
    if run.external is not None:
        payload["external_validation"] = external_summary(run)
    if ev.scores is not None:
        payload["pooled"] = ev.scores.pooled.as_dict()
        if run.external is None:
            payload["folds"] = {str(k): s.as_dict() for k, s in ev.scores.folds.items()}
            payload["across_folds"] = {**ev.scores.across_folds(), "ibs_null_km": ev.scores.null_across_folds()}
    if ev.groups is not None:
        payload["risk_groups"] = ev.groups.as_dict()
    if ev.calibration is not None:
        payload["calibration"] = ev.calibration.as_dict()
    if ev.ablation is not None:
        payload["ablation"] = ev.ablation.as_dict()
    if ev.attention is not None:
        payload["attention"] = ev.attention.as_dict()
    for key in ("clinical_baseline", "adjusted_cox"):
        if getattr(ev, key) is not None:
            payload[key] = getattr(ev, key).as_dict()
    return payload


def _mean_sd(entry: dict[str, Any]) -> str:
    if entry["mean"] is None and "not_computable" not in entry:
        return "n/a"
    if entry["mean"] is None:
        return "n/a (" + "; ".join(f"fold {k}: {r}" for k, r in entry.get("not_computable", {}).items()) + ")"
    return f"{entry['mean']:.3f} ± {entry['sd']:.3f} ({entry['n_folds']} folds)"


def _metric_sections(report: Report, ev: RunEvaluation) -> None:
    scores = ev.scores
    if scores is None:
        return
    report.heading("Discrimination and calibration")
    if ev.run.external is not None:
        report.table(
            ["metric", "external cohort (95% CI)"], [[LABELS[m], scores.pooled.values[m].text()] for m in METRICS]
        )
        report.bullets([f"external: {scores.pooled.grid_note}"] if scores.pooled.grid_note else [])
        for name in ("td_auc", "brier"):
            if name in ev.figures:
                report.figure(ev.figures[name])
        return
    across = scores.across_folds()
    rows = [[LABELS[m], scores.pooled.values[m].text(), _mean_sd(across[m])] for m in METRICS]
    if scores.pooled.ibs_null is not None:
        null = scores.null_across_folds()
        rows.append(
            [
                NULL_LABEL,
                scores.pooled.ibs_null.text(),
                "n/a" if null["mean"] is None else f"{null['mean']:.3f} ± {null['sd']:.3f} ({null['n_folds']} folds)",
            ]
        )
    report.table(["metric", "pooled out-of-fold (95% CI)", "mean ± sd over folds"], rows)
    report.bullets(
        [f"{NULL_LABEL}: {NULL_MODEL}; same time grid and censoring weights as the model's IBS"]
        if scores.pooled.ibs_null is not None
        else []
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
        lr = (
            f"log-rank p = {g.p_value:.3g} (χ² = {g.chisq:.2f})"
            if g.p_value is not None
            else f"log-rank: n/a ({g.reason})"
        )
        report.text(
            f"Patients split at {g.cutoff_source} ({len(g.names)} groups; cut-offs "
            f"{', '.join(f'{c:.4g}' for c in g.cutoffs)}); {lr}."
        )
        report.table(
            ["group", "patients", "events"] + [f"at risk t={t:g}" for t in g.at_times],
            [
                [n, str(s), str(e)] + [str(c) for c in r]
                for n, s, e, r in zip(g.names, g.sizes, g.events, g.at_risk, strict=True)
            ],
        )
        if "km" in ev.figures:
            report.figure(ev.figures["km"])
    if ev.calibration is not None:
        report.heading("Calibration", 3)
        times = sorted({r["time"] for r in ev.calibration.rows})
        report.text(
            f"Method: {ev.calibration.method}"
            + (f"; times {', '.join(f'{t:.4g}' for t in times)} {ev.run.time_unit}." if times else ".")
        )
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
        ref = r["pooled_all_present"]
        same = f"{ref:.3f}" if ref is not None else f"n/a ({r['pooled_all_present_reason']})"
        rows.append([r["condition"], str(r["n_changed"]), mean, pooled, same])
    report.table(
        [
            "test-time modalities",
            "patients changed",
            "c-index mean ± sd over folds",
            "pooled c-index",
            "all present, same patients",
        ],
        rows,
    )
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


def _external_section(report: Report, run: RunData) -> None:
    ext = external_summary(run)
    train = ext["training_run"]
    report.heading("External validation")
    n_shared = ext["shared_with_training"]
    if n_shared:
        report.text(
            f"⚠ {n_shared} of these patients are also in the training cohort of the run: for them this is "
            f"not an external validation (ids in metrics.json → external_validation.shared_ids)."
        )
    cov = ", ".join(f"{m} {c.get('n_patients', 0)}/{ext['n_predicted']}" for m, c in ext["coverage"].items())
    imputed = [
        f"{m}: {f['n_imputed']} of {f['n_features']} features imputed with the training medians"
        for m, f in ext["features"].items()
        if f.get("n_imputed")
    ]
    report.bullets(
        [
            f"run {train.get('path')} (model {train.get('model')}, modalities "
            f"{', '.join(train.get('modalities') or [])}), "
            f"{ext['model_used']}: {', '.join(ext['members'])}",
            f"external workspace {ext['workdir']}: {ext['n_predicted']} patients predicted, {ext['n_scored']} with "
            "labels scored" + (f" ({ext['n_unlabelled']} without labels left out)" if ext["n_unlabelled"] else ""),
            f"patients with each modality: {cov}",
            *imputed,
            *ext["warnings"],
        ]
    )


def build_report(ev: RunEvaluation) -> Report:
    """The report of one run (also rendered as ``summary.md``)."""
    run, p = ev.run, ev.run.predictions
    if run.external is not None:
        train = run.external.get("run", {})
        report = Report(
            f"healnet external validation: {train.get('name', run.name)}",
            f"external validation of run {train.get('name')} (model {run.model_name}, modalities "
            f"{', '.join(run.modalities) or '?'}) on {p['patient_id'].nunique()} patients, {int(p['event'].sum())} "
            "events · "
            f"times in {run.time_unit}",
        )
        _external_section(report, run)
        return _report_body(report, ev)
    report = Report(
        f"healnet evaluation: {run.name}",
        f"model {run.model_name} · modalities {', '.join(run.modalities) or '?'} · {p['patient_id'].nunique()} "
        "patients, "
        f"{int(p['event'].sum())} events · {len(run.folds)} folds · times in {run.time_unit}",
    )
    return _report_body(report, ev)


def _data_section(report: Report, ev: RunEvaluation) -> None:
    """Patients per modality pattern and the training settings."""
    patterns = modality_patterns(ev.run)
    info = training_settings(ev.run)
    if not patterns and not info:
        return
    report.heading("Data and training")
    if patterns:
        total = sum(patterns.values())
        report.table(
            ["modalities present", "patients", "share"],
            [[k, str(v), f"{100 * v / total:.0f}%"] for k, v in patterns.items()],
        )
    if info.get("settings"):
        report.table(["training setting", "value"], settings_rows(info))
    report.bullets(early_stopping_text(info))


def _report_body(report: Report, ev: RunEvaluation) -> Report:
    if ev.failed:
        report.heading("Not computed")
        report.bullets([f"{g}: {why}" for g, why in ev.failed.items()])
    _data_section(report, ev)
    _metric_sections(report, ev)
    from healnet_cli.stages.evaluate.clinical import report_sections

    report_sections(report, ev.clinical_baseline, ev.adjusted_cox, ev.skipped)
    _group_sections(report, ev)
    _ablation_section(report, ev.ablation, ev.figures)
    _attention_section(report, ev.attention, ev.figures)
    report.heading("Conventions")
    report.bullets(
        [
            f"{k}: {v if not isinstance(v, list) else ', '.join(f'{x:.4g}' for x in v)}"
            for k, v in conventions(ev).items()
        ]
    )
    if ev.skipped:
        report.bullets([f"{g}: skipped ({why})" for g, why in ev.skipped.items()])
    return report


def console_table(ev: RunEvaluation) -> str:
    """The headline metrics as a plain-text table for the terminal / the job log: pooled value with
    its 95% CI (or why there is none) and, for a run's folds, mean ± sd over folds."""
    run, p = ev.run, ev.run.predictions
    what = "external cohort" if run.external is not None else f"pooled out-of-fold over {len(run.folds)} fold(s)"
    lines = [f"{run.name}: {p['patient_id'].nunique()} patients, {int(p['event'].sum())} events; {what}"]
    if ev.scores is None:
        return "\n".join(lines + [f"  metrics not computed: {ev.failed.get('metrics', 'see the report')}"])
    header = ["metric", "value (95% CI)"]
    rows = [[LABELS[m], ev.scores.pooled.values[m].text()] for m in METRICS]
    null = ev.scores.pooled.ibs_null
    if null is not None:
        rows.append([NULL_LABEL, null.text()])
    if run.external is None:
        header.append("mean ± sd over folds")
        across = {**ev.scores.across_folds(), "ibs_null_km": ev.scores.null_across_folds()}
        for row, m in zip(rows, [*METRICS, "ibs_null_km"], strict=False):
            row.append(_mean_sd(across[m]))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def headline(ev: RunEvaluation) -> dict[str, Any]:
    """Short summary for ``--json`` and the comparison table."""
    out: dict[str, Any] = {"run": ev.run.name, "path": str(ev.run.path), "failed": ev.failed}
    if ev.scores is not None:
        out["pooled"] = {m: ev.scores.pooled.values[m].value for m in METRICS}
        out["pooled_ci95"] = {m: _ci(ev.scores.pooled.values[m]) for m in METRICS}
        no_ci = {m: v.ci_reason for m, v in ev.scores.pooled.values.items() if v.ok and _ci(v) is None and v.ci_reason}
        if no_ci:
            out["pooled_ci_reason"] = no_ci
        if ev.run.external is None:
            out["across_folds"] = {m: {"mean": v["mean"], "sd": v["sd"]} for m, v in ev.scores.across_folds().items()}
        else:
            out["external"] = True
    return out


def _ci(v: MetricValue) -> list[float] | None:
    return [v.ci_low, v.ci_high] if v.ci_low is not None and v.ci_high is not None else None
