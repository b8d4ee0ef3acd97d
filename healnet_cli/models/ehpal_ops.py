"""Fused primitives of EHPAL's convolutional trunk on channel-major streams ``[c, b, n]``.

Streams are stored channel-major (``[c, b, n]``: channels, samples, tokens) so that a grouped
pointwise convolution is one batched matrix product over its groups, with no copy in or out, and
several convolutions that read the same input run as one call. Token masks are ``[b, n]`` bool
(True = real token) or None when every token is real, which the caller knows from the data's
structure (omics tokens), so no device synchronisation is needed to skip masking.

Depthwise convolutions on short sequences (at most :data:`SHIFT_TOKENS` tokens, e.g. omics segment
tokens) are a product with a constant shift matrix followed by a weighted sum over the taps;
longer ones (bag streams) call ``conv1d``. Both give the same result.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from healnet_cli.models.blocks import masked_mean

__all__ = ["SHIFT_TOKENS", "depthwise", "masked", "pointwise", "pooled", "stride_mask"]

SHIFT_TOKENS = 48


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padding tokens of ``x [c, b, n]`` (nothing to do when ``mask`` is None)."""
    return x if mask is None else x.masked_fill(~mask, 0.0)


def stride_mask(mask: torch.Tensor | None, stride: int) -> torch.Tensor | None:
    """Token mask after a stride-``stride`` op (output token ``i`` reads input token ``i * stride``)."""
    return mask if mask is None or stride == 1 else mask[:, ::stride]


def pooled(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Masked mean of ``x [c, b, n]`` over tokens, as ``[b, c]``."""
    return masked_mean(x, None if mask is None else mask.unsqueeze(0), dim=2).t()


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1,
              branches: int = 1) -> torch.Tensor:
    """Grouped 1x1 convolution(s) ``[c, b, n] -> [branches * o, b, ceil(n / stride)]``.

    ``weight [branches * o, c / groups, 1]`` stacks ``branches`` grouped convolutions (each in the
    usual ``Conv1d`` layout) that read the same input; they run as one batched product.
    """
    c, b = x.shape[0], x.shape[1]
    rows, per_group = weight.shape[0], weight.shape[1]
    g, o = c // per_group, rows // branches
    if stride > 1:
        x = x[..., ::stride]
    m = x.shape[2]
    w = weight.view(branches, g, o // g, per_group)
    if branches > 1:
        w = w.transpose(0, 1)
    w = w.reshape(g, rows // g, per_group)
    xs = x.reshape(g, per_group, b * m)
    if bias is None:
        out = torch.bmm(w, xs)
    else:
        bv = bias.view(branches, g, o // g)
        bv = (bv.transpose(0, 1) if branches > 1 else bv).reshape(g, rows // g, 1)
        out = torch.baddbmm(bv, w, xs)
    if branches == 1:
        return out.reshape(rows, b, m)
    return out.reshape(g, branches, o // g, b * m).transpose(0, 1).reshape(rows, b, m)


@functools.lru_cache(maxsize=64)
def _shift_matrix(n: int, taps: int, stride: int, padding: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[taps, n * m]``: entry ``(k, t * m + u)`` is 1 where output ``u``'s tap ``k`` reads input ``t``."""
    m = (n + 2 * padding - taps) // stride + 1
    src = torch.arange(m, device=device) * stride - padding
    src = src.unsqueeze(0) + torch.arange(taps, device=device).unsqueeze(1)  # [taps, m]
    t = torch.arange(n, device=device).view(1, n, 1)
    return (t == src.unsqueeze(1)).to(dtype).reshape(taps, n * m)


def depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1,
              padding: int | None = None) -> torch.Tensor:
    """Depthwise convolution(s) ``[c, b, n] -> [r * c, b, m]`` with zero padding.

    ``weight [r * c, 1, k]`` holds ``r`` depthwise filters per channel, filter ``j`` of channel ``i``
    in row ``j * c + i`` (so the output lists filter 0 for every channel, then filter 1, ...).
    ``padding`` defaults to ``k // 2``. Up to :data:`SHIFT_TOKENS` tokens, each channel's filters
    become one ``[n, r * m]`` banded matrix (filters times a constant shift matrix) and the whole
    call is one batched product; longer inputs go through ``conv1d``.
    """
    c, b, n = x.shape
    r, k = weight.shape[0] // c, weight.shape[2]
    pad = k // 2 if padding is None else padding
    m = (n + 2 * pad - k) // stride + 1
    if n <= SHIFT_TOKENS:
        make = _shift_matrix.__wrapped__ if torch.compiler.is_compiling() else _shift_matrix  # constants when traced
        shift = make(n, k, stride, pad, x.device, x.dtype)
        w = weight.view(r, c, k).transpose(0, 1).reshape(c * r, k)
        band = torch.mm(w, shift).reshape(c, r, n, m).transpose(1, 2).reshape(c, n, r * m)
        out = torch.bmm(x, band).reshape(c, b, r, m).permute(2, 0, 1, 3).reshape(r * c, b, m)
        return out if bias is None else out + bias.view(r * c, 1, 1)
    flat = x.reshape(1, c * b, n)
    if r > 1:
        flat = flat.repeat(1, r, 1)
    w = weight.view(r * c, 1, 1, k).expand(r * c, b, 1, k).reshape(r * c * b, 1, k)
    bb = None if bias is None else bias.view(r * c, 1).expand(r * c, b).reshape(-1)
    out = F.conv1d(flat, w, bb, stride=stride, padding=pad, groups=r * c * b)
    return out.reshape(r * c, b, m)


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


def group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None,
               eps: float) -> torch.Tensor:
    """GroupNorm of ``x [c, b, n]``; statistics per sample over its valid tokens only (``mask``)."""
    if mask is None:
        xb = _ChannelMajorGrad.apply(x).transpose(0, 1).contiguous()
        # back to channel-major memory: elementwise ops mixing layouts lose vectorisation (GELU 4x slower)
        return F.group_norm(xb, groups, weight, bias, eps).transpose(0, 1).contiguous()
    c, b, n = x.shape
    xg = x.transpose(0, 1).reshape(b, groups, (c // groups) * n)  # reductions over contiguous memory
    m = mask.to(x.dtype).repeat(1, c // groups).view(b, 1, -1)
    count = m.sum(dim=2, keepdim=True).clamp(min=1.0)
    mean = (xg * m).sum(dim=2, keepdim=True) / count
    var = ((xg - mean).pow(2) * m).sum(dim=2, keepdim=True) / count
    out = ((xg - mean) * torch.rsqrt(var + eps)).reshape(b, c, n).transpose(0, 1)
    return out * weight.view(c, 1, 1) + bias.view(c, 1, 1)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-token LayerNorm over the channels of ``x [c, b, n]``."""
    out = F.layer_norm(x.permute(1, 2, 0), (x.shape[0],), weight, bias, eps)
    return out.permute(2, 0, 1).contiguous()
