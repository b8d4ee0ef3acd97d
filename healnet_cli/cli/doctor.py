"""``healnet doctor``: check the installation and the environment before a long job."""

from __future__ import annotations

from pathlib import Path

import typer

from healnet_cli.cli.common import JsonOpt, WorkdirOpt, cli_errors, make_console

ORDER = 90


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(ctx: typer.Context, workdir: WorkdirOpt = Path("healnet_work"), json_output: JsonOpt = False) -> None:
        """Check Python, torch (+CUDA), timm, OpenSlide, the workdir, free disk and the model hub.

        Exits 1 when a check FAILs; each line carries a fix.
        """
        from healnet_cli.core.preflight import run_checks

        with cli_errors(ctx):
            console = make_console(ctx, json_output=json_output)
            checks = run_checks(Path(workdir))
            for check in checks:
                fix = f"  -> {check.fix}" if check.fix and check.level != "PASS" else ""
                console.info(f"{check.level:<4}  {check.name:<10} {check.detail}{fix}")
            failed = [c for c in checks if c.level == "FAIL"]
            if json_output:
                console.emit_json({"checks": [c.as_dict() for c in checks], "ok": not failed})
            if failed:
                raise typer.Exit(1)
