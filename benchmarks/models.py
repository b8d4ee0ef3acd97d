"""Benchmark HEALNet vs EHPAL: time, peak memory and FLOPs on large bags (CPU).

Usage: ``python benchmarks/models.py [--quick] [--json PATH]``

Prints ``name=value`` lines. Every measurement runs in a fresh subprocess, so peak memory
is that process's peak resident set size (``ru_maxrss``) minus its resident size just
before the measured call (model weights and inputs excluded). FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` on one forward pass (batch of 1).
Setting: bag of N patches x D=1024 (with grid coordinates) plus rna/cnv/mut vectors of
2,000 features; HEALNet with library defaults, EHPAL variant R defaults; 4 bins.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

D_BAG, F_OMICS, N_BINS = 1024, 2000, 4
OMICS = ("rna", "cnv", "mut")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(model_name: str, n: int, mode: str, threads: int) -> dict:
    """Run one measurement in this process: mode is 'step' (forward+backward) or 'forward'."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from torch.utils.flop_counter import FlopCounterMode

    from healnet_cli.models import ModalityInput, ModalitySpec, create_model

    torch.manual_seed(0)
    specs = {"wsi": ModalitySpec("bag", D_BAG), **{k: ModalitySpec("vector", F_OMICS) for k in OMICS}}
    variants = {"ehpal-ckpt": ("ehpal", {"activation_checkpointing": True})}
    registry_name, hparams = variants.get(model_name, (model_name, {}))
    model = create_model(registry_name, specs, N_BINS, **hparams)
    side = int(n**0.5) + 1
    idx = torch.arange(n)
    coords = torch.stack([idx % side, idx // side], dim=-1).float().unsqueeze(0) * 256
    one = torch.ones(1, dtype=torch.bool)
    batch = {"wsi": ModalityInput(torch.randn(1, n, D_BAG), one, None, coords)}
    batch.update({k: ModalityInput(torch.randn(1, F_OMICS), one) for k in OMICS})
    before = _rss_mb()
    start = time.perf_counter()
    flops = None
    if mode == "forward":
        model.eval().requires_grad_(False)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(batch)
        flops = counter.get_total_flops()
    else:
        model.train()
        model(batch).logits.square().sum().backward()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb() - before,
        "peak_rss_mb": _peak_mb(),
        "flops": flops,
        "params": sum(p.numel() for p in model.parameters()),
    }


def _run(model_name: str, n: int, mode: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", model_name, str(n), mode, str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc={proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _plan(quick: bool) -> list[tuple[str, int, str]]:
    plan = []
    for model in ("healnet", "ehpal"):
        plan += [(model, 1_000, "forward"), (model, 10_000, "forward"), (model, 100_000, "forward")]
        plan += [(model, 4_096, "step")]
        if not quick:
            plan += [(model, 100_000, "step")]
    if not quick:
        plan += [("ehpal-ckpt", 100_000, "step")]
    return plan


def _emit(key: str, value, out: dict) -> None:
    out[key] = value
    print(f"{key}={value}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="skip forward+backward at N=100,000 (about a minute on 2 idle cores)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch default)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, n, mode, threads = args.worker
        print(json.dumps(_worker(name, int(n), mode, int(threads))))
        return 0
    import torch

    out: dict = {}
    _emit("torch", torch.__version__, out)
    threads = args.threads if args.threads > 0 else torch.get_num_threads()
    _emit("machine", f"{platform.machine()} {platform.processor() or 'cpu'} threads={threads}", out)
    flops: dict[tuple[str, int], float] = {}
    for model, n, mode in _plan(args.quick):
        res = _run(model, n, mode, args.threads)
        if "error" in res:
            _emit(f"{model.replace('-', '_')}_{mode}_error_n{n}", res["error"], out)
            continue
        label = "forward" if mode == "forward" else "fwd_bwd"
        key = model.replace("-", "_")
        _emit(f"{key}_params", res["params"], out)
        _emit(f"{key}_{label}_s_n{n}", round(res["seconds"], 3), out)
        _emit(f"{key}_{label}_peak_mb_n{n}", round(res["peak_mb"], 1), out)
        if res["flops"] is not None:
            flops[(model, n)] = res["flops"]
            _emit(f"{key}_gflops_n{n}", round(res["flops"] / 1e9, 3), out)
    for n in (1_000, 10_000, 100_000):
        if (("healnet", n) in flops) and (("ehpal", n) in flops):
            _emit(f"ehpal_over_healnet_flops_n{n}", round(flops[("ehpal", n)] / flops[("healnet", n)], 4), out)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
