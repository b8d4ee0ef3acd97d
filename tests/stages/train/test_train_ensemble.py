"""`healnet train --ensemble N`: members differ, fold predictions are the members' mean hazards,
checkpoints round-trip (``weights_only=True``) through ``load_fold`` / ``predict_patients``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.data.batching import build_table
from healnet_cli.data.ensemble import EnsembleModel, combine_outputs
from healnet_cli.data.inference import FoldModel, load_fold, predict_patients, predict_table
from healnet_cli.data.survival import survival_from_logits
from healnet_cli.models.batch import ModelOutput

runner = CliRunner()
SMALL = ["--hparam", "depth=1", "--hparam", "num_latents=4", "--hparam", "latent_dim=8", "--hparam", "cross_dim_head=8"]


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ens")
    ws = factories.make_workspace(root / "ws", wsi=True, missing={"cnv": 0.2, "wsi": 0.25})
    args = [
        "train",
        "--modalities",
        "wsi,rna,cnv",
        "--workdir",
        str(ws),
        "--out",
        str(root / "run"),
        "--folds",
        "2",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--seed",
        "1",
        "--ensemble",
        "3",
        "--max-patches",
        "4",
        *SMALL,
    ]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    return ws, root / "run"


def test_combine_averages_hazards_and_weights() -> None:
    a = ModelOutput(torch.tensor([[0.0, 2.0]]), {"rna": torch.tensor([[1.0, 0.0]])})
    b = ModelOutput(torch.tensor([[-2.0, 0.0]]), {"rna": torch.tensor([[0.0, 1.0]])})
    out = combine_outputs([a, b], "hazard")
    expected = (torch.sigmoid(a.logits) + torch.sigmoid(b.logits)) / 2
    torch.testing.assert_close(torch.sigmoid(out.logits), expected)
    torch.testing.assert_close(out.weights["rna"], torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(combine_outputs([a, b], "logit").logits, torch.tensor([[-1.0, 1.0]]))
    with pytest.raises(ValueError, match="combine"):
        EnsembleModel([torch.nn.Linear(1, 1)], combine="median")


def test_checkpoint_holds_distinct_members(ensemble_run: tuple[Path, Path]) -> None:
    _, run = ensemble_run
    ckpt = torch.load(run / "fold_0" / "checkpoint.pt", weights_only=True)
    members = [ckpt["model"], *ckpt["ensemble"]["members"]]
    assert len(members) == 3 and ckpt["ensemble"]["combine"] == "hazard"
    key = next(k for k, v in members[0]["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(members[i]["state_dict"][key], members[j]["state_dict"][key])
    assert (run / "fold_0" / "member_2" / "history.jsonl").is_file()
    assert not list(run.glob("fold_*/**/state.pt"))  # resumable states removed once a fold is written


def test_fold_predictions_are_mean_of_member_hazards(ensemble_run: tuple[Path, Path]) -> None:
    _, run = ensemble_run
    fm = load_fold(run, 0)
    assert isinstance(fm.model, EnsembleModel) and len(fm.model.members) == 3
    splits = pd.read_csv(run / "splits.csv", dtype={"patient_id": str})
    ids = sorted(splits.loc[(splits.fold == 0) & (splits.split == "test"), "patient_id"])
    oof = pd.read_parquet(run / "fold_0" / "predictions.parquet").set_index("patient_id")
    table = build_table(fm.cohort, ids, fm.preprocess)
    hazards = []
    for member in fm.model.members:
        single = FoldModel(0, fm.model_name, member, fm.preprocess, fm.bin_edges, fm.modalities, cohort=fm.cohort)
        surv = predict_table(single, table)[0][[f"surv_{j}" for j in range(fm.n_bins)]].to_numpy()
        prev = np.hstack([np.ones((len(ids), 1)), surv[:, :-1]])
        hazards.append(1.0 - surv / prev)
    members_surv = [f"surv_{j}" for j in range(fm.n_bins)]
    assert not np.allclose(hazards[0], hazards[1], atol=1e-4)  # members predict differently
    mean_h = np.clip(np.mean(hazards, axis=0), 1e-6, 1 - 1e-6)
    expected = survival_from_logits(np.log(mean_h / (1 - mean_h)))
    np.testing.assert_allclose(oof.loc[ids, members_surv].to_numpy(), expected, rtol=1e-4, atol=1e-5)
    # the evaluate-stage API gives the same numbers after the checkpoint round trip
    again = predict_patients(fm, ids).frame.set_index("patient_id")
    np.testing.assert_allclose(again.loc[ids, "risk"], oof.loc[ids, "risk"], rtol=1e-6)


def test_attention_weights_averaged_over_members(ensemble_run: tuple[Path, Path]) -> None:
    _, run = ensemble_run
    fm = load_fold(run, 1)
    pid = next(p for p in fm.cohort.patients if fm.cohort.presence.loc[p, "wsi"])
    res = predict_patients(fm, [pid], return_weights=True)
    n = sum(len(c) for _, c in res.bags[pid])
    assert res.weights[pid]["wsi"].shape == (n,)


def test_bad_ensemble_size_exits_2(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=12)
    result = runner.invoke(
        build_app(),
        [
            "train",
            "--modalities",
            "rna",
            "--workdir",
            str(ws),
            "--out",
            str(tmp_path / "o"),
            "--folds",
            "2",
            "--epochs",
            "1",
            "--ensemble",
            "0",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--ensemble 0" in result.output
