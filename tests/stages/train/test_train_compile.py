"""`healnet train --compile`: the model is trained through torch.compile and saved unwrapped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.data.inference import load_fold

runner = CliRunner()


@pytest.mark.parametrize("model", ["ehpal", "snn"])
def test_compile_trains_through_torch_compile_and_saves_plain_weights(
    workspace: Path, tmp_path: Path, monkeypatch, model: str
) -> None:
    calls = []
    real_compile = torch.compile

    def eager_compile(module, **kwargs):  # dynamo traces, no code generation: the wiring, in seconds
        calls.append(type(module).__name__)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    hparams = (
        [
            "--hparam",
            "token_dim=8",
            "--hparam",
            "widths=[8]",
            "--hparam",
            "sir_max_width=8",
            "--hparam",
            "pool_dim=8",
            "--hparam",
            "omics_segments=4",
        ]
        if model == "ehpal"
        else []
    )
    out = tmp_path / "run"
    args = [
        "train",
        "--modalities",
        "rna,cnv",
        "--model",
        model,
        "--workdir",
        str(workspace),
        "--out",
        str(out),
        "--folds",
        "2",
        "--fold",
        "0",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--ensemble",
        "1",
        "--device",
        "cpu",
        "--compile",
        *hparams,
    ]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert calls, "--compile must reach torch.compile"
    state = torch.load(out / "fold_0" / "checkpoint.pt", weights_only=True)
    keys = list(state["model"]["state_dict"])
    assert keys and not any("_orig_mod" in k for k in keys)
    fold = load_fold(out, 0)
    assert fold.model is not None
