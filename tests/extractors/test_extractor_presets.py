"""Every foundation-model preset against its published checkpoint layout, on the meta device.

The published facts: the key names and tensor shapes of each released checkpoint (which
mahmoodlab/TRIDENT's loaders load with ``strict=True`` into the architectures below), the parameter
counts of the model cards, and the output dimension. Nothing is allocated: the models are built
under ``torch.device("meta")``.
"""

from __future__ import annotations

import pytest
import torch

from healnet_cli.extractors import spec_for
from healnet_cli.extractors.backbones import build_backbone, output_dim, wrap_output
from healnet_cli.extractors.layouts import convert_state_dict
from healnet_cli.extractors.weights import fit_state_dict

# preset: (parameters in millions from the model card, number of checkpoint tensors, {key: shape})
PUBLISHED: dict[str, tuple[float, int, dict[str, tuple[int, ...]]]] = {
    "uni": (
        303,
        342,
        {
            "cls_token": (1, 1, 1024),
            "pos_embed": (1, 197, 1024),
            "patch_embed.proj.weight": (1024, 3, 16, 16),
            "blocks.23.attn.qkv.weight": (3072, 1024),
            "blocks.23.ls1.gamma": (1024,),
            "blocks.23.mlp.fc1.weight": (4096, 1024),
            "norm.weight": (1024,),
        },
    ),
    "uni2-h": (
        681,
        343,
        {
            "cls_token": (1, 1, 1536),
            "reg_token": (1, 8, 1536),
            "pos_embed": (1, 256, 1536),
            "patch_embed.proj.weight": (1536, 3, 14, 14),
            "blocks.23.attn.qkv.weight": (4608, 1536),
            "blocks.23.mlp.fc1.weight": (8192, 1536),
            "blocks.23.mlp.fc2.weight": (1536, 4096),
            "blocks.23.ls2.gamma": (1536,),
        },
    ),
    "virchow2": (
        632,
        455,
        {
            "cls_token": (1, 1, 1280),
            "reg_token": (1, 4, 1280),
            "pos_embed": (1, 261, 1280),
            "patch_embed.proj.weight": (1280, 3, 14, 14),
            "blocks.31.mlp.fc1.weight": (6832, 1280),
            "blocks.31.mlp.fc2.weight": (1280, 3416),
            "norm.bias": (1280,),
        },
    ),
    "h-optimus-0": (
        1134,
        567,
        {
            "reg_token": (1, 4, 1536),
            "pos_embed": (1, 256, 1536),
            "patch_embed.proj.weight": (1536, 3, 14, 14),
            "blocks.39.mlp.fc1.weight": (8192, 1536),
            "blocks.39.mlp.fc2.weight": (1536, 4096),
            "blocks.39.ls1.gamma": (1536,),
        },
    ),
    "h-optimus-1": (
        1134,
        567,
        {
            "reg_token": (1, 4, 1536),
            "pos_embed": (1, 256, 1536),
            "patch_embed.proj.weight": (1536, 3, 14, 14),
            "blocks.39.mlp.fc1.weight": (8192, 1536),
        },
    ),
    "gigapath": (
        1134,
        566,
        {
            "cls_token": (1, 1, 1536),
            "pos_embed": (1, 197, 1536),
            "patch_embed.proj.weight": (1536, 3, 16, 16),
            "blocks.39.mlp.fc1.weight": (8192, 1536),
            "blocks.39.mlp.fc2.weight": (1536, 4096),
        },
    ),
    "conch-v1.5": (
        306,
        352,
        {
            "trunk.cls_token": (1, 1, 1024),
            "trunk.pos_embed": (1, 197, 1024),
            "trunk.patch_embed.proj.weight": (1024, 3, 16, 16),
            "trunk.blocks.23.ls1.gamma": (1024,),
            "attn_pool_contrast.query": (1, 768),
            "attn_pool_contrast.ln_k.weight": (1024,),
            "attn_pool_contrast.to_q.weight": (768, 768),
            "attn_pool_contrast.to_kv.weight": (1536, 1024),
            "attn_pool_contrast.to_out.weight": (768, 768),
            "ln_contrast.weight": (768,),
        },
    ),
}
ABSENT = {"uni": "reg_token", "gigapath": "reg_token", "uni2-h": "blocks.24.norm1.weight", "virchow2": "fc_norm.weight"}


def _meta_state(spec_name: str) -> tuple[object, torch.nn.Module, torch.nn.Module, dict[str, torch.Tensor]]:
    spec = spec_for(spec_name)
    with torch.device("meta"):
        backbone, full = build_backbone(spec)
    return spec, backbone, full, backbone.state_dict()


def _published_state(name: str, model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A meta-tensor state dict with the checkpoint's keys and shapes."""
    _, _, shapes = PUBLISHED[name]
    state = {k: torch.empty(v.shape, device="meta") for k, v in model_state.items()}
    state.update({k: torch.empty(shape, device="meta") for k, shape in shapes.items()})
    return state


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_matches_published_checkpoint(name: str) -> None:
    spec, backbone, full, state = _meta_state(name)
    params_m, n_keys, shapes = PUBLISHED[name]
    assert len(state) == n_keys
    total = sum(p.numel() for p in backbone.parameters()) / 1e6
    assert abs(total - params_m) / params_m < 0.01, f"{name}: {total:.1f} M parameters, card says {params_m} M"
    published = _published_state(name, state)
    converted = convert_state_dict(spec.layout, published, state)
    fit_state_dict(backbone, converted, path=f"{name}.bin", arch=spec.timm_name)  # strict: keys and shapes
    for key, shape in shapes.items():
        if key in state and key != "trunk.pos_embed":
            assert tuple(state[key].shape) == shape, key
    if name in ABSENT:
        assert ABSENT[name] not in state


@pytest.mark.parametrize("name", sorted(PUBLISHED) + ["phikon-v2", "resnet50-trunc", "vit-small"])
def test_preset_output_dimension(name: str) -> None:
    spec, backbone, full, _ = _meta_state(name)
    model = wrap_output(spec, backbone).eval()
    with torch.no_grad():
        out = model(torch.empty(2, 3, spec.input_px, spec.input_px, device="meta"))
    assert tuple(out.shape) == (2, spec.dim) == (2, output_dim(spec, full))


def _hf_dinov2_keys(layers: int = 24, width: int = 1024, grid: int = 14) -> dict[str, tuple[int, ...]]:
    """``transformers`` ``Dinov2Model`` names and shapes of owkin/phikon-v2's ``model.safetensors``."""
    keys: dict[str, tuple[int, ...]] = {
        "embeddings.cls_token": (1, 1, width),
        "embeddings.mask_token": (1, width),
        "embeddings.position_embeddings": (1, 1 + grid * grid, width),
        "embeddings.patch_embeddings.projection.weight": (width, 3, 16, 16),
        "embeddings.patch_embeddings.projection.bias": (width,),
        "layernorm.weight": (width,),
        "layernorm.bias": (width,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for norm in ("norm1", "norm2"):
            keys.update({f"{p}{norm}.weight": (width,), f"{p}{norm}.bias": (width,)})
        for qkv in ("query", "key", "value"):
            keys.update(
                {f"{p}attention.attention.{qkv}.weight": (width, width), f"{p}attention.attention.{qkv}.bias": (width,)}
            )
        keys.update({f"{p}attention.output.dense.weight": (width, width), f"{p}attention.output.dense.bias": (width,)})
        keys.update({f"{p}layer_scale1.lambda1": (width,), f"{p}layer_scale2.lambda1": (width,)})
        keys.update({f"{p}mlp.fc1.weight": (4 * width, width), f"{p}mlp.fc1.bias": (4 * width,)})
        keys.update({f"{p}mlp.fc2.weight": (width, 4 * width), f"{p}mlp.fc2.bias": (width,)})
    return keys


def test_phikon_v2_hugging_face_layout_fits() -> None:
    spec, backbone, _, state = _meta_state("phikon-v2")
    published = {k: torch.empty(s, device="meta") for k, s in _hf_dinov2_keys().items()}
    assert len(published) == 439  # 7 embedding/final-norm tensors + 18 per layer
    assert abs(sum(p.numel() for p in backbone.parameters()) / 1e6 - 303) < 3  # card: ViT-L, ~300 M
    fit_state_dict(
        backbone, convert_state_dict(spec.layout, published, state), path="model.safetensors", arch="phikon-v2"
    )


def test_hf_dinov2_conversion_is_numerically_exact() -> None:
    """query/key/value stacked into qkv in that order, layer scales and norms renamed: the converted
    small model gives the same tokens as one built directly from the same tensors."""
    import timm

    from healnet_cli.extractors.layouts import hf_dinov2_to_timm

    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2, init_values=0.5, num_classes=0).eval()
    sd = ref.state_dict()
    hf = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.mask_token": torch.zeros(1, 192),
        "layernorm.weight": sd["norm.weight"],
        "layernorm.bias": sd["norm.bias"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
    }
    for i in range(len(ref.blocks)):
        b, p = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = sd[f"{b}attn.qkv.{kind}"].chunk(3)
            hf.update(
                {
                    f"{p}attention.attention.query.{kind}": q,
                    f"{p}attention.attention.key.{kind}": k,
                    f"{p}attention.attention.value.{kind}": v,
                    f"{p}attention.output.dense.{kind}": sd[f"{b}attn.proj.{kind}"],
                    f"{p}norm1.{kind}": sd[f"{b}norm1.{kind}"],
                    f"{p}norm2.{kind}": sd[f"{b}norm2.{kind}"],
                    f"{p}mlp.fc1.{kind}": sd[f"{b}mlp.fc1.{kind}"],
                    f"{p}mlp.fc2.{kind}": sd[f"{b}mlp.fc2.{kind}"],
                }
            )
        hf.update({f"{p}layer_scale1.lambda1": sd[f"{b}ls1.gamma"], f"{p}layer_scale2.lambda1": sd[f"{b}ls2.gamma"]})
    converted = hf_dinov2_to_timm(hf)
    assert set(converted) == set(sd)
    assert all(torch.equal(converted[k], sd[k]) for k in sd)


def test_conch_v15_pos_embed_matches_reference_runtime_interpolation() -> None:
    """The tower stores the 448-px position embedding; the reference keeps the 224-px one and
    interpolates it on every forward (DINO's bicubic with scale (28 + 0.1) / 14). Same outputs."""
    import math

    import timm
    import torch.nn.functional as F

    from healnet_cli.extractors.encoders import ConchV15, conch_pos_embed_448

    torch.manual_seed(0)
    small = {"depth": 2, "embed_dim": 64, "num_heads": 2, "init_values": 1.0, "num_classes": 0}
    trunk224 = timm.create_model("vit_tiny_patch16_224", **small).eval()
    pos224 = trunk224.pos_embed.detach()
    tower = ConchV15(timm.create_model("vit_tiny_patch16_224", img_size=448, **small), d_model=32, n_head=4)
    state = {k: v for k, v in trunk224.state_dict().items()}
    state["pos_embed"] = conch_pos_embed_448(pos224)
    tower.trunk.load_state_dict(state)
    tower.eval()
    x = torch.randn(1, 3, 448, 448)
    # the reference forward_features: cat class token, add the interpolated 224-px embedding, blocks, norm
    n = pos224.shape[1] - 1
    grid = pos224[:, 1:].reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), -1).permute(0, 3, 1, 2)
    grid = (
        F.interpolate(grid, scale_factor=(28.1 / 14, 28.1 / 14), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 784, -1)
    )
    with torch.no_grad():
        tokens = trunk224.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([trunk224.cls_token.expand(1, -1, -1), tokens], dim=1) + torch.cat(
            [pos224[:, :1], grid], dim=1
        )
        expected = trunk224.norm(trunk224.blocks(tokens))
        ours = tower.trunk.forward_features(x)
        assert tower(x).shape == (1, 32)
    assert (ours - expected).abs().max() < 1e-5
