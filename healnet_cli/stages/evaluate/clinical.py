"""The clinical baseline beside a run and the adjusted (multivariable) Cox table.

Both read the workspace's ``omics/clinical.parquet`` (the run's ``--workdir``, or evaluate's
``--workdir``); without it they are skipped with the reason.

* **Clinical baseline**: for each fold of the run, ``cox-clinical`` (the registered model's fitter,
  ``healnet_cli.data.fitted``) is fitted on the fold's training patients (``splits.csv`` split != test,
  the run's own), with the fold's clinical preprocessing (winsorise, z-score, clip; fitted on those
  patients), and predicts the fold's test patients. A patient without clinical data gets the training
  medians, i.e. the risk of a median patient, as in ``cox-clinical`` itself. The out-of-fold baseline
  risks are scored on exactly the run's predicted patients: pooled Harrell c with a bootstrap CI
  resampled within folds, and a paired bootstrap of the run's c minus the baseline's.
* **Adjusted Cox table**: one Cox model (unpenalised, Newton-Raphson, Breslow ties) of the run's
  out-of-fold risk, standardised within each fold (so fold models on different scales are
  comparable), together with the clinical covariates on their own scale. Complete cases only;
  covariates missing for more than 20% of the run's patients, constant ones and ones linearly
  dependent on earlier columns (the last level of a one-hot group) are left out and listed. Hazard
  ratios per SD of the risk and per unit of each covariate, 95% Wald CIs and p-values from the
  observed information matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.artifacts.omics import CLINICAL
from healnet_cli.stages.evaluate.run_folder import RunData

MAX_MISSING = 0.2


def load_clinical(workdir: str | Path | None) -> tuple[pd.DataFrame | None, str]:
    """The workspace's clinical table (patients × covariates) or None with the reason."""
    from healnet_cli.artifacts.omics import modality_path, read_modality
    from healnet_cli.core.workspace import Workspace

    if workdir is None:
        return None, "the run records no --workdir (pass evaluate --workdir)"
    path = modality_path(Workspace.at(workdir).omics_dir, CLINICAL)
    if not path.exists():
        return None, f"no clinical data in the workspace ({path} not found)"
    frame, _ = read_modality(path)
    frame.index = frame.index.astype(str)
    return frame.astype(np.float64), ""


@dataclass
class ClinicalBaseline:
    """Out-of-fold cox-clinical risk on the run's patients and its comparison with the run."""

    risk: pd.Series  # index patient_id
    n_with_clinical: int
    c: float | None
    ci95: list[float | None] | None
    difference: dict[str, Any]
    columns: list[str]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": "cox-clinical",
            "harrell_c": self.c,
            "ci95": self.ci95,
            "n_patients": int(self.risk.size),
            "n_with_clinical": self.n_with_clinical,
            "covariates": self.columns,
            "run_minus_baseline": self.difference,
            "notes": self.notes,
        }


def baseline_risk(run: RunData, clinical: pd.DataFrame) -> pd.Series:
    """cox-clinical fitted per fold on the run's training patients; risk of the fold's test patients."""
    from healnet_cli.data.coxph import fit_cox_clinical
    from healnet_cli.data.preprocess import fit_omics_preprocess

    parts = []
    for k in run.folds:
        test = run.predictions.loc[run.predictions["fold"] == k, "patient_id"].astype(str).tolist()
        train = [p for p in run.train_ids[k] if p in run.labels.index]
        with_clin = [p for p in train if p in clinical.index]
        pre = fit_omics_preprocess(clinical.loc[with_clin])
        if not pre.kept:
            raise ValueError(f"fold {k}: no clinical covariate varies among the training patients")
        x = pre.transform(clinical.reindex(train)).astype(np.float64)
        lab = run.labels.loc[train]
        t, e = lab["time"].to_numpy(float), lab["event"].to_numpy(bool)
        present = np.isin(train, clinical.index)
        fit, _ = fit_cox_clinical(x, t, e, present)  # train's fit at its defaults, without torch
        parts.append(pd.Series(pre.transform(clinical.reindex(test)).astype(np.float64) @ fit.coef, index=test))
    return pd.concat(parts)


def clinical_baseline(run: RunData, clinical: pd.DataFrame, *, n_boot: int, seed: int) -> ClinicalBaseline:
    from healnet_cli.metrics import NotComputable, bootstrap_ci_batched, compute_harrell, concordance_counts
    from healnet_cli.stages.evaluate.compare import paired_harrell

    risk = baseline_risk(run, clinical)
    p = run.predictions.drop_duplicates("patient_id").set_index("patient_id")
    risk = risk.reindex(p.index)
    time, event, rb, ra = (
        p["time"].to_numpy(float),
        p["event"].to_numpy(bool),
        risk.to_numpy(float),
        p["risk"].to_numpy(float),
    )
    strata = [np.flatnonzero(p["fold"].to_numpy() == k) for k in run.folds]
    notes = []
    n_clin = int(np.isin(p.index, clinical.index).sum())
    if n_clin < len(p):
        notes.append(
            f"{len(p) - n_clin} of {len(p)} patients have no clinical data: the baseline gives them the "
            "training medians (a median patient's risk)"
        )
    try:
        c: float | None = compute_harrell(time, event, rb)
        boot = bootstrap_ci_batched(
            lambda counts: concordance_counts(time, event, rb, counts), strata, n_boot=n_boot, seed=seed + 11
        )
        ci = [boot.low, boot.high] if boot.low is not None else None
        if boot.reason:
            notes.append(f"baseline CI: {boot.reason}")
    except NotComputable as exc:
        c, ci = None, None
        notes.append(f"baseline c-index: {exc}")
    diff: dict[str, Any] = {"metric": "harrell_c", "n_shared": int(time.size)}
    try:
        diff.update(paired_harrell(time, event, ra, rb, n_boot=n_boot, seed=seed))
    except NotComputable as exc:
        diff.update({"difference": None, "p_value": None, "reason": str(exc)})
    return ClinicalBaseline(risk, n_clin, c, ci, diff, [str(c) for c in clinical.columns], notes)


@dataclass
class AdjustedCox:
    """Rows ``{term, unit, hr, ci95, p_value, coef, se}`` of the multivariable Cox model."""

    rows: list[dict[str, Any]]
    n_patients: int
    n_events: int
    left_out: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "n_patients": self.n_patients,
            "n_events": self.n_events,
            "left_out_covariates": self.left_out,
            "notes": self.notes,
            "method": "Cox PH (Breslow ties, unpenalised); Wald 95% CI and p from the observed information",
        }


def _independent(x: np.ndarray, names: list[str], left_out: dict[str, str]) -> list[int]:
    """Columns kept in order while each adds rank (after centring: a one-hot group's last level is
    the intercept's complement and is dropped)."""
    keep: list[int] = []
    xc = x - x.mean(axis=0)
    for j in range(x.shape[1]):
        if np.linalg.matrix_rank(xc[:, [*keep, j]], tol=1e-8 * max(1.0, float(np.abs(xc).max()))) > len(keep):
            keep.append(j)
        else:
            left_out[names[j]] = "linearly dependent on the covariates before it"
    return keep


def adjusted_cox(run: RunData, clinical: pd.DataFrame) -> AdjustedCox:
    from healnet_cli.data.coxph import fit_coxph

    p = run.predictions.drop_duplicates("patient_id").set_index("patient_id")
    risk = p["risk"].astype(float)
    z = risk.groupby(p["fold"]).transform(lambda r: (r - r.mean()) / r.std(ddof=0) if r.std(ddof=0) > 0 else r * 0.0)
    cov = clinical.reindex(p.index)
    left_out: dict[str, str] = {}
    cols = []
    for c in cov.columns:
        miss = float(cov[c].isna().mean())
        if miss > MAX_MISSING:
            left_out[str(c)] = f"missing for {miss:.0%} of the patients (> {MAX_MISSING:.0%})"
        elif cov[c].nunique(dropna=True) < 2:
            left_out[str(c)] = "constant"
        else:
            cols.append(c)
    frame = pd.concat([z.rename("risk"), cov[cols]], axis=1).dropna()
    x = frame.to_numpy(np.float64)
    names = ["risk", *[str(c) for c in cols]]
    keep = _independent(x, names, left_out)
    if 0 not in keep:
        raise ValueError("the run's out-of-fold risk is constant")
    x, names = x[:, keep], [names[j] for j in keep]
    time = p.loc[frame.index, "time"].to_numpy(float)
    event = p.loc[frame.index, "event"].to_numpy(bool)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    fit = fit_coxph((x - mean) / sd, time, event)
    se = fit.std_err()
    rows = []
    for j, name in enumerate(names):
        b, s = fit.coef[j] / sd[j], se[j] / sd[j]  # per unit of the covariate (risk: per SD)
        if name == "risk":
            b, s = fit.coef[j], se[j]
        pval = math.erfc(abs(b / s) / math.sqrt(2.0)) if s > 0 else None
        rows.append(
            {
                "term": "model risk (per SD)" if name == "risk" else name,
                "unit": "SD" if name == "risk" else "unit",
                "coef": float(b),
                "se": float(s),
                "hr": _exp(b),
                "ci95": [_exp(b - 1.959964 * s), _exp(b + 1.959964 * s)],
                "p_value": pval,
            }
        )
    notes = [] if fit.converged else ["Newton-Raphson did not converge: the estimates may be unstable (separation?)"]
    dropped = len(p) - len(frame)
    if dropped:
        notes.append(f"{dropped} patient(s) without complete clinical data left out")
    return AdjustedCox(rows, int(len(frame)), int(event.sum()), left_out, notes)


def _hr(value: float) -> str:
    return f"{value:.2f}" if 0.1 <= value < 100 else f"{value:.3g}"


def report_sections(
    report: Any, baseline: ClinicalBaseline | None, table: AdjustedCox | None, skipped: dict[str, str]
) -> None:
    """The report's "Clinical baseline" and "Adjusted Cox model" sections."""
    if baseline is None and table is None:
        if "clinical_baseline" in skipped:
            report.heading("Clinical baseline")
            report.text(f"Not computed: {skipped['clinical_baseline']}.")
        return
    if baseline is not None:
        report.heading("Clinical baseline")
        c = "n/a" if baseline.c is None else f"{baseline.c:.3f}"
        ci = f" ({baseline.ci95[0]:.3f}–{baseline.ci95[1]:.3f})" if baseline.ci95 else ""
        d = baseline.difference
        if d.get("difference") is not None and d.get("p_value") is not None:
            dci = f" ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})" if d.get("ci95") else ""
            vs = f"run − baseline {d['difference']:+.3f}{dci}, paired bootstrap p = {d['p_value']:.3g}"
        else:
            vs = f"run − baseline: n/a ({d.get('reason', '')})"
        report.text(
            f"clinical baseline: c = {c}{ci} — cox-clinical fitted on each fold's training patients, "
            f"scored on the run's {baseline.risk.size} patients; {vs}."
        )
        report.bullets([f"covariates: {', '.join(baseline.columns)}", *baseline.notes])
    if table is not None:
        report.heading("Adjusted Cox model", 3)
        report.text(
            f"Hazard ratio of the run's out-of-fold risk (standardised within each fold) adjusted for the "
            f"clinical covariates; {table.n_patients} patients, {table.n_events} events."
        )
        report.table(
            ["term", "hazard ratio (95% CI)", "p"],
            [
                [
                    r["term"],
                    f"{_hr(r['hr'])} ({_hr(r['ci95'][0])}–{_hr(r['ci95'][1])})",
                    "n/a" if r["p_value"] is None else f"{r['p_value']:.3g}",
                ]
                for r in table.rows
            ],
        )
        report.bullets([f"{k}: left out ({why})" for k, why in table.left_out.items()] + table.notes)


def evaluate_clinical(ev: Any, workdir: str | Path | None, *, n_boot: int, seed: int, group: Any) -> None:
    """Fill ``ev.clinical_baseline`` and ``ev.adjusted_cox`` (each through ``group(name, func)``, which
    records a failure), or record why they were skipped."""
    if ev.run.external is not None:
        ev.skipped["clinical_baseline"] = "not for external predictions (no training folds)"
        return
    clinical, why = load_clinical(workdir)
    if clinical is None:
        ev.skipped["clinical_baseline"] = why
        return
    ev.clinical_baseline = group(
        "clinical_baseline", lambda: clinical_baseline(ev.run, clinical, n_boot=n_boot, seed=seed)
    )
    ev.adjusted_cox = group("adjusted_cox", lambda: adjusted_cox(ev.run, clinical))


def _exp(value: float) -> float:
    """``exp(value)`` as a float; inf without a warning where it overflows (a separated fit's huge
    coefficient: written as null in metrics.json)."""
    with np.errstate(over="ignore"):
        return float(np.exp(value))
