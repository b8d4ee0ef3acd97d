"""``healnet omics TABLE...`` and ``healnet omics labels TABLE``: omics / clinical tables into
per-modality Parquet files and survival labels in ``<workdir>/omics/``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from healnet_cli.cli.common import (
    ConfigOpt,
    ForceOpt,
    JsonOpt,
    OnErrorOpt,
    WorkdirOpt,
    check_on_error,
    cli_errors,
    make_console,
    reflow_help,
    resolved_options,
)

ORDER = 30


class _TablesOrSubcommand(TyperGroup):
    """A group whose callback takes the tables: ``omics TABLE...`` runs the callback, while
    ``omics labels ...`` (a sub-command name first) goes to the sub-command untouched. Options may
    come before or after the tables."""

    allow_interspersed_args = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow_help(self.help)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            super().parse_args(ctx, [])
            ctx._protected_args, ctx.args = [args[0]], list(args[1:])
            return ctx.args
        return super().parse_args(ctx, args)


TablesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Omics / clinical tables (CSV, TSV, TXT, .gz, .zip, Parquet). NAME=PATH names the table's modality.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    omics_app = typer.Typer(
        cls=_TablesOrSubcommand,
        invoke_without_command=True,
        add_completion=False,
        subcommand_metavar="| omics labels TABLE ...",
    )

    @omics_app.callback()
    def omics(
        ctx: typer.Context,
        config: ConfigOpt = None,
        tables: TablesArg = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        modality: Annotated[
            str | None,
            typer.Option("--modality", help="Name the whole table one modality (e.g. rna).", show_default=False),
        ] = None,
        group: Annotated[
            list[str] | None,
            typer.Option(
                "--group",
                help="NAME=REGEX: columns matching REGEX form modality NAME (repeatable).",
                show_default=False,
            ),
        ] = None,
        id_col: Annotated[
            str | None,
            typer.Option(
                "--id-col", help="Column holding the sample / patient ids (default: detected).", show_default=False
            ),
        ] = None,
        orientation: Annotated[
            str, typer.Option("--orientation", help="auto, samples-by-features or features-by-samples.")
        ] = "auto",
        log1p: Annotated[
            bool, typer.Option("--log1p", help="log(1 + x) of non-negative counts (all modalities but clinical).")
        ] = False,
        sample_type: Annotated[
            str,
            typer.Option(
                "--sample-type",
                help="TCGA sample types kept where sample barcodes are given (01 = primary tumour; '01,03'; 'all').",
            ),
        ] = "01",
        max_levels: Annotated[
            int,
            typer.Option(
                "--max-levels",
                help="Clinical text columns with more distinct values are dropped, not one-hot encoded.",
                min=1,
            ),
        ] = 50,
        clinical_columns: Annotated[
            str,
            typer.Option(
                "--clinical-columns",
                help="Clinical covariates kept, comma-separated: roles (age, sex, stage, grade, site = centre) "
                "and/or column names, or all / none. Centre (site) columns only on request.",
            ),
        ] = "age,sex,stage,grade",
        force: ForceOpt = False,
        on_error: OnErrorOpt = "continue",
        json_output: JsonOpt = False,
    ) -> None:
        """Omics and clinical tables into omics/<modality>.parquet and omics/labels.parquet.

        Wide tables (*_all_clean.csv): _rnaseq → rna, _cnv → cnv, _mut → mut; age, sex, stage, grade → clinical.

        survival_months + censorship (or OS.time + OS) → labels. Report: omics/report.json.

        Cleaning is stateless; scaling, imputation and selection are fitted per fold by `healnet train`.
        """
        if ctx.invoked_subcommand is not None:
            return
        from healnet_cli.core.config import write_resolved_config
        from healnet_cli.core.runner import report
        from healnet_cli.core.workspace import Workspace
        from healnet_cli.stages.omics import OmicsConfig, TableSpec, run_omics
        from healnet_cli.stages.omics.config import parse_groups, parse_sample_types

        with cli_errors(ctx):
            if not tables:
                typer.echo(ctx.get_help(), err=True)
                raise typer.Exit(2)
            if tables[0] == "labels":
                from healnet_cli.core.errors import InputError

                raise InputError(
                    "`labels` must come right after `omics`: healnet omics labels TABLE --time-col C --event-col C"
                )
            console = make_console(ctx, json_output=json_output)
            cfg = OmicsConfig(
                modality=modality,
                groups=parse_groups(group),
                id_col=id_col,
                orientation=orientation,
                log1p=log1p,
                sample_types=parse_sample_types(sample_type),
                max_levels=max_levels,
                clinical_columns=clinical_columns,
                tables=tuple(TableSpec.parse(t) for t in tables),
            )
            workspace = Workspace.at(workdir)
            status = run_omics(cfg, workspace=workspace, console=console, force=force,
                               on_error=check_on_error(on_error), debug=_debug(ctx))  # fmt: skip
            values, sources = resolved_options(ctx)
            write_resolved_config(workspace.omics_dir, values, command="omics", sources=sources)
            code = report(status, console, folder=workspace.omics_dir)
        if code:
            raise typer.Exit(code)

    @omics_app.command("labels")
    def labels(
        ctx: typer.Context,
        config: ConfigOpt = None,
        table: Annotated[
            Path,
            typer.Argument(help="Clinical table with one row per patient (or sample / slide).", show_default=False),
        ] = ...,  # type: ignore[assignment]
        time_col: Annotated[
            str, typer.Option("--time-col", help="Survival / follow-up time column (> 0).", show_default=False)
        ] = ...,  # type: ignore[assignment]
        event_col: Annotated[
            str | None,
            typer.Option("--event-col", help="Event column: 1 / True / dead = event observed.", show_default=False),
        ] = None,
        censor_col: Annotated[
            str | None,
            typer.Option(
                "--censor-col", help="Censoring column: 1 / True = censored (e.g. censorship).", show_default=False
            ),
        ] = None,
        id_col: Annotated[
            str | None,
            typer.Option("--id-col", help="Patient id column (default: detected, e.g. case_id).", show_default=False),
        ] = None,
        time_unit: Annotated[
            str, typer.Option("--time-unit", help="Unit of the times, recorded in the labels (months, days, years).")
        ] = "months",
        status_as_is: Annotated[
            bool,
            typer.Option(
                "--status-as-is",
                help=(
                    "Read --event-col / --censor-col as the option says even when the column's name says the "
                    "opposite (e.g. --event-col censorship)."
                ),
            ),
        ] = False,
        workdir: WorkdirOpt = Path("healnet_work"),
        force: ForceOpt = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Survival labels (time > 0, event) per patient into omics/labels.parquet.

        Rows with a missing, negative or zero time or a non-binary event are rejected and listed in
        omics/labels_report.json.

        The labels belong to this command from then on: `healnet omics TABLE` leaves them alone. Replacing labels that
        `healnet omics TABLE` built needs --force.
        """
        from healnet_cli.core.config import write_resolved_config
        from healnet_cli.core.runner import report
        from healnet_cli.core.workspace import Workspace
        from healnet_cli.stages.omics import LabelsConfig, run_labels

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            cfg = LabelsConfig(
                time_col=time_col,
                event_col=event_col,
                censor_col=censor_col,
                id_col=id_col,
                time_unit=time_unit,
                status_as_is=status_as_is,
            )
            workspace = Workspace.at(workdir)
            status = run_labels(Path(table), cfg, workspace=workspace, console=console, force=force, debug=_debug(ctx))
            values, sources = resolved_options(ctx)
            write_resolved_config(
                workspace.omics_dir, values, command="omics labels", sources=sources, name="labels_config.yaml"
            )
            code = report(status, console)
        if code:
            raise typer.Exit(code)

    app.add_typer(omics_app, name="omics")


def _debug(ctx: typer.Context) -> bool:
    from healnet_cli.cli.common import app_state

    return app_state(ctx).debug
