"""Per-fold preprocessing, fitted on training patients only: omics tables and WSI bag features.

Steps (fit on the training rows of one modality, applied to every row):

1. winsorise each feature at its training quantiles ``[q, 1-q]`` (``q = 0.005``): RNA tables hold
   outliers up to 1e4 that would otherwise dominate the mean and standard deviation;
2. optional top-k selection by training variance of the winsorised values (``top_k``);
3. drop features that are constant on the training rows;
4. z-score with the training mean and standard deviation;
5. clip to ``±clip_sd``;
6. impute missing values with the training median (in the z-scored space).

WSI bags (:class:`BagScaler`): every feature dimension is standardised with the mean and standard
deviation over the patches of the fold's training patients (at most ``BAG_SCALER_PATCHES`` patches
per patient, drawn with a fixed seed, so that no patient dominates and the fit stays cheap).

Each fitted state is a plain dict of lists (``to_dict``; :func:`preprocess_from_dict` reads either
kind back), so it is stored in the checkpoint and loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

WINSOR_Q = 0.005
BAG_SCALER_PATCHES = 4096


@dataclass
class OmicsPreprocess:
    """Fitted preprocessing of one omics modality (all arrays over the kept features)."""

    kept: list[str]
    lower: np.ndarray
    upper: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    median: np.ndarray
    clip_sd: float

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """``[n, f_kept]`` float32 features of the rows of ``frame`` (missing columns = NaN → median)."""
        x = frame.reindex(columns=self.kept).to_numpy(np.float64)
        x = np.clip(x, self.lower, self.upper)
        z = (x - self.mean) / self.std
        if self.clip_sd > 0:
            z = np.clip(z, -self.clip_sd, self.clip_sd)
        z = np.where(np.isnan(z), self.median, z)
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": list(self.kept),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "median": self.median.tolist(),
            "clip_sd": float(self.clip_sd),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OmicsPreprocess:
        arr = {k: np.asarray(d[k], dtype=np.float64) for k in ("lower", "upper", "mean", "std", "median")}
        return cls(kept=[str(k) for k in d["kept"]], clip_sd=float(d["clip_sd"]), **arr)


def fit_omics_preprocess(train: pd.DataFrame, *, clip_sd: float = 5.0, top_k: int | None = None) -> OmicsPreprocess:
    """Fit :class:`OmicsPreprocess` on the training rows ``train`` (patients × features).

    Only ``train`` is read, so nothing about validation or test patients can leak into the state.
    """
    x = train.to_numpy(np.float64)
    cols = np.asarray([str(c) for c in train.columns])
    with np.errstate(all="ignore"):
        lower = np.nanquantile(x, WINSOR_Q, axis=0) if len(x) else np.zeros(x.shape[1])
        upper = np.nanquantile(x, 1 - WINSOR_Q, axis=0) if len(x) else np.zeros(x.shape[1])
    ok = np.isfinite(lower) & np.isfinite(upper)
    xw = np.clip(x, lower, upper)
    with np.errstate(all="ignore"):
        var = np.nanvar(xw, axis=0)
    ok &= np.isfinite(var) & (var > 1e-12)
    idx = np.flatnonzero(ok)
    if top_k is not None and 0 < top_k < len(idx):
        order = np.argsort(-var[idx], kind="stable")[:top_k]
        idx = np.sort(idx[order])
    xw = xw[:, idx]
    mean = np.nanmean(xw, axis=0)
    std = np.nanstd(xw, axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    z = (xw - mean) / std
    if clip_sd > 0:
        z = np.clip(z, -clip_sd, clip_sd)
    median = np.nanmedian(z, axis=0)
    median = np.where(np.isfinite(median), median, 0.0)
    return OmicsPreprocess(cols[idx].tolist(), lower[idx], upper[idx], mean, std, median, float(clip_sd))


@dataclass
class BagScaler:
    """Per-dimension standardisation of WSI patch features, fitted on training patients."""

    mean: np.ndarray
    std: np.ndarray
    n_patches: int

    def transform(self, feats: np.ndarray) -> np.ndarray:
        """``[n, d]`` → standardised float32 ``[n, d]``."""
        return ((feats - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bag_scaler",
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "n_patches": int(self.n_patches),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BagScaler:
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64), int(d.get("n_patches", 0)))


def fit_bag_scaler(bags: Iterable[np.ndarray], *, per_bag: int = BAG_SCALER_PATCHES, seed: int = 0) -> BagScaler | None:
    """Fit :class:`BagScaler` on the training patients' bags (``[n_i, d]`` each); None without bags.

    Bags longer than ``per_bag`` contribute a fixed-seed random subset of ``per_bag`` patches.
    Dimensions that are constant on the training patches keep a standard deviation of 1.
    """
    rng = np.random.default_rng(seed)
    total, s1, s2, shift = 0, None, None, None
    for feats in bags:
        x = np.asarray(feats, dtype=np.float64)
        if len(x) == 0:
            continue
        if len(x) > per_bag:
            x = x[np.sort(rng.choice(len(x), per_bag, replace=False))]
        if shift is None:  # shifted sums: no cancellation when |mean| >> std
            shift = x.mean(axis=0)
            s1, s2 = np.zeros_like(shift), np.zeros_like(shift)
        d = x - shift
        s1 += d.sum(axis=0)
        s2 += (d * d).sum(axis=0)
        total += len(x)
    if total == 0 or s1 is None or s2 is None or shift is None:
        return None
    mean_d = s1 / total
    var = np.maximum(s2 / total - mean_d**2, 0.0)
    std = np.sqrt(var)
    return BagScaler(shift + mean_d, np.where(std > 1e-8, std, 1.0), total)


def preprocess_from_dict(d: dict[str, Any]) -> OmicsPreprocess | BagScaler:
    """Read back a state written by ``OmicsPreprocess.to_dict`` or ``BagScaler.to_dict``."""
    return BagScaler.from_dict(d) if d.get("kind") == "bag_scaler" else OmicsPreprocess.from_dict(d)
