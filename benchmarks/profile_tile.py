"""Where the time of one ``healnet tile`` process goes, phase by phase.

Runs ``healnet tile SLIDES -w OUT`` in a child process that first imports the CLI and the tile stage
(timed), then wraps the stage's functions listed in :data:`PHASES` with wall and CPU clocks (only
the outermost wrapped call counts) and runs the command in-process. Interpreter start-up is the
median of five ``python -c pass``. Prints, for each phase, ``profile_<phase>_s`` (wall),
``profile_<phase>_cpu_s`` and ``profile_<phase>_share`` (of the process's wall time), plus
``profile_total_s``; ``other`` is what no phase covers (option parsing, console, the batch loop).

Usage::

    python benchmarks/profile_tile.py SLIDES_DIR [--json out.json]

(``benchmarks/tile_vs_clam.py --profile`` runs it on its slide set.) The wrapped names follow
``healnet_cli/stages/tile/run.py``; a renamed function makes this script fail, not report zero.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (phase, module, attribute) wrapped in the child; a phase may have several functions.
PHASES = (
    ("discovery", "healnet_cli.stages.tile.run", "collect_slides"),
    ("cache_check", "healnet_cli.stages.tile.run", "work_items"),
    ("cache_check", "healnet_cli.core.store", "ArtifactStore.is_fresh"),
    ("config_yaml", "healnet_cli.stages.tile.run", "write_resolved_config"),
    ("open", "healnet_cli.stages.tile.run", "open_slide"),
    ("mpp", "healnet_cli.stages.tile.run", "resolve_mpp"),
    ("segmentation_read", "healnet_cli.stages.tile.run", "segmentation_image"),
    ("mask", "healnet_cli.stages.tile.run", "detect_tissue"),
    ("thumbnail", "healnet_cli.stages.tile.run", "thumbnail_image"),
    ("grid", "healnet_cli.stages.tile.run", "grid_spec"),
    ("grid", "healnet_cli.stages.tile.run", "grid_coords"),
    ("grid", "healnet_cli.stages.tile.run", "tissue_fraction"),
    ("qc_image", "healnet_cli.stages.tile.qc", "qc_image"),
    ("png_write", "healnet_cli.stages.tile.qc", "write_png"),
    ("parquet", "healnet_cli.stages.tile.run", "write_coords"),
    ("exports", "healnet_cli.stages.tile.export", "write_clam_h5"),
    ("exports", "healnet_cli.stages.tile.export", "tissue_polygons"),
    ("exports", "healnet_cli.stages.tile.export", "write_geojson"),
    ("locks", "healnet_cli.core.store", "ArtifactStore.acquire_lock"),
    ("locks", "healnet_cli.core.store", "ArtifactStore.release_lock"),
    ("manifest", "healnet_cli.core.store", "ArtifactStore.invalidate"),
    ("manifest", "healnet_cli.core.store", "ArtifactStore.commit"),
    ("status", "healnet_cli.core.status", "StatusTable.write"),
)

_CHILD = r"""
import importlib, json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import healnet_cli.cli
t1, c1 = time.perf_counter(), time.process_time()
import healnet_cli.stages.tile.run, openslide, tifffile
t2, c2 = time.perf_counter(), time.process_time()
phases = json.loads(sys.argv[1])
totals, depth = {}, [0]

def wrap(phase, fn):
    def timed(*args, **kwargs):
        if depth[0]:
            return fn(*args, **kwargs)
        depth[0] += 1
        w, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[0] -= 1
            tw, tc = totals.get(phase, (0.0, 0.0))
            totals[phase] = (tw + time.perf_counter() - w, tc + time.process_time() - c)
    return timed

for phase, module, attr in phases:
    owner = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    setattr(owner, name, wrap(phase, getattr(owner, name)))
sys.argv = ["healnet"] + sys.argv[2:]
code = 0
try:
    healnet_cli.cli.main()
except SystemExit as exc:
    code = exc.code or 0
t3, c3 = time.perf_counter(), time.process_time()
totals["imports_cli"] = (t1 - t0, c1 - c0)
totals["imports_tile_stage"] = (t2 - t1, c2 - c1)
totals["in_process"] = (t3 - t0, c3 - c0)
print("PROFILE=" + json.dumps(totals), file=sys.stderr)
sys.exit(code)
"""


def interpreter_startup_s(repeats: int = 5) -> float:
    """Median wall seconds of ``python -c pass`` (start-up and ``site``)."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def profile_healnet(slides_dir: Path, out: Path, extra_args: tuple[str, ...] = ()) -> dict[str, float]:
    """Profile one ``healnet tile`` run of ``slides_dir`` into ``out``; the ``profile_*`` figures."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    startup = interpreter_startup_s()
    phases = json.dumps([list(p) for p in PHASES])
    cmd = [sys.executable, "-c", _CHILD, phases, "-q", "tile", str(slides_dir), "-w", str(out / "work"), *extra_args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - start
    if proc.returncode != 0 or "PROFILE=" not in proc.stderr:
        sys.exit(f"profiled healnet tile failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    totals = json.loads(proc.stderr.rsplit("PROFILE=", 1)[1].splitlines()[0])
    in_process_wall, in_process_cpu = totals.pop("in_process")
    named = sum(w for w, _ in totals.values())
    totals["interpreter_startup"] = (startup, startup)
    totals["other"] = (max(0.0, in_process_wall - named), 0.0)
    totals["exit_and_teardown"] = (max(0.0, total - startup - in_process_wall), 0.0)
    results: dict[str, float] = {"profile_total_s": round(total, 3)}
    for phase, (wall, cpu) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        results[f"profile_{phase}_s"] = round(wall, 4)
        if phase not in ("other", "exit_and_teardown", "interpreter_startup"):
            results[f"profile_{phase}_cpu_s"] = round(cpu, 4)
        results[f"profile_{phase}_share"] = round(wall / total, 3)
    return results


def emit(results: dict, json_path: Path | None) -> None:
    """Print ``name=value`` lines and, with ``json_path``, write the same as JSON."""
    for key, value in results.items():
        print(f"{key}={value}")
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("slides", type=Path, help="folder of slides")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="healnet-profile-tile-") as tmp:
        emit(profile_healnet(args.slides, Path(tmp)), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
