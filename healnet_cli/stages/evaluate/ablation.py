"""Missing-modality robustness (HEALNet paper, Table 2): each fold's saved model re-predicts its test
patients with all modalities, without each modality in turn, and with a random half of the
modalities removed per patient; Harrell's c-index per condition (per fold, mean ± sd, pooled).

A condition only changes the patients who had what it removes: "without m" is scored on the test
patients who have m (the others would be predicted exactly as with all present), "random half" on
those who lost at least one modality; each row gives how many patients it changed and the c-index
of the same patients with all present, its reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.metrics import MetricValue, compute_harrell, compute_safely
from healnet_cli.stages.evaluate.inference_port import FoldModels
from healnet_cli.stages.evaluate.run_folder import RunData

ALL = "all present"
HALF = "random half"


def random_half_drop(
    ids: list[str], modalities: list[str], present: pd.DataFrame, rng: np.random.Generator
) -> dict[str, set[str]]:
    """Per patient, remove ``floor(M / 2)`` of the model's M modalities at random, chosen among the
    ones the patient has and always keeping at least one of them."""
    n_drop = len(modalities) // 2
    out: dict[str, set[str]] = {}
    for p in ids:
        has = [m for m in modalities if bool(present.at[p, m])] if p in present.index else list(modalities)
        k = min(n_drop, max(len(has) - 1, 0))
        out[p] = set(rng.choice(has, size=k, replace=False).tolist()) if k else set()
    return out


def conditions_for(
    ids: list[str], modalities: list[str], present: pd.DataFrame, rng: np.random.Generator
) -> dict[str, Any]:
    """``condition -> drop mapping`` over the patients the condition changes (``None`` for all
    present): "without m" lists only the patients who have m, "random half" those who lose one."""
    conds: dict[str, Any] = {ALL: None}
    if len(modalities) < 2:
        return conds
    for m in modalities:
        conds[f"without {m}"] = {p: {m} for p in ids if p not in present.index or bool(present.at[p, m])}
    conds[HALF] = {p: d for p, d in random_half_drop(ids, modalities, present, rng).items() if d}
    return conds


@dataclass
class AblationResult:
    """c-index per condition and fold, plus pooled over folds; ``changed`` counts the patients each
    condition changed per fold, ``reference`` is the all-present c-index of those patients."""

    per_fold: dict[str, dict[int, MetricValue]] = field(default_factory=dict)
    pooled: dict[str, MetricValue] = field(default_factory=dict)
    changed: dict[str, dict[int, int]] = field(default_factory=dict)
    reference: dict[str, MetricValue] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for cond, folds in self.per_fold.items():
            vals = np.array([v.value for v in folds.values() if v.ok], dtype=float)
            ref = self.reference.get(cond)
            out.append(
                {
                    "condition": cond,
                    "n_changed": int(sum(self.changed.get(cond, {}).values())),
                    "mean": float(vals.mean()) if vals.size else None,
                    "sd": float(vals.std(ddof=0)) if vals.size else None,
                    "pooled": self.pooled[cond].value,
                    "pooled_reason": self.pooled[cond].reason or None,
                    "pooled_all_present": ref.value if ref is not None else self.pooled[cond].value,
                    "pooled_all_present_reason": (ref.reason or None) if ref is not None else None,
                    "folds": {
                        str(k): {**v.as_dict(), "n_changed": self.changed.get(cond, {}).get(k, 0)}
                        for k, v in folds.items()
                    },
                }
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"metric": "harrell_c", "conditions": self.rows(), "notes": self.notes}


def _presence(part: pd.DataFrame, modalities: list[str]) -> pd.DataFrame:
    cols = {
        m: part[f"has_{m}"].astype(bool).to_numpy() if f"has_{m}" in part else np.ones(len(part), bool)
        for m in modalities
    }
    return pd.DataFrame(cols, index=part["patient_id"].astype(str).to_numpy())


def _harrell(frame: pd.DataFrame, column: str = "risk") -> MetricValue:
    if frame.empty:
        return MetricValue("harrell_c", None, reason="no patient changed (none has what this condition removes)")
    return compute_safely("harrell_c", compute_harrell, frame["time"], frame["event"], frame[column])


def run_ablation(run: RunData, models: FoldModels, *, seed: int, batch_size: int = 8) -> AblationResult:
    """Re-predict each fold's test patients under every condition and score the patients each
    condition changed (beside their all-present c-index)."""
    result = AblationResult()
    pooled: dict[str, list[pd.DataFrame]] = {}
    max_diff = 0.0
    for k in run.folds:
        fm = models.get(k)
        part = run.predictions[run.predictions["fold"] == k]
        ids = part["patient_id"].astype(str).tolist()
        mods = [str(m) for m in fm.modalities]
        rng = np.random.default_rng([seed, k])
        base = None
        bags: dict[str, Any] = {}  # each bag read once for all conditions of the fold
        for cond, drop in conditions_for(ids, mods, _presence(part, mods), rng).items():
            changed = ids if drop is None else [p for p in ids if p in drop]
            scored = part[part["patient_id"].astype(str).isin(changed)].copy()
            if changed:
                frame = models.inference.predict_patients(
                    fm, changed, drop=drop, batch_size=batch_size, bag_cache=bags
                ).frame
                scored["risk"] = (
                    frame.set_index(frame["patient_id"].astype(str))["risk"]
                    .reindex(scored["patient_id"].astype(str))
                    .to_numpy(float)
                )
            if cond == ALL:
                base = scored.set_index(scored["patient_id"].astype(str))["risk"]
                max_diff = max(
                    max_diff, float(np.nanmax(np.abs(scored["risk"].to_numpy(float) - part["risk"].to_numpy(float))))
                )
            elif base is not None:
                scored["risk_all"] = base.reindex(scored["patient_id"].astype(str)).to_numpy(float)
            result.per_fold.setdefault(cond, {})[k] = _harrell(scored)
            result.changed.setdefault(cond, {})[k] = len(changed)
            pooled.setdefault(cond, []).append(scored)
    for cond, frames in pooled.items():
        both = pd.concat(frames)
        result.pooled[cond] = _harrell(both)
        if cond != ALL:
            result.reference[cond] = _harrell(both, "risk_all") if "risk_all" in both else _harrell(both.iloc[:0])
    n_mods = len(run.modalities)
    if n_mods < 2:
        result.notes.append("single-modality model: nothing to remove; only 'all present' is reported")
    if max_diff > 1e-4:
        result.notes.append(
            f"re-predicted risks differ from predictions.parquet by up to {max_diff:.3g} "
            "(different workdir or features since training?)"
        )
    result.notes.append(
        "'without m' removes m from the test patients who have it and is scored on them (a patient whose only "
        "modality is m is then predicted from no input); 'random half' removes floor(M/2) of a patient's present "
        "modalities, keeping >= 1, and is scored on the patients who lost one; 'all present, same patients' is the "
        "c-index of a condition's patients with nothing removed"
    )
    return result
