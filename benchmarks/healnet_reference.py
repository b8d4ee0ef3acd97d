"""HEALNet (healnet_cli) vs the reference ``HealNet`` class of konst-int-i/healnet, side by side.

Usage: ``python benchmarks/healnet_reference.py [--reference DIR] [--configs library,blca] [--reps 9]
[--memory-patches 100000] [--quick]``

``DIR`` is a checkout of https://github.com/konst-int-i/healnet (its ``healnet/models/healnet.py`` is
imported from there, never copied; it needs ``einops``). Both models get the same configuration, in
the reference's input layout (``bag_positions="index"``, one omics token per modality, untied
layers; the parameter counts are printed and match), the same data and an AdamW step. Runs are
interleaved (ours, reference, ours, ...) and timed in CPU time on one thread; ``..._speedup`` is
reference time / our time. Settings:

- ``omics``: BLCA's omics shapes (rna 1554, cnv 256, mut 371), batch 32;
- ``bag4096``: one bag of 4,096 patches x 1024 features plus rna, batch 1;
- ``step_memory`` / ``forward_memory``: peak resident memory of one training step (forward +
  backward) and of one inference forward (``no_grad``) on a bag of ``--memory-patches`` patches plus
  rna, each in a fresh process (``ru_maxrss`` minus the resident size before the call).

Configurations: ``library`` (both libraries' defaults: depth 3, 128 x 128 latents, 8 x 64 heads,
one latent self-attention block) and ``blca`` (the paper's tuned BLCA setting: depth 2, 25 x 119
latents, one cross head of 16, no self-attention). Without ``--reference`` only healnet_cli's own
figures are printed and ``reference=skipped``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BLCA = {"rna": 1554, "cnv": 256, "mut": 371}
CONFIGS = {
    "library": {},
    "blca": {
        "depth": 2,
        "num_latents": 25,
        "latent_dim": 119,
        "cross_heads": 1,
        "cross_dim_head": 16,
        "self_per_cross_attn": 0,
    },
}
N_BINS = 4


def _reference_class(ref_dir: Path):
    path = ref_dir / "healnet" / "models" / "healnet.py"
    if not path.is_file():
        raise SystemExit(
            f"--reference {ref_dir}: no healnet/models/healnet.py there; pass a checkout of konst-int-i/healnet"
        )
    spec = importlib.util.spec_from_file_location("reference_healnet", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"the reference code needs {exc.name!r}: pip install {exc.name}") from exc
    return module.HealNet


def _shapes(setting: str, n_patches: int) -> tuple[dict[str, tuple[str, int]], int]:
    if setting == "omics":
        return {k: ("vector", d) for k, d in BLCA.items()}, 32
    return {"wsi": ("bag", 1024), "rna": ("vector", BLCA["rna"])}, 1


def _data(shapes, batch: int, n_patches: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    return {
        k: torch.randn((batch, n_patches, d) if kind == "bag" else (batch, d), generator=gen)
        for k, (kind, d) in shapes.items()
    }


class _Ours:
    def __init__(self, config: dict, shapes, data) -> None:
        import torch

        from healnet_cli.models import ModalityInput, ModalitySpec, create_model

        specs = {k: ModalitySpec(kind, d) for k, (kind, d) in shapes.items()}
        self.model = create_model("healnet", specs, N_BINS, bag_positions="index", **config).train()
        b = next(iter(data.values())).shape[0]
        one = torch.ones(b, dtype=torch.bool)
        self.batch = {
            k: ModalityInput(v, one, torch.ones(v.shape[:2], dtype=torch.bool) if v.dim() == 3 else None)
            for k, v in data.items()
        }
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)

    def loss(self):
        return self.model(self.batch).logits.square().sum()


class _Reference:
    def __init__(self, cls, config: dict, shapes, data) -> None:
        import torch

        from healnet_cli.models.healnet import HEALNetConfig

        cfg = HEALNetConfig(bag_positions="index", **config)
        names = list(shapes)
        self.model = cls(
            n_modalities=len(names),
            channel_dims=[shapes[n][1] for n in names],
            num_spatial_axes=[1] * len(names),
            out_dims=N_BINS,
            depth=cfg.depth,
            num_freq_bands=cfg.num_freq_bands,
            max_freq=cfg.max_freq,
            l_c=cfg.num_latents,
            l_d=cfg.latent_dim,
            x_heads=cfg.cross_heads,
            l_heads=cfg.latent_heads,
            cross_dim_head=cfg.cross_dim_head,
            latent_dim_head=cfg.latent_dim_head,
            attn_dropout=cfg.attn_dropout,
            ff_dropout=cfg.ff_dropout,
            weight_tie_layers=False,
            fourier_encode_data=cfg.fourier_encode_data,
            self_per_cross_attn=cfg.self_per_cross_attn,
            snn=cfg.ff_gate == "selu",
        ).train()
        self.inputs = [v if v.dim() == 3 else v.unsqueeze(1) for v in data.values()]  # omics: 1 token x f
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)

    def loss(self):
        return self.model(list(self.inputs)).square().sum()  # forward replaces list entries: a fresh list


def _step(impl) -> float:
    start = time.process_time()
    impl.optimizer.zero_grad(set_to_none=True)
    impl.loss().backward()
    impl.optimizer.step()
    return (time.process_time() - start) * 1e3


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _time(config_name: str, setting: str, ref_cls, reps: int, out: dict) -> None:
    shapes, batch = _shapes(setting, 4096)
    data = _data(shapes, batch, 4096)
    impls = {"ours": _Ours(CONFIGS[config_name], shapes, data)}
    if ref_cls is not None:
        impls["reference"] = _Reference(ref_cls, CONFIGS[config_name], shapes, data)
    for impl in impls.values():
        _step(impl)
    times = {k: [] for k in impls}
    for _ in range(reps):
        for k, impl in impls.items():
            times[k].append(_step(impl))
    key = f"{config_name}_{setting}"
    for k, impl in impls.items():
        out[f"{key}_{k}_params"] = _params(impl.model)
        out[f"{key}_{k}_step_ms"] = round(statistics.median(times[k]), 2)
    if ref_cls is not None:
        out[f"{key}_speedup"] = round(out[f"{key}_reference_step_ms"] / out[f"{key}_ours_step_ms"], 3)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _memory_worker(impl_name: str, config_name: str, n: int, ref_dir: str, mode: str) -> dict:
    import torch

    torch.set_num_threads(1)
    shapes, batch = _shapes("bag", n)
    data = _data(shapes, batch, n)
    impl = (
        _Ours(CONFIGS[config_name], shapes, data)
        if impl_name == "ours"
        else _Reference(_reference_class(Path(ref_dir)), CONFIGS[config_name], shapes, data)
    )
    before = _rss_mb()
    if mode == "step":
        impl.loss().backward()
    else:
        impl.model.eval()
        with torch.no_grad():
            impl.loss()
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before}


def _memory(config_name: str, n: int, ref_dir: Path | None, out: dict) -> None:
    for mode in ("step", "forward"):
        key = f"{config_name}_{mode}_memory{n}"
        for impl in ("ours", "reference") if ref_dir is not None else ("ours",):
            cmd = [sys.executable, __file__, "--worker", impl, config_name, str(n), str(ref_dir or ""), mode]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                out[f"{key}_{impl}_error"] = (proc.stderr.strip().splitlines() or [f"rc={proc.returncode}"])[-1]
                continue
            out[f"{key}_{impl}_peak_mb"] = round(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"], 1)
        if f"{key}_reference_peak_mb" in out and f"{key}_ours_peak_mb" in out:
            out[f"{key}_reference_over_ours"] = round(out[f"{key}_reference_peak_mb"] / out[f"{key}_ours_peak_mb"], 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=None, help="checkout of konst-int-i/healnet")
    parser.add_argument("--configs", default="library,blca", help=f"comma-separated: {', '.join(CONFIGS)}")
    parser.add_argument("--reps", type=int, default=9, help="interleaved repetitions per setting")
    parser.add_argument("--memory-patches", type=int, default=100_000, help="bag size of the memory setting (0 = skip)")
    parser.add_argument("--quick", action="store_true", help="library config only, 3 repetitions, no memory setting")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, config_name, n, ref_dir, mode = args.worker
        print(json.dumps(_memory_worker(impl, config_name, int(n), ref_dir, mode)))
        return 0
    import torch

    torch.set_num_threads(1)
    ref_cls = _reference_class(args.reference) if args.reference is not None else None
    configs = ["library"] if args.quick else [c for c in args.configs.split(",") if c]
    reps = 3 if args.quick else args.reps
    print(f"torch={torch.__version__}", flush=True)
    print(
        "reference="
        + (
            str(args.reference)
            if ref_cls is not None
            else "skipped (pass --reference DIR, a checkout of konst-int-i/healnet)"
        ),
        flush=True,
    )
    for config_name in configs:
        out: dict = {}
        for setting in ("omics", "bag4096"):
            _time(config_name, setting, ref_cls, reps, out)
        if args.memory_patches and not args.quick:
            _memory(config_name, args.memory_patches, args.reference if ref_cls is not None else None, out)
        for key, value in out.items():
            print(f"{key}={value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
