"""`healnet cohort` on a small synthetic workspace: omics tables, labels and WSI features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from healnet_cli.artifacts.features import write_features
from healnet_cli.artifacts.omics import write_labels, write_modality
from healnet_cli.cli import build_app
from healnet_cli.stages.cohort import compute_cohort

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """rna for P1-P3, labels for P1, P2, P4 (P2 event), slides: P1 (2 slides), P3, P9 (barcode case ids)."""
    omics = tmp_path / "omics"
    write_modality(
        omics / "rna.parquet",
        pd.DataFrame({"g": [1.0, 2.0, 3.0]}, index=["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"]),
        {},
    )
    labels = pd.DataFrame(
        {"time": [1.0, 2.0, 3.0], "event": [False, True, False]}, index=["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0004"]
    )
    write_labels(omics / "labels.parquet", labels, {"time_unit": "months"})
    features = tmp_path / "features" / "resnet50-trunc"
    slides = {
        "s1": "TCGA-AA-0001-01Z-00-DX1",
        "s2": "TCGA-AA-0001-01Z-00-DX2",
        "s3": "TCGA-AA-0003",
        "s9": "TCGA-AA-0009",
    }
    for slide, case in slides.items():
        write_features(
            features / f"{slide}.safetensors",
            torch.zeros(2, 4),
            torch.zeros(2, 2),
            {"slide_id": slide, "case_id": case},
        )
    return tmp_path


def test_availability_matrix(workspace: Path) -> None:
    summary = compute_cohort(workspace).as_dict()
    assert summary["patients"] == 5
    assert summary["modalities"] == {
        "rna": {"patients": 3, "labelled": 2, "events": 1},
        "wsi:resnet50-trunc": {"patients": 3, "labelled": 1, "events": 0},
    }
    assert summary["labels"] == {"patients": 3, "events": 1, "time_unit": "months"}
    patterns = {(tuple(r["modalities"]), r["labelled"]): r["patients"] for r in summary["patterns"]}
    assert patterns == {
        (("rna", "wsi:resnet50-trunc"), True): 1,  # P1
        (("rna",), True): 1,  # P2
        (("rna", "wsi:resnet50-trunc"), False): 1,  # P3
        ((), True): 1,  # P4
        (("wsi:resnet50-trunc",), False): 1,  # P9
    }
    mismatches = summary["mismatches"]
    assert mismatches["patients_with_data_but_no_labels"]["examples"] == ["TCGA-AA-0003", "TCGA-AA-0009"]
    assert mismatches["labelled_patients_without_data"]["examples"] == ["TCGA-AA-0004"]
    assert mismatches["slides_without_labelled_patient"]["examples"] == ["resnet50-trunc/s3", "resnet50-trunc/s9"]


def test_help() -> None:
    result = runner.invoke(build_app(), ["cohort", "--help"])
    assert result.exit_code == 0 and "--extractor" in result.output


def test_cli_plain_and_json(workspace: Path) -> None:
    plain = runner.invoke(build_app(), ["cohort", "-w", str(workspace)])
    assert plain.exit_code == 0
    assert "cohort in" in plain.stdout and "rna + wsi:resnet50-trunc" in plain.stdout
    assert "slides whose patient has no labels: 2" in plain.stdout
    as_json = runner.invoke(build_app(), ["cohort", "-w", str(workspace), "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["patients"] == 5
    assert sorted(p.name for p in (workspace / "omics").iterdir()) == [
        "labels.parquet",
        "rna.parquet",
    ]  # writes nothing


def test_rich_rendering(workspace: Path) -> None:
    import io

    from healnet_cli.stages.cohort import render_rich

    out = io.StringIO()
    render_rich(compute_cohort(workspace).as_dict(), out)
    assert "availability patterns" in out.getvalue() and "wsi:resnet50-trunc" in out.getvalue()


def test_extractor_filter_and_errors(workspace: Path, tmp_path: Path) -> None:
    result = runner.invoke(build_app(), ["cohort", "-w", str(workspace), "--extractor", "uni", "--json"])
    assert result.exit_code == 2 and "no features folder" in result.output and "resnet50-trunc" in result.output
    only = runner.invoke(build_app(), ["cohort", "-w", str(workspace), "--extractor", "resnet50-trunc", "--json"])
    assert only.exit_code == 0
    empty = runner.invoke(build_app(), ["cohort", "-w", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "run `healnet omics`" in empty.output


def test_unreadable_features_file_is_reported_not_fatal(workspace: Path) -> None:
    (workspace / "features" / "resnet50-trunc" / "broken.safetensors").write_bytes(b"\x00nope")
    summary = compute_cohort(workspace).as_dict()
    assert len(summary["unreadable_files"]) == 1 and "broken.safetensors" in summary["unreadable_files"][0]
    assert np.isclose(summary["modalities"]["wsi:resnet50-trunc"]["patients"], 3)


def test_cohort_counts_equal_the_cohort_train_builds(tmp_path: Path) -> None:
    """`healnet cohort` and `healnet train` (load_cohort) count presence by one rule: lower-case and
    dotted TCGA slide names map to their patient, an all-NaN omics row and a slide without patches
    count as absent, a duplicated omics row counts once."""
    from healnet_cli.data.cohort import load_cohort

    omics = tmp_path / "omics"
    ids = ["TCGA-2F-A9KO", "TCGA-AA-0002", "TCGA-AA-0003", "TCGA-AA-0002"]
    write_modality(
        omics / "rna.parquet",
        pd.DataFrame({"g": [1.0, 2.0, np.nan, 2.0], "h": [0.0, np.nan, np.nan, 1.0]}, index=ids),
        {},
    )
    labels = pd.DataFrame({"time": [1.0, 2.0, 3.0, 4.0], "event": [True, True, False, False]},
                          index=["TCGA-2F-A9KO", "TCGA-AA-0002", "TCGA-AA-0003", "TCGA-AA-0005"])  # fmt: skip
    write_labels(omics / "labels.parquet", labels, {"time_unit": "days"})
    features = tmp_path / "features" / "uni"
    slides = {  # slide id -> (case id recorded by tile/extract, patches)
        "tcga-2f-a9ko-01z-00-dx1": ("tcga-2f-a9ko-01z-00-dx1", 3),
        "TCGA.AA.0003.01": ("", 2),
        "TCGA-AA-0005-01Z": ("TCGA-AA-0005", 0),
    }
    for slide, (case, n) in slides.items():
        write_features(
            features / f"{slide}.safetensors",
            torch.zeros(n, 4),
            torch.zeros(n, 2),
            {"slide_id": slide, "case_id": case},
        )
    shown = compute_cohort(tmp_path).as_dict()["modalities"]
    trained = load_cohort(tmp_path, ["rna", "wsi"]).presence
    assert shown["rna"]["labelled"] == int(trained["rna"].sum()) == 2
    assert shown["wsi:uni"]["labelled"] == int(trained["wsi"].sum()) == 2
    assert sorted(trained.index) == ["TCGA-2F-A9KO", "TCGA-AA-0002", "TCGA-AA-0003"]
    assert trained.loc["TCGA-2F-A9KO"].all() and not trained.loc["TCGA-AA-0003", "rna"]
