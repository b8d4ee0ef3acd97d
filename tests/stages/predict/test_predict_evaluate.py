"""`healnet evaluate PRED_DIR` scores external predictions (training cut-offs, the external cohort's
censoring, a report that says so); runs of the older schema load or fail with a clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from predict_fixtures import external_cohort, invoke, one_thread_training, train_run, training_cohort

from healnet_cli.data.inference import load_fold, predict_patients


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict_eval")
    ws_a = training_cohort(root / "A")
    with one_thread_training():
        run = train_run(ws_a, root / "run")
        cox = root / "cox"
        result = invoke(
            "train",
            "--modalities",
            "rna,cnv",
            "--model",
            "coxnet",
            "--workdir",
            ws_a,
            "--out",
            cox,
            "--folds",
            "3",
            "--seed",
            "2",
        )
        assert result.exit_code == 0, result.output
    return {"root": root, "A": ws_a, "B": external_cohort(root / "B"), "run": run, "cox": cox}


def test_evaluate_external_predictions(cohorts, tmp_path) -> None:
    pred = tmp_path / "pred"
    assert invoke("predict", cohorts["run"], "--workdir", cohorts["B"], "--out", pred).exit_code == 0
    result = invoke("evaluate", pred, "--bootstrap", "20", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((pred / "evaluation" / "metrics.json").read_text())
    ext = metrics["external_validation"]
    assert ext["training_run"]["name"] == "run" and ext["n_scored"] == 20 and ext["shared_with_training"] == 0
    assert ext["coverage"]["rna"]["n_patients"] == 20 and ext["model_used"] == "fold ensemble of 3 folds"
    run_json = json.loads((cohorts["run"] / "run.json").read_text())
    groups = metrics["risk_groups"]
    assert (
        groups["cutoffs"] == pytest.approx(run_json["risk_cutoffs"]["2"]) and "training run" in groups["cutoff_source"]
    )
    assert "folds" not in metrics and "across_folds" not in metrics and metrics["pooled"]["n"] == 20
    assert "external cohort's own censoring" in metrics["conventions"]["censoring_distribution"]
    assert metrics["skipped"]["attention"].startswith("not for external predictions")
    report = (pred / "evaluation" / "report.html").read_text()
    assert "external validation of run run" in report and "20 patients predicted" in report
    assert (pred / "evaluation" / "km_risk_groups.png").is_file() and (
        pred / "evaluation" / "calibration.png"
    ).is_file()


def test_patients_of_the_training_cohort_are_flagged(cohorts, tmp_path) -> None:
    pred = tmp_path / "pred"
    result = invoke("predict", cohorts["run"], "--workdir", cohorts["A"], "--out", pred)
    assert result.exit_code == 0 and "not an external validation" in result.stderr
    record = json.loads((pred / "predict.json").read_text())
    assert record["shared_patients"]["n"] == 40 and record["shared_patients"]["ids"][0] == "P000"
    assert invoke("evaluate", pred, "--bootstrap", "0").exit_code == 0
    summary = (pred / "evaluation" / "summary.md").read_text()
    assert "40 of these patients are also in the training cohort" in summary and "not an external validation" in summary


def _to_schema_1(run: Path, dest: Path) -> Path:
    """A copy of ``run`` as healnet wrote runs before the contract: no run.json, bundles and
    predictions without schema keys, coxnet as its own checkpoint format."""
    shutil.copytree(run, dest)
    (dest / "run.json").unlink()
    for ckpt in dest.glob("fold_*/checkpoint.pt"):
        payload = torch.load(ckpt, weights_only=True)
        for key in ("schema", "healnet_version", "provenance", "training", "kind"):
            payload.pop(key, None)
        if payload["model_name"] == "coxnet":
            state = payload["model"]["state_dict"]
            payload["model"] = {
                "coef": state["coef"],
                "alpha": float(state["fitted_alpha"]),
                "breslow_times": payload["breslow"]["times"],
                "breslow_cum_hazard": payload["breslow"]["cum_hazard"],
                "hparams": {"l1_ratio": 0.5, "n_alphas": 50, "alpha_min_ratio": 0.01, "max_iter": 10000},
            }
            payload.pop("breslow")
            payload["loss"] = "nll"
        torch.save(payload, ckpt)
    for path in dest.glob("**/predictions.parquet"):
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"healnet"])
        for key in ("schema", "healnet_version", "kind"):
            meta.pop(key, None)
        pq.write_table(table.replace_schema_metadata({b"healnet": json.dumps(meta).encode()}), path)
    return dest


def test_schema_1_run_evaluates_to_the_same_metrics(cohorts, tmp_path) -> None:
    old = _to_schema_1(cohorts["run"], tmp_path / "old")
    for run in (cohorts["run"], old):
        result = invoke("evaluate", run, "--bootstrap", "20", "--no-attention", "--out", tmp_path / f"eval_{run.name}")
        assert result.exit_code == 0, result.output
    a, b = (json.loads((tmp_path / f"eval_{n}" / "metrics.json").read_text()) for n in ("run", "old"))
    for key in ("pooled", "folds", "across_folds", "risk_groups", "calibration"):
        assert a[key] == b[key], key
    result = invoke("predict", old, "--workdir", cohorts["B"], "--out", tmp_path / "p")
    assert result.exit_code == 2 and "records no provenance of its WSI features" in result.stderr
    result = invoke("predict", old, "--workdir", cohorts["B"], "--modalities", "rna,cnv", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "p" / "predict.json").read_text())
    assert record["run"]["schema_version"] == 1 and record["risk_cutoffs"]["2"] == pytest.approx(
        json.loads((cohorts["run"] / "run.json").read_text())["risk_cutoffs"]["2"]
    )


def test_schema_1_coxnet_checkpoint_loads_through_the_registry(cohorts, tmp_path) -> None:
    old = _to_schema_1(cohorts["cox"], tmp_path / "old_cox")
    ids = [f"P{i:03d}" for i in range(0, 40, 3)]
    new_fm, old_fm = load_fold(cohorts["cox"], 0), load_fold(old, 0)
    assert type(old_fm.model) is type(new_fm.model) and old_fm.loss == "cox"
    a, b = predict_patients(new_fm, ids).frame, predict_patients(old_fm, ids).frame
    np.testing.assert_allclose(
        a.drop(columns="patient_id").to_numpy(), b.drop(columns="patient_id").to_numpy(), rtol=1e-6
    )
    result = invoke("evaluate", old, "--bootstrap", "0", "--ablate", "--no-attention")
    assert result.exit_code == 0, result.output
    metrics = json.loads((old / "evaluation" / "metrics.json").read_text())
    assert not any("differ from predictions.parquet" in n for n in metrics["ablation"]["notes"])


def test_coxnet_run_predicts_an_external_cohort(cohorts, tmp_path) -> None:
    result = invoke("predict", cohorts["cox"], "--workdir", cohorts["B"], "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "p" / "predict.json").read_text())
    assert record["modalities_used"] == ["rna", "cnv"] and not record["wsi"]  # no special case for coxnet


def test_a_newer_schema_is_refused(cohorts, tmp_path) -> None:
    run = tmp_path / "future"
    shutil.copytree(cohorts["run"], run)
    data = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**data, "schema": "healnet.run/9"}))
    for args in (
        ["evaluate", run, "--bootstrap", "0"],
        ["predict", run, "--workdir", cohorts["B"], "--out", tmp_path / "p"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2 and "written by a newer healnet" in result.stderr, result.output
    (run / "run.json").write_text(json.dumps(data))
    payload = torch.load(run / "fold_0" / "checkpoint.pt", weights_only=True)
    torch.save({**payload, "schema": "healnet.fold/9"}, run / "fold_0" / "checkpoint.pt")
    result = invoke("predict", run, "--workdir", cohorts["B"], "--out", tmp_path / "p")
    assert result.exit_code == 2 and "fold_0/checkpoint.pt: checkpoint schema 'healnet.fold/9'" in result.stderr
