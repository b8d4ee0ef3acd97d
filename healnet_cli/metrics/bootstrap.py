"""Percentile bootstrap confidence intervals and a paired bootstrap test (seeded, stratified)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.result import NotComputable

Statistic = Callable[[np.ndarray], float]


@dataclass
class BootstrapResult:
    """Percentile interval from the replicates that could be computed."""

    low: float | None
    high: float | None
    n_valid: int
    n_boot: int
    reason: str = ""


def resample_indices(strata: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One bootstrap sample: indices drawn with replacement inside each stratum (e.g. each fold)."""
    return np.concatenate([rng.choice(s, size=s.size, replace=True) for s in strata if s.size])


def bootstrap_ci(
    statistic: Statistic,
    strata: Sequence[np.ndarray] | int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_valid_fraction: float = 0.5,
) -> BootstrapResult:
    """Percentile CI of ``statistic(indices)`` over ``n_boot`` resamples.

    Replicates where the statistic raises :class:`NotComputable` (e.g. a resample without events)
    are skipped; when fewer than ``min_valid_fraction`` succeed, no interval is given.

    Parameters
    ----------
    statistic
        Maps an index array (into the caller's arrays) to a value.
    strata
        Number of patients, or index arrays to resample within (patients keep their fold).
    """
    if n_boot <= 0:
        return BootstrapResult(None, None, 0, 0, "bootstrap disabled (--bootstrap 0)")
    groups = [np.arange(strata)] if isinstance(strata, int) else [np.asarray(s) for s in strata]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = resample_indices(groups, rng)
        try:
            value = statistic(idx)
        except NotComputable:
            continue
        if np.isfinite(value):
            values.append(value)
    if len(values) < max(2, min_valid_fraction * n_boot):
        return BootstrapResult(
            None, None, len(values), n_boot, f"only {len(values)}/{n_boot} bootstrap resamples were computable"
        )
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return BootstrapResult(float(low), float(high), len(values), n_boot)


@dataclass
class PairedBootstrap:
    """Paired comparison of a statistic between two predictors on the same patients."""

    difference: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_valid: int
    n_boot: int
    reason: str = ""


def paired_bootstrap(
    statistic_a: Statistic,
    statistic_b: Statistic,
    n: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedBootstrap:
    """Bootstrap the difference ``a − b`` with the same resample for both.

    The two-sided p-value is ``2 · min(P*(Δ <= 0), P*(Δ >= 0))`` over the replicates (capped at 1),
    the usual percentile-bootstrap test of Δ = 0.
    """
    full = np.arange(n)
    point = statistic_a(full) - statistic_b(full)
    if n_boot <= 0:
        return PairedBootstrap(point, None, None, None, 0, 0, "bootstrap disabled (--bootstrap 0)")
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.choice(full, size=n, replace=True)
        try:
            diffs.append(statistic_a(idx) - statistic_b(idx))
        except NotComputable:
            continue
    d = np.asarray(diffs)
    if d.size < max(2, n_boot // 2):
        return PairedBootstrap(point, None, None, None, int(d.size), n_boot, f"only {d.size}/{n_boot} resamples computable")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(d, [alpha, 1.0 - alpha])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return PairedBootstrap(float(point), float(low), float(high), p, int(d.size), n_boot)
