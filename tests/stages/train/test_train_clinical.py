"""`healnet train --model cox-clinical` and coxnet's fold isolation (nothing leaks from test patients)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import modality_path, read_labels, read_modality, write_modality
from healnet_cli.cli import build_app
from healnet_cli.data.coxph import fit_coxph
from healnet_cli.data.inference import load_fold, predict_patients
from healnet_cli.data.preprocess import fit_omics_preprocess

runner = CliRunner()


def train(*args: str):
    return runner.invoke(build_app(), ["train", *[str(a) for a in args]])


def clinical_workspace(root: Path, n: int = 60, missing: float = 0.15) -> Path:
    """rna + clinical (age drives survival, sex is noise); some patients have no clinical row."""
    ws = factories.make_workspace(root, n_patients=n, omics={"rna": 8})
    labels, _ = read_labels(ws / "omics" / "labels.parquet")
    rng = np.random.default_rng(5)
    age = 60 + 10 * rng.normal(size=n)
    t = rng.exponential(20.0 * np.exp(-(age - 60) / 10.0)) + 0.5
    labels["time"] = t
    from healnet_cli.artifacts.omics import write_labels

    write_labels(modality_path(ws / "omics", "labels"), labels, {"time_unit": "months"})
    frame = pd.DataFrame({"age": age, "is_female": (rng.random(n) < 0.5).astype(float)}, index=labels.index).astype(
        np.float32
    )
    keep = rng.random(n) >= missing
    write_modality(modality_path(ws / "omics", "clinical"), frame[keep], {"modality": "clinical"})
    return ws


def write_splits(folder: Path, folds: list[tuple[list[str], list[str]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, (tr, te) in enumerate(folds):
        n = max(len(tr), len(te))
        pd.DataFrame({"train": tr + [None] * (n - len(tr)), "val": te + [None] * (n - len(te))}).to_csv(
            folder / f"splits_{k}.csv"
        )
    return folder


def two_folds(ids: list[str]) -> list[tuple[list[str], list[str]]]:
    half = len(ids) // 2
    return [(ids[half:], ids[:half]), (ids[:half], ids[half:])]


def test_cox_clinical_trains_predicts_and_refits(tmp_path: Path) -> None:
    ws = clinical_workspace(tmp_path / "ws")
    labels, _ = read_labels(ws / "omics" / "labels.parquet")
    splits = write_splits(tmp_path / "splits", two_folds(sorted(labels.index)))
    out = tmp_path / "run"
    result = train(
        "--modalities",
        "clinical",
        "--model",
        "cox-clinical",
        "--workdir",
        ws,
        "--splits",
        splits,
        "--out",
        out,
        "--refit-all",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    pred = pd.read_parquet(out / "predictions.parquet")
    clinical, _ = read_modality(ws / "omics" / "clinical.parquet")
    assert len(pred) == len(clinical) < 60  # with --modalities clinical, a patient without it has no input at all
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cindex_mean"] > 0.65  # age carries the signal
    # fold 0's coefficients are the Cox fit on its training patients with clinical data
    train_ids = two_folds(sorted(labels.index))[0][0]
    have = [p for p in train_ids if p in clinical.index]
    pre = fit_omics_preprocess(clinical.loc[have])
    ref = fit_coxph(
        pre.transform(clinical.loc[have]).astype(np.float64),
        labels.loc[have, "time"].to_numpy(),
        labels.loc[have, "event"].to_numpy(bool),
        ridge=1.0,
    )
    fm = load_fold(out, 0)
    assert np.allclose(fm.model.coef.detach().numpy(), ref.coef, atol=1e-6)
    assert fm.model.coef.detach().numpy()[0] > 0  # older = higher risk
    # a patient whose clinical data are dropped gets a median patient's risk
    pid = pred.loc[pred.fold == 0, "patient_id"].iloc[0]
    risk = predict_patients(fm, [pid], drop={pid: {"clinical"}}).frame["risk"].iloc[0]
    assert risk == pytest.approx(float(pre.median @ ref.coef), abs=1e-5)
    bundle = torch.load(out / "refit" / "checkpoint.pt", weights_only=True)
    assert bundle["model"]["name"] == "cox-clinical"
    assert "same ridge" in json.loads((out / "run.json").read_text())["refit"]["rule"]


def test_top_k_thins_omics_but_keeps_every_clinical_covariate(tmp_path: Path) -> None:
    ws = clinical_workspace(tmp_path / "ws", missing=0.0)
    labels, _ = read_labels(ws / "omics" / "labels.parquet")
    splits = write_splits(tmp_path / "splits", two_folds(sorted(labels.index)))
    out = tmp_path / "run"
    args = ["--modalities", "rna,clinical", "--model", "coxnet", "--workdir", ws, "--splits", splits, "--out", out]
    result = train(*args, "--top-k", "1", "--device", "cpu")
    assert result.exit_code == 0, result.output
    specs = load_fold(out, 0).model.modalities
    assert specs["rna"].dim == 1 and specs["clinical"].dim == 2  # age and is_female both kept


def test_cox_clinical_takes_clinical_only(tmp_path: Path) -> None:
    ws = clinical_workspace(tmp_path / "ws", n=20)
    result = train(
        "--modalities",
        "rna,clinical",
        "--model",
        "cox-clinical",
        "--workdir",
        ws,
        "--out",
        tmp_path / "r",
        "--folds",
        "2",
    )
    assert result.exit_code == 2
    assert "--model cox-clinical takes --modalities clinical only (got rna,clinical)" in result.output


def test_coxnet_fold_sees_nothing_of_its_test_patients(tmp_path: Path) -> None:
    """Replacing fold 0's test patients' omics and labels changes nothing fold 0 fitted."""
    ws = factories.make_workspace(tmp_path / "ws", n_patients=60, omics={"rna": 10})
    labels, meta = read_labels(ws / "omics" / "labels.parquet")
    folds = two_folds(sorted(labels.index))
    splits = write_splits(tmp_path / "splits", folds)
    args = ["--modalities", "rna", "--model", "coxnet", "--splits", splits, "--device", "cpu", "--seed", "2"]
    assert train(*args, "--workdir", ws, "--out", tmp_path / "a").exit_code == 0
    test = folds[0][1]
    rna, _ = read_modality(ws / "omics" / "rna.parquet")
    rng = np.random.default_rng(9)
    rna.loc[test] = rng.normal(scale=5.0, size=(len(test), rna.shape[1])).astype(np.float32)
    labels.loc[test, "time"] = rng.exponential(3.0, size=len(test)) + 0.1
    from healnet_cli.artifacts.omics import write_labels

    write_modality(modality_path(ws / "omics", "rna"), rna, {"modality": "rna"})
    write_labels(modality_path(ws / "omics", "labels"), labels, meta)
    assert train(*args, "--workdir", ws, "--out", tmp_path / "b").exit_code == 0
    a = torch.load(tmp_path / "a" / "fold_0" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "fold_0" / "checkpoint.pt", weights_only=True)
    assert torch.equal(a["model"]["state_dict"]["coef"], b["model"]["state_dict"]["coef"])
    assert a["training"]["alpha"] == b["training"]["alpha"]
    assert (tmp_path / "a" / "fold_0" / "history.jsonl").read_text() == (
        tmp_path / "b" / "fold_0" / "history.jsonl"
    ).read_text()
    c = torch.load(tmp_path / "a" / "fold_1" / "checkpoint.pt", weights_only=True)  # fold 1 trains on them: it changes
    d = torch.load(tmp_path / "b" / "fold_1" / "checkpoint.pt", weights_only=True)
    assert not torch.equal(c["model"]["state_dict"]["coef"], d["model"]["state_dict"]["coef"])
