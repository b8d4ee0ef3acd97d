"""EHPAL building blocks on masked token sequences.

Layout: features ``[b, c, n]`` (channels first, for Conv1d) with a token mask
``[b, n]`` bool (True = real token). Every op re-applies the mask; strided ops
downsample it as ``mask[:, ::stride]``. Because valid tokens always form a prefix
(see :func:`hilbert_order`), zero padding behaves exactly like the conv's own padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MHCF",
    "NORMS",
    "RGSA",
    "SIR",
    "BagStem",
    "ChannelNorm",
    "hilbert_index",
    "hilbert_order",
    "masked",
]

HILBERT_BITS = 16


def masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padding tokens of ``x [b, c, n]``."""
    return x.masked_fill(~mask.unsqueeze(1), 0.0)


def _groups(*channels: int, limit: int = 8) -> int:
    g = limit
    for c in channels:
        g = math.gcd(g, c)
    return g


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle of ``[b, c, n]``."""
    b, c, n = x.shape
    g = _groups(c, limit=groups)
    return x.reshape(b, g, c // g, n).transpose(1, 2).reshape(b, c, n)


NORMS = ("layer", "group")


class ChannelNorm(nn.Module):
    """Normalisation of ``[b, c, n]`` that never mixes in padding tokens.

    ``kind="layer"``: channels-last LayerNorm, statistics per token. ``kind="group"``: GroupNorm
    with 8 channel groups (1 if ``c`` is not a multiple of 8), statistics over the **valid tokens of
    each sample** (``mask``), so how strongly one token responds relative to the sample's others
    survives the norm (a per-token LayerNorm rescales every token to unit spread). Both act per
    sample: no batch statistics.
    """

    def __init__(self, channels: int, kind: str = "layer", eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.kind, self.eps = kind, eps
        self.groups = 8 if channels % 8 == 0 else 1

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "layer":
            return F.layer_norm(x.transpose(1, 2), self.weight.shape, self.weight, self.bias, self.eps).transpose(1, 2)
        # The fused kernel when no token is padding; on CUDA the masked path always (checking
        # ``mask.all()`` would synchronise the device at every norm).
        if mask is None or (x.device.type == "cpu" and bool(mask.all())):
            return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)
        b, c, n = x.shape
        xg = x.reshape(b, self.groups, c // self.groups, n)
        m = mask[:, None, None, :].to(x.dtype)
        count = (m.sum(dim=(2, 3), keepdim=True) * (c // self.groups)).clamp(min=1.0)
        mean = (xg * m).sum(dim=(2, 3), keepdim=True) / count
        var = ((xg - mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / count
        out = ((xg - mean) * torch.rsqrt(var + self.eps)).reshape(b, c, n)
        return out * self.weight[:, None] + self.bias[:, None]


def _pw(c_in: int, c_out: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, 1, stride=stride, groups=_groups(c_in, c_out))


def _dw(c: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Conv1d:
    return nn.Conv1d(c, c, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=c)


class MHCF(nn.Module):
    """Multi-kernel heterogeneous conv fusion ``[b, c_in, n] -> [b, c_out, ceil(n/s)]``.

    Branches grouped pointwise (groups 8), depthwise k=3 and depthwise k=5, each normed;
    concat -> channel shuffle -> grouped pointwise -> norm; grouped pointwise shortcut;
    add; GELU.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "layer") -> None:
        super().__init__()
        self.stride = stride
        self.pw, self.pw_norm = _pw(c_in, c_out, stride), ChannelNorm(c_out, norm)
        self.dw3, self.dw3_norm = _dw(c_in, 3, stride), ChannelNorm(c_in, norm)
        self.dw5, self.dw5_norm = _dw(c_in, 5, stride), ChannelNorm(c_in, norm)
        cat = c_out + 2 * c_in
        self.fuse, self.fuse_norm = _pw(cat, c_out), ChannelNorm(c_out, norm)
        self.short, self.short_norm = _pw(c_in, c_out, stride), ChannelNorm(c_out, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = mask[:, :: self.stride]
        branches = [
            masked(norm(conv(x), out_mask), out_mask)
            for conv, norm in ((self.pw, self.pw_norm), (self.dw3, self.dw3_norm), (self.dw5, self.dw5_norm))
        ]
        fused = self.fuse_norm(self.fuse(channel_shuffle(torch.cat(branches, dim=1), 8)), out_mask)
        out = F.gelu(fused + self.short_norm(self.short(x), out_mask))
        return masked(out, out_mask), out_mask


class RGSA(nn.Module):
    """Residual grouped-shuffle block: MHCF(s) -> norm -> ReLU -> MHCF(1) -> pointwise -> norm, + shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "layer") -> None:
        super().__init__()
        self.m1 = MHCF(c_in, c_out, stride, norm)
        self.n1 = ChannelNorm(c_out, norm)
        self.m2 = MHCF(c_out, c_out, 1, norm)
        self.proj = nn.Conv1d(c_out, c_out, 1)
        self.n2 = ChannelNorm(c_out, norm)
        self.short, self.short_norm = _pw(c_in, c_out, stride), ChannelNorm(c_out, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, out_mask = self.m1(x, mask)
        h = masked(F.relu(self.n1(h, out_mask)), out_mask)
        h, _ = self.m2(h, out_mask)
        h = self.n2(self.proj(h), out_mask)
        out = F.relu(h + self.short_norm(self.short(x), out_mask))
        return masked(out, out_mask), out_mask


class SIRBlock(nn.Module):
    """Shared-information refinement block ``[b, c, n] -> [b, c2, ceil(n/2)]``."""

    def __init__(self, c: int, c2: int, norm: str = "layer") -> None:
        super().__init__()
        self.pw = _pw(c, max(c2 // 4, 1))
        self.dw3, self.dw5, self.dil = _dw(c, 3), _dw(c, 5), _dw(c, 3, dilation=2)
        cat = max(c2 // 4, 1) + 3 * c
        self.mix_dw = _dw(cat, 3)
        self.mix_pw = _pw(cat, c2)
        self.down = _dw(c2, 3, stride=2)
        self.norm = ChannelNorm(c2, norm)
        self.short_pw = _pw(c, c2)
        self.short_down = _dw(c2, 3, stride=2)
        self.short_norm = ChannelNorm(c2, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = mask[:, ::2]
        branches = torch.cat([masked(conv(x), mask) for conv in (self.pw, self.dw3, self.dw5, self.dil)], dim=1)
        h = masked(self.mix_dw(channel_shuffle(branches, 8)), mask)
        h = masked(self.mix_pw(h), mask)
        h = self.norm(self.down(h), out_mask)
        s = masked(self.short_pw(x), mask)
        s = self.short_norm(self.short_down(s), out_mask)
        return masked(F.gelu(h + s), out_mask), out_mask


class SIR(nn.Module):
    """Chain of :class:`SIRBlock` doubling the width up to ``c_max``, then a masked mean -> ``[b, c_max]``."""

    def __init__(self, c: int, c_max: int, norm: str = "layer") -> None:
        super().__init__()
        widths = [c]
        while widths[-1] < c_max or len(widths) == 1:
            widths.append(min(2 * widths[-1], max(c_max, c)))
        self.blocks = nn.ModuleList([SIRBlock(a, b, norm) for a, b in zip(widths[:-1], widths[1:])])
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x, mask = block(x, mask)
        m = mask.unsqueeze(1).to(x.dtype)
        return (x * m).sum(dim=2) / m.sum(dim=2).clamp(min=1.0)


class BagStem(nn.Module):
    """Masked depthwise Conv1d(k=7, s=2) -> norm -> masked MaxPool1d(3, s=2): ``n -> ~n/4``."""

    def __init__(self, c: int, norm: str = "layer") -> None:
        super().__init__()
        self.conv = _dw(c, 7, stride=2)
        self.norm = ChannelNorm(c, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask[:, ::2]
        x = self.norm(self.conv(x), mask)
        x = x.masked_fill(~mask.unsqueeze(1), float("-inf"))
        x = F.max_pool1d(x, kernel_size=3, stride=2, padding=1)
        mask = mask[:, ::2]
        return x.masked_fill(~mask.unsqueeze(1), 0.0), mask


def hilbert_index(xy: torch.Tensor, bits: int = HILBERT_BITS) -> torch.Tensor:
    """Hilbert-curve index of integer grid points (vectorised ``xy2d``).

    Parameters
    ----------
    xy : torch.Tensor
        ``[..., 2]`` integer coordinates in ``[0, 2**bits)``.

    Returns
    -------
    torch.Tensor
        ``[...]`` int64 distance along the curve.
    """
    x, y = xy[..., 0].long(), xy[..., 1].long()
    n = 1 << bits
    d = torch.zeros_like(x)
    s = n >> 1
    while s > 0:
        rx = ((x & s) > 0).long()
        ry = ((y & s) > 0).long()
        d = d + s * s * ((3 * rx) ^ ry)
        flip = (ry == 0) & (rx == 1)
        x = torch.where(flip, n - 1 - x, x)
        y = torch.where(flip, n - 1 - y, y)
        swap = ry == 0
        x, y = torch.where(swap, y, x), torch.where(swap, x, y)
        s >>= 1
    return d


def _grid(coords: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Level-0 pixel coordinates -> integer patch grid, per sample (step = smallest gap)."""
    valid = mask.unsqueeze(-1)
    c = coords.to(torch.float64)
    inf = torch.tensor(float("inf"), dtype=c.dtype, device=c.device)
    lo = torch.where(valid, c, inf).amin(dim=1, keepdim=True)
    srt = torch.where(valid, c, inf).sort(dim=1).values
    gaps = srt[:, 1:] - srt[:, :-1] if c.shape[1] > 1 else torch.full_like(srt, float("inf"))
    gaps = torch.where(torch.isfinite(gaps) & (gaps > 1e-9), gaps, inf)
    step = gaps.amin(dim=1, keepdim=True)
    step = torch.where(torch.isfinite(step), step, torch.ones_like(step))
    grid = torch.round((c - lo) / step)
    grid = torch.where(valid & torch.isfinite(grid), grid, torch.zeros_like(grid))
    return grid.clamp(0, (1 << HILBERT_BITS) - 1).long()


def hilbert_order(coords: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Permutation ``[b, n]`` putting valid tokens first, along a Hilbert curve when coords exist.

    Without coords the given order is kept (stable sort); padding always goes last.
    """
    b, n = mask.shape
    big = torch.iinfo(torch.int64).max
    if coords is None:
        key = torch.arange(n, device=mask.device).expand(b, n)
    else:
        key = hilbert_index(_grid(coords, mask))
    key = torch.where(mask, key, torch.full_like(key, big))
    return torch.argsort(key, dim=1, stable=True)
