"""coxnet's inner cross-validation (alpha choice) and the numpy Cox model (cox-clinical, adjusted Cox table)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from healnet_cli.data import coxnet as cx
from healnet_cli.data.coxph import fit_coxph, partial_loglik


def _sparse_data(n: int = 240, p: int = 40, seed: int = 0):
    """Survival driven by features 0-2 only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    eta = x[:, :3] @ np.array([0.9, -0.7, 0.6])
    t = rng.exponential(np.exp(-eta)) + 0.01
    c = rng.exponential(2.0, size=n)
    return x, np.minimum(t, c), t <= c


def test_inner_folds_stratified_balanced_and_seeded() -> None:
    event = np.r_[np.ones(23, bool), np.zeros(14, bool)]
    folds = cx.inner_folds(event, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(37))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    ev = [int(event[f].sum()) for f in folds]
    assert max(ev) - min(ev) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(folds, cx.inner_folds(event, 5, seed=3), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(folds, cx.inner_folds(event, 5, seed=4), strict=True))


def test_choose_alpha_min_and_one_se_rule() -> None:
    alphas = np.array([1.0, 0.5, 0.25, 0.125])
    per_fold = np.array([[0.50, 0.62, 0.64, 0.62], [0.50, 0.60, 0.70, 0.60], [0.50, 0.62, 0.58, 0.58]])
    a_min, mean, se = cx.choose_alpha(alphas, per_fold, "cv-min", larger_is_better=True)
    assert a_min == 0.25 and mean[2] == pytest.approx(0.64)
    a_1se, _, _ = cx.choose_alpha(alphas, per_fold, "cv-1se", larger_is_better=True)
    assert a_1se == 0.5  # the largest alpha within one SE of the best mean
    assert mean[1] >= mean[2] - se[2] > mean[0]
    # deviance: smaller is better; a fold that cannot be scored at all is ignored
    dev = np.vstack([-per_fold, np.full(4, np.nan)])
    assert cx.choose_alpha(alphas, dev, "cv-min", larger_is_better=False)[0] == 0.25
    with pytest.raises(ArithmeticError, match="no alpha could be scored"):
        cx.choose_alpha(alphas, np.full((3, 4), np.nan), "cv-1se", larger_is_better=True)


@pytest.mark.parametrize("criterion", ["cindex", "deviance"])
def test_inner_cv_keeps_the_signal_features(criterion: str) -> None:
    x, t, e = _sparse_data()
    model, path = cx.fit_coxnet(x, t, e, {"criterion": criterion, "l1_ratio": 1.0}, seed=0)
    alphas = [r["alpha"] for r in path]
    assert len(path) == 50 and f"cv_{criterion}" in path[0]
    assert alphas[0] > model.alpha > alphas[-1]  # inside the path, not the null model nor the least penalised
    nonzero = set(np.flatnonzero(model.coef).tolist())
    assert {0, 1, 2} <= nonzero and len(nonzero) <= 10
    assert np.sign(model.coef[:3]).tolist() == [1.0, -1.0, 1.0]
    again, _ = cx.fit_coxnet(x, t, e, {"criterion": criterion, "l1_ratio": 1.0}, seed=0)
    assert again.alpha == model.alpha and np.array_equal(again.coef, model.coef)  # deterministic with the seed


def test_pure_noise_gets_a_heavily_penalised_model() -> None:
    x, t, e = _sparse_data(seed=1)
    x = x[:, 3:]  # the signal columns removed
    model, path = cx.fit_coxnet(x, t, e, {"criterion": "deviance"}, seed=0)
    assert np.count_nonzero(model.coef) <= 3 and model.alpha >= path[5]["alpha"]


def test_fixed_alpha_and_mid_path_skip_the_cross_validation() -> None:
    x, t, e = _sparse_data(n=120, p=10)
    fixed, path = cx.fit_coxnet(x, t, e, {"alpha": 0.05})
    assert fixed.alpha == 0.05 and path == []
    mid, path = cx.fit_coxnet(x, t, e, {"select": "mid-path"})
    assert mid.alpha == path[25]["alpha"] and "cv_cindex" not in path[0]


def test_cv_needs_two_events() -> None:
    x, t, _ = _sparse_data(n=30, p=5)
    e = np.zeros(30, bool)
    e[0] = True
    with pytest.raises(ValueError, match="at least 2"):
        cx.fit_coxnet(x, t, e, {})


def test_coxph_matches_sksurv_and_its_information_is_the_hessian() -> None:
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    x, t, e = _sparse_data(n=200, p=4, seed=2)
    t = np.round(t, 1) + 0.1  # ties
    fit = fit_coxph(x, t, e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CoxPHSurvivalAnalysis(ties="breslow").fit(x, Surv.from_arrays(e, t))
    assert fit.converged and np.allclose(fit.coef, ref.coef_, atol=1e-6)
    assert fit.loglik == pytest.approx(partial_loglik(x @ fit.coef, t, e))
    h = 1e-4
    num = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            di, dj = np.eye(4)[i] * h, np.eye(4)[j] * h
            f = lambda b: partial_loglik(x @ b, t, e)  # noqa: E731
            num[i, j] = (
                f(fit.coef + di + dj) - f(fit.coef + di - dj) - f(fit.coef - di + dj) + f(fit.coef - di - dj)
            ) / (4 * h * h)
    assert np.allclose(fit.information, -num, rtol=1e-3, atol=1e-3)
    shrunk = fit_coxph(x, t, e, ridge=50.0)
    assert np.linalg.norm(shrunk.coef) < np.linalg.norm(fit.coef)


def test_coxph_refuses_collinear_columns_without_ridge() -> None:
    x, t, e = _sparse_data(n=80, p=3)
    x = np.c_[x, x[:, 0]]
    with pytest.raises(ValueError, match="singular"):
        fit_coxph(x, t, e)
    assert fit_coxph(x, t, e, ridge=1.0).converged


def test_cox_clinical_fit_defaults_are_the_model_configs() -> None:
    """evaluate's clinical baseline calls `fit_cox_clinical` at its defaults (no model, no torch):
    they must be `cox-clinical`'s, or the baseline would differ from `train --model cox-clinical`."""
    import dataclasses
    import inspect

    from healnet_cli.data.coxph import fit_cox_clinical
    from healnet_cli.models.cox import CoxClinicalConfig

    params = inspect.signature(fit_cox_clinical).parameters
    config = CoxClinicalConfig()
    fields = {f.name for f in dataclasses.fields(config)}
    assert fields == {"ridge", "max_iter"}  # a new field needs passing through fit_cox_clinical too
    assert all(params[name].default == getattr(config, name) for name in fields)
