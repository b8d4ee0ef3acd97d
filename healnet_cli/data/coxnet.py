"""Penalised Cox baseline (scikit-survival ``CoxnetSurvivalAnalysis``) on fold-preprocessed omics.

The input is the concatenation of the requested omics modalities after the fold's preprocessing
(absent modalities imputed with the training medians). The penalty strength ``alpha`` is chosen
by an inner K-fold cross-validation on the fold's training patients (default 5 folds, stratified by
event, seeded): the regularisation path of all training patients gives the alpha grid, each inner
fold is scored by the grouped partial-likelihood deviance, and the alpha of the smallest mean
deviance is kept (glmnet ``cv.glmnet``'s defaults, ``lambda.min``; ``select=cv-1se`` and
``criterion=cindex`` are the alternatives). The model is then refitted on
all training patients at that alpha. The fold's early-stopping hold-out is not used.
Survival curves use a Breslow baseline fitted on the training risks.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from healnet_cli.data.survival import breslow_survival, fit_breslow
from healnet_cli.metrics import compute_harrell, compute_safely
from healnet_cli.models.cox import CoxnetConfig

# The fit settings and their defaults are the registered model's config (models/cox.py).
COXNET_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(CoxnetConfig) if f.name != "alpha"}


@dataclass
class CoxnetModel:
    """A fitted linear Cox model: ``risk = x @ coef``; ``H0`` on ``times`` (the fit's result; the
    run stores it as the registered ``coxnet`` model plus the fold's Breslow baseline)."""

    coef: np.ndarray
    alpha: float
    times: np.ndarray
    cum_hazard: np.ndarray
    hparams: dict[str, Any]

    def risk(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef

    def survival(self, x: np.ndarray, at: np.ndarray) -> np.ndarray:
        return breslow_survival(self.risk(x), self.times, self.cum_hazard, at)


def upgrade_legacy_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """A fold checkpoint of a run written before coxnet was a registered model (run schema 1,
    ``payload["model"] = {coef, alpha, breslow_times, breslow_cum_hazard, hparams}``) in today's
    form: the registry's ``{name, config, state_dict}``, the Breslow baseline beside it, loss cox."""
    old = payload["model"]
    mods = [str(m) for m in payload["modalities"]]
    dims = {m: len(payload["preprocess"][m]["kept"]) for m in mods}
    impute = np.concatenate([np.asarray(payload["preprocess"][m]["median"], np.float64) for m in mods])
    fields = {f.name for f in dataclasses.fields(CoxnetConfig)}
    model = {
        "name": "coxnet",
        "config": {
            "modalities": {m: {"kind": "vector", "dim": max(1, dims[m])} for m in mods},
            "n_bins": len(payload["bin_edges"]) - 1,
            "hparams": {k: v for k, v in dict(old.get("hparams", {})).items() if k in fields},
        },
        "state_dict": {
            "coef": old["coef"].to(torch.float64),
            "impute": torch.from_numpy(impute),
            "fitted_alpha": torch.tensor(float(old["alpha"]), dtype=torch.float64),
        },
    }
    breslow = {"times": old["breslow_times"], "cum_hazard": old["breslow_cum_hazard"]}
    return {**payload, "model": model, "breslow": breslow, "loss": "cox"}


def _surv_y(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(event, bool), time=np.asarray(time, float))


def _estimator(params: dict[str, Any], **extra: Any):
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    return CoxnetSurvivalAnalysis(
        l1_ratio=float(params["l1_ratio"]),
        n_alphas=int(params["n_alphas"]),
        alpha_min_ratio=float(params["alpha_min_ratio"]),
        max_iter=int(params["max_iter"]),
        **extra,
    )


def _fit_path(params: dict[str, Any], x: np.ndarray, y: np.ndarray):
    """The regularisation path; when glmnet's coordinate descent diverges at the smallest alphas
    (sksurv raises ArithmeticError), the path is shortened (alpha_min_ratio × 5, up to 3 times)."""
    ratio = float(params["alpha_min_ratio"])
    for attempt in range(4):
        try:
            return _estimator({**params, "alpha_min_ratio": ratio}).fit(x, y)
        except ArithmeticError:
            if attempt == 3:
                raise
            ratio = min(0.5, ratio * 5)
    raise AssertionError("unreachable")


def inner_folds(event: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` inner test folds over the rows, stratified by event status: the events, then the
    censored rows, each group shuffled (seeded), are dealt round-robin, so fold sizes and event
    counts differ by at most one."""
    rng = np.random.default_rng(seed)
    event = np.asarray(event, bool)
    order = np.concatenate([rng.permutation(np.flatnonzero(event)), rng.permutation(np.flatnonzero(~event))])
    assign = np.empty(len(event), dtype=np.int64)
    assign[order] = np.arange(len(event)) % k
    return [np.flatnonzero(assign == j) for j in range(k)]


def _path_on(params: dict[str, Any], alphas: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients ``[p, len(alphas)]`` along a fixed alpha grid; columns where glmnet's coordinate
    descent diverged (the smallest alphas) are NaN."""
    n = len(alphas)
    while n > 0:
        try:
            est = _estimator(params, alphas=list(alphas[:n])).fit(x, y)
        except ArithmeticError:
            n = int(n * 0.8)
            continue
        coef = np.full((x.shape[1], len(alphas)), np.nan)
        coef[:, : est.coef_.shape[1]] = est.coef_
        return coef
    return np.full((x.shape[1], len(alphas)), np.nan)


def cv_scores(
    params: dict[str, Any],
    alphas: np.ndarray,
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    folds: list[np.ndarray],
) -> dict[str, np.ndarray]:
    """Per inner fold (rows) and alpha (columns): ``deviance``, cv.glmnet's grouped Cox deviance
    (Verweij & van Houwelingen 1993) ``-2 (l(b_-k; all rows) - l(b_-k; rows outside k))`` per event
    of fold k, and ``cindex``, Harrell's c of ``x_k @ b_-k`` on fold k; ``b_-k`` is fitted without
    fold k. NaN where fold k's path diverged."""
    from healnet_cli.data.coxph import partial_loglik

    dev, cidx = [], []
    for test in folds:
        keep = np.ones(len(time), bool)
        keep[test] = False
        coef = _path_on(params, alphas, x[keep], _surv_y(time[keep], event[keep]))
        finite = np.all(np.isfinite(coef), axis=0)
        eta = x @ np.where(np.isfinite(coef), coef, 0.0)
        d = -2.0 * (partial_loglik(eta, time, event) - partial_loglik(eta[keep], time[keep], event[keep]))
        dev.append(np.where(finite, d / max(1, int(event[test].sum())), np.nan))
        c = [
            compute_safely("harrell_c", compute_harrell, time[test], event[test], eta[test, j]).as_float
            if finite[j]
            else np.nan
            for j in range(len(alphas))
        ]
        cidx.append(np.asarray(c, np.float64))
    return {"deviance": np.vstack(dev), "cindex": np.vstack(cidx)}


def choose_alpha(
    alphas: np.ndarray, per_fold: np.ndarray, rule: str, larger_is_better: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    """The alpha chosen from per-fold scores ``[k, n_alphas]``, with the mean and SE per alpha.

    ``cv-min``: the alpha of the best mean score; ``cv-1se``: the largest alpha whose mean is within
    one standard error of that best (glmnet's ``lambda.1se``). Alphas missing in any fold are skipped.
    """
    per_fold = per_fold[np.isfinite(per_fold).any(axis=1)]  # a fold that cannot be scored at all (e.g. one patient)
    ok = np.all(np.isfinite(per_fold), axis=0) if len(per_fold) else np.zeros(per_fold.shape[1], bool)
    if not ok.any():
        raise ArithmeticError(
            "coxnet: no alpha could be scored in every inner fold (diverged or too few patients); "
            "pass --hparam alpha=<value>"
        )
    mean = np.where(ok, np.nanmean(np.where(np.isfinite(per_fold), per_fold, 0.0), axis=0), np.nan)
    k = per_fold.shape[0]
    se = np.nanstd(per_fold, axis=0, ddof=1) / np.sqrt(k) if k > 1 else np.zeros(per_fold.shape[1])
    sign = 1.0 if larger_is_better else -1.0
    score = np.where(ok, sign * mean, -np.inf)
    best = int(np.argmax(score))
    if rule == "cv-min":
        return float(alphas[best]), mean, se
    within = np.flatnonzero(ok & (score >= score[best] - se[best]))
    return (
        float(alphas[within.min()]),
        mean,
        se,
    )  # alphas decrease along the path: the smallest index is the largest alpha


def fit_coxnet(
    x_all: np.ndarray, t_all: np.ndarray, e_all: np.ndarray, hparams: dict[str, Any] | None = None, seed: int = 0
) -> tuple[CoxnetModel, list[dict[str, float]]]:
    """Choose alpha on the training rows (inner cross-validation, or a fixed rule; see
    :class:`~healnet_cli.models.cox.CoxnetConfig`), refit on all of them at that alpha; return the
    model and the path (alpha, cross-validated deviance and its SE, non-zero coefficients) for
    ``history.jsonl``."""
    params = {**COXNET_DEFAULTS, **(hparams or {})}
    unknown = sorted(set(params) - set(COXNET_DEFAULTS) - {"alpha"})
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for coxnet; valid keys: {sorted([*COXNET_DEFAULTS, 'alpha'])}"
        )
    rule = str(params["select"])
    path: list[dict[str, float]] = []
    y_all = _surv_y(t_all, e_all)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if params.get("alpha") is not None:
            alpha = float(params["alpha"])
        else:
            est = _fit_path(params, x_all, y_all)
            alphas = np.asarray(est.alphas_, np.float64)
            nonzero = np.count_nonzero(est.coef_, axis=0)
            if rule == "mid-path":
                alpha = float(alphas[len(alphas) // 2])
                path = [{"alpha": float(a), "n_nonzero": int(z)} for a, z in zip(alphas, nonzero, strict=True)]
            else:
                k = min(int(params["inner_folds"]), int(np.asarray(e_all, bool).sum()))
                if k < 2:
                    raise ValueError(
                        f"coxnet: {int(np.sum(e_all))} event(s) among the training patients; inner "
                        "cross-validation needs at least 2 (pass --hparam alpha=<value>)"
                    )
                scores = cv_scores(
                    params,
                    alphas,
                    x_all,
                    np.asarray(t_all, float),
                    np.asarray(e_all, bool),
                    inner_folds(np.asarray(e_all, bool), k, seed),
                )
                crit = str(params["criterion"])
                alpha, mean, se = choose_alpha(alphas, scores[crit], rule, larger_is_better=crit == "cindex")
                other = "deviance" if crit == "cindex" else "cindex"
                other_mean = np.nanmean(scores[other], axis=0)
                path = [
                    {
                        "alpha": float(a),
                        f"cv_{crit}": float(m),
                        f"cv_{crit}_se": float(s),
                        f"cv_{other}": float(o),
                        "n_nonzero": int(z),
                    }
                    for a, m, s, o, z in zip(alphas, mean, se, other_mean, nonzero, strict=True)
                ]
        for _ in range(10):
            try:
                final = _estimator(params, alphas=[alpha]).fit(x_all, y_all)
                break
            except ArithmeticError:  # diverged on the full training set: a little more penalty
                alpha *= 2.0
        else:
            raise ArithmeticError(f"coxnet did not converge up to alpha={alpha}; pass --hparam alpha=<larger>")
    coef = np.asarray(final.coef_[:, -1], dtype=np.float64)
    times, cum = fit_breslow(x_all @ coef, t_all, e_all)
    return CoxnetModel(coef, alpha, times, cum, {k: v for k, v in params.items()}), path
