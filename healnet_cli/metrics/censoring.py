"""The censoring distribution G(t) = P(C > t), Kaplan–Meier on the training patients' censorings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from healnet_cli.metrics.outcome import check_outcome, to_structured
from healnet_cli.metrics.result import NotComputable


@dataclass
class CensoringModel:
    """A fitted censoring distribution (scikit-survival ``CensoringDistributionEstimator``).

    Attributes
    ----------
    max_time
        The largest training time; G is only defined up to it.
    """

    estimator: object
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
        try:
            return self.estimator.predict_proba(t.reshape(-1)).reshape(t.shape)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise NotComputable(
                f"time beyond the training follow-up (max {self.max_time:g}); censoring distribution undefined"
            ) from exc

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
    from sksurv.nonparametric import CensoringDistributionEstimator

    time, event = check_outcome(train_time, train_event)
    if time.shape[0] < 2:
        raise NotComputable(f"too few training patients for the censoring distribution ({time.shape[0]})")
    est = CensoringDistributionEstimator().fit(to_structured(time, event))
    return CensoringModel(est, float(time.max()))
