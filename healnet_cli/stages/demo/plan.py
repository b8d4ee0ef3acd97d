"""The demo's options and the pipeline it runs: the exact ``healnet`` commands, in order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.run import COMPARISON_DIR
from healnet_cli.core.errors import InputError
from healnet_cli.stages.demo.cohort import DemoCohort
from healnet_cli.stages.demo.steps import Step

MARKER = ".healnet-demo"
EXTRACTOR = "stain-texture"
MODEL = "healnet"
#: Small-cohort training settings: with ~26 training patients per fold, an inner validation set of
#: 4 patients is too noisy for early stopping, so every fold trains a fixed number of epochs; and
#: per-sample modality dropout teaches the fused model to use each modality on its own too (it
#: changes nothing for a single-modality run, where the only modality is never dropped).
TRAIN_OPTIONS = ("--val-fraction", "0", "--batch-size", "8", "--lr", "3e-3", "--modality-dropout", "0.3")
#: Training runs the demo compares: run folder name -> modalities.
RUNS: dict[str, str] = {"wsi_rna": "wsi,rna", "wsi": "wsi", "rna": "rna"}


@dataclass(frozen=True)
class DemoConfig:
    """Options of ``healnet demo``.

    Attributes
    ----------
    out_dir
        Demo folder (cohort, workspace, runs, logs).
    n_patients, seed, slide_px
        Size, seed and level-0 slide side of the generated cohort.
    epochs, folds
        Training epochs per fold and cross-validation folds.
    bootstrap
        Bootstrap resamples for the confidence intervals of ``healnet evaluate``.
    keep
        Keep the slides, tiles and features after the run (else only tables, runs and reports stay).
    """

    out_dir: Path = Path("demo_out")
    n_patients: int = 40
    seed: int = 0
    epochs: int = 30
    folds: int = 3
    slide_px: int = 2048
    bootstrap: int = 200
    keep: bool = False

    def __post_init__(self) -> None:
        if self.n_patients < 6:
            raise InputError(f"--patients {self.n_patients}: use at least 6 (the default is 40)")
        if self.folds < 2:
            raise InputError(f"--folds {self.folds}: cross-validation needs at least 2 folds")
        if self.n_patients < 3 * self.folds:
            raise InputError(
                f"--patients {self.n_patients} is too few for --folds {self.folds}; use at least {3 * self.folds}"
            )
        if self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: train at least 1 epoch")
        if self.slide_px < 512:
            raise InputError(f"--slide-px {self.slide_px}: use at least 512")
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap {self.bootstrap} must be >= 0")

    @property
    def cohort_dir(self) -> Path:
        return self.out_dir / "cohort"

    @property
    def work_dir(self) -> Path:
        return self.out_dir / "work"

    @property
    def runs_dir(self) -> Path:
        return self.out_dir / "runs"

    def cohort_params(self) -> dict[str, Any]:
        return {"n_patients": self.n_patients, "seed": self.seed, "slide_px": self.slide_px, "version": 1}


def required_commands() -> tuple[str, ...]:
    """Top-level commands the demo calls."""
    return ("tile", "extract", "omics", "cohort", "train", "evaluate")


def plan_steps(config: DemoConfig, cohort: DemoCohort) -> list[Step]:
    """The demo pipeline as ``healnet`` commands (paths absolute, so a log line can be rerun as is)."""
    work = str(config.work_dir.resolve())
    runs = config.runs_dir.resolve()
    steps = [
        Step(
            "tile",
            ("tile", "--slides-csv", str(cohort.slides_csv.resolve()), "--workdir", work),
            "tissue detection and a 256 px patch grid at 0.5 µm/px",
        ),
        Step(
            "extract",
            ("extract", "--workdir", work, "--extractor", EXTRACTOR),
            "colour-deconvolution and texture features per patch (no weights needed)",
        ),
        Step(
            "omics",
            ("omics", str(cohort.table_csv.resolve()), "--workdir", work),
            "RNA / CNV tables and survival labels into per-modality Parquet",
        ),
        Step("cohort", ("cohort", "--workdir", work), "which patient has which modality"),
    ]
    for name, modalities in RUNS.items():
        steps.append(
            Step(
                f"train-{name}",
                (
                    "train",
                    "--workdir",
                    work,
                    "--modalities",
                    modalities,
                    "--model",
                    MODEL,
                    "--extractor",
                    EXTRACTOR,
                    "--folds",
                    str(config.folds),
                    "--seed",
                    str(config.seed),
                    "--epochs",
                    str(config.epochs),
                    *TRAIN_OPTIONS,
                    "--out",
                    str(runs / name),
                ),
                f"{MODEL} on {modalities}, {config.folds}-fold cross-validation",
            )
        )
    run_dirs = [str(runs / name) for name in RUNS]
    steps.append(
        Step(
            "evaluate",
            (
                "evaluate",
                *run_dirs,
                "--ablate",
                "--bootstrap",
                str(config.bootstrap),
                "--out",
                str(runs / COMPARISON_DIR),
            ),
            "metrics, missing-modality ablation, comparison of the runs, HTML report",
        )
    )
    return steps
