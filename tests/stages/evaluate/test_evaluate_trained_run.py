"""End to end on a tiny real run: `healnet train` (1 epoch) then `healnet evaluate --ablate`."""

from __future__ import annotations

import json

from evaluate_fixtures import make_workspace
from typer.testing import CliRunner

from healnet_cli.cli import build_app


def _trained_run(tmp_path, model: str, *extra: str):
    """A one-epoch, two-fold wsi+rna run of ``model`` on an 18-patient workspace."""
    ws = make_workspace(tmp_path / "ws", n=18)
    run = tmp_path / "run"
    trained = CliRunner().invoke(
        build_app(),
        [
            "train",
            "-m",
            "wsi,rna",
            "--model",
            model,
            "-w",
            str(ws),
            "--out",
            str(run),
            "--folds",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            *extra,
        ],
    )
    assert trained.exit_code == 0, trained.stderr
    return run


def test_ablation_and_attention_on_a_trained_run(tmp_path, monkeypatch):
    from collections import Counter

    from healnet_cli.data.cohort import Cohort

    run = _trained_run(tmp_path, "healnet", "--hparam", "depth=1", "--hparam", "omics_tokens=per_feature")
    reads, load_bag = Counter(), Cohort.load_bag
    monkeypatch.setattr(Cohort, "load_bag", lambda self, pid: (reads.update([pid]), load_bag(self, pid))[1])
    result = CliRunner().invoke(build_app(), ["evaluate", str(run), "--bootstrap", "0", "--ablate", "--json"])
    assert result.exit_code == 0, result.stderr
    assert len(reads) == 18 and set(reads.values()) == {2}  # once for all ablation conditions, once for attention
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    rows = {r["condition"]: r for r in metrics["ablation"]["conditions"]}
    assert list(rows) == ["all present", "without wsi", "without rna", "random half"]
    assert rows["all present"]["pooled"] == metrics["pooled"]["harrell_c"]["value"]
    assert not any("differ from predictions.parquet" in n for n in metrics["ablation"]["notes"])
    heatmaps = metrics["attention"]["heatmaps"]
    assert [h["label"] for h in heatmaps] == ["highest risk", "lowest risk"]
    assert all(h["background"] == "thumbnail" for h in heatmaps)
    top = metrics["attention"]["top_features"]["rna"]  # per-feature omics tokens: one weight per gene
    assert len(top) == 6 and {t["feature"] for t in top} == {f"G{j}" for j in range(6)}
    assert top[0]["mean_weight"] >= top[-1]["mean_weight"]
    assert (run / "evaluation" / "heatmap_0_highest_risk.png").is_file()


def test_ehpal_pooling_weights_reach_the_heatmaps(tmp_path, monkeypatch):
    from collections import Counter

    from healnet_cli.data.cohort import Cohort

    run = _trained_run(
        tmp_path,
        "ehpal",
        "--ensemble",
        "1",
        "--hparam",
        "token_dim=16",
        "--hparam",
        "widths=[16,16]",
        "--hparam",
        "sir_max_width=16",
    )
    reads, load_bag = Counter(), Cohort.load_bag

    def counting(self, patient_id):
        reads[patient_id] += 1
        return load_bag(self, patient_id)

    monkeypatch.setattr(Cohort, "load_bag", counting)
    result = CliRunner().invoke(build_app(), ["evaluate", str(run), "--bootstrap", "0", "--json"])
    assert result.exit_code == 0, result.stderr
    assert len(reads) == 18 and set(reads.values()) == {1}  # each test patient's bag read once
    heatmaps = json.loads((run / "evaluation" / "metrics.json").read_text())["attention"]["heatmaps"]
    assert [h["label"] for h in heatmaps] == ["highest risk", "lowest risk"]
    assert (run / "evaluation" / "heatmap_0_highest_risk.png").is_file()
