"""Ensembles: the seed ensemble of one fold (N members trained on the same training patients,
predictions combined) and the fold ensemble of ``healnet predict`` (every fold's model).

Discrete-time (``nll``) members are combined by averaging their per-bin **hazards**
(``h = sigmoid(logit)``) and returning ``logit(mean h)``, so every consumer of hazard logits
(survival curves, risk, Breslow-free metrics) sees the ensemble as one model. Cox members are
combined by averaging their log-risks. Attention / gating weights are averaged over members.

Folds have their own time bins, so the fold ensemble averages hazards on one grid (the bins fitted
on every patient of the run): :func:`survival_on_grid` puts each fold's curve on it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch import nn

from healnet_cli.models.base import SurvivalModel
from healnet_cli.models.batch import ModalitySpec, ModelOutput

COMBINES = ("hazard", "logit")
_EPS = 1e-6


class EnsembleModel(nn.Module):
    """Members with identical inputs and outputs; ``forward`` returns the combined :class:`ModelOutput`.

    Parameters
    ----------
    members : sequence of nn.Module
        Trained models (same modalities and ``n_bins``).
    combine : str
        ``"hazard"``: mean of per-bin hazards (discrete-time models); ``"logit"``: mean of logits (Cox).
    """

    def __init__(self, members: Sequence[nn.Module], combine: str = "hazard") -> None:
        super().__init__()
        if not members:
            raise ValueError("EnsembleModel needs at least one member")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    @property
    def _first(self) -> SurvivalModel:
        return cast(SurvivalModel, self.members[0])

    @property
    def name(self) -> str:
        return getattr(self._first, "name", "ensemble")

    @property
    def n_bins(self) -> int:
        return self._first.n_bins

    @property
    def modalities(self) -> dict[str, ModalitySpec]:
        return self._first.modalities

    def forward(self, batch, return_weights: bool = False) -> ModelOutput:
        outs = [m(batch, return_weights=return_weights) for m in self.members]
        return combine_outputs(outs, self.combine)


def combine_outputs(outs: Sequence[ModelOutput], combine: str = "hazard") -> ModelOutput:
    """Combine member outputs (see the module docstring)."""
    logits = torch.stack([o.logits.float() for o in outs])
    if combine == "hazard":
        hazard = torch.sigmoid(logits).mean(0).clamp(_EPS, 1.0 - _EPS)
        combined = torch.logit(hazard)
    else:
        combined = logits.mean(0)
    weights = None
    maps = [o.weights for o in outs if o.weights]
    if len(maps) == len(outs):
        keys = set.intersection(*(set(w) for w in maps))
        weights = {
            k: torch.stack([w[k].float() for w in maps]).mean(0)
            for k in keys
            if all(w[k].shape == maps[0][k].shape for w in maps)
        }
    return ModelOutput(logits=combined, weights=weights)


# -- fold ensembles (healnet predict): members with different time bins ------------------------------


def survival_on_grid(surv: np.ndarray, edges: Sequence[float], times: np.ndarray) -> np.ndarray:
    """``S(t)`` at ``times`` of discrete-time predictions ``surv [n, B]`` (``S`` at the end of each
    bin of ``edges``): a constant hazard within each bin (``log S`` linear in ``t``), ``S(0) = 1``
    and ``S`` constant after the last edge (the last bin is open-ended)."""
    knots = np.asarray(edges, dtype=np.float64)
    log_s = np.log(np.clip(np.asarray(surv, dtype=np.float64), 1e-300, 1.0))
    log_s = np.hstack([np.zeros((log_s.shape[0], 1)), log_s])
    at = np.asarray(times, dtype=np.float64)
    return np.exp(np.vstack([np.interp(at, knots, row) for row in log_s])) if len(log_s) else np.zeros((0, at.size))


def hazards_from_survival(surv: np.ndarray) -> np.ndarray:
    """Per-bin conditional hazards ``h_j = 1 - S_j / S_{j-1}`` (``S_{-1} = 1``; ``h = 1`` after ``S = 0``)."""
    surv = np.asarray(surv, dtype=np.float64)
    prev = np.hstack([np.ones((surv.shape[0], 1)), surv[:, :-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(prev > 0, 1.0 - surv / prev, 1.0)
    return np.clip(h, 0.0, 1.0)


def combine_fold_predictions(survs: Sequence[np.ndarray], risks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The fold ensemble: per-bin hazards averaged over the folds (each fold's survival given on the
    same time grid) and survival rebuilt from them; risk = the mean of the folds' own risks (each
    on its own bins, the scale of the out-of-fold risks whose quantiles cut the risk groups; for
    Cox-type models the mean log-risk, as :class:`EnsembleModel`).

    Returns ``(risk [n], surv [n, B])``.
    """
    hazard = np.mean([hazards_from_survival(s) for s in survs], axis=0)
    surv = np.cumprod(1.0 - hazard, axis=1)
    return np.mean(np.stack(risks), axis=0).astype(np.float64), surv
