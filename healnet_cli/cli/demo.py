"""``healnet demo``: the whole pipeline on a generated cohort, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import ConfigOpt, JsonOpt, cli_errors, make_console, resolved_options

ORDER = 60


def _fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a"


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        ctx: typer.Context,
        config: ConfigOpt = None,
        out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder: cohort, workspace, runs, logs.")] = Path(
            "demo_out"
        ),
        patients: Annotated[int, typer.Option("--patients", min=6, help="Patients in the generated cohort.")] = 40,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the cohort and of the training folds.")] = 0,
        epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs per fold.")] = 30,
        folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 3,
        slide_px: Annotated[
            int, typer.Option("--slide-px", min=512, help="Level-0 width of the demo slides in pixels (0.5 µm/px).")
        ] = 2048,
        bootstrap: Annotated[
            int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the report's confidence intervals.")
        ] = 200,
        keep: Annotated[
            bool, typer.Option("--keep", help="Keep slides, tiles and features afterwards (a rerun is then cached).")
        ] = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Generate a synthetic cohort and run tile, extract, omics, train and evaluate on it.

        No network and no data needed: slides composed from the IHC image that ships with
        scikit-image, RNA/CNV tables and survival drawn from a known hazard that depends on both
        the slide and the RNA. Each step is the real `healnet` command in a subprocess (output in
        OUT/logs/). Three runs (wsi+rna, wsi, rna) show what fusing the modalities adds. Prints
        the step times, the c-indices and the path of the HTML report.
        """
        from healnet_cli.core.config import write_resolved_config
        from healnet_cli.stages.demo.plan import DemoConfig
        from healnet_cli.stages.demo.run import run_demo
        from healnet_cli.stages.demo.steps import DemoStepError

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            cfg = DemoConfig(
                out_dir=out,
                n_patients=patients,
                seed=seed,
                epochs=epochs,
                folds=folds,
                slide_px=slide_px,
                bootstrap=bootstrap,
                keep=keep,
            )
            available = sorted(getattr(ctx.find_root().command, "commands", {}) or {})
            try:
                result = run_demo(cfg, available_commands=available, progress=console.info)
            except DemoStepError as exc:
                console.error(str(exc))
                for line in exc.result.output_tail:
                    console.error(f"  | {line}")
                raise typer.Exit(1) from None
            values, sources = resolved_options(ctx)
            write_resolved_config(out, values, command="demo", sources=sources)
            console.info("")
            console.info("mean Harrell c-index over folds (higher is better; 0.5 = chance):")
            for name, value in result.cindex.items():
                console.info(f"  trained on {name.replace('_', '+'):<8} {_fmt(value)}")
            if result.ablation:
                console.info("the wsi+rna model with modalities removed at test time:")
                for condition, value in result.ablation.items():
                    console.info(f"  {condition:<16} {_fmt(value)}")
            console.info(f"total seconds: {result.total_seconds:.1f}")
            if result.report is not None:
                console.info(f"report: {result.report.resolve()}")
                comparison = result.report.parents[2] / "comparison" / "report.html"
                if comparison.is_file() and comparison != result.report:
                    console.info(f"comparison of the runs: {comparison.resolve()}")
            else:
                console.warn("no report.html was found in the runs; see the evaluate log in " + str(out / "logs"))
            if json_output:
                console.emit_json(result.as_dict())
