"""Baselines: ABMIL (bag only), SNN (vectors only), concatenation fusion, late fusion.

Absent modalities contribute zeros (plus presence bits) or are left out of averages,
per sample; a sample with no usable modality falls back to learned biases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from healnet_cli.models.base import SurvivalModel
from healnet_cli.models.batch import ModalitySpec, ModelOutput, ResolvedModality
from healnet_cli.models.blocks import GatedAttentionPool, SNNBlock, lecun_normal_

__all__ = [
    "ABMIL",
    "ABMILConfig",
    "ConcatConfig",
    "ConcatFusion",
    "LateConfig",
    "LateFusion",
    "SNN",
    "SNNConfig",
]


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value < hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}), got {value!r}")


@dataclass(frozen=True)
class ABMILConfig:
    """Gated attention MIL.

    Parameters
    ----------
    hidden_dim : int
        Width of the patch projection (256).
    attn_dim : int
        Width of the gated attention scorer (128).
    dropout : float
        Dropout after the projection and inside the scorer (0.25).
    modality : str or None
        Bag modality to use; None = the first bag modality.
    """

    hidden_dim: int = 256
    attn_dim: int = 128
    dropout: float = 0.25
    modality: str | None = None

    def __post_init__(self) -> None:
        _check_range("dropout", self.dropout, 0.0, 1.0)


@dataclass(frozen=True)
class SNNConfig:
    """Self-normalising network on concatenated vector modalities.

    Parameters
    ----------
    hidden_dim : int
        Width of each SELU layer (256).
    depth : int
        Number of SELU layers (2).
    dropout : float
        AlphaDropout rate (0.25).
    """

    hidden_dim: int = 256
    depth: int = 2
    dropout: float = 0.25

    def __post_init__(self) -> None:
        _check_range("dropout", self.dropout, 0.0, 1.0)


@dataclass(frozen=True)
class ConcatConfig:
    """Per-modality encoders, masked concatenation, MLP head.

    Parameters
    ----------
    hidden_dim : int
        Embedding width of each modality encoder (256).
    attn_dim : int
        ABMIL scorer width for bags (128).
    snn_depth : int
        SELU layers in each vector encoder (2).
    fusion_dim : int
        Hidden width of the fusion MLP (256).
    dropout : float
        Dropout in encoders and head (0.25).
    """

    hidden_dim: int = 256
    attn_dim: int = 128
    snn_depth: int = 2
    fusion_dim: int = 256
    dropout: float = 0.25

    def __post_init__(self) -> None:
        _check_range("dropout", self.dropout, 0.0, 1.0)


@dataclass(frozen=True)
class LateConfig:
    """Per-modality encoder + head; logits averaged over the present modalities.

    Parameters
    ----------
    hidden_dim, attn_dim, snn_depth, dropout
        As in :class:`ConcatConfig` (256, 128, 2, 0.25).
    """

    hidden_dim: int = 256
    attn_dim: int = 128
    snn_depth: int = 2
    dropout: float = 0.25

    def __post_init__(self) -> None:
        _check_range("dropout", self.dropout, 0.0, 1.0)


class ABMILEncoder(nn.Module):
    """``[b, n, d] -> [b, hidden]`` by projection and gated attention pooling."""

    def __init__(self, in_dim: int, hidden: int, attn_dim: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.pool = GatedAttentionPool(hidden, attn_dim, dropout)
        self.out_dim: int = hidden

    def forward(self, res: ResolvedModality) -> tuple[torch.Tensor, torch.Tensor]:
        assert res.token_mask is not None, "a resolved bag always has a token mask"
        valid = res.token_mask & res.present.unsqueeze(1)
        data = torch.where(valid.unsqueeze(-1), res.data, 0.0)
        pooled, weights = self.pool(self.proj(data), valid)
        return pooled, weights


class VectorEncoder(nn.Module):
    """``[b, f] -> [b, hidden]`` SNN encoder; absent samples see zeros."""

    def __init__(self, in_dim: int, hidden: int, depth: int, dropout: float) -> None:
        super().__init__()
        self.net = SNNBlock(in_dim, hidden, depth, dropout)
        self.out_dim: int = self.net.out_dim

    def forward(self, res: ResolvedModality) -> tuple[torch.Tensor, None]:
        data = torch.where(res.present.unsqueeze(1), res.data, 0.0)
        return self.net(data), None


def _encoders(modalities: dict[str, ModalitySpec], cfg) -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            name: ABMILEncoder(spec.dim, cfg.hidden_dim, cfg.attn_dim, cfg.dropout)
            if spec.kind == "bag"
            else VectorEncoder(spec.dim, cfg.hidden_dim, cfg.snn_depth, cfg.dropout)
            for name, spec in modalities.items()
        }
    )


def _out_dim(encoder: nn.Module) -> int:
    """Embedding width of an encoder built by :func:`_encoders`."""
    return cast("ABMILEncoder | VectorEncoder", encoder).out_dim


def _presence(inputs: dict[str, ResolvedModality | None], names, batch_size: int, device) -> torch.Tensor:
    """``[b, k]`` bool presence of each named modality."""
    cols = [
        res.present if (res := inputs[n]) is not None else torch.zeros(batch_size, dtype=torch.bool, device=device)
        for n in names
    ]
    return torch.stack(cols, dim=1)


class ABMIL(SurvivalModel):
    """Gated attention MIL on one bag modality (other modalities are ignored)."""

    name = "abmil"
    config_cls = ABMILConfig

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: ABMILConfig) -> None:
        super().__init__(modalities, n_bins, config)
        bags = [n for n, s in self.modalities.items() if s.kind == "bag"]
        target = config.modality if config.modality is not None else (bags[0] if bags else None)
        if target not in bags:
            raise ValueError(f"abmil needs a bag modality; modality={config.modality!r}, bag modalities: {bags}")
        self.target = target
        self.encoder = ABMILEncoder(self.modalities[target].dim, config.hidden_dim, config.attn_dim, config.dropout)
        self.classifier = nn.Linear(config.hidden_dim, n_bins)

    def _forward(self, inputs, batch_size, device, return_weights) -> ModelOutput:
        res = inputs[self.target]
        if res is None:
            pooled = self.classifier.weight.new_zeros(batch_size, self.config.hidden_dim)
            weights = None
        else:
            pooled, weights = self.encoder(res)
            pooled = torch.where(res.present.unsqueeze(1), pooled, 0.0)
        if not return_weights:
            return ModelOutput(self.classifier(pooled))
        return ModelOutput(self.classifier(pooled), {} if weights is None else {self.target: weights})


class SNN(SurvivalModel):
    """Self-normalising MLP on the concatenated vector modalities plus presence bits."""

    name = "snn"
    config_cls = SNNConfig

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: SNNConfig) -> None:
        super().__init__(modalities, n_bins, config)
        self.vectors = [n for n, s in self.modalities.items() if s.kind == "vector"]
        if not self.vectors:
            raise ValueError(f"snn needs at least one vector modality; got {list(self.modalities)}")
        in_dim = sum(self.modalities[n].dim for n in self.vectors) + len(self.vectors)
        self.net = SNNBlock(in_dim, config.hidden_dim, config.depth, config.dropout)
        self.classifier = nn.Linear(self.net.out_dim, n_bins)
        lecun_normal_(self.classifier)

    def _forward(self, inputs, batch_size, device, return_weights) -> ModelOutput:
        parts = []
        for name in self.vectors:
            res = inputs[name]
            if res is None:
                parts.append(self.classifier.weight.new_zeros(batch_size, self.modalities[name].dim))
            else:
                parts.append(torch.where(res.present.unsqueeze(1), res.data, 0.0))
        bits = _presence(inputs, self.vectors, batch_size, device).to(parts[0].dtype)
        logits = self.classifier(self.net(torch.cat([*parts, bits], dim=1)))
        return ModelOutput(logits, {} if return_weights else None)


class ConcatFusion(SurvivalModel):
    """Intermediate fusion: encoders -> masked concatenation + presence bits -> MLP."""

    name = "concat"
    config_cls = ConcatConfig

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: ConcatConfig) -> None:
        super().__init__(modalities, n_bins, config)
        self.encoders = _encoders(self.modalities, config)
        width = sum(_out_dim(e) for e in self.encoders.values()) + len(self.encoders)
        self.head = nn.Sequential(
            nn.Linear(width, config.fusion_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.fusion_dim, n_bins),
        )

    def _forward(self, inputs, batch_size, device, return_weights) -> ModelOutput:
        parts, weights = [], {}
        for name, enc in self.encoders.items():
            res = inputs[name]
            if res is None:
                parts.append(cast(nn.Linear, self.head[0]).weight.new_zeros(batch_size, _out_dim(enc)))
                continue
            emb, w = enc(res)
            parts.append(torch.where(res.present.unsqueeze(1), emb, 0.0))
            if w is not None:
                weights[name] = w
        bits = _presence(inputs, list(self.encoders), batch_size, device).to(parts[0].dtype)
        logits = self.head(torch.cat([*parts, bits], dim=1))
        return ModelOutput(logits, weights if return_weights else None)


class LateFusion(SurvivalModel):
    """Late fusion: per-modality logits averaged over the modalities present per sample."""

    name = "late"
    config_cls = LateConfig

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: LateConfig) -> None:
        super().__init__(modalities, n_bins, config)
        self.encoders = _encoders(self.modalities, config)
        self.heads = nn.ModuleDict({n: nn.Linear(_out_dim(e), n_bins) for n, e in self.encoders.items()})
        self.fallback = nn.Parameter(torch.zeros(n_bins))

    def _forward(self, inputs, batch_size, device, return_weights) -> ModelOutput:
        total = self.fallback.new_zeros(batch_size, self.n_bins)
        count = self.fallback.new_zeros(batch_size, 1)
        weights = {}
        for name, enc in self.encoders.items():
            res = inputs[name]
            if res is None:
                continue
            emb, w = enc(res)
            present = res.present.unsqueeze(1)
            total = total + torch.where(present, self.heads[name](emb), 0.0)
            count = count + present.to(total.dtype)
            if w is not None:
                weights[name] = w
        logits = torch.where(count > 0, total / count.clamp(min=1.0), self.fallback.expand(batch_size, -1))
        return ModelOutput(logits, weights if return_weights else None)
