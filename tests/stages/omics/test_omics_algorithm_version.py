"""Bumping omics' algorithm versions (tables, labels) recomputes cached outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.stages.omics import run as omics_run


def _counts(*args: str) -> dict:
    result = CliRunner().invoke(build_app(), ["omics", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["counts"]


def test_bumping_the_tables_algorithm_version_recomputes(
    tmp_path: Path, wide_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [str(wide_csv), "-w", str(tmp_path / "w")]
    first = _counts(*args)
    assert first["done"] == 5 and _counts(*args)["skipped"] == 5
    monkeypatch.setattr(omics_run, "ALGORITHM_VERSION", omics_run.ALGORITHM_VERSION + 1)
    assert _counts(*args) == {"done": 5, "skipped": 0, "failed": 0}  # four modality tables and their labels


def test_bumping_the_labels_algorithm_version_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "clinical.tsv"
    table.write_text("bcr_patient_barcode\tOS.time\tvital\nTCGA-AA-0001\t100\tDead\nTCGA-AA-0003\t50\tAlive\n")
    args = ["labels", str(table), "--time-col", "os.time", "--event-col", "vital", "-w", str(tmp_path / "w")]
    assert _counts(*args)["done"] == 1 and _counts(*args)["skipped"] == 1
    monkeypatch.setattr(omics_run, "LABELS_ALGORITHM_VERSION", omics_run.LABELS_ALGORITHM_VERSION + 1)
    assert _counts(*args) == {"done": 1, "skipped": 0, "failed": 0}
