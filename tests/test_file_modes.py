"""Every file and folder the tile → extract → omics → cohort → train → evaluate chain writes gets
the mode the user's umask gives (lab-mates sharing a project folder can read the outputs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.stages.demo.plan import RUNS, DemoConfig, plan_steps
from healnet_cli.stages.demo.run import ensure_cohort

UMASK = 0o027  # group may read, others nothing: neither the default 0644 nor mkstemp's 0600


@pytest.fixture
def umask_027():
    old = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(old)


def test_the_whole_chain_writes_files_with_the_umask_mode(tmp_path: Path, umask_027: None, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = DemoConfig(out_dir=tmp_path / "demo", n_patients=12, slide_px=512, epochs=1, folds=2, bootstrap=5)
    cohort = ensure_cohort(config)
    work = config.work_dir
    first_run = next(iter(RUNS))
    steps = [s for s in plan_steps(config, cohort) if not s.name.startswith("train") or s.name == f"train-{first_run}"]
    for step in steps:
        argv = list(step.argv)
        if step.name == "evaluate":
            argv = ["evaluate", str(config.runs_dir / first_run), "--bootstrap", "5"]
        result = CliRunner().invoke(build_app(), argv)
        assert result.exit_code == 0, (step.command, result.output)
    written = [p for root in (work, config.runs_dir) for p in (root, *root.rglob("*")) if not p.is_symlink()]
    wrong = {
        str(p): oct(stat.S_IMODE(p.stat().st_mode))
        for p in written
        if stat.S_IMODE(p.stat().st_mode) != (0o777 if p.is_dir() else 0o666) & ~UMASK
    }
    assert not wrong, wrong
    names = {p.suffix for p in written} | {p.name for p in written}
    assert {".parquet", ".safetensors", ".png", ".pt", "report.html", "status.csv", "config.yaml"} <= names
