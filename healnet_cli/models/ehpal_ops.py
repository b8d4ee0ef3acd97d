"""Fused primitives of EHPAL's convolutional trunk on channel-major streams ``[c, b, n]``.

Streams are stored channel-major (``[c, b, n]``: channels, samples, tokens) so that a grouped
pointwise convolution is one batched matrix product over its groups, with no copy in or out, and
several convolutions that read the same input run as one call. Token masks are ``[b, n]`` bool
(True = real token) or None when every token is real, which the caller knows from the data's
structure (omics tokens), so no device synchronisation is needed to skip masking.

Two streams of the same shape whose blocks have identical configurations (the shared and the new
stream of an omics stage) run stacked on a leading axis, ``[s, c, b, n]``, with their weights stacked
to ``[s, ...]``: one batched call serves both (the ``stacked_*`` functions; the 3-d ones are the
``s = 1`` case).

Depthwise convolutions on short sequences (at most :data:`SHIFT_TOKENS` tokens, e.g. omics segment
tokens) are a product with a constant shift matrix followed by a weighted sum over the taps;
longer ones (bag streams) call ``conv1d``. Both give the same result.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from healnet_cli.models.blocks import masked_mean

__all__ = [
    "SHIFT_TOKENS",
    "depthwise",
    "masked",
    "permute_channels",
    "pointwise",
    "pooled",
    "stack",
    "stacked_depthwise",
    "stacked_pointwise",
    "stride_mask",
]

SHIFT_TOKENS = 48


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padding tokens of ``x [c, b, n]`` (nothing to do when ``mask`` is None)."""
    return x if mask is None else x.masked_fill(~mask, 0.0)


def stride_mask(mask: torch.Tensor | None, stride: int) -> torch.Tensor | None:
    """Token mask after a stride-``stride`` op (output token ``i`` reads input token ``i * stride``)."""
    return mask if mask is None or stride == 1 else mask[:, ::stride]


def pooled(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Masked mean over tokens: ``[c, b, n] -> [b, c]``, or ``[s, c, b, n] -> [s, b, c]`` for stacked streams."""
    m = None if mask is None else mask.reshape((1,) * (x.dim() - 2) + tuple(mask.shape))
    return masked_mean(x, m, dim=-1).transpose(-1, -2)


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Parameters of ``s`` streams with identical shapes as one ``[s, ...]`` tensor (a view for one)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def pointwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, branches: int = 1
) -> torch.Tensor:
    """Grouped 1x1 convolution(s) ``[c, b, n] -> [branches * o, b, ceil(n / stride)]``.

    ``weight [branches * o, c / groups, 1]`` stacks ``branches`` grouped convolutions (each in the
    usual ``Conv1d`` layout) that read the same input; they run as one batched product.
    """
    return stacked_pointwise(
        x.unsqueeze(0), weight.unsqueeze(0), None if bias is None else bias.unsqueeze(0), stride, branches
    )[0]


def stacked_pointwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, branches: int = 1
) -> torch.Tensor:
    """:func:`pointwise` of ``s`` streams at once: ``x [s, c, b, n]``, ``weight [s, rows, c / groups, 1]``,
    ``bias [s, rows]``; every (stream, group) pair is one matrix of a single batched product."""
    st, c, b = x.shape[0], x.shape[1], x.shape[2]
    rows, per_group = weight.shape[1], weight.shape[2]
    g, o = c // per_group, rows // branches
    if stride > 1:
        x = x[..., ::stride]
    m = x.shape[3]
    w = weight.view(st, branches, g, o // g, per_group)
    if branches > 1:
        w = w.transpose(1, 2)
    w = w.reshape(st * g, rows // g, per_group)
    xs = x.reshape(st * g, per_group, b * m)
    if bias is None:
        out = torch.bmm(w, xs)
    else:
        bv = bias.view(st, branches, g, o // g)
        bv = (bv.transpose(1, 2) if branches > 1 else bv).reshape(st * g, rows // g, 1)
        out = torch.baddbmm(bv, w, xs)
    if branches == 1:
        return out.reshape(st, rows, b, m)
    return out.reshape(st, g, branches, o // g, b * m).transpose(1, 2).reshape(st, rows, b, m)


@functools.lru_cache(maxsize=64)
def _shift_matrix(
    n: int, taps: int, stride: int, padding: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``[taps, n * m]``: entry ``(k, t * m + u)`` is 1 where output ``u``'s tap ``k`` reads input ``t``."""
    m = (n + 2 * padding - taps) // stride + 1
    src = torch.arange(m, device=device) * stride - padding
    src = src.unsqueeze(0) + torch.arange(taps, device=device).unsqueeze(1)  # [taps, m]
    t = torch.arange(n, device=device).view(1, n, 1)
    return (t == src.unsqueeze(1)).to(dtype).reshape(taps, n * m)


def depthwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, padding: int | None = None
) -> torch.Tensor:
    """Depthwise convolution(s) ``[c, b, n] -> [r * c, b, m]`` with zero padding.

    ``weight [r * c, 1, k]`` holds ``r`` depthwise filters per channel, filter ``j`` of channel ``i``
    in row ``j * c + i`` (so the output lists filter 0 for every channel, then filter 1, ...).
    ``padding`` defaults to ``k // 2``. Up to :data:`SHIFT_TOKENS` tokens, each channel's filters
    become one ``[n, r * m]`` banded matrix (filters times a constant shift matrix) and the whole
    call is one batched product; longer inputs go through ``conv1d``.
    """
    return stacked_depthwise(
        x.unsqueeze(0), weight.unsqueeze(0), None if bias is None else bias.unsqueeze(0), stride, padding
    )[0]


def stacked_depthwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, padding: int | None = None
) -> torch.Tensor:
    """:func:`depthwise` of ``s`` streams at once: ``x [s, c, b, n]``, ``weight [s, r * c, 1, k]``,
    ``bias [s, r * c]`` -> ``[s, r * c, b, m]``."""
    st, c, b, n = x.shape
    r, k = weight.shape[1] // c, weight.shape[3]
    pad = k // 2 if padding is None else padding
    m = (n + 2 * pad - k) // stride + 1
    if n <= SHIFT_TOKENS:
        make = _shift_matrix.__wrapped__ if torch.compiler.is_compiling() else _shift_matrix  # constants when traced
        shift = make(n, k, stride, pad, x.device, x.dtype)
        w = weight.view(st, r, c, k).transpose(1, 2).reshape(st * c * r, k)
        band = torch.mm(w, shift).reshape(st * c, r, n, m).transpose(1, 2).reshape(st * c, n, r * m)
        out = torch.bmm(x.reshape(st * c, b, n), band).reshape(st, c, b, r, m).permute(0, 3, 1, 2, 4)
        out = out.reshape(st, r * c, b, m)
        return out if bias is None else out + bias.view(st, r * c, 1, 1)
    flat = x if r == 1 else x.unsqueeze(1).expand(st, r, c, b, n)  # input channels in weight-row order
    flat = flat.reshape(1, st * r * c * b, n)
    w = weight.reshape(st * r * c, 1, 1, k).expand(st * r * c, b, 1, k).reshape(st * r * c * b, 1, k)
    bb = None if bias is None else bias.reshape(st * r * c, 1).expand(st * r * c, b).reshape(-1)
    out = F.conv1d(flat, w, bb, stride=stride, padding=pad, groups=st * r * c * b)
    return out.reshape(st, r * c, b, m)


class _Permute(torch.autograd.Function):
    """``x.index_select(dim, index)`` for a permutation ``index``; its backward is the inverse
    permutation (one gather), not a scatter-add into zeros."""

    @staticmethod
    def forward(ctx, x, dim, index, inverse):
        ctx.dim = dim
        ctx.save_for_backward(inverse)
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(ctx.dim, inverse), None, None, None


def permute_channels(x: torch.Tensor, dim: int, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Reorder ``x`` along ``dim`` by the permutation ``index`` (``inverse = argsort(index)``)."""
    return _Permute.apply(x, dim, index, inverse)


class _ChannelMajorGrad(torch.autograd.Function):
    """Identity whose backward copies the gradient into channel-major order.

    The gradient leaving a GroupNorm computed on a sample-major copy is sample-major. Eager
    autograd copes, but AOTAutograd (``torch.compile``) predicts a channel-major gradient there and
    traces the reshapes upstream as views, which then fail at run time; an explicit copy keeps the
    prediction true.
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.clone(memory_format=torch.contiguous_format)


def group_norm(
    x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """GroupNorm of ``x [s, c, b, n]`` (``s`` stacked streams, ``groups`` per stream, affine ``[s, c]``);
    statistics per stream and sample over its valid tokens only (``mask [b, n]``)."""
    st, c, b, n = x.shape
    if mask is None:
        xb = _ChannelMajorGrad.apply(x).permute(2, 0, 1, 3).reshape(b, st * c, n)
        # back to channel-major memory: elementwise ops mixing layouts lose vectorisation (GELU 4x slower)
        out = F.group_norm(xb, st * groups, weight.reshape(-1), bias.reshape(-1), eps)
        return out.view(b, st, c, n).permute(1, 2, 0, 3).contiguous()
    xg = x.permute(2, 0, 1, 3).reshape(b, st * groups, (c // groups) * n)  # reductions over contiguous memory
    m = mask.to(x.dtype).repeat(1, c // groups).view(b, 1, -1)
    count = m.sum(dim=2, keepdim=True).clamp(min=1.0)
    mean = (xg * m).sum(dim=2, keepdim=True) / count
    var = ((xg - mean).pow(2) * m).sum(dim=2, keepdim=True) / count
    out = ((xg - mean) * torch.rsqrt(var + eps)).reshape(b, st, c, n).permute(1, 2, 0, 3)
    return out * weight.view(st, c, 1, 1) + bias.view(st, c, 1, 1)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-token LayerNorm over the channels of ``x [s, c, b, n]`` (affine ``[s, c]``)."""
    outs = [
        F.layer_norm(x[i].permute(1, 2, 0), (x.shape[1],), weight[i], bias[i], eps).permute(2, 0, 1).contiguous()
        for i in range(x.shape[0])
    ]
    return torch.stack(outs) if len(outs) > 1 else outs[0].unsqueeze(0)
