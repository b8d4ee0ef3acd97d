"""Registry-driven contract tests: every model x modality set at toy sizes on CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from healnet_cli.models import ModalityInput, create_model, list_models, load_checkpoint, save_checkpoint

TOY_HPARAMS = {
    "healnet": dict(
        depth=2,
        num_latents=6,
        latent_dim=16,
        cross_heads=2,
        cross_dim_head=8,
        latent_heads=2,
        latent_dim_head=8,
        self_per_cross_attn=1,
    ),
    "ehpal": dict(token_dim=16, widths=(16, 16, 32), sir_max_width=32, omics_segments=4, null_tokens=3, pool_dim=8),
    "abmil": dict(hidden_dim=16, attn_dim=8),
    "snn": dict(hidden_dim=16),
    "concat": dict(hidden_dim=16, attn_dim=8, fusion_dim=16),
    "late": dict(hidden_dim=16, attn_dim=8),
    "coxnet": dict(l1_ratio=0.5),
}
EXTRA_CASES = [
    (
        "healnet",
        dict(
            TOY_HPARAMS["healnet"],
            omics_tokens="per_feature",
            bag_positions="index",
            self_per_cross_attn=2,
            ff_gate="gelu",
        ),
    ),
    ("healnet", dict(TOY_HPARAMS["healnet"], share_weights_across_layers=True, self_per_cross_attn=0)),
    ("ehpal", dict(TOY_HPARAMS["ehpal"], variant="F")),
    ("ehpal", dict(TOY_HPARAMS["ehpal"], hilbert=False, bag_stem=False, activation_checkpointing=True)),
    ("ehpal", dict(TOY_HPARAMS["ehpal"], norm="group", segment_weights="shared", omics_dropout=0.2)),
]
MODEL_CASES = [(name, TOY_HPARAMS[name]) for name in list_models()] + EXTRA_CASES
MODALITY_SETS = [("wsi", "rna", "cnv", "mut"), ("rna", "cnv", "mut"), ("wsi", "rna"), ("wsi",), ("rna",)]
N_TOKENS = [5, 9, 3, 7]
N_BINS = 4


def _compatible(name: str, mods: tuple[str, ...]) -> bool:
    if name == "abmil":
        return "wsi" in mods
    if name == "snn":
        return any(m != "wsi" for m in mods)
    if name == "coxnet":  # a linear Cox model on omics vectors only
        return "wsi" not in mods
    return True


CASES = [
    pytest.param(name, hp, mods, id=f"{name}{i}-{'+'.join(mods)}")
    for i, (name, hp) in enumerate(MODEL_CASES)
    for mods in MODALITY_SETS
    if _compatible(name, mods)
]


def _presence(mods: tuple[str, ...]) -> dict[str, list[bool]]:
    """Sample 0: all present; 1: first absent; 2: only first; 3: nothing present."""
    if len(mods) == 1:
        return {mods[0]: [True, False, True, False]}
    return {m: [True, k != 0, k == 0, False] for k, m in enumerate(mods)}


def _model(name, hp, mods, toy, seed=0):
    """Build a toy model and jitter every parameter, so zero-initialised gates are not trivial."""
    torch.manual_seed(seed)
    model = create_model(name, toy.specs(mods), N_BINS, **hp)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn_like(param))
    return model


def _clone(batch):
    return {
        k: dataclasses.replace(
            v,
            data=v.data.clone(),
            present=v.present.clone(),
            token_mask=None if v.token_mask is None else v.token_mask.clone(),
            coords=None if v.coords is None else v.coords.clone(),
        )
        for k, v in batch.items()
    }


def _pad(batch, extra: int):
    """Append ``extra`` junk padding tokens to every bag."""
    out = {}
    for name, item in batch.items():
        if item.token_mask is None:
            out[name] = item
            continue
        b, _, d = item.data.shape
        out[name] = ModalityInput(
            torch.cat([item.data, torch.randn(b, extra, d)], dim=1),
            item.present,
            torch.cat([item.token_mask, torch.zeros(b, extra, dtype=torch.bool)], dim=1),
            torch.cat([item.coords, torch.rand(b, extra, 2) * 1e4], dim=1),
        )
    return out


def _single(batch, i: int) -> dict[str, ModalityInput]:
    """Sample ``i`` alone: bags cut to their valid tokens, absent modalities left out."""
    out = {}
    for name, item in batch.items():
        n = int(item.token_mask[i].sum()) if item.token_mask is not None else None
        data = item.data[i : i + 1] if n is None else item.data[i : i + 1, :n]
        out[name] = ModalityInput(
            data,
            item.present[i : i + 1],
            None if n is None else item.token_mask[i : i + 1, :n],
            None if n is None else item.coords[i : i + 1, :n],
        )
    kept = {k: v for k, v in out.items() if bool(v.present.any())}
    return kept or out


@pytest.mark.parametrize(("name", "hp", "mods"), CASES)
def test_forward_backward_shapes_and_finite_grads(name, hp, mods, toy):
    model = _model(name, hp, mods, toy).train()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    out = model(batch)
    assert out.logits.shape == (len(N_TOKENS), N_BINS)
    assert torch.isfinite(out.logits).all(), "every sample, even one with no modality, needs finite logits"
    out.logits.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(("name", "hp", "mods"), CASES)
def test_absent_modality_data_changes_nothing(name, hp, mods, toy):
    model = _model(name, hp, mods, toy).eval()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    ref = model(batch).logits
    noisy = _clone(batch)
    for item in noisy.values():
        absent = ~item.present
        item.data[absent] = 1e3 * torch.randn_like(item.data[absent])
        if item.coords is not None:
            item.coords[absent] = torch.rand_like(item.coords[absent]) * 1e5
    with torch.no_grad():
        assert torch.equal(model(noisy).logits, ref.detach())


@pytest.mark.parametrize(("name", "hp", "mods"), CASES)
def test_padding_changes_nothing(name, hp, mods, toy):
    model = _model(name, hp, mods, toy).eval()
    specs = toy.specs(mods)
    batch = toy.batch(specs, _presence(mods), N_TOKENS)
    with torch.no_grad():
        ref = model(batch).logits
        noisy = _clone(batch)
        for item in noisy.values():
            if item.token_mask is not None:
                pad = ~item.token_mask
                item.data[pad] = 1e3 * torch.randn_like(item.data[pad])
                item.coords[pad] = torch.rand_like(item.coords[pad]) * 1e5
        assert torch.equal(model(noisy).logits, ref)
        torch.testing.assert_close(model(_pad(batch, 6)).logits, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "hp", "mods"), CASES)
def test_mixed_batch_equals_one_by_one(name, hp, mods, toy):
    """In float64, so that the comparison is ~1e-10 tight and not at the mercy of float32 rounding
    in the (deep, randomly jittered) toy models."""
    model = _model(name, hp, mods, toy).eval().double()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    batch = {k: dataclasses.replace(v, data=v.data.double()) for k, v in batch.items()}
    with torch.no_grad():
        together = model(batch).logits
        alone = torch.cat([model(_single(batch, i)).logits for i in range(len(N_TOKENS))])
    torch.testing.assert_close(together, alone, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize(("name", "hp", "mods"), CASES)
def test_omitted_key_equals_all_absent(name, hp, mods, toy):
    model = _model(name, hp, mods, toy).eval()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    dropped = mods[-1]
    absent = _clone(batch)
    absent[dropped].present[:] = False
    omitted = {k: v for k, v in batch.items() if k != dropped} or absent
    with torch.no_grad():
        torch.testing.assert_close(model(omitted).logits, model(absent).logits, atol=0, rtol=0)


@pytest.mark.parametrize(("name", "hp", "mods"), CASES)
def test_checkpoint_roundtrip_and_weights(name, hp, mods, toy, tmp_path):
    model = _model(name, hp, mods, toy).eval()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    before = _clone(batch)
    with torch.no_grad():
        ref = model(batch)
        with_w = model(batch, return_weights=True)
    torch.testing.assert_close(with_w.logits, ref.logits, atol=1e-5, rtol=1e-4)
    assert isinstance(with_w.weights, dict) and ref.weights is None
    assert all(isinstance(v, torch.Tensor) for v in with_w.weights.values())
    for key, item in batch.items():
        assert torch.equal(item.data, before[key].data), "forward must not mutate its inputs"
    save_checkpoint(tmp_path / "m.pt", model, extra={"fold": 1, "tag": "x"})
    loaded, extra = load_checkpoint(tmp_path / "m.pt")
    assert extra == {"fold": 1, "tag": "x"}
    assert loaded.config == model.config and type(loaded) is type(model)
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, ref.logits)


@pytest.mark.parametrize(("name", "hp"), MODEL_CASES, ids=[f"{n}{i}" for i, (n, _) in enumerate(MODEL_CASES)])
def test_deterministic_under_seed(name, hp, toy):
    mods = ("wsi", "rna", "cnv") if _compatible(name, ("wsi", "rna", "cnv")) else ("rna", "cnv")
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    outs = []
    for _ in range(2):
        model = _model(name, hp, mods, toy, seed=123).train()
        torch.manual_seed(7)
        outs.append(model(batch).logits)
    assert torch.equal(outs[0], outs[1])
