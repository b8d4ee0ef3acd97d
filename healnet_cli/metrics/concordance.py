"""Concordance indices (Harrell's and Uno's) with one sign convention: higher risk = earlier event.

One vectorised kernel, :func:`compute_weighted_concordance`, gives every value: Harrell's (unit
weights), Uno's (squared IPCW weights from the training patients' censoring distribution; pooled,
each patient weighted by its own fold's), and :func:`concordance_counts` the bootstrap replicates.
``tests/metrics`` checks it against scikit-survival's ``concordance_index_censored`` and
``concordance_index_ipcw``, ties included (evaluate itself imports no scikit-survival).
"""

from __future__ import annotations

import numpy as np

from healnet_cli.metrics.outcome import check_outcome, require_events
from healnet_cli.metrics.result import NotComputable

TIED_TOL = 1e-8


def compute_harrell(time: np.ndarray, event: np.ndarray, risk: np.ndarray, *, tied_tol: float = TIED_TOL) -> float:
    """Harrell's c-index (scikit-survival ``concordance_index_censored``).

    Parameters
    ----------
    time, event
        Observed times ``[n]`` and event flags ``[n]`` (True = event observed).
    risk
        Risk scores ``[n]``; higher means an earlier expected event. Tied risks count 0.5.

    Raises
    ------
    NotComputable
        Fewer than 2 patients, no events, or no comparable pairs.
    """
    return compute_weighted_concordance(time, event, risk, tied_tol=tied_tol)


def compute_uno(
    train_time: np.ndarray,
    train_event: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    *,
    tau: float,
    tied_tol: float = TIED_TOL,
) -> float:
    """Uno's IPCW c-index truncated at ``tau`` (scikit-survival ``concordance_index_ipcw``).

    The censoring distribution is the Kaplan–Meier estimate of the *training* patients' censoring
    times; only events before ``tau`` count.

    Raises
    ------
    NotComputable
        No events before ``tau``, ``tau`` beyond the training follow-up, no comparable pairs.
    """
    from healnet_cli.metrics.censoring import fit_censoring

    train_time, train_event = check_outcome(train_time, train_event)
    time, event = check_outcome(time, event)
    risk = _check_risk(risk, time)
    require_events(time, event)
    _check_tau(tau, time, event, train_time)
    weights = fit_censoring(train_time, train_event).ipcw_sq(time, event, tau=tau)
    return compute_weighted_concordance(time, event, risk, weights, tied_tol=tied_tol)


def compute_weighted_concordance(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    tied_tol: float = TIED_TOL,
) -> float:
    """Concordance with a weight per event patient (vectorised; O(n_events × n) memory).

    A pair (i, j) is comparable when i has an event and ``T_i < T_j``, or ``T_i == T_j`` with j
    censored. It is concordant when ``risk_i > risk_j`` and counts 0.5 when
    ``|risk_i − risk_j| <= tied_tol``. Each comparable pair is weighted by ``weights[i]``:
    ones give Harrell's index, ``1 / G(T_i)^2`` (0 for ``T_i >= tau``) gives Uno's.

    Raises
    ------
    NotComputable
        No events, or no comparable pair with a positive weight.
    """
    time, event = check_outcome(time, event)
    risk = _check_risk(risk, time)
    require_events(time, event)
    w = np.ones_like(time) if weights is None else np.asarray(weights, dtype=float)
    rows = np.flatnonzero(event & (w > 0))
    numerator = denominator = 0.0
    for start in range(0, rows.size, 512):
        i = rows[start : start + 512]
        t_i, r_i = time[i, None], risk[i, None]
        comparable = (time[None, :] > t_i) | ((time[None, :] == t_i) & ~event[None, :])
        concordant = np.count_nonzero(comparable & (risk[None, :] < r_i - tied_tol), axis=1)
        tied = np.count_nonzero(comparable & (np.abs(risk[None, :] - r_i) <= tied_tol), axis=1)
        numerator += float(w[i] @ (concordant + 0.5 * tied))
        denominator += float(w[i] @ np.count_nonzero(comparable, axis=1))
    if denominator <= 0:
        raise NotComputable("no comparable pairs (every event is at or after the last follow-up / τ)")
    return numerator / denominator


def concordance_counts(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    tied_tol: float = TIED_TOL,
) -> np.ndarray:
    """:func:`compute_weighted_concordance` of many resamples at once: ``counts[b, i]`` is how often
    patient i is in resample b; ``[b]`` values, NaN where a resample has no event or no comparable
    pair. Two copies of one patient are never a comparable pair (equal times, the first an event),
    so the weighted pair counts ``c_i c_j`` give exactly the index-based value."""
    time, event = check_outcome(time, event)
    risk = _check_risk(risk, time)
    c = np.asarray(counts, dtype=float)
    w = np.ones_like(time) if weights is None else np.asarray(weights, dtype=float)
    rows = np.flatnonzero(event & (w > 0))
    t_i, r_i = time[rows, None], risk[rows, None]
    comparable = (time[None, :] > t_i) | ((time[None, :] == t_i) & ~event[None, :])
    score = comparable * ((risk[None, :] < r_i - tied_tol) + 0.5 * (np.abs(risk[None, :] - r_i) <= tied_tol))
    cw = c[:, rows] * w[rows]
    numerator = np.einsum("bi,bi->b", cw @ score, c) if rows.size else np.zeros(c.shape[0])
    denominator = np.einsum("bi,bi->b", cw @ comparable.astype(float), c) if rows.size else np.zeros(c.shape[0])
    has_event = c[:, event].sum(axis=1) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(has_event & (denominator > 0), numerator / denominator, np.nan)


def _check_tau(tau: float, time: np.ndarray, event: np.ndarray, train_time: np.ndarray) -> None:
    if not np.isfinite(tau) or tau <= 0:
        raise NotComputable(f"truncation time τ={tau} is not a positive finite time")
    if not (event & (time < tau)).any():
        raise NotComputable(f"no events before τ={tau:g}")
    if tau > train_time.max():
        raise NotComputable(
            f"τ={tau:g} lies beyond the training patients' follow-up (max {train_time.max():g}); "
            "the censoring distribution is not estimable there"
        )


def _check_risk(risk: np.ndarray, time: np.ndarray) -> np.ndarray:
    risk = np.asarray(risk, dtype=float).reshape(-1)
    if risk.shape[0] != time.shape[0]:
        raise ValueError(f"risk has {risk.shape[0]} values for {time.shape[0]} patients")
    if not np.isfinite(risk).all():
        raise NotComputable(f"{int((~np.isfinite(risk)).sum())} risk score(s) are NaN or infinite")
    return risk
