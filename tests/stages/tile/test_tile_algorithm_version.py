"""Bumping tile's ALGORITHM_VERSION recomputes cached slides (the cache keys on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tile_factories import disk_slide
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.stages.tile import run as tile_run


def _counts(*args: str) -> dict:
    result = CliRunner().invoke(build_app(), ["tile", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])["counts"]


def test_bumping_the_algorithm_version_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slides").mkdir()
    disk_slide(tmp_path / "slides", "d.tif", size=(600, 500), mpp=0.5)
    args = [str(tmp_path / "slides"), "-w", str(tmp_path / "w"), "--patch-size", "64"]
    assert _counts(*args)["done"] == 1
    assert _counts(*args)["skipped"] == 1
    monkeypatch.setattr(tile_run, "ALGORITHM_VERSION", tile_run.ALGORITHM_VERSION + 1)
    assert _counts(*args) == {"done": 1, "skipped": 0, "failed": 0}
    assert _counts(*args)["skipped"] == 1
