"""Real TCGA-BLCA (../shared/data): omics → coxnet on clinical → evaluate (slow; skipped without data)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app


@pytest.mark.slow
@pytest.mark.real_data
def test_evaluate_real_blca_clinical_coxnet(shared_data, tmp_path):
    app, runner = build_app(), CliRunner()
    blca = shared_data / "tcga" / "blca"
    work, run = tmp_path / "work", tmp_path / "run"
    assert runner.invoke(app, ["omics", str(blca / "tcga_blca_all_clean.csv.zip"), "-w", str(work)]).exit_code == 0
    trained = runner.invoke(
        app, ["train", "-w", str(work), "-m", "clinical", "--model", "coxnet", "--splits", str(blca), "--out", str(run)]
    )
    assert trained.exit_code == 0, trained.stderr
    result = runner.invoke(app, ["evaluate", str(run), "--bootstrap", "200", "--no-attention", "--json"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["run"]["n_patients"] == 373 and metrics["run"]["n_events"] == 169
    harrell = metrics["pooled"]["harrell_c"]
    assert 0.5 < harrell["value"] < 0.7 and harrell["ci95"][0] < harrell["value"] < harrell["ci95"][1]
    assert metrics["across_folds"]["harrell_c"]["n_folds"] == 5
    assert 0.1 < metrics["pooled"]["ibs"]["value"] < 0.25
