"""Benchmark ``healnet extract``: is the model the bottleneck, or the slide I/O?

For ``resnet50-trunc`` with a random-init weights *file* (the ``--weights`` path), on synthetic
pyramidal slides (256 px patches read at level 0 and resized to 224 px), measures in one run:

- ``end_to_end_patches_per_s``: the stage's real loop (DataLoader workers reading + resizing,
  model forward, per-slide write + commit), from loader start to the last commit;
- ``forward_only_patches_per_s``: the same model and batch size on ``uint8`` batches already in
  memory (normalisation + forward, like the loop);
- ``io_efficiency``: their ratio (1.0 = reading is fully hidden behind compute).

``--extractor stain-texture`` measures the offline extractor instead: its "forward" is the feature
function on one core in the main process, while the loop computes in every worker (so the ratio
can exceed 1). Because that ratio depends on how many cores the workers really get, the run also
measures CPU time (``getrusage`` of the main process and the reaped workers):

- ``forward_cpu_ms_per_patch`` and ``end_to_end_cpu_ms_per_patch`` (reading, resizing, features,
  writing: every process of the loop);
- ``io_efficiency_cpu = num_workers * forward_cpu / end_to_end_cpu``: the ``io_efficiency`` the loop
  reaches when each worker has a core to itself, independent of what else runs on the machine.

Patches are read the way ``healnet extract`` reads them: tiles decoded directly (tifffile) where
that gives OpenSlide's pixels. With ``--readers direct,openslide`` (the default) each repeat also runs
the loop with every read through OpenSlide (the reader before direct decoding), interleaved, and
prints those figures with the suffix ``_openslide`` and ``read_speedup_cpu`` (OpenSlide loop CPU per
patch / direct loop CPU per patch).

The runs are back to back, ``--repeats`` times (after a warm-up forward); the printed values are
the medians, and ``io_efficiency`` is the median of the per-repeat ratios, which keeps it
meaningful on a shared machine whose load changes during the run. Runs on CUDA with
``--precision auto`` (bf16) when a GPU is visible. Usage::

    python benchmarks/extract.py [--quick] [--extractor stain-texture] [--level-factor 4] [--device auto]
        [--batch-size 32] [--num-workers N] [--readers direct,openslide] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from healnet_cli.artifacts.coords import SlideCoords, coords_path, write_coords
from healnet_cli.core.console import Console
from healnet_cli.core.device import resolve_device, resolve_precision
from healnet_cli.core.fingerprint import file_fingerprint
from healnet_cli.core.hpc import available_cpus
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore
from healnet_cli.extractors import Extractor, load_extractor
from healnet_cli.stages.demo.synthetic_slides import write_pyramidal_tiff
from healnet_cli.stages.extract import loader
from healnet_cli.stages.extract.config import default_num_workers
from healnet_cli.stages.extract.engine import EngineOptions, extract_slides
from healnet_cli.stages.extract.items import discover_items, read_plan

READ_PATCH_PX = 256


def make_workspace(root: Path, n_slides: int, patches_per_slide: int, level_factor: int = 4) -> Path:
    """Synthetic textured slides with committed coordinates (a grid of 256 px patches); pyramid
    levels ``level_factor`` apart (4: Aperio-like, 2: libvips/NDPI-like)."""
    side = READ_PATCH_PX * int(np.ceil(np.sqrt(patches_per_slide)))
    rng = np.random.default_rng(0)
    tiles = root / "tiles"
    for s in range(n_slides):
        pixels = rng.integers(90, 250, (side, side, 3), dtype=np.uint8)
        (root / "slides").mkdir(parents=True, exist_ok=True)
        slide = write_pyramidal_tiff(
            root / "slides" / f"b{s}.tif",
            pixels,
            mpp=0.5,
            levels=2,
            tile=256,
            compression_level=1,
            level_factor=level_factor,
        )
        grid = [(x, y) for y in range(0, side, READ_PATCH_PX) for x in range(0, side, READ_PATCH_PX)][
            :patches_per_slide
        ]
        xy = np.array(grid, dtype=np.int64)
        meta = {
            "slide_id": f"b{s}",
            "case_id": f"b{s}",
            "source_path": str(slide),
            "mpp": 0.5,
            "target_mpp": 0.5,
            "patch_px": READ_PATCH_PX,
            "patch_px_level0": READ_PATCH_PX,
            "read_level": 0,
            "read_patch_px": READ_PATCH_PX,
        }
        path = write_coords(
            coords_path(tiles, f"b{s}"), SlideCoords(xy[:, 0], xy[:, 1], np.ones(len(xy), np.float32), meta)
        )
        fingerprint = file_fingerprint(slide)
        ArtifactStore(tiles, "tile", {}).commit(f"b{s}", fingerprint, [path], meta={"slide_fingerprint": fingerprint})
    return root


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its reaped children (the loader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def forward_only(extractor: Extractor, n_patches: int, batch_size: int) -> float:
    """Patches/s of normalisation + forward on in-memory uint8 batches (same batch size)."""
    batch = torch.randint(
        0, 256, (batch_size, 3, extractor.transform.input_px, extractor.transform.input_px), dtype=torch.uint8
    )
    batch = batch.contiguous(memory_format=torch.channels_last).to(extractor.device)  # as the loader yields
    sizes = [min(batch_size, n_patches - i) for i in range(0, n_patches, batch_size)]
    _sync(extractor.device)
    start = time.perf_counter()
    for size in sizes:
        out = extractor.encode(batch[:size])
    out.cpu()
    _sync(extractor.device)
    return n_patches / (time.perf_counter() - start)


def end_to_end(
    extractor: Extractor, workdir: Path, options: EngineOptions, run: str, *, direct: bool = True
) -> tuple[float, int]:
    """Patches/s of the stage's loop on every slide (written to a fresh folder); ``direct=False``
    reads every patch through OpenSlide."""
    items, _ = discover_items(workdir / "tiles")
    store = ArtifactStore(workdir / "features" / f"run{run}", "extract", {"bench": run})
    store.folder.mkdir(parents=True, exist_ok=True)
    work = [(item, read_plan(item)) for item in items]
    status = StatusTable("extract")
    for item in items:  # extract_slides writes slides its caller has locked, as `healnet extract` does
        if store.acquire_lock(item.id) is not None:
            raise RuntimeError(f"benchmark slide {item.id} is locked by another job")
    saved, loader.DIRECT_TILES = loader.DIRECT_TILES, direct
    try:
        stats = extract_slides(
            work, extractor, store=store, status=status, console=Console(quiet=True), options=options
        )
    finally:
        loader.DIRECT_TILES = saved
        for item in items:
            store.release_lock(item.id)
    done = status.counts().get("done", 0)
    if status.failed or done != len(items):
        raise RuntimeError(f"benchmark slides not committed ({done}/{len(items)}): failed {status.failed}")
    shutil.rmtree(store.folder)
    return stats.patches_per_s, stats.patches


def _build(name: str, root: Path) -> Extractor:
    """``resnet50-trunc`` from a random-init weights file (the --weights path), or ``stain-texture``."""
    if name == "stain-texture":
        return load_extractor(name)
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model("resnet50", num_classes=0).state_dict().items()}
    weights = root / "resnet50-random.safetensors"
    save_file(state, str(weights))
    return load_extractor(name, weights=weights)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller slides (smoke run)")
    parser.add_argument(
        "--extractor", default="resnet50-trunc", help="resnet50-trunc (random-init file) or stain-texture"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 on CPU, 256 on CUDA")
    parser.add_argument("--num-workers", type=int, default=None, help="default: healnet extract's default")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--level-factor", type=int, default=4, help="downsample between pyramid levels (4 or 2)")
    parser.add_argument(
        "--readers",
        default="direct,openslide",
        help="direct (as healnet extract reads), openslide (every read through OpenSlide), or both, interleaved",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    autocast_dtype = resolve_precision(args.precision, device)
    on_cuda = device.type == "cuda"
    in_workers = args.extractor == "stain-texture"
    batch_size = args.batch_size or (256 if on_cuda or in_workers else 32)
    n_slides, per_slide = (
        (2, batch_size) if args.quick else ((8, 2 * batch_size) if on_cuda or in_workers else (4, 2 * batch_size))
    )
    repeats = args.repeats or (1 if args.quick else 3)
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    if not readers or set(readers) - {"direct", "openslide"}:
        parser.error(f"--readers {args.readers!r}: give direct, openslide or both (comma-separated)")
    if args.num_workers is not None:
        num_workers = args.num_workers
    else:
        num_workers = default_num_workers(model_on_cpu=not on_cuda, workers_compute=in_workers)

    with tempfile.TemporaryDirectory(prefix="healnet-bench-extract-") as tmp:
        root = Path(tmp)
        make_workspace(root / "work", n_slides, per_slide, args.level_factor)
        extractor = _build(args.extractor, root)
        extractor.prepare(device, autocast_dtype)
        forward_only(extractor, batch_size, batch_size)  # warm-up
        options = EngineOptions(batch_size=batch_size, num_workers=num_workers)
        fwd, fwd_cpu, n_patches = [], [], 0
        e2e: dict[str, list[float]] = {r: [] for r in readers}
        e2e_cpu: dict[str, list[float]] = {r: [] for r in readers}
        for run in range(repeats):
            start = cpu_seconds()
            fwd.append(forward_only(extractor, n_slides * per_slide, batch_size))
            fwd_cpu.append((cpu_seconds() - start) / (n_slides * per_slide))
            for reader in readers:
                start = cpu_seconds()
                rate, n_patches = end_to_end(
                    extractor, root / "work", options, f"{run}-{reader}", direct=reader == "direct"
                )
                e2e_cpu[reader].append((cpu_seconds() - start) / n_patches)
                e2e[reader].append(rate)

    results = {
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if on_cuda else f" ({available_cpus()} cpus)"),
        "extractor": extractor.name,
        "precision": extractor.precision,
        "batch_size": batch_size,
        "level_factor": args.level_factor,
        "num_workers": num_workers,
        "torch_threads": torch.get_num_threads(),
        "patches": n_patches,
        "forward_only_patches_per_s": round(float(np.median(fwd)), 2),
        "forward_cpu_ms_per_patch": round(1e3 * float(np.median(fwd_cpu)), 3),
    }
    for reader in readers:
        suffix = "" if reader == "direct" else "_openslide"
        results |= {
            f"end_to_end_patches_per_s{suffix}": round(float(np.median(e2e[reader])), 2),
            f"io_efficiency{suffix}": round(
                float(np.median([e / f for e, f in zip(e2e[reader], fwd, strict=True)])), 3
            ),
            f"end_to_end_cpu_ms_per_patch{suffix}": round(1e3 * float(np.median(e2e_cpu[reader])), 3),
        }
        if in_workers:
            ratios = [max(num_workers, 1) * f / e for f, e in zip(fwd_cpu, e2e_cpu[reader], strict=True)]
            results[f"io_efficiency_cpu{suffix}"] = round(float(np.median(ratios)), 3)
        results[f"runs_end_to_end{suffix}"] = [round(v, 2) for v in e2e[reader]]
    if len(readers) == 2:
        speedups = [o / d for o, d in zip(e2e_cpu["openslide"], e2e_cpu["direct"], strict=True)]
        results["read_speedup_cpu"] = round(float(np.median(speedups)), 3)
    results |= {
        "runs_forward_only": [round(v, 2) for v in fwd],
        "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    for key, value in results.items():
        print(f"{key}={value}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
