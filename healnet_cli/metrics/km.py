"""Kaplan–Meier curves, risk groups, the log-rank test, numbers at risk and calibration.

Plain numpy (evaluate imports no scikit-survival); ``tests/metrics`` checks the curve, the reverse
(censoring) curve and the log-rank statistic against scikit-survival's ``kaplan_meier_estimator``
and ``compare_survival``, ties included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.outcome import check_outcome
from healnet_cli.metrics.result import NotComputable


def kaplan_meier_curve(time: np.ndarray, event: np.ndarray, *, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier survival at each distinct time (``[u]``, ``[u]``), or with ``reverse`` the
    censoring distribution G(t) = P(C > t): censorings are the "events", and the patients with an
    event at a time leave the risk set before the censorings at that time count (scikit-survival's
    convention)."""
    uniq, inverse = np.unique(np.asarray(time, dtype=float), return_inverse=True)
    total = np.bincount(inverse, minlength=uniq.size)
    deaths = np.bincount(inverse, weights=np.asarray(event, dtype=float), minlength=uniq.size)
    at_risk = time.shape[0] - np.r_[0, np.cumsum(total)[:-1]].astype(float)
    if reverse:
        at_risk, deaths = at_risk - deaths, total - deaths
    ratio = np.divide(deaths, at_risk, out=np.zeros(uniq.size), where=deaths != 0)
    return uniq, np.cumprod(1.0 - ratio)


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate ``(times, survival)`` starting at ``(0, 1)``."""
    time, event = check_outcome(time, event)
    if time.size == 0:
        raise NotComputable("no patients")
    t, s = kaplan_meier_curve(time, event)
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
    """Log-rank test of equal survival across groups (the statistic of scikit-survival's
    ``compare_survival``: observed − expected events of all groups but the last, with the
    hypergeometric covariance; χ² with ``groups − 1`` degrees of freedom).

    Raises
    ------
    NotComputable
        Fewer than 2 non-empty groups or no events.
    """
    time, event = check_outcome(time, event)
    labels, g = np.unique(np.asarray(groups), return_inverse=True)
    if labels.size < 2:
        raise NotComputable("fewer than 2 non-empty risk groups (all risks tied?)")
    if not event.any():
        raise NotComputable("no events")
    uniq, t = np.unique(time, return_inverse=True)
    k = labels.size
    deaths = np.zeros((uniq.size, k))
    np.add.at(deaths, (t, g), event.astype(float))
    leaving = np.zeros((uniq.size, k))
    np.add.at(leaving, (t, g), 1.0)
    at_risk = np.cumsum(leaving[::-1], axis=0)[::-1]  # per group, patients with time >= each time
    d, n = deaths.sum(axis=1), at_risk.sum(axis=1)
    use = d > 0
    d, n, deaths, at_risk = d[use], n[use], deaths[use], at_risk[use]
    observed_minus_expected = (deaths - at_risk * (d / n)[:, None]).sum(axis=0)
    m = np.divide(d * (n - d), n * (n - 1), out=np.zeros_like(d), where=n > 1)  # hypergeometric variance factor
    covar = np.diag(m @ at_risk) - np.einsum("t,ti,tj->ij", m / n, at_risk, at_risk)
    df = k - 1
    z = observed_minus_expected[:df]
    chisq = float(np.linalg.solve(covar[:df, :df], z) @ z)
    return LogRank(chisq, chi2_sf(chisq, df), df)


def chi2_sf(x: float, df: int) -> float:
    """P(χ²_df > x) for an integer ``df`` >= 1, in closed form (the regularised upper incomplete
    gamma function at half-integer and integer shapes)."""
    if x <= 0:
        return 1.0
    y = x / 2.0
    if df % 2 == 0:  # Q(m, y) = e^-y sum_{i<m} y^i / i!
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= y / i
            total += term
        return min(1.0, math.exp(-y) * total)
    total, term = math.erfc(math.sqrt(y)), math.sqrt(y) / math.gamma(1.5)  # Q(1/2, y), then y^(i-1/2)/Γ(i+1/2)
    for i in range(1, (df + 1) // 2):
        total += math.exp(-y) * term
        term *= y / (i + 0.5)
    return min(1.0, total)


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
