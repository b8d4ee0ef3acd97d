"""Training-step time of every model at `healnet train`'s defaults, side by side (CPU time).

Usage: ``python benchmarks/model_step.py [--models ehpal,healnet] [--bags 1000,10000] [--reps 15]
[--threads 1] [--compile] [--quick] [--blocks]``

One step = forward + backward + the AdamW step of ``healnet train`` (``make_optimizer``), with the
model hyper-parameters of ``MODEL_DEFAULTS``. Settings:

- ``omics``: BLCA's omics shapes (rna 1554, cnv 256, mut 371 features), batch 32, as ``healnet train
  --modalities rna,cnv,mut`` trains them;
- ``bag<N>``: one bag of N patches x 1024 features (grid coordinates) plus rna, batch 1.

Runs are interleaved (model A, model B, A, B, ...) and timed with ``time.process_time``; medians are
printed as ``<setting>_<model>_step_ms=`` with ``<setting>_<model>_over_healnet=`` ratios, plus
``..._forward_ms``, ``..._optimizer_ms`` (the AdamW step alone), ``..._aten_calls`` (one step, from the
profiler), ``..._step_mb_written`` (MB written by one step's tensor ops, views excluded) and
``..._param_tensors``. ``--blocks`` adds ``ehpal_rgsa_pair_fwd_bwd_ms_batch{1,4,32}``: one stacked EHPAL block
at three batch sizes (per-call overhead vs work on the data).
``--compile`` adds ``..._compiled_step_ms`` and ``..._compile_s`` (first call) for each model
(``torch.compile`` of the model, as ``healnet train --compile`` does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

BLCA = {"rna": 1554, "cnv": 256, "mut": 371}


def _setting(name: str):
    import torch

    from healnet_cli.models import ModalityInput, ModalitySpec

    gen = torch.Generator().manual_seed(0)
    if name == "omics":
        specs = {k: ModalitySpec("vector", d) for k, d in BLCA.items()}
        batch = {
            k: ModalityInput(torch.randn(32, d, generator=gen), torch.ones(32, dtype=torch.bool))
            for k, d in BLCA.items()
        }
        return specs, batch
    n = int(name.removeprefix("bag"))
    side = int(n**0.5) + 1
    idx = torch.arange(n)
    coords = torch.stack([idx % side, idx // side], dim=-1).float().unsqueeze(0) * 256.0
    one = torch.ones(1, dtype=torch.bool)
    specs = {"wsi": ModalitySpec("bag", 1024), "rna": ModalitySpec("vector", BLCA["rna"])}
    batch = {
        "wsi": ModalityInput(torch.randn(1, n, 1024, generator=gen), one, torch.ones(1, n, dtype=torch.bool), coords),
        "rna": ModalityInput(torch.randn(1, BLCA["rna"], generator=gen), one),
    }
    return specs, batch


class _Runner:
    """One model at train defaults with its optimizer; ``step()`` is one training step."""

    def __init__(self, model_name: str, specs, batch, compiled: bool) -> None:
        import torch

        from healnet_cli.models import create_model
        from healnet_cli.stages.train.config import MODEL_DEFAULTS
        from healnet_cli.stages.train.loop import make_optimizer

        torch.manual_seed(0)
        self.model = create_model(model_name, specs, 4, **MODEL_DEFAULTS.get(model_name, {})).train()
        self.optimizer = make_optimizer(self.model, 5e-4, 1e-2)
        self.call = torch.compile(self.model) if compiled else self.model
        self.batch = batch
        self.optimizer_ms: list[float] = []

    def forward(self):
        return self.call(self.batch).logits

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.forward().square().sum().backward()
        start = time.process_time()
        self.optimizer.step()
        self.optimizer_ms.append((time.process_time() - start) * 1e3)


def _cpu_ms(fn) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1e3


def _aten_calls(runner: _Runner) -> int:
    from torch.profiler import profile

    with profile() as prof:
        runner.step()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def _bytes_written(runner: _Runner) -> float:
    """MB written by one training step's tensor ops (forward, backward, optimizer): each op's fresh or
    in-place outputs, views excluded. The activation traffic that per-op speed-ups cannot remove."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten._unsafe_view.default:  # a view, though its schema does not say so
                return out
            outs = out if isinstance(out, tuple | list) else (out,)
            for ret, value in zip(func._schema.returns, outs, strict=False):
                alias = ret.alias_info
                if isinstance(value, torch.Tensor) and (alias is None or alias.is_write):
                    self.total += value.numel() * value.element_size()
            return out

    counter = _Count()
    with counter:
        runner.step()
    return round(counter.total / 1e6, 1)


def _measure(setting: str, models: list[str], reps: int, compiled: bool, out: dict) -> None:
    import torch

    specs, batch = _setting(setting)
    runners = {m: _Runner(m, specs, batch, False) for m in models}
    for r in runners.values():
        r.step()
    times = {m: {"step": [], "forward": []} for m in models}
    for _ in range(reps):
        for m, r in runners.items():
            times[m]["step"].append(_cpu_ms(r.step))
            with torch.no_grad():
                times[m]["forward"].append(_cpu_ms(r.forward))
    for m, r in runners.items():
        out[f"{setting}_{m}_step_ms"] = round(statistics.median(times[m]["step"]), 2)
        out[f"{setting}_{m}_optimizer_ms"] = round(statistics.median(r.optimizer_ms[-reps:]), 2)
        out[f"{setting}_{m}_forward_ms"] = round(statistics.median(times[m]["forward"]), 2)
        out[f"{setting}_{m}_aten_calls"] = _aten_calls(r)
        out[f"{setting}_{m}_step_mb_written"] = _bytes_written(r)
        out[f"{setting}_{m}_param_tensors"] = len(list(r.model.parameters()))
    if "healnet" in models:
        for m in models:
            out[f"{setting}_{m}_over_healnet"] = round(
                out[f"{setting}_{m}_step_ms"] / out[f"{setting}_healnet_step_ms"], 3
            )
    if not compiled:
        return
    comp = {}
    for m in models:
        comp[m] = _Runner(m, specs, batch, True)
        out[f"{setting}_{m}_compile_s"] = round(_cpu_ms(comp[m].step) / 1e3, 1)
        comp[m].step()
    ctimes = {m: [] for m in models}
    for _ in range(reps):
        for m in models:
            ctimes[m].append(_cpu_ms(comp[m].step))
    for m in models:
        out[f"{setting}_{m}_compiled_step_ms"] = round(statistics.median(ctimes[m]), 2)
        out[f"{setting}_{m}_compiled_over_eager"] = round(
            out[f"{setting}_{m}_compiled_step_ms"] / out[f"{setting}_{m}_step_ms"], 3
        )


def _block_scaling(reps: int, out: dict) -> None:
    """Forward + backward of one stacked RGSA pair (the omics stage-2 block at train defaults: 32 -> 64
    channels, 16 tokens) at batch 1, 4 and 32: a time that barely grows with the batch is per-call
    overhead, one that grows with it is work on the data."""
    import torch

    from healnet_cli.models.ehpal_blocks import RGSA

    torch.manual_seed(0)
    pair = [RGSA(32, 64, 1, "group"), RGSA(32, 64, 1, "group")]
    inputs = {b: torch.randn(2, 32, b, 16, requires_grad=True) for b in (1, 4, 32)}

    def run(z):
        RGSA.run(pair, z, None)[0].sum().backward()

    times: dict[int, list[float]] = {b: [] for b in inputs}
    for z in inputs.values():
        run(z)
    for _ in range(reps):
        for b, z in inputs.items():
            times[b].append(_cpu_ms(lambda z=z: run(z)))
    for b in inputs:
        out[f"ehpal_rgsa_pair_fwd_bwd_ms_batch{b}"] = round(statistics.median(times[b]), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="healnet,ehpal", help="comma-separated registry names")
    parser.add_argument("--bags", default="1000,10000", help="bag sizes for the bag settings ('' = none)")
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions per model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (train pins 1 for omics)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--quick", action="store_true", help="omics only, 7 repetitions")
    parser.add_argument("--blocks", action="store_true", help="also time one EHPAL RGSA pair at batch 1, 4, 32")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    settings = ["omics"] + ([] if args.quick else [f"bag{int(n)}" for n in args.bags.split(",") if n])
    reps = 7 if args.quick else args.reps
    print(f"torch={torch.__version__}", flush=True)
    print(f"threads={args.threads}", flush=True)
    for setting in settings:
        out: dict = {}
        _measure(setting, models, reps if setting == "omics" else max(3, reps // 3), args.compile, out)
        for key, value in out.items():
            print(f"{key}={value}", flush=True)
    if args.blocks:
        out = {}
        _block_scaling(reps, out)
        for key, value in out.items():
            print(f"{key}={value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
