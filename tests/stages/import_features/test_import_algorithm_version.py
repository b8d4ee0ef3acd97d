"""Bumping import-features' ALGORITHM_VERSION recomputes cached slides (the cache keys on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from import_factories import write_trident
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.stages.import_features import run as import_run

N = 3


def _counts(work: Path, source: Path) -> dict:
    result = CliRunner().invoke(
        build_app(), ["import-features", str(source), "-w", str(work), "--json", "--format", "trident"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["counts"]


def test_bumping_the_algorithm_version_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_trident(tmp_path / "src", 32, encoder="conch_v1", n=N)
    work = tmp_path / "w"
    assert _counts(work, source)["done"] == N and _counts(work, source)["skipped"] == N
    monkeypatch.setattr(import_run, "ALGORITHM_VERSION", import_run.ALGORITHM_VERSION + 1)
    assert _counts(work, source) == {"done": N, "skipped": 0, "failed": 0}
