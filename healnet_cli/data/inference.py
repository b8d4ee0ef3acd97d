"""Predictions from a run folder: load a fold's model + preprocessing and predict patients.

Every model a fold holds is rebuilt through the model registry (``coxnet`` included), and a fold
trained with ``--ensemble N`` loads as one :class:`~healnet_cli.data.ensemble.EnsembleModel`
(hazards and attention weights averaged over its members), so callers see a single model and
``predict_table`` has one path: discrete-time hazards (``loss == "nll"``) or a Cox log-risk with
the fold's Breslow baseline (``loss == "cox"``).

Used by ``healnet train`` (out-of-fold predictions), ``healnet evaluate`` (metrics, ablations,
attention maps) and ``healnet predict``. ``drop[patient] = {"wsi"}`` marks a modality absent for
that patient (the missing-modality ablation); an absent omics modality enters a Cox-type model
as the fold's training medians.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from healnet_cli.artifacts.run import RunLayout, read_manifest, require_run
from healnet_cli.artifacts.run_bundle import read_bundle
from healnet_cli.core.errors import InputError
from healnet_cli.data.batching import PatientTable, build_table, collate, make_batches
from healnet_cli.data.cohort import WSI, Cohort, load_cohort
from healnet_cli.data.preprocess import BagScaler, OmicsPreprocess, preprocess_from_dict
from healnet_cli.data.survival import breslow_survival, risk_from_survival, survival_from_logits


@dataclass
class FoldModel:
    """Everything needed to predict with one fold (or the refit) of a run."""

    fold: int
    model_name: str
    model: Any  # a registered SurvivalModel, or an EnsembleModel of them
    preprocess: dict[str, OmicsPreprocess | BagScaler]  # omics per modality; "wsi": the bag scaler
    bin_edges: list[float]
    modalities: list[str]
    loss: str = "nll"
    breslow: tuple[np.ndarray, np.ndarray] | None = None
    cohort: Cohort | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> dict[str, list[str]]:
        """Kept feature names per omics modality (model input order)."""
        return {m: list(p.kept) for m, p in self.preprocess.items() if isinstance(p, OmicsPreprocess)}

    @property
    def n_bins(self) -> int:
        return len(self.bin_edges) - 1

    @property
    def members(self) -> list[Any]:
        """The networks of the fold (one, or the seed ensemble's)."""
        from healnet_cli.data.ensemble import EnsembleModel

        return list(self.model.members) if isinstance(self.model, EnsembleModel) else [self.model]


@dataclass
class PredictionResult:
    """``frame``: patient_id, risk, surv_0..; ``weights[pid][modality]`` per token/feature;
    ``bags[pid]``: ``[(slide_id, coords [n, 2])]`` in concatenation order (WSI weights align)."""

    frame: pd.DataFrame
    weights: dict[str, dict[str, np.ndarray]] | None = None
    bags: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)


def fold_bundle(fold_model: FoldModel, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The bundle payload of a fold (primitives + tensors; ``weights_only=True``-safe); see
    :mod:`healnet_cli.artifacts.run_bundle` for the keys."""
    from healnet_cli.data.ensemble import EnsembleModel
    from healnet_cli.models import model_to_checkpoint

    model = fold_model.model
    members = fold_model.members
    payload = {
        "model": model_to_checkpoint(members[0]),
        "model_name": fold_model.model_name,
        "preprocess": {m: p.to_dict() for m, p in fold_model.preprocess.items()},
        "bin_edges": [float(e) for e in fold_model.bin_edges],
        "modalities": list(fold_model.modalities),
        "fold": int(fold_model.fold),
        "loss": fold_model.loss,
        "provenance": dict(fold_model.provenance),
        "training": dict(fold_model.training),
        **dict(extra or {}),
    }
    if isinstance(model, EnsembleModel) and len(members) > 1:
        # Member 0 stays in "model" so that readers of single-model checkpoints still load it.
        payload["ensemble"] = {"combine": model.combine, "members": [model_to_checkpoint(m) for m in members[1:]]}
    if fold_model.breslow is not None:
        payload["breslow"] = {
            "times": torch.from_numpy(np.asarray(fold_model.breslow[0], np.float64)),
            "cum_hazard": torch.from_numpy(np.asarray(fold_model.breslow[1], np.float64)),
        }
    return payload


def _upgrade(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A bundle of a schema-1 run in today's form (coxnet was not a registered model then)."""
    payload = dict(payload)
    if payload.get("model_name") == "coxnet" and "coef" in payload["model"]:
        from healnet_cli.data.coxnet import upgrade_legacy_checkpoint

        payload = upgrade_legacy_checkpoint(payload)
    return payload


def fold_model_from_bundle(
    payload: Mapping[str, Any], *, cohort: Cohort | None, device: str | torch.device = "cpu"
) -> FoldModel:
    """Rebuild a :class:`FoldModel` from a bundle (any schema :func:`read_bundle` accepts)."""
    from healnet_cli.models import model_from_checkpoint

    payload = _upgrade(payload)
    device = torch.device(device)
    model: torch.nn.Module = model_from_checkpoint(payload["model"]).to(device).eval()
    if "ensemble" in payload:
        from healnet_cli.data.ensemble import EnsembleModel

        extra = [model_from_checkpoint(c) for c in payload["ensemble"]["members"]]
        model = EnsembleModel([model, *extra], combine=str(payload["ensemble"]["combine"])).to(device).eval()
    breslow = None
    if "breslow" in payload:
        breslow = (payload["breslow"]["times"].numpy(), payload["breslow"]["cum_hazard"].numpy())
    return FoldModel(
        fold=int(payload["fold"]),
        model_name=str(payload["model_name"]),
        model=model,
        preprocess={m: preprocess_from_dict(d) for m, d in payload["preprocess"].items()},
        bin_edges=[float(e) for e in payload["bin_edges"]],
        modalities=[str(m) for m in payload["modalities"]],
        loss=str(payload.get("loss", "nll")),
        breslow=breslow,
        cohort=cohort,
        device=device,
        provenance=dict(payload.get("provenance") or {}),
        training=dict(payload.get("training") or {}),
    )


def list_folds(run_dir: str | os.PathLike[str]) -> list[int]:
    """Fold indices with a ``fold_<k>/checkpoint.pt`` in ``run_dir``, sorted."""
    base = Path(run_dir)
    if not base.is_dir():
        raise InputError(f"run folder {base} not found; pass the --out folder of `healnet train`")
    return RunLayout(base).folds_with_checkpoint()


def load_fold(
    run_dir: str | os.PathLike[str],
    fold: int,
    *,
    workdir: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    cohort: Cohort | None = None,
) -> FoldModel:
    """Load fold ``fold`` of a run; its data come from the run's recorded workdir and extractor
    unless ``workdir`` is given. ``cohort``: one already loaded for another fold of the same run
    (every fold of a run reads the same cohort; reused when it holds the fold's modalities)."""
    layout = require_run(run_dir)
    path = layout.checkpoint(fold)
    if not path.is_file():
        raise InputError(f"{path} not found; folds with a checkpoint: {layout.folds_with_checkpoint()}")
    payload = read_bundle(path)
    if cohort is None or list(cohort.modalities) != [str(m) for m in payload["modalities"]]:
        manifest = read_manifest(layout)
        cohort = load_cohort(
            workdir if workdir is not None else (manifest.workdir or "healnet_work"),
            payload["modalities"],
            extractor=manifest.extractor,
            require_all=False,
        )
    return fold_model_from_bundle(payload, cohort=cohort, device=device)


def cpu_threads(modalities: Sequence[str], device: torch.device) -> int | None:
    """Intra-op threads for CPU work on these modalities, or None to leave torch's setting (CUDA, or
    the user set ``OMP_NUM_THREADS``). Omics-only models use 1: their tensors are tiny, so every extra
    thread only adds synchronisation (EHPAL on BLCA: 139 ms per training step with 1 thread, 349 ms
    with 2 under ``OMP_WAIT_POLICY=PASSIVE``). Runs with WSI bags use the job's CPUs."""
    from healnet_cli.core.hpc import available_cpus

    if device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return None
    return available_cpus() if WSI in modalities else 1


def _token_weights(
    weights: Mapping[str, torch.Tensor] | None, table: PatientTable, rows: np.ndarray, batch: dict
) -> list[dict[str, np.ndarray]]:
    out: list[dict[str, np.ndarray]] = [{} for _ in rows]
    if not weights:
        return out
    for m in table.modalities:
        w = weights.get(m)
        if w is None or m not in batch or w.dim() != 2:
            continue
        arr = w.detach().float().cpu().numpy()
        present = batch[m].present.cpu().numpy()
        mask = batch[m].token_mask.cpu().numpy() if batch[m].token_mask is not None else None
        for j in range(len(rows)):
            if present[j]:
                out[j][m] = arr[j][mask[j]] if mask is not None else arr[j]
    return out


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    table: PatientTable,
    *,
    batch_size: int,
    device: torch.device,
    return_weights: bool = False,
    autocast: torch.dtype | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Hazard logits ``[n, bins]`` for every row of ``table`` (whole bags) and per-row token weights."""
    logits, weights = [], []
    model.eval()
    for rows in make_batches(table.lengths(), batch_size, None):
        batch = collate(table, rows, device=device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            out = model(batch, return_weights=return_weights)
        logits.append(out.logits.float().cpu().numpy())
        if return_weights:
            weights.extend(_token_weights(out.weights, table, rows, batch))
    return (np.concatenate(logits) if logits else np.zeros((0, 1))), weights


def predict_table(
    fm: FoldModel,
    table: PatientTable,
    *,
    batch_size: int = 8,
    return_weights: bool = False,
    autocast: torch.dtype | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Risk and survival per bin for each row of ``table``."""
    at = np.asarray(fm.bin_edges[1:], dtype=np.float64)
    logits, w = predict_logits(
        fm.model, table, batch_size=batch_size, device=fm.device, return_weights=return_weights, autocast=autocast
    )
    weights: list[dict] = w if return_weights else [{} for _ in table.ids]
    if fm.loss == "cox":
        if fm.breslow is None:
            raise InputError(
                f"fold {fm.fold}: a Cox-type model without its Breslow baseline in the checkpoint; retrain the run"
            )
        risk = logits[:, 0].astype(np.float64)
        surv = breslow_survival(risk, fm.breslow[0], fm.breslow[1], at)
    else:
        surv = survival_from_logits(logits)
        risk = risk_from_survival(surv)
    frame = pd.DataFrame({"patient_id": table.ids, "risk": risk})
    for j in range(surv.shape[1]):
        frame[f"surv_{j}"] = surv[:, j]
    return frame, weights


def _slide_coords(cohort: Cohort, patient_id: str, coords: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``[(slide_id, coords)]`` of a patient's bag, split from the coordinates already read with its
    features (each bag is read once)."""
    refs = cohort.slides.get(patient_id, [])
    if sum(r.n_patches for r in refs) != coords.shape[0]:  # provenance disagrees with the files: read them
        return cohort.load_bag(patient_id)[2]
    out, start = [], 0
    for ref in refs:
        out.append((ref.slide_id, coords[start : start + ref.n_patches]))
        start += ref.n_patches
    return out


def predict_patients(
    fold_model: FoldModel,
    patient_ids: Sequence[str],
    *,
    drop: Mapping[str, Collection[str]] | None = None,
    return_weights: bool = False,
    batch_size: int = 8,
    bag_cache: dict[str, Any] | None = None,
) -> PredictionResult:
    """Predict ``patient_ids`` with one fold's model (whole bags, eval mode).

    ``bag_cache``: a dict kept by the caller across calls with the same fold model (e.g. the
    conditions of the missing-modality ablation), so that each bag is read and standardised once.

    Raises
    ------
    InputError
        A patient that is not in the run's cohort (no label or no requested modality).
    """
    cohort = fold_model.cohort
    if cohort is None:  # a programming error: load_fold_model always attaches the run's cohort
        raise ValueError("predict_patients needs a fold model with its cohort (see load_fold_model)")
    ids = [str(p) for p in patient_ids]
    missing = [p for p in ids if p not in cohort.presence.index]
    if missing:
        raise InputError(f"{len(missing)} patient(s) not in the cohort of this run (e.g. {missing[0]}); check the ids")
    table = build_table(cohort, ids, fold_model.preprocess, drop=drop)
    if bag_cache is not None:
        table._bags = bag_cache
    frame, weights = predict_table(fold_model, table, batch_size=batch_size, return_weights=return_weights)
    bags: dict[str, list[tuple[str, np.ndarray]]] = {}
    if return_weights and WSI in fold_model.modalities:
        for i, p in enumerate(ids):
            if table.present[WSI][i]:
                bags[p] = _slide_coords(cohort, p, table.bag(i)[1].numpy())
    result_w = {p: weights[i] for i, p in enumerate(ids)} if return_weights else None
    return PredictionResult(frame, result_w, bags)
