"""Building blocks shared by the models: attention, feed-forward, positions, pooling.

This is the only copy of these blocks. Shapes use einops letters: ``b`` batch,
``n`` keys/tokens, ``l`` latents, ``h`` heads, ``c`` channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CrossAttention",
    "GatedAttentionPool",
    "GatedFeedForward",
    "PreNormFeedForward",
    "SNNBlock",
    "fourier_encode",
    "index_positions",
    "coord_positions",
    "grid_steps",
    "masked_mean",
    "unit_layer_norm",
]

# On the CPU, attention whose score matrix has at most this many entries (b * heads * latents * keys;
# 2**24 = 64 MB in float32) is computed explicitly, which is faster there than SDPA's CPU kernels;
# larger ones go through SDPA, which never stores the score matrix.
EXPLICIT_ATTENTION = 2**24


def fourier_encode(pos: torch.Tensor, max_freq: float, num_bands: int) -> torch.Tensor:
    """Fourier features of positions in [-1, 1].

    Parameters
    ----------
    pos : torch.Tensor
        ``[b, n, a]`` positions, one column per spatial axis.

    Returns
    -------
    torch.Tensor
        ``[b, n, a * (2 * num_bands + 1)]``: per axis ``sin(pi s x)``, ``cos(pi s x)`` for
        ``s`` in ``linspace(1, max_freq / 2, num_bands)``, then ``x`` itself.
    """
    scales = torch.linspace(1.0, max_freq / 2, num_bands, device=pos.device, dtype=pos.dtype)
    x = pos.unsqueeze(-1)
    scaled = x * scales * math.pi
    feats = torch.cat([scaled.sin(), scaled.cos(), x], dim=-1)
    return feats.reshape(*pos.shape[:-1], pos.shape[-1] * (2 * num_bands + 1))


def unit_layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last dim without affine (explicit unit weights take the faster CPU kernel)."""
    c = x.shape[-1]
    return F.layer_norm(x, (c,), x.new_ones(c), x.new_zeros(c), eps)


def index_positions(token_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Token-index positions in [-1, 1] over the valid tokens of each sample.

    Equals ``linspace(-1, 1, n)`` when every token is valid; padding tokens get the
    position of the preceding valid token (they are masked out anyway).

    Returns ``[b, n, 1]``.
    """
    rank = token_mask.to(dtype).cumsum(dim=1) - 1.0
    n_valid = token_mask.sum(dim=1, keepdim=True).to(dtype)
    pos = -1.0 + 2.0 * rank.clamp(min=0) / (n_valid - 1.0).clamp(min=1.0)
    return pos.unsqueeze(-1)


def coord_positions(coords: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Patch coordinates normalised per sample and axis to [-1, 1] over valid tokens.

    Returns ``[b, n, 2]``; an axis with a single distinct value maps to 0.
    """
    valid = token_mask.unsqueeze(-1)
    big = torch.finfo(coords.dtype).max
    lo = torch.where(valid, coords, big).amin(dim=1, keepdim=True)
    hi = torch.where(valid, coords, -big).amax(dim=1, keepdim=True)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    pos = torch.where(span > 0, 2.0 * (coords - lo) / safe - 1.0, torch.zeros_like(coords))
    return torch.where(valid, pos, torch.zeros_like(pos))


def grid_steps(coords: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """The patch grid's step per sample and axis: the smallest gap between distinct coordinates
    of the valid tokens (``> 1e-9``); ``inf`` where an axis has a single value. The one rule for
    "grid step from coordinates" (EHPAL's token grid, evaluate's heatmap patch size).

    ``coords [b, n, 2]`` (level-0 pixels), ``token_mask [b, n]``; returns float64 ``[b, 1, 2]``.
    """
    valid = token_mask.unsqueeze(-1)
    c = coords.to(torch.float64)
    inf = torch.tensor(float("inf"), dtype=c.dtype, device=c.device)
    srt = torch.where(valid, c, inf).sort(dim=1).values
    gaps = srt[:, 1:] - srt[:, :-1] if c.shape[1] > 1 else torch.full_like(srt, float("inf"))
    gaps = torch.where(torch.isfinite(gaps) & (gaps > 1e-9), gaps, inf)
    return gaps.amin(dim=1, keepdim=True)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` is True (the one masked
    mean; ``mask`` broadcasts against ``x``, trailing dims added when it has fewer)."""
    if mask is None:
        return x.mean(dim=dim)
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    return (x * m).sum(dim=dim) / m.sum(dim=dim).clamp(min=1.0)


class CrossAttention(nn.Module):
    """Pre-norm multi-head attention of latents over a context (HEALNet/Perceiver block).

    ``LayerNorm(query_dim)`` on the latents, a separate ``LayerNorm(context_dim)`` on the
    context (cross-attention only), bias-free ``to_q``/``to_kv``, softmax temperature
    (scale ``1 / (temperature * sqrt(dim_head))``) and ``to_out = Linear + LeakyReLU(0.01)``.

    The context LayerNorm's affine is folded into ``to_kv`` (:meth:`folded_kv`), so the normalised
    context depends on the data only: a model computes it once and shares it across layers, and the
    backward pass needs no bag-sized input gradient. In inference, keys are computed in chunks of
    ``chunk_tokens`` tokens so that no full-size normalised or Fourier-augmented copy of a large bag
    is ever materialised.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None,
        heads: int,
        dim_head: int,
        dropout: float,
        temperature: float,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.scale = dim_head**-0.5 / temperature
        self.dropout = dropout
        self.is_cross = context_dim is not None
        self.norm = nn.LayerNorm(query_dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim if context_dim is not None else query_dim, 2 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.LeakyReLU(negative_slope=0.01))

    def folded_kv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``to_kv`` with the context LayerNorm's affine folded in: ``(W diag(gamma), W beta)``.

        ``to_kv(LN(x)) = folded_w @ LN0(x) + folded_b`` with ``LN0`` the LayerNorm without affine, so
        the normalised context is a function of the data alone: it is computed once for all layers and
        needs no gradient.
        """
        norm = self.norm_context if self.norm_context is not None else self.norm
        return self.to_kv.weight * norm.weight, torch.mv(self.to_kv.weight, norm.bias)

    def normalize_context(
        self, data: torch.Tensor, extra: torch.Tensor | None, valid: torch.Tensor | None, chunk_tokens: int
    ) -> torch.Tensor:
        """``LN0([data, extra])`` ``[b, n, c]``, zero where ``valid`` is False (padding, absent samples).

        Without a gradient to track (the usual case: data and positions need none) it is written
        chunk by chunk into one tensor, so no concatenated copy of a large bag is ever made.
        """
        norm = self.norm_context if self.norm_context is not None else self.norm
        n = data.shape[1]
        tracked = torch.is_grad_enabled() and (data.requires_grad or (extra is not None and extra.requires_grad))
        if tracked or n <= chunk_tokens:
            return self._normed_chunk(data, extra, valid, slice(0, n), norm)
        out = data.new_empty(data.shape[0], n, norm.normalized_shape[0])
        with torch.no_grad():
            for i in range(0, n, chunk_tokens):
                sl = slice(i, i + chunk_tokens)
                out[:, sl] = self._normed_chunk(data, extra, valid, sl, norm)
        return out

    @staticmethod
    def _normed_chunk(data, extra, valid, sl: slice, norm: nn.LayerNorm) -> torch.Tensor:
        x = data[:, sl]
        if extra is not None:
            x = torch.cat([x, extra[:, sl].to(x.dtype)], dim=-1)
        x = unit_layer_norm(x, norm.eps)
        if valid is not None:
            x = x.masked_fill(~valid[:, sl].unsqueeze(-1), 0.0)  # NaN/inf in padding cannot leak
        return x

    def project_keys(
        self,
        data: torch.Tensor,
        extra: torch.Tensor | None,
        valid: torch.Tensor | None,
        chunk_tokens: int,
        normed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[b, n, c_data] (+ [b, n, c_extra]) -> [b, n, 2 * heads * dim_head]``.

        Tokens where ``valid`` is False are zeroed after the (affine-free) normalisation, so their
        content (padding, absent samples) can never leak into the output or its gradients. ``normed``
        is :meth:`normalize_context`'s output when the caller shares it across layers; without it
        (inference) the keys are computed chunk by chunk into one preallocated tensor.
        """
        weight, bias = self.folded_kv()
        if normed is not None:
            return F.linear(normed, weight, bias)
        norm = self.norm_context if self.norm_context is not None else self.norm
        n = data.shape[1]
        if n <= chunk_tokens:
            return F.linear(self._normed_chunk(data, extra, valid, slice(0, n), norm), weight, bias)
        if torch.is_grad_enabled():
            outs = [
                F.linear(self._normed_chunk(data, extra, valid, slice(i, i + chunk_tokens), norm), weight, bias)
                for i in range(0, n, chunk_tokens)
            ]
            return torch.cat(outs, dim=1)
        out = data.new_empty(data.shape[0], n, self.to_kv.out_features)
        for i in range(0, n, chunk_tokens):  # inference: fill in place, no second full-size copy
            sl = slice(i, i + chunk_tokens)
            out[:, sl] = F.linear(self._normed_chunk(data, extra, valid, sl, norm), weight, bias)
        return out

    def forward(
        self,
        latents: torch.Tensor,
        kv: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``latents [b, l, c]`` over projected keys ``kv [b, n, 2*h*dh]``.

        ``kv=None`` means self-attention over the latents. ``key_mask [b, n]`` must have at
        least one True per row. Returns the update ``[b, l, c]`` and, when requested, the
        attention probabilities ``[b, h, l, n]``.
        """
        x = self.norm(latents)
        if kv is None:
            kv = self.to_kv(x)
        b, n = kv.shape[0], kv.shape[1]
        q = self.to_q(x).reshape(b, -1, self.heads, self.dim_head).transpose(1, 2)
        k, v = kv.reshape(b, n, 2, self.heads, self.dim_head).unbind(dim=2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        mask = key_mask[:, None, None, :] if key_mask is not None else None
        drop = self.dropout if self.training else 0.0
        weights = None
        if return_weights or (
            q.device.type == "cpu" and q.shape[0] * q.shape[1] * q.shape[2] * n <= EXPLICIT_ATTENTION
        ):
            # explicit softmax attention: the weights, or (CPU, small score matrix) faster than SDPA's CPU kernels
            sim = torch.matmul(q, k.transpose(-1, -2)) * self.scale
            if mask is not None:
                sim = sim.masked_fill(~mask, float("-inf"))
            attn = sim.softmax(dim=-1)
            weights = attn if return_weights else None
            out = torch.matmul(F.dropout(attn, p=drop, training=self.training), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, scale=self.scale)
        out = out.transpose(1, 2).reshape(b, -1, self.heads * self.dim_head)
        return self.to_out(out), weights


class GatedFeedForward(nn.Module):
    """``Linear(c, 2*mult*c) -> x * act(gate) -> Linear(mult*c, c) -> Dropout``.

    ``act`` is SELU (HEALNet's "SNN" gate) or GELU (GEGLU).
    """

    def __init__(self, dim: int, mult: int, dropout: float, gate: str) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Linear(mult * dim, dim)
        self.drop = nn.Dropout(dropout)
        self.act = F.selu if gate == "selu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.proj_in(x).chunk(2, dim=-1)
        return self.drop(self.proj_out(h * self.act(g)))


class PreNormFeedForward(nn.Module):
    """``LayerNorm`` followed by :class:`GatedFeedForward` (the residual is the caller's)."""

    def __init__(self, dim: int, mult: int, dropout: float, gate: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ff = GatedFeedForward(dim, mult, dropout, gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(self.norm(x))


class GatedAttentionPool(nn.Module):
    """Gated attention MIL pooling (Ilse et al., 2018) with a token mask.

    ``[b, n, c] -> ([b, c], [b, n])``. Rows without any valid token pool to zeros.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn_v = nn.Linear(dim, hidden)
        self.attn_u = nn.Linear(dim, hidden)
        self.attn_w = nn.Linear(hidden, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.attn_w(self.drop(torch.tanh(self.attn_v(x)) * torch.sigmoid(self.attn_u(x)))).squeeze(-1)
        if mask is not None:
            any_valid = mask.any(dim=1, keepdim=True)
            safe = mask | ~any_valid
            scores = scores.masked_fill(~safe, float("-inf"))
            weights = scores.softmax(dim=1) * any_valid.to(x.dtype)
        else:
            weights = scores.softmax(dim=1)
        return torch.einsum("bn,bnc->bc", weights, x), weights


def lecun_normal_(linear: nn.Linear) -> None:
    """LeCun-normal init (std ``1/sqrt(fan_in)``) with zero bias, as for SELU networks."""
    nn.init.normal_(linear.weight, std=1.0 / math.sqrt(linear.in_features))
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class SNNBlock(nn.Module):
    """Self-normalising MLP (Klambauer et al., 2017): ``[Linear -> SELU -> AlphaDropout] * depth``."""

    def __init__(self, in_dim: int, hidden: int, depth: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(depth):
            linear = nn.Linear(dim, hidden)
            lecun_normal_(linear)
            layers += [linear, nn.SELU(), nn.AlphaDropout(dropout)]
            dim = hidden
        self.net = nn.Sequential(*layers)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
