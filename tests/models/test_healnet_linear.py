"""HEALNet ``linear_modalities``: clinical covariates as a linear shift of every logit."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from healnet_cli.models import create_model

HP = dict(depth=1, num_latents=4, latent_dim=8, cross_heads=1, cross_dim_head=8, self_per_cross_attn=0)
MODS = ("wsi", "rna", "clinical")


def test_linear_modality_shifts_the_logits_and_is_masked(toy) -> None:
    torch.manual_seed(0)
    model = create_model("healnet", toy.specs(MODS), 4, linear_modalities=("clinical",), **HP).eval()
    assert "clinical" not in model.layers[0].cross_attn and set(model.linear) == {"clinical"}
    batch = toy.batch(
        toy.specs(MODS), {"wsi": [True] * 4, "rna": [True] * 4, "clinical": [True, False, True, True]}, [5, 9, 3, 7]
    )
    without = {k: v for k, v in batch.items() if k != "clinical"}
    with torch.no_grad():
        assert torch.equal(model(batch).logits, model(without).logits)  # zero-initialised: no effect yet
        model.linear["clinical"].copy_(torch.arange(1.0, 5.0))
        out, base = model(batch).logits, model(without).logits
    shift = 10.0 * (batch["clinical"].data @ torch.arange(1.0, 5.0))  # linear_scale 10
    expected = base + (shift * batch["clinical"].present.float()).unsqueeze(1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(out[1], base[1])  # absent clinical: no contribution
    # the gradient reaches the linear weights
    model.train()
    model(batch).logits.sum().backward()
    assert model.linear["clinical"].grad is not None and model.linear["clinical"].grad.abs().sum() > 0


def test_linear_modalities_default_off_and_bags_refused(toy) -> None:
    model = create_model("healnet", toy.specs(MODS), 4, **HP)
    assert "clinical" in model.layers[0].cross_attn and len(model.linear) == 0
    assert dataclasses.asdict(model.config)["linear_modalities"] == ()
    with pytest.raises(ValueError, match="'wsi' is a bag modality"):
        create_model("healnet", toy.specs(MODS), 4, linear_modalities=("wsi",), **HP)
    only = create_model("healnet", toy.specs(("clinical",)), 4, linear_modalities=("clinical",), **HP)
    batch = toy.batch(toy.specs(("clinical",)), {"clinical": [True, False, True, True]}, [1, 1, 1, 1])
    assert only(batch).logits.shape == (4, 4)
