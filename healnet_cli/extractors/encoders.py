"""The modules an extractor runs: a backbone with its published output, and the CONCH v1.5 tower.

``output``:

- ``cls``: the class token after the final norm (``forward_features(x)[:, 0]``);
- ``cls+mean``: the class token concatenated with the mean of the patch tokens, register tokens
  left out (``tokens[:, num_prefix_tokens:]``), as Virchow/Virchow2 publish it;
- ``pooled``: the model's own pooled output (``model(x)`` with ``num_classes=0``).

Weights are fitted to the backbone before it is wrapped, so published checkpoints load with their
own key names.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from healnet_cli.core.errors import InputError


class TokenOutput(nn.Module):
    """A ViT backbone returning its class token (``cls``) or class ⊕ mean patch token (``cls+mean``).

    ``[b, 3, h, w]`` → ``[b, d]`` or ``[b, 2d]``.
    """

    def __init__(self, backbone: nn.Module, output: str, *, name: str = ""):
        super().__init__()
        if not hasattr(backbone, "forward_features") or not hasattr(backbone, "num_prefix_tokens"):
            raise InputError(
                f"{name or type(backbone).__name__}: output={output} needs a ViT-like model with tokens "
                "(forward_features + num_prefix_tokens); use output=pooled"
            )
        self.model: Any = backbone  # a timm ViT: forward_features and num_prefix_tokens are not nn.Module's
        self.output = output
        self.num_prefix_tokens = int(cast(Any, backbone).num_prefix_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(x)
        cls = tokens[:, 0]
        if self.output == "cls":
            return cls
        return torch.cat([cls, tokens[:, self.num_prefix_tokens :].mean(dim=1)], dim=-1)


class AttentionalPooler(nn.Module):
    """CoCa's attentional pooler with ``n_queries`` learned queries (CONCH's ``attn_pool_contrast``).

    ``[b, n, context_dim]`` → ``[b, n_queries, d_model]``. Key names as published: ``query``,
    ``ln_k``, ``ln_q``, ``to_q``, ``to_kv``, ``to_out`` (no biases).
    """

    def __init__(self, d_model: int, context_dim: int, n_head: int = 8, n_queries: int = 1):
        super().__init__()
        self.query = nn.Parameter(torch.randn(n_queries, d_model))
        self.heads = n_head
        self.ln_k = nn.LayerNorm(context_dim)
        self.ln_q = nn.LayerNorm(d_model)
        self.to_q = nn.Linear(d_model, d_model, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * d_model, bias=False)
        self.to_out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = self.ln_k(x)
        q = self.to_q(self.ln_q(self.query)).expand(b, -1, -1)  # b q d
        k, v = self.to_kv(x).chunk(2, dim=-1)  # b n d
        q, k, v = (t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))  # b h t dh
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dh)) v
        return self.to_out(out.transpose(1, 2).reshape(b, -1, self.to_q.out_features))


class ConchV15(nn.Module):
    """CONCH v1.5 vision tower: ViT-L/16 trunk (layer scale 1.0) at 448 px → attentional pooler
    (1 query, 768-d, 8 heads) → LayerNorm. ``[b, 3, 448, 448]`` → ``[b, 768]``.

    The trunk's position embedding is stored at 448 px (28 x 28 patches);
    :func:`conch_pos_embed_448` converts the published 224-px (14 x 14) one exactly as the reference
    forward interpolates it.
    """

    def __init__(self, trunk: nn.Module, *, d_model: int = 768, n_head: int = 8):
        super().__init__()
        self.trunk: Any = trunk  # a timm ViT: forward_features is not nn.Module's
        width = int(getattr(trunk, "embed_dim", 1024))
        self.attn_pool_contrast = AttentionalPooler(d_model=d_model, context_dim=width, n_head=n_head, n_queries=1)
        self.ln_contrast = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.trunk.forward_features(x)
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


def conch_pos_embed_448(pos_embed: torch.Tensor, *, grid_px: int = 448, patch_px: int = 16) -> torch.Tensor:
    """The ``[1, 1 + 28², d]`` position embedding the CONCH v1.5 reference uses on 448-px input.

    The reference model holds the 224-px grid (14 x 14; a checkpoint at another grid is first
    resampled to it, bilinear, as its loader does) and, on every 448-px forward, upsamples it
    bicubically with DINO's ``scale_factor = (28 + 0.1) / 14``; doing that once here gives the
    same outputs.
    """
    from timm.layers import resample_abs_pos_embed

    base = 224 // patch_px
    n = pos_embed.shape[1] - 1
    if n != base * base:
        pos_embed = resample_abs_pos_embed(
            pos_embed,
            new_size=(base, base),
            num_prefix_tokens=1,
            interpolation="bilinear",
            antialias=False,
            verbose=False,
        )
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    dim = grid.shape[-1]
    target = grid_px // patch_px
    scale = (target + 0.1) / base
    grid = grid.reshape(1, base, base, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, scale_factor=(scale, scale), mode="bicubic")
    if grid.shape[-2:] != (target, target):  # pragma: no cover - floor(14 * 28.1 / 14) == 28
        raise ValueError(f"pos-embed interpolation gave {tuple(grid.shape[-2:])}, expected {target}x{target}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, target * target, dim).to(pos_embed.dtype)
    return torch.cat([cls, grid], dim=1)
