"""Survival losses on hazard logits.

``nll``: the discrete-time negative log-likelihood of Zadeh & Schmid (2020) in the MCAT form, with
``h = sigmoid(logits)`` and ``S_j = Π_{i<=j} (1 - h_i)``:

* uncensored in bin ``y``: ``-log S_{y-1} - log h_y``;
* censored in bin ``y``: ``-log S_y``;
* ``loss = (1 - alpha) * (censored + uncensored) + alpha * uncensored``.

``alpha = 0`` (the default) is the plain likelihood; ``alpha > 0`` up-weights the uncensored terms
(HEALNet uses 0.4, SurvPath 0.5). Computed with log-sigmoids, so no clamping is needed.

``cox``: the negative Breslow partial log-likelihood of the first logit within the batch (needs
events in the batch; samples with no event contribute only through the risk sets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nll_loss(logits: torch.Tensor, bins: torch.Tensor, event: torch.Tensor, *, alpha: float = 0.0) -> torch.Tensor:
    """Per-sample discrete-time NLL ``[b]`` (sum or mean it yourself)."""
    log_h = F.logsigmoid(logits)
    log_1mh = F.logsigmoid(-logits)
    log_s = torch.cumsum(log_1mh, dim=1)
    log_s_pad = torch.cat([torch.zeros_like(log_s[:, :1]), log_s], dim=1)  # S_{-1} = 1
    y = bins.long().unsqueeze(1)
    ev = event.to(logits.dtype)
    s_prev = log_s_pad.gather(1, y).squeeze(1)
    s_this = log_s_pad.gather(1, y + 1).squeeze(1)
    h_this = log_h.gather(1, y).squeeze(1)
    uncensored = -ev * (s_prev + h_this)
    censored = -(1.0 - ev) * s_this
    return (1.0 - alpha) * (censored + uncensored) + alpha * uncensored


def cox_loss(logits: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Per-sample negative partial log-likelihood terms ``[b]`` (Breslow ties; zero for censored)."""
    risk = logits[:, 0].float()
    order = torch.argsort(time, descending=True)
    r, ev = risk[order], event[order].to(risk.dtype)
    t = time[order]
    log_cum = torch.logcumsumexp(r, dim=0)
    # ties: the risk set of time t includes every sample with time >= t
    last = torch.searchsorted(-t.contiguous(), -t.contiguous(), right=True) - 1
    log_risk_set = log_cum[last]
    terms = -(r - log_risk_set) * ev
    out = torch.zeros_like(terms)
    out[order] = terms
    return out
