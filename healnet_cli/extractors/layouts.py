"""State-dict layouts a published weights file comes in, converted to the model's own key names.

- ``timm``: unchanged.
- ``hf-dinov2``: Hugging Face ``transformers`` ``Dinov2Model`` (Phikon-v2's ``model.safetensors``):
  ``embeddings.*``, ``encoder.layer.<i>.attention.attention.{query,key,value}``, ``layer_scale1.lambda1``,
  ``layernorm``, ... → timm ``VisionTransformer`` (``cls_token``, ``blocks.<i>.attn.qkv`` = query,
  key and value stacked, ``ls1.gamma``, ``norm``). ``embeddings.mask_token`` (masked pre-training
  only) is dropped. A file already in timm layout passes through.
- ``conch-v1.5``: the tower's ``trunk.pos_embed`` at the 448-px grid
  (:func:`~healnet_cli.extractors.encoders.conch_pos_embed_448`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_HF_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_HF_BLOCK_KEYS = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_HF_TOP_KEYS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_QKV = ("query", "key", "value")


def convert_state_dict(
    layout: str, state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``state`` in the model's key names (see the module doc); unknown keys are kept as they are,
    so the strict fit that follows reports them."""
    state = dict(state)
    if layout == "hf-dinov2" and "embeddings.cls_token" in state:
        state = hf_dinov2_to_timm(state)
        if "pos_embed" in state and "pos_embed" in model_state:
            state["pos_embed"] = _hf_pos_embed(state["pos_embed"], model_state["pos_embed"])
    if layout == "conch-v1.5" and "trunk.pos_embed" in state and "trunk.pos_embed" in model_state:
        from healnet_cli.extractors.encoders import conch_pos_embed_448

        target = model_state["trunk.pos_embed"]
        if tuple(state["trunk.pos_embed"].shape) != tuple(target.shape):
            state["trunk.pos_embed"] = conch_pos_embed_448(state["trunk.pos_embed"])
    return state


def hf_dinov2_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``transformers`` ``Dinov2Model`` state dict in timm ``VisionTransformer`` key names."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "embeddings.mask_token":
            continue
        if key in _HF_TOP_KEYS:
            out[_HF_TOP_KEYS[key]] = value
            continue
        match = _HF_BLOCK.match(key)
        if match is None:
            out[key] = value
            continue
        index, rest = int(match.group(1)), match.group(2)
        parts = rest.split(".")
        if len(parts) == 4 and parts[:2] == ["attention", "attention"] and parts[2] in _QKV:
            qkv.setdefault((index, parts[3]), {})[parts[2]] = value
        elif rest in _HF_BLOCK_KEYS:
            out[f"blocks.{index}.{_HF_BLOCK_KEYS[rest]}"] = value
        else:
            out[key] = value
    for (index, kind), parts in qkv.items():
        if set(parts) != set(_QKV):
            out.update({f"encoder.layer.{index}.attention.attention.{p}.{kind}": v for p, v in parts.items()})
            continue
        out[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat([parts[p] for p in _QKV], dim=0)
    return out


def _hf_pos_embed(pos_embed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A Hugging Face DINOv2 position embedding at another grid, resampled to the model's as
    ``Dinov2Embeddings.interpolate_pos_encoding`` does on every forward (bicubic, antialiased); the
    same shape passes through."""
    if tuple(pos_embed.shape) == tuple(target.shape) or pos_embed.ndim != 3 or pos_embed.shape[-1] != target.shape[-1]:
        return pos_embed
    side_file, side_model = int((pos_embed.shape[1] - 1) ** 0.5), int((target.shape[1] - 1) ** 0.5)
    if side_file**2 != pos_embed.shape[1] - 1 or side_model**2 != target.shape[1] - 1:
        return pos_embed  # not a square grid after the class token: the strict fit reports it
    from timm.layers import resample_abs_pos_embed

    resampled = resample_abs_pos_embed(
        pos_embed.float(),
        new_size=(side_model, side_model),
        num_prefix_tokens=1,
        interpolation="bicubic",
        antialias=True,
        verbose=False,
    )
    return resampled.to(pos_embed.dtype)
