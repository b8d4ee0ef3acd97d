"""evaluate on synthetic runs: metrics vs scikit-survival, NA reasons, ablation, attention, comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evaluate_fixtures import FakeInference, make_run
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw
from sksurv.util import Surv

from healnet_cli.artifacts.coords import SlideCoords, write_coords
from healnet_cli.core.console import Console
from healnet_cli.stages.evaluate.ablation import random_half_drop
from healnet_cli.stages.evaluate.config import EvaluateConfig
from healnet_cli.stages.evaluate.run import evaluate_run, evaluate_runs
from healnet_cli.stages.evaluate.run_folder import read_run
from healnet_cli.stages.evaluate.scoring import score_run

QUIET = Console(quiet=True)


def _metrics(run_dir):
    return json.loads((run_dir / "evaluation" / "metrics.json").read_text())


def test_metrics_match_sksurv_per_fold_and_pooled(run_dir):
    outcome = evaluate_runs([run_dir], EvaluateConfig(bootstrap=30, attention=False), console=QUIET)
    assert outcome.exit_code == 0
    m = _metrics(run_dir)
    p = read_run(run_dir).predictions
    labels = read_run(run_dir).labels
    assert m["pooled"]["harrell_c"]["value"] == pytest.approx(
        concordance_index_censored(p["event"].to_numpy(bool), p["time"].to_numpy(), p["risk"].to_numpy())[0]
    )
    tau = m["conventions"]["tau"]
    part = p[p["fold"] == 1]
    train = labels.drop(part["patient_id"])
    expected = concordance_index_ipcw(
        Surv.from_arrays(train["event"], train["time"]),
        Surv.from_arrays(part["event"], part["time"]),
        part["risk"].to_numpy(),
        tau=tau,
    )[0]
    assert m["folds"]["1"]["uno_c"]["value"] == pytest.approx(expected)
    for name in ("harrell_c", "uno_c", "ibs", "mean_auc"):
        entry = m["pooled"][name]
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1], name
    assert 0.0 < m["pooled"]["ibs"]["value"] < 0.25
    assert m["inputs"]["predictions.parquet"] and m["options"]["bootstrap"] == 30
    assert m["risk_groups"]["logrank"]["p_value"] < 0.05
    assert m["calibration"]["rows"]
    assert (run_dir / "evaluation" / "config.yaml").is_file()


def test_bootstrap_is_seeded(run_dir):
    run = read_run(run_dir)
    a, b, c = (score_run(run, times=None, n_boot=15, seed=s) for s in (5, 5, 6))
    va, vb, vc = (x.pooled.values["uno_c"] for x in (a, b, c))
    assert (va.ci_low, va.ci_high) == (vb.ci_low, vb.ci_high) != (vc.ci_low, vc.ci_high)


def test_fold_without_events_is_na_with_reason(run_dir):
    path = run_dir / "predictions.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[frame["fold"] == 2, "event"] = False
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata), path
    )
    outcome = evaluate_runs([run_dir], EvaluateConfig(bootstrap=10, attention=False), console=QUIET)
    assert outcome.exit_code == 0  # an NA metric is an honest result, not a failure
    fold = _metrics(run_dir)["folds"]["2"]
    for name in ("harrell_c", "uno_c", "mean_auc"):
        assert fold[name]["value"] is None and "no events" in fold[name]["reason"], name
    assert _metrics(run_dir)["across_folds"]["harrell_c"]["n_folds"] == 2
    assert "n/a (no events" in (run_dir / "evaluation" / "report.html").read_text()


def test_grid_outside_follow_up_is_na(run_dir):
    evaluate_runs([run_dir], EvaluateConfig(bootstrap=0, attention=False, times=(500.0, 900.0)), console=QUIET)
    m = _metrics(run_dir)
    assert m["pooled"]["ibs"]["value"] is None and "time points inside the follow-up" in m["pooled"]["ibs"]["reason"]
    assert "outside the follow-up" in m["folds"]["0"]["grid_note"]
    assert m["calibration"]["skipped"]


def test_ablation_table_with_fake_models(run_dir):
    fake = FakeInference()
    ev = evaluate_run(
        read_run(run_dir), EvaluateConfig(bootstrap=0, ablate=True, attention=False), console=QUIET, inference=fake
    )
    rows = {r["condition"]: r for r in ev.ablation.rows()}
    assert list(rows) == ["all present", "without wsi", "without rna", "random half"]
    assert rows["all present"]["mean"] > rows["without wsi"]["mean"]
    assert rows["all present"]["mean"] > rows["without rna"]["mean"]
    assert rows["all present"]["pooled"] > rows["random half"]["pooled"]
    dropped = [c["drop"] for c in fake.calls if c["drop"]]
    assert all(m == {"wsi"} for m in dropped[0].values())
    assert len(fake.calls) == 3 * 4


def test_random_half_keeps_one_and_is_seeded():
    present = pd.DataFrame(
        {"wsi": [True, True, False], "rna": [True, True, True], "cnv": [True, False, True]}, index=["a", "b", "c"]
    )
    mods = ["wsi", "rna", "cnv"]
    one = random_half_drop(["a", "b", "c"], mods, present, np.random.default_rng(1))
    two = random_half_drop(["a", "b", "c"], mods, present, np.random.default_rng(1))
    assert one == two
    for p, dropped in one.items():
        has = {m for m in mods if present.at[p, m]}
        assert len(dropped) == 1 and dropped <= has and has - dropped


def test_single_modality_model_has_only_all_present(tmp_path):
    run_dir = make_run(tmp_path / "r", modalities=("rna",))
    ev = evaluate_run(
        read_run(run_dir),
        EvaluateConfig(bootstrap=0, ablate=True, attention=False),
        console=QUIET,
        inference=FakeInference(modalities=("rna",)),
    )
    assert [r["condition"] for r in ev.ablation.rows()] == ["all present"]
    assert "single-modality" in ev.ablation.notes[0]


def test_attention_top_genes_and_heatmaps_over_thumbnail(run_dir, tmp_path):
    workdir = tmp_path / "work"
    tiles = workdir / "tiles"
    tiles.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (32, 24), (230, 200, 220)).save(tiles / "P019-slide.png")
    meta = {
        "slide_id": "P019-slide",
        "case_id": "P019",
        "source_path": "x.svs",
        "mpp": 0.25,
        "patch_px": 256,
        "patch_px_level0": 256,
        "read_level": 0,
        "read_patch_px": 256,
        "thumbnail_png": "P019-slide.png",
        "thumbnail_downsample": 32.0,
    }
    write_coords(tiles / "P019-slide.parquet", SlideCoords(np.array([0]), np.array([0]), np.array([1.0]), meta))
    ev = evaluate_run(
        read_run(run_dir),
        EvaluateConfig(bootstrap=0, workdir=workdir, top_k_genes=3),
        console=QUIET,
        inference=FakeInference(),
    )
    assert [n for n, _ in ev.attention.top_features["rna"]] == ["GENE0", "GENE1", "GENE2"]
    labels = [h.label for h in ev.attention.heatmaps]
    assert labels == ["highest risk", "lowest risk"]
    risks = read_run(run_dir).predictions.set_index("patient_id")["risk"]
    assert ev.attention.heatmaps[0].patient_id == risks.idxmax()
    with_thumb = [h for h in ev.attention.heatmaps if h.thumbnail is not None]
    assert [h.slide_id for h in with_thumb] == (
        ["P019-slide"] if risks.idxmax() == "P019" or risks.idxmin() == "P019" else []
    )
    assert all(h.note for h in ev.attention.heatmaps if h.thumbnail is None)
    assert any(k.startswith("heatmap_") for k in ev.figures) and "top_rna" in ev.figures


def test_single_token_omics_says_why(run_dir):
    ev = evaluate_run(
        read_run(run_dir), EvaluateConfig(bootstrap=0), console=QUIET, inference=FakeInference(single_token=True)
    )
    assert "rna" not in ev.attention.top_features
    assert "single token" in ev.attention.unavailable["rna"]


def test_failed_group_gives_exit_3_and_a_report(run_dir):
    class Broken(FakeInference):
        def predict_patients(self, *a, **k):
            raise RuntimeError("features folder gone")

    outcome = evaluate_runs([run_dir], EvaluateConfig(bootstrap=0, ablate=True), console=QUIET, inference=Broken())
    assert outcome.exit_code == 3
    m = _metrics(run_dir)
    assert "features folder gone" in m["failed"]["ablation"] and "attention" in m["failed"]
    assert m["pooled"]["harrell_c"]["value"] is not None
    assert "features folder gone" in (run_dir / "evaluation" / "report.html").read_text()


def test_several_runs_comparison_and_paired_bootstrap(tmp_path):
    good = make_run(tmp_path / "good", noise=0.1, seed=1)
    bad = make_run(tmp_path / "bad", noise=5.0, seed=2)
    out = tmp_path / "cmp"
    outcome = evaluate_runs([good, bad], EvaluateConfig(bootstrap=40, attention=False, out=out), console=QUIET)
    assert outcome.exit_code == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [r["run"] for r in result["runs"]] == ["good", "bad"]
    test = result["paired_tests"][0]
    assert test["n_shared"] == 60 and test["difference"] > 0 and test["p_value"] < 0.05
    assert (good / "evaluation" / "report.html").is_file() and (bad / "evaluation" / "report.html").is_file()
    assert "Paired bootstrap" in (out / "report.html").read_text()
    default = evaluate_runs([good, bad], EvaluateConfig(bootstrap=0, attention=False), console=QUIET)
    assert default.comparison["output"] == str(good / "evaluation" / "comparison")


def test_calibration_times_are_at_most_four(run_dir):
    from healnet_cli.stages.evaluate.curves import calibration_times

    run = read_run(run_dir)
    assert calibration_times(run, [float(t) for t in range(1, 11)]) == [1.0, 4.0, 7.0, 10.0]
    assert len(calibration_times(run, None)) == 3


def test_omics_run_without_per_feature_weights_skips_the_attention_pass(tmp_path):
    run_dir = make_run(tmp_path / "r", modalities=("rna",))
    fake = FakeInference(modalities=("rna",), single_token=True)
    ev = evaluate_run(read_run(run_dir), EvaluateConfig(bootstrap=0), console=QUIET, inference=fake)
    assert ev.attention is None and "attention" not in ev.failed
    assert ev.skipped["attention"].startswith("nothing to draw") and "single token" in ev.skipped["attention"]
    assert len(fake.calls) == 1 and all(c["weights"] for c in fake.calls)  # one probe, not every patient
    per_feature = FakeInference(modalities=("rna",))
    ev = evaluate_run(read_run(run_dir), EvaluateConfig(bootstrap=0), console=QUIET, inference=per_feature)
    assert "rna" in ev.attention.top_features and len(per_feature.calls) == 1 + 3


def test_the_cohort_is_loaded_once_per_run(run_dir):
    from types import SimpleNamespace

    class Counting(FakeInference):
        def __init__(self):
            super().__init__()
            self.cohorts = []

        def load_fold(self, run_dir, fold, *, workdir=None, device="cpu", cohort=None):
            self.cohorts.append(cohort)
            fm = super().load_fold(run_dir, fold, workdir=workdir, device=device)
            fm.cohort = cohort if cohort is not None else SimpleNamespace(name=f"loaded by fold {fold}")
            return fm

    fake = Counting()
    evaluate_run(read_run(run_dir), EvaluateConfig(bootstrap=0, ablate=True), console=QUIET, inference=fake)
    assert fake.cohorts[0] is None and len(fake.cohorts) == 3
    assert all(c is not None and c.name == "loaded by fold 0" for c in fake.cohorts[1:])


def test_interpolated_survival_passes_through_the_bin_ends():
    from healnet_cli.metrics import survival_at, survival_interpolated

    surv = np.array([[0.8, 0.5, 0.2, 0.05]])
    for edges in ([0.0, 10.0, 20.0, 30.0, 60.0], [0.0, 10.0, 20.0, 30.0, np.inf]):
        at = survival_interpolated(surv, np.array(edges), np.array([0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 99.0]))[0]
        assert (
            at[0] == 1.0 and at[2] == pytest.approx(0.8) and at[4] == pytest.approx(0.5) and at[5] == pytest.approx(0.2)
        )
        assert at[1] == pytest.approx(0.8**0.5) and at[3] == pytest.approx(
            (0.8 * 0.5) ** 0.5
        )  # constant hazard in a bin
        assert np.all(np.diff(at) <= 1e-12)
    assert at[6] == pytest.approx(0.2) and at[7] == pytest.approx(0.2)  # infinite last edge: held
    assert survival_at(surv, np.array(edges), np.array([5.0]))[0, 0] == 1.0  # the step function says 1 in bin 0


def test_calibration_is_not_drawn_where_the_step_function_is_one(run_dir):
    from healnet_cli.stages.evaluate.curves import calibrate, calibration_times, pooled_survival_at

    run = read_run(run_dir)
    times = calibration_times(run, None)
    step = pooled_survival_at(run, times, interpolate=False)
    assert (step[:, 0] == 1.0).mean() > 0.5  # the situation of the issue: most patients at exactly 1.0
    cal = calibrate(run, None)
    first = [r for r in cal.rows if r["time"] == times[0]]
    assert first and all(r["predicted"] < 0.999 for r in first)
    assert "log-linear between the model's bin ends" in cal.method
    evaluate_runs([run_dir], EvaluateConfig(bootstrap=0, attention=False), console=QUIET)
    assert (
        "interpolat" in _metrics(run_dir)["calibration"]["method"]
        or "log-linear" in _metrics(run_dir)["calibration"]["method"]
    )
    assert "log-linear between the model" in (run_dir / "evaluation" / "report.html").read_text()


def test_ablation_scores_only_the_patients_a_condition_changes(run_dir):
    path = run_dir / "predictions.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    no_slide = frame["patient_id"].isin([f"P{i:03d}" for i in range(0, 60, 3)])  # 20 of 60 without slides
    frame.loc[no_slide, "has_wsi"] = False
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata), path
    )
    fake = FakeInference()
    ev = evaluate_run(
        read_run(run_dir), EvaluateConfig(bootstrap=0, ablate=True, attention=False), console=QUIET, inference=fake
    )
    rows = {r["condition"]: r for r in ev.ablation.rows()}
    assert rows["all present"]["n_changed"] == 60 and rows["without rna"]["n_changed"] == 60
    assert (
        rows["without wsi"]["n_changed"] == 40
        and sum(f["n_changed"] for f in rows["without wsi"]["folds"].values()) == 40
    )
    without_wsi = [c for c in fake.calls if c["drop"] and set().union(*c["drop"].values()) == {"wsi"}]
    assert sum(len(c["drop"]) for c in without_wsi) == 40
    assert not any(p in c["drop"] for c in without_wsi for p in frame.loc[no_slide, "patient_id"])
    assert rows["random half"]["n_changed"] == 40  # patients with one modality lose nothing
    has = frame[~no_slide]
    risk_all = fake.components.loc[has["patient_id"], ["comp_wsi", "comp_rna"]].sum(axis=1).to_numpy()
    expected = concordance_index_censored(has["event"].to_numpy(bool), has["time"].to_numpy(), risk_all)[0]
    assert rows["without wsi"]["pooled_all_present"] == pytest.approx(expected)
    assert rows["without rna"]["pooled_all_present"] == pytest.approx(rows["all present"]["pooled"])
    evaluate_runs(
        [run_dir], EvaluateConfig(bootstrap=0, ablate=True, attention=False), console=QUIET, inference=FakeInference()
    )
    html_text = (run_dir / "evaluation" / "report.html").read_text()
    assert "patients changed" in html_text and "all present, same patients" in html_text


def test_report_shows_patterns_training_settings_and_the_null_brier(run_dir):
    import yaml
    from sksurv.metrics import integrated_brier_score
    from sksurv.nonparametric import kaplan_meier_estimator

    path = run_dir / "predictions.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[frame.index < 7, "has_wsi"] = False
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata), path
    )
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["options"].update(
        {
            "epochs": 30,
            "ensemble": 3,
            "patience": 5,
            "monitor": "cindex",
            "lr": 0.001,
            "hparams": {"depth": 2, "latent_dim": 16},
        }
    )
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "fold_1" / "history.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "train_loss": 1.0, "best_epoch": min(e, 3)}) + "\n" for e in range(9))
    )
    evaluate_runs([run_dir], EvaluateConfig(bootstrap=0, attention=False), console=QUIET)
    m = _metrics(run_dir)
    assert m["run"]["modality_patterns"] == {"wsi+rna": 53, "rna": 7}
    assert m["training"]["settings"]["ensemble"] == 3 and m["training"]["settings"]["monitor"] == "cindex"
    assert m["training"]["folds"] == {"1": [{"epochs": 9, "best_epoch": 3}]}
    html_text = (run_dir / "evaluation" / "report.html").read_text()
    for text in (
        "wsi+rna",
        "seed ensemble per fold",
        "early stopping monitors",
        "depth=2, latent_dim=16",
        "fold 1: 9 epochs, kept epoch 3",
        "null model (KM)",
    ):
        assert text in html_text, text
    # the null model's IBS is scikit-survival's IBS of the training patients' Kaplan–Meier curve
    run = read_run(run_dir)
    part = run.predictions[run.predictions["fold"] == 1]
    train = run.labels.loc[run.train_ids[1]]
    grid = np.array(m["folds"]["1"]["ibs"]["grid"][:2], dtype=float)
    times = np.linspace(grid[0], grid[1], m["folds"]["1"]["ibs"]["grid"][2])
    t, s = kaplan_meier_estimator(train["event"].to_numpy(bool), train["time"].to_numpy(float))
    km = np.where(np.searchsorted(t, times, side="right") > 0, s[np.searchsorted(t, times, side="right") - 1], 1.0)
    expected = integrated_brier_score(
        Surv.from_arrays(train["event"], train["time"]),
        Surv.from_arrays(part["event"], part["time"]),
        np.tile(km, (len(part), 1)),
        times,
    )
    assert m["folds"]["1"]["ibs_null_km"]["value"] == pytest.approx(expected, rel=1e-9)
    assert m["across_folds"]["ibs_null_km"]["n_folds"] == 3
