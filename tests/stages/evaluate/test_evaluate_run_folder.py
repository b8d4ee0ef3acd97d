"""Reading run folders: gathered and per-fold predictions; missing or malformed files → exit 2."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
from evaluate_fixtures import make_run
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.core.errors import InputError
from healnet_cli.stages.evaluate.run_folder import read_run, require_checkpoints


def test_read_gathered_run(run_dir):
    run = read_run(run_dir)
    assert run.folds == [0, 1, 2]
    assert run.modalities == ["wsi", "rna"] and run.model_name == "healnet" and run.time_unit == "months"
    assert run.surv_columns() == ["surv_0", "surv_1", "surv_2", "surv_3"]
    assert run.bin_edges[0][0] == 0 and run.bin_edges[0][-1] == float("inf")
    assert set(run.train_ids[0]).isdisjoint(run.predictions.loc[run.predictions["fold"] == 0, "patient_id"])
    assert "predictions.parquet" in run.fingerprints and "labels.parquet" in run.fingerprints


def test_per_fold_predictions_are_gathered(tmp_path):
    run = read_run(make_run(tmp_path / "r", gathered=False))
    assert len(run.predictions) == 60 and run.folds == [0, 1, 2]
    assert "fold_1/predictions.parquet" in run.fingerprints and run.unfinished == {}


def test_unfinished_fold_is_skipped_and_said(tmp_path):
    run_dir = make_run(tmp_path / "r", gathered=False)
    (run_dir / "fold_2" / "predictions.parquet").unlink()
    shutil.rmtree(run_dir / "fold_1")
    (run_dir / "failures.json").write_text(json.dumps({"1": "ArithmeticError: weights too large"}))
    run = read_run(run_dir)
    assert run.folds == [0]
    assert run.unfinished == {
        "fold_1/predictions.parquet": "training failed: ArithmeticError: weights too large",
        "fold_2/predictions.parquet": "missing (fold not finished?)",
    }
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--bootstrap", "0", "--no-attention"])
    assert result.exit_code == 3 and "training failed" in result.stderr


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("predictions.parquet", "predictions.parquet not found"),
        ("labels.parquet", "labels.parquet not found"),
        ("splits.csv", "splits.csv not found"),
    ],
)
def test_missing_file_is_named(run_dir, remove, message):
    (run_dir / remove).unlink()
    with pytest.raises(InputError, match=message):
        read_run(run_dir)


def test_missing_checkpoint_is_named(run_dir):
    (run_dir / "fold_1" / "checkpoint.pt").unlink()
    with pytest.raises(InputError, match=r"fold_1/checkpoint.pt not found"):
        require_checkpoints(read_run(run_dir))


def test_missing_column_and_bad_edges(run_dir):
    path = run_dir / "predictions.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop(["risk"]), path)
    with pytest.raises(InputError, match=r"\['risk'\] missing"):
        read_run(run_dir)
    meta = json.loads(table.schema.metadata[b"healnet"])
    meta["bin_edges"]["0"] = [0.0, 1.0]
    pq.write_table(table.replace_schema_metadata({b"healnet": json.dumps(meta).encode()}), path)
    with pytest.raises(InputError, match="fold 0 bin_edges"):
        read_run(run_dir)


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="run folder .* not found"):
        read_run(tmp_path / "nope")


@pytest.mark.parametrize(
    ("args", "remove", "named"),
    [
        ([], "predictions.parquet", "predictions.parquet"),
        (["--ablate", "--no-attention"], "fold_2/checkpoint.pt", "fold_2/checkpoint.pt"),
        ([], "fold_0/checkpoint.pt", "fold_0/checkpoint.pt"),
    ],  # attention is on by default
)
def test_cli_exit_2_names_the_file(run_dir, args, remove, named):
    (run_dir / remove).unlink()
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--bootstrap", "0", *args])
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert not (run_dir / "evaluation").exists()


def test_labels_with_patient_column(run_dir):
    frame = pq.read_table(run_dir / "labels.parquet").to_pandas().reset_index()
    pq.write_table(__import__("pyarrow").Table.from_pandas(frame, preserve_index=False), run_dir / "labels.parquet")
    run = read_run(run_dir)
    assert isinstance(run.labels, pd.DataFrame) and run.labels.index[0] == "P000"


def test_patient_predicted_twice(run_dir):
    path = run_dir / "predictions.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[1, "patient_id"] = frame.loc[0, "patient_id"]
    pq.write_table(
        __import__("pyarrow")
        .Table.from_pandas(frame, preserve_index=False)
        .replace_schema_metadata(table.schema.metadata),
        path,
    )
    with pytest.raises(InputError, match="predicted more than once"):
        read_run(run_dir)
