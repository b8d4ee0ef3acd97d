"""What every command shares: option aliases, the --config loader, error handling, the console."""

from __future__ import annotations

import contextlib
import errno
import inspect
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol, TypeGuard, cast

import typer
from typer.core import TyperCommand, TyperOption

from healnet_cli.core.config import check_sections, command_section, option_keys, read_config_file
from healnet_cli.core.console import Console, json_result
from healnet_cli.core.errors import EXIT_CRASH, EXIT_INPUT, HealnetError, InputError, Interrupted, one_line
from healnet_cli.core.runner import check_on_error


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
    path = _command_path(ctx)
    try:
        config = read_config_file(value)
        check_sections(config, _command_tree(ctx), source=f"config file {value}")
        section = command_section(config, path, source=f"config file {value}")
    except InputError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param=_option(param)) from exc
    keys, shown = option_keys(ctx.command.params, exclude={"config"})
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise typer.BadParameter(
            f"{value}: unknown option(s) {', '.join(unknown)} in section {'.'.join(path)!r}; valid: {', '.join(shown)}",
            ctx=ctx,
            param=_option(param),
        )
    ctx.default_map = {**(ctx.default_map or {}), **{keys[k]: v for k, v in section.items()}}
    return value


def _option(param: typer.CallbackParam) -> TyperOption:
    """The ``--config`` parameter as typer builds it (a TyperOption; typer types callbacks' as CallbackParam)."""
    return cast(TyperOption, param)


def _command_tree(ctx: typer.Context) -> dict[str, object]:
    """The root command's sub-commands as nested dicts (``{"omics": {"labels": {}}, "tile": {}}``)."""
    root = ctx.find_root().command

    def tree(command: object) -> dict[str, object]:
        subs = getattr(command, "commands", {}) or {}
        return {name: tree(sub) for name, sub in subs.items()}

    return tree(root)


def _parent(ctx: typer.Context) -> typer.Context | None:
    """``ctx.parent``, typed as every context in healnet is (typer types it as its private click's)."""
    return cast("typer.Context | None", ctx.parent)


def _command_path(ctx: typer.Context) -> list[str]:
    names = []
    node: typer.Context | None = ctx
    while node is not None and node.parent is not None:
        names.append(node.info_name or "")
        node = _parent(node)
    return list(reversed(names))


# -- shared option aliases (one flag ↔ one config field of the same name) ----------------------
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=(
            "YAML file with one section per command (e.g. 'tile: {mpp: 0.5}'). Precedence: CLI > env > file > default."
        ),
        callback=_load_config,
        is_eager=True,
        envvar="HEALNET_CONFIG",
        show_default=False,
    ),
]
WorkdirOpt = Annotated[
    Path,
    typer.Option(
        "--workdir", "-w", envvar="HEALNET_WORKDIR", help="Workspace folder holding tiles/, features/, omics/."
    ),
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
PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16.")
]


def app_state(ctx: typer.Context) -> AppState:
    node: typer.Context | None = ctx
    while node is not None:
        if isinstance(node.obj, AppState):
            return node.obj
        node = _parent(node)
    return AppState()


def make_console(ctx: typer.Context, *, json_output: bool = False) -> Console:
    return Console(quiet=app_state(ctx).quiet, json_output=json_output)


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

    HealnetError subclasses carry their exit code (2 input, 3 partial, 1 crash or full disk);
    permission and read-only errors are input errors (2) naming the path; anything else is an
    unexpected failure (1). SIGTERM (walltime, ``scancel``) and SIGINT unwind like an exception,
    so locks are released, and exit 143 / 130. ``healnet --debug`` prints the traceback too.
    """
    debug = app_state(ctx).debug
    command = " ".join(_command_path(ctx)) or (ctx.info_name or "")
    json_output = bool(ctx.params.get("json_output"))

    def fail(
        exc: BaseException, code: int, *, unexpected: bool = False, cause: BaseException | None = None
    ) -> NoReturn:
        if debug:
            traceback.print_exception(cause or exc)
        message = f"unexpected failure: {one_line(exc)}" if unexpected else one_line(exc)
        hint = " (rerun with `healnet --debug ...` for the traceback)" if unexpected and not debug else ""
        print(f"error: {message}{hint}", file=sys.stderr, flush=True)
        _json_error(json_output, command, code, message)
        raise typer.Exit(code) from None

    try:
        with terminate_as_interrupt():
            yield
    except (typer.Exit, typer.Abort, typer.BadParameter):  # typer's own: it prints them and sets the exit code
        raise
    except HealnetError as exc:
        fail(exc, exc.exit_code)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        what = "terminated by SIGTERM (walltime or scancel)" if signum == signal.SIGTERM else "interrupted (SIGINT)"
        message = f"{what}: locks released, finished items kept; rerun (resubmit) the same command to resume"
        print(message, file=sys.stderr, flush=True)
        _json_error(json_output, command, 128 + int(signum), message)
        raise typer.Exit(128 + int(signum)) from None
    except OSError as exc:
        mapped = os_error(exc)
        if mapped is None:
            fail(exc, EXIT_CRASH, unexpected=True)
        fail(mapped, mapped.exit_code, cause=exc)
    except Exception as exc:
        fail(exc, EXIT_CRASH, unexpected=True)


_LIST_ITEM = re.compile(r"^([-*•]|\d+[.)])\s")


def reflow_help(text: str | None) -> str | None:
    """A docstring as help text: each paragraph one line (the terminal wraps it), list items one line
    each; paragraphs holding a table (``|``) stay as written. Typer keeps a docstring's single line
    breaks, which on a narrower terminal than the source leaves ragged half-lines."""
    if not text:
        return text
    paragraphs = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = [line.strip() for line in para.splitlines()]
        if any(line.startswith("|") for line in lines):
            paragraphs.append(para)
            continue
        items: list[str] = []
        for line in lines:
            if items and not _LIST_ITEM.match(line):
                items[-1] = f"{items[-1]} {line}"
            else:
                items.append(line)
        paragraphs.append("\n".join(items))
    return "\n\n".join(paragraphs)


class JsonUsageCommand(TyperCommand):
    """A command whose usage errors (a missing or malformed option, a bad ``--config``) are also a
    JSON object on stdout when the command line holds ``--json``; the parser still prints them.
    Its help text is reflowed (:func:`reflow_help`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow_help(self.help)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        wants_json = "--json" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except Exception as exc:
            if wants_json and _is_usage_error(exc):
                names = [*_command_path(parent), info_name or ""] if parent is not None else [info_name or ""]
                _json_error(
                    True, " ".join(n for n in names if n), exc.exit_code, " ".join(exc.format_message().split())
                )
            raise


class _UsageError(Protocol):
    exit_code: int

    def format_message(self) -> str: ...


def _is_usage_error(exc: BaseException) -> TypeGuard[_UsageError]:
    """A usage error of typer's parser (a missing or malformed option; exit 2), recognised by what it
    carries, as typer exports no base class for it (``typer._click`` is private)."""
    return getattr(exc, "exit_code", None) == 2 and callable(getattr(exc, "format_message", None))


def _json_error(json_output: bool, command: str, code: int, message: str) -> None:
    """With ``--json``: the failure as one JSON object on stdout (scripts parse stdout, and an
    empty one would not parse)."""
    if json_output:
        Console(json_output=True).emit_json(json_result({"error": message, "command": command}, code))


def os_error(exc: OSError) -> HealnetError | None:
    """A readable error for an ``OSError`` that reached the command: a full disk (exit 1), or a
    path that cannot be written or read (exit 2, naming it); None for anything else."""
    from healnet_cli.core.atomic import disk_full_error

    where = exc.filename or "?"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_error(exc, where)
    if exc.errno == errno.EROFS:
        return InputError(f"{where}: read-only file system; choose a writable --workdir (or --out)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InputError(
            f"{where}: permission denied (a read-only folder?); make it writable for you, or choose another "
            "--workdir (or --out)"
        )
    return None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises :class:`Interrupted` in the main thread (like Ctrl-C raises
    KeyboardInterrupt), so ``finally`` blocks release locks. A second SIGTERM is ignored while
    unwinding (SLURM sends SIGKILL after its KillWait anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
