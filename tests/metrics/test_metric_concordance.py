"""Concordance: known cases, agreement with scikit-survival, NA reasons."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.datasets import load_gbsg2, load_whas500
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

from healnet_cli.metrics import (
    NotComputable,
    compute_harrell,
    compute_safely,
    compute_uno,
    compute_weighted_concordance,
    fit_censoring,
)

TIME = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
EVENT = np.array([True, True, False, True, True, False])


def _outcome(loader):
    X, y = loader()
    e_name, t_name = y.dtype.names
    return X, y[t_name].astype(float), y[e_name].astype(bool), y


@pytest.mark.parametrize(
    ("risk", "expected"),
    [(-TIME, 1.0), (TIME, 0.0), (np.zeros_like(TIME), 0.5)],
    ids=["perfect", "reversed", "tied"],
)
@pytest.mark.parametrize("func", [compute_harrell, compute_weighted_concordance])
def test_known_cases(func, risk, expected):
    assert func(TIME, EVENT, risk) == pytest.approx(expected)


@pytest.mark.parametrize("loader", [load_whas500, load_gbsg2])
def test_harrell_matches_sksurv(loader):
    X, time, event, _ = _outcome(loader)
    risk = X["age"].to_numpy(float)  # many ties: exercises the 0.5 rule
    expected = concordance_index_censored(event, time, risk)[0]
    assert compute_harrell(time, event, risk) == pytest.approx(expected)
    assert compute_weighted_concordance(time, event, risk) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("loader", [load_whas500, load_gbsg2])
def test_uno_matches_sksurv(loader):
    X, time, event, y = _outcome(loader)
    risk = X["age"].to_numpy(float) + 0.01 * np.arange(len(time)) % 3
    train, test = np.arange(len(time)) % 3 != 0, np.arange(len(time)) % 3 == 0
    tau = float(np.percentile(time[test], 80))
    expected = concordance_index_ipcw(y[train], y[test], risk[test], tau=tau)[0]
    got = compute_uno(time[train], event[train], time[test], event[test], risk[test], tau=tau)
    assert got == pytest.approx(expected)
    weights = fit_censoring(time[train], event[train]).ipcw_sq(time[test], event[test], tau=tau)
    kernel = compute_weighted_concordance(time[test], event[test], risk[test], weights)
    assert kernel == pytest.approx(expected, abs=1e-12)


def test_no_events_is_not_computable_with_reason():
    value = compute_safely("harrell_c", compute_harrell, TIME, np.zeros(6, bool), -TIME)
    assert value.value is None
    assert "no events" in value.reason
    assert value.text().startswith("n/a (no events")
    assert value.as_dict()["value"] is None


def test_too_few_patients():
    with pytest.raises(NotComputable, match="too few patients"):
        compute_harrell(np.array([1.0]), np.array([True]), np.array([0.3]))


def test_no_comparable_pairs():
    # the only event is the last time: nobody outlives it
    with pytest.raises(NotComputable, match="comparable"):
        compute_weighted_concordance(np.array([1.0, 2.0]), np.array([False, True]), np.array([0.1, 0.2]))


def test_uno_tau_beyond_training_follow_up():
    with pytest.raises(NotComputable, match="beyond the training"):
        compute_uno(TIME[:3], EVENT[:3], TIME, EVENT, -TIME, tau=5.5)


def test_uno_no_events_before_tau():
    with pytest.raises(NotComputable, match="no events before"):
        compute_uno(TIME, EVENT, TIME, EVENT, -TIME, tau=0.5)


def test_nan_risk_is_not_computable():
    with pytest.raises(NotComputable, match="NaN"):
        compute_harrell(TIME, EVENT, np.r_[np.nan, -TIME[1:]])


def test_one_harrell_for_reports_and_training_missing_maps_to_nan() -> None:
    """Training and coxnet's alpha path use compute_harrell too; a missing value is NaN there."""
    t, risk = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    ok = compute_safely("harrell_c", compute_harrell, t, np.array([True, True, False]), risk)
    assert ok.as_float == ok.value == 1.0
    censored = compute_safely("harrell_c", compute_harrell, t, np.zeros(3, bool), risk)
    assert censored.value is None and "no events" in censored.reason and np.isnan(censored.as_float)
    assert np.isnan(compute_safely("harrell_c", compute_harrell, t[:0], np.zeros(0, bool), risk[:0]).as_float)
