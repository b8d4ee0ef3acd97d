"""Brier / IBS / td-AUC against scikit-survival; the step-function survival; grid clipping."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.datasets import load_gbsg2, load_whas500
from sksurv.metrics import brier_score, cumulative_dynamic_auc, integrated_brier_score

from healnet_cli.metrics import (
    NotComputable,
    censoring_at,
    clip_grid,
    compute_brier,
    compute_ibs,
    compute_td_auc,
    default_grid,
    fit_censoring,
    survival_at,
)


def _case(loader):
    X, y = loader()
    e_name, t_name = y.dtype.names
    time, event = y[t_name].astype(float), y[e_name].astype(bool)
    risk = (X["age"].to_numpy(float) - 60.0) / 10.0
    train = np.arange(len(time)) % 4 != 0
    # scikit-survival refuses test times after the training follow-up (sksurv #478): keep it happy
    test = ~train & (time < time[train].max())
    return y, time, event, risk, train, test


def _surv(risk, grid, scale):
    return np.exp(-np.outer(np.exp(risk), grid) / scale)


@pytest.mark.parametrize("loader", [load_whas500, load_gbsg2])
def test_ibs_and_auc_match_sksurv(loader):
    y, time, event, risk, train, test = _case(loader)
    grid = clip_grid(default_grid(time[test], event[test]), time[test], time[train].max()).times
    surv = _surv(risk[test], grid, scale=np.median(time))
    g_event, g_grid = censoring_at(fit_censoring(time[train], event[train]), time[test], grid)

    _, expected_bs = brier_score(y[train], y[test], surv, grid)
    np.testing.assert_allclose(compute_brier(time[test], event[test], surv, grid, g_event, g_grid), expected_bs)
    expected_ibs = integrated_brier_score(y[train], y[test], surv, grid)
    assert compute_ibs(time[test], event[test], surv, grid, g_event, g_grid) == pytest.approx(expected_ibs, rel=1e-10)

    auc, mean_auc = cumulative_dynamic_auc(y[train], y[test], risk[test], grid)
    times, got, got_mean = compute_td_auc(time[test], event[test], risk[test], grid, g_event)
    np.testing.assert_allclose(times, grid)
    np.testing.assert_allclose(got, auc, rtol=1e-10)
    assert got_mean == pytest.approx(mean_auc, rel=1e-10)


def test_event_after_training_follow_up_is_accepted():
    time = np.array([1.0, 2.0, 3.0, 4.0, 9.0])
    event = np.array([True, True, False, True, True])
    model = fit_censoring(np.array([0.5, 1.5, 2.5, 5.0]), np.array([True, False, True, False]))
    grid = clip_grid(np.array([1.5, 2.5, 3.5]), time, model.max_time).times
    g_event, g_grid = censoring_at(model, time, grid)
    assert g_event[-1] == 0.0  # event at 9 > training max 5: never a case inside the grid
    _, auc, _ = compute_td_auc(time, event, -time, grid, g_event)
    np.testing.assert_allclose(auc, 1.0)


def test_survival_at_is_a_right_continuous_step():
    surv = np.array([[0.9, 0.6, 0.2], [0.8, 0.5, 0.1]])
    edges = np.array([0.0, 10.0, 20.0, np.inf])
    got = survival_at(surv, edges, np.array([0.0, 9.99, 10.0, 15.0, 20.0, 1e6]))
    np.testing.assert_allclose(got[0], [1.0, 1.0, 0.9, 0.9, 0.6, 0.6])
    np.testing.assert_allclose(got[1], [1.0, 1.0, 0.8, 0.8, 0.5, 0.5])
    with pytest.raises(ValueError, match="edges"):
        survival_at(surv, edges[:-1], np.array([1.0]))


def test_grid_outside_follow_up_is_clipped_then_not_computable():
    time = np.array([5.0, 6.0, 7.0, 8.0])
    event = np.array([True, True, False, True])
    grid = clip_grid(np.array([1.0, 2.0, 8.0, 50.0]), time, train_max_time=100.0)
    assert grid.times.size == 0
    assert "outside the follow-up [5, 8)" in grid.note()
    ones = np.ones(4)
    with pytest.raises(NotComputable, match=">= 2 time points"):
        compute_ibs(time, event, np.ones((4, 0)), grid.times, ones, np.ones((4, 0)))
    with pytest.raises(NotComputable, match="cases and controls"):
        compute_td_auc(time, event, -time, grid.times, ones)


def test_grid_respects_training_follow_up():
    grid = clip_grid(np.array([2.0, 4.0, 6.0]), np.array([1.0, 10.0]), train_max_time=5.0)
    np.testing.assert_allclose(grid.times, [2.0, 4.0])


def test_censoring_beyond_training_follow_up():
    cens = fit_censoring(np.array([1.0, 2.0, 3.0]), np.array([True, False, True]))
    with pytest.raises(NotComputable, match="training follow-up"):
        cens.survival(np.array([10.0]))
