"""EHPAL cross-modal fusion on pooled channel descriptors: PCMFA (variants R and F) and LLF.

All gates act per channel on whole streams (no token mixing), so their cost does not
depend on the number of tokens. For a sample whose new modality ``x`` is absent, the
gates on the shared stream are exactly the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from healnet_cli.models.ehpal_blocks import ChannelNorm, channel_shuffle, masked

__all__ = ["LLF", "PCMFA", "FusionF", "FusionR"]

EPS = 1e-6


def pooled(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean of ``[b, c, n]`` over tokens -> ``[b, c]``."""
    m = mask.unsqueeze(1).to(x.dtype)
    return (x * m).sum(dim=2) / m.sum(dim=2).clamp(min=1.0)


def _norm(v: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(v.pow(2).sum(dim=-1) + EPS)


def lorentz_distance(u: torch.Tensor, v: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """Geodesic distance after mapping tangent vectors ``u, v [b, c]`` onto the hyperboloid of curvature -kappa."""
    sk = torch.sqrt(kappa)

    def expmap0(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = _norm(t)
        theta = (sk * n).clamp(max=15.0)
        return torch.cosh(theta) / sk, torch.sinh(theta).unsqueeze(-1) * t / (sk * n).unsqueeze(-1)

    u0, us = expmap0(u)
    v0, vs = expmap0(v)
    inner = -u0 * v0 + (us * vs).sum(dim=-1)
    return torch.acosh((-kappa * inner).clamp(min=1.0 + EPS)) / sk


class FusionR(nn.Module):
    """Recommended variant: Born-rule reweighting + interference + Lorentz-distance gate.

    ``S' = S * (1 + tanh(w1 (r_x - 1) + w2 iota + w3 (g - 1/2)))`` and symmetrically for
    ``X``; all ``w`` start at zero, so the layer is the identity at initialisation.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.norm_s, self.norm_x = nn.LayerNorm(c), nn.LayerNorm(c)
        self.w_re = nn.Linear(c, c, bias=False)
        self.w_im = nn.Linear(c, c, bias=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.kappa_raw = nn.Parameter(torch.zeros(()))
        self.gamma0 = nn.Parameter(torch.zeros(()))
        self.gamma1 = nn.Parameter(torch.ones(()))
        self.w_s = nn.Parameter(torch.zeros(3, c))
        self.w_x = nn.Parameter(torch.zeros(3, c))

    def _born(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        re, im = self.w_re(p), self.w_im(p)
        power = re.pow(2) + im.pow(2)
        q = torch.softmax(torch.log(power + EPS) / self.log_temperature.exp(), dim=-1)
        return re, im, self.channels * q

    def forward(self, s, s_mask, x, x_mask, x_present):
        ps, px = self.norm_s(pooled(s, s_mask)), self.norm_x(pooled(x, x_mask))
        re_s, im_s, r_s = self._born(ps)
        re_x, im_x, r_x = self._born(px)
        iota = 2 * (re_s * re_x + im_s * im_x) / (re_s.pow(2) + im_s.pow(2) + re_x.pow(2) + im_x.pow(2) + EPS)
        kappa = F.softplus(self.kappa_raw) + EPS
        scale = math.sqrt(self.channels)
        dist = lorentz_distance(ps / scale, px / scale, kappa)
        g = torch.sigmoid(self.gamma0 - self.gamma1 * dist).unsqueeze(-1)
        f_s = 1 + torch.tanh(self.w_s[0] * (r_x - 1) + self.w_s[1] * iota + self.w_s[2] * (g - 0.5))
        f_x = 1 + torch.tanh(self.w_x[0] * (r_s - 1) + self.w_x[1] * iota + self.w_x[2] * (g - 0.5))
        f_s = torch.where(x_present.unsqueeze(1), f_s, 1.0)
        return s * f_s.unsqueeze(-1), x * f_x.unsqueeze(-1), g.squeeze(-1)


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
    ``S' = S * w_c * w_o * (q_x + g_x)`` and ``X' = X * w_c * w_o * (q_s + g_s)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.register_buffer("dct", dct_matrix(c), persistent=False)
        self.w_re = nn.Linear(c, c, bias=False)
        self.w_im = nn.Linear(c, c, bias=False)
        nn.init.kaiming_normal_(self.w_re.weight)
        nn.init.kaiming_normal_(self.w_im.weight)
        self.theta = nn.Parameter(0.05 * torch.randn(()))
        self.alpha = nn.Parameter(0.05 * torch.randn(()))
        self.h = nn.Parameter(0.05 * torch.randn(c))
        self.gammas = nn.Parameter(0.05 * torch.randn(2))
        self.fractal = nn.Parameter(torch.full((c,), 1.8))
        self.w_c = nn.Parameter(torch.ones(c))
        self.w_o = nn.Parameter(torch.ones(c))

    def _attention(self, a, b, frac_exp, kappa2):
        u, v = self.w_re(a), self.w_im(a)
        base = _norm(u).clamp(min=1e-3).unsqueeze(-1)
        q = torch.softmax((u.pow(2) + v.pow(2)) * base.pow(frac_exp - 2), dim=-1)
        t_other = torch.sqrt(1 + kappa2 * b.pow(2).sum(dim=-1)) / kappa2  # mutual guidance
        beta = q @ self.w_re.weight
        lorentz = self.alpha * (-t_other.pow(2) + (self.h * (a + beta).pow(2)).sum(dim=-1))
        na = _norm(a)
        poincare = torch.tanh(torch.sqrt(kappa2) * na) / na * a.pow(3).sum(dim=-1)
        g = torch.sigmoid(self.gammas[0] * lorentz + self.gammas[1] * poincare)
        return q, g

    def forward(self, s, s_mask, x, x_mask, x_present):
        a = pooled(s, s_mask) @ self.dct.T
        b = pooled(x, x_mask) @ self.dct.T
        kappa = torch.exp(self.theta.clamp(-20.0, 20.0)).clamp(0.1, 10.0)
        frac = self.fractal.clamp(1.0, 2.0)
        frac_exp = frac * torch.sigmoid(kappa)
        kappa2 = kappa * torch.sigmoid(frac).mean()
        q_a, g_a = self._attention(a, b, frac_exp, kappa2)
        q_b, g_b = self._attention(b, a, frac_exp, kappa2)
        f_s = self.w_c * self.w_o * (q_b + g_b.unsqueeze(-1))
        f_x = self.w_c * self.w_o * (q_a + g_a.unsqueeze(-1))
        f_s = torch.where(x_present.unsqueeze(1), f_s, 1.0)
        return s * f_s.unsqueeze(-1), x * f_x.unsqueeze(-1), g_b


class PCMFA(nn.Module):
    """Two stacked fusion layers of the chosen variant (``"R"`` or ``"F"``)."""

    def __init__(self, channels: int, variant: str) -> None:
        super().__init__()
        layer = FusionR if variant == "R" else FusionF
        self.layers = nn.ModuleList([layer(channels), layer(channels)])

    def forward(self, s, s_mask, x, x_mask, x_present):
        gate = None
        for layer in self.layers:
            s, x, gate = layer(s, s_mask, x, x_mask, x_present)
        return s, x, gate


class LLF(nn.Module):
    """Mask-aware learnable late fusion of the shared stream and the new stream.

    Weights ``w_j = softplus(a_j + u_j . z_j)`` are normalised over the streams available
    per sample; the new stream enters as its pooled vector broadcast over the shared grid,
    then a grouped pointwise layer (after a channel shuffle) maps ``2c -> c``.
    """

    def __init__(self, channels: int, norm: str = "layer") -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.u = nn.Parameter(torch.zeros(2, channels))
        self.mix = nn.Conv1d(2 * channels, channels, 1, groups=8 if channels % 8 == 0 else 1)
        self.norm = ChannelNorm(channels, norm)

    def forward(self, s, s_mask, x, x_mask, x_present):
        z_s, z_x = pooled(s, s_mask), pooled(x, x_mask)
        z_x = torch.where(x_present.unsqueeze(1), z_x, 0.0)
        w_s = F.softplus(self.bias[0] + (self.u[0] * z_s).sum(-1))
        w_x = F.softplus(self.bias[1] + (self.u[1] * z_x).sum(-1)) * x_present.to(s.dtype)
        total = w_s + w_x
        w = torch.stack([w_s / total, w_x / total], dim=1)
        stream_x = (w[:, 1:2] * z_x).unsqueeze(-1).expand(-1, -1, s.shape[2])
        cat = torch.cat([w[:, 0, None, None] * s, stream_x], dim=1)
        out = self.norm(self.mix(channel_shuffle(cat, 8)), s_mask)
        return masked(out, s_mask), w
