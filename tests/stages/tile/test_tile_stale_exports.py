"""A re-tile without ``--export`` removes the slide's CLAM/GeoJSON exports (their coordinates are
the old ones); a re-tile with other exports refreshes exactly those."""

from __future__ import annotations

from pathlib import Path

from tile_factories import disk_slide
from typer.testing import CliRunner

from healnet_cli.cli import build_app


def _tile(*args: str) -> int:
    result = CliRunner().invoke(build_app(), ["tile", *args])
    assert result.exit_code == 0, result.output
    return result.exit_code


def test_exports_follow_the_latest_tiling(tmp_path: Path) -> None:
    (tmp_path / "slides").mkdir()
    slide = disk_slide(tmp_path / "slides", "s1.tif", size=(800, 600))
    base = [str(slide), "-w", str(tmp_path / "w"), "--patch-size", "64"]
    tiles = tmp_path / "w" / "tiles"
    _tile(*base, "--export", "clam,geojson")
    assert (tiles / "s1.h5").is_file() and (tiles / "s1.geojson").is_file()
    _tile(*base, "--min-tissue", "0.9")  # re-tiled, no exports asked for
    assert not (tiles / "s1.h5").exists() and not (tiles / "s1.geojson").exists()
    _tile(*base, "--export", "geojson")
    assert (tiles / "s1.geojson").is_file() and not (tiles / "s1.h5").exists()
