"""Per-fold and pooled survival metrics of a run's out-of-fold predictions.

Each fold is scored on its test patients with the censoring distribution of its own training
patients; the pooled score concatenates the folds, each patient keeping its fold's censoring
weights (so pooled Uno / IBS / AUC use the same weights as the per-fold ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from healnet_cli.metrics import (
    MetricValue,
    NotComputable,
    bootstrap_ci_batched,
    censoring_at,
    clip_grid,
    compute_brier,
    compute_harrell,
    compute_ibs,
    compute_safely,
    compute_td_auc,
    compute_uno,
    compute_weighted_concordance,
    concordance_counts,
    default_grid,
    fit_censoring,
    ibs_counts,
    kaplan_meier,
    survival_at,
    td_auc_counts,
    too_few_for_ci,
)
from healnet_cli.stages.evaluate.run_folder import RunData

METRICS = ("harrell_c", "uno_c", "ibs", "mean_auc")
NULL_MODEL = (
    "Kaplan–Meier of the fold's training patients, the same curve for every test patient "
    "(an IBS below it means the model's survival curves are better than no model)"
)


@dataclass
class PatientSet:
    """Arrays of one scored set (a fold's test patients, or all folds pooled)."""

    time: np.ndarray
    event: np.ndarray
    risk: np.ndarray
    surv: np.ndarray  # [n, m] S(t) at the set's grid
    grid: np.ndarray
    g_event: np.ndarray  # G_fold(T_i)
    g_grid: np.ndarray  # [n, m] G_fold(t)
    uno_weights: np.ndarray  # 1 / G_fold(T_i)^2 for events before tau
    strata: list[np.ndarray] = field(default_factory=list)
    surv_null: np.ndarray | None = None  # [n, m] the null model's S(t): KM of the fold's training patients


@dataclass
class SetScores:
    """Metrics of one set plus the curves behind IBS and mean AUC."""

    n: int
    n_events: int
    values: dict[str, MetricValue]
    brier: dict[str, list[float]] = field(default_factory=dict)
    td_auc: dict[str, list[float]] = field(default_factory=dict)
    grid_note: str = ""
    ibs_null: MetricValue | None = None  # IBS of the null model (KM of the training patients), same grid and weights

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "n_events": self.n_events}
        out.update({k: v.as_dict() for k, v in self.values.items()})
        if self.ibs_null is not None:
            out["ibs_null_km"] = {**self.ibs_null.as_dict(), "model": NULL_MODEL}
        out["brier_curve"] = self.brier or None
        out["td_auc_curve"] = self.td_auc or None
        if self.grid_note:
            out["grid_note"] = self.grid_note
        return out


def truncation_time(run: RunData) -> float:
    """τ: the smallest, over folds, of the largest test follow-up, capped at each fold's largest
    training time (where the censoring distribution is defined)."""
    labels = run.labels
    taus = []
    for k in run.folds:
        test_max = run.predictions.loc[run.predictions["fold"] == k, "time"].max()
        train = labels.reindex(run.train_ids[k]).dropna()
        taus.append(min(float(test_max), float(train["time"].max())) if len(train) else float(test_max))
    return float(min(taus))


def evaluation_grid(run: RunData, times: list[float] | None) -> np.ndarray:
    """The requested times, or 20 evenly spaced times between the 10th and 90th percentile of the
    pooled event times."""
    if times:
        return np.unique(np.asarray(times, dtype=float))
    p = run.predictions
    return default_grid(p["time"].to_numpy(float), p["event"].to_numpy(bool))


def _fold_set(run: RunData, k: int, grid: np.ndarray, tau: float) -> tuple[PatientSet, str]:
    part = run.predictions[run.predictions["fold"] == k]
    time, event = part["time"].to_numpy(float), part["event"].to_numpy(bool)
    train = run.labels.reindex(run.train_ids[k]).dropna()
    cens = fit_censoring(train["time"].to_numpy(float), train["event"].to_numpy(bool))
    clipped = clip_grid(grid, time, cens.max_time)
    surv = survival_at(part[run.surv_columns()].to_numpy(float), run.bin_edges[k], clipped.times)
    g_event, g_grid = censoring_at(cens, time, clipped.times)
    try:
        uno_w = cens.ipcw_sq(time, event, tau=tau)
    except NotComputable:
        uno_w = np.zeros_like(time)
    risk = part["risk"].to_numpy(float)
    km_t, km_s = kaplan_meier(train["time"].to_numpy(float), train["event"].to_numpy(bool))
    null = km_s[np.searchsorted(km_t, clipped.times, side="right") - 1]
    ps = PatientSet(
        time,
        event,
        risk,
        surv,
        clipped.times,
        g_event,
        g_grid,
        uno_w,
        [np.arange(time.size)],
        np.broadcast_to(null, surv.shape).copy(),
    )
    return ps, clipped.note()


def _boot(value: MetricValue, stat: Callable[[np.ndarray], np.ndarray], ps: PatientSet, n_boot: int, seed: int) -> None:
    if not value.ok:
        return
    if n_boot > 0 and (why := too_few_for_ci(int(ps.time.size), int(ps.event.sum()))):
        value.ci_reason = why
        return
    res = bootstrap_ci_batched(stat, ps.strata, n_boot=n_boot, seed=seed)
    value.ci_low, value.ci_high, value.ci_reason = res.low, res.high, res.reason
    value.extra["bootstrap_valid"] = f"{res.n_valid}/{res.n_boot}"


def _batched_stats(ps: PatientSet) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The statistics of :func:`_stats` over many resamples at once (``counts [b, n]`` → ``[b]``):
    the same values, one vectorised call per chunk of resamples instead of one per resample."""
    return {
        "harrell_c": lambda c: concordance_counts(ps.time, ps.event, ps.risk, c),
        "uno_c": lambda c: concordance_counts(ps.time, ps.event, ps.risk, c, ps.uno_weights),
        "ibs": lambda c: ibs_counts(ps.time, ps.event, ps.surv, ps.grid, ps.g_event, ps.g_grid, c),
        "mean_auc": lambda c: td_auc_counts(ps.time, ps.event, ps.risk, ps.grid, ps.g_event, c),
    }


def _stats(ps: PatientSet) -> dict[str, Callable[[np.ndarray], float]]:
    """Each metric of a resample given as an index list (the reference of :func:`_batched_stats`)."""

    def harrell(i: np.ndarray) -> float:
        return compute_weighted_concordance(ps.time[i], ps.event[i], ps.risk[i])

    def uno(i: np.ndarray) -> float:
        return compute_weighted_concordance(ps.time[i], ps.event[i], ps.risk[i], ps.uno_weights[i])

    def ibs(i: np.ndarray) -> float:
        return compute_ibs(ps.time[i], ps.event[i], ps.surv[i], ps.grid, ps.g_event[i], ps.g_grid[i])

    def auc(i: np.ndarray) -> float:
        return compute_td_auc(ps.time[i], ps.event[i], ps.risk[i], ps.grid, ps.g_event[i])[2]

    return {"harrell_c": harrell, "uno_c": uno, "ibs": ibs, "mean_auc": auc}


def score_set(
    ps: PatientSet, uno_point: MetricValue, harrell_point: MetricValue, *, n_boot: int, seed: int
) -> SetScores:
    """All metrics of one set (point estimates from ``*_point`` for the c-indices) with CIs."""
    stats = _stats(ps)
    values = {
        "harrell_c": harrell_point,
        "uno_c": uno_point,
        "ibs": compute_safely("ibs", stats["ibs"], np.arange(ps.time.size)),
        "mean_auc": compute_safely("mean_auc", stats["mean_auc"], np.arange(ps.time.size)),
    }
    batched = _batched_stats(ps)
    for offset, name in enumerate(METRICS):
        _boot(values[name], batched[name], ps, n_boot, seed + offset)
    scores = SetScores(int(ps.time.size), int(ps.event.sum()), values)
    if ps.surv_null is not None:
        scores.ibs_null = compute_safely(
            "ibs_null_km", compute_ibs, ps.time, ps.event, ps.surv_null, ps.grid, ps.g_event, ps.g_grid
        )
    if ps.grid.size:
        try:
            bs = compute_brier(ps.time, ps.event, ps.surv, ps.grid, ps.g_event, ps.g_grid)
            scores.brier = {"times": ps.grid.tolist(), "score": bs.tolist()}
        except NotComputable:
            pass
        try:
            t, a, _ = compute_td_auc(ps.time, ps.event, ps.risk, ps.grid, ps.g_event)
            scores.td_auc = {"times": t.tolist(), "auc": a.tolist()}
        except NotComputable:
            pass
    if values["ibs"].ok:
        values["ibs"].extra["grid"] = [float(ps.grid[0]), float(ps.grid[-1]), int(ps.grid.size)]
    return scores


def _fold_scores(
    run: RunData, k: int, grid: np.ndarray, tau: float, n_boot: int, seed: int
) -> tuple[SetScores, PatientSet]:
    ps, note = _fold_set(run, k, grid, tau)
    train = run.labels.reindex(run.train_ids[k]).dropna()
    tt, te = train["time"].to_numpy(float), train["event"].to_numpy(bool)
    harrell = compute_safely("harrell_c", compute_harrell, ps.time, ps.event, ps.risk)
    uno = compute_safely("uno_c", compute_uno, tt, te, ps.time, ps.event, ps.risk, tau=tau)
    if uno.ok:
        uno.extra["tau"] = tau
    scores = score_set(ps, uno, harrell, n_boot=n_boot, seed=seed + 100 * k)
    scores.grid_note = note
    return scores, ps


def _pool(sets: list[PatientSet], grid: np.ndarray) -> PatientSet:
    """Concatenate fold sets on the grid times every fold could use."""
    common = grid
    for ps in sets:
        common = common[np.isin(common, ps.grid)]
    cols = [np.searchsorted(ps.grid, common) for ps in sets]
    sizes = np.cumsum([0] + [ps.time.size for ps in sets])
    # pooled when every set has one
    nulls = [ps.surv_null[:, c] for ps, c in zip(sets, cols, strict=True) if ps.surv_null is not None]
    return PatientSet(
        np.concatenate([ps.time for ps in sets]),
        np.concatenate([ps.event for ps in sets]),
        np.concatenate([ps.risk for ps in sets]),
        np.concatenate([ps.surv[:, c] for ps, c in zip(sets, cols, strict=True)]),
        common,
        np.concatenate([ps.g_event for ps in sets]),
        np.concatenate([ps.g_grid[:, c] for ps, c in zip(sets, cols, strict=True)]),
        np.concatenate([ps.uno_weights for ps in sets]),
        [np.arange(sizes[i], sizes[i + 1]) for i in range(len(sets))],
        np.concatenate(nulls) if len(nulls) == len(sets) else None,
    )


@dataclass
class RunScores:
    """Per-fold and pooled scores of a run."""

    folds: dict[int, SetScores]
    pooled: SetScores
    tau: float
    grid: np.ndarray

    def null_across_folds(self) -> dict[str, Any]:
        """Mean ± sd over folds of the null model's IBS."""
        vals = np.array(
            [s.ibs_null.value for s in self.folds.values() if s.ibs_null is not None and s.ibs_null.ok], float
        )
        return {
            "mean": float(vals.mean()) if vals.size else None,
            "sd": float(vals.std(ddof=0)) if vals.size else None,
            "n_folds": int(vals.size),
        }

    def across_folds(self) -> dict[str, dict[str, Any]]:
        """Mean ± sd (ddof=0, as the HEALNet paper) over the folds where a metric was computable."""
        out = {}
        for name in METRICS:
            vals = np.array([s.values[name].value for s in self.folds.values() if s.values[name].ok], dtype=float)
            na = {str(k): s.values[name].reason for k, s in self.folds.items() if not s.values[name].ok}
            out[name] = {
                "mean": float(vals.mean()) if vals.size else None,
                "sd": float(vals.std(ddof=0)) if vals.size else None,
                "n_folds": int(vals.size),
                **({"not_computable": na} if na else {}),
            }
        return out


def score_run(run: RunData, *, times: list[float] | None, n_boot: int, seed: int) -> RunScores:
    """Score every fold and the pooled out-of-fold predictions of ``run``."""
    tau = truncation_time(run)
    grid = evaluation_grid(run, times)
    folds, sets = {}, []
    for k in run.folds:
        try:
            folds[k], ps = _fold_scores(run, k, grid, tau, n_boot, seed)
        except NotComputable as exc:  # e.g. a fold with < 2 training patients
            part = run.predictions[run.predictions["fold"] == k]
            folds[k] = SetScores(
                len(part), int(part["event"].sum()), {m: MetricValue(m, None, str(exc)) for m in METRICS}
            )
            continue
        sets.append(ps)
    if not sets:
        raise NotComputable("no fold could be scored")
    pooled = _pool(sets, grid)
    harrell = compute_safely("harrell_c", compute_harrell, pooled.time, pooled.event, pooled.risk)
    uno = compute_safely(
        "uno_c", compute_weighted_concordance, pooled.time, pooled.event, pooled.risk, pooled.uno_weights
    )
    if uno.ok:
        uno.extra["tau"] = tau
    elif "comparable" in uno.reason:
        uno.reason = f"no events before τ={tau:g} with a comparable pair"
    pooled_scores = score_set(pooled, uno, harrell, n_boot=n_boot, seed=seed + 7)
    dropped = np.setdiff1d(grid, pooled.grid)
    if dropped.size:
        pooled_scores.grid_note = f"{dropped.size} time(s) outside some fold's follow-up dropped from the pooled grid"
    return RunScores(folds, pooled_scores, tau, grid)
