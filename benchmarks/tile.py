"""Benchmark ``healnet tile`` on large synthetic pyramids.

Writes ``--slides`` pyramidal TIFFs of ``--size`` x ``--size`` px at level 0 (0.25 µm/px, a 40x scan;
pyramid downsamples 1, 4, 16, 64, down to < 2k px), each with a disk of tissue-like texture at a
different place and size, into a temporary folder; level 0 is painted tile by tile and the coarse
levels are block averages, so writing needs ~0.5 GB, not 7.5 GB. Then runs ``healnet tile`` on
them in a subprocess (the default options: 256 px patches at 0.5 µm/px, segmentation at 16 µm/px)
and prints::

    seconds_per_slide=   stage time per slide (the run's own clock: reading, segmentation,
                         grid, QC images, writes, manifests; interpreter start-up excluded)
    wall_seconds_per_slide=  the same including interpreter start-up and imports
    patches_per_second=  kept patches per stage second
    peak_rss_mb=         peak resident memory of the tile process (its VmHWM / getrusage)

Usage::

    python benchmarks/tile.py [--quick] [--slides 3] [--size 50000] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

SLIDE_MPP = 0.25


def write_slides(folder: Path, n_slides: int, size: int) -> list[Path]:
    """``n_slides`` disk slides of ``size``² px with different tissue placement."""
    paths = []
    layouts = [(0.5, 0.5, 0.40), (0.45, 0.55, 0.30), (0.6, 0.4, 0.25), (0.5, 0.5, 0.45), (0.35, 0.6, 0.2)]
    for i in range(n_slides):
        fx, fy, fr = layouts[i % len(layouts)]
        fn = tissue_disk_tile_fn(size, size, center=(fx * size, fy * size), radius_px=fr * size, seed=i)
        levels = 1
        while size / 4**levels >= 2000:
            levels += 1
        paths.append(write_pyramidal_tiff(folder / f"bench{i}.tif", fn, SLIDE_MPP, levels + 1, size=(size, size)))
    return paths


_CHILD = """
import resource, runpy, sys
sys.argv = ["healnet"] + sys.argv[1:]
try:
    runpy.run_module("healnet_cli", run_name="__main__")
finally:
    hwm_kb = None
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    except OSError:
        pass
    if hwm_kb is None:
        hwm_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"PEAK_RSS_KB={hwm_kb}", file=sys.stderr)
"""


def run_tile(slides: list[Path], workdir: Path) -> tuple[dict, float, float]:
    """Run ``healnet tile`` in a child process; return its JSON summary, wall seconds and peak RSS (MB).

    The peak is the child's own high-water mark (``VmHWM``, else ``getrusage(RUSAGE_SELF)``): the
    parent's ``RUSAGE_CHILDREN`` would also count the parent's memory at fork time (the slide
    writer's memory maps).
    """
    cmd = [sys.executable, "-c", _CHILD, "-q", "tile", *map(str, slides), "-w", str(workdir), "--json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"healnet tile failed (exit {proc.returncode}):\n{proc.stderr}")
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    peak_kb = int(proc.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    return summary, wall, peak_kb / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 slides of 12k x 12k px")
    parser.add_argument("--slides", type=int, default=None, help="number of slides (default 3, quick 2)")
    parser.add_argument("--size", type=int, default=None, help="level-0 side in px (default 50000, quick 12000)")
    parser.add_argument("--keep", type=Path, default=None, help="write the slides and workdir here and keep them")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    n_slides = args.slides or (2 if args.quick else 3)
    size = args.size or (12_000 if args.quick else 50_000)

    root = args.keep or Path(tempfile.mkdtemp(prefix="healnet-bench-tile-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        (root / "slides").mkdir(exist_ok=True)
        slides = write_slides(root / "slides", n_slides, size)
        write_s = time.perf_counter() - start
        workdir = root / "work"
        shutil.rmtree(workdir, ignore_errors=True)
        summary, wall, peak_mb = run_tile(slides, workdir)
        if summary["counts"]["done"] != n_slides:
            sys.exit(f"expected {n_slides} slides done, got {summary['counts']}")
        n_patches = 0
        from healnet_cli.artifacts.coords import read_coords_meta

        for slide in slides:
            n_patches += int(read_coords_meta(workdir / "tiles" / f"{slide.stem}.parquet")["n_patches"])
        stage_s = float(summary["seconds"])
        results = {
            "n_slides": n_slides,
            "slide_px": size,
            "slide_gb_on_disk": round(sum(p.stat().st_size for p in slides) / 1e9 / n_slides, 2),
            "write_seconds_per_slide": round(write_s / n_slides, 1),
            "seconds_per_slide": round(stage_s / n_slides, 3),
            "wall_seconds_per_slide": round(wall / n_slides, 3),
            "patches_per_slide": n_patches // n_slides,
            "patches_per_second": round(n_patches / stage_s, 1),
            "peak_rss_mb": round(peak_mb, 1),
        }
        for key, value in results.items():
            print(f"{key}={value}")
        if args.json:
            payload = {
                **results,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            }
            args.json.write_text(json.dumps(payload, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
