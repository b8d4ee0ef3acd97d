"""A seed ensemble of one fold: N members trained on the same training patients, predictions combined.

Discrete-time (``nll``) members are combined by averaging their per-bin **hazards**
(``h = sigmoid(logit)``) and returning ``logit(mean h)``, so every consumer of hazard logits
(survival curves, risk, Breslow-free metrics) sees the ensemble as one model. Cox members are
combined by averaging their log-risks. Attention / gating weights are averaged over members.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from healnet_cli.models.batch import ModelOutput

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
    def name(self) -> str:
        return getattr(self.members[0], "name", "ensemble")

    @property
    def n_bins(self) -> int:
        return int(self.members[0].n_bins)

    @property
    def modalities(self):
        return self.members[0].modalities

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
    if all(o.weights for o in outs):
        keys = set.intersection(*(set(o.weights) for o in outs))
        weights = {k: torch.stack([o.weights[k].float() for o in outs]).mean(0) for k in keys
                   if all(o.weights[k].shape == outs[0].weights[k].shape for o in outs)}
    return ModelOutput(logits=combined, weights=weights)
