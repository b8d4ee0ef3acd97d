"""The numpy Kaplan–Meier, censoring distribution, log-rank test and χ² tail that evaluate uses
(it imports no scikit-survival) equal scikit-survival's and scipy's, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2
from sksurv.compare import compare_survival
from sksurv.nonparametric import CensoringDistributionEstimator, kaplan_meier_estimator
from sksurv.util import Surv

from healnet_cli.metrics import NotComputable, fit_censoring, logrank
from healnet_cli.metrics.km import chi2_sf, kaplan_meier_curve


def _cohort(seed: int, n: int, *, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    time = np.round(rng.exponential(5.0, n) + 0.1, decimals)  # decimals 0: many tied times
    event = rng.random(n) < 0.6
    event[0] = True
    return time, event


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("reverse", [False, True])
def test_kaplan_meier_curve_equals_sksurv(seed, reverse):
    time, event = _cohort(seed, 20 + 23 * seed, decimals=seed % 2)
    t_ref, s_ref = kaplan_meier_estimator(event, time, reverse=reverse)
    t, s = kaplan_meier_curve(time, event, reverse=reverse)
    np.testing.assert_array_equal(t, t_ref)
    np.testing.assert_allclose(s, s_ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize("seed", range(8))
def test_censoring_distribution_equals_sksurv(seed):
    time, event = _cohort(seed, 60 + 10 * seed, decimals=seed % 2)
    if seed == 3:
        event[:] = True  # nobody censored: G = 1
    ref = CensoringDistributionEstimator().fit(Surv.from_arrays(event, time))
    ours = fit_censoring(time, event)
    at = np.r_[np.unique(time), np.linspace(0.0, time.max(), 57), time.min() - 1.0]
    at = at[at <= time.max()]
    np.testing.assert_allclose(ours.survival(at), ref.predict_proba(at), rtol=0, atol=1e-14)


def test_censoring_distribution_refuses_times_beyond_follow_up():
    time, event = _cohort(0, 50, decimals=2)
    event[np.argmax(time)] = True  # the last time an event: G > 0 there, undefined beyond it
    with pytest.raises(NotComputable, match="beyond the training follow-up"):
        fit_censoring(time, event).survival(np.array([time.max() + 1.0]))


@pytest.mark.parametrize("seed", range(16))
def test_logrank_equals_sksurv(seed):
    time, event = _cohort(seed, 15 + 17 * seed, decimals=seed % 2)
    groups = np.random.default_rng(seed + 100).integers(0, 2 + seed % 3, time.size)
    if np.unique(groups).size < 2:
        groups[:2] = [0, 1]
    chisq, p = compare_survival(Surv.from_arrays(event, time), groups)
    ours = logrank(time, event, groups)
    assert ours.chisq == pytest.approx(chisq, rel=1e-10, abs=1e-12)
    assert ours.p_value == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert ours.df == np.unique(groups).size - 1


@pytest.mark.parametrize("df", range(1, 10))
def test_chi2_tail_equals_scipy(df):
    for x in [1e-6, 0.02, 0.5, 1.0, 3.84, 9.2, 30.0, 120.0]:
        assert chi2_sf(x, df) == pytest.approx(chi2.sf(x, df), rel=1e-10, abs=1e-300)
    assert chi2_sf(0.0, df) == 1.0
