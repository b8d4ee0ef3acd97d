"""HEALNet specifics: reference parameter parity, positions, gating, weights."""

from __future__ import annotations

import math

import pytest
import torch

from healnet_cli.models import ModalityInput, ModalitySpec, create_model
from healnet_cli.models.blocks import coord_positions, fourier_encode, index_positions

REF_MODALITIES = {"omic": ModalitySpec("vector", 2183), "wsi": ModalitySpec("bag", 2048)}
BLCA = dict(
    depth=2,
    num_latents=25,
    latent_dim=119,
    cross_heads=1,
    cross_dim_head=16,
    latent_heads=8,
    latent_dim_head=127,
    self_per_cross_attn=0,
    share_weights_across_layers=False,
    num_freq_bands=2,
    max_freq=2.0,
    bag_positions="index",
)


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("hparams", "expected"),
    [
        pytest.param(BLCA, 993_705, id="blca-best"),
        pytest.param(dict(BLCA, self_per_cross_attn=1), 2_304_133, id="blca-self-attn"),
        pytest.param(dict(bag_positions="index"), 16_429_418, id="library-defaults"),
    ],
)
def test_parameter_count_matches_reference(hparams, expected):
    model = create_model("healnet", REF_MODALITIES, 4, **hparams)
    assert _n_params(model) == expected
    assert model.context_dim(REF_MODALITIES["omic"]) == 2188
    assert model.context_dim(REF_MODALITIES["wsi"]) == 2053


def test_coords_layout_adds_one_fourier_axis_to_bags():
    untied_1axis = _n_params(create_model("healnet", REF_MODALITIES, 4, **BLCA))
    model = create_model("healnet", REF_MODALITIES, 4, **dict(BLCA, bag_positions="coords"))
    assert model.context_dim(REF_MODALITIES["wsi"]) == 2048 + 2 * 5
    # per layer: 5 more LayerNorm pairs and 5 more to_kv rows of 2 * 1 * 16 outputs
    assert _n_params(model) - untied_1axis == 2 * (5 * 2 + 5 * 32)


def test_shared_weights_keep_one_layer():
    tied = create_model("healnet", REF_MODALITIES, 4, **dict(BLCA, depth=4, share_weights_across_layers=True))
    untied = create_model("healnet", REF_MODALITIES, 4, **dict(BLCA, depth=1))
    assert len(tied.layers) == 1
    assert _n_params(tied) == _n_params(untied)


@pytest.mark.parametrize("self_per_cross_attn", [0, 1, 2, 3])
def test_any_number_of_latent_self_attention_blocks(self_per_cross_attn):
    mods = {"rna": ModalitySpec("vector", 5)}
    model = create_model(
        "healnet",
        mods,
        3,
        depth=1,
        num_latents=4,
        latent_dim=8,
        cross_heads=1,
        cross_dim_head=4,
        latent_heads=2,
        latent_dim_head=4,
        self_per_cross_attn=self_per_cross_attn,
    )
    assert len(model.layers[0].self_attn) == self_per_cross_attn
    out = model({"rna": ModalityInput(torch.randn(2, 5), torch.ones(2, dtype=torch.bool))})
    assert torch.isfinite(out.logits).all()


def test_fourier_features_match_reference_layout():
    pos = index_positions(torch.ones(1, 1, dtype=torch.bool), torch.float32)
    feats = fourier_encode(pos, max_freq=2.0, num_bands=2)[0, 0]
    torch.testing.assert_close(feats, torch.tensor([0.0, 0.0, -1.0, -1.0, -1.0]), atol=1e-6, rtol=0)
    pos = index_positions(torch.ones(1, 7, dtype=torch.bool), torch.float32)[0, :, 0]
    torch.testing.assert_close(pos, torch.linspace(-1, 1, 7))


def test_positions_use_valid_tokens_only():
    mask = torch.tensor([[True, True, True, False, False]])
    pos = index_positions(mask, torch.float32)[0, :3, 0]
    torch.testing.assert_close(pos, torch.tensor([-1.0, 0.0, 1.0]))
    coords = torch.tensor([[[0.0, 512.0], [256.0, 512.0], [512.0, 1024.0], [9e9, -9e9], [0.0, 0.0]]])
    norm = coord_positions(coords, mask)[0]
    torch.testing.assert_close(norm[:3], torch.tensor([[-1.0, -1.0], [0.0, -1.0], [1.0, 1.0]]))
    assert torch.equal(norm[3:], torch.zeros(2, 2))


def test_temperature_scales_the_softmax():
    model = create_model("healnet", REF_MODALITIES, 4, **BLCA)
    attn = model.layers[0].cross_attn["wsi"]
    assert math.isclose(attn.scale, 1 / (0.5 * math.sqrt(16)))


def _tiny(**extra):
    mods = {"wsi": ModalitySpec("bag", 6), "rna": ModalitySpec("vector", 5)}
    hp = dict(
        depth=2,
        num_latents=4,
        latent_dim=8,
        cross_heads=2,
        cross_dim_head=4,
        latent_heads=2,
        latent_dim_head=4,
        omics_tokens="per_feature",
    )
    return create_model("healnet", mods, 3, **dict(hp, **extra)).eval()


def test_sample_without_modalities_gets_head_of_latents():
    model = _tiny()
    batch = {
        "wsi": ModalityInput(torch.randn(2, 3, 6), torch.tensor([True, False])),
        "rna": ModalityInput(torch.randn(2, 5), torch.tensor([True, False])),
    }
    with torch.no_grad():
        logits = model(batch).logits
        expected = model.head(model.head_norm(model.latents.mean(dim=0)))
    torch.testing.assert_close(logits[1], expected, atol=1e-6, rtol=1e-6, msg="latent self-attention must be skipped")


def test_attention_maps_per_token_and_feature():
    model = _tiny()
    mask = torch.tensor([[True, True, True, False], [True, True, False, False], [True] * 4])
    batch = {
        "wsi": ModalityInput(torch.randn(3, 4, 6), torch.tensor([True, True, False]), mask),
        "rna": ModalityInput(torch.randn(3, 5), torch.tensor([True, False, True])),
    }
    with torch.no_grad():
        weights = model(batch, return_weights=True).weights
    assert weights["wsi"].shape == (3, 4) and weights["rna"].shape == (3, 5)
    assert weights["wsi/layer1"].shape == (3, 2, 4, 4)
    torch.testing.assert_close(weights["wsi"].sum(dim=1), torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(weights["rna"].sum(dim=1), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(weights["wsi"][0, 3], torch.tensor(0.0))


def test_chunked_key_projection_matches_single_chunk():
    batch = {"wsi": ModalityInput(torch.randn(2, 11, 6), torch.ones(2, dtype=torch.bool))}
    torch.manual_seed(0)
    whole = _tiny()
    torch.manual_seed(0)
    chunked = _tiny(chunk_tokens=3)
    reference = whole(batch).logits
    torch.testing.assert_close(chunked(batch).logits, reference, atol=1e-6, rtol=1e-5)  # autograd: cat
    with torch.no_grad():
        torch.testing.assert_close(chunked(batch).logits, reference, atol=1e-6, rtol=1e-5)  # in place


def test_bad_modality_order_and_shapes_raise():
    with pytest.raises(ValueError, match="modality_order"):
        create_model("healnet", REF_MODALITIES, 4, modality_order=("wsi",))
    model = _tiny()
    with pytest.raises(ValueError, match="expected data"):
        model({"wsi": ModalityInput(torch.randn(2, 3, 7), torch.ones(2, dtype=torch.bool))})
    with pytest.raises(ValueError, match="unknown modalities"):
        model({"cnv": ModalityInput(torch.randn(2, 3), torch.ones(2, dtype=torch.bool))})
