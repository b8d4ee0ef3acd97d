"""extract commits slides through the stages' one protocol (core.runner.write_item): a slide whose
lock this job lost while writing it is left to the job that took it over, as in run_items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.core.store import ArtifactStore

TINY = ["-e", "timm:test_resnet", "--device", "cpu", "--num-workers", "1", "--batch-size", "4", "--json"]


def test_a_slide_whose_lock_was_lost_is_not_committed(
    workspace: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = ArtifactStore.holds_lock
    monkeypatch.setattr(ArtifactStore, "holds_lock", lambda self, item: item != "s1" and held(self, item))
    result = CliRunner().invoke(build_app(), ["extract", "-w", str(workspace), *TINY, "--weights", str(weights_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": 2, "skipped": 1, "failed": 0}
    folder = workspace / "features" / "timm-test_resnet"
    assert not (folder / "s1.manifest.json").exists() and (folder / "s2.manifest.json").is_file()
    assert "lock expired" in result.output
