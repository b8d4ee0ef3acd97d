"""Missing-modality robustness (HEALNet paper, Table 2): each fold's saved model re-predicts its test
patients with all modalities, without each modality in turn, and with a random half of the
modalities removed per patient; Harrell's c-index per condition (per fold, mean ± sd, pooled)."""

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


def conditions_for(ids: list[str], modalities: list[str], present: pd.DataFrame, rng: np.random.Generator) -> dict[str, Any]:
    """``condition -> drop mapping`` (``None`` for all present)."""
    conds: dict[str, Any] = {ALL: None}
    if len(modalities) < 2:
        return conds
    for m in modalities:
        conds[f"without {m}"] = {p: {m} for p in ids}
    conds[HALF] = random_half_drop(ids, modalities, present, rng)
    return conds


@dataclass
class AblationResult:
    """c-index per condition and fold, plus pooled over folds."""

    per_fold: dict[str, dict[int, MetricValue]] = field(default_factory=dict)
    pooled: dict[str, MetricValue] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for cond, folds in self.per_fold.items():
            vals = np.array([v.value for v in folds.values() if v.ok], dtype=float)
            out.append({
                "condition": cond,
                "mean": float(vals.mean()) if vals.size else None,
                "sd": float(vals.std(ddof=0)) if vals.size else None,
                "pooled": self.pooled[cond].value,
                "pooled_reason": self.pooled[cond].reason or None,
                "folds": {str(k): v.as_dict() for k, v in folds.items()},
            })
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"metric": "harrell_c", "conditions": self.rows(), "notes": self.notes}


def _presence(part: pd.DataFrame, modalities: list[str]) -> pd.DataFrame:
    cols = {m: part[f"has_{m}"].astype(bool).to_numpy() if f"has_{m}" in part else np.ones(len(part), bool) for m in modalities}
    return pd.DataFrame(cols, index=part["patient_id"].astype(str).to_numpy())


def run_ablation(run: RunData, models: FoldModels, *, seed: int, batch_size: int = 8) -> AblationResult:
    """Re-predict each fold's test patients under every condition and score them."""
    result = AblationResult()
    pooled: dict[str, list[pd.DataFrame]] = {}
    max_diff = 0.0
    for k in run.folds:
        fm = models.get(k)
        part = run.predictions[run.predictions["fold"] == k]
        ids = part["patient_id"].astype(str).tolist()
        mods = [str(m) for m in fm.modalities]
        rng = np.random.default_rng([seed, k])
        for cond, drop in conditions_for(ids, mods, _presence(part, mods), rng).items():
            frame = models.inference.predict_patients(fm, ids, drop=drop, batch_size=batch_size).frame
            risk = frame.set_index(frame["patient_id"].astype(str))["risk"].reindex(ids).to_numpy(float)
            scored = part.assign(risk=risk)
            if cond == ALL:
                max_diff = max(max_diff, float(np.nanmax(np.abs(risk - part["risk"].to_numpy(float)))))
            value = compute_safely("harrell_c", compute_harrell, scored["time"], scored["event"], scored["risk"])
            result.per_fold.setdefault(cond, {})[k] = value
            pooled.setdefault(cond, []).append(scored)
    for cond, frames in pooled.items():
        both = pd.concat(frames)
        result.pooled[cond] = compute_safely("harrell_c", compute_harrell, both["time"], both["event"], both["risk"])
    n_mods = len(run.modalities)
    if n_mods < 2:
        result.notes.append("single-modality model: nothing to remove; only 'all present' is reported")
    if max_diff > 1e-4:
        result.notes.append(
            f"re-predicted risks differ from predictions.parquet by up to {max_diff:.3g} "
            "(different workdir or features since training?)"
        )
    result.notes.append(
        "'without m' removes m for every test patient (a patient whose only modality is m is then predicted "
        "from no input); 'random half' removes floor(M/2) of the patient's present modalities, keeping >= 1"
    )
    return result
