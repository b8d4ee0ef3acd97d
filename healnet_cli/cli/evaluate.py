"""``healnet evaluate``: metrics, figures and an HTML report from one or more run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import ConfigOpt, DeviceOpt, JsonOpt, app_state, cli_errors, make_console, resolved_options

ORDER = 50


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        ctx: typer.Context,
        run_dirs: Annotated[
            list[Path],
            typer.Argument(
                help="Run folder(s) written by `healnet train` (or run names under <workdir>/runs).", show_default=False
            ),
        ],
        config: ConfigOpt = None,
        bootstrap: Annotated[
            int, typer.Option("--bootstrap", help="Bootstrap resamples for 95% CIs and paired tests (0 = none).")
        ] = 1000,
        groups: Annotated[
            int, typer.Option("--groups", help="Risk groups for the KM plot: 2 = median split, 3 = tertiles.")
        ] = 2,
        times: Annotated[
            str | None,
            typer.Option(
                "--times",
                help="Evaluation times T1,T2,... (label time units); default: see docs/evaluate.md.",
                show_default=False,
            ),
        ] = None,
        ablate: Annotated[
            bool,
            typer.Option(
                "--ablate", help="Re-predict test patients with each modality removed, and a random half removed."
            ),
        ] = False,
        attention: Annotated[
            bool,
            typer.Option(
                "--attention/--no-attention", help="Top omics features and WSI heatmaps from the model's weights."
            ),
        ] = True,
        top_k_genes: Annotated[int, typer.Option("--top-k-genes", help="Features listed per omics modality.")] = 20,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and the random-half ablation.")] = 0,
        workdir: Annotated[
            Path | None,
            typer.Option(
                "--workdir",
                "-w",
                envvar="HEALNET_WORKDIR",
                help="Workspace with tiles/, features/, omics/ (default: the run's).",
                show_default=False,
            ),
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Output folder (one run: instead of RUN/evaluation; several: the comparison).",
                show_default=False,
            ),
        ] = None,
        device: DeviceOpt = "cpu",
        batch_size: Annotated[
            int, typer.Option("--batch-size", help="Patients per forward pass (ablation / attention).")
        ] = 8,
        json_output: JsonOpt = False,
    ) -> None:
        """Score run folders: Harrell/Uno c-index, IBS, td-AUC with bootstrap CIs, KM risk groups,
        calibration, optional missing-modality ablation and attention maps.

        Writes RUN/evaluation/{metrics.json, *.png, summary.md, report.html}. Several runs: a
        comparison table and paired bootstrap tests (in --out or the first run's
        evaluation/comparison/). Exit 0 ok, 3 some folds or metric groups missing (report written), 2 bad run folder.
        """
        from healnet_cli.core.workspace import Workspace
        from healnet_cli.stages.evaluate.config import EvaluateConfig, parse_times
        from healnet_cli.stages.evaluate.run import evaluate_runs

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            cfg = EvaluateConfig(
                bootstrap=bootstrap,
                groups=groups,
                times=parse_times(times),
                ablate=ablate,
                attention=attention,
                top_k_genes=top_k_genes,
                seed=seed,
                workdir=workdir,
                out=out,
                device=device,
                batch_size=batch_size,
            )
            values, sources = resolved_options(ctx)
            runs = [Workspace.at(workdir).find_run(r) for r in run_dirs]
            outcome = evaluate_runs(
                runs, cfg, console=console, options=values, sources=sources, debug=app_state(ctx).debug
            )
            if json_output:
                console.emit_json(outcome.as_dict())
        if outcome.exit_code:
            raise typer.Exit(outcome.exit_code)
