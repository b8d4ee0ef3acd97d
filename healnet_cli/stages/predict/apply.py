"""The predictions themselves: each model with its own preprocessing, then the fold ensemble."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from healnet_cli.data.batching import build_table
from healnet_cli.data.cohort import Cohort
from healnet_cli.data.ensemble import combine_fold_predictions, survival_on_grid
from healnet_cli.data.inference import FoldModel, fold_model_from_bundle, predict_table
from healnet_cli.data.survival import breslow_survival


def _on_grid(fm: FoldModel, frame: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """A model's survival at ``times``: its Breslow curve (Cox-type) or its bins, interpolated."""
    risk = frame["risk"].to_numpy(np.float64)
    if fm.loss == "cox":
        assert fm.breslow is not None, "predict_table refuses a Cox-type model without its baseline"
        return breslow_survival(risk, fm.breslow[0], fm.breslow[1], times)
    surv = frame[[f"surv_{j}" for j in range(fm.n_bins)]].to_numpy(np.float64)
    return survival_on_grid(surv, fm.bin_edges, times)


def predict_frame(
    bundles: Sequence[Mapping[str, Any]],
    cohort: Cohort,
    run_modalities: Sequence[str],
    *,
    device: str,
    batch_size: int,
    grid: Sequence[float],
) -> tuple[pd.DataFrame, list[float]]:
    """``patient_id, risk, surv_*, has_<modality>[, time, event]`` for every cohort patient, and the
    bin edges of the ``surv_*`` columns (one model: its own; several: ``grid``)."""
    ids = list(cohort.patients)
    models, frames = [], []
    for payload in bundles:
        fm = fold_model_from_bundle(payload, cohort=cohort, device=device)
        table = build_table(cohort, ids, fm.preprocess)
        frames.append(predict_table(fm, table, batch_size=batch_size)[0])
        models.append(fm)
    if len(models) == 1:
        out, edges = frames[0], list(models[0].bin_edges)
    else:
        edges = [float(e) for e in grid]
        times = np.asarray(edges[1:], dtype=np.float64)
        survs = [_on_grid(fm, f, times) for fm, f in zip(models, frames, strict=True)]
        risk, surv = combine_fold_predictions(survs, [f["risk"].to_numpy(np.float64) for f in frames])
        out = pd.DataFrame({"patient_id": ids, "risk": risk})
        for j in range(surv.shape[1]):
            out[f"surv_{j}"] = surv[:, j]
    for m in run_modalities:
        out[f"has_{m}"] = cohort.presence.loc[ids, m].to_numpy(bool) if m in cohort.modalities else False
    labels = cohort.labels.reindex(ids)
    if labels["time"].notna().any():
        out["time"] = labels["time"].to_numpy(np.float64)
        out["event"] = pd.array(np.where(labels["time"].notna(), labels["event"].to_numpy(bool), None), dtype="boolean")
    return out.reset_index(drop=True), edges
