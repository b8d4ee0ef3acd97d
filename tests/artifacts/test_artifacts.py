from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from healnet_cli.artifacts.coords import SlideCoords, read_coords, write_coords
from healnet_cli.artifacts.features import read_features, read_provenance, write_features
from healnet_cli.artifacts.omics import list_modalities, read_labels, read_modality, write_labels, write_modality
from healnet_cli.core.errors import InputError

META = dict(
    slide_id="s1",
    case_id="c1",
    source_path="/x.svs",
    mpp=0.25,
    patch_px=256,
    patch_px_level0=512,
    read_level=1,
    read_patch_px=256,
)


def test_coords_round_trip(tmp_path: Path) -> None:
    coords = SlideCoords(np.array([0, 512]), np.array([0, 0]), np.array([1.0, 0.6]), dict(META))
    write_coords(tmp_path / "s1.parquet", coords)
    back = read_coords(tmp_path / "s1.parquet")
    assert back.xy.tolist() == [[0, 0], [512, 0]]
    assert back.meta["mpp"] == 0.25 and back.meta["n_patches"] == 2 and back.case_id == "c1"


def test_empty_coords_round_trip(tmp_path: Path) -> None:
    coords = SlideCoords(np.zeros(0), np.zeros(0), np.zeros(0), dict(META))
    write_coords(tmp_path / "s1.parquet", coords)
    assert len(read_coords(tmp_path / "s1.parquet")) == 0


def test_features_round_trip_and_empty(tmp_path: Path) -> None:
    feats = torch.randn(5, 8).half()
    write_features(tmp_path / "a.safetensors", feats, torch.arange(10).view(5, 2), {"slide_id": "a", "extractor": "x"})
    bag = read_features(tmp_path / "a.safetensors")
    assert torch.equal(bag.features, feats) and bag.coords.dtype == torch.int64
    assert read_provenance(tmp_path / "a.safetensors")["dim"] == 8
    write_features(tmp_path / "b.safetensors", torch.zeros(0, 8), torch.zeros(0, 2), {"slide_id": "b"})
    assert read_features(tmp_path / "b.safetensors").features.shape == (0, 8)


def test_corrupt_files_give_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="rerun `healnet extract`"):
        read_features(bad)
    badp = tmp_path / "bad.parquet"
    badp.write_text("nope")
    with pytest.raises(InputError, match="rerun `healnet tile`"):
        read_coords(badp)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(InputError, match="not written by healnet"):
        read_modality(tmp_path / "foreign.parquet")


def test_omics_and_labels_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"g1": [1.0, np.nan], "g2": [0.5, 2.0]}, index=["P1", "P2"])
    write_modality(tmp_path / "rna.parquet", frame, {"modality": "rna"})
    back, meta = read_modality(tmp_path / "rna.parquet")
    assert back.index.name == "patient_id" and back.dtypes.unique().tolist() == [np.float32]
    assert meta["n_features"] == 2
    labels = pd.DataFrame({"time": [3.0, 10.0], "event": [True, False]}, index=["P1", "P2"])
    write_labels(tmp_path / "labels.parquet", labels, {"time_unit": "months"})
    lab, lmeta = read_labels(tmp_path / "labels.parquet")
    assert lab["event"].tolist() == [True, False] and lmeta["n_events"] == 1
    assert list_modalities(tmp_path) == ["rna"]
    with pytest.raises(InputError, match="expected"):
        read_labels(tmp_path / "rna.parquet")


def test_one_reader_of_parquet_metadata_for_run_tables(tmp_path: Path) -> None:
    """Run predictions and labels read through _parquet.read_table: schema-1 files (no schema key,
    or no healnet metadata at all) still load, another healnet table is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from healnet_cli.artifacts._parquet import attach_meta
    from healnet_cli.artifacts.run_tables import read_predictions, write_predictions

    frame = pd.DataFrame({"patient_id": ["a", "b"], "risk": [0.1, 0.2]})
    write_predictions(tmp_path / "p.parquet", frame, {"time_unit": "days"})
    back, meta = read_predictions(tmp_path / "p.parquet")
    assert back.equals(frame) and meta["schema"] == "healnet.predictions/1" and meta["time_unit"] == "days"
    old = attach_meta(
        pa.Table.from_pandas(frame, preserve_index=False), {"time_unit": "months"}
    )  # schema 1: no schema key
    pq.write_table(old, tmp_path / "old.parquet")
    assert read_predictions(tmp_path / "old.parquet")[1]["time_unit"] == "months"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "bare.parquet")
    assert read_predictions(tmp_path / "bare.parquet")[1] == {}
    write_modality(tmp_path / "rna.parquet", pd.DataFrame({"g": [1.0]}, index=["a"]), {})
    with pytest.raises(InputError, match="rna.parquet: schema 'healnet.omics/1', expected 'healnet.predictions/1'"):
        read_predictions(tmp_path / "rna.parquet")
