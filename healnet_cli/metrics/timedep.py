"""Time-dependent metrics: survival at times from per-bin curves, time grids inside the follow-up,
Brier score / integrated Brier score and cumulative/dynamic AUC.

The kernels take each patient's censoring survival explicitly (``g_event`` = G(T_i), ``g_grid`` =
G(t) per grid time, from :func:`censoring_at`). With one censoring distribution for everyone they
are scikit-survival's ``brier_score`` / ``integrated_brier_score`` / ``cumulative_dynamic_auc``
(tested to 1e-10); they also pool folds (each patient weighted by its own fold's training
censoring) and accept an event after the training follow-up, which scikit-survival refuses
(sksurv #478/#511) although such an event is never a case at a grid time inside that follow-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.censoring import CensoringModel
from healnet_cli.metrics.km import kaplan_meier_curve
from healnet_cli.metrics.outcome import check_outcome, require_events
from healnet_cli.metrics.result import NotComputable

TIED_TOL = 1e-8


def survival_at(surv_bins: np.ndarray, bin_edges: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Predicted survival at ``times`` from per-bin curves, as a right-continuous step function.

    ``surv_bins[:, j]`` is S at the *end* of bin j (edge ``j+1``). S(t) = 1 before the first bin end
    and ``surv_bins[:, j]`` for ``edges[j+1] <= t < edges[j+2]``.

    Parameters
    ----------
    surv_bins
        ``[n, B]`` survival probabilities.
    bin_edges
        ``[B+1]`` increasing edges, the first 0 (the last may be ``inf``).
    times
        ``[m]`` times.

    Returns
    -------
    np.ndarray
        ``[n, m]`` survival probabilities.
    """
    padded, edges = _from_start(surv_bins, bin_edges)
    ends = np.searchsorted(edges[1:], np.asarray(times, dtype=float), side="right")
    return padded[:, ends]


def _from_start(surv_bins: np.ndarray, bin_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[n, B+1]`` survival with S(0) = 1 prepended, and the checked ``[B+1]`` edges."""
    surv = np.asarray(surv_bins, dtype=float)
    edges = np.asarray(bin_edges, dtype=float)
    if surv.ndim != 2 or edges.shape[0] != surv.shape[1] + 1:
        raise ValueError(f"{surv.shape[-1]} survival bins need {surv.shape[-1] + 1} edges, got {edges.shape[0]}")
    return np.concatenate([np.ones((surv.shape[0], 1)), surv], axis=1), edges


INTERPOLATION = (
    "log-linear between the model's bin ends (a constant hazard within each bin), from S(0) = 1; "
    "held at the last finite bin end"
)


def survival_interpolated(surv_bins: np.ndarray, bin_edges: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Predicted survival at ``times`` interpolated between the bin ends (:data:`INTERPOLATION`).

    The step function of :func:`survival_at` is 1 until the first bin end, so at a time inside the
    first bin every patient has S = 1 whatever the model said; this one passes through the same
    values at the bin ends (``surv_bins[:, j]`` at ``edges[j+1]``) and, in between, spreads each
    bin's hazard evenly over the bin. An infinite last edge ends the curve at the last finite one.

    Returns
    -------
    np.ndarray
        ``[n, m]`` survival probabilities.
    """
    padded, edges = _from_start(surv_bins, bin_edges)
    knots = np.concatenate([[0.0], edges[1:]])
    log_s = np.log(np.clip(padded, 1e-12, 1.0))
    finite = np.isfinite(knots)
    knots, log_s = knots[finite], log_s[:, finite]
    t = np.clip(np.asarray(times, dtype=float), knots[0], knots[-1])
    j = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, knots.size - 2)
    frac = (t - knots[j]) / (knots[j + 1] - knots[j])
    return np.exp(log_s[:, j] * (1.0 - frac) + log_s[:, j + 1] * frac)


@dataclass
class Grid:
    """Time points kept for one fold, and why others were dropped."""

    times: np.ndarray
    dropped: list[float]
    interval: tuple[float, float]

    def note(self) -> str:
        lo, hi = self.interval
        if not self.dropped:
            return ""
        return f"{len(self.dropped)} time(s) outside the follow-up [{lo:g}, {hi:g}) dropped"


def clip_grid(times: np.ndarray, test_time: np.ndarray, train_max_time: float | None = None) -> Grid:
    """Keep the times inside ``[min test time, max test time)`` (and ``<=`` the training follow-up,
    where the censoring distribution is defined): scikit-survival's rule, applied instead of failing."""
    t = np.unique(np.asarray(times, dtype=float))
    lo, hi = float(np.min(test_time)), float(np.max(test_time))
    keep = (t >= lo) & (t < hi)
    if train_max_time is not None:
        keep &= t <= train_max_time
        hi = min(hi, float(train_max_time))
    return Grid(t[keep], [float(x) for x in t[~keep]], (lo, hi))


def default_grid(time: np.ndarray, event: np.ndarray, *, n_times: int = 20) -> np.ndarray:
    """``n_times`` evenly spaced times between the 10th and 90th percentile of the event times."""
    time, event = check_outcome(time, event)
    source = time[event] if event.sum() >= 2 else time
    lo, hi = np.percentile(source, [10, 90])
    if hi <= lo:
        return np.array([float(lo)])
    return np.linspace(lo, hi, n_times)


def censoring_at(model: CensoringModel, time: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(g_event [n], g_grid [n, m])`` for patients sharing the censoring ``model``.

    Raises
    ------
    NotComputable
        A grid time beyond the training follow-up.
    """
    time = np.asarray(time, dtype=float)
    g_grid = np.broadcast_to(model.survival(np.asarray(grid, dtype=float)), (time.size, np.size(grid)))
    return model.survival_within(time), np.array(g_grid)


def _usable_auc_times(time: np.ndarray, event: np.ndarray, grid: np.ndarray) -> np.ndarray:
    cases = ((time[:, None] <= grid[None, :]) & event[:, None]).any(axis=0)
    controls = (time[:, None] > grid[None, :]).any(axis=0)
    return grid[cases & controls]


def compute_brier(
    time: np.ndarray,
    event: np.ndarray,
    surv_at_grid: np.ndarray,
    grid: np.ndarray,
    g_event: np.ndarray,
    g_grid: np.ndarray,
) -> np.ndarray:
    """IPCW Brier score with per-patient censoring survival; ``[m]`` scores.

    ``g_event[i]`` = G_{fold(i)}(T_i), ``g_grid[i, k]`` = G_{fold(i)}(grid[k]); zeros give weight 0.
    """
    time, event = check_outcome(time, event)
    grid = np.asarray(grid, dtype=float)
    if grid.size == 0:
        raise NotComputable("no time point inside the follow-up")
    s = np.asarray(surv_at_grid, dtype=float)
    inv_e = _safe_inverse(np.asarray(g_event, float))[:, None]
    inv_t = _safe_inverse(np.asarray(g_grid, float))
    case = (time[:, None] <= grid[None, :]) & event[:, None]
    control = time[:, None] > grid[None, :]
    return np.mean(np.square(s) * case * inv_e + np.square(1.0 - s) * control * inv_t, axis=0)


def compute_ibs(
    time: np.ndarray,
    event: np.ndarray,
    surv_at_grid: np.ndarray,
    grid: np.ndarray,
    g_event: np.ndarray,
    g_grid: np.ndarray,
) -> float:
    """Integrated :func:`compute_brier` over ``grid``."""
    grid = np.asarray(grid, dtype=float)
    if grid.size < 2:
        raise NotComputable(f"needs >= 2 time points inside the follow-up, got {grid.size}")
    bs = compute_brier(time, event, surv_at_grid, grid, g_event, g_grid)
    return float(np.trapezoid(bs, grid) / (grid[-1] - grid[0]))


def compute_td_auc(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    grid: np.ndarray,
    g_event: np.ndarray,
    *,
    tied_tol: float = TIED_TOL,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative/dynamic AUC with per-patient case weights ``1 / G_{fold(i)}(T_i)``."""
    time, event = check_outcome(time, event)
    require_events(time, event)
    risk = np.asarray(risk, dtype=float)
    usable = _usable_auc_times(time, event, np.asarray(grid, dtype=float))
    if usable.size == 0:
        raise NotComputable("no time point with both cases and controls inside the follow-up")
    w = _safe_inverse(np.asarray(g_event, float))
    auc = np.empty(usable.size)
    for k, t in enumerate(usable):
        case = (time <= t) & event
        controls = np.sort(risk[time > t])
        below = np.searchsorted(controls, risk[case] - tied_tol, side="left")  # r_j < r_i (not tied)
        tied = np.searchsorted(controls, risk[case] + tied_tol, side="right") - below
        weight = w[case].sum()
        if weight <= 0:
            raise NotComputable(f"no case with a positive censoring weight at t={t:g}")
        auc[k] = float(w[case] @ (below + 0.5 * tied)) / (weight * controls.size)
    if usable.size == 1:
        return usable, auc, float(auc[0])
    km = _km_at(time, event, usable)
    d = -np.diff(np.r_[1.0, km])
    return usable, auc, float((auc * d).sum() / (1.0 - km[-1]))


def ibs_counts(
    time: np.ndarray,
    event: np.ndarray,
    surv_at_grid: np.ndarray,
    grid: np.ndarray,
    g_event: np.ndarray,
    g_grid: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """:func:`compute_ibs` of many resamples (``counts[b, i]``: copies of patient i); ``[b]``."""
    time, event = check_outcome(time, event)
    grid = np.asarray(grid, dtype=float)
    c = np.asarray(counts, dtype=float)
    if grid.size < 2:
        return np.full(c.shape[0], np.nan)
    s = np.asarray(surv_at_grid, dtype=float)
    inv_e = _safe_inverse(np.asarray(g_event, float))[:, None]
    inv_t = _safe_inverse(np.asarray(g_grid, float))
    case = (time[:, None] <= grid[None, :]) & event[:, None]
    control = time[:, None] > grid[None, :]
    terms = np.square(s) * case * inv_e + np.square(1.0 - s) * control * inv_t  # [n, m]
    bs = (c @ terms) / c.sum(axis=1, keepdims=True)
    return np.trapezoid(bs, grid, axis=1) / (grid[-1] - grid[0])


def td_auc_counts(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    grid: np.ndarray,
    g_event: np.ndarray,
    counts: np.ndarray,
    *,
    tied_tol: float = TIED_TOL,
) -> np.ndarray:
    """The mean AUC of :func:`compute_td_auc` for many resamples at once; ``[b]``, NaN where a
    resample is not computable (no event, no usable time, a usable time without case weight).

    Per resample the usable times, the pair counts (controls below / tied with each case, by
    cumulative sums over the risk order) and the Kaplan–Meier weights are those of the resample
    itself, as when :func:`compute_td_auc` is called on its index list."""
    time, event = check_outcome(time, event)
    risk = np.asarray(risk, dtype=float)
    grid = np.asarray(grid, dtype=float)
    c = np.asarray(counts, dtype=float)
    w = _safe_inverse(np.asarray(g_event, float))
    order = np.argsort(risk, kind="stable")
    sorted_risk = risk[order]
    lo = np.searchsorted(sorted_risk, risk - tied_tol, side="left")
    hi = np.searchsorted(sorted_risk, risk + tied_tol, side="right")
    km = _km_counts(time, event, c, grid)
    n_b = c.shape[0]
    valid = c[:, event].sum(axis=1) > 0
    prev, total, n_usable, first = np.ones(n_b), np.zeros(n_b), np.zeros(n_b, dtype=int), np.full(n_b, np.nan)
    for k, t in enumerate(grid):
        case, control = (time <= t) & event, time > t
        n_case, n_ctrl = c[:, case].sum(axis=1), c[:, control].sum(axis=1)
        usable = (n_case > 0) & (n_ctrl > 0)
        cum = np.concatenate([np.zeros((n_b, 1)), np.cumsum((c * control)[:, order], axis=1)], axis=1)
        pairs = cum[:, lo] + 0.5 * (cum[:, hi] - cum[:, lo])  # [b, n]: controls below + tied/2, per patient
        cw = c * w * case
        weight = cw.sum(axis=1)
        valid &= ~(usable & (weight <= 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = np.einsum("bi,bi->b", cw, pairs) / (weight * n_ctrl)
        first = np.where(usable & (n_usable == 0), auc, first)
        total += np.where(usable, auc * (prev - km[:, k]), 0.0)
        prev = np.where(usable, km[:, k], prev)
        n_usable += usable
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n_usable == 1, first, total / (1.0 - prev))
    return np.where(valid & (n_usable > 0) & np.isfinite(mean), mean, np.nan)


def _km_counts(time: np.ndarray, event: np.ndarray, counts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kaplan–Meier survival at ``at`` of each resample (patients weighted by their counts); ``[b, m]``."""
    u = np.unique(time)
    deaths = counts @ (event[:, None] & (time[:, None] == u[None, :])).astype(float)
    at_risk = counts @ (time[:, None] >= u[None, :]).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
    surv = np.cumprod(factor, axis=1)
    idx = np.searchsorted(u, np.asarray(at, dtype=float), side="right") - 1
    return np.where(idx[None, :] >= 0, surv[:, np.clip(idx, 0, None)], 1.0)


def _km_at(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kaplan–Meier survival of (time, event) at ``at`` (step function; 1 before the first time)."""
    t, s = kaplan_meier_curve(time, event)
    idx = np.searchsorted(t, at, side="right") - 1
    return np.where(idx >= 0, s[np.clip(idx, 0, None)], 1.0)


def _safe_inverse(g: np.ndarray) -> np.ndarray:
    out = np.zeros_like(g, dtype=float)
    np.divide(1.0, g, out=out, where=g > 0)
    return out
