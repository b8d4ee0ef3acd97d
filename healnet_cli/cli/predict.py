"""``healnet predict``: apply a trained run to the patients of another workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import ConfigOpt, DeviceOpt, JsonOpt, WorkdirOpt, cli_errors, make_console, resolved_options

ORDER = 45


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        ctx: typer.Context,
        run: Annotated[
            Path,
            typer.Argument(
                help="Run folder written by `healnet train` (or a run name under <workdir>/runs).", show_default=False
            ),
        ],
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", "-o", help="Output folder [default: <workdir>/predictions/<run name>].", show_default=False
            ),
        ] = None,
        model: Annotated[
            str,
            typer.Option(
                "--model",
                help="folds: the fold ensemble (or one fold with --fold); refit: the model of `train --refit-all`.",
            ),
        ] = "folds",
        fold: Annotated[
            int | None, typer.Option("--fold", help="Predict with fold K's model only.", show_default=False)
        ] = None,
        modalities: Annotated[
            str | None,
            typer.Option(
                "--modalities",
                "-m",
                help="The run's modalities to use (default: every one the workspace has).",
                show_default=False,
            ),
        ] = None,
        extractor: Annotated[
            str | None,
            typer.Option(
                "--extractor",
                help="Features folder of the workspace (default: the run's, else the only one).",
                show_default=False,
            ),
        ] = None,
        min_feature_overlap: Annotated[
            float,
            typer.Option(
                "--min-feature-overlap",
                help=(
                    "Smallest share of the run's omics features the external tables must have (the rest are imputed "
                    "with the training medians)."
                ),
            ),
        ] = 0.8,
        device: DeviceOpt = "cpu",
        batch_size: Annotated[int, typer.Option("--batch-size", help="Patients per forward pass.")] = 8,
        json_output: JsonOpt = False,
    ) -> None:
        """Predict every patient of --workdir that has one of the run's modalities (external validation).

        Checks first that the WSI features come from the run's extractor, weights and patch size and
        that the omics tables hold enough of the run's features (exit 2 otherwise). Writes
        predictions.parquet (the run's out-of-fold columns; time/event where labels exist) and
        predict.json (run, members, coverage, imputed features, warnings, patients shared with the
        training cohort). Score them with `healnet evaluate OUT`.
        """
        import os

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: idle threads sleep (see `train`)
        from healnet_cli.core.workspace import Workspace
        from healnet_cli.stages.predict.config import PredictConfig, parse_modalities
        from healnet_cli.stages.predict.run import run_predict

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            cfg = PredictConfig(
                run=Workspace.at(workdir).find_run(run),
                workdir=Path(workdir),
                out=out,
                model=model,
                fold=fold,
                modalities=parse_modalities(modalities),
                extractor=extractor,
                min_feature_overlap=min_feature_overlap,
                device=device,
                batch_size=batch_size,
            )
            values, _ = resolved_options(ctx)
            code, record = run_predict(cfg, console, options=values)
            if json_output:
                console.emit_json(record)
        if code != 0:
            raise typer.Exit(code)
