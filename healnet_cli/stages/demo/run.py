"""``healnet demo``: build the demo cohort, then run the real pipeline on it, command by command.

Layout of the demo folder (``--out``, default ``./demo_out``)::

    cohort/          the generated slides and tables (cohort.json records how they were made)
    work/            the workspace: tiles/, features/stain-texture/, omics/
    runs/<name>/     one training run per modality set (wsi_rna, wsi, rna), each with evaluation/
    runs/comparison/ the three runs compared: report.html, summary.md, comparison.json
    logs/NN-<step>.log   the full output of every command
    demo.json        the steps, their timings and the c-indices

Without ``--keep`` the slides, tiles and features (the bulk of the disk use) are deleted at the end;
with it, a rerun reuses the cohort and the stages skip their fresh items (the runs are retrained).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError
from healnet_cli.stages.demo.cohort import DemoCohort, build_demo_cohort
from healnet_cli.stages.demo.plan import MARKER, RUNS, DemoConfig, plan_steps, required_commands
from healnet_cli.stages.demo.results import ablation_table, collect_cindex, find_report
from healnet_cli.stages.demo.steps import DemoStepError, StepResult, run_step


@dataclass
class DemoResult:
    """What a demo produced: the per-step results, the total time, the report and the c-indices."""

    out_dir: Path
    cohort: DemoCohort
    steps: list[StepResult] = field(default_factory=list)
    cohort_seconds: float = 0.0
    total_seconds: float = 0.0
    report: Path | None = None
    cindex: dict[str, float | None] = field(default_factory=dict)
    ablation: dict[str, float | None] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # what shapes the numbers: seed, size, training

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "config": self.config,
            "cohort": self.cohort.summary(),
            "cohort_seconds": round(self.cohort_seconds, 2),
            "steps": [
                {
                    "name": r.step.name,
                    "command": r.step.command,
                    "seconds": round(r.seconds, 2),
                    "exit_code": r.returncode,
                }
                for r in self.steps
            ],
            "total_seconds": round(self.total_seconds, 2),
            "report": str(self.report) if self.report else None,
            "cindex": self.cindex,
            "ablation": self.ablation,
        }


Progress = Callable[[str], None]


def check_commands(available: Sequence[str]) -> None:
    """Fail before any work when this installation lacks a command the demo needs."""
    missing = [c for c in required_commands() if c not in set(available)]
    if missing:
        raise InputError(
            f"healnet demo needs the command(s) {', '.join(missing)}, which this installation lacks "
            f"(`healnet --help` lists the available ones); update healnet"
        )


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``, refusing a non-empty folder that is not a previous demo."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise InputError(
            f"--out {out_dir}: folder is not empty and was not made by `healnet demo`; choose an empty or new folder"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / MARKER, "made by `healnet demo`; safe to delete\n")


def ensure_cohort(config: DemoConfig) -> DemoCohort:
    """Build the cohort, or reuse the one in ``cohort/`` when it was made with the same parameters
    (its files keep their fingerprints, so the stages' caches stay valid on a rerun)."""
    folder = config.cohort_dir
    stamp = folder / "cohort.json"
    params = config.cohort_params()
    if stamp.is_file():
        try:
            saved = json.loads(stamp.read_text())
        except (OSError, ValueError):
            saved = None
        if saved and saved.get("params") == params and all((folder / p).exists() for p in saved.get("files", [])):
            fields: dict[str, Any] = {
                k: (Path(v) if k.endswith(("dir", "csv", "root")) else v) for k, v in saved["cohort"].items()
            }
            return DemoCohort(**fields)
    if folder.exists():
        shutil.rmtree(folder)
    cohort = build_demo_cohort(folder, n_patients=config.n_patients, seed=config.seed, slide_px=config.slide_px)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    payload = {
        "params": params,
        "files": files,
        "cohort": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cohort).items()},
    }
    atomic.write_json(stamp, payload)
    return cohort


def run_demo(
    config: DemoConfig,
    *,
    available_commands: Sequence[str],
    progress: Progress = print,
    launcher: Sequence[str] | None = None,
) -> DemoResult:
    """Build the cohort and run every pipeline step; raise :class:`DemoStepError` at the first failure.

    Parameters
    ----------
    config
        The demo's options.
    available_commands
        The commands of this installation (checked before any work).
    progress
        Receives one line per event (step start, step end).
    launcher
        Program prefix of the steps (default ``python -m healnet_cli``).

    Returns
    -------
    DemoResult
    """
    check_commands(available_commands)
    prepare_out_dir(config.out_dir)
    start = time.perf_counter()
    progress(f"[cohort] building {config.n_patients} synthetic patients in {config.cohort_dir}")
    cohort = ensure_cohort(config)
    result = DemoResult(
        config.out_dir, cohort, cohort_seconds=time.perf_counter() - start, config=_numbers_config(config)
    )
    progress(f"         {cohort.summary()}  ({result.cohort_seconds:.1f} s)")
    steps = plan_steps(config, cohort)
    if config.runs_dir.exists():  # runs of a previous demo: retrained (tiles and features stay cached)
        shutil.rmtree(config.runs_dir)
    for index, step in enumerate(steps, start=1):
        progress(f"[{index}/{len(steps)}] {step.name}: {step.what}\n         $ {step.command}")
        log = config.out_dir / "logs" / f"{index:02d}-{step.name}.log"
        outcome = run_step(step, log_path=log, launcher=launcher, cwd=config.out_dir)
        result.steps.append(outcome)
        if outcome.returncode != 0:
            result.total_seconds = time.perf_counter() - start
            _write_summary(config, result)
            raise DemoStepError(outcome)
        progress(f"         done in {outcome.seconds:.1f} s")
    result.total_seconds = time.perf_counter() - start
    result.cindex = collect_cindex(config.runs_dir, RUNS)
    result.ablation = ablation_table(config.runs_dir, next(iter(RUNS)))
    result.report = find_report(config.runs_dir, RUNS)
    if not config.keep:
        _remove_bulk(config)
    _write_summary(config, result)
    return result


def _numbers_config(config: DemoConfig) -> dict[str, Any]:
    """The options that determine the demo's figures (not where it writes or what it keeps)."""
    return {k: v for k, v in asdict(config).items() if k not in ("out_dir", "keep")}


def _write_summary(config: DemoConfig, result: DemoResult) -> None:
    atomic.write_json(config.out_dir / "demo.json", result.as_dict())


def _remove_bulk(config: DemoConfig) -> None:
    """Delete the slides, tiles and features (the bulk of the demo's disk use); keep tables, runs, report."""
    for folder in (config.cohort_dir / "slides", config.work_dir / "tiles", config.work_dir / "features"):
        if folder.is_dir():
            shutil.rmtree(folder)
    stamp = config.cohort_dir / "cohort.json"
    if stamp.exists():
        os.remove(stamp)  # the cohort is incomplete now: a rerun rebuilds it
