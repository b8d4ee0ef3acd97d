"""The tile → extract contract with the real `healnet tile` (coordinates, manifests, staleness)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from healnet_cli.artifacts.coords import read_coords
from healnet_cli.artifacts.features import read_features
from healnet_cli.cli import build_app
from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

runner = CliRunner()


def test_extract_reads_what_tile_committed(tmp_path: Path) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    write_pyramidal_tiff(
        slides / "a.tif", tissue_disk_tile_fn(2048, 2048), mpp=0.25, levels=2, tile=256, size=(2048, 2048)
    )
    work = tmp_path / "work"
    tiled = runner.invoke(build_app(), ["tile", str(slides), "-w", str(work)])
    assert tiled.exit_code == 0, tiled.output
    args = ["extract", "-w", str(work), "-e", "stain-texture", "--num-workers", "1", "--json"]
    first = runner.invoke(build_app(), args)
    assert first.exit_code == 0, first.output
    coords = read_coords(work / "tiles" / "a.parquet")
    bag = read_features(work / "features" / "stain-texture" / "a.safetensors")
    assert len(coords) > 0 and bag.features.shape == (len(coords), 63)
    assert (bag.coords.numpy() == coords.xy).all()
    assert (coords.meta["read_level"], coords.meta["read_patch_px"]) == (
        0,
        512,
    )  # 0.5 µm/px patches of a 0.25 µm/px slide
    # stain-texture takes 128 px: read from level 1 (4x), the same area decoded at 1/16 of the pixels
    assert (bag.provenance["read_level"], bag.provenance["read_patch_px"]) == (1, 128)
    assert json.loads(runner.invoke(build_app(), args).stdout)["counts"]["skipped"] == 1
    assert runner.invoke(build_app(), ["tile", str(slides), "-w", str(work), "--force"]).exit_code == 0
    assert json.loads(runner.invoke(build_app(), args).stdout)["counts"]["done"] == 1  # re-tiled: stale


def _tile_two(tmp_path: Path) -> tuple[Path, Path]:
    slides = tmp_path / "slides"
    slides.mkdir()
    for name, seed in (("a", 0), ("b", 1)):
        write_pyramidal_tiff(
            slides / f"{name}.tif",
            tissue_disk_tile_fn(1024, 1024, seed=seed),
            mpp=0.5,
            levels=1,
            tile=256,
            size=(1024, 1024),
        )
    work = tmp_path / "work"
    assert runner.invoke(build_app(), ["tile", str(slides), "-w", str(work)]).exit_code == 0
    return slides, work


def _replace(slide: Path) -> None:
    write_pyramidal_tiff(slide, tissue_disk_tile_fn(1536, 1536, seed=5), mpp=0.5, levels=1, tile=256, size=(1536, 1536))


def test_slide_replaced_after_tiling_fails_with_the_fix(tmp_path: Path) -> None:
    slides, work = _tile_two(tmp_path)
    _replace(slides / "a.tif")
    result = runner.invoke(
        build_app(), ["extract", "-w", str(work), "-e", "stain-texture", "--num-workers", "0", "--json"]
    )
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 1}
    reason = summary["failed"][0]["reason"]
    assert summary["failed"][0]["item"] == "a" and "changed since it was tiled" in reason and "healnet tile" in reason
    assert not (work / "features" / "stain-texture" / "a.safetensors").exists()


def test_slide_check_with_tile_manifests_that_predate_the_recorded_fingerprint(tmp_path: Path) -> None:
    """Older tile manifests hold only the tile input key: an unchanged slide passes, a replaced one fails."""
    slides, work = _tile_two(tmp_path)
    for manifest in (work / "tiles").glob("*.manifest.json"):
        record = json.loads(manifest.read_text())
        record["meta"].pop("slide_fingerprint")
        manifest.write_text(json.dumps(record))
    _replace(slides / "b.tif")
    result = runner.invoke(
        build_app(), ["extract", "-w", str(work), "-e", "stain-texture", "--num-workers", "0", "--json"]
    )
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 1} and summary["failed"][0]["item"] == "b"


def test_slide_moved_after_tiling(tmp_path: Path) -> None:
    slides, work = _tile_two(tmp_path)
    (slides / "a.tif").rename(tmp_path / "elsewhere.tif")
    result = runner.invoke(
        build_app(), ["extract", "-w", str(work), "-e", "stain-texture", "--num-workers", "0", "--json"]
    )
    assert result.exit_code == 3 and "slide file not found" in json.loads(result.stdout)["failed"][0]["reason"]
