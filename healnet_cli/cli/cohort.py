"""``healnet cohort``: which patients have which modality, labels and events; what does not match."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healnet_cli.cli.common import ConfigOpt, JsonOpt, WorkdirOpt, cli_errors, make_console

ORDER = 35


def register(app: typer.Typer) -> None:
    @app.command("cohort")
    def cohort(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        extractor: Annotated[
            str | None,
            typer.Option(
                "--extractor", help="Only this features/<extractor>/ folder (default: all).", show_default=False
            ),
        ] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Print the availability matrix: patients × modalities (omics tables and wsi:<extractor>), labels, events,
        mismatches.

        Counts patients as `healnet train` does; writes nothing. --json prints the same on stdout.
        """
        import sys

        from healnet_cli.stages.cohort import compute_cohort, render_plain, render_rich

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            summary = compute_cohort(workdir, extractor=extractor).as_dict()
            if json_output:
                console.emit_json(summary)
            elif sys.stdout.isatty():
                render_rich(summary, sys.stdout)
            else:
                render_plain(summary, sys.stdout)
