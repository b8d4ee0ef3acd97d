"""Reference outputs of the model implementations of commit 7c22ef4 (before EHPAL's fused layout).

``legacy_outputs.pt`` (next to this file, in ``data/``) holds, per case, the parameter names and
shapes of that implementation, its logits and attention/gate maps on a fixed batch, and a compact
summary of its parameter gradients, all computed in float64 (so that a rearranged computation is
compared against the old one to ~1e-10, not to float32 rounding). The parameters themselves are not stored:
:func:`recipe_state_dict` rebuilds them from the names and shapes. ``test_model_equivalence.py`` loads them into today's
models
and checks that outputs and gradients agree.

To regenerate the file from the old implementation::

    git worktree add /tmp/old 7c22ef4
    cd /tmp/old && PYTHONPATH=. python /path/to/tests/models/legacy_fixture.py \\
        /path/to/tests/models/data/legacy_outputs.pt

Only the public model API is used, so running it on today's code writes today's outputs instead.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import torch

from healnet_cli.models import ModalityInput, ModalitySpec, create_model

FIXTURE = Path(__file__).parent / "data" / "legacy_outputs.pt"
DIMS = {"wsi": 12, "rna": 20, "cnv": 10, "mut": 7}
EHPAL_TOY = dict(token_dim=16, widths=(16, 16, 32), sir_max_width=32, omics_segments=4, null_tokens=3, pool_dim=8)
HEALNET_TOY = dict(
    depth=2,
    num_latents=6,
    latent_dim=16,
    cross_heads=2,
    cross_dim_head=8,
    latent_heads=2,
    latent_dim_head=8,
    self_per_cross_attn=1,
)
TRAIN_DEFAULTS = dict(token_dim=32, widths=(32, 32, 64, 64), sir_max_width=64, pool_dim=32, omics_segments=16)
CASES = {
    "ehpal_R_all": ("ehpal", ("wsi", "rna", "cnv", "mut"), EHPAL_TOY),
    "ehpal_F_all": ("ehpal", ("wsi", "rna", "cnv", "mut"), dict(EHPAL_TOY, variant="F")),
    "ehpal_layer_shared": ("ehpal", ("wsi", "rna", "cnv"), dict(EHPAL_TOY, norm="layer", segment_weights="shared")),
    "ehpal_nostem": ("ehpal", ("wsi", "rna"), dict(EHPAL_TOY, hilbert=False, bag_stem=False)),
    "ehpal_omics": ("ehpal", ("rna", "cnv", "mut"), EHPAL_TOY),
    "ehpal_omics_defaults": ("ehpal", ("rna", "cnv", "mut"), TRAIN_DEFAULTS),
    "ehpal_bag_defaults": ("ehpal", ("wsi", "rna"), TRAIN_DEFAULTS),
    "ehpal_omics_F_layer": ("ehpal", ("rna", "cnv"), dict(EHPAL_TOY, variant="F", norm="layer")),
    "ehpal_bag_second": ("ehpal", ("rna", "wsi", "cnv"), dict(EHPAL_TOY, modality_order=("rna", "wsi", "cnv"))),
    "ehpal_solo_wsi": ("ehpal", ("wsi",), EHPAL_TOY),
    "ehpal_solo_rna": ("ehpal", ("rna",), EHPAL_TOY),
    "ehpal_wide": (
        "ehpal",
        ("wsi", "rna"),
        dict(token_dim=24, widths=(40, 48), sir_max_width=96, omics_segments=5, pool_dim=8),
    ),
    "healnet_all": ("healnet", ("wsi", "rna", "cnv", "mut"), HEALNET_TOY),
    "healnet_index": (
        "healnet",
        ("wsi", "rna"),
        dict(HEALNET_TOY, omics_tokens="per_feature", bag_positions="index", self_per_cross_attn=2, ff_gate="gelu"),
    ),
    "healnet_shared": (
        "healnet",
        ("wsi", "rna", "cnv"),
        dict(HEALNET_TOY, share_weights_across_layers=True, self_per_cross_attn=0, chunk_tokens=7),
    ),
    "healnet_omics": ("healnet", ("rna", "cnv", "mut"), HEALNET_TOY),
}
N_TOKENS = [37, 64, 9, 50, 23]
N_PROBES = 8


def _gen(key: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(key.encode()) * 1000 + seed)


def recipe_state_dict(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic, well-scaled float64 parameters for the given names and shapes."""
    out = {}
    for key, shape in shapes.items():
        gen = _gen(key, seed)
        leaf = key.rsplit(".", 1)[-1]
        noise = torch.randn(shape, generator=gen, dtype=torch.float64)
        if len(shape) >= 2:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            out[key] = noise / fan_in**0.5
        elif leaf in ("weight", "gamma1", "w_c", "w_o"):
            out[key] = 1.0 + 0.2 * noise
        elif leaf == "fractal":
            out[key] = 1.5 + 0.2 * noise
        else:
            out[key] = 0.2 * noise
    return out


def grad_summary(key: str, grad: torch.Tensor, seed: int) -> torch.Tensor:
    """A small tensor gradient as is; a large one as its projections on fixed random directions."""
    if grad.numel() <= 2 * N_PROBES:
        return grad.detach().reshape(-1).clone()
    probes = torch.randn(N_PROBES, *grad.shape, generator=_gen("probe/" + key, seed), dtype=grad.dtype)
    return (probes * grad.detach()).flatten(1).sum(dim=1)


def pack(tensors: dict[str, torch.Tensor]) -> dict:
    """Many small tensors as one flat tensor plus names and sizes (compact on disk)."""
    flat = [t.reshape(-1) for t in tensors.values()]
    return {"names": list(tensors), "sizes": [t.numel() for t in flat], "values": torch.cat(flat)}


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    return dict(zip(packed["names"], torch.split(packed["values"], packed["sizes"]), strict=True))


def make_batch(mods: tuple[str, ...], seed: int) -> dict[str, ModalityInput]:
    """Five samples: mixed presence per modality, padded bags, grid coords with duplicates."""
    gen = torch.Generator().manual_seed(seed)
    b, n_max = len(N_TOKENS), max(N_TOKENS)
    presence = {m: [True, k % 2 == 0, True, k != 1, k == 0] for k, m in enumerate(mods)}
    batch = {}
    for m in mods:
        present = torch.tensor(presence[m])
        if m == "wsi":
            mask = torch.arange(n_max).unsqueeze(0) < torch.tensor(N_TOKENS).unsqueeze(1)
            coords = torch.randint(0, 12, (b, n_max, 2), generator=gen).double() * 224.0 + 1000.0
            data = torch.randn(b, n_max, DIMS[m], generator=gen, dtype=torch.float64)
            batch[m] = ModalityInput(data, present, mask, coords)
        else:
            batch[m] = ModalityInput(torch.randn(b, DIMS[m], generator=gen, dtype=torch.float64), present)
    return batch


def specs_of(mods) -> dict[str, ModalitySpec]:
    return {m: ModalitySpec("bag" if m == "wsi" else "vector", DIMS[m]) for m in mods}


def probe_of(case_seed: int, shape) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(10_000 + case_seed), dtype=torch.float64)


def run_case(model_name: str, mods: tuple[str, ...], hparams: dict, seed: int) -> dict:
    model = create_model(model_name, specs_of(mods), 4, **hparams).eval().double()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(recipe_state_dict(shapes, seed))
    out = model(make_batch(mods, seed), return_weights=True)
    (out.logits * probe_of(seed, out.logits.shape)).sum().backward()
    return {
        "model": model_name,
        "modalities": list(mods),
        "hparams": hparams,
        "shapes": shapes,
        "grads": pack({k: grad_summary(k, p.grad, seed) for k, p in model.named_parameters() if p.grad is not None}),
        "logits": out.logits.detach(),
        "weights": {k: v.detach() for k, v in out.weights.items()},
    }


def main(path: str) -> None:
    torch.set_num_threads(1)
    cases = {name: run_case(*spec, seed=i) for i, (name, spec) in enumerate(CASES.items())}
    torch.save(cases, path)


if __name__ == "__main__":
    main(sys.argv[1])
