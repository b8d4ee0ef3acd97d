"""Per-fold omics preprocessing, fitted on training patients only.

Steps (fit on the training rows of one modality, applied to every row):

1. winsorise each feature at its training quantiles ``[q, 1-q]`` (``q = 0.005``): RNA tables hold
   outliers up to 1e4 that would otherwise dominate the mean and standard deviation;
2. optional top-k selection by training variance of the winsorised values (``top_k``);
3. drop features that are constant on the training rows;
4. z-score with the training mean and standard deviation;
5. clip to ``±clip_sd``;
6. impute missing values with the training median (in the z-scored space).

The fitted state is a plain dict of lists (:meth:`OmicsPreprocess.to_dict`), so it is stored in the
checkpoint and loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

WINSOR_Q = 0.005


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
