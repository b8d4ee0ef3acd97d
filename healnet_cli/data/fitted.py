"""Models fitted in closed form, not trained by gradient descent: registry name -> fitter.

Such a model is registered in ``models/_registry.py`` like every network (so a run stores, loads and
predicts with it through the registry), and listed here with the function that fits it on one
fold. ``healnet train`` calls :func:`fit_model` for these names instead of the training loop.

Registering another one: a ``LinearCox`` subclass with its own ``name`` and config in
``models/cox.py`` (as ``cox-clinical``), its class in ``models/_registry.py``, and a :class:`Fitter`
here whose ``fit`` returns the model with its coefficients loaded.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from healnet_cli.models import ModalitySpec, SurvivalModel, create_model


@dataclass
class FitInputs:
    """One fold's design matrices (fold-preprocessed, absent modalities = training medians).

    ``fit``: training patients minus the inner validation set; ``val``: the inner validation set
    (may be empty); ``all``: every training patient of the fold. ``present_all``: per row of ``all``,
    whether the patient has every modality of the model (None: all have); ``seed``: seeds any
    inner resampling (the run's ``--seed`` and the fold).
    """

    x_fit: np.ndarray
    t_fit: np.ndarray
    e_fit: np.ndarray
    x_val: np.ndarray
    t_val: np.ndarray
    e_val: np.ndarray
    x_all: np.ndarray
    t_all: np.ndarray
    e_all: np.ndarray
    present_all: np.ndarray | None = None
    seed: int = 0


@dataclass
class FittedModel:
    """A fitted model, its Breslow baseline ``(times, cum_hazard)``, the fit's history rows and
    what the refit rule needs (``info``, e.g. the chosen penalty)."""

    model: SurvivalModel
    breslow: tuple[np.ndarray, np.ndarray]
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fitter:
    """``fit(specs, n_bins, impute, inputs, hparams) -> FittedModel``; ``refit_hparams(infos,
    hparams)`` gives the hyper-parameters of the model refitted on all patients from the folds'
    ``info`` dicts (``healnet train --refit-all``)."""

    fit: Callable[[dict[str, ModalitySpec], int, np.ndarray, FitInputs, dict[str, Any]], FittedModel]
    refit_hparams: Callable[[Sequence[Mapping[str, Any]], dict[str, Any]], dict[str, Any]]
    refit_rule: str


def _fit_coxnet(
    specs: dict[str, ModalitySpec], n_bins: int, impute: np.ndarray, d: FitInputs, hparams: dict[str, Any]
) -> FittedModel:
    from healnet_cli.data.coxnet import fit_coxnet
    from healnet_cli.models.cox import LinearCox

    fit, path = fit_coxnet(d.x_all, d.t_all, d.e_all, hparams, seed=d.seed)
    model = cast(LinearCox, create_model("coxnet", specs, n_bins, **hparams))  # "coxnet" is a LinearCox
    model.load_fit(fit.coef, impute, fit.alpha)
    return FittedModel(model.eval(), (fit.times, fit.cum_hazard), path, {"alpha": float(fit.alpha)})


def _coxnet_refit(infos: Sequence[Mapping[str, Any]], hparams: dict[str, Any]) -> dict[str, Any]:
    alphas = [float(i["alpha"]) for i in infos if i.get("alpha") is not None]
    if "alpha" in hparams or not alphas:
        return dict(hparams)
    return {**hparams, "alpha": float(statistics.median(alphas))}


def _fit_cox_clinical(
    specs: dict[str, ModalitySpec], n_bins: int, impute: np.ndarray, d: FitInputs, hparams: dict[str, Any]
) -> FittedModel:
    """Cox on the clinical covariates, fitted on the training patients that have them (absent ones
    would only add copies of the median patient); the Breslow baseline uses the same patients."""
    from healnet_cli.data.coxph import fit_cox_clinical
    from healnet_cli.data.survival import fit_breslow
    from healnet_cli.models.cox import CoxClinical

    model = cast(CoxClinical, create_model("cox-clinical", specs, n_bins, **hparams))
    cfg = model.config
    fit, keep = fit_cox_clinical(
        d.x_all, d.t_all, d.e_all, d.present_all, ridge=float(cfg.ridge), max_iter=int(cfg.max_iter)
    )
    x, t, e = d.x_all[keep], d.t_all[keep], d.e_all[keep]
    model.load_fit(fit.coef, impute, float(cfg.ridge))
    history = [
        {
            "iterations": fit.n_iter,
            "converged": fit.converged,
            "loglik": fit.loglik,
            "n_patients": int(keep.sum()),
            "n_events": int(e.sum()),
        }
    ]
    return FittedModel(
        model.eval(),
        fit_breslow(x @ fit.coef, t, e),
        history,
        {"ridge": float(cfg.ridge), "n_patients": int(keep.sum()), "converged": bool(fit.converged)},
    )


FITTERS: dict[str, Fitter] = {
    "coxnet": Fitter(_fit_coxnet, _coxnet_refit, "alpha = median of the folds' chosen alphas (no inner validation)"),
    "cox-clinical": Fitter(_fit_cox_clinical, lambda infos, hparams: dict(hparams), "the same ridge, all patients"),
}


def is_fitted(name: str) -> bool:
    """True for models fitted in closed form (no training loop, no seed ensemble)."""
    return name in FITTERS


def fit_model(
    name: str,
    specs: dict[str, ModalitySpec],
    n_bins: int,
    impute: np.ndarray,
    inputs: FitInputs,
    hparams: dict[str, Any],
) -> FittedModel:
    """Fit the closed-form model ``name`` on one fold."""
    return FITTERS[name].fit(specs, n_bins, impute, inputs, dict(hparams))
