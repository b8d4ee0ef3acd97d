"""EHPAL cross-modal fusion on pooled channel descriptors: PCMFA (variants R and F) and LLF.

All gates act per channel on whole streams (no token mixing), so their cost does not depend on
the number of tokens: each fusion layer maps the two pooled descriptors ``[b, c]`` to per-channel
factors, and a PCMFA multiplies each stream once by the product of its layers' factors (the pooled
descriptor of a rescaled stream is the rescaled descriptor). The shared stream and the new stream
are computed together, stacked on a leading axis of 2. For a sample whose new modality ``x`` is
absent, the factors on the shared stream are exactly 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from healnet_cli.models.ehpal_blocks import ChannelNorm, shuffle_index
from healnet_cli.models.ehpal_ops import masked, permute_channels, pointwise, pooled

__all__ = ["LLF", "PCMFA", "FusionF", "FusionR"]

EPS = 1e-6


def _norm(v: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(v.pow(2).sum(dim=-1) + EPS)


def lorentz_distance(t: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """Geodesic distance between the hyperboloid points (curvature -kappa) of tangent vectors ``t [2, b, c]``.

    With ``theta = sqrt(kappa) |t|`` (clamped at 15), ``-kappa <u, v>_L = cosh th_u cosh th_v -
    sinh th_u sinh th_v cos(u, v)``.
    """
    sk = torch.sqrt(kappa)
    n = _norm(t)  # [2, b]
    theta = (sk * n).clamp(max=15.0)
    inner = torch.cosh(theta).prod(dim=0) - (torch.sinh(theta) / n).prod(dim=0) * t.prod(dim=0).sum(dim=-1)
    return torch.acosh(inner.clamp(min=1.0 + EPS)) / sk


class FusionR(nn.Module):
    """Recommended variant: Born-rule reweighting + interference + Lorentz-distance gate.

    ``S' = S * (1 + tanh(w1 (r_x - 1) + w2 iota + w3 (g - 1/2)))`` and symmetrically for ``X``;
    all ``w`` start at zero, so the layer is the identity at initialisation. Parameters: ``norm``
    (LayerNorm affine of both streams, ``[2, c]``), ``reim`` (``w_re`` then ``w_im``), ``scalars``
    (log temperature, raw curvature, gamma0, gamma1) and ``w`` (``[stream, 3, c]``).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.norm_weight = nn.Parameter(torch.ones(2, 1, c))
        self.norm_bias = nn.Parameter(torch.zeros(2, 1, c))
        self.reim = nn.Linear(c, 2 * c, bias=False)
        self.scalars = nn.Parameter(torch.tensor([0.0, 0.0, 0.0, 1.0]))
        self.w = nn.Parameter(torch.zeros(2, 3, 1, c))

    def factors(self, p: torch.Tensor, x_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled descriptors ``p [2, b, c]`` (shared, new) -> per-channel factors ``[2, b, c]`` and gate ``[b]``."""
        c = self.channels
        log_t, kappa_raw, gamma0, gamma1 = self.scalars.unbind()
        pn = torch.addcmul(self.norm_bias, F.layer_norm(p, (c,), eps=1e-5), self.norm_weight)
        ri = self.reim(pn).view(2, -1, 2, c)  # [stream, b, re/im, c]
        power = ri.pow(2).sum(dim=2)
        r = c * torch.softmax(torch.log(power + EPS) / log_t.exp(), dim=-1)
        iota = 2 * ri.prod(dim=0).sum(dim=1) / (power.sum(dim=0) + EPS)
        kappa = F.softplus(kappa_raw) + EPS
        g = torch.sigmoid(gamma0 - gamma1 * lorentz_distance(pn / math.sqrt(c), kappa)).unsqueeze(-1)
        w_r, w_iota, w_g = self.w.unbind(dim=1)
        f = 1 + torch.tanh(w_r * (r.flip(0) - 1) + w_iota * iota + w_g * (g - 0.5))
        return _identity_where_absent(f, x_present), g.squeeze(-1)


def _identity_where_absent(f: torch.Tensor, x_present: torch.Tensor) -> torch.Tensor:
    """Factors ``[2, b, c]`` with the shared stream's set to exactly 1 where the new modality is absent."""
    keep = torch.stack([x_present, torch.ones_like(x_present)]).unsqueeze(-1)
    return torch.where(keep, f, 1.0)


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``[n, n]`` (``y = D @ x``)."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


class FusionF(nn.Module):
    """Faithful port of the authors' ``MACFusion`` layer, with numerical stabilisers.

    DCT descriptors, "fractal" Born attention ``q``, Lorentz score with mutual guidance,
    Poincare term and a scalar dual-geometry gate ``g``:
    ``S' = S * w_c * w_o * (q_x + g_x)`` and ``X' = X * w_c * w_o * (q_s + g_s)``. Parameters:
    ``reim`` (``w_re`` then ``w_im``), ``scalars`` (theta, alpha, gamma0, gamma1) and ``vectors``
    (h, fractal, w_c, w_o).
    """

    dct: torch.Tensor  # buffer

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.register_buffer("dct", dct_matrix(c), persistent=False)
        self.reim = nn.Linear(c, 2 * c, bias=False)
        nn.init.kaiming_normal_(self.reim.weight)  # fan-in c: as for two Linear(c, c)
        self.scalars = nn.Parameter(0.05 * torch.randn(4))
        vectors = torch.stack([0.05 * torch.randn(c), torch.full((c,), 1.8), torch.ones(c), torch.ones(c)])
        self.vectors = nn.Parameter(vectors)

    def factors(self, p: torch.Tensor, x_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled descriptors ``p [2, b, c]`` (shared, new) -> per-channel factors ``[2, b, c]`` and gate ``[b]``."""
        c = self.channels
        theta, alpha, gamma0, gamma1 = self.scalars.unbind()
        h, fractal, w_c, w_o = self.vectors.unbind()
        a = p @ self.dct.T  # [2, b, c]: a[0] from S, a[1] from X
        kappa = torch.exp(theta.clamp(-20.0, 20.0)).clamp(0.1, 10.0)
        frac = fractal.clamp(1.0, 2.0)
        frac_exp = frac * torch.sigmoid(kappa)
        kappa2 = kappa * torch.sigmoid(frac).mean()
        uv = self.reim(a).view(2, -1, 2, c)
        u = uv[:, :, 0]
        base = _norm(u).clamp(min=1e-3).unsqueeze(-1)
        q = torch.softmax(uv.pow(2).sum(dim=2) * base.pow(frac_exp - 2), dim=-1)
        t_other = torch.sqrt(1 + kappa2 * a.flip(0).pow(2).sum(dim=-1)) / kappa2  # mutual guidance
        beta = q @ self.reim.weight[:c]
        lorentz = alpha * (-t_other.pow(2) + (h * (a + beta).pow(2)).sum(dim=-1))
        na = _norm(a)
        poincare = torch.tanh(torch.sqrt(kappa2) * na) / na * a.pow(3).sum(dim=-1)
        g = torch.sigmoid(gamma0 * lorentz + gamma1 * poincare)  # [2, b]
        f = w_c * w_o * (q.flip(0) + g.flip(0).unsqueeze(-1))
        return _identity_where_absent(f, x_present), g[1]


class PCMFA(nn.Module):
    """Two stacked fusion layers of the chosen variant (``"R"`` or ``"F"``) on ``[c, b, n]`` streams."""

    def __init__(self, channels: int, variant: str) -> None:
        super().__init__()
        layer = FusionR if variant == "R" else FusionF
        self.layers = nn.ModuleList([layer(channels), layer(channels)])

    def forward(self, s, s_mask, x, x_mask, x_present):
        scale, gate = self._scale(torch.stack([pooled(s, s_mask), pooled(x, x_mask)]), x_present)
        return s * scale[0], x * scale[1], gate

    def stacked(self, z: torch.Tensor, x_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams stacked, ``z [2, c, b, n]``, every token real: ``(z', gate)``."""
        scale, gate = self._scale(pooled(z, None), x_present)
        return z * scale, gate

    def _scale(self, p: torch.Tensor, x_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled descriptors ``[2, b, c]`` -> each stream's product of the layers' factors ``[2, c, b, 1]``."""
        total, gate = None, None
        for layer in cast("Iterable[FusionR | FusionF]", self.layers):
            f, gate = layer.factors(p, x_present)
            p = p * f
            total = f if total is None else total * f
        assert total is not None and gate is not None, "PCMFA is built with two layers"
        return total.transpose(1, 2).unsqueeze(-1), gate


class LLF(nn.Module):
    """Mask-aware learnable late fusion of the shared stream and the new stream.

    Weights ``w_j = softplus(a_j + u_j . z_j)`` are normalised over the streams available
    per sample; the new stream enters as its pooled vector broadcast over the shared grid,
    then a grouped pointwise layer (after a channel shuffle) maps ``2c -> c``.
    """

    mix_index: torch.Tensor  # buffers
    mix_inverse: torch.Tensor

    def __init__(self, channels: int, norm: str = "layer") -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.u = nn.Parameter(torch.zeros(2, channels))
        self.mix = nn.Conv1d(2 * channels, channels, 1, groups=8 if channels % 8 == 0 else 1)
        self.norm = ChannelNorm(channels, norm)
        self.register_buffer("mix_index", shuffle_index(2 * channels, 8), persistent=False)
        self.register_buffer("mix_inverse", torch.argsort(self.mix_index), persistent=False)

    def forward(self, s, s_mask, x, x_mask, x_present):
        z_s, z_x = pooled(s, s_mask), pooled(x, x_mask)
        z_x = torch.where(x_present.unsqueeze(1), z_x, 0.0)
        w_s = F.softplus(self.bias[0] + (self.u[0] * z_s).sum(-1))
        w_x = F.softplus(self.bias[1] + (self.u[1] * z_x).sum(-1)) * x_present.to(s.dtype)
        total = w_s + w_x
        w = torch.stack([w_s / total, w_x / total], dim=1)
        stream_x = (w[:, 1:2] * z_x).t().unsqueeze(-1).expand(-1, -1, s.shape[2])
        cat = torch.cat([w[:, 0, None] * s, stream_x])
        shuffled = permute_channels(cat, 0, self.mix_index, self.mix_inverse)
        out = self.norm(pointwise(shuffled, self.mix.weight, self.mix.bias), s_mask)
        return masked(out, s_mask), w
