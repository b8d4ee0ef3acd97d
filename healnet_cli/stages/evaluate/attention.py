"""Interpretability from the models' own weights: HEALNet's cross-attention (or ABMIL / EHPAL
pooling and gating weights, whatever the model returns per modality) → top omics features and
per-patch heatmaps for the highest- and lowest-risk patients."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.artifacts.run import WSI
from healnet_cli.stages.evaluate.inference_port import FoldModels
from healnet_cli.stages.evaluate.run_folder import RunData


@dataclass
class Heatmap:
    """Per-patch weights of one slide of one patient, with what is needed to draw them."""

    patient_id: str
    label: str
    risk: float
    slide_id: str
    coords: np.ndarray
    weights: np.ndarray
    patch_px_level0: float
    thumbnail: np.ndarray | None = None
    thumbnail_downsample: float | None = None
    note: str = ""


@dataclass
class AttentionResult:
    top_features: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    heatmaps: list[Heatmap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "top_features": {m: [{"feature": n, "mean_weight": w} for n, w in v] for m, v in self.top_features.items()},
            "unavailable": self.unavailable,
            "heatmaps": [
                {
                    "patient_id": h.patient_id,
                    "label": h.label,
                    "risk": h.risk,
                    "slide_id": h.slide_id,
                    "n_patches": int(h.coords.shape[0]),
                    "background": "thumbnail" if h.thumbnail is not None else "blank",
                    **({"note": h.note} if h.note else {}),
                }
                for h in self.heatmaps
            ],
            "notes": self.notes,
        }


def _flat(w: Any) -> np.ndarray:
    """Per-token weights as 1-D (extra axes such as heads are averaged)."""
    arr = np.asarray(w, dtype=float)
    while arr.ndim > 1:
        arr = arr.mean(axis=-1)
    return arr.reshape(-1)


class _FeatureAccumulator:
    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = {}
        self.counts: dict[str, int] = {}
        self.reasons: dict[str, str] = {}

    def add(self, modality: str, names: list[str], w: np.ndarray, model_name: str) -> None:
        if w.size == len(names) and len(names) > 1:
            acc = self.sums.setdefault(modality, {})
            for n, v in zip(names, w, strict=True):
                acc[n] = acc.get(n, 0.0) + float(v)
            self.counts[modality] = self.counts.get(modality, 0) + 1
        elif w.size == 1:
            self.reasons[modality] = _SINGLE_TOKEN.format(model=model_name, m=modality)
        else:
            self.reasons[modality] = f"not available: {w.size} weights for {len(names)} features (not one per feature)"

    def top(self, k: int) -> dict[str, list[tuple[str, float]]]:
        out = {}
        for m, acc in self.sums.items():
            means = sorted(((n, s / self.counts[m]) for n, s in acc.items()), key=lambda t: -t[1])
            out[m] = means[:k]
        return out


def _thumbnail(tiles_dir: Path | None, slide_id: str) -> tuple[np.ndarray | None, float | None, float | None, str]:
    """Thumbnail array, its downsample and the level-0 patch size from the tiles metadata."""
    if tiles_dir is None:
        return None, None, None, "no workdir: drawn on a blank canvas"
    path = tiles_dir / f"{slide_id}.parquet"
    if not path.is_file():
        return None, None, None, f"no {path}: drawn on a blank canvas"
    try:
        from healnet_cli.artifacts.coords import read_coords_meta

        meta = read_coords_meta(path)
    except Exception as exc:  # noqa: BLE001 - a missing thumbnail only changes the background
        return None, None, None, f"{path} unreadable ({type(exc).__name__}): drawn on a blank canvas"
    patch = float(meta.get("patch_px_level0") or 0) or None
    png, ds = meta.get("thumbnail_png"), meta.get("thumbnail_downsample")
    if not png or not ds or not (tiles_dir / png).is_file():
        return None, None, patch, "no thumbnail in the tiles folder: drawn on a blank canvas"
    from PIL import Image

    with Image.open(tiles_dir / png) as img:
        return np.asarray(img.convert("RGB")), float(ds), patch, ""


def _patch_size(coords: np.ndarray) -> float:
    """Level-0 patch size guessed from the coordinate grid (its smallest step, :func:`grid_steps`)."""
    import torch

    from healnet_cli.models.blocks import grid_steps

    xy = torch.from_numpy(np.asarray(coords, dtype=np.float64))[None]
    step = float(grid_steps(xy, torch.ones(xy.shape[:2], dtype=torch.bool)).min())
    return step if np.isfinite(step) else 256.0


def _heatmaps(pid: str, label: str, risk: float, w: np.ndarray, bags: list, tiles_dir: Path | None) -> list[Heatmap]:
    out, start = [], 0
    for slide_id, coords in bags:
        coords = np.asarray(coords, dtype=float)
        part = w[start : start + coords.shape[0]]
        start += coords.shape[0]
        if part.size != coords.shape[0] or part.size == 0:
            continue
        thumb, ds, patch, note = _thumbnail(tiles_dir, str(slide_id))
        out.append(
            Heatmap(pid, label, risk, str(slide_id), coords, part, patch or _patch_size(coords), thumb, ds, note)
        )
    return out[:2]


PROBE_PATIENTS = 2


# Built-in models whose outputs hold no weight per omics feature, whatever their hyper-parameters
# (their weights, if any, are over patches). HEALNet's depend on `omics_tokens`. Checked against
# each model's real output in tests/stages/evaluate/test_attention_static.py.
NO_FEATURE_WEIGHTS = frozenset({"ehpal", "snn", "abmil", "concat", "late", "coxnet", "cox-clinical"})
_SINGLE_TOKEN = (
    "not available: {model} encodes {m} as a single token (the whole vector), so its weight cannot be "
    "attributed to individual features"
)
_NO_WEIGHTS = "not available: {model} returns no per-feature weights for {m}"


def _nothing_message(modalities: list[str], reasons: dict[str, str], model_name: str) -> str:
    by_reason: dict[str, list[str]] = {}
    for m in modalities:
        reason = reasons.get(m) or _NO_WEIGHTS.format(model=model_name, m=m)
        by_reason.setdefault(reason.replace(f" {m} ", " {m} "), []).append(m)
    why = "; ".join(
        r.replace(" {m} ", f" {'/'.join(ms)} ").removeprefix("not available: ") for r, ms in by_reason.items()
    )
    return f"nothing to draw: the run has no slides, and {why}"


def known_nothing_to_draw(run: RunData) -> str | None:
    """:func:`nothing_to_draw`'s answer when the run's options already tell it (a built-in model that
    returns no per-feature weights, on a run without slides), without loading a model (or torch);
    None when only the probe can tell."""
    if WSI in run.modalities or not run.folds:
        return None
    name, hparams = run.model_name, dict(run.options.get("hparams") or {})
    if name in NO_FEATURE_WEIGHTS:
        return _nothing_message(run.modalities, {}, name)
    if name != "healnet" or "linear_modalities" not in hparams:
        return None
    if hparams.get("omics_tokens", "single") != "single":
        return None
    linear = set(hparams.get("linear_modalities") or [])
    reasons = {m: _SINGLE_TOKEN.format(model=name, m=m) for m in run.modalities if m not in linear}
    return _nothing_message(run.modalities, reasons, name)


def nothing_to_draw(run: RunData, models: FoldModels, *, batch_size: int = 8) -> str:
    """Why a run has no attention to draw (``""`` when it may have some): a run without slides whose
    model, asked for its weights on a couple of test patients of the first fold, returns none per
    omics feature (e.g. each omics modality enters as one token). Folds share the architecture, so
    one probe answers for all, and the pass over every patient is skipped."""
    if WSI in run.modalities or not run.folds:
        return ""
    k = run.folds[0]
    fm = models.get(k)
    model_name = str(getattr(fm, "model_name", run.model_name))
    ids = run.predictions.loc[run.predictions["fold"] == k, "patient_id"].astype(str).tolist()[:PROBE_PATIENTS]
    res = models.inference.predict_patients(fm, ids, return_weights=True, batch_size=batch_size)
    names = dict(getattr(fm, "feature_names", {}) or {})
    acc = _FeatureAccumulator()
    for per_mod in (res.weights or {}).values():
        for m, w in per_mod.items():
            if m in names:
                acc.add(m, list(names[m]), _flat(w), model_name)
    if acc.sums:
        return ""
    return _nothing_message(run.modalities, acc.reasons, model_name)


def run_attention(
    run: RunData, models: FoldModels, *, top_k: int, tiles_dir: Path | None, batch_size: int = 8
) -> AttentionResult:
    """Weights for every test patient (each by its fold's model): top omics features averaged over
    patients, and WSI heatmaps of the highest- and lowest-risk patients that have slides."""
    result, acc = AttentionResult(), _FeatureAccumulator()
    wsi_weights: dict[str, tuple[np.ndarray, list]] = {}
    model_name = run.model_name
    for k in run.folds:
        fm = models.get(k)
        model_name = str(getattr(fm, "model_name", model_name))
        ids = run.predictions.loc[run.predictions["fold"] == k, "patient_id"].astype(str).tolist()
        res = models.inference.predict_patients(fm, ids, return_weights=True, batch_size=batch_size)
        names = dict(getattr(fm, "feature_names", {}) or {})
        for pid, per_mod in (res.weights or {}).items():
            for m, w in per_mod.items():
                if m == WSI:
                    if pid in res.bags:
                        wsi_weights[pid] = (_flat(w), res.bags[pid])
                elif m in names:
                    acc.add(m, list(names[m]), _flat(w), model_name)
    result.top_features = acc.top(top_k)
    for m in run.modalities:
        if m in result.top_features or m == WSI and wsi_weights:
            continue
        result.unavailable[m] = (
            acc.reasons.get(m) or f"not available: {model_name} returns no per-token weights for {m}"
        )
    ranked = run.predictions.set_index(run.predictions["patient_id"].astype(str))["risk"]
    ranked = ranked[ranked.index.isin(list(wsi_weights))].sort_values()
    if len(ranked):
        picks = [("highest risk", ranked.index[-1])] + ([("lowest risk", ranked.index[0])] if len(ranked) > 1 else [])
        for label, pid in picks:
            w, bags = wsi_weights[pid]
            result.heatmaps += _heatmaps(pid, label, float(ranked[pid]), w, bags, tiles_dir)
    return result
