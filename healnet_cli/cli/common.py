"""What every command shares: option aliases, the --config loader, error handling, the console."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exceptions

from healnet_cli.core.config import command_section, read_config_file
from healnet_cli.core.console import Console
from healnet_cli.core.errors import EXIT_CRASH, EXIT_INPUT, HealnetError, InputError, one_line


@dataclass
class AppState:
    """Root options, stored in ``ctx.obj``."""

    debug: bool = False
    quiet: bool = False


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Eager ``--config`` callback: the file's section for this command becomes the defaults.

    Click resolves a parameter from the command line, then its environment variable, then
    ``ctx.default_map``, then its default, which gives healnet's precedence.
    """
    if value is None:
        return None
    try:
        config = read_config_file(value)
        section = command_section(config, _command_path(ctx), source=f"config file {value}")
    except InputError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param=param) from exc
    known = {p.name for p in ctx.command.params if p.name}
    unknown = sorted(set(section) - known)
    if unknown:
        raise typer.BadParameter(
            f"{value}: unknown option(s) {', '.join(unknown)} in section {'.'.join(_command_path(ctx))!r}; "
            f"valid: {', '.join(sorted(known - {'config'}))}",
            ctx=ctx,
            param=param,
        )
    ctx.default_map = {**(ctx.default_map or {}), **section}
    return value


def _command_path(ctx: typer.Context) -> list[str]:
    names = []
    node: typer.Context | None = ctx
    while node is not None and node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    return list(reversed(names))


# -- shared option aliases (one flag ↔ one config field of the same name) ----------------------
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file with one section per command (e.g. 'tile: {mpp: 0.5}'). Precedence: CLI > env > file > default.",
        callback=_load_config,
        is_eager=True,
        envvar="HEALNET_CONFIG",
        show_default=False,
    ),
]
WorkdirOpt = Annotated[
    Path,
    typer.Option("--workdir", "-w", envvar="HEALNET_WORKDIR", help="Workspace folder holding tiles/, features/, omics/."),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Process shard I/N (0-based) of the sorted items; defaults to the SLURM array variables when set.",
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute items even when their cached outputs are fresh.")]
OnErrorOpt = Annotated[
    str,
    typer.Option("--on-error", help="continue: record a failed item and go on; fail: stop at the first failure."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:<index>.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16.")]


def app_state(ctx: typer.Context) -> AppState:
    node: typer.Context | None = ctx
    while node is not None:
        if isinstance(node.obj, AppState):
            return node.obj
        node = node.parent
    return AppState()


def make_console(ctx: typer.Context, *, json_output: bool = False) -> Console:
    return Console(quiet=app_state(ctx).quiet, json_output=json_output)


def check_on_error(value: str) -> str:
    if value not in ("continue", "fail"):
        raise InputError(f"--on-error {value!r} is not one of: continue, fail")
    return value


def resolved_options(ctx: typer.Context) -> tuple[dict[str, Any], dict[str, str]]:
    """This command's resolved option values and where each came from (commandline, environment,
    default_map = config file, default)."""
    values = {k: v for k, v in ctx.params.items() if k != "config"}
    sources = {}
    for name in values:
        source = ctx.get_parameter_source(name)
        label = {"DEFAULT_MAP": "config", "ENVIRONMENT": "environment", "COMMANDLINE": "cli"}.get(
            getattr(source, "name", ""), "default"
        )
        sources[name] = label
    return values, sources


@contextlib.contextmanager
def cli_errors(ctx: typer.Context) -> Iterator[None]:
    """Turn exceptions into one readable line and the documented exit code.

    HealnetError subclasses carry their exit code (2 input, 3 partial, 1 crash); anything else is
    an unexpected failure (1). ``healnet --debug`` prints the traceback too.
    """
    debug = app_state(ctx).debug
    try:
        yield
    except (typer.Exit, typer.Abort, click_exceptions.ClickException):
        raise
    except HealnetError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr, flush=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with `healnet --debug ...` for the traceback)"
        print(f"error: unexpected failure: {one_line(exc)}{hint}", file=sys.stderr, flush=True)
        raise typer.Exit(EXIT_CRASH) from None


def require_paths(paths: list[Path], what: str) -> None:
    """Fail with exit 2 before any work when an input path does not exist."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"{what} not found: {', '.join(missing)}; check the path(s)")


__all__ = [
    "EXIT_INPUT",
    "AppState",
    "ConfigOpt",
    "DeviceOpt",
    "ForceOpt",
    "JsonOpt",
    "OnErrorOpt",
    "PrecisionOpt",
    "ShardOpt",
    "WorkdirOpt",
    "app_state",
    "check_on_error",
    "cli_errors",
    "make_console",
    "require_paths",
    "resolved_options",
]
