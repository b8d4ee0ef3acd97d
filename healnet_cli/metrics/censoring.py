"""The censoring distribution G(t) = P(C > t), Kaplan–Meier on the training patients' censorings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.km import kaplan_meier_curve
from healnet_cli.metrics.outcome import check_outcome
from healnet_cli.metrics.result import NotComputable


@dataclass
class CensoringModel:
    """A fitted censoring distribution: G at the distinct training times, evaluated as a right-
    continuous step function (scikit-survival's ``CensoringDistributionEstimator``, whose values it
    reproduces: ``tests/metrics``).

    Attributes
    ----------
    times, prob
        The steps (``times[0] = -inf`` with ``prob[0] = 1`` when some training patient is censored).
    max_time
        The largest training time; G is only defined up to it.
    """

    times: np.ndarray
    prob: np.ndarray
    max_time: float

    def survival(self, times: np.ndarray) -> np.ndarray:
        """G(t) at ``times`` (shape kept).

        Raises
        ------
        NotComputable
            A time beyond the training follow-up.
        """
        t = np.asarray(times, dtype=float)
        if t.size == 0:
            return np.zeros(t.shape)
        flat = t.reshape(-1)
        beyond = flat > self.times[-1]
        if beyond.any() and self.prob[-1] > 0:
            raise NotComputable(
                f"time beyond the training follow-up (max {self.max_time:g}); censoring distribution undefined"
            )
        out = np.zeros(flat.shape)
        inside = flat[~beyond]
        idx = np.searchsorted(self.times, inside)
        exact = np.abs(self.times[np.minimum(idx, self.times.size - 1)] - inside) < np.finfo(float).eps
        out[~beyond] = self.prob[np.where(exact, idx, idx - 1)]
        return out.reshape(t.shape)

    def survival_within(self, times: np.ndarray) -> np.ndarray:
        """G(t), with 0 (weight 0 in the IPCW kernels) for times beyond the training follow-up.

        For patients' own times: an event after the training follow-up is never a case at a grid
        time inside it, so its weight is never used.
        """
        t = np.asarray(times, dtype=float)
        out = np.zeros(t.shape)
        inside = t <= self.max_time
        if inside.any():
            out[inside] = self.survival(t[inside])
        return out

    def ipcw_sq(self, time: np.ndarray, event: np.ndarray, *, tau: float) -> np.ndarray:
        """Uno's pair weights ``1 / G(T_i)^2`` for events before ``tau`` (0 otherwise)."""
        time, event = check_outcome(time, event)
        use = event & (time < tau)
        weights = np.zeros(time.shape[0])
        if use.any():
            g = self.survival(time[use])
            if (g <= 0).any():
                raise NotComputable("censoring survival G(t) is 0 at an event time before τ")
            weights[use] = 1.0 / np.square(g)
        return weights


def fit_censoring(train_time: np.ndarray, train_event: np.ndarray) -> CensoringModel:
    """Fit G on the training patients (reverse Kaplan–Meier).

    Raises
    ------
    NotComputable
        Fewer than 2 training patients.
    """
    time, event = check_outcome(train_time, train_event)
    if time.shape[0] < 2:
        raise NotComputable(f"too few training patients for the censoring distribution ({time.shape[0]})")
    if event.all():  # nobody censored: G = 1 up to the last time
        times = np.unique(time)
        return CensoringModel(times, np.ones(times.size), float(time.max()))
    times, prob = kaplan_meier_curve(time, event, reverse=True)
    return CensoringModel(np.r_[-np.inf, times], np.r_[1.0, prob], float(time.max()))
