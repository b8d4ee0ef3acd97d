"""Bootstrap intervals, paired bootstrap, KM / log-rank, risk groups and calibration."""

from __future__ import annotations

import numpy as np
import pytest

from healnet_cli.metrics import (
    NotComputable,
    bootstrap_ci,
    calibration,
    compute_weighted_concordance,
    concordance_counts,
    kaplan_meier,
    logrank,
    numbers_at_risk,
    paired_bootstrap,
    risk_groups,
)


def _toy(n=120, seed=0):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk)) + 0.01
    cens = rng.exponential(2.0, size=n) + 0.01
    return np.minimum(time, cens), time <= cens, risk


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    time, event, risk = _toy()
    stat = lambda idx: compute_weighted_concordance(time[idx], event[idx], risk[idx])  # noqa: E731
    point = stat(np.arange(time.size))
    a = bootstrap_ci(stat, time.size, n_boot=60, seed=3)
    b = bootstrap_ci(stat, time.size, n_boot=60, seed=3)
    c = bootstrap_ci(stat, time.size, n_boot=60, seed=4)
    assert a.low < point < a.high
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    assert a.n_valid == 60


def test_bootstrap_reports_too_few_valid_replicates():
    def stat(idx):
        raise NotComputable("never")

    result = bootstrap_ci(stat, 10, n_boot=20, seed=0)
    assert result.low is None and "0/20" in result.reason
    assert bootstrap_ci(stat, 10, n_boot=0).reason.startswith("bootstrap disabled")


def test_bootstrap_stratified_keeps_strata_sizes():
    seen = []
    bootstrap_ci(lambda idx: seen.append(idx) or 0.0, [np.arange(3), np.arange(3, 10)], n_boot=5, seed=0)
    for idx in seen:
        assert (idx < 3).sum() == 3 and (idx >= 3).sum() == 7


def test_paired_bootstrap_detects_a_better_predictor():
    time, event, risk = _toy(n=200)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=time.size) * 5
    good = lambda c: concordance_counts(time, event, risk, c)  # noqa: E731
    bad = lambda c: concordance_counts(time, event, noise, c)  # noqa: E731
    result = paired_bootstrap(good, bad, time.size, n_boot=80, seed=0)
    assert result.difference > 0.1
    assert result.ci_low > 0 and result.p_value < 0.05
    same = paired_bootstrap(good, good, time.size, n_boot=20, seed=0)
    assert same.difference == 0 and same.p_value == 1.0


def test_paired_bootstrap_equals_the_per_resample_loop():
    """The batched test gives the interval and p-value of scoring each rng.choice resample by index."""
    time, event, risk = _toy(n=90, seed=4)
    other = risk + np.random.default_rng(2).normal(size=time.size)
    rng, diffs = np.random.default_rng(5), []
    for _ in range(200):
        i = rng.choice(time.size, size=time.size, replace=True)
        diffs.append(
            compute_weighted_concordance(time[i], event[i], risk[i])
            - compute_weighted_concordance(time[i], event[i], other[i])
        )
    low, high = np.quantile(diffs, [0.025, 0.975])
    p = min(1.0, 2 * min(np.mean(np.array(diffs) <= 0), np.mean(np.array(diffs) >= 0)))
    res = paired_bootstrap(
        lambda c: concordance_counts(time, event, risk, c),
        lambda c: concordance_counts(time, event, other, c),
        time.size,
        n_boot=200,
        seed=5,
    )
    assert res.ci_low == pytest.approx(low, abs=1e-12) and res.ci_high == pytest.approx(high, abs=1e-12)
    assert res.p_value == pytest.approx(p) and res.n_valid == 200


def test_logrank_known_difference_and_null():
    rng = np.random.default_rng(0)
    t0, t1 = rng.exponential(10.0, 100), rng.exponential(1.0, 100)
    time = np.r_[t0, t1]
    event = np.ones(200, bool)
    groups = np.r_[np.zeros(100, int), np.ones(100, int)]
    assert logrank(time, event, groups).p_value < 1e-8
    same = np.r_[rng.exponential(1.0, 100), rng.exponential(1.0, 100)]
    assert logrank(same, event, groups).p_value > 0.01
    with pytest.raises(NotComputable, match="fewer than 2"):
        logrank(time, event, np.zeros(200, int))


def test_kaplan_meier_hand_case():
    t, s = kaplan_meier(np.array([1.0, 2.0, 3.0, 4.0]), np.array([True, False, True, True]))
    np.testing.assert_allclose(t, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(s, [1, 0.75, 0.75, 0.375, 0.0])


def test_risk_groups_and_numbers_at_risk():
    risk = np.arange(9.0)
    groups, cuts = risk_groups(risk, 3)
    assert groups.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and cuts.size == 2
    nar = numbers_at_risk(np.arange(1.0, 10.0), groups, np.array([0.0, 4.0]))
    assert nar.tolist() == [[3, 0], [3, 3], [3, 3]]


def test_calibration_rows():
    time, event, risk = _toy(n=100)
    surv = np.exp(-np.exp(risk) * 0.5)
    rows = calibration(time, event, surv, 0.5, n_groups=4)
    assert len(rows) == 4 and sum(r.n for r in rows) == 100
    assert rows[0].predicted < rows[-1].predicted
    assert all(r.observed is not None for r in rows)
    with pytest.raises(NotComputable, match="too few"):
        calibration(time[:3], event[:3], surv[:3], 0.5)
