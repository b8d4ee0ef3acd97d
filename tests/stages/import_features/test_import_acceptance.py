"""Acceptance: CLAM-, TRIDENT-, STAMP- and slideflow-layout features of a few generated slides are
imported, shown by `healnet cohort`, and a model is trained and evaluated on each import."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from import_factories import (
    N_SLIDES,
    SLIDE_MPP,
    risks,
    slide_ids,
    write_clam,
    write_slideflow,
    write_stamp,
    write_trident,
)
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import modality_path, write_labels
from healnet_cli.cli import build_app

runner = CliRunner()
DIM = 24


def _labels(work: Path) -> None:
    """Survival of each patient (the slide's TCGA barcode) driven by the risk in its features."""
    hazard = pd.Series(risks(N_SLIDES)).map(lambda r: 2.0**r)
    frame = pd.DataFrame(
        {"time": (24.0 / hazard).to_numpy() + 1.0, "event": [i % 4 != 3 for i in range(N_SLIDES)]},
        index=pd.Index([s[:12] for s in slide_ids()], name="patient_id"),
    )
    write_labels(modality_path(work / "omics", "labels"), frame, {"time_unit": "months"})


def _import_all(tmp_path: Path, work: Path) -> None:
    feat, patches = write_clam(tmp_path / "clam", DIM)
    trident = write_trident(tmp_path / "trident", DIM, encoder="conch_v1")
    stamp, table = write_stamp(tmp_path / "stamp", DIM, extractor="ctranspath")
    bags = write_slideflow(tmp_path / "slideflow", DIM)
    commands = [
        [
            str(feat),
            "--format",
            "clam",
            "--encoder",
            "resnet-ssl",
            "--name",
            "clam",
            "--coords-dir",
            str(patches),
            "--slide-mpp",
            str(SLIDE_MPP),
        ],
        [str(trident), "--format", "trident", "--name", "trident"],
        [str(stamp), "--format", "stamp", "--slides-csv", str(table), "--name", "stamp"],
        [str(bags), "--format", "slideflow", "--slide-mpp", str(SLIDE_MPP), "--name", "slideflow"],
    ]
    for args in commands:
        result = runner.invoke(build_app(), ["import-features", "-w", str(work), *args])
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("imports")
    work = tmp_path / "work"
    _import_all(tmp_path, work)
    _labels(work)
    return work


def test_cohort_sees_every_import(imported: Path) -> None:
    result = runner.invoke(build_app(), ["cohort", "-w", str(imported), "--json"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for name in ("clam", "trident", "stamp", "slideflow"):
        assert f"wsi:{name}" in text


@pytest.mark.parametrize("name", ["clam", "trident", "stamp", "slideflow"])
def test_train_and_evaluate_on_imported_features(imported: Path, tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    trained = runner.invoke(build_app(), [
        "train", "-w", str(imported), "-m", "wsi", "--model", "abmil", "--extractor", name, "--out", str(run),
        "--folds", "2", "--epochs", "2", "--batch-size", "6", "--ensemble", "1", "--json",
    ])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(build_app(), ["evaluate", str(run), "--bootstrap", "0", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["pooled"]["harrell_c"]["value"] is not None
    predictions = pd.read_parquet(run / "predictions.parquet")
    assert predictions["patient_id"].nunique() == N_SLIDES
