"""Models fitted in closed form, not trained by gradient descent: registry name -> fitter.

Such a model is registered in ``models/_registry.py`` like every network (so a run stores, loads and
predicts with it through the registry), and listed here with the function that fits it on one
fold. ``healnet train`` calls :func:`fit_model` for these names instead of the training loop.

Registering another one (e.g. a Cox model on clinical covariates): a ``LinearCox`` subclass with
its own ``name`` and config in ``models/cox.py``, its class in ``models/_registry.py``, and a
:class:`Fitter` here whose ``fit`` returns the model with its coefficients loaded.
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
    (may be empty); ``all``: every training patient of the fold.
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

    fit, path = fit_coxnet(d.x_fit, d.t_fit, d.e_fit, d.x_val, d.t_val, d.e_val, d.x_all, d.t_all, d.e_all, hparams)
    model = cast(LinearCox, create_model("coxnet", specs, n_bins, **hparams))  # "coxnet" is a LinearCox
    model.load_fit(fit.coef, impute, fit.alpha)
    return FittedModel(model.eval(), (fit.times, fit.cum_hazard), path, {"alpha": float(fit.alpha)})


def _coxnet_refit(infos: Sequence[Mapping[str, Any]], hparams: dict[str, Any]) -> dict[str, Any]:
    alphas = [float(i["alpha"]) for i in infos if i.get("alpha") is not None]
    if "alpha" in hparams or not alphas:
        return dict(hparams)
    return {**hparams, "alpha": float(statistics.median(alphas))}


FITTERS: dict[str, Fitter] = {
    "coxnet": Fitter(_fit_coxnet, _coxnet_refit, "alpha = median of the folds' chosen alphas (no inner validation)"),
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
