"""The vectorised bootstrap (counts per patient) gives the per-resample statistics and intervals of
the index-based reference, ties, duplicates, event-less and weight-less resamples included."""

from __future__ import annotations

import numpy as np
import pytest

from healnet_cli.metrics import NotComputable, bootstrap_ci, bootstrap_ci_batched, resample_counts
from healnet_cli.metrics.bootstrap import resample_indices
from healnet_cli.stages.evaluate.run_folder import read_run
from healnet_cli.stages.evaluate.scoring import (
    METRICS,
    _batched_stats,
    _fold_set,
    _pool,
    _stats,
    evaluation_grid,
    truncation_time,
)


def _sets(run_dir):
    run = read_run(run_dir)
    grid, tau = evaluation_grid(run, None), truncation_time(run)
    folds = [_fold_set(run, k, grid, tau)[0] for k in run.folds]
    return folds + [_pool(folds, grid)]


def _reference(stat, idx):
    try:
        value = stat(idx)
    except NotComputable:
        return np.nan
    return value if np.isfinite(value) else np.nan


@pytest.mark.parametrize("name", METRICS)
def test_batched_statistics_equal_the_index_based_ones(run_dir, name):
    for ps in _sets(run_dir):
        ps.risk = np.round(ps.risk, 1)  # ties in risk
        rng = np.random.default_rng(3)
        draws = [resample_indices(ps.strata, rng) for _ in range(40)]
        # a tiny resample pool: few distinct patients, often no event or no usable time
        draws += [rng.choice(np.flatnonzero(~ps.event)[:3], size=ps.time.size) for _ in range(3)]
        counts = np.stack([np.bincount(i, minlength=ps.time.size) for i in draws]).astype(float)
        expected = np.array([_reference(_stats(ps)[name], i) for i in draws])
        got = _batched_stats(ps)[name](counts)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, equal_nan=True)
        assert np.isnan(got[-3:]).all() or name == "ibs"


def test_batched_interval_equals_the_reference(run_dir):
    ps = _sets(run_dir)[-1]
    ref = bootstrap_ci(_stats(ps)["uno_c"], ps.strata, n_boot=60, seed=11)
    new = bootstrap_ci_batched(_batched_stats(ps)["uno_c"], ps.strata, n_boot=60, seed=11, chunk=7)
    assert new.n_valid == ref.n_valid and new.low == pytest.approx(ref.low, abs=1e-12)
    assert new.high == pytest.approx(ref.high, abs=1e-12)


def test_resample_counts_are_the_resampled_indices():
    # scattered, unsorted strata and an empty one; chunks of 2 cross resample boundaries
    strata = [np.array([7, 0, 3, 5]), np.array([], dtype=int), np.array([1, 8, 2, 6, 4])]
    counts = resample_counts(strata, 5, seed=2, chunk=2)
    rng = np.random.default_rng(2)
    for row in counts:
        assert (row == np.bincount(resample_indices(strata, rng), minlength=9)).all()
    assert (counts[:, [7, 0, 3, 5]].sum(axis=1) == 4).all() and (counts[:, [1, 8, 2, 6, 4]].sum(axis=1) == 5).all()
    rng = np.random.default_rng(1)  # unstratified: the draws of rng.choice(n, n) per resample
    for row in resample_counts(9, 3, seed=1):
        assert (row == np.bincount(rng.choice(9, size=9, replace=True), minlength=9)).all()
