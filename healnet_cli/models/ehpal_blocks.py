"""EHPAL building blocks on masked, channel-major token streams.

Layout: features ``[c, b, n]`` (channels, samples, tokens; see :mod:`ehpal_ops`) with a token mask
``[b, n]`` bool (True = real token) or None when every token is real. Valid tokens always form a
prefix (see :func:`hilbert_order`), so zero padding behaves exactly like a convolution's own padding;
strided ops downsample the mask as ``mask[:, ::stride]``. Convolutions that read the same input run
as one call (their weights are stored stacked), norms of parallel branches are one call, and a
channel shuffle is one gather folded into the next convolution's input.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from healnet_cli.models.blocks import grid_steps
from healnet_cli.models.ehpal_ops import (
    depthwise,
    group_norm,
    layer_norm,
    masked,
    permute_channels,
    pooled,
    stack,
    stacked_depthwise,
    stacked_pointwise,
    stride_mask,
)

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
NORMS = ("layer", "group")


def _groups(*channels: int, limit: int = 8) -> int:
    g = limit
    for c in channels:
        g = math.gcd(g, c)
    return g


def shuffle_index(channels: int, groups: int) -> torch.Tensor:
    """Source channel of each output channel of a ShuffleNet channel shuffle."""
    g = _groups(channels, limit=groups)
    p = torch.arange(channels)
    return (p % g) * (channels // g) + p // g


def tap_mask(c: int, *windows: tuple[int, ...]) -> torch.Tensor:
    """``[len(windows) * c, 1, k]`` 0/1 mask: which taps of each stacked depthwise filter are free."""
    rows = [torch.tensor(w, dtype=torch.float32).expand(c, -1) for w in windows]
    return torch.cat(rows).unsqueeze(1)


def init_stacked_(conv: nn.Conv1d, taps: torch.Tensor) -> None:
    """``Conv1d``'s default init for each stacked filter on its own (bound ``1/sqrt(real taps)``);
    taps outside a filter's window are zero (and stay so: the forward multiplies by ``taps``)."""
    with torch.no_grad():
        bound = taps.sum(dim=2, keepdim=True).rsqrt()
        conv.weight.uniform_(-1.0, 1.0).mul_(bound).mul_(taps)
        if conv.bias is not None:
            conv.bias.uniform_(-1.0, 1.0).mul_(bound.view(-1))


def _bias(conv: nn.Conv1d) -> torch.Tensor:
    """``conv``'s bias: every convolution of these blocks is built with one."""
    assert conv.bias is not None, "EHPAL convolutions have a bias"
    return conv.bias


class ChannelNorm(nn.Module):
    """Normalisation of ``[c, b, n]`` that never mixes in padding tokens.

    ``kind="layer"``: per-token LayerNorm over channels. ``kind="group"``: GroupNorm with 8 channel
    groups (1 if ``c`` is not a multiple of 8), statistics over the **valid tokens of each sample**
    (``mask``), so how strongly one token responds relative to the sample's others survives the norm
    (a per-token LayerNorm rescales every token to unit spread). Both act per sample: no batch
    statistics. ``channels`` may list several branches stacked along the channels; each is normalised
    on its own, in as few calls as their group sizes allow.
    """

    def __init__(self, channels: int | tuple[int, ...], kind: str = "layer", eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
        sizes = (channels,) if isinstance(channels, int) else tuple(channels)
        self.sizes, self.kind, self.eps = sizes, kind, eps
        self.weight = nn.Parameter(torch.ones(sum(sizes)))
        self.bias = nn.Parameter(torch.zeros(sum(sizes)))
        runs: list[list[int]] = []  # [start, stop, groups, group size]
        start = 0
        for c in sizes:
            groups = 8 if c % 8 == 0 else 1
            if kind == "group" and runs and runs[-1][3] == c // groups:
                runs[-1][1] += c
                runs[-1][2] += groups
            else:
                runs.append([start, start + c, groups, c // groups])
            start += c
        self.runs = [tuple(r[:3]) for r in runs]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return ChannelNorm.run([self], x.unsqueeze(0), mask)[0]

    @staticmethod
    def run(norms: list[ChannelNorm], x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The norms of ``s`` streams (identical configurations) on stacked ``x [s, c, b, n]``, in one call per run."""
        first = norms[0]
        weight, bias = stack([m.weight for m in norms]), stack([m.bias for m in norms])
        if len(first.runs) == 1:
            xs, ws, bs = [x], [weight], [bias]
        else:  # split, not slices: the backward is one concatenation, not a zero-filled copy per slice
            sizes = [stop - start for start, stop, _ in first.runs]
            xs, ws, bs = x.split(sizes, dim=1), weight.split(sizes, dim=1), bias.split(sizes, dim=1)
        parts = []
        for (_, _, groups), xp, w, b in zip(first.runs, xs, ws, bs, strict=True):
            if first.kind == "layer":
                parts.append(layer_norm(xp, w, b, first.eps))
            else:
                parts.append(group_norm(xp, groups, w, b, mask, first.eps))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _pw(c_in: int, c_out: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(c_in, c_out, 1, stride=stride, groups=_groups(c_in, c_out))


def _dw(c: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Conv1d:
    return nn.Conv1d(c, c, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=c)


class MHCF(nn.Module):
    """Multi-kernel heterogeneous conv fusion ``[c_in, b, n] -> [c_out, b, ceil(n/s)]``.

    Branches grouped pointwise (groups 8), depthwise k=3 and depthwise k=5, each normed;
    concat -> channel shuffle -> grouped pointwise -> norm; grouped pointwise shortcut; add; GELU.

    Storage: ``point`` stacks the pointwise branch and the shortcut (and, with ``shortcuts=2``, the
    enclosing block's shortcut, which reads the same input); ``depth`` stacks the k=3 filter (taps
    1..3 of a 5-tap window, the others held at zero) and the k=5 filter; ``norm`` covers
    ``[pointwise | shortcut(s) | k=3 | k=5]``.
    """

    taps: torch.Tensor  # buffers
    fuse_index: torch.Tensor
    fuse_inverse: torch.Tensor

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "layer", shortcuts: int = 1) -> None:
        super().__init__()
        self.stride, self.c_out, self.n_point = stride, c_out, 1 + shortcuts
        self.point = nn.Conv1d(c_in, self.n_point * c_out, 1, stride=stride, groups=_groups(c_in, c_out))
        self.depth = nn.Conv1d(2 * c_in, 2 * c_in, 5, stride=stride, padding=2, groups=2 * c_in)
        self.register_buffer("taps", tap_mask(c_in, (0, 1, 1, 1, 0), (1, 1, 1, 1, 1)), persistent=False)
        init_stacked_(self.depth, self.taps)
        cat = c_out + 2 * c_in
        self.fuse = nn.Conv1d(cat, c_out, 1, groups=_groups(cat, c_out))
        self.norm = ChannelNorm((c_out,) * self.n_point + (c_in, c_in), norm)
        self.fuse_norm = ChannelNorm(c_out, norm)
        src = shuffle_index(cat, 8)  # cat = [pointwise | k=3 | k=5]; y = [pointwise | shortcuts | k=3 | k=5]
        # a permutation of y: the shuffled cat, then the shortcuts (so its backward is a gather too)
        shuffled = torch.where(src < c_out, src, src + shortcuts * c_out)
        order = torch.cat([shuffled, torch.arange(c_out, (1 + shortcuts) * c_out)])
        self.register_buffer("fuse_index", order, persistent=False)
        self.register_buffer("fuse_inverse", torch.argsort(order), persistent=False)
        self.cat = cat

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, out_mask, _ = MHCF.run([self], x.unsqueeze(0), mask)
        return out[0], out_mask

    @staticmethod
    def run(mods: list[MHCF], x: torch.Tensor, mask: torch.Tensor | None):
        """``s`` streams through their own MHCFs (identical configurations) at once: ``x [s, c_in, b, n]``.

        Returns ``(out, out_mask, extra)``: ``extra`` is the normed second shortcut (``shortcuts=2``) or None.
        """
        first = mods[0]
        s, o = first.stride, first.c_out
        out_mask = stride_mask(mask, s)
        p = stacked_pointwise(
            x, stack([m.point.weight for m in mods]), stack([_bias(m.point) for m in mods]), s, branches=first.n_point
        )
        depth_w = stack([m.depth.weight for m in mods]) * first.taps
        d = stacked_depthwise(x, depth_w, stack([_bias(m.depth) for m in mods]), s)
        y = ChannelNorm.run([m.norm for m in mods], torch.cat([p, d], dim=1), out_mask)
        shuffled, *shortcuts = permute_channels(y, 1, first.fuse_index, first.fuse_inverse).split(
            [first.cat] + [o] * (first.n_point - 1), dim=1
        )
        f = stacked_pointwise(shuffled, stack([m.fuse.weight for m in mods]), stack([_bias(m.fuse) for m in mods]))
        out = F.gelu(ChannelNorm.run([m.fuse_norm for m in mods], f, out_mask) + shortcuts[0])
        return masked(out, out_mask), out_mask, (shortcuts[1] if first.n_point > 2 else None)


class RGSA(nn.Module):
    """Residual grouped-shuffle block: MHCF(s) -> norm -> ReLU -> MHCF(1) -> pointwise -> norm, + shortcut.

    The grouped pointwise shortcut reads the block's input, so it runs inside ``m1``'s pointwise call.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "layer") -> None:
        super().__init__()
        self.m1 = MHCF(c_in, c_out, stride, norm, shortcuts=2)
        self.n1 = ChannelNorm(c_out, norm)
        self.m2 = MHCF(c_out, c_out, 1, norm)
        self.proj = nn.Conv1d(c_out, c_out, 1)
        self.n2 = ChannelNorm(c_out, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, out_mask = RGSA.run([self], x.unsqueeze(0), mask)
        return out[0], out_mask

    @staticmethod
    def run(mods: list[RGSA], x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``s`` streams through their own RGSAs (identical configurations) at once: ``x [s, c_in, b, n]``."""
        h, out_mask, short = MHCF.run([m.m1 for m in mods], x, mask)
        h = masked(F.relu(ChannelNorm.run([m.n1 for m in mods], h, out_mask)), out_mask)
        h, _, _ = MHCF.run([m.m2 for m in mods], h, out_mask)
        h = stacked_pointwise(h, stack([m.proj.weight for m in mods]), stack([_bias(m.proj) for m in mods]))
        h = ChannelNorm.run([m.n2 for m in mods], h, out_mask)
        return masked(F.relu(h + short), out_mask), out_mask


class SIRBlock(nn.Module):
    """Shared-information refinement block ``[c, b, n] -> [c2, b, ceil(n/2)]``.

    ``depth`` stacks the k=3, k=5 and dilated k=3 filters as 5-tap windows; ``down`` stacks the
    stride-2 filters of the main path and of the shortcut; ``norm`` covers both.
    """

    taps: torch.Tensor  # buffers
    mix_index: torch.Tensor
    mix_inverse: torch.Tensor

    def __init__(self, c: int, c2: int, norm: str = "layer") -> None:
        super().__init__()
        q = max(c2 // 4, 1)
        self.c2 = c2
        self.pw = _pw(c, q)
        self.depth = nn.Conv1d(3 * c, 3 * c, 5, padding=2, groups=3 * c)
        self.register_buffer("taps", tap_mask(c, (0, 1, 1, 1, 0), (1, 1, 1, 1, 1), (1, 0, 1, 0, 1)), persistent=False)
        init_stacked_(self.depth, self.taps)
        cat = q + 3 * c
        self.register_buffer("mix_index", shuffle_index(cat, 8), persistent=False)
        self.register_buffer("mix_inverse", torch.argsort(self.mix_index), persistent=False)
        self.mix_dw = _dw(cat, 3)
        self.mix_pw = _pw(cat, c2)
        self.short_pw = _pw(c, c2)
        self.down = nn.Conv1d(2 * c2, 2 * c2, 3, stride=2, padding=1, groups=2 * c2)
        self.norm = ChannelNorm((c2, c2), norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, out_mask = SIRBlock.run([self], x.unsqueeze(0), mask)
        return out[0], out_mask

    @staticmethod
    def run(
        mods: list[SIRBlock], x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``s`` streams through their own blocks (identical configurations) at once: ``x [s, c, b, n]``."""
        first = mods[0]
        c2 = first.c2

        def par(get):
            return stack([get(m) for m in mods])

        out_mask = stride_mask(mask, 2)
        p = stacked_pointwise(x, par(lambda m: m.pw.weight), par(lambda m: m.pw.bias))
        d = stacked_depthwise(x, par(lambda m: m.depth.weight) * first.taps, par(lambda m: m.depth.bias))
        branches = masked(torch.cat([p, d], dim=1), mask)
        shuffled = permute_channels(branches, 1, first.mix_index, first.mix_inverse)
        h = masked(stacked_depthwise(shuffled, par(lambda m: m.mix_dw.weight), par(lambda m: m.mix_dw.bias)), mask)
        h = masked(stacked_pointwise(h, par(lambda m: m.mix_pw.weight), par(lambda m: m.mix_pw.bias)), mask)
        sc = masked(stacked_pointwise(x, par(lambda m: m.short_pw.weight), par(lambda m: m.short_pw.bias)), mask)
        hs = stacked_depthwise(
            torch.cat([h, sc], dim=1), par(lambda m: m.down.weight), par(lambda m: m.down.bias), stride=2
        )
        hs = ChannelNorm.run([m.norm for m in mods], hs, out_mask)
        main, short = hs.split(c2, dim=1)
        return masked(F.gelu(main + short), out_mask), out_mask


class SIR(nn.Module):
    """Chain of :class:`SIRBlock` doubling the width up to ``c_max``, then a masked mean -> ``[b, c_max]``."""

    def __init__(self, c: int, c_max: int, norm: str = "layer") -> None:
        super().__init__()
        widths = [c]
        while widths[-1] < c_max or len(widths) == 1:
            widths.append(min(2 * widths[-1], max(c_max, c)))
        self.blocks = nn.ModuleList([SIRBlock(a, b, norm) for a, b in itertools.pairwise(widths)])
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return SIR.run([self], x.unsqueeze(0), mask)[0]

    @staticmethod
    def run(mods: list[SIR], x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``s`` streams through their own SIRs (identical configurations): ``x [s, c, b, n] -> [s, b, c_max]``."""
        for blocks in zip(*(m.blocks for m in mods), strict=True):
            x, mask = SIRBlock.run(list(blocks), x, mask)
        return pooled(x, mask)


class BagStem(nn.Module):
    """Masked depthwise Conv1d(k=7, s=2) -> norm -> masked MaxPool1d(3, s=2): ``n -> ~n/4``."""

    def __init__(self, c: int, norm: str = "layer") -> None:
        super().__init__()
        self.conv = _dw(c, 7, stride=2)
        self.norm = ChannelNorm(c, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = stride_mask(mask, 2)
        x = self.norm(depthwise(x, self.conv.weight, self.conv.bias, stride=2), mask)
        if mask is not None:
            x = x.masked_fill(~mask, float("-inf"))
        x = F.max_pool1d(x, kernel_size=3, stride=2, padding=1)
        mask = stride_mask(mask, 2)
        return masked(x, mask), mask


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
    """Level-0 pixel coordinates -> integer patch grid, per sample (step: :func:`grid_steps`)."""
    valid = mask.unsqueeze(-1)
    c = coords.to(torch.float64)
    lo = torch.where(valid, c, torch.tensor(float("inf"), dtype=c.dtype, device=c.device)).amin(dim=1, keepdim=True)
    step = grid_steps(c, mask)
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
    key = torch.arange(n, device=mask.device).expand(b, n) if coords is None else hilbert_index(_grid(coords, mask))
    key = torch.where(mask, key, torch.full_like(key, big))
    return torch.argsort(key, dim=1, stable=True)
