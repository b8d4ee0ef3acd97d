"""Named metric results: a value with an optional confidence interval, or "not computable" + reason."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class NotComputable(ValueError):
    """A metric cannot be computed on these data (no events, grid outside follow-up, ...).

    The message is the reason reported to the user; it is never turned into a value of 0.
    """


@dataclass
class MetricValue:
    """One metric on one set of patients.

    Attributes
    ----------
    name
        Metric name (``harrell_c``, ``uno_c``, ``ibs``, ``mean_auc``).
    value
        The point estimate, or ``None`` when not computable.
    reason
        Why ``value`` is ``None`` (empty when it is not).
    ci_low, ci_high
        Percentile bootstrap confidence bounds (``None`` when not bootstrapped or not computable).
    ci_reason
        Why the interval is missing although ``value`` is not.
    extra
        Metric-specific details (number of patients and events, τ, the time grid, ...).
    """

    name: str
    value: float | None = None
    reason: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    ci_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def as_float(self) -> float:
        """The value, NaN when it is missing (for arrays and model selection; reports use ``reason``)."""
        return math.nan if self.value is None else float(self.value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (``reason`` only present when the value is missing)."""
        out: dict[str, Any] = {"value": _num(self.value), "ci95": None}
        if self.value is None:
            out["reason"] = self.reason
        if self.ci_low is not None and self.ci_high is not None:
            out["ci95"] = [_num(self.ci_low), _num(self.ci_high)]
        elif self.value is not None and self.ci_reason:
            out["ci_reason"] = self.ci_reason
        out.update({k: _plain(v) for k, v in self.extra.items()})
        return out

    def text(self, digits: int = 3) -> str:
        """Human-readable form: ``0.712 (0.650–0.771)`` or ``n/a (reason)``."""
        if self.value is None:
            return f"n/a ({self.reason})"
        out = f"{self.value:.{digits}f}"
        if self.ci_low is not None and self.ci_high is not None:
            out += f" ({self.ci_low:.{digits}f}–{self.ci_high:.{digits}f})"
        elif self.ci_reason and not self.ci_reason.startswith("bootstrap disabled"):
            out += f" ({self.ci_reason.split(' (')[0]})"
        return out


def compute_safely(name: str, func: Any, *args: Any, **kwargs: Any) -> MetricValue:
    """Call ``func`` (returning a float or ``(float, extra)``); a :class:`NotComputable` becomes a
    missing value with its reason."""
    try:
        result = func(*args, **kwargs)
    except NotComputable as exc:
        return MetricValue(name, None, reason=str(exc))
    value, extra = result if isinstance(result, tuple) else (result, {})
    if not math.isfinite(float(value)):
        return MetricValue(name, None, reason=f"not finite ({value})")
    return MetricValue(name, float(value), extra=dict(extra))


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
