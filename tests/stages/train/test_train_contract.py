"""The run contract as `healnet train` writes it: run.json, fold bundles, the run-folder lock,
cohort.json kept on resume, --refit-all for networks and coxnet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.cli import build_app

PROVENANCE = {
    "weights": {"source": "file", "file": "w.safetensors", "sha256": "ef" * 32},
    "patch_mpp": 0.5,
    "patch_px": 224,
}


def train(*args) -> object:
    return CliRunner().invoke(build_app(), ["train", *map(str, args)])


def _snn(ws: Path, out: Path, *extra) -> list:
    return [
        "--modalities",
        "rna,cnv",
        "--model",
        "snn",
        "--workdir",
        ws,
        "--out",
        out,
        "--folds",
        "2",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--seed",
        "1",
        "--ensemble",
        "2",
        *extra,
    ]


def test_run_json_records_the_contract(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=16, wsi=True, provenance=PROVENANCE)
    out = tmp_path / "run"
    result = train(
        "--modalities",
        "wsi,rna",
        "--model",
        "abmil",
        "--workdir",
        ws,
        "--out",
        out,
        "--folds",
        "2",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--ensemble",
        "1",
        "--hparam",
        "hidden_dim=8",
        "--hparam",
        "attn_dim=4",
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["schema"] == "healnet.run/2" and run["model"] == "abmil" and run["modalities"] == ["wsi", "rna"]
    assert run["folds"] == [0, 1] and len(run["bin_edges_all"]) == 5 and run["time_unit"] == "months"
    wsi = run["features"]["wsi"]
    assert (
        wsi["extractor"] == "toy"
        and wsi["weights"]["sha256"] == "ef" * 32
        and wsi["patch_px"] == 224
        and wsi["dim"] == 6
    )
    assert run["features"]["rna"]["n_columns"] == 12 and run["features"]["rna"]["fingerprint"]
    defining = run["defining_options"]
    assert defining["epochs"] == 2 and defining["hparams"] == {"hidden_dim": 8, "attn_dim": 4, "dropout": 0.25}
    assert not {"device", "precision", "workdir", "resume", "fold", "out"} & set(defining)
    oof = pd.read_parquet(out / "predictions.parquet")
    assert run["risk_cutoffs"]["2"] == [float(np.quantile(oof["risk"], 0.5))]
    bundle = torch.load(out / "fold_1" / "checkpoint.pt", weights_only=True)
    assert bundle["schema"] == "healnet.fold/2" and bundle["kind"] == "fold" and bundle["provenance"]["wsi"] == wsi
    assert bundle["training"]["epochs_run"] == [2] and len(bundle["training"]["best_epochs"]) == 1
    assert not list(out.glob("*.lock"))  # released


def test_resume_keeps_what_splits_dropped_in_cohort_json(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=16, omics={"rna": 4})
    splits = tmp_path / "splits"
    splits.mkdir()
    ids = [f"P{i:03d}" for i in range(16)]
    for k in range(2):
        test = ids[k::2][:-1]  # the last patient of each half is in neither column
        train_ids = [p for p in ids if p not in ids[k::2]]
        n = max(len(test), len(train_ids))
        pd.DataFrame(
            {"train": train_ids + [None] * (n - len(train_ids)), "val": test + [None] * (n - len(test))}
        ).to_csv(splits / f"splits_{k}.csv")
    out = tmp_path / "run"
    args = [
        "--modalities",
        "rna",
        "--model",
        "snn",
        "--workdir",
        ws,
        "--out",
        out,
        "--splits",
        splits,
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--ensemble",
        "1",
    ]
    assert train(*args).exit_code == 0
    before = (out / "cohort.json").read_text()
    assert json.loads(before)["dropped_by_splits"] == {"0": ["P014"], "1": ["P015"]}
    result = train(*args, "--resume")
    assert result.exit_code == 0 and "already finished" in result.output
    assert (out / "cohort.json").read_text() == before


def test_refit_all_networks_and_coxnet(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=24, omics={"rna": 6, "cnv": 3})
    out = tmp_path / "run"
    assert train(*_snn(ws, out)).exit_code == 0
    assert not (out / "refit").exists()
    result = train(*_snn(ws, out), "--resume", "--refit-all")  # a finished run gains its refit
    assert result.exit_code == 0, result.output
    best = [
        b
        for k in range(2)
        for b in torch.load(out / f"fold_{k}" / "checkpoint.pt", weights_only=True)["training"]["best_epochs"]
    ]
    refit = json.loads((out / "run.json").read_text())["refit"]
    assert (
        refit["epochs"] == max(1, round(float(np.median(np.asarray(best) + 1)))) and refit["fold_best_epochs"] == best
    )
    assert f"refit on all 24 patients ({refit['epochs']} epochs)" in result.output
    assert len((out / "refit" / "history.jsonl").read_text().splitlines()) == refit["epochs"]
    again = train(*_snn(ws, out), "--resume", "--refit-all")
    assert again.exit_code == 0 and "refit: already trained, skipped" in again.output
    cox = tmp_path / "cox"
    result = train(
        "--modalities", "rna,cnv", "--model", "coxnet", "--workdir", ws, "--out", cox, "--folds", "2", "--refit-all"
    )
    assert result.exit_code == 0, result.output
    alphas = [torch.load(cox / f"fold_{k}" / "checkpoint.pt", weights_only=True)["training"]["alpha"] for k in range(2)]
    bundle = torch.load(cox / "refit" / "checkpoint.pt", weights_only=True)
    assert float(bundle["model"]["state_dict"]["fitted_alpha"]) == float(np.median(alphas))
    assert "median of the folds' chosen alphas" in json.loads((cox / "run.json").read_text())["refit"]["rule"]
    result = train(*_snn(ws, tmp_path / "x"), "--fold", "0", "--refit-all")
    assert result.exit_code == 2 and "--refit-all trains on all patients" in result.output


def test_two_processes_into_one_out_do_not_both_train(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=30, omics={"rna": 8, "cnv": 4})
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "healnet_cli", "train", *map(str, _snn(ws, out)), "--patience", "1000"]
    cmd[cmd.index("--epochs") + 1] = "40"
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.lock").is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, first.stderr.read()
        other = [*cmd[: cmd.index("snn")], "healnet", *cmd[cmd.index("snn") + 1 :]]  # another model into the same --out
        second = subprocess.run([*other, "--resume"], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert "is being written by another `healnet train` process" in second.stderr
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0, first.stderr.read()
    bundles = [torch.load(out / f"fold_{k}" / "checkpoint.pt", weights_only=True)["model_name"] for k in range(2)]
    assert bundles == ["snn", "snn"] and not list(out.glob("*.lock"))
