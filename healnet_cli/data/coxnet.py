"""Penalised Cox baseline (scikit-survival ``CoxnetSurvivalAnalysis``) on fold-preprocessed omics.

The input is the concatenation of the requested omics modalities after the fold's preprocessing
(absent modalities imputed with the training medians). The penalty strength ``alpha`` is chosen
on the fold's inner validation set (Harrell's c-index over the regularisation path, fitted on the
remaining training patients); the model is then refitted on all training patients at that alpha.
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


def fit_coxnet(
    x_fit: np.ndarray,
    t_fit: np.ndarray,
    e_fit: np.ndarray,
    x_val: np.ndarray,
    t_val: np.ndarray,
    e_val: np.ndarray,
    x_all: np.ndarray,
    t_all: np.ndarray,
    e_all: np.ndarray,
    hparams: dict[str, Any] | None = None,
) -> tuple[CoxnetModel, list[dict[str, float]]]:
    """Choose alpha on the inner validation set, refit on all training rows; return the model and
    the validation c-index per alpha (the path, for ``history.jsonl``)."""
    params = {**COXNET_DEFAULTS, **(hparams or {})}
    unknown = sorted(set(params) - set(COXNET_DEFAULTS) - {"alpha"})
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for coxnet; valid keys: {sorted([*COXNET_DEFAULTS, 'alpha'])}"
        )
    path: list[dict[str, float]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "alpha" in params:
            alpha = float(params["alpha"])
        else:
            est = _fit_path(params, x_fit, _surv_y(t_fit, e_fit))
            best, alpha = -np.inf, float(est.alphas_[-1])
            for j, a in enumerate(est.alphas_):
                c = compute_safely("harrell_c", compute_harrell, t_val, e_val, x_val @ est.coef_[:, j]).as_float
                path.append({"alpha": float(a), "val_cindex": c, "n_nonzero": int(np.count_nonzero(est.coef_[:, j]))})
                if np.isfinite(c) and c > best + 1e-9:
                    best, alpha = c, float(a)
        for _ in range(10):
            try:
                final = _estimator(params, alphas=[alpha]).fit(x_all, _surv_y(t_all, e_all))
                break
            except ArithmeticError:  # diverged on the full training set: a little more penalty
                alpha *= 2.0
        else:
            raise ArithmeticError(f"coxnet did not converge up to alpha={alpha}; pass --hparam alpha=<larger>")
    coef = np.asarray(final.coef_[:, -1], dtype=np.float64)
    times, cum = fit_breslow(x_all @ coef, t_all, e_all)
    return CoxnetModel(coef, alpha, times, cum, {k: v for k, v in params.items()}), path
