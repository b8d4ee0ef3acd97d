"""`healnet evaluate`: the clinical baseline beside a run, its paired test, and the adjusted Cox table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import modality_path, write_labels, write_modality
from healnet_cli.cli import build_app
from healnet_cli.data.coxph import fit_coxph
from healnet_cli.stages.evaluate.clinical import adjusted_cox
from healnet_cli.stages.evaluate.run_folder import RunData


def _workspace(root: Path, n: int = 60, clinical_missing: float = 0.0, clinical: bool = True) -> Path:
    """rna (gene 0 carries half the signal) + clinical (age carries the other half, sex is noise)."""
    rng = np.random.default_rng(11)
    ids = [f"P{i:03d}" for i in range(n)]
    gene, age = rng.normal(size=n), 60 + 10 * rng.normal(size=n)
    t = rng.exponential(20.0 * np.exp(-0.8 * gene - 0.8 * (age - 60) / 10)) + 0.5
    e = rng.random(n) < 0.8
    write_labels(
        modality_path(root / "omics", "labels"),
        pd.DataFrame({"time": t, "event": e}, index=pd.Index(ids, name="patient_id")),
        {"time_unit": "months"},
    )
    rna = rng.normal(size=(n, 5))
    rna[:, 0] = gene
    write_modality(
        modality_path(root / "omics", "rna"),
        pd.DataFrame(rna, index=ids, columns=[f"G{j}" for j in range(5)]).astype(np.float32),
        {"modality": "rna"},
    )
    if clinical:
        frame = pd.DataFrame({"age": age, "is_female": (rng.random(n) < 0.5).astype(float)}, index=ids).astype(
            np.float32
        )
        keep = rng.random(n) >= clinical_missing
        write_modality(modality_path(root / "omics", "clinical"), frame[keep], {"modality": "clinical"})
    return root


def _invoke(*args: str):
    return CliRunner().invoke(build_app(), [str(a) for a in args])


def _splits_dir(run: Path, folder: Path) -> Path:
    folder.mkdir()
    frame = pd.read_csv(run / "splits.csv")
    for k, part in frame.groupby("fold"):
        tr = part.loc[part.split != "test", "patient_id"].tolist()
        te = part.loc[part.split == "test", "patient_id"].tolist()
        m = max(len(tr), len(te))
        pd.DataFrame({"train": tr + [None] * (m - len(tr)), "val": te + [None] * (m - len(te))}).to_csv(
            folder / f"splits_{k}.csv"
        )
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("clin")
    ws = _workspace(root / "ws")
    cox = root / "coxnet"
    assert (
        _invoke(
            "train", "-m", "rna", "--model", "coxnet", "-w", ws, "--out", cox, "--folds", "3", "--seed", "1"
        ).exit_code
        == 0
    )
    base = root / "cox-clinical"
    result = _invoke(
        "train",
        "-m",
        "clinical",
        "--model",
        "cox-clinical",
        "-w",
        ws,
        "--out",
        base,
        "--splits",
        _splits_dir(cox, root / "splits"),
    )
    assert result.exit_code == 0, result.output
    return ws, cox, base


def test_baseline_is_cox_clinical_on_the_runs_folds(runs) -> None:
    ws, cox, base = runs
    result = _invoke("evaluate", cox, "--bootstrap", "50", "--no-attention")
    assert result.exit_code == 0, result.output
    metrics = json.loads((cox / "evaluation" / "metrics.json").read_text())
    b = metrics["clinical_baseline"]
    trained = pd.read_parquet(base / "predictions.parquet")
    from healnet_cli.metrics import compute_harrell

    # the same fits as `healnet train --model cox-clinical` on the same splits
    assert b["harrell_c"] == pytest.approx(
        compute_harrell(trained["time"].to_numpy(), trained["event"].to_numpy(bool), trained["risk"].to_numpy(float)),
        abs=1e-4,
    )
    assert b["n_patients"] == 60 == b["n_with_clinical"] and b["covariates"] == ["age", "is_female"]
    assert b["ci95"][0] < b["harrell_c"] < b["ci95"][1]
    diff = b["run_minus_baseline"]
    assert diff["difference"] == pytest.approx(metrics["pooled"]["harrell_c"]["value"] - b["harrell_c"], abs=1e-9)
    assert 0.0 <= diff["p_value"] <= 1.0
    summary = (cox / "evaluation" / "summary.md").read_text()
    assert f"clinical baseline: c = {b['harrell_c']:.3f}" in summary
    rows = {r["term"]: r for r in metrics["adjusted_cox"]["rows"]}
    assert list(rows) == ["model risk (per SD)", "age", "is_female"]
    assert rows["model risk (per SD)"]["hr"] > 1 and rows["age"]["hr"] > 1  # both carry signal
    assert "Adjusted Cox model" in summary and "model risk (per SD)" in summary


def test_comparison_tests_each_run_against_its_baseline(runs, tmp_path: Path) -> None:
    _, cox, base = runs
    result = _invoke("evaluate", cox, base, "--bootstrap", "30", "--no-attention", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    tests = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["paired_tests"]
    pairs = [(t["a"], t["b"]) for t in tests]
    assert ("coxnet", "clinical baseline (coxnet)") in pairs and (
        "cox-clinical",
        "clinical baseline (cox-clinical)",
    ) in pairs
    own = next(t for t in tests if t["a"] == "cox-clinical" and t["b"].startswith("clinical baseline"))
    assert abs(own["difference"]) < 1e-4  # cox-clinical against itself
    assert "clinical baseline (coxnet)" in (tmp_path / "cmp" / "summary.md").read_text()


def test_patients_without_clinical_data_and_workspaces_without_it(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws", n=40, clinical_missing=0.25)
    run = tmp_path / "run"
    assert _invoke("train", "-m", "rna", "--model", "coxnet", "-w", ws, "--out", run, "--folds", "2").exit_code == 0
    assert _invoke("evaluate", run, "--bootstrap", "0", "--no-attention").exit_code == 0
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    b = metrics["clinical_baseline"]
    assert b["n_patients"] == 40 > b["n_with_clinical"]
    assert any("no clinical data" in n and "training medians" in n for n in b["notes"])
    adj = metrics["adjusted_cox"]
    assert adj["n_patients"] == b["n_with_clinical"] and any("left out" in n for n in adj["notes"])
    bare = _workspace(tmp_path / "bare", n=30, clinical=False)
    run2 = tmp_path / "run2"
    assert _invoke("train", "-m", "rna", "--model", "coxnet", "-w", bare, "--out", run2, "--folds", "2").exit_code == 0
    assert _invoke("evaluate", run2, "--bootstrap", "0", "--no-attention").exit_code == 0  # skipped is not a failure
    metrics = json.loads((run2 / "evaluation" / "metrics.json").read_text())
    assert (
        "clinical_baseline" not in metrics
        and "no clinical data in the workspace" in metrics["skipped"]["clinical_baseline"]
    )
    assert "Not computed: no clinical data" in (run2 / "evaluation" / "summary.md").read_text()


def _run_data(risk: np.ndarray, time: np.ndarray, event: np.ndarray, fold: np.ndarray) -> RunData:
    ids = [f"P{i:03d}" for i in range(len(risk))]
    pred = pd.DataFrame({"patient_id": ids, "fold": fold, "risk": risk, "surv_0": 0.5, "time": time, "event": event})
    labels = pd.DataFrame({"time": time, "event": event}, index=pd.Index(ids, name="patient_id"))
    return RunData(Path("run"), "run", {}, pred, {}, {}, labels, {})


def test_adjusted_cox_table_hazard_ratios_and_wald_intervals() -> None:
    rng = np.random.default_rng(4)
    n = 300
    signal, age = rng.normal(size=n), 60 + 10 * rng.normal(size=n)
    t = rng.exponential(np.exp(-0.7 * signal - 0.05 * (age - 60)))
    e = rng.random(n) < 0.8
    fold = np.arange(n) % 3
    stage = rng.integers(0, 2, size=n).astype(float)
    clinical = pd.DataFrame(
        {
            "age": age,
            "stage=I": stage,
            "stage=II": 1 - stage,
            "const": 1.0,
            "sparse": np.where(rng.random(n) < 0.5, np.nan, 1.0),
        },
        index=[f"P{i:03d}" for i in range(n)],
    )
    table = adjusted_cox(
        _run_data(3.0 * signal + fold, t, e, fold), clinical
    )  # per-fold shift and scale: standardised away
    rows = {r["term"]: r for r in table.rows}
    assert list(rows) == ["model risk (per SD)", "age", "stage=I"]
    assert table.left_out == {
        "const": "constant",
        "sparse": "missing for 50% of the patients (> 20%)",
        "stage=II": "linearly dependent on the covariates before it",
    }
    risk = rows["model risk (per SD)"]
    assert 1.6 < risk["hr"] < 2.6 and risk["p_value"] < 1e-6
    assert 1.02 < rows["age"]["hr"] < 1.09  # per year
    # Wald interval and p from the observed information of the same fit
    z = pd.Series(3.0 * signal + fold).groupby(fold).transform(lambda r: (r - r.mean()) / r.std(ddof=0)).to_numpy()
    x = np.c_[z, age, stage]
    fit = fit_coxph((x - x.mean(0)) / x.std(0), t, e)
    se = fit.std_err()[1] / x[:, 1].std()
    b = fit.coef[1] / x[:, 1].std()
    assert rows["age"]["ci95"] == pytest.approx([math.exp(b - 1.959964 * se), math.exp(b + 1.959964 * se)])
    assert rows["age"]["p_value"] == pytest.approx(math.erfc(abs(b / se) / math.sqrt(2)))
    noise = adjusted_cox(_run_data(rng.normal(size=n), t, e, fold), clinical)
    assert noise.rows[0]["p_value"] > 0.01 and noise.rows[0]["ci95"][0] < 1 < noise.rows[0]["ci95"][1]
