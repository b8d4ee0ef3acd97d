"""The tile → extract contract with the real `healnet tile` (coordinates, manifests, staleness)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from healnet_cli.artifacts.coords import read_coords
from healnet_cli.artifacts.features import read_features
from healnet_cli.cli import build_app
from healnet_cli.slides.synthetic import tissue_disk_tile_fn, write_pyramidal_tiff

runner = CliRunner()


def test_extract_reads_what_tile_committed(tmp_path: Path) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    write_pyramidal_tiff(slides / "a.tif", tissue_disk_tile_fn(2048, 2048), mpp=0.25, levels=2, tile=256, size=(2048, 2048))
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
    assert bag.provenance["read_patch_px"] == coords.meta["read_patch_px"]
    assert json.loads(runner.invoke(build_app(), args).stdout)["counts"]["skipped"] == 1
    assert runner.invoke(build_app(), ["tile", str(slides), "-w", str(work), "--force"]).exit_code == 0
    assert json.loads(runner.invoke(build_app(), args).stdout)["counts"]["done"] == 1  # re-tiled: stale
