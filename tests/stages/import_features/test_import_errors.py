"""Bad inputs to healnet import-features: per-slide failures (exit 3, the rest imported), input
errors (exit 2, nothing written), caching, sharding."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from import_factories import slide_ids, write_clam, write_slideflow, write_stamp, write_trident
from typer.testing import CliRunner

from healnet_cli.artifacts.features import features_path, read_features
from healnet_cli.cli import build_app

runner = CliRunner()
N = 4


def _import(work: Path, source: Path, *args: str):
    return runner.invoke(build_app(), ["import-features", str(source), "-w", str(work), "--json", *args])


def _trident(tmp_path: Path, encoder: str = "conch_v1", dim: int = 32) -> Path:
    return write_trident(tmp_path / "src", dim, encoder=encoder, n=N)


def _rewrite(path: Path, **datasets: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        for name, data in datasets.items():
            attrs = dict(f[name].attrs) if name in f else {}
            if name in f:
                del f[name]
            f.create_dataset(name, data=data).attrs.update(attrs)


def _bad_slide(kind: str, folder: Path) -> str:
    """Spoil the second slide of a TRIDENT folder in one way; return the expected reason."""
    path = folder / f"{slide_ids(N)[1]}.h5"
    if kind == "other format":
        path.unlink()
        with h5py.File(path, "w") as f:
            f["feats"], f["coords"] = np.zeros((3, 32), np.float16), np.zeros((3, 2))
        return (
            "not a TRIDENT features file: no 'features' dataset (found: coords, feats) (it looks like stamp: use "
            "--format stamp)"
        )
    if kind == "rows":
        _rewrite(path, coords=np.zeros((2, 2), np.int64))
        return "feature rows but 2 coordinates"
    if kind == "nan":
        with h5py.File(path, "a") as f:
            data = f["features"][()]
            data[0, 3] = np.nan
            f["features"][...] = data
        return "1 non-finite feature values (NaN/inf)"
    if kind == "dim":
        _rewrite(path, features=np.zeros((7, 16), np.float32), coords=np.zeros((7, 2), np.int64))
        return "features have dimension 16, but the other slides have 32"
    if kind == "encoder":
        with h5py.File(path, "a") as f:
            f["features"].attrs["encoder"] = "uni_v2"
        return "made with encoder 'uni_v2', the other slides of this import with 'conch_v1'"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 40)  # "corrupt"
    return "not a readable HDF5 file"


@pytest.mark.parametrize("kind", ["other format", "rows", "nan", "dim", "encoder", "corrupt"])
def test_one_bad_slide_fails_the_others_are_imported(tmp_path: Path, kind: str) -> None:
    folder = _trident(tmp_path)
    reason = _bad_slide(kind, folder)
    result = _import(tmp_path / "w", folder, "--format", "trident")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": N - 1, "skipped": 0, "failed": 1}
    assert summary["failed"][0]["item"] == slide_ids(N)[1] and reason in summary["failed"][0]["reason"], summary[
        "failed"
    ]
    out = tmp_path / "w" / "features" / "trident-conch_v1"
    assert not features_path(out, slide_ids(N)[1]).exists() and features_path(out, slide_ids(N)[2]).exists()


def test_pickled_bag_is_never_unpickled(tmp_path: Path) -> None:
    bags = write_slideflow(tmp_path / "src", 16, n=N)
    torch.save({"bag": Path("/etc/passwd")}, bags / f"{slide_ids(N)[0]}.pt")
    result = _import(tmp_path / "w", bags, "--format", "slideflow", "--slide-mpp", "0.25")
    assert result.exit_code == 3
    assert "never unpickled" in json.loads(result.stdout)["failed"][0]["reason"]


def test_empty_slide_gets_a_zero_row_matrix(tmp_path: Path) -> None:
    folder = _trident(tmp_path)
    path = folder / f"{slide_ids(N)[0]}.h5"
    _rewrite(path, features=np.zeros((0,), np.float32), coords=np.zeros((0, 2), np.int64))
    result = _import(tmp_path / "w", folder, "--format", "trident")
    assert result.exit_code == 0, result.output
    assert read_features(
        features_path(tmp_path / "w" / "features" / "trident-conch_v1", slide_ids(N)[0])
    ).features.shape == (0, 32)


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("empty", ["--format", "stamp"], "no STAMP features found"),
        ("clam", ["--format", "clam"], "clam files do not record the encoder; pass --encoder NAME"),
        ("clam-pt", ["--format", "clam", "--encoder", "x"], "CLAM .pt files hold the features only; pass --coords-dir"),
        ("trident", ["--format", "tridentt"], "--format 'tridentt' is not one of trident, clam, stamp, slideflow"),
        ("trident", [], "--format is required"),
        ("trident", ["--format", "trident", "--name", "../x"], "--name '../x'"),
        ("trident", ["--format", "trident", "--mpp", "-1"], "--mpp -1.0: expected µm per pixel"),
        ("missing", ["--format", "trident"], "no such folder"),
        ("two-trident", ["--format", "trident"], "several TRIDENT feature folders"),
        ("csv-conflict", ["--format", "trident"], "is listed again with patient 'B'"),
    ],
)
def test_input_errors(tmp_path: Path, setup: str, args: list[str], message: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    if setup == "clam":
        source, _ = write_clam(source, 8, n=2)
    elif setup == "clam-pt":
        source, _ = write_clam(source, 8, n=2, pt=True)
        for path in (source / "h5_files").glob("*.h5"):
            path.unlink()
    elif setup in ("trident", "csv-conflict"):
        source = write_trident(source, 8, n=2)
    elif setup == "two-trident":
        write_trident(source, 8, encoder="a", n=1)
        write_trident(source, 8, encoder="b", n=1)
    elif setup == "missing":
        source = tmp_path / "nowhere"
    if setup == "csv-conflict":
        csv = tmp_path / "slides.csv"
        csv.write_text(f"slide_id,case_id\n{slide_ids(2)[0]},A\n{slide_ids(2)[0]}.svs,B\n")
        args = [*args, "--slides-csv", str(csv)]
    result = _import(tmp_path / "w", source, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "w" / "features").exists() or not list((tmp_path / "w" / "features").rglob("*.safetensors"))


def test_a_folder_of_other_features_is_not_overwritten(tmp_path: Path) -> None:
    """Importing into a folder that holds other features (another tool, extracted ones) is refused."""
    stamp, table = write_stamp(tmp_path / "stamp", 1024, n=N)
    assert _import(tmp_path / "w", stamp, "--format", "stamp", "--slides-csv", str(table)).exit_code == 0
    trident = write_trident(tmp_path / "trident", 1024, n=N)
    refused = _import(tmp_path / "w", trident, "--format", "trident")
    assert refused.exit_code == 2
    assert (
        "holds features of uni imported:stamp:uni" in refused.output and "uni imported:trident:uni_v1" in refused.output
    )
    assert (
        read_features(features_path(tmp_path / "w" / "features" / "uni", slide_ids(N)[0])).provenance["weights"]["tool"]
        == "stamp"
    )
    beside = _import(tmp_path / "w", trident, "--format", "trident", "--name", "uni-trident")
    assert beside.exit_code == 0, beside.output


def test_rerun_is_cached_and_follows_its_inputs(tmp_path: Path) -> None:
    folder = _trident(tmp_path)
    work = tmp_path / "w"
    assert _import(work, folder, "--format", "trident").exit_code == 0
    again = json.loads(_import(work, folder, "--format", "trident").stdout)
    assert again["counts"] == {"done": 0, "skipped": N, "failed": 0}
    csv = tmp_path / "slides.csv"
    csv.write_text(f"slide_id,case_id\n{slide_ids(N)[0]},PATIENT-X\n")
    remapped = json.loads(_import(work, folder, "--format", "trident", "--slides-csv", str(csv)).stdout)
    assert remapped["counts"] == {"done": 1, "skipped": N - 1, "failed": 0}
    out = work / "features" / "trident-conch_v1"
    assert read_features(features_path(out, slide_ids(N)[0])).case_id == "PATIENT-X"
    time.sleep(0.01)
    _rewrite(folder / f"{slide_ids(N)[2]}.h5", features=np.ones((7, 32), np.float32), coords=np.zeros((7, 2), np.int64))
    changed = json.loads(_import(work, folder, "--format", "trident", "--slides-csv", str(csv)).stdout)
    assert changed["counts"] == {"done": 1, "skipped": N - 1, "failed": 0}
    forced = json.loads(_import(work, folder, "--format", "trident", "--slides-csv", str(csv), "--force").stdout)
    assert forced["counts"]["done"] == N
    assert (out / "config.yaml").is_file() and (out / "status.csv").is_file()


def test_shards_split_the_slides(tmp_path: Path) -> None:
    folder = _trident(tmp_path)
    first = json.loads(_import(tmp_path / "w", folder, "--format", "trident", "--shard", "0/2").stdout)
    second = json.loads(_import(tmp_path / "w", folder, "--format", "trident", "--shard", "1/2").stdout)
    assert first["counts"]["done"] + second["counts"]["done"] == N and first["shard"] == "0/2"
    assert len(list((tmp_path / "w" / "features" / "trident-conch_v1").glob("*.safetensors"))) == N
