"""Helpers for the docs tests: the Typer app's command tree and the healnet calls in shell text."""

from __future__ import annotations

import shlex
from typing import Any

SEPARATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", ")", "then", "do", "done", "fi"}


def root_command() -> Any:
    from typer.main import get_command

    from healnet_cli.cli import build_app

    return get_command(build_app())


def option_names(command: Any) -> set[str]:
    """Every flag of ``command`` (``--mpp``, ``-w``, secondary ``--no-x`` ones)."""
    names: set[str] = {"--help", "-h"}
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", {}) or {})


def healnet_calls(script: str) -> list[list[str]]:
    """The argument lists of every ``healnet ...`` / ``python -m healnet_cli ...`` call in shell text
    (line continuations joined, comments and quoted prose ignored; ``--model healnet`` is a value,
    not a call)."""
    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, token in enumerate(tokens):
            previous = tokens[i - 1] if i else ""
            is_program = token == "healnet" and not (previous.startswith("-") and previous != "--no-python")
            if is_program or (token == "healnet_cli" and previous in ("-m", "--module")):
                args = []
                for arg in tokens[i + 1 :]:
                    if arg in SEPARATORS or arg.startswith(("'", ">", "2>")):
                        break
                    args.append(arg)
                calls.append(args)
    return calls


def check_call(args: list[str]) -> list[str]:
    """Problems of one call: unknown command, sub-command or option."""
    root = root_command()
    commands = subcommands(root)
    rest = list(args)
    while rest and rest[0].startswith("-"):  # root options (--debug, -q)
        flag = rest.pop(0).split("=")[0]
        if flag not in option_names(root):
            return [f"unknown root option {flag} in `healnet {' '.join(args)}`"]
    if not rest:
        return [f"no command in `healnet {' '.join(args)}`"]
    name = rest.pop(0)
    if name not in commands:
        return [f"unknown command {name!r} in `healnet {' '.join(args)}`"]
    command = commands[name]
    subs = subcommands(command)
    positionals = [a for a in rest if not a.startswith("-")]
    if subs and positionals and positionals[0] in subs:
        command = subs[positionals[0]]
    known = option_names(command)
    return [
        f"unknown option {flag} of `healnet {name}` in `healnet {' '.join(args)}`"
        for flag in (a.split("=")[0] for a in rest if a.startswith("-") and a != "-")
        if flag not in known
    ]
