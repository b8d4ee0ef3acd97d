"""Survival labels: ``time`` (> 0) and ``event`` (True = event observed) per patient.

Event / censoring values accepted (case-insensitive):

* ``0`` / ``1`` (also ``0.0`` / ``1.0``) and ``true`` / ``false`` / ``yes`` / ``no``: read as the
  column says — with ``--event-col`` 1 = event observed, with ``--censor-col`` 1 = censored;
* vital-status words, which carry their own meaning whatever the column: ``dead``, ``deceased``,
  ``died`` = event; ``alive``, ``living`` = censored (cBioPortal's ``1:DECEASED`` / ``0:LIVING`` too).

Anything else (``2``, ``unknown``, ``censored``, ...) is not unambiguous and the row is rejected.
Rejected rows (missing, non-numeric, negative or zero time; missing or non-binary status; a patient
whose rows disagree) are listed with their reason; the other rows are kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})
_EVENT_WORDS = {"dead": True, "deceased": True, "died": True, "alive": False, "living": False}
_PREFIX = re.compile(r"^\d+\s*:\s*")
_MAX_LISTED = 200


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def parse_time(value: Any) -> tuple[float | None, str]:
    """A survival time, or None and the reason it is rejected."""
    if _missing(value):
        return None, "missing time"
    try:
        time = float(str(value).strip())
    except ValueError:
        return None, f"non-numeric time {str(value)!r}"
    if not math.isfinite(time):
        return None, f"non-finite time {str(value)!r}"
    if time < 0:
        return None, "negative time"
    if time == 0:
        return None, "zero time"
    return time, ""


def parse_event(value: Any, kind: str) -> tuple[bool | None, str]:
    """Whether the event was observed, or None and the reason the value is rejected.

    ``kind`` is ``"event"`` (1 = event) or ``"censor"`` (1 = censored).
    """
    if _missing(value):
        return None, f"missing {kind}"
    if isinstance(value, (bool, np.bool_)):
        flag = bool(value)
    else:
        text = str(value).strip().lower()
        word = _PREFIX.sub("", text)
        if word in _EVENT_WORDS:
            return _EVENT_WORDS[word], ""
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and number in (0.0, 1.0):
            flag = number == 1.0
        elif text in _TRUE or text in _FALSE:
            flag = text in _TRUE
        else:
            return None, f"non-binary {kind} value {str(value)!r}"
    return (not flag if kind == "censor" else flag), ""


@dataclass
class LabelResult:
    """Labels per patient and the rows that were rejected."""

    labels: pd.DataFrame
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "patients": len(self.labels),
            "events": int(self.labels["event"].sum()) if len(self.labels) else 0,
            "rejected_rows": sum(self.reasons.values()),
            "rejected_by_reason": self.reasons,
            "rejected": self.rejected[:_MAX_LISTED],
        }

    def warning(self) -> str:
        """The rejected rows and a cohort without events, in one line ('' when neither)."""
        parts = []
        if self.reasons:
            detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.reasons.items()))
            parts.append(f"{sum(self.reasons.values())} label row(s) rejected ({detail}); listed in the report")
        if len(self.labels) and not self.labels["event"].any():
            parts.append(
                f"no events: 0 events, {len(self.labels)} censored among {len(self.labels)} patients — no survival "
                "model can "
                "be trained or scored on these labels; check the event / censoring column (which value means censored?)"
            )
        return "; ".join(parts)


def build_labels(patients: Sequence[str], times: Sequence[Any], statuses: Sequence[Any], *, kind: str) -> LabelResult:
    """Parse and validate label rows, then keep one (time, event) per patient.

    A patient with several valid rows keeps them when they agree; rows that disagree reject the
    patient ("conflicting rows").
    """
    good: dict[str, set[tuple[float, bool]]] = {}
    rejected: list[dict[str, Any]] = []
    for row, (patient, raw_time, raw_status) in enumerate(zip(patients, times, statuses, strict=True)):
        time, why_time = parse_time(raw_time)
        event, why_event = parse_event(raw_status, kind)
        reason = why_time or why_event
        if reason:
            rejected.append({"row": row, "patient_id": patient, "reason": _reason_key(reason), "detail": reason,
                             "time": _plain(raw_time), "status": _plain(raw_status)})  # fmt: skip
            continue
        good.setdefault(patient, set()).add((float(time), bool(event)))  # type: ignore[arg-type]
    keep = {}
    for patient, values in good.items():
        if len(values) == 1:
            keep[patient] = next(iter(values))
        else:
            shown = "; ".join(f"time {t:g}, event {e}" for t, e in sorted(values))
            rejected.append({"row": None, "patient_id": patient, "reason": "conflicting rows", "detail": shown})
    frame = pd.DataFrame(
        {"time": [keep[p][0] for p in sorted(keep)], "event": [keep[p][1] for p in sorted(keep)]},
        index=pd.Index(sorted(keep), name="patient_id", dtype=object),
    )
    frame["time"] = frame["time"].astype(np.float64)
    frame["event"] = frame["event"].astype(bool)
    reasons = dict(Counter(r["reason"] for r in rejected))
    return LabelResult(frame, rejected, rows=len(patients), reasons=reasons)


def _reason_key(reason: str) -> str:
    """The reason without the offending value (for counting)."""
    for prefix in ("non-binary event value", "non-binary censor value", "non-numeric time", "non-finite time"):
        if reason.startswith(prefix):
            return prefix
    return reason


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
