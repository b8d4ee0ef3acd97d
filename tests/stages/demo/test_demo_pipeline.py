"""`healnet demo` orchestration: steps run as real commands, failures stop with the command and its
output, the output folder is protected, the cohort is reused on a rerun; and, at reduced size, the
whole demo runs end to end through the real CLI and produces a report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.core.errors import InputError
from healnet_cli.stages.demo.plan import DemoConfig, plan_steps, required_commands
from healnet_cli.stages.demo.results import collect_cindex, find_report, mean_harrell
from healnet_cli.stages.demo.run import ensure_cohort, run_demo
from healnet_cli.stages.demo.steps import DemoStepError, Step, child_env, run_step

FAKE_HEALNET = """
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("running", sys.argv[1])
if sys.argv[1] == os.environ.get("FAKE_FAIL"):
    print("error: something broke in", sys.argv[1], file=sys.stderr)
    sys.exit(2)
"""

SMALL = {"n_patients": 12, "slide_px": 1024, "epochs": 2, "folds": 2, "bootstrap": 20}


@pytest.fixture
def fake_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    script = tmp_path / "fake_healnet.py"
    script.write_text(FAKE_HEALNET)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    return [sys.executable, str(script)], log


def _config(tmp_path: Path, **kw) -> DemoConfig:
    return DemoConfig(out_dir=tmp_path / "demo", **{**SMALL, "slide_px": 512, **kw})


def test_plan_calls_the_pipeline_in_order(tmp_path: Path) -> None:
    config = _config(tmp_path)
    cohort = ensure_cohort(config)
    steps = plan_steps(config, cohort)
    commands = [s.argv[0] for s in steps]
    assert commands == ["tile", "extract", "omics", "cohort", "train", "train", "train", "evaluate"]
    assert set(commands) == set(required_commands())
    trains = [s.argv for s in steps if s.argv[0] == "train"]
    assert [a[a.index("--modalities") + 1] for a in trains] == ["wsi,rna", "wsi", "rna"]
    assert all(a[a.index("--folds") + 1] == "2" and a[a.index("--epochs") + 1] == "2" for a in trains)
    assert "--ablate" in steps[-1].argv and "stain-texture" in steps[1].argv


def test_runs_every_step_and_stops_at_a_failure(tmp_path: Path, fake_launcher, monkeypatch) -> None:
    launcher, log = fake_launcher
    lines: list[str] = []
    monkeypatch.setenv("FAKE_FAIL", "train")
    with pytest.raises(DemoStepError) as info:
        run_demo(_config(tmp_path), available_commands=required_commands(), progress=lines.append, launcher=launcher)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[0] for c in calls] == ["tile", "extract", "omics", "cohort", "train"]  # stopped at the failure
    result = info.value.result
    assert result.returncode == 2 and result.step.name == "train-wsi_rna"
    assert "healnet train --workdir" in str(info.value)
    assert any("something broke in train" in line for line in result.output_tail)
    assert result.log_path.is_file()
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["steps"][-1]["exit_code"] == 2
    assert summary["config"] == {
        **SMALL,
        "slide_px": 512,
        "seed": 0,
    }  # what shapes the figures (docs/demo_results.json)
    assert any(line.startswith("[5/8] train-wsi_rna") for line in lines)


def test_cli_prints_failing_command_and_output(tmp_path: Path, fake_launcher, monkeypatch) -> None:
    from healnet_cli.cli import build_app
    from healnet_cli.stages.demo import run as demo_run

    launcher, _ = fake_launcher
    monkeypatch.setenv("FAKE_FAIL", "extract")
    original = demo_run.run_demo
    monkeypatch.setattr(demo_run, "run_demo", lambda cfg, **kw: original(cfg, **{**kw, "launcher": launcher}))
    args = ["demo", "--out", str(tmp_path / "d"), "--patients", "8", "--slide-px", "512", "--folds", "2"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 1
    assert "step 'extract' failed with exit code 2" in result.output
    assert "healnet extract --workdir" in result.output
    assert "something broke in extract" in result.output


def test_missing_command_fails_before_any_work(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(InputError, match="evaluate"):
        run_demo(
            config, available_commands=[c for c in required_commands() if c != "evaluate"], progress=lambda _: None
        )
    assert not config.out_dir.exists()


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match="not empty"):
        run_demo(DemoConfig(out_dir=out, **SMALL), available_commands=required_commands(), progress=lambda _: None)
    assert (out / "thesis.docx").read_text() == "precious"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patients": 4}, "--patients"),
        ({"folds": 1}, "--folds"),
        ({"epochs": 0}, "--epochs"),
        ({"n_patients": 8, "folds": 5}, "too few"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        DemoConfig(out_dir=tmp_path, **{**SMALL, **kwargs})


def test_cohort_is_reused_when_parameters_match(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.out_dir.mkdir()
    first = ensure_cohort(config)
    stamp = (first.slides_dir / "DEMO-0001-01.tif").stat().st_mtime_ns
    again = ensure_cohort(config)
    assert again == first and (first.slides_dir / "DEMO-0001-01.tif").stat().st_mtime_ns == stamp
    other = ensure_cohort(DemoConfig(out_dir=config.out_dir, **{**SMALL, "slide_px": 512, "seed": 1}))
    assert other.n_patients == 12 and (first.slides_dir / "DEMO-0001-01.tif").stat().st_mtime_ns != stamp


def test_child_environment_is_offline_and_isolated() -> None:
    env = child_env({"HEALNET_CONFIG": "x.yaml", "HEALNET_TRAIN_EPOCHS": "99", "HEALNET_DEBUG": "1", "PATH": "/bin"})
    assert env["HF_HUB_OFFLINE"] == "1" and env["HEALNET_DEBUG"] == "1" and env["PATH"] == "/bin"
    assert "HEALNET_CONFIG" not in env and "HEALNET_TRAIN_EPOCHS" not in env


def test_run_step_reports_a_missing_program(tmp_path: Path) -> None:
    result = run_step(Step("x", ("tile",)), log_path=tmp_path / "x.log", launcher=[str(tmp_path / "nope")])
    assert result.returncode == 127 and "cannot start" in result.log_path.read_text()


def test_results_readers(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "wsi_rna" / "evaluation"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"across_folds": {"harrell_c": {"mean": 0.71, "sd": 0.02}}}))
    (run / "report.html").write_text("<html></html>")
    assert collect_cindex(tmp_path / "runs", ["wsi_rna", "wsi"]) == {"wsi_rna": 0.71, "wsi": None}
    assert find_report(tmp_path / "runs", ["wsi_rna"]) == run / "report.html"
    comparison = tmp_path / "runs" / "comparison"
    comparison.mkdir()
    (comparison / "report.html").write_text("<html></html>")
    assert find_report(tmp_path / "runs", ["wsi_rna"]) == run / "report.html"  # the run's full report first
    assert find_report(tmp_path / "runs", ["absent"]) == comparison / "report.html"
    assert mean_harrell({"pooled": {"harrell_c": {"value": float("nan")}}}) is None


def test_demo_end_to_end_small(tmp_path: Path) -> None:
    """The real pipeline, every step a real `healnet` subprocess, at toy size."""
    from healnet_cli.cli import build_app

    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--patients",
        "12",
        "--slide-px",
        "1024",
        "--epochs",
        "2",
        "--folds",
        "2",
        "--bootstrap",
        "20",
        "--json",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo.json").read_text())
    assert [s["name"] for s in summary["steps"]][:4] == ["tile", "extract", "omics", "cohort"]
    assert all(s["exit_code"] == 0 for s in summary["steps"])
    report = Path(summary["report"])
    assert report.is_file() and report.read_text().lstrip().lower().startswith("<!doctype html")
    assert set(summary["cindex"]) == {"wsi_rna", "wsi", "rna"}
    assert all(v is None or 0.0 <= v <= 1.0 for v in summary["cindex"].values())
    assert "total seconds" in result.output and "report:" in result.output
    assert not (out / "cohort" / "slides").exists()  # bulk removed without --keep
    assert (out / "runs" / "wsi_rna" / "predictions.parquet").is_file()


def test_rerun_retrains_from_scratch_and_keeps_the_cohort(tmp_path: Path, fake_launcher) -> None:
    launcher, log = fake_launcher
    config = _config(tmp_path, keep=True)
    first = run_demo(config, available_commands=required_commands(), progress=lambda _: None, launcher=launcher)
    stale = config.runs_dir / "wsi_rna" / "old.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from the previous demo")
    slide = first.cohort.slides_dir / "DEMO-0001-01.tif"
    before = slide.stat().st_mtime_ns
    second = run_demo(config, available_commands=required_commands(), progress=lambda _: None, launcher=launcher)
    assert not stale.exists()  # `healnet train` refuses an existing run folder: the demo starts runs afresh
    assert slide.stat().st_mtime_ns == before  # same cohort reused, so tile/extract caches stay valid
    assert len(second.steps) == 8 and second.cindex == {"wsi_rna": None, "wsi": None, "rna": None}
    assert second.report is None
