"""HEALNet (Hemker, Simidjievski, Jamnik, "HEALNet: Multimodal Fusion for Heterogeneous Biomedical
Data", NeurIPS 2024, arXiv:2311.09115) with per-sample missing-modality gating.

Latents ``[l, c]`` attend to each modality in a fixed order, once per fusion layer:
pre-norm cross-attention, gated feed-forward, then ``self_per_cross_attn`` latent
self-attention + feed-forward blocks. Every residual update of a modality's step is gated
per sample, ``x <- x + m * update(x)`` with ``m`` in {0, 1}, so a sample that lacks the
modality skips the whole step (including that step's latent self-attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, cast

import torch
from torch import nn

from healnet_cli.models.base import SurvivalModel, check_choice
from healnet_cli.models.batch import ModalitySpec, ModelOutput, ResolvedModality, known_all
from healnet_cli.models.blocks import (
    CrossAttention,
    PreNormFeedForward,
    coord_positions,
    fourier_encode,
    index_positions,
)

__all__ = ["HEALNet", "HEALNetConfig"]


@dataclass(frozen=True)
class HEALNetConfig:
    """HEALNet hyperparameters (defaults = the reference library defaults).

    Parameters
    ----------
    depth : int
        Number of fusion layers (3).
    num_latents, latent_dim : int
        Latent array shape (128 x 128).
    cross_heads, cross_dim_head : int
        Cross-attention heads and width per head (8 x 64).
    latent_heads, latent_dim_head : int
        Latent self-attention heads and width per head (8 x 64).
    attn_dropout, ff_dropout : float
        Dropout on attention probabilities and after each feed-forward (0.0).
    ff_mult : int
        Feed-forward expansion (4): ``Linear(c, 2*mult*c) -> gate -> Linear(mult*c, c)``.
    ff_gate : {"selu", "gelu"}
        Gate activation ("selu" = reference ``snn=True``).
    self_per_cross_attn : int
        Latent self-attention + FF blocks after each modality update (1); any value >= 0.
        Their weights are shared by the modalities of one layer, as in the reference.
    share_weights_across_layers : bool
        False (default, what the paper's numbers used): every layer has its own weights.
        True: one set of weights reused by all layers (the paper's wording).
    fourier_encode_data : bool
        Append Fourier position features to each modality's tokens (True).
    num_freq_bands, max_freq : int, float
        Fourier bands (2) and max frequency (10.0); scales ``linspace(1, max_freq/2, bands)``.
    temperature : float
        Softmax temperature (0.5): scale ``1 / (temperature * sqrt(dim_head))``.
    omics_tokens : {"single", "per_feature"}
        Vectors as one token with ``f`` channels ("single") or ``f`` one-channel tokens.
    bag_positions : {"coords", "index"}
        "coords" (default): 2-axis encoding of patch coordinates normalised per sample to
        [-1, 1]; without coords, axis 0 is the token index and axis 1 is 0. "index": 1-axis
        token-index encoding (the reference layout).
    modality_order : tuple of str or None
        Order in which modalities update the latents; None = the construction order.
    chunk_tokens : int
        Tokens per chunk when projecting keys (16384); bounds memory on large bags.
    linear_modalities : tuple of str
        Vector modalities that enter as a linear term added to every logit (a log-hazard-like shift,
        ``x_m @ w_m``, zero-initialised; no contribution when absent) instead of through
        cross-attention: a few tabular covariates such as age and sex (``()``: none; `healnet train`
        uses ``("clinical",)``). Names the model does not have are ignored.
    linear_scale : float
        The linear term is ``linear_scale * x_m @ w_m`` (10): Adam moves each weight by about the
        learning rate per step, so without the factor a covariate's coefficient could not grow past
        ~0.1 within the few hundred steps early stopping allows (an age effect is ~0.3-0.5 per SD).
    """

    depth: int = 3
    num_latents: int = 128
    latent_dim: int = 128
    cross_heads: int = 8
    cross_dim_head: int = 64
    latent_heads: int = 8
    latent_dim_head: int = 64
    attn_dropout: float = 0.0
    ff_dropout: float = 0.0
    ff_mult: int = 4
    ff_gate: Literal["selu", "gelu"] = "selu"
    self_per_cross_attn: int = 1
    share_weights_across_layers: bool = False
    fourier_encode_data: bool = True
    num_freq_bands: int = 2
    max_freq: float = 10.0
    temperature: float = 0.5
    omics_tokens: Literal["single", "per_feature"] = "single"
    bag_positions: Literal["coords", "index"] = "coords"
    modality_order: tuple[str, ...] | None = None
    chunk_tokens: int = 16384
    linear_modalities: tuple[str, ...] = ()
    linear_scale: float = 10.0

    def __post_init__(self) -> None:
        check_choice("ff_gate", self.ff_gate, ("selu", "gelu"))
        check_choice("omics_tokens", self.omics_tokens, ("single", "per_feature"))
        check_choice("bag_positions", self.bag_positions, ("coords", "index"))
        for name in (
            "depth",
            "num_latents",
            "latent_dim",
            "cross_heads",
            "cross_dim_head",
            "latent_heads",
            "latent_dim_head",
            "ff_mult",
            "num_freq_bands",
            "chunk_tokens",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.self_per_cross_attn) < 0:
            raise ValueError(f"self_per_cross_attn must be >= 0, got {self.self_per_cross_attn!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.modality_order is not None:
            object.__setattr__(self, "modality_order", tuple(self.modality_order))
        object.__setattr__(self, "linear_modalities", tuple(str(m) for m in self.linear_modalities))


class _Context(NamedTuple):
    data: torch.Tensor  # [b, n, c]
    extra: torch.Tensor | None  # [b, n, k] Fourier features
    valid: torch.Tensor  # [b, n] real tokens of present samples
    key_mask: torch.Tensor | None  # valid with a dummy key for empty rows; None = all valid
    present: torch.Tensor  # [b]
    normed: torch.Tensor | None  # [b, n, c + k] affine-free LayerNorm of [data, extra], shared by the layers


class _FusionLayer(nn.Module):
    """One fusion layer: per-modality cross blocks plus the shared latent blocks."""

    def __init__(self, cfg: HEALNetConfig, context_dims: dict[str, int]) -> None:
        super().__init__()
        d = cfg.latent_dim
        self.cross_attn = nn.ModuleDict(
            {
                name: CrossAttention(d, dim, cfg.cross_heads, cfg.cross_dim_head, cfg.attn_dropout, cfg.temperature)
                for name, dim in context_dims.items()
            }
        )
        self.cross_ff = nn.ModuleDict(
            {name: PreNormFeedForward(d, cfg.ff_mult, cfg.ff_dropout, cfg.ff_gate) for name in context_dims}
        )
        self.self_attn = nn.ModuleList(
            [
                CrossAttention(d, None, cfg.latent_heads, cfg.latent_dim_head, cfg.attn_dropout, cfg.temperature)
                for _ in range(cfg.self_per_cross_attn)
            ]
        )
        self.self_ff = nn.ModuleList(
            [PreNormFeedForward(d, cfg.ff_mult, cfg.ff_dropout, cfg.ff_gate) for _ in range(cfg.self_per_cross_attn)]
        )


def _gated_add(x: torch.Tensor, update: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """``x + update`` where ``gate [b, 1, 1]`` is True, ``x`` unchanged elsewhere (exact)."""
    return x + update if gate is None else torch.where(gate, x + update, x)


class HEALNet(SurvivalModel):
    """Hybrid early-fusion attention network over any set of bag and vector modalities."""

    name = "healnet"
    config_cls = HEALNetConfig

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: HEALNetConfig) -> None:
        super().__init__(modalities, n_bins, config)
        cfg = config
        order = tuple(cfg.modality_order) if cfg.modality_order is not None else tuple(self.modalities)
        if sorted(order) != sorted(self.modalities):
            raise ValueError(f"modality_order {list(order)} must list each modality once: {list(self.modalities)}")
        linear = [m for m in self.modalities if m in cfg.linear_modalities]
        bad = [m for m in linear if self.modalities[m].kind != "vector"]
        if bad:
            raise ValueError(
                f"linear_modalities: {bad[0]!r} is a bag modality; only vector modalities can enter linearly"
            )
        self.order = tuple(m for m in order if m not in linear)
        # one weight per feature, summed into every logit (zero at start: the network begins without them)
        self.linear = nn.ParameterDict({m: nn.Parameter(torch.zeros(self.modalities[m].dim)) for m in linear})
        context_dims = {name: self.context_dim(self.modalities[name]) for name in self.order}
        n_layers = 1 if cfg.share_weights_across_layers else cfg.depth
        self.latents = nn.Parameter(torch.randn(cfg.num_latents, cfg.latent_dim))
        self.layers = nn.ModuleList([_FusionLayer(cfg, context_dims) for _ in range(n_layers)])
        self.head_norm = nn.LayerNorm(cfg.latent_dim)
        self.head = nn.Linear(cfg.latent_dim, n_bins)

    def n_position_axes(self, spec: ModalitySpec) -> int:
        """Spatial axes that receive Fourier features for a modality."""
        return 2 if spec.kind == "bag" and self.config.bag_positions == "coords" else 1

    def context_dim(self, spec: ModalitySpec) -> int:
        """Channels of one context token, Fourier features included."""
        cfg = self.config
        base = spec.dim if (spec.kind == "bag" or cfg.omics_tokens == "single") else 1
        if not cfg.fourier_encode_data:
            return base
        return base + self.n_position_axes(spec) * (2 * cfg.num_freq_bands + 1)

    def _positions(self, spec: ModalitySpec, res: ResolvedModality, mask: torch.Tensor) -> torch.Tensor:
        dtype = res.data.dtype
        pos = index_positions(mask, dtype)
        if self.n_position_axes(spec) == 1:
            return pos
        if res.coords is not None:
            return coord_positions(res.coords.to(dtype), mask)
        return torch.cat([pos, torch.zeros_like(pos)], dim=-1)

    def _context(self, name: str, spec: ModalitySpec, res: ResolvedModality) -> _Context:
        if spec.kind == "bag":
            data, mask = res.data, res.token_mask
            assert mask is not None, "a resolved bag always has a token mask"
        elif self.config.omics_tokens == "single":
            data = res.data.unsqueeze(1)
            mask = torch.ones(data.shape[:2], dtype=torch.bool, device=data.device)
        else:
            data = res.data.unsqueeze(-1)
            mask = torch.ones(data.shape[:2], dtype=torch.bool, device=data.device)
        extra = None
        if self.config.fourier_encode_data:
            extra = fourier_encode(self._positions(spec, res, mask), self.config.max_freq, self.config.num_freq_bands)
        valid = mask & res.present.unsqueeze(1)
        key_mask = None
        if not known_all(valid):  # dummy key 0 for absent rows: SDPA never sees an all-False row
            first = torch.arange(valid.shape[1], device=valid.device) == 0
            key_mask = valid | (first & ~valid.any(dim=1, keepdim=True))
        normed = None
        if torch.is_grad_enabled() or data.shape[1] <= self.config.chunk_tokens:
            # normalised once for every layer; only inference on bags larger than a chunk goes chunk by chunk
            attn = cast(CrossAttention, cast(_FusionLayer, self.layers[0]).cross_attn[name])
            normed = attn.normalize_context(data, extra, None if key_mask is None else valid, self.config.chunk_tokens)
        return _Context(data, extra, valid, key_mask, res.present, normed)

    def _forward(self, inputs, batch_size, device, return_weights) -> ModelOutput:
        cfg = self.config
        contexts = {
            name: self._context(name, self.modalities[name], res)
            for name, res in inputs.items()
            if res is not None and name not in self.linear
        }
        x = self.latents.unsqueeze(0).expand(batch_size, -1, -1)
        maps: dict[str, torch.Tensor] = {}
        for depth_idx in range(cfg.depth):
            layer = self.layers[0 if cfg.share_weights_across_layers else depth_idx]
            for name in self.order:
                ctx = contexts.get(name)
                if ctx is None:
                    continue
                x = self._modality_step(layer, name, ctx, x, return_weights, maps, depth_idx)
        logits = self.head(self.head_norm(x.mean(dim=1)))
        for name, w in self.linear.items():
            res = inputs.get(name)
            if res is not None:
                shift = (res.data.to(w.dtype) @ w) * res.present.to(w.dtype) * self.config.linear_scale
                logits = logits + shift.to(logits.dtype).unsqueeze(1)
        weights = self._summarise_weights(maps, contexts) if return_weights else None
        return ModelOutput(logits=logits, weights=weights)

    def _modality_step(self, layer, name, ctx: _Context, x, return_weights, maps, depth_idx) -> torch.Tensor:
        attn = layer.cross_attn[name]
        valid = None if ctx.key_mask is None else ctx.valid  # no masking pass when all tokens are real
        kv = attn.project_keys(ctx.data, ctx.extra, valid, self.config.chunk_tokens, ctx.normed)
        gate = None if known_all(ctx.present) else ctx.present[:, None, None]
        update, w = attn(x, kv, ctx.key_mask, return_weights)
        if w is not None:
            maps[f"{name}/layer{depth_idx}"] = w * ctx.valid[:, None, None, :].to(w.dtype)
        x = _gated_add(x, update, gate)
        x = _gated_add(x, layer.cross_ff[name](x), gate)
        for self_attn, self_ff in zip(layer.self_attn, layer.self_ff, strict=True):
            x = _gated_add(x, self_attn(x)[0], gate)
            x = _gated_add(x, self_ff(x), gate)
        return x

    def _summarise_weights(self, maps: dict[str, torch.Tensor], contexts: dict[str, _Context]) -> dict:
        weights = dict(maps)
        for name in contexts:
            layer_maps = [maps[f"{name}/layer{i}"] for i in range(self.config.depth)]
            weights[name] = torch.stack([m.mean(dim=(1, 2)) for m in layer_maps]).mean(dim=0)
        return weights
