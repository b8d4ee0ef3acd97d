"""`healnet predict`: a run trained on one synthetic cohort predicts a second, disjoint one — per fold,
as the fold ensemble and with the refit model — and incompatible inputs are refused before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from predict_fixtures import external_cohort, invoke, one_thread_training, train_run, training_cohort

from healnet_cli.artifacts.omics import modality_path, read_modality, write_modality
from healnet_cli.data.ensemble import combine_fold_predictions, hazards_from_survival, survival_on_grid
from healnet_cli.data.inference import load_fold, predict_patients


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    ws_a = training_cohort(root / "A")
    with one_thread_training():
        run = train_run(ws_a, root / "run", "--refit-all")
    return {"root": root, "A": ws_a, "B": external_cohort(root / "B"), "run": run}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _predict(cohorts, out: Path, *extra: str, workdir: Path | None = None):
    return invoke("predict", cohorts["run"], "--workdir", workdir or cohorts["B"], "--out", out, *extra)


def _read(out: Path) -> tuple[pd.DataFrame, dict]:
    return pd.read_parquet(out / "predictions.parquet"), json.loads((out / "predict.json").read_text())


def test_one_fold_equals_predict_patients_on_that_fold(cohorts, tmp_path) -> None:
    result = _predict(cohorts, tmp_path / "p", "--fold", "1")
    assert result.exit_code == 0, result.output
    frame, record = _read(tmp_path / "p")
    ids = [f"Q{i:03d}" for i in range(20)]
    assert frame["patient_id"].tolist() == ids  # every external patient has a modality
    fm = load_fold(cohorts["run"], 1, workdir=cohorts["B"])
    expected = predict_patients(fm, ids).frame
    np.testing.assert_allclose(frame["risk"], expected["risk"], rtol=1e-6)
    surv = [f"surv_{j}" for j in range(4)]
    np.testing.assert_allclose(frame[surv].to_numpy(), expected[surv].to_numpy(), rtol=1e-6)
    assert {"has_wsi", "has_rna", "has_cnv", "time", "event"} <= set(frame.columns) and "fold" not in frame.columns
    assert [m["name"] for m in record["members"]] == ["fold_1"] and record["members"][0]["networks"] == 2
    assert record["bin_edges"] == pytest.approx(fm.bin_edges)
    assert record["shared_patients"]["n"] == 0 and record["n_patients"] == 20 and record["n_labelled"] == 20
    assert record["coverage"]["rna"]["n_patients"] == 20 and record["coverage"]["wsi"]["n_patients"] == int(
        frame["has_wsi"].sum()
    )
    assert record["features"]["rna"]["n_imputed"] == 0 and record["wsi"]["extractor"] == "toy"


def _grid_survival(surv: np.ndarray, edges: list[float], times: np.ndarray) -> np.ndarray:
    """Independent reference: log-survival linear within bins, flat after the last edge."""
    out = np.empty((len(surv), len(times)))
    for i, row in enumerate(surv):
        knots_t, knots_s = np.asarray(edges), np.log(np.concatenate([[1.0], row]))
        out[i] = np.exp(np.interp(times, knots_t, knots_s))
    return out


def test_fold_ensemble_is_the_mean_of_the_folds_hazards(cohorts, tmp_path) -> None:
    result = _predict(cohorts, tmp_path / "p")
    assert result.exit_code == 0, result.output
    frame, record = _read(tmp_path / "p")
    run_json = json.loads((cohorts["run"] / "run.json").read_text())
    edges = run_json["bin_edges_all"]
    assert record["bin_edges"] == pytest.approx(edges) and [m["name"] for m in record["members"]] == [
        "fold_0",
        "fold_1",
        "fold_2",
    ]
    ids = frame["patient_id"].tolist()
    hazards, risks = [], []
    for k in range(3):
        fm = load_fold(cohorts["run"], k, workdir=cohorts["B"])
        pred = predict_patients(fm, ids).frame
        assert fm.bin_edges != pytest.approx(edges)  # each fold has its own bins
        surv = _grid_survival(pred[[f"surv_{j}" for j in range(4)]].to_numpy(), fm.bin_edges, np.asarray(edges[1:]))
        prev = np.hstack([np.ones((len(ids), 1)), surv[:, :-1]])
        hazards.append(1 - surv / prev)
        risks.append(pred["risk"].to_numpy())
    expected = np.cumprod(1 - np.mean(hazards, axis=0), axis=1)
    np.testing.assert_allclose(frame[[f"surv_{j}" for j in range(4)]].to_numpy(), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(frame["risk"], np.mean(risks, axis=0), rtol=1e-6)
    assert record["risk_cutoffs"] == run_json["risk_cutoffs"] and len(record["risk_cutoffs"]["2"]) == 1


def test_ensemble_kernels_on_shared_bins() -> None:
    rng = np.random.default_rng(0)
    edges = [0.0, 1.0, 2.0, 5.0]
    survs = [np.cumprod(rng.uniform(0.6, 0.95, size=(4, 3)), axis=1) for _ in range(3)]
    on_grid = [survival_on_grid(s, edges, np.asarray(edges[1:])) for s in survs]
    for s, g in zip(survs, on_grid, strict=True):
        np.testing.assert_allclose(g, s)  # the bins' own ends: unchanged
    risk, surv = combine_fold_predictions(on_grid, [np.arange(4.0), np.arange(4.0) + 2, np.zeros(4)])
    mean_h = np.mean([hazards_from_survival(s) for s in survs], axis=0)
    np.testing.assert_allclose(hazards_from_survival(surv), mean_h)
    np.testing.assert_allclose(risk, np.arange(4.0) * 2 / 3 + 2 / 3)
    np.testing.assert_allclose(survival_on_grid(survs[0], edges, np.array([0.5, 9.0]))[:, 1], survs[0][:, -1])


def test_refit_model_predicts_with_its_own_bins(cohorts, tmp_path) -> None:
    run = cohorts["run"]
    refit = json.loads((run / "run.json").read_text())["refit"]
    best = [
        b
        for k in range(3)
        for b in torch.load(run / f"fold_{k}" / "checkpoint.pt", weights_only=True)["training"]["best_epochs"]
    ]
    assert refit["epochs"] == max(1, round(float(np.median(np.asarray(best) + 1)))) and refit["n_patients"] == 40
    bundle = torch.load(run / "refit" / "checkpoint.pt", weights_only=True)
    assert bundle["kind"] == "refit" and bundle["fold"] == -1 and "ensemble" in bundle
    assert (run / "refit" / "history.jsonl").is_file() and not list((run / "refit").glob("**/state.pt"))
    result = _predict(cohorts, tmp_path / "p", "--model", "refit")
    assert result.exit_code == 0, result.output
    frame, record = _read(tmp_path / "p")
    assert [m["name"] for m in record["members"]] == ["refit"] and record["bin_edges"] == pytest.approx(
        refit["bin_edges"]
    )
    assert np.isfinite(frame["risk"]).all() and len(frame) == 20


def _variant(cohorts, name: str, **provenance) -> Path:
    return external_cohort(cohorts["root"] / name, provenance=provenance)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"extractor": "resnet50-trunc"},
            "extractor resnet50-trunc, but the run was trained on features with extractor toy",
        ),
        (
            {"weights": {"source": "file", "file": "other.safetensors", "sha256": "cd" * 32}},
            "healnet extract --weights",
        ),
        ({"patch_px": 512}, "patch_px 512, but the run was trained on features with patch_px 256"),
        ({"patch_mpp": 0.25}, "healnet tile --mpp 0.5"),
    ],
)
def test_other_features_are_refused_before_any_work(cohorts, tmp_path, change, match) -> None:
    ws = _variant(cohorts, f"var_{next(iter(change))}", **change)
    result = _predict(cohorts, tmp_path / "p", workdir=ws)
    assert result.exit_code == 2, result.output
    assert match in result.stderr and ".safetensors:" in result.stderr
    assert not (tmp_path / "p").exists()


def test_half_the_omics_features_refused_unless_the_threshold_is_lowered(cohorts, tmp_path) -> None:
    ws = cohorts["root"] / "half"
    shutil.copytree(cohorts["B"], ws)
    path = modality_path(ws / "omics", "rna")
    frame, meta = read_modality(path)
    write_modality(path, frame[[f"rna_{j}" for j in range(6)]], {"modality": "rna"})
    result = _predict(cohorts, tmp_path / "p", workdir=ws)
    assert result.exit_code == 2, result.output
    assert (
        "6 of the run's 12 rna features are present (50%" in result.stderr
        and "--min-feature-overlap 0.8" in result.stderr
    )
    result = _predict(cohorts, tmp_path / "p", "--min-feature-overlap", "0.4", workdir=ws)
    assert result.exit_code == 0, result.output
    _, record = _read(tmp_path / "p")
    assert record["features"]["rna"]["n_imputed"] == 6 and record["features"]["rna"]["n_features"] == 12
    assert record["features"]["rna"]["missing"] == [f"rna_{j}" for j in range(6, 12)]
    assert any("6 of the run's 12 features" in w for w in record["warnings"]) and "imputed" in result.stderr


def test_missing_features_are_the_training_medians(cohorts, tmp_path) -> None:
    """An external table without cnv_0: the model sees fold 0's training median for it."""
    ws = cohorts["root"] / "no_cnv0"
    shutil.copytree(cohorts["B"], ws)
    path = modality_path(ws / "omics", "cnv")
    frame, _ = read_modality(path)
    write_modality(path, frame.drop(columns=["cnv_0"]), {"modality": "cnv"})
    assert _predict(cohorts, tmp_path / "p", "--fold", "0", "--min-feature-overlap", "0.5", workdir=ws).exit_code == 0
    fm = load_fold(cohorts["run"], 0, workdir=cohorts["B"])
    fm.cohort.omics["cnv"] = fm.cohort.omics["cnv"].assign(cnv_0=np.nan)  # a missing value = the training median
    expected = predict_patients(fm, [f"Q{i:03d}" for i in range(20)]).frame["risk"].to_numpy()
    np.testing.assert_allclose(_read(tmp_path / "p")[0]["risk"], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--modalities", "rna,protein"], "it never saw protein"),
        (["--model", "refit", "--fold", "1"], "cannot be combined"),
        (["--fold", "7"], "--fold 7"),
        (["--min-feature-overlap", "1.5"], "must be in [0, 1]"),
        (["--model", "best"], "--model 'best'"),
    ],
)
def test_bad_options_exit_2(cohorts, tmp_path, args, match) -> None:
    result = _predict(cohorts, tmp_path / "p", *args)
    assert result.exit_code == 2, result.output
    assert match in result.stderr


def test_refit_missing_and_not_a_run(cohorts, tmp_path) -> None:
    run = tmp_path / "norefit"
    shutil.copytree(cohorts["run"], run, ignore=shutil.ignore_patterns("refit"))
    result = invoke("predict", run, "--workdir", cohorts["B"], "--model", "refit", "--out", tmp_path / "p")
    assert result.exit_code == 2 and "--refit-all" in result.stderr
    result = invoke("predict", cohorts["B"], "--workdir", cohorts["B"])
    assert result.exit_code == 2 and "not a run folder" in result.stderr


def test_out_folder_of_something_else_is_refused(cohorts, tmp_path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    result = _predict(cohorts, out)
    assert result.exit_code == 2 and "holds no predict.json" in result.stderr
    assert (out / "notes.txt").read_text() == "keep"


def test_only_some_modalities_and_no_labels(cohorts, tmp_path) -> None:
    ws = cohorts["root"] / "rna_only"
    (ws / "omics").mkdir(parents=True)
    shutil.copy(modality_path(cohorts["B"] / "omics", "rna"), modality_path(ws / "omics", "rna"))
    result = _predict(cohorts, tmp_path / "p", workdir=ws)
    assert result.exit_code == 0, result.output
    frame, record = _read(tmp_path / "p")
    assert "time" not in frame.columns and record["n_labelled"] == 0 and len(frame) == 20
    assert not frame["has_wsi"].any() and record["coverage"]["cnv"]["n_patients"] == 0
    assert any(w.startswith("wsi: not in the external workspace") for w in record["warnings"])
    result = invoke("evaluate", tmp_path / "p", "--bootstrap", "0")
    assert result.exit_code == 2 and "no patient has a label" in result.stderr


def test_labels_in_another_time_unit_are_refused(cohorts, tmp_path) -> None:
    from healnet_cli.artifacts.omics import read_labels, write_labels

    ws = cohorts["root"] / "days"
    shutil.copytree(cohorts["B"], ws)
    path = modality_path(ws / "omics", "labels")
    labels, _ = read_labels(path)
    write_labels(path, labels.assign(time=labels["time"] * 30.4), {"time_unit": "days"})
    result = _predict(cohorts, tmp_path / "p", workdir=ws)
    assert result.exit_code == 2 and "in days, the run's in months" in result.stderr
