"""Per-fold omics preprocessing and survival bins: fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from healnet_cli.data.preprocess import (
    BagScaler,
    OmicsPreprocess,
    fit_bag_scaler,
    fit_omics_preprocess,
    preprocess_from_dict,
)
from healnet_cli.data.survival import (
    assign_bins,
    breslow_survival,
    fit_bin_edges,
    fit_breslow,
    risk_from_survival,
    survival_from_logits,
)


def _frame(seed: int = 0, n: int = 30, f: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, f)), index=[f"P{i}" for i in range(n)], columns=[f"g{j}" for j in range(f)])


def test_state_depends_only_on_training_rows() -> None:
    frame = _frame()
    train, test = frame.index[:20], frame.index[20:]
    before = fit_omics_preprocess(frame.loc[train]).to_dict()
    changed = frame.copy()
    changed.loc[test] = 1e4  # wild test values
    after = fit_omics_preprocess(changed.loc[train]).to_dict()
    assert before == after
    # and the statistics equal those computed on the training rows by hand
    state = OmicsPreprocess.from_dict(before)
    x = np.clip(frame.loc[train].to_numpy(), state.lower, state.upper)
    np.testing.assert_allclose(state.mean, x.mean(axis=0))
    np.testing.assert_allclose(state.std, x.std(axis=0))


def test_outliers_are_winsorised_and_clipped() -> None:
    frame = _frame(n=400)
    frame.iloc[0, 0] = 1e4
    state = fit_omics_preprocess(frame, clip_sd=3.0)
    z = state.transform(frame)
    assert np.abs(z).max() <= 3.0 + 1e-6
    assert abs(state.mean[0]) < 0.5  # the outlier did not drag the mean
    probe = pd.DataFrame([[1e6] * 6], columns=frame.columns)
    assert np.all(state.transform(probe) <= 3.0 + 1e-6)


def test_missing_values_get_training_medians_and_constant_features_drop() -> None:
    frame = _frame()
    frame["const"] = 1.0
    frame.iloc[3, 1] = np.nan
    state = fit_omics_preprocess(frame)
    assert "const" not in state.kept
    row = frame.iloc[[3]].copy()
    z = state.transform(row)
    assert z[0, state.kept.index("g1")] == pytest.approx(state.median[state.kept.index("g1")])
    # a column missing from the table entirely is imputed too
    z2 = state.transform(row.drop(columns=["g2"]))
    assert z2[0, state.kept.index("g2")] == pytest.approx(state.median[state.kept.index("g2")])


def test_top_k_keeps_the_highest_variance_features() -> None:
    frame = _frame()
    frame["g4"] *= 10
    frame["g1"] *= 5
    state = fit_omics_preprocess(frame, top_k=2)
    assert state.kept == ["g1", "g4"]


def test_bins_come_from_uncensored_training_times_only() -> None:
    time = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 100, 200])
    event = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    edges = fit_bin_edges(time, event, 4)
    np.testing.assert_allclose(edges[1:-1], np.quantile(time[event], [0.25, 0.5, 0.75]))
    assert edges[0] == 0.0 and edges[-1] == 200.0
    moved = time.copy()
    moved[8] = 50.0  # a censored time changes: the cut points do not
    assert fit_bin_edges(moved, event, 4)[1:-1] == edges[1:-1]
    bins = assign_bins(np.array([0.1, edges[1], 1e6]), edges)
    assert bins.tolist() == [0, 1, 3]


def test_survival_and_risk_conventions() -> None:
    logits = np.array([[-5.0, -5.0], [5.0, 5.0]])
    surv = survival_from_logits(logits)
    assert np.all(np.diff(surv, axis=1) <= 0)
    risk = risk_from_survival(surv)
    assert risk[1] > risk[0]  # high hazards -> higher risk


def test_breslow_baseline() -> None:
    time = np.array([1.0, 2.0, 3.0])
    event = np.array([True, True, False])
    times, cum = fit_breslow(np.zeros(3), time, event)
    np.testing.assert_allclose(times, [1.0, 2.0])
    np.testing.assert_allclose(cum, [1 / 3, 1 / 3 + 1 / 2])
    s = breslow_survival(np.zeros(1), times, cum, np.array([0.5, 1.5, 10.0]))
    np.testing.assert_allclose(s[0], [1.0, np.exp(-1 / 3), np.exp(-(1 / 3 + 1 / 2))])


def test_bag_scaler_standardises_training_patches_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    bags = [rng.normal(1000.0, 3.0, size=(n, 4)) * [1, 2, 3, 0] for n in (5, 50, 17)]  # last dim constant
    scaler = fit_bag_scaler(bags)
    z = np.concatenate([scaler.transform(b) for b in bags])
    assert z.dtype == np.float32 and scaler.n_patches == 72
    np.testing.assert_allclose(z[:, :3].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, :3].std(axis=0), 1.0, atol=1e-4)
    assert scaler.std[3] == 1.0 and np.all(z[:, 3] == 0.0)
    back = preprocess_from_dict(scaler.to_dict())
    assert isinstance(back, BagScaler)
    np.testing.assert_array_equal(back.mean, scaler.mean)
    assert isinstance(
        preprocess_from_dict(fit_omics_preprocess(pd.DataFrame(rng.normal(size=(6, 3)))).to_dict()), OmicsPreprocess
    )


def test_bag_scaler_caps_patches_per_bag_and_ignores_empty_bags() -> None:
    rng = np.random.default_rng(1)
    big = rng.normal(size=(100, 3))
    scaler = fit_bag_scaler([big, np.zeros((0, 3)), rng.normal(size=(4, 3))], per_bag=10)
    assert scaler.n_patches == 14
    assert fit_bag_scaler([]) is None
