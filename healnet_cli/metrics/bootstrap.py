"""Percentile bootstrap confidence intervals and a paired bootstrap test (seeded, stratified)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.result import NotComputable

Statistic = Callable[[np.ndarray], float]

MIN_CI_EVENTS = 10
MIN_CI_PATIENTS = 20
TOO_FEW = "too few events for a CI"


def too_few_for_ci(n_patients: int, n_events: int) -> str:
    """Why no bootstrap interval is given for a set this small (``""`` when it is large enough).

    Below ``MIN_CI_EVENTS`` events or ``MIN_CI_PATIENTS`` patients the percentile bootstrap is
    degenerate (three patients give "1.000 (1.000–1.000)"): resamples repeat the same few
    patients, so the interval says nothing about the uncertainty.
    """
    if n_events < MIN_CI_EVENTS or n_patients < MIN_CI_PATIENTS:
        return (
            f"{TOO_FEW} ({n_events} events, {n_patients} patients; a CI needs >= {MIN_CI_EVENTS} events "
            f"and >= {MIN_CI_PATIENTS} patients)"
        )
    return ""


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
    # s[rng.integers(...)] is rng.choice(s, size=s.size, replace=True) (the same draws) without its overhead
    return np.concatenate([s[rng.integers(0, s.size, size=s.size)] for s in strata if s.size])


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
    groups = _groups(strata)
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
    return _interval(np.asarray(values, dtype=float), n_boot, level, min_valid_fraction)


BatchStatistic = Callable[[np.ndarray], np.ndarray]


def _groups(strata: Sequence[np.ndarray] | int) -> list[np.ndarray]:
    return [np.arange(strata)] if isinstance(strata, int) else [np.asarray(s) for s in strata]


def _interval(values: np.ndarray, n_boot: int, level: float, min_valid_fraction: float) -> BootstrapResult:
    values = values[np.isfinite(values)]
    if values.size < max(2, min_valid_fraction * n_boot):
        return BootstrapResult(
            None, None, int(values.size), n_boot, f"only {values.size}/{n_boot} bootstrap resamples were computable"
        )
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return BootstrapResult(float(low), float(high), int(values.size), n_boot)


def resample_counts(strata: Sequence[np.ndarray] | int, n_boot: int, seed: int, *, chunk: int = 256) -> np.ndarray:
    """``[n_boot, n]`` multiplicities of each patient in the resamples :func:`bootstrap_ci` draws
    with the same ``seed`` (the same random draws, counted instead of listed).

    The draws of ``chunk`` resamples are one ``rng.integers`` call with a per-draw upper bound,
    which consumes the generator exactly as the per-resample, per-stratum calls of
    :func:`resample_indices` do (tested), so the resamples are identical.
    """
    groups = [g for g in _groups(strata) if g.size]
    n = int(max((g.max() + 1 for g in groups), default=0))
    out = np.zeros((n_boot, n), dtype=np.float64)
    if not groups or n_boot <= 0:
        return out
    rng = np.random.default_rng(seed)
    members = np.concatenate(groups)  # one resample's draws, stratum after stratum
    sizes = np.array([g.size for g in groups])
    highs = np.repeat(sizes, sizes)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)  # where each stratum starts in ``members``
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, np.tile(highs, b)).reshape(b, -1)
        patients = members[draws + offsets]
        flat = (np.arange(b)[:, None] * n + patients).ravel()
        out[start : start + b] = np.bincount(flat, minlength=b * n).reshape(b, n)
    return out


def bootstrap_ci_batched(
    statistic: BatchStatistic,
    strata: Sequence[np.ndarray] | int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_valid_fraction: float = 0.5,
    chunk: int = 250,
) -> BootstrapResult:
    """:func:`bootstrap_ci` for a statistic that scores many resamples at once.

    ``statistic(counts)`` maps ``[b, n]`` patient multiplicities to ``[b]`` values (NaN where a
    resample is not computable). The resamples, and so the interval, are those of
    :func:`bootstrap_ci` with the same seed; the statistic is evaluated ``chunk`` resamples at a
    time (vectorised kernels instead of one Python call per resample).
    """
    if n_boot <= 0:
        return BootstrapResult(None, None, 0, 0, "bootstrap disabled (--bootstrap 0)")
    counts = resample_counts(strata, n_boot, seed)
    values = np.concatenate(
        [np.asarray(statistic(counts[i : i + chunk]), dtype=float) for i in range(0, n_boot, chunk)]
    )
    return _interval(values, n_boot, level, min_valid_fraction)


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
    statistic_a: BatchStatistic,
    statistic_b: BatchStatistic,
    n: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedBootstrap:
    """Bootstrap the difference ``a − b`` with the same resample for both.

    Each statistic maps ``[b, n]`` patient multiplicities to ``[b]`` values (NaN where a resample is
    not computable), as in :func:`bootstrap_ci_batched`; the point difference is their value on the
    full sample (all counts 1). The resamples are ``rng.choice(n, n)`` draws of ``seed``. The
    two-sided p-value is ``2 · min(P*(Δ <= 0), P*(Δ >= 0))`` over the replicates (capped at 1), the
    usual percentile-bootstrap test of Δ = 0.

    Raises
    ------
    NotComputable
        The statistics cannot be computed on the full sample.
    """
    ones = np.ones((1, n))
    point = float(np.asarray(statistic_a(ones), dtype=float)[0] - np.asarray(statistic_b(ones), dtype=float)[0])
    if not np.isfinite(point):
        raise NotComputable("the statistic is not computable on the full sample")
    if n_boot <= 0:
        return PairedBootstrap(point, None, None, None, 0, 0, "bootstrap disabled (--bootstrap 0)")
    counts = resample_counts(n, n_boot, seed)
    d = np.concatenate(
        [
            np.asarray(statistic_a(c), dtype=float) - np.asarray(statistic_b(c), dtype=float)
            for c in (counts[i : i + 250] for i in range(0, n_boot, 250))
        ]
    )
    d = d[np.isfinite(d)]
    if d.size < max(2, n_boot // 2):
        return PairedBootstrap(
            point, None, None, None, int(d.size), n_boot, f"only {d.size}/{n_boot} resamples computable"
        )
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(d, [alpha, 1.0 - alpha])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return PairedBootstrap(point, float(low), float(high), p, int(d.size), n_boot)
