"""Kaplan–Meier curves, risk groups, the log-rank test, numbers at risk and calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.outcome import check_outcome, to_structured
from healnet_cli.metrics.result import NotComputable


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate ``(times, survival)`` starting at ``(0, 1)`` (scikit-survival)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    time, event = check_outcome(time, event)
    if time.size == 0:
        raise NotComputable("no patients")
    t, s = kaplan_meier_estimator(event, time)
    return np.r_[0.0, t], np.r_[1.0, s]


def km_at(time: np.ndarray, event: np.ndarray, at: float) -> float:
    """Kaplan–Meier survival at ``at`` (step function)."""
    t, s = kaplan_meier(time, event)
    return float(s[np.searchsorted(t, at, side="right") - 1])


def risk_groups(risk: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Split patients into ``n_groups`` quantile groups of ``risk`` (0 = lowest risk).

    Returns the group label per patient and the ``n_groups − 1`` cut-offs. A patient on a cut-off
    goes to the lower group.
    """
    if n_groups < 2:
        raise ValueError(f"need at least 2 risk groups, got {n_groups}")
    risk = np.asarray(risk, dtype=float)
    cuts = np.quantile(risk, np.arange(1, n_groups) / n_groups)
    return np.searchsorted(cuts, risk, side="left").astype(int), cuts


def _km_within_follow_up(time: np.ndarray, event: np.ndarray, at: float) -> float | None:
    t, s = kaplan_meier(time, event)
    if at > t[-1] and s[-1] > 0:
        return None  # KM undefined after the last follow-up
    return float(s[np.searchsorted(t, at, side="right") - 1])


@dataclass
class LogRank:
    chisq: float
    p_value: float
    df: int


def logrank(time: np.ndarray, event: np.ndarray, groups: np.ndarray) -> LogRank:
    """Log-rank test of equal survival across groups (scikit-survival ``compare_survival``).

    Raises
    ------
    NotComputable
        Fewer than 2 non-empty groups or no events.
    """
    from sksurv.compare import compare_survival

    time, event = check_outcome(time, event)
    groups = np.asarray(groups)
    if np.unique(groups).size < 2:
        raise NotComputable("fewer than 2 non-empty risk groups (all risks tied?)")
    if not event.any():
        raise NotComputable("no events")
    chisq, p = compare_survival(to_structured(time, event), groups)
    return LogRank(float(chisq), float(p), int(np.unique(groups).size - 1))


def numbers_at_risk(time: np.ndarray, groups: np.ndarray, at_times: np.ndarray) -> np.ndarray:
    """``[n_groups, len(at_times)]`` counts of patients still at risk (time >= t) per sorted group."""
    time = np.asarray(time, dtype=float)
    labels = np.unique(groups)
    return np.array([[(time[groups == g] >= t).sum() for t in at_times] for g in labels], dtype=int)


@dataclass
class CalibrationRow:
    """One calibration group at one time: mean predicted vs Kaplan–Meier observed survival."""

    time: float
    group: int
    n: int
    predicted: float
    observed: float | None


def calibration(
    time: np.ndarray, event: np.ndarray, surv_at_t: np.ndarray, at: float, *, n_groups: int = 4
) -> list[CalibrationRow]:
    """Group patients into ``n_groups`` quantiles of predicted S(at); compare with KM in each.

    Raises
    ------
    NotComputable
        Too few patients for the groups.
    """
    time, event = check_outcome(time, event)
    pred = np.asarray(surv_at_t, dtype=float)
    n_groups = min(n_groups, time.size // 5)
    if n_groups < 1:
        raise NotComputable(f"too few patients ({time.size}) for calibration groups of >= 5")
    order = np.argsort(pred, kind="stable")
    rows = []
    for g, idx in enumerate(np.array_split(order, n_groups)):
        observed = _km_within_follow_up(time[idx], event[idx], at)
        rows.append(CalibrationRow(float(at), g, int(idx.size), float(pred[idx].mean()), observed))
    return rows
