"""Survival targets and outputs: time bins, hazards → survival, risk, Breslow baseline.

Bins (``fit_bin_edges``): the inner cut points are quantiles of the **uncensored training** times
(``n_bins - 1`` of them, at ``1/n .. (n-1)/n``); the recorded outer edges are 0 and the largest
training follow-up time. For assignment the last bin is open-ended (a time beyond the last edge
falls in the last bin) and a time equal to a cut point belongs to the later bin. ``surv_j`` is
``S`` at the end of bin ``j`` (``edges[j + 1]``).
"""

from __future__ import annotations

import numpy as np


def fit_bin_edges(time: np.ndarray, event: np.ndarray, n_bins: int) -> list[float]:
    """Bin edges ``[0, c_1, ..., c_{n-1}, t_max]`` from training times and events only."""
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    source = time[event] if event.sum() >= n_bins else time
    cuts = np.quantile(source, np.arange(1, n_bins) / n_bins) if n_bins > 1 else np.array([])
    t_max = float(time.max())
    cuts = np.maximum.accumulate(cuts)
    return [0.0, *[float(c) for c in cuts], t_max]


def assign_bins(time: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index per time (``int64``); times past the last edge go to the last bin."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.searchsorted(inner, np.asarray(time, dtype=np.float64), side="right").astype(np.int64)


def survival_from_logits(logits: np.ndarray) -> np.ndarray:
    """``S`` at the end of each bin: ``cumprod(1 - sigmoid(logits))``, ``[n, bins]``."""
    log_s = np.cumsum(-np.logaddexp(0.0, np.asarray(logits, dtype=np.float64)), axis=1)
    return np.exp(log_s)


def risk_from_survival(surv: np.ndarray) -> np.ndarray:
    """Risk (higher = worse): ``-Σ_j S_j`` (SurvPath / HEALNet convention)."""
    return -np.asarray(surv).sum(axis=1)


def fit_breslow(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow cumulative baseline hazard ``H0`` at the unique event times of the training set."""
    risk = np.asarray(risk, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    shift = risk.max() if len(risk) else 0.0
    w = np.exp(risk - shift)
    times = np.unique(time[event])
    increments = []
    for t in times:
        at_risk = w[time >= t].sum()
        increments.append(event[time == t].sum() / at_risk * np.exp(-shift) if at_risk > 0 else 0.0)
    return times, np.cumsum(increments)


def breslow_survival(risk: np.ndarray, times: np.ndarray, cum_hazard: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``S(t) = exp(-H0(t) exp(risk))`` at the times ``at``, ``[n, len(at)]``."""
    idx = np.searchsorted(np.asarray(times), np.asarray(at, dtype=np.float64), side="right") - 1
    h0 = np.where(idx >= 0, np.asarray(cum_hazard)[np.clip(idx, 0, None)] if len(cum_hazard) else 0.0, 0.0)
    return np.exp(-np.outer(np.exp(np.asarray(risk, dtype=np.float64)), h0))
