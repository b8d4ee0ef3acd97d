"""Cox proportional-hazards pieces in numpy: the Breslow partial log-likelihood and a Newton fit.

* :func:`partial_loglik` evaluates the partial log-likelihood (Breslow ties) of many linear
  predictors at once; the coxnet inner cross-validation scores its regularisation path with it.
* :func:`fit_coxph` maximises ``loglik(beta) - ridge / 2 * ||beta||^2`` by Newton-Raphson with step
  halving and returns the coefficients with the observed information matrix (minus the Hessian of
  the penalised log-likelihood at the optimum), from which Wald standard errors follow. ``cox-clinical``
  and the adjusted Cox table of ``healnet evaluate`` use it.
* :func:`fit_cox_clinical` is ``cox-clinical``'s fit, shared by
  ``healnet train`` (which wraps the coefficients in a model) and the clinical baseline of
  ``healnet evaluate`` (which needs no torch for it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _risk_set_ends(time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order by decreasing time and, per sorted row, the last sorted position whose time is >= its
    time (ties share one risk set: every patient still at risk at that time)."""
    order = np.argsort(-time, kind="stable")
    t = time[order]
    # for descending t, the risk set of row i is rows 0..end[i], end = last index with t >= t[i]
    end = np.searchsorted(-t, -t, side="right") - 1
    return order, end


def partial_loglik(eta: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Breslow partial log-likelihood of each column of ``eta`` (``[n]`` or ``[n, k]``)."""
    eta = np.asarray(eta, np.float64)
    squeeze = eta.ndim == 1
    eta = eta.reshape(len(eta), -1)
    time, event = np.asarray(time, np.float64), np.asarray(event, bool)
    if not event.any():
        out = np.zeros(eta.shape[1])
        return out[0] if squeeze else out
    order, end = _risk_set_ends(time)
    e = eta[order]
    shift = e.max(axis=0, keepdims=True)
    log_risk = np.log(np.cumsum(np.exp(e - shift), axis=0)[end]) + shift
    ev = event[order]
    out = (e[ev] - log_risk[ev]).sum(axis=0)
    return out[0] if squeeze else out


@dataclass
class CoxPHFit:
    """Coefficients, observed information of the penalised log-likelihood, log-likelihood at the
    optimum, iterations and whether Newton-Raphson converged."""

    coef: np.ndarray
    information: np.ndarray
    loglik: float
    n_iter: int
    converged: bool

    def std_err(self) -> np.ndarray:
        return np.sqrt(np.diag(np.linalg.inv(self.information)))


def _derivatives(x: np.ndarray, beta: np.ndarray, order: np.ndarray, end: np.ndarray, ev: np.ndarray):
    xs = x[order]
    eta = xs @ beta
    shift = eta.max()
    w = np.exp(eta - shift)
    s0 = np.cumsum(w)[end]
    s1 = np.cumsum(w[:, None] * xs, axis=0)[end]
    s2 = np.cumsum(w[:, None, None] * xs[:, :, None] * xs[:, None, :], axis=0)[end]
    mean = s1[ev] / s0[ev, None]
    loglik = float((eta[ev] - np.log(s0[ev]) - shift).sum())
    grad = (xs[ev] - mean).sum(axis=0)
    info = (s2[ev] / s0[ev, None, None] - mean[:, :, None] * mean[:, None, :]).sum(axis=0)
    return loglik, grad, info


def fit_coxph(
    x: np.ndarray, time: np.ndarray, event: np.ndarray, *, ridge: float = 0.0, max_iter: int = 50, tol: float = 1e-9
) -> CoxPHFit:
    """Newton-Raphson for the (ridge-penalised) Cox model; ``x`` should be roughly standardised.

    Raises
    ------
    ValueError
        No events, or a singular information matrix (collinear columns without a ridge).
    """
    x = np.asarray(x, np.float64)
    time, event = np.asarray(time, np.float64), np.asarray(event, bool)
    if not event.any():
        raise ValueError("no events: a Cox model cannot be fitted")
    order, end = _risk_set_ends(time)
    ev = event[order]
    beta = np.zeros(x.shape[1])
    pen = float(ridge)

    def objective(b: np.ndarray):
        ll, g, h = _derivatives(x, b, order, end, ev)
        return ll - 0.5 * pen * float(b @ b), g - pen * b, h + pen * np.eye(len(b)), ll

    obj, grad, info, ll = objective(beta)
    converged, it = False, 0
    while it < max_iter:
        it += 1
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError as exc:
            raise ValueError("singular information matrix (collinear or constant covariates)") from exc
        scale = 1.0
        while True:
            cand = beta + scale * step
            c_obj, c_grad, c_info, c_ll = objective(cand)
            if np.isfinite(c_obj) and c_obj >= obj - 1e-12:
                break
            scale /= 2.0
            if scale < 1e-8:
                c_obj = obj
                break
        if scale < 1e-8:
            break
        done = abs(c_obj - obj) <= tol * (abs(obj) + 1.0)
        beta, obj, grad, info, ll = cand, c_obj, c_grad, c_info, c_ll
        if done:
            converged = True
            break
    if np.linalg.matrix_rank(info) < info.shape[0]:
        raise ValueError("singular information matrix (collinear or constant covariates)")
    return CoxPHFit(beta, info, ll, it, converged)


def fit_cox_clinical(
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    present: np.ndarray | None,
    *,
    ridge: float = 1.0,
    max_iter: int = 50,
) -> tuple[CoxPHFit, np.ndarray]:
    """``cox-clinical``'s fit on the training patients that have clinical data (absent ones would
    only add copies of the median patient); returns the fit and that mask. The defaults are those
    of ``models.cox.CoxClinicalConfig`` (a test checks that they agree), so that evaluate's clinical
    baseline needs no model (nor torch).

    Raises
    ------
    ValueError
        No events among those patients, or a singular information matrix.
    """
    keep = np.ones(len(time), bool) if present is None else np.asarray(present, bool)
    t, e = np.asarray(time, np.float64)[keep], np.asarray(event, bool)[keep]
    if not e.any():
        raise ValueError("cox-clinical: no events among the fold's training patients with clinical data")
    fit = fit_coxph(np.asarray(x, np.float64)[keep], t, e, ridge=float(ridge), max_iter=int(max_iter))
    return fit, keep
