"""`healnet train` end to end on tiny synthetic workspaces: run folder, inference API, coxnet,
determinism, bad inputs, SLURM-style folds and gather."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.artifacts.run_tables import read_predictions
from healnet_cli.cli import build_app
from healnet_cli.data.inference import list_folds, load_fold, predict_patients

runner = CliRunner()
SMALL = ["--hparam", "depth=1", "--hparam", "num_latents=4", "--hparam", "latent_dim=8", "--hparam", "cross_dim_head=8"]


def train(*args: str):
    return runner.invoke(build_app(), ["train", *args])


def base_args(ws: Path, out: Path, mods: str = "wsi,rna,cnv", model: str = "healnet", folds: bool = True) -> list[str]:
    args = [
        "--modalities",
        mods,
        "--model",
        model,
        "--workdir",
        str(ws),
        "--out",
        str(out),
        *(["--folds", "3"] if folds else []),
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    return args + (SMALL if model == "healnet" else [])


@pytest.fixture(scope="module")
def healnet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("run")
    ws = factories.make_workspace(root / "ws", wsi=True, missing={"cnv": 0.2, "wsi": 0.25})
    result = train(*base_args(ws, root / "run"), "--modality-dropout", "0.3", "--max-patches", "4")
    assert result.exit_code == 0, result.output
    return ws, root / "run"


def test_run_folder_contents(healnet_run: tuple[Path, Path]) -> None:
    ws, run = healnet_run
    for name in (
        "config.yaml",
        "env.json",
        "labels.parquet",
        "cohort.json",
        "splits.csv",
        "predictions.parquet",
        "summary.json",
        "summary.csv",
    ):
        assert (run / name).is_file(), name
    assert list_folds(run) == [0, 1, 2]
    ckpt = torch.load(run / "fold_0" / "checkpoint.pt", weights_only=True)
    assert {"model", "model_name", "preprocess", "bin_edges", "modalities", "fold"} <= set(ckpt)
    assert ckpt["model_name"] == "healnet" and ckpt["modalities"] == ["wsi", "rna", "cnv"]
    assert set(ckpt["preprocess"]["rna"]) >= {"kept", "lower", "upper", "mean", "std", "median"}
    assert (
        ckpt["preprocess"]["wsi"]["kind"] == "bag_scaler"
        and len(ckpt["preprocess"]["wsi"]["mean"]) == factories.WSI_DIM
    )
    history = [json.loads(line) for line in (run / "fold_0" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and {"train_loss", "val_loss", "val_cindex", "lr", "seconds"} <= set(history[0])
    pred = pd.read_parquet(run / "predictions.parquet")
    labels = pd.read_parquet(run / "labels.parquet")
    assert sorted(pred["patient_id"]) == sorted(labels["patient_id"])  # every patient once
    assert {"risk", "surv_0", "surv_3", "time", "event", "has_wsi", "has_rna", "has_cnv", "fold"} <= set(pred.columns)
    assert np.all(np.diff(pred[[f"surv_{j}" for j in range(4)]].to_numpy(), axis=1) <= 1e-12)
    meta = read_predictions(run / "predictions.parquet")[1]
    assert set(meta["bin_edges"]) == {"0", "1", "2"} and meta["time_unit"] == "months" and meta["model"] == "healnet"
    splits = pd.read_csv(run / "splits.csv")
    assert set(splits["split"]) == {"train", "val", "test"}
    for _fold, part in splits.groupby("fold"):
        test_ids = set(part.loc[part.split == "test", "patient_id"])
        assert not test_ids & set(part.loc[part.split != "test", "patient_id"])
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["folds"]) == 3 and summary["cindex_mean"] is not None
    cohort = json.loads((run / "cohort.json").read_text())
    assert cohort["n_patients"] == 40 and sum(cohort["patterns"].values()) == 40
    env = json.loads((run / "env.json").read_text())
    assert env["seeds"]["seed"] == 3 and any(k.endswith("labels.parquet") for k in env["inputs"])


def test_same_seed_gives_identical_predictions(healnet_run: tuple[Path, Path], tmp_path: Path) -> None:
    ws, run = healnet_run
    result = train(*base_args(ws, tmp_path / "again"), "--modality-dropout", "0.3", "--max-patches", "4")
    assert result.exit_code == 0, result.output
    a = pd.read_parquet(run / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "again" / "predictions.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_predict_patients_drop_acts_only_through_that_modality(healnet_run: tuple[Path, Path]) -> None:
    ws, run = healnet_run
    fm = load_fold(run, 0)
    assert set(fm.feature_names) == {"rna", "cnv"}
    splits = pd.read_csv(run / "splits.csv")
    ids = sorted(splits.loc[(splits.fold == 0) & (splits.split == "test"), "patient_id"])
    base = predict_patients(fm, ids).frame.set_index("patient_id")
    oof = pd.read_parquet(run / "fold_0" / "predictions.parquet").set_index("patient_id")
    np.testing.assert_allclose(base.loc[ids, "risk"], oof.loc[ids, "risk"], rtol=1e-6)
    with_wsi = [p for p in ids if fm.cohort.presence.loc[p, "wsi"]]
    without = [p for p in ids if not fm.cohort.presence.loc[p, "wsi"]]
    target = with_wsi[0]
    drop = {target: {"wsi"}, **{p: {"wsi"} for p in without}}
    dropped = predict_patients(fm, ids, drop=drop).frame.set_index("patient_id")
    assert abs(dropped.loc[target, "risk"] - base.loc[target, "risk"]) > 1e-7
    others = [p for p in ids if p != target]
    np.testing.assert_allclose(dropped.loc[others, "risk"], base.loc[others, "risk"], rtol=1e-6)


def test_attention_weights_align_with_whole_bags(healnet_run: tuple[Path, Path]) -> None:
    ws, run = healnet_run
    fm = load_fold(run, 1)
    pid = next(p for p in fm.cohort.patients if fm.cohort.presence.loc[p, "wsi"] and len(fm.cohort.slides[p]) == 2)
    res = predict_patients(fm, [pid], return_weights=True)
    n = sum(len(c) for _, c in res.bags[pid])
    assert n > 4  # whole bag at inference although training used --max-patches 4
    assert res.weights[pid]["wsi"].shape == (n,)


def test_coxnet_on_identical_splits(healnet_run: tuple[Path, Path], tmp_path: Path) -> None:
    ws, run = healnet_run
    splits_dir = tmp_path / "splits"
    splits_dir.mkdir()
    frame = pd.read_csv(run / "splits.csv")
    for k, part in frame.groupby("fold"):
        tr = part.loc[part.split != "test", "patient_id"].tolist()
        te = part.loc[part.split == "test", "patient_id"].tolist()
        n = max(len(tr), len(te))
        pd.DataFrame({"train": tr + [None] * (n - len(tr)), "val": te + [None] * (n - len(te))}).to_csv(
            splits_dir / f"splits_{k}.csv"
        )
    out = tmp_path / "cox"
    result = train(*base_args(ws, out, mods="rna,cnv", model="coxnet", folds=False), "--splits", str(splits_dir))
    assert result.exit_code == 0, result.output
    pred = pd.read_parquet(out / "predictions.parquet")
    assert len(pred) == 40 and np.all(np.diff(pred.filter(like="surv_").to_numpy(), axis=1) <= 1e-12)
    assert pred["risk"].std() > 0
    ckpt = torch.load(out / "fold_0" / "checkpoint.pt", weights_only=True)
    assert ckpt["model_name"] == "coxnet" and ckpt["model"]["name"] == "coxnet"  # a registered model
    assert ckpt["model"]["state_dict"]["coef"].ndim == 1 and ckpt["loss"] == "cox" and "breslow" in ckpt
    fm = load_fold(out, 0)
    pid = pred.loc[pred.fold == 0, "patient_id"].iloc[0]
    full = predict_patients(fm, [pid]).frame["risk"].iloc[0]
    dropped = predict_patients(fm, [pid], drop={pid: {"rna", "cnv"}}).frame["risk"].iloc[0]
    medians = np.concatenate([fm.preprocess[m].median for m in ("rna", "cnv")])
    coef = fm.model.coef.detach().numpy()
    assert dropped == pytest.approx(float(medians @ coef))  # dropped omics = training medians
    assert full != pytest.approx(dropped)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--modalities", "rna,protein"], "unknown modality protein"),
        (["--modalities", "rna", "--model", "transformer"], "--model 'transformer' is unknown"),
        (["--modalities", "rna", "--loss", "hinge"], "--loss 'hinge'"),
        (["--modalities", "rna", "--splits", "MISSING"], "not a folder"),
        (["--modalities", "rna", "--hparam", "depth"], "expected KEY=VALUE"),
        (["--modalities", "rna", "--hparam", "bogus=1"], "unknown hyperparameter"),
        (["--modalities", "wsi,rna", "--model", "coxnet"], "omics only"),
    ],
)
def test_bad_inputs_exit_2(tmp_path: Path, args: list[str], match: str) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=12)
    result = train("--workdir", str(ws), "--out", str(tmp_path / "out"), "--folds", "2", "--epochs", "1", *args)
    assert result.exit_code == 2, result.output
    assert match in result.output


def test_no_labels_and_no_patients_exit_2(tmp_path: Path) -> None:
    result = train("--modalities", "rna", "--workdir", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "no labels" in result.output
    ws = factories.make_workspace(tmp_path / "ws", n_patients=12, omics={"rna": 3})
    from healnet_cli.artifacts.omics import modality_path, write_labels

    write_labels(
        modality_path(ws / "omics", "labels"),
        pd.DataFrame({"time": [1.0], "event": [True]}, index=pd.Index(["OTHER"], name="patient_id")),
        {},
    )
    result = train("--modalities", "rna", "--workdir", str(ws))
    assert result.exit_code == 2 and "no patients" in result.output


def test_existing_run_needs_resume(healnet_run: tuple[Path, Path]) -> None:
    ws, run = healnet_run
    same = [*base_args(ws, run), "--modality-dropout", "0.3", "--max-patches", "4"]
    result = train(*same)
    assert result.exit_code == 2 and "--resume" in result.output
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.suffix in (".json", ".yaml", ".csv")}
    result = train(*same, "--resume", "--device", "cpu", "--precision", "fp32")  # not run-defining
    assert result.exit_code == 0 and "already finished" in result.output
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.suffix in (".json", ".yaml", ".csv")}
    assert {k: v for k, v in after.items() if k != "run.json"} == {k: v for k, v in before.items() if k != "run.json"}


def test_resume_with_other_run_defining_options_is_refused(healnet_run: tuple[Path, Path]) -> None:
    ws, run = healnet_run
    before = (run / "run.json").read_bytes(), (run / "config.yaml").read_bytes()
    result = train(
        *base_args(ws, run, model="snn"), "--resume", "--epochs", "7", "--modality-dropout", "0.3", "--max-patches", "4"
    )
    assert result.exit_code == 2, result.output
    assert "--model healnet (this command: snn)" in result.output and "--epochs 3 (this command: 7)" in result.output
    assert "--hparam" in result.output  # healnet's hyper-parameters are not snn's
    assert "--workdir" not in result.output and "--device" not in result.output
    assert ((run / "run.json").read_bytes(), (run / "config.yaml").read_bytes()) == before
    result = train(*base_args(ws, run), "--fold", "1", "--modality-dropout", "0.3", "--max-patches", "4", "--seed", "4")
    assert result.exit_code == 2 and "--seed 3 (this command: 4)" in result.output


def test_single_folds_then_gather(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=24, omics={"rna": 4})
    out = tmp_path / "run"
    args = base_args(ws, out, mods="rna", model="snn")
    for k in (1, 0):
        result = train(*args, "--fold", str(k))
        assert result.exit_code == 0, result.output
        assert (out / f"fold_{k}" / "predictions.parquet").is_file()
    assert not (out / "predictions.parquet").exists()
    result = runner.invoke(build_app(), ["train", "--gather", "--out", str(out)])
    assert result.exit_code == 2 and "not finished" in result.output
    result = train(*args, "--fold", "2")
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out / "predictions.parquet")) == 24  # gathered on the last fold
    result = runner.invoke(build_app(), ["train", "--gather", "--out", str(out)])
    assert result.exit_code == 0 and "c-index" in result.output


def test_a_failed_fold_is_recorded_and_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from healnet_cli.stages.train import fold as run_module

    original = run_module.FoldTrainer.fit

    def flaky(self, fold, model_dir):
        if fold.index == 1:
            raise RuntimeError("simulated out-of-memory")
        return original(self, fold, model_dir)

    monkeypatch.setattr(run_module.FoldTrainer, "fit", flaky)
    ws = factories.make_workspace(tmp_path / "ws", n_patients=24, omics={"rna": 4})
    out = tmp_path / "run"
    result = train(*base_args(ws, out, mods="rna", model="snn"))
    assert result.exit_code == 3, result.output
    assert "fold 1 failed: RuntimeError: simulated out-of-memory" in result.output
    assert json.loads((out / "failures.json").read_text()) == {"1": "RuntimeError: simulated out-of-memory"}
    assert (out / "fold_0" / "predictions.parquet").is_file() and not (out / "predictions.parquet").exists()
    monkeypatch.setattr(run_module.FoldTrainer, "fit", original)
    result = train(*base_args(ws, out, mods="rna", model="snn"), "--resume")
    assert result.exit_code == 0, result.output
    assert (out / "predictions.parquet").is_file() and not (out / "failures.json").exists()


def test_bag_scaler_is_fitted_on_the_folds_training_patients_only(healnet_run: tuple[Path, Path]) -> None:
    from healnet_cli.data.cohort import load_cohort
    from healnet_cli.data.preprocess import fit_bag_scaler

    ws, run = healnet_run
    splits = pd.read_csv(run / "splits.csv", dtype={"patient_id": str})
    cohort = load_cohort(ws, ["wsi"])
    ckpt = torch.load(run / "fold_0" / "checkpoint.pt", weights_only=True)
    train_ids = splits[(splits["fold"] == 0) & (splits["split"] != "test")]["patient_id"]
    expected = fit_bag_scaler(cohort.load_bag(p)[0] for p in train_ids if p in cohort.slides)
    np.testing.assert_allclose(ckpt["preprocess"]["wsi"]["mean"], expected.mean, rtol=1e-12)
    np.testing.assert_allclose(ckpt["preprocess"]["wsi"]["std"], expected.std, rtol=1e-12)
    everyone = fit_bag_scaler(cohort.load_bag(p)[0] for p in cohort.slides)
    assert not np.allclose(everyone.mean, expected.mean)  # test patients would have changed it


def test_cpu_threads_one_for_omics_only_all_for_bags(monkeypatch: pytest.MonkeyPatch) -> None:
    from healnet_cli.core.hpc import available_cpus
    from healnet_cli.stages.train.config import TrainConfig
    from healnet_cli.stages.train.run import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpu = torch.device("cpu")
    assert cpu_threads(TrainConfig(modalities=["rna", "cnv"]), cpu) == 1
    assert cpu_threads(TrainConfig(modalities=["wsi", "rna"]), cpu) == available_cpus()
    assert cpu_threads(TrainConfig(modalities=["rna"]), torch.device("cuda")) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(TrainConfig(modalities=["rna"]), cpu) is None  # the user's choice wins
