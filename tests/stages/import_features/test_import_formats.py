"""healnet import-features on each tool's layout: features, level-0 coordinates, provenance, patients."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from import_factories import (
    PATCH_PX,
    SLIDE_MPP,
    features,
    level0_xy,
    risks,
    slide_ids,
    write_clam,
    write_slideflow,
    write_stamp,
    write_trident,
)
from typer.testing import CliRunner

from healnet_cli.artifacts.features import features_path, read_features
from healnet_cli.cli import build_app

runner = CliRunner()
N = 4


def _import(work: Path, source: Path, *args: str):
    return runner.invoke(build_app(), ["import-features", str(source), "-w", str(work), "--json", *args])


def _bag(work: Path, name: str, index: int):
    return read_features(features_path(work / "features" / name, slide_ids(N)[index]))


def _same_rows(work: Path, name: str, *, dtype=torch.float16) -> None:
    for i in range(N):
        bag = _bag(work, name, i)
        assert bag.features.dtype == dtype
        assert np.allclose(bag.features.float().numpy(), features(i, bag.features.shape[1], risks(N)[i]), atol=2e-2)
        assert (bag.coords.numpy() == level0_xy(i)).all()
        assert bag.case_id == slide_ids(N)[i][:12]


def test_trident(tmp_path: Path) -> None:
    folder = write_trident(tmp_path / "src", 1024, n=N)
    result = _import(
        tmp_path / "w", folder.parent.parent, "--format", "trident"
    )  # the job folder: finds features_uni_v1/
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"done": N, "skipped": 0, "failed": 0}
    _same_rows(tmp_path / "w", "uni")  # TRIDENT's uni_v1 is the uni preset
    prov = _bag(tmp_path / "w", "uni", 0).provenance
    assert prov["extractor"] == "uni" and prov["dim"] == 1024
    assert prov["weights"] == {"source": "imported", "tool": "trident", "encoder": "uni_v1"}
    assert prov["patch_px"] == PATCH_PX and prov["patch_px_level0"] == 512 and prov["patch_mpp"] == 0.5
    assert "target_magnification" in prov["patch_mpp_source"]
    assert prov["source"]["tool"] == "trident" and prov["source"]["attrs"]["coords"]["level0_magnification"] == 40


def test_trident_patch_mpp_from_the_slide_mpp(tmp_path: Path) -> None:
    folder = write_trident(tmp_path / "src", 1024, n=N)
    result = _import(tmp_path / "w", folder, "--format", "trident", "--slide-mpp", "0.26")
    assert result.exit_code == 0, result.output
    prov = _bag(tmp_path / "w", "uni", 0).provenance
    assert (
        prov["patch_mpp"] == pytest.approx(0.52)
        and prov["slide_mpp"] == 0.26
        and "slide mpp" in prov["patch_mpp_source"]
    )


@pytest.mark.parametrize("layout", ["h5", "pt"])
def test_clam(tmp_path: Path, layout: str) -> None:
    feat, patches = write_clam(tmp_path / "src", 32, n=N, pt=True)
    if layout == "pt":
        for path in (feat / "h5_files").glob("*.h5"):
            path.unlink()
    args = [
        "--format",
        "clam",
        "--encoder",
        "my-encoder",
        "--coords-dir",
        str(patches),
        "--slide-mpp",
        str(SLIDE_MPP),
        "--dtype",
        "float32",
    ]
    result = _import(tmp_path / "w", feat, *args)
    assert result.exit_code == 0, result.output
    _same_rows(tmp_path / "w", "my-encoder", dtype=torch.float32)
    prov = _bag(tmp_path / "w", "my-encoder", 1).provenance
    assert prov["extractor"] == "my-encoder" and prov["weights"]["tool"] == "clam"
    assert (
        prov["patch_px"] == PATCH_PX and prov["patch_px_level0"] == 512 and prov["patch_mpp"] == 0.5
    )  # patch_level 1, downsample 2


def test_clam_without_patch_files_records_what_it_can(tmp_path: Path) -> None:
    feat, _ = write_clam(tmp_path / "src", 32, n=N)
    result = _import(tmp_path / "w", feat, "--format", "clam", "--encoder", "resnet50_trunc", "--name", "r50")
    assert result.exit_code == 3  # resnet50_trunc is the 1024-d resnet50-trunc preset: every 32-d slide fails
    assert "dimension 32, but resnet50-trunc gives 1024" in json.loads(result.stdout)["failed"][0]["reason"]
    ok = _import(tmp_path / "w", feat, "--format", "clam", "--encoder", "toy", "--mpp", "0.5", "--patch-size", "256")
    assert ok.exit_code == 0, ok.output
    prov = _bag(tmp_path / "w", "toy", 0).provenance
    assert prov["patch_mpp"] == 0.5 and prov["patch_mpp_source"] == "--mpp" and prov["patch_px"] == 256
    plain = _import(tmp_path / "w", feat, "--format", "clam", "--encoder", "toy2")
    assert plain.exit_code == 0 and "without a patch resolution (patch_mpp null)" in plain.output


def test_stamp_micrometres_to_level0_and_slide_table(tmp_path: Path) -> None:
    folder, table = write_stamp(tmp_path / "src", 1024, n=N)
    result = _import(tmp_path / "w", folder, "--format", "stamp", "--slides-csv", str(table))
    assert result.exit_code == 0, result.output
    _same_rows(tmp_path / "w", "uni")
    prov = _bag(tmp_path / "w", "uni", 2).provenance
    assert prov["patch_mpp"] == 0.5 and prov["patch_mpp_source"] == "tile_size_um / tile_size_px"
    assert prov["patch_px"] == PATCH_PX and prov["patch_px_level0"] == 512 and prov["slide_mpp"] == SLIDE_MPP
    assert prov["source"]["tool_version"] == "2.3.0" and prov["weights"]["encoder"] == "uni"


def test_stamp_virchow2_is_not_the_virchow2_preset(tmp_path: Path) -> None:
    folder, table = write_stamp(tmp_path / "src", 1280, extractor="virchow2", n=N)
    result = _import(tmp_path / "w", folder, "--format", "stamp", "--slide-mpp", str(SLIDE_MPP))
    assert result.exit_code == 0, result.output
    assert _bag(tmp_path / "w", "stamp-virchow2", 0).provenance["extractor"] == "stamp:virchow2"


def test_stamp_needs_the_slide_mpp(tmp_path: Path) -> None:
    folder, _ = write_stamp(tmp_path / "src", 1024, n=N)
    result = _import(tmp_path / "w", folder, "--format", "stamp")
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["counts"]["failed"] == N and "--slide-mpp" in summary["failed"][0]["reason"]


def test_stamp_historic_224px_coordinates(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    xy = np.array([[0, 0], [224, 0], [448, 224]], dtype=np.float64)  # historic: 224-px units of 256 µm tiles
    with h5py.File(folder / "TCGA-AB-2000-01Z.h5", "w") as f:
        f["coords"], f["feats"] = xy, np.ones((3, 8), np.float16)
    result = _import(tmp_path / "w", folder, "--format", "stamp", "--encoder", "ctranspath", "--slide-mpp", "0.5")
    assert result.exit_code == 0, result.output
    bag = read_features(features_path(tmp_path / "w" / "features" / "ctranspath", "TCGA-AB-2000-01Z"))
    assert bag.coords.tolist() == [[0, 0], [512, 0], [1024, 512]]  # 256 µm / 0.5 µm/px
    assert bag.provenance["patch_mpp"] == pytest.approx(256 / 224)


def test_slideflow_centres_to_top_left(tmp_path: Path) -> None:
    bags = write_slideflow(tmp_path / "src", 16, n=N)
    csv = tmp_path / "slides.csv"
    csv.write_text("slide,patient,mpp\n" + "".join(f"{s},PAT{i},{SLIDE_MPP}\n" for i, s in enumerate(slide_ids(N))))
    result = _import(tmp_path / "w", bags, "--format", "slideflow", "--slides-csv", str(csv))
    assert result.exit_code == 0, result.output
    for i in range(N):
        bag = _bag(tmp_path / "w", "slideflow-retccl", i)
        assert (bag.coords.numpy() == level0_xy(i)).all() and bag.case_id == f"PAT{i}"
    prov = _bag(tmp_path / "w", "slideflow-retccl", 0).provenance
    assert prov["extractor"] == "slideflow:retccl" and prov["patch_mpp"] == 0.5 and prov["patch_px_level0"] == 512
