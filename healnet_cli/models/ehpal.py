"""EHPAL-Surv: an efficient hybrid-fusion cascade for bags and omics, a PyTorch survival model
after EHPAL-Net (anonymous ICLR 2026 submission 20215, OpenReview forum mZJM8hXmVg; republished as
CURE: Dhar et al., "Advancing Multimodal Fusion on Heterogeneous Medical Data with Hybrid Geometry
Attention", KDD 2026, arXiv:2607.19086). The design and where it departs from the authors'
TensorFlow code: ``docs/models.md`` (EHPAL-Surv).

The first modality in ``modality_order`` seeds the shared stream ``S`` (a WSI bag by
default: LayerNorm -> Linear -> GELU once, Hilbert ordering, stride-4 stem). Each later
modality ``X`` (omics as contiguous segment tokens) is fused by one stage:
EHF1 (EMRC -> PCMFA) then EHF2 (EMRC with stride-2 on a bag stream -> norm -> PCMFA ->
SIR side vectors -> LLF). A gated attention pool over the final ``S`` plus the SIR
vectors and presence bits feed the hazard head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from healnet_cli.models.base import SurvivalModel, check_choice
from healnet_cli.models.batch import ModalitySpec, ModelOutput, ResolvedModality, known_all
from healnet_cli.models.blocks import GatedAttentionPool
from healnet_cli.models.ehpal_blocks import NORMS, RGSA, SIR, BagStem, ChannelNorm, hilbert_order, masked
from healnet_cli.models.ehpal_fusion import LLF, PCMFA
from healnet_cli.models.ehpal_legacy import upgrade_state_dict

__all__ = ["EHPAL", "EHPALConfig"]

_DEFAULT_WIDTHS = {"R": (128, 128, 256, 256), "F": (64, 128, 256, 512)}
_DEFAULT_SIR_MAX = {"R": 256, "F": 512}


@dataclass(frozen=True)
class EHPALConfig:
    """EHPAL-Surv hyperparameters.

    Parameters
    ----------
    variant : {"R", "F"}
        PCMFA variant: "R" (recommended, identity at init) or "F" (MACFusion port).
    token_dim : int
        Width ``c0`` of the token projection of every modality (128).
    widths : tuple of int or None
        Stage widths; None = (128, 128, 256, 256) for R, (64, 128, 256, 512) for F. The first
        fused modality uses ``widths[0]`` (EHF1) and ``widths[1]`` (EHF2); the k-th later one
        uses ``widths[min(k, len-1)]``.
    sir_max_width : int or None
        Final width of the SIR side vectors; None = 256 (R) or 512 (F).
    omics_segments : int
        Number ``T`` of contiguous segment tokens per omics vector (64).
    segment_weights : {"per_segment", "shared"}
        Omics tokenizer: one ``Linear(G/T -> c0)`` per segment, so every feature has its own
        weights ("per_segment", default), or one Linear shared by all segments plus a learned
        position embedding ("shared", the design's original tokenizer). Omics features have no
        order that makes weight sharing across segments meaningful.
    omics_dropout : float
        Dropout on the omics feature values before tokenization, in training only (0.0): with
        a few hundred patients, per-feature weights otherwise memorise the training set fast.
    null_tokens : int
        Learned tokens that replace the first modality when a sample lacks it (16).
    bag_stem : bool
        Apply the stride-4 depthwise-conv + max-pool stem to bags (True).
    hilbert : bool
        Order patches along a Hilbert curve of their grid coordinates (True).
    pool_dim : int
        Hidden width of the gated attention pool (128).
    dropout : float
        Dropout before the hazard head (0.25).
    modality_order : tuple of str or None
        Cascade order; None = bags first, then vectors, each in construction order.
    chunk_tokens : int
        Tokens per chunk in the bag projection (16384).
    norm : {"layer", "group"}
        Norm used wherever the authors used BatchNorm: a per-token LayerNorm over channels
        ("layer") or a masked GroupNorm with 8 groups over each sample's valid tokens ("group").
        Both are per sample (BatchNorm would mix patients and padding).
    activation_checkpointing : bool
        Recompute tokenizer and stage activations in the backward pass (False): less
        training memory on large bags for about a third more compute.
    """

    variant: Literal["R", "F"] = "R"
    token_dim: int = 128
    widths: tuple[int, ...] | None = None
    sir_max_width: int | None = None
    omics_segments: int = 64
    segment_weights: Literal["per_segment", "shared"] = "per_segment"
    omics_dropout: float = 0.0
    null_tokens: int = 16
    bag_stem: bool = True
    hilbert: bool = True
    pool_dim: int = 128
    dropout: float = 0.25
    modality_order: tuple[str, ...] | None = None
    chunk_tokens: int = 16384
    norm: Literal["layer", "group"] = "group"
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, ("R", "F"))
        check_choice("segment_weights", self.segment_weights, ("per_segment", "shared"))
        check_choice("norm", self.norm, NORMS)
        if self.widths is not None:
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
            if not self.widths or any(w < 8 or w % 8 for w in self.widths):
                raise ValueError(f"widths must be positive multiples of 8, got {self.widths!r}")
        if self.modality_order is not None:
            object.__setattr__(self, "modality_order", tuple(self.modality_order))
        for name in ("token_dim", "omics_segments", "null_tokens", "pool_dim", "chunk_tokens"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.token_dim % 8:
            raise ValueError(f"token_dim must be a multiple of 8, got {self.token_dim!r}")
        for name in ("dropout", "omics_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    def resolved_widths(self) -> tuple[int, ...]:
        return self.widths if self.widths is not None else _DEFAULT_WIDTHS[self.variant]

    def resolved_sir_max(self) -> int:
        return self.sir_max_width if self.sir_max_width is not None else _DEFAULT_SIR_MAX[self.variant]


class BagTokenizer(nn.Module):
    """``[b, n, d] -> [c0, b, n']``: LayerNorm -> Linear -> GELU once, Hilbert order, stem.

    The whole LayerNorm is folded into the projection: with ``W' = W diag(gamma)``,
    ``b' = b + W beta`` and each patch's mean ``mu`` and ``rstd = 1 / sqrt(var + eps)``,
    ``Linear(LayerNorm(x)) = rstd * (x W'^T - mu * W' 1) + b'``. The bag is read by one product and
    two row reductions; no normalised ``[b, n, d]`` copy is written, kept for the backward pass
    (which only needs the weight gradient) or differentiated. Padding never reaches the valid tokens.
    """

    def __init__(self, in_dim: int, c0: int, cfg: EHPALConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, c0)
        self.stem = BagStem(c0, cfg.norm) if cfg.bag_stem else None
        self.hilbert, self.chunk = cfg.hilbert, cfg.chunk_tokens

    def forward(self, res: ResolvedModality) -> tuple[torch.Tensor, torch.Tensor]:
        assert res.token_mask is not None, "a resolved bag always has a token mask"
        valid = res.token_mask & res.present.unsqueeze(1)
        all_valid = known_all(valid)
        weight = self.proj.weight * self.norm.weight
        bias = torch.addmv(self.proj.bias, self.proj.weight, self.norm.bias)
        weight_sum = weight.sum(dim=1)
        b, n = valid.shape
        chunks = [slice(start, start + self.chunk) for start in range(0, n, self.chunk)]
        tokens = None if len(chunks) > 1 and torch.is_grad_enabled() else weight.new_empty(b, n, weight.shape[0])
        outs = []
        for sl in chunks:
            x = res.data[:, sl]
            mean, rstd = _row_moments(x, self.norm.eps)
            pre = rstd * torch.addcmul(F.linear(x, weight), mean, weight_sum, value=-1.0)
            if not all_valid:
                pre = torch.where(valid[:, sl].unsqueeze(-1), pre, 0.0)  # padding and absent rows: exactly gelu(b')
            out = F.gelu(pre + bias)
            if tokens is None:
                outs.append(out)
            elif len(chunks) == 1:
                tokens = out
            else:  # inference: fill in place, no concatenated copy
                tokens[:, sl] = out
        if tokens is None:
            tokens = torch.cat(outs, dim=1)
        perm = hilbert_order(res.coords if self.hilbert else None, valid)
        c0 = tokens.shape[2]
        x = torch.gather(tokens.permute(2, 0, 1), 2, perm.unsqueeze(0).expand(c0, -1, -1))  # ordered, channel-major
        mask = torch.gather(valid, 1, perm)
        if not all_valid:
            x = masked(x, mask)
        if self.stem is not None:
            x, mask = self.stem(x, mask)
        return x, mask


def _row_moments(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and ``1 / sqrt(var + eps)`` over the last dim of ``x`` (``[..., 1]`` each, no gradient).

    From the sum and the sum of squares (two fast reductions; ``var_mean`` is ~40x slower on the CPU),
    in at least float32.
    """
    with torch.no_grad():
        dtype = torch.promote_types(x.dtype, torch.float32)
        d = x.shape[-1]
        mean = x.sum(dim=-1, keepdim=True, dtype=dtype) / d
        sq = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=dtype).square_() / d
        return mean, torch.rsqrt((sq - mean.square()).clamp_(min=0.0) + eps)


class VectorTokenizer(nn.Module):
    """``[b, f] -> [c0, b, t]``: zero-pad, split into contiguous segments, project each, GELU.

    ``per_segment``: segment ``k`` has its own ``Linear(seg_len -> c0)`` (its bias acts as the
    position embedding), stored as one grouped 1x1 conv (so weight decay and L1 reach it like any
    layer weight) and computed as one batched product. ``shared``: one Linear for all segments plus
    a position embedding. Every token is real (the mask is None).
    """

    def __init__(self, in_dim: int, c0: int, segments: int, per_segment: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.seg_len = math.ceil(in_dim / segments)
        self.n_tokens = math.ceil(in_dim / self.seg_len)
        self.pad = self.n_tokens * self.seg_len - in_dim
        self.per_segment, self.c0 = per_segment, c0
        self.proj: nn.Conv1d | nn.Linear
        if per_segment:  # block-diagonal Linear as a grouped 1x1 conv: one group per segment
            self.proj = nn.Conv1d(self.n_tokens * self.seg_len, self.n_tokens * c0, 1, groups=self.n_tokens)
        else:
            self.proj = nn.Linear(self.seg_len, c0)
            self.pos = nn.Parameter(0.02 * torch.randn(self.n_tokens, c0))

    def forward(self, res: ResolvedModality) -> tuple[torch.Tensor, None]:
        x = torch.where(res.present.unsqueeze(1), self.dropout(res.data), 0.0)
        x = F.pad(x, (0, self.pad)).view(x.shape[0], self.n_tokens, self.seg_len)
        if self.per_segment:
            w = self.proj.weight.view(self.n_tokens, self.c0, self.seg_len)
            assert self.proj.bias is not None, "the per-segment projection has a bias"
            tokens = torch.baddbmm(self.proj.bias.view(self.n_tokens, self.c0, 1), w, x.permute(1, 2, 0))
            return F.gelu(tokens).permute(1, 2, 0).contiguous(), None  # [t, c0, b] -> [c0, b, t]
        tokens = F.gelu(self.proj(x) + self.pos)
        return tokens.permute(2, 0, 1).contiguous(), None


class _Stage(nn.Module):
    """Fusion of one new modality into the shared stream: EHF1 then EHF2."""

    def __init__(self, c_s: int, c_x: int, c_a: int, c_b: int, stride: int, cfg: EHPALConfig) -> None:
        super().__init__()
        norm = cfg.norm
        self.s1, self.x1 = RGSA(c_s, c_a, 1, norm), RGSA(c_x, c_a, 1, norm)
        self.fuse1 = PCMFA(c_a, cfg.variant)
        self.s2, self.x2 = RGSA(c_a, c_b, stride, norm), RGSA(c_a, c_b, 1, norm)
        self.norm_s, self.norm_x = ChannelNorm(c_b, norm), ChannelNorm(c_b, norm)
        self.fuse2 = PCMFA(c_b, cfg.variant)
        self.sir_s, self.sir_x = SIR(c_b, cfg.resolved_sir_max(), norm), SIR(c_b, cfg.resolved_sir_max(), norm)
        self.llf = LLF(c_b, norm)

    def forward(self, s, s_mask, x, x_mask, present):
        if self.pairable(s, s_mask, x, x_mask):
            return self._paired(torch.stack([s, x]), present)
        s, s_mask = self.s1(s, s_mask)
        x, x_mask = self.x1(x, x_mask)
        s, x, _ = self.fuse1(s, s_mask, x, x_mask, present)
        s, s_mask = self.s2(s, s_mask)
        x, x_mask = self.x2(x, x_mask)
        s, x = masked(self.norm_s(s, s_mask), s_mask), masked(self.norm_x(x, x_mask), x_mask)
        s, x, gate = self.fuse2(s, s_mask, x, x_mask, present)
        side_s = self.sir_s(s, s_mask)
        side_x = torch.where(present.unsqueeze(1), self.sir_x(x, x_mask), 0.0)
        s, llf_w = self.llf(s, s_mask, x, x_mask, present)
        return s, s_mask, (side_s, side_x), {"gate": gate, "llf": llf_w}

    def pairable(self, s, s_mask, x, x_mask) -> bool:
        """Whether both streams can run stacked: same shape, no padding, no stride (static facts)."""
        return s_mask is None and x_mask is None and s.shape == x.shape and self.s2.m1.stride == 1

    def _paired(self, z, present):
        """The same stage when both streams have the same shape and no padding (omics): stacked as
        ``z [2, c, b, n]``, each pair of parallel blocks (``s1``/``x1``, ``s2``/``x2``, the norms, the
        SIRs) runs as one call with its two weight sets stacked."""
        z, _ = RGSA.run([self.s1, self.x1], z, None)
        z, _ = self.fuse1.stacked(z, present)
        z, _ = RGSA.run([self.s2, self.x2], z, None)
        z = ChannelNorm.run([self.norm_s, self.norm_x], z, None)
        z, gate = self.fuse2.stacked(z, present)
        side_s, side_x = SIR.run([self.sir_s, self.sir_x], z, None).unbind(0)
        side_x = torch.where(present.unsqueeze(1), side_x, 0.0)
        s, llf_w = self.llf(z[0], None, z[1], None, present)
        return s, None, (side_s, side_x), {"gate": gate, "llf": llf_w}


def _upgrade_hook(module, state_dict, prefix, *_):
    """Load checkpoints written before the fused layout (separate conv per branch) unchanged."""
    upgraded = upgrade_state_dict(module, state_dict, prefix)
    state_dict.clear()
    state_dict.update(upgraded)


class EHPAL(SurvivalModel):
    """EHPAL-Surv cascade over any non-empty set of bag and vector modalities."""

    name = "ehpal"
    config_cls = EHPALConfig

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: EHPALConfig) -> None:
        super().__init__(modalities, n_bins, config)
        cfg = config
        default = [n for n, s in self.modalities.items() if s.kind == "bag"]
        default += [n for n, s in self.modalities.items() if s.kind == "vector"]
        order = tuple(cfg.modality_order) if cfg.modality_order is not None else tuple(default)
        if sorted(order) != sorted(self.modalities):
            raise ValueError(f"modality_order {list(order)} must list each modality once: {list(self.modalities)}")
        self.order = order
        c0, widths = cfg.token_dim, cfg.resolved_widths()
        self.tokenizers = nn.ModuleDict(
            {
                name: BagTokenizer(spec.dim, c0, cfg)
                if spec.kind == "bag"
                else VectorTokenizer(
                    spec.dim, c0, cfg.omics_segments, cfg.segment_weights == "per_segment", cfg.omics_dropout
                )
                for name, spec in self.modalities.items()
            }
        )
        self.null_tokens = nn.Parameter(0.02 * torch.randn(c0, cfg.null_tokens))
        stride = 2 if self.modalities[order[0]].kind == "bag" else 1
        self._stage_stride = stride
        self.stages = nn.ModuleDict()
        c_s, n_side = c0, 0
        for k, name in enumerate(order[1:], start=1):
            c_a, c_b = (
                (widths[0], widths[min(1, len(widths) - 1)]) if k == 1 else (widths[min(k, len(widths) - 1)],) * 2
            )
            self.stages[name] = _Stage(c_s, c0, c_a, c_b, stride, cfg)
            c_s, n_side = c_b, n_side + 2
        self.solo = None
        if len(order) == 1:
            self.solo = RGSA(c0, widths[0], stride, cfg.norm)
            self.solo_sir = SIR(widths[0], cfg.resolved_sir_max(), cfg.norm)
            c_s, n_side = widths[0], 1
        self.pool = GatedAttentionPool(c_s, cfg.pool_dim)
        feat = c_s + n_side * cfg.resolved_sir_max() + len(order)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(feat, n_bins))
        self.register_load_state_dict_pre_hook(_upgrade_hook)

    def _run(self, module: nn.Module, *args):
        """Call ``module``, recomputing its activations in backward when checkpointing is on."""
        if self.config.activation_checkpointing and torch.is_grad_enabled() and self.training:
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _seed_stream(self, res: ResolvedModality | None, name: str, batch_size: int, device):
        """Shared stream ``[c0, b, n]`` from the first modality; learned null tokens where it is absent."""
        null = self.null_tokens.unsqueeze(1).expand(-1, batch_size, -1)
        if res is None:
            return null, None
        s, mask = self._run(self.tokenizers[name], res)
        if mask is not None and known_all(mask):  # every sample has its whole bag: no null tokens
            return s, None
        n, k0 = s.shape[2], null.shape[2]
        absent = ~res.present
        if mask is None and n == k0:
            return torch.where(absent[None, :, None], null, s), None
        length = max(n, k0)
        if mask is None:
            mask = torch.ones(batch_size, n, dtype=torch.bool, device=device)
        s, mask = F.pad(s, (0, length - n)), F.pad(mask, (0, length - n))
        null_mask = (torch.arange(length, device=device) < k0).expand(batch_size, -1)
        s = torch.where(absent[None, :, None], F.pad(null, (0, length - k0)), s)
        return s, torch.where(absent[:, None], null_mask, mask)

    def _forward(self, inputs, batch_size, device, return_weights) -> ModelOutput:
        first = self.order[0]
        s, s_mask = self._seed_stream(inputs[first], first, batch_size, device)
        sides, weights = [], {}
        for name, stage in self.stages.items():
            res = inputs[name]
            c0 = self.config.token_dim
            if res is None:
                present = torch.zeros(batch_size, dtype=torch.bool, device=device)
                x, x_mask = torch.zeros(c0, batch_size, 1, device=device, dtype=s.dtype), None
            else:
                present = res.present
                x, x_mask = self._run(self.tokenizers[name], res)
                if x_mask is not None:  # a bag: absent rows keep their (zero) tokens
                    x_mask = x_mask | ~x_mask.any(dim=1, keepdim=True)
                    x_mask = None if known_all(x_mask) else x_mask
            s, s_mask, side, info = self._run(stage, s, s_mask, x, x_mask, present)
            sides.extend(side)
            weights.update({f"{key}/{name}": value for key, value in info.items()})
        if self.solo is not None:
            s, s_mask = self.solo(s, s_mask)
            sides.append(self.solo_sir(s, s_mask))
        pooled, pool_w = self.pool(s.permute(1, 2, 0), s_mask)
        bits = torch.stack(
            [
                inputs[n].present if inputs[n] is not None else torch.zeros(batch_size, dtype=torch.bool, device=device)
                for n in self.order
            ],
            dim=1,
        ).to(pooled.dtype)
        logits = self.head(torch.cat([pooled, *sides, bits], dim=1))
        if not return_weights:
            return ModelOutput(logits)
        weights["pool"] = pool_w
        if self.modalities[first].kind == "bag" and inputs[first] is not None:
            weights[first] = self._patch_weights(inputs[first], pool_w)
        return ModelOutput(logits, weights)

    def _patch_weights(self, res: ResolvedModality, pool_w: torch.Tensor) -> torch.Tensor:
        """Pool weights of the final (Hilbert-ordered, strided) stream mapped back to the input patches.

        Final token ``i`` was strided from the ordered tokens ``[i*s, (i+1)*s)`` (``s`` = the total
        stride); its weight is shared evenly by the valid patches among them, then put back in input
        order. ``[b, n]``, zero on padding, each present row sums to 1.
        """
        assert res.token_mask is not None, "a resolved bag always has a token mask"
        valid = res.token_mask & res.present.unsqueeze(1)
        perm = hilbert_order(res.coords if self.config.hilbert else None, valid)
        n = valid.shape[1]
        strided_blocks = len(self.stages) or 1  # one stride per fusion stage, or the single solo block
        stride = (4 if self.config.bag_stem else 1) * self._stage_stride**strided_blocks
        spread = pool_w.repeat_interleave(stride, dim=1)[:, :n]
        spread = F.pad(spread, (0, n - spread.shape[1]))
        spread = spread * torch.gather(valid, 1, perm).to(spread.dtype)
        spread = spread / spread.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return torch.zeros_like(spread).scatter(1, perm, spread)
