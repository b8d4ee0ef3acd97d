"""The ``healnet`` command line: a root Typer app and one module per command.

Each module in this package that defines ``register(app)`` adds its command(s); ``ORDER`` sorts
them in ``--help`` (the pipeline order). Command bodies import their stage lazily so that
``healnet --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer
from typer.core import TyperCommand

from healnet_cli import __version__
from healnet_cli.cli.common import AppState, JsonUsageCommand, reflow_help

HELP = """healnet: multimodal (whole-slide image + omics) survival analysis.

Stages chain through a workspace folder (--workdir, default ./healnet_work):
tile -> extract (or import-features) -> omics -> train -> evaluate; predict applies a run to another
cohort. `healnet doctor` checks the set-up.

Exit codes: 0 all done, 3 some items failed (outputs usable), 2 usage or input error, 1 crash.
"""


#: The only environment variables the root options read (``--version`` reads none: container
#: images often set ``HEALNET_VERSION`` for their own purposes).
ROOT_ENV = {"debug": "HEALNET_DEBUG", "quiet": "HEALNET_QUIET"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"healnet {__version__}")
        raise typer.Exit(0)


def env_flag(name: str) -> bool:
    """``HEALNET_DEBUG``/``HEALNET_QUIET``: 1/true/yes/on or 0/false/no/off (any case); any other
    value is ignored with a warning instead of breaking every command."""
    text = os.environ.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text not in _FALSE:
        print(f"warning: ignoring {name}={os.environ[name]!r} (expected 1 or 0)", file=sys.stderr, flush=True)
    return False


def build_app() -> typer.Typer:
    """The root app with every command module registered."""
    app = typer.Typer(
        name="healnet",
        help=reflow_help(HELP),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"auto_envvar_prefix": "HEALNET", "help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        version: bool = typer.Option(
            False,
            "--version",
            callback=_version,
            is_eager=True,
            allow_from_autoenv=False,
            help="Print the version and exit.",
        ),
        debug: bool = typer.Option(
            False, "--debug", allow_from_autoenv=False, help="Show tracebacks on errors (or HEALNET_DEBUG=1)."
        ),
        quiet: bool = typer.Option(
            False, "--quiet", "-q", allow_from_autoenv=False, help="Only warnings and errors (or HEALNET_QUIET=1)."
        ),
    ) -> None:
        ctx.obj = AppState(debug=debug or env_flag(ROOT_ENV["debug"]), quiet=quiet or env_flag(ROOT_ENV["quiet"]))

    modules = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            modules.append(module)
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.register(app)
    _json_usage_errors(app)
    return app


def _json_usage_errors(app: typer.Typer) -> None:
    """Every command (sub-commands too) reports usage errors as JSON under ``--json``."""
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:
            info.cls = JsonUsageCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _json_usage_errors(group.typer_instance)


def main() -> None:
    """Console-script entry point."""
    build_app()(prog_name="healnet")
