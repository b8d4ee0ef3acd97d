"""Kaplan–Meier curves of risk groups (log-rank, numbers at risk) and calibration at chosen times,
computed on the pooled out-of-fold predictions (or on external predictions, whose groups are cut at
the training run's out-of-fold cut-offs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from healnet_cli.metrics import (
    NotComputable,
    calibration,
    kaplan_meier,
    logrank,
    numbers_at_risk,
    risk_groups,
    survival_at,
    survival_interpolated,
)
from healnet_cli.metrics.timedep import INTERPOLATION
from healnet_cli.stages.evaluate.run_folder import RunData

GROUP_NAMES = {2: ["low", "high"], 3: ["low", "intermediate", "high"]}
MAX_CALIBRATION_TIMES = 4


@dataclass
class RiskGroups:
    """KM curves of risk groups cut at quantiles of the pooled out-of-fold risk."""

    names: list[str]
    cutoffs: list[float]
    curves: list[tuple[list[float], list[float]]]
    sizes: list[int]
    events: list[int]
    at_times: list[float]
    at_risk: list[list[int]]
    chisq: float | None = None
    p_value: float | None = None
    reason: str = ""
    cutoff_source: str = "quantiles of the pooled out-of-fold risk"

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoffs": self.cutoffs,
            "cutoff_source": self.cutoff_source,
            "groups": [
                {"name": n, "n": s, "events": e, "at_risk": r}
                for n, s, e, r in zip(self.names, self.sizes, self.events, self.at_risk, strict=True)
            ],
            "at_times": self.at_times,
            "logrank": {"chisq": self.chisq, "p_value": self.p_value} if self.p_value is not None else None,
            **({"reason": self.reason} if self.reason else {}),
        }


def group_names(n_groups: int) -> list[str]:
    return GROUP_NAMES.get(n_groups, [f"Q{i + 1}" for i in range(n_groups)])


def tick_times(t_max: float, n: int = 5) -> list[float]:
    """Round tick times from 0 to ``t_max`` (for the numbers-at-risk table)."""
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, t_max)
    return [float(t) for t in ticks if 0 <= t <= t_max]


TRAINING_CUTOFFS = "the training run's cut-offs (quantiles of its pooled out-of-fold risk)"


def _groups(run: RunData, risk: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Group labels (0 = lowest risk), cut-offs and where they came from: external predictions use
    the training run's cut-offs (a patient on a cut-off goes to the lower group, as for quantiles)."""
    if run.external is None:
        labels, cuts = risk_groups(risk, n_groups)
        return labels, cuts, "quantiles of the pooled out-of-fold risk"
    recorded = run.risk_cutoffs.get(str(n_groups))
    if not recorded:
        raise NotComputable(f"the training run records no cut-offs for {n_groups} risk groups")
    cuts = np.asarray(recorded, dtype=float)
    return np.searchsorted(cuts, risk, side="left").astype(int), cuts, TRAINING_CUTOFFS


def km_risk_groups(run: RunData, n_groups: int) -> RiskGroups:
    """Split pooled out-of-fold risk into ``n_groups`` quantile groups (external predictions: at the
    training run's cut-offs); KM + log-rank per group."""
    p = run.predictions
    time, event, risk = p["time"].to_numpy(float), p["event"].to_numpy(bool), p["risk"].to_numpy(float)
    if time.size < 2 * n_groups:
        raise NotComputable(f"too few patients ({time.size}) for {n_groups} risk groups")
    labels, cuts, source = _groups(run, risk, n_groups)
    curves, sizes, events = [], [], []
    for g in range(n_groups):
        mask = labels == g
        if mask.any():
            t, s = kaplan_meier(time[mask], event[mask])
            curves.append((t.tolist(), s.tolist()))
        else:
            curves.append(([], []))
        sizes.append(int(mask.sum()))
        events.append(int(event[mask].sum()))
    at = tick_times(float(time.max()))
    nar = numbers_at_risk(time, labels, np.asarray(at))
    rows = {int(g): r for g, r in zip(np.unique(labels), nar.tolist(), strict=True)}
    groups = RiskGroups(
        group_names(n_groups),
        cuts.tolist(),
        curves,
        sizes,
        events,
        at,
        [rows.get(g, [0] * len(at)) for g in range(n_groups)],
        cutoff_source=source,
    )
    try:
        lr = logrank(time, event, labels)
        groups.chisq, groups.p_value = lr.chisq, lr.p_value
    except NotComputable as exc:
        groups.reason = str(exc)
    return groups


CALIBRATION_METHOD = (
    f"patients grouped by quartile of predicted S(t); predicted S(t) {INTERPOLATION}; "
    "observed: Kaplan–Meier of the group at t"
)


@dataclass
class Calibration:
    """Mean predicted vs Kaplan–Meier observed survival per predicted-survival quartile and time."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    method: str = CALIBRATION_METHOD

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "skipped": self.skipped or None, "method": self.method}


def calibration_times(run: RunData, times: list[float] | None) -> list[float]:
    """Requested times (at most 4, evenly spread over them), else the quartiles of the pooled event
    times."""
    if times:
        chosen = sorted({float(t) for t in times})
        if len(chosen) > MAX_CALIBRATION_TIMES:
            idx = np.linspace(0, len(chosen) - 1, MAX_CALIBRATION_TIMES).round().astype(int)
            chosen = [chosen[i] for i in idx]
        return chosen
    p = run.predictions
    ev = p.loc[p["event"], "time"].to_numpy(float)
    if ev.size == 0:
        return []
    return sorted({float(q) for q in np.percentile(ev, [25, 50, 75])})


def pooled_survival_at(run: RunData, times: list[float], *, interpolate: bool = True) -> np.ndarray:
    """``[n, len(times)]`` predicted S(t) of the pooled predictions (each fold's own bin edges),
    interpolated between the bin ends (``interpolate=False``: the step function)."""
    p = run.predictions
    out = np.empty((len(p), len(times)))
    cols = run.surv_columns()
    at = survival_interpolated if interpolate else survival_at
    for k in run.folds:
        mask = (p["fold"] == k).to_numpy()
        out[mask] = at(p.loc[mask, cols].to_numpy(float), run.bin_edges[k], np.asarray(times, float))
    return out


def calibrate(run: RunData, times: list[float] | None, *, n_groups: int = 4) -> Calibration:
    """Calibration rows at the calibration times inside the pooled follow-up."""
    p = run.predictions
    time, event = p["time"].to_numpy(float), p["event"].to_numpy(bool)
    at = calibration_times(run, times)
    result = Calibration()
    if not at:
        result.skipped["all"] = "no events: no calibration times"
        return result
    surv = pooled_survival_at(run, at)
    for j, t in enumerate(at):
        if not (time.min() <= t < time.max()):
            result.skipped[f"{t:g}"] = f"outside the follow-up [{time.min():g}, {time.max():g})"
            continue
        try:
            rows = calibration(time, event, surv[:, j], t, n_groups=n_groups)
        except NotComputable as exc:
            result.skipped[f"{t:g}"] = str(exc)
            continue
        result.rows += [
            {"time": r.time, "group": r.group, "n": r.n, "predicted": r.predicted, "observed": r.observed} for r in rows
        ]
    return result
