"""Survival outcomes: validation and conversion to scikit-survival's structured array."""

from __future__ import annotations

import numpy as np

from healnet_cli.metrics.result import NotComputable


def check_outcome(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(time float64 [n], event bool [n])`` after checking shapes and values.

    Raises
    ------
    ValueError
        Mismatched lengths, non-finite or negative times.
    """
    t = np.asarray(time, dtype=float).reshape(-1)
    e = np.asarray(event).reshape(-1).astype(bool)
    if t.shape != e.shape:
        raise ValueError(f"time has {t.shape[0]} values but event has {e.shape[0]}")
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("survival times must be finite and >= 0")
    return t, e


def require_events(time: np.ndarray, event: np.ndarray, *, min_patients: int = 2) -> None:
    """Raise :class:`NotComputable` with a reason when there are too few patients or no events."""
    if time.shape[0] < min_patients:
        raise NotComputable(f"too few patients ({time.shape[0]} < {min_patients})")
    if not np.asarray(event, dtype=bool).any():
        raise NotComputable(f"no events among {time.shape[0]} patients (all censored)")
