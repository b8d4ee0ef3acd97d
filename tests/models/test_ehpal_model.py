"""EHPAL specifics: Hilbert ordering, identity-at-init fusion, mask-aware late fusion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from healnet_cli.models import ModalityInput, ModalitySpec, create_model
from healnet_cli.models.ehpal_blocks import MHCF, hilbert_index, hilbert_order
from healnet_cli.models.ehpal_fusion import LLF, PCMFA, FusionF, FusionR, dct_matrix
from healnet_cli.models.ehpal_ops import SHIFT_TOKENS, depthwise, pointwise


def test_hilbert_index_first_order_and_locality():
    cells = torch.tensor([[0, 0], [0, 1], [1, 1], [1, 0]])
    assert hilbert_index(cells, bits=1).tolist() == [0, 1, 2, 3]
    grid = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij"), dim=-1).reshape(-1, 2)
    d = hilbert_index(grid, bits=3)
    assert sorted(d.tolist()) == list(range(64)), "the curve visits every cell once"
    path = grid[torch.argsort(d)]
    steps = (path[1:] - path[:-1]).abs().sum(dim=1)
    assert torch.all(steps == 1), "consecutive cells on the curve are grid neighbours"


def test_hilbert_order_puts_padding_last_and_keeps_order_without_coords():
    mask = torch.tensor([[True, False, True, True, False]])
    assert hilbert_order(None, mask).tolist() == [[0, 2, 3, 1, 4]]
    coords = torch.tensor([[[256.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 256.0], [256.0, 256.0]]]) + 1000.0
    full = torch.ones(1, 5, dtype=torch.bool)
    order = hilbert_order(coords, full)[0].tolist()
    assert order[:2] == [1, 2], "ties keep the given order (stable)"
    assert order[3] == 4 and {order[2], order[4]} == {0, 3}, "a U-shaped walk over the 2 x 2 cells"


def test_fusion_r_is_identity_at_init_and_for_absent_stream():
    layer = FusionR(16)
    p = torch.randn(2, 3, 16)  # pooled shared and new stream
    present = torch.tensor([True, False, True])
    f, gate = layer.factors(p, present)
    assert torch.equal(f, torch.ones_like(f)) and gate.shape == (3,)
    with torch.no_grad():
        layer.w.normal_()
    f, _ = layer.factors(p, present)
    assert torch.equal(f[0, 1], torch.ones(16)) and not torch.equal(f[0, 0], torch.ones(16))


def test_fusion_f_leaves_shared_stream_alone_when_absent_and_stays_finite():
    layer = FusionF(16)
    f, gate = layer.factors(50 * torch.randn(2, 2, 16), torch.tensor([True, False]))
    assert torch.equal(f[0, 1], torch.ones(16)) and torch.isfinite(f).all() and torch.isfinite(gate).all()
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.T, torch.eye(8), atol=1e-5, rtol=0)


def test_pcmfa_scales_each_stream_once_by_both_layers():
    torch.manual_seed(0)
    fusion = PCMFA(16, "R")
    with torch.no_grad():
        for layer in fusion.layers:
            layer.w.normal_()
    s, x = torch.randn(16, 3, 5), torch.randn(16, 3, 4)
    present = torch.ones(3, dtype=torch.bool)
    s2, x2, _ = fusion(s, None, x, None, present)
    p = torch.stack([s.mean(dim=2).t(), x.mean(dim=2).t()])
    f1, _ = fusion.layers[0].factors(p, present)
    f2, _ = fusion.layers[1].factors(
        torch.stack([(s * f1[0].t()[:, :, None]).mean(2).t(), (x * f1[1].t()[:, :, None]).mean(2).t()]), present
    )
    torch.testing.assert_close(s2, s * (f1[0] * f2[0]).t()[:, :, None])
    torch.testing.assert_close(x2, x * (f1[1] * f2[1]).t()[:, :, None])


def test_llf_weights_normalise_over_available_streams():
    llf = LLF(16)
    s, x = torch.randn(16, 2, 5), torch.randn(16, 2, 3)
    out, w = llf(s, None, x, None, torch.tensor([True, False]))
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2))
    assert w[1, 1] == 0 and w[1, 0] == 1
    assert out.shape == (16, 2, 5)


def test_mhcf_downsamples_masks_with_stride():
    block = MHCF(16, 24, stride=2)
    mask = torch.tensor([[True] * 7 + [False] * 2])
    out, out_mask = block(torch.randn(16, 1, 9), mask)
    assert out.shape == (24, 1, 5) and out_mask.tolist() == [[True, True, True, True, False]]
    assert torch.equal(out[..., 4], torch.zeros(24, 1))


@pytest.mark.parametrize("n", [11, SHIFT_TOKENS + 9])  # shift-matrix path and conv1d path
@pytest.mark.parametrize(("filters", "k", "stride", "pad"), [(2, 5, 1, 2), (3, 5, 2, 2), (1, 3, 2, 1), (1, 7, 2, 3)])
def test_fused_depthwise_equals_conv1d(n, filters, k, stride, pad):
    c = 8
    x, w, b = torch.randn(3, c, n), torch.randn(filters * c, 1, k), torch.randn(filters * c)
    ref = torch.cat(
        [
            F.conv1d(x, w[j * c : (j + 1) * c], b[j * c : (j + 1) * c], stride=stride, padding=pad, groups=c)
            for j in range(filters)
        ],
        dim=1,
    )
    out = depthwise(x.permute(1, 0, 2).contiguous(), w, b, stride, pad)
    torch.testing.assert_close(out.permute(1, 0, 2), ref)


@pytest.mark.parametrize(
    ("c", "o", "groups", "stride", "branches"),
    [(16, 24, 8, 1, 1), (16, 24, 8, 2, 3), (12, 4, 4, 1, 2), (32, 32, 1, 1, 1)],
)
def test_fused_pointwise_equals_grouped_conv1d(c, o, groups, stride, branches):
    x, w, b = torch.randn(3, c, 11), torch.randn(branches * o, c // groups, 1), torch.randn(branches * o)
    ref = torch.cat(
        [
            F.conv1d(x, w[j * o : (j + 1) * o], b[j * o : (j + 1) * o], stride=stride, groups=groups)
            for j in range(branches)
        ],
        dim=1,
    )
    out = pointwise(x.permute(1, 0, 2).contiguous(), w, b, stride, branches)
    torch.testing.assert_close(out.permute(1, 0, 2), ref)


SPECS = {
    "wsi": ModalitySpec("bag", 32),
    "rna": ModalitySpec("vector", 40),
    "cnv": ModalitySpec("vector", 30),
    "mut": ModalitySpec("vector", 20),
}


@pytest.mark.parametrize("order", [("wsi", "rna", "cnv", "mut"), ("rna", "wsi", "cnv", "mut")])
def test_cascade_order_is_configurable(order):
    model = create_model(
        "ehpal",
        SPECS,
        4,
        modality_order=order,
        token_dim=16,
        widths=(16, 16, 32),
        sir_max_width=32,
        omics_segments=8,
        pool_dim=8,
    ).eval()
    assert tuple(model.order) == order and list(model.stages) == list(order[1:])
    batch = {
        "wsi": ModalityInput(torch.randn(2, 40, 32), torch.tensor([True, False])),
        "rna": ModalityInput(torch.randn(2, 40), torch.ones(2, dtype=torch.bool)),
    }
    out = model(batch, return_weights=True)
    assert out.logits.shape == (2, 4) and torch.isfinite(out.logits).all()
    assert {"pool", f"llf/{order[1]}", f"gate/{order[1]}"} <= set(out.weights)


def test_default_widths_follow_variant_and_stay_small():
    big = {"wsi": ModalitySpec("bag", 1024), **{k: ModalitySpec("vector", 2000) for k in ("rna", "cnv", "mut")}}
    r = create_model("ehpal", big, 4)
    f = create_model("ehpal", big, 4, variant="F")
    n_r = sum(p.numel() for p in r.parameters())
    n_f = sum(p.numel() for p in f.parameters())
    assert n_r < 4_000_000 < n_f < 8_000_000
    with pytest.raises(ValueError, match="variant"):
        create_model("ehpal", big, 4, variant="X")


def test_patch_weights_follow_the_patches_and_sum_to_one():
    torch.manual_seed(0)
    specs = {"wsi": ModalitySpec("bag", 8), "rna": ModalitySpec("vector", 6)}
    model = create_model(
        "ehpal", specs, 4, token_dim=16, widths=[16, 16, 16, 16], sir_max_width=16, pool_dim=8, omics_segments=2
    ).eval()
    grid = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij"), dim=-1).reshape(-1, 2)
    coords = (grid * 256.0).unsqueeze(0).repeat(2, 1, 1)
    feats = torch.randn(2, 64, 8)
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 50:] = False  # padding
    present = torch.ones(2, dtype=torch.bool)
    rna = ModalityInput(torch.randn(2, 6), present)
    out = model({"wsi": ModalityInput(feats, present, mask, coords), "rna": rna}, return_weights=True)
    w = out.weights["wsi"]
    assert w.shape == (2, 64) and torch.all(w >= 0)
    assert torch.allclose(w.sum(dim=1), torch.ones(2)) and torch.all(w[1, 50:] == 0)
    perm = torch.randperm(64)
    shuffled = model(
        {"wsi": ModalityInput(feats[:, perm], present, mask[:, perm], coords[:, perm]), "rna": rna}, return_weights=True
    )
    torch.testing.assert_close(shuffled.weights["wsi"], w[:, perm])  # a patch keeps its weight wherever it is listed
    torch.testing.assert_close(shuffled.logits, out.logits)


@pytest.mark.parametrize("segment_weights", ["per_segment", "shared"])
def test_omics_segments_are_independent_tokens_and_penalised(segment_weights):
    from healnet_cli.models.batch import resolve_modality
    from healnet_cli.stages.train.loop import penalised_parameters

    torch.manual_seed(0)
    model = create_model(
        "ehpal",
        {"rna": ModalitySpec("vector", 10)},
        4,
        token_dim=8,
        widths=[8],
        sir_max_width=8,
        pool_dim=8,
        omics_segments=3,
        segment_weights=segment_weights,
    )
    tok = model.tokenizers["rna"]
    assert tok.n_tokens == 3 and tok.seg_len == 4
    x = torch.randn(2, 10)
    present = torch.ones(2, dtype=torch.bool)
    base, _ = tok(resolve_modality("rna", ModalitySpec("vector", 10), ModalityInput(x, present), 2))
    x2 = x.clone()
    x2[:, 5] += 3.0  # feature 5 lies in segment 1 (features 4..7)
    moved, _ = tok(resolve_modality("rna", ModalitySpec("vector", 10), ModalityInput(x2, present), 2))
    changed = (moved - base).abs().sum(dim=(0, 1)) > 0
    assert changed.tolist() == [False, True, False]
    assert any(p is tok.proj.weight for p in penalised_parameters(model))
    if segment_weights == "per_segment":  # segment 0 and segment 1 do not share weights
        w = tok.proj.weight[:, :, 0].reshape(3, 8, 4)
        assert not torch.equal(w[0], w[1])


def test_masked_group_norm_equals_group_norm_on_the_valid_tokens():
    from healnet_cli.models.ehpal_blocks import ChannelNorm

    norm = ChannelNorm(16, "group")
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(16, 2, 7)  # [c, b, n]
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    out = norm(x, mask)
    for i, n in ((0, 7), (1, 5)):
        ref = F.group_norm(x[:, i : i + 1, :n].transpose(0, 1), 8, norm.weight, norm.bias, norm.eps)
        torch.testing.assert_close(out[:, i : i + 1, :n].transpose(0, 1), ref)
    torch.testing.assert_close(
        norm(x, None), F.group_norm(x.transpose(0, 1), 8, norm.weight, norm.bias).transpose(0, 1)
    )


def test_stacked_branch_norms_normalise_each_branch_alone():
    from healnet_cli.models.ehpal_blocks import ChannelNorm

    for kind in ("group", "layer"):
        merged, parts = ChannelNorm((16, 8, 3), kind), [ChannelNorm(c, kind) for c in (16, 8, 3)]
        x = torch.randn(27, 2, 5)
        ref = torch.cat([p(x[a:b]) for p, (a, b) in zip(parts, ((0, 16), (16, 24), (24, 27)), strict=True)])
        torch.testing.assert_close(merged(x), ref)


def _grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_stacked_streams_equal_the_streams_one_by_one(norm, monkeypatch):
    """Omics stages run their parallel S/X blocks stacked; outputs and gradients are those of the
    separate calls (float64), and the stacked path is the one taken."""
    from healnet_cli.models.ehpal import _Stage

    specs = {"rna": ModalitySpec("vector", 40), "cnv": ModalitySpec("vector", 36), "mut": ModalitySpec("vector", 30)}
    hp = dict(
        token_dim=16, widths=(16, 16, 24), sir_max_width=32, omics_segments=6, null_tokens=6, pool_dim=8, norm=norm
    )
    torch.manual_seed(0)
    model = create_model("ehpal", specs, 4, **hp).double().eval()
    with torch.no_grad():  # leave the identity-at-init fusion, so the gates matter
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    present = {"rna": [True] * 5, "cnv": [True, True, False, True, True], "mut": [False, True, True, True, False]}
    batch = {
        k: ModalityInput(torch.randn(5, s.dim, generator=gen, dtype=torch.float64), torch.tensor(present[k]))
        for k, s in specs.items()
    }  # S spans max(tokens, null_tokens) = 6 tokens: no padding
    calls = []
    original = _Stage._paired
    monkeypatch.setattr(_Stage, "_paired", lambda self, z, present: calls.append(1) or original(self, z, present))
    out = model(batch, return_weights=True)
    out.logits.sum().backward()
    stacked = _grads(model)
    assert len(calls) == 2, "both omics stages take the stacked path"
    model.zero_grad()
    monkeypatch.setattr(_Stage, "pairable", lambda *a: False)
    ref = model(batch, return_weights=True)
    ref.logits.sum().backward()
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-12, rtol=1e-10)
    for key in ref.weights:
        torch.testing.assert_close(out.weights[key], ref.weights[key], atol=1e-12, rtol=1e-10)
    for key, g in _grads(model).items():
        torch.testing.assert_close(stacked[key], g, atol=1e-12, rtol=1e-10, msg=key)


def test_channel_permutation_backward_is_the_inverse_gather():
    from healnet_cli.models.ehpal_ops import permute_channels

    index = torch.randperm(12)
    x = torch.randn(2, 12, 3, 4, dtype=torch.float64, requires_grad=True)
    ref = x.detach().clone().requires_grad_()
    probe = torch.randn(2, 12, 3, 4, dtype=torch.float64)
    out = permute_channels(x, 1, index, torch.argsort(index))
    (out * probe).sum().backward()
    (ref.index_select(1, index) * probe).sum().backward()
    assert torch.equal(out, ref.index_select(1, index)) and torch.equal(x.grad, ref.grad)


def test_bag_tokens_equal_layer_norm_then_projection_with_junk_padding():
    """The folded LayerNorm (row moments + one product) gives LayerNorm -> Linear -> GELU on valid
    patches, also for features far from zero mean; junk padding does not leak into the stream."""
    from healnet_cli.models.batch import resolve_modality
    from healnet_cli.models.ehpal import BagTokenizer, EHPALConfig

    torch.manual_seed(0)
    tok = BagTokenizer(24, 16, EHPALConfig(bag_stem=False, hilbert=False)).double()
    with torch.no_grad():
        tok.norm.weight.normal_()
        tok.norm.bias.normal_()
    data = 5.0 + 2.0 * torch.randn(2, 9, 24, dtype=torch.float64)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    data[1, 6:] = 1e6 * torch.randn(3, 24, dtype=torch.float64)  # junk padding
    item = ModalityInput(data, torch.ones(2, dtype=torch.bool), mask)
    res = resolve_modality("wsi", ModalitySpec("bag", 24), item, 2)
    tokens, _ = tok(res)  # [c0, b, n]
    ref = F.gelu(tok.proj(tok.norm(data)))  # [b, n, c0]
    got = tokens.permute(1, 2, 0)
    torch.testing.assert_close(got[mask], ref[mask], atol=1e-10, rtol=1e-9)
    assert torch.equal(got[~mask], torch.zeros(3, 16, dtype=torch.float64)), "padding tokens are exactly zero"
