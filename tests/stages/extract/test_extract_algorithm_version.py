"""Bumping extract's ALGORITHM_VERSION recomputes cached slides (the cache keys on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.stages.extract import run as extract_run

TINY = ["-e", "timm:test_resnet", "--device", "cpu", "--num-workers", "1", "--batch-size", "4", "--json"]


def _counts(workdir: Path, weights: Path) -> dict:
    result = CliRunner().invoke(build_app(), ["extract", "-w", str(workdir), *TINY, "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["counts"]


def test_bumping_the_algorithm_version_recomputes(
    workspace: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _counts(workspace, weights_file)["done"] == 3
    assert _counts(workspace, weights_file)["skipped"] == 3
    monkeypatch.setattr(extract_run, "ALGORITHM_VERSION", extract_run.ALGORITHM_VERSION + 1)
    assert _counts(workspace, weights_file) == {"done": 3, "skipped": 0, "failed": 0}
