"""Configuration files: one YAML section per command, read with a safe loader.

Precedence (applied by the CLI): command line > environment variable > config file > default.
Environment variables are ``HEALNET_<COMMAND>_<OPTION>`` (e.g. ``HEALNET_TILE_MPP=0.25``), plus
``HEALNET_WORKDIR`` for every command.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from healnet_cli import __version__
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML configuration file (safe loader) into a mapping of command sections."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"config file {p}: cannot be read ({exc.strerror}); check the --config path") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"config file {p}: invalid YAML{where}; fix the syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {p}: expected a mapping of command sections (e.g. 'tile: {{mpp: 0.5}}')")
    return data


def command_section(
    config: Mapping[str, Any], command_path: Sequence[str], *, source: str = "config"
) -> dict[str, Any]:
    """The section of ``config`` for a command (``["omics", "labels"]`` → ``config["omics"]["labels"]``).

    Keys are normalised to option names with underscores (``patch-size`` → ``patch_size``);
    sub-command sections nested inside a command's section are left out.
    """
    node: Any = config
    for name in command_path:
        if not isinstance(node, Mapping):
            return {}
        node = node.get(name, {})
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise InputError(f"{source}: section {'.'.join(command_path)!r} must be a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in node.items() if not isinstance(v, Mapping)}


def check_sections(config: Mapping[str, Any], commands: Mapping[str, Any], *, source: str = "config") -> None:
    """Every top-level key of ``config`` must name a command, and every nested mapping a
    sub-command (``commands``: the command tree, e.g. ``{"tile": {}, "omics": {"labels": {}}}``).

    Raises
    ------
    InputError
        A file without sections (options at the top level) or a section that names no command,
        with the valid section names and the nearest match.
    """
    valid = sorted(commands)
    unknown = [str(k) for k in config if str(k) not in commands]
    if unknown and all(not isinstance(config[k], Mapping) for k in config):
        raise InputError(
            f"{source}: no command sections (found options {', '.join(map(str, config))} at the top level); put them "
            f"under the command they belong to, e.g. 'tile:' then '  mpp: 0.5'; sections: {', '.join(valid)}"
        )
    if unknown:
        name = unknown[0]
        raise InputError(f"{source}: unknown section {name!r}{_nearest(name, valid)}; sections: {', '.join(valid)}")
    for name, node in config.items():
        nested = {k: v for k, v in node.items() if isinstance(v, Mapping)} if isinstance(node, Mapping) else {}
        if not nested:
            continue
        subs = commands[str(name)]
        if not subs:
            raise InputError(
                f"{source}: section {name!r} has no sub-commands, but its key(s) {', '.join(map(str, nested))} hold a "
                "mapping; values are what you would type on the command line (lists for repeatable options)"
            )
        check_sections(nested, subs, source=f"{source}: section {name!r}")


def _nearest(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def option_keys(params: Iterable[Any], *, exclude: AbstractSet[str] = frozenset()) -> tuple[dict[str, str], list[str]]:
    """Config keys accepted for a command's parameters: each parameter's name and its long flags
    with underscores (``json_output`` and ``json`` for ``--json``). Returns the key → parameter
    name map and the keys to show (one per parameter: its first long flag)."""
    keys: dict[str, str] = {}
    shown = []
    for param in params:
        name = getattr(param, "name", None)
        if not name or name in exclude:
            continue
        longs = [o[2:].replace("-", "_") for o in getattr(param, "opts", []) if o.startswith("--")]
        for key in [name, *longs]:
            keys[key] = name
        shown.append(longs[0] if longs else name)
    return keys, sorted(shown)


def plain(value: Any) -> Any:
    """``value`` converted to YAML-safe primitives (paths and enums to strings)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return value


def write_resolved_config(
    folder: str | os.PathLike[str],
    values: Mapping[str, Any],
    *,
    command: str,
    sources: Mapping[str, str] | None = None,
    name: str = "config.yaml",
    shard: str | None = None,
) -> Path:
    """Write the resolved options of a command (and where each came from) beside its outputs.

    With ``shard`` (``"I/N"``, N > 1) the file is per shard, ``config-shard-I-of-N.yaml``, like the
    status tables, so the tasks of an array never overwrite each other's record.
    """
    if shard is not None:
        from healnet_cli.core.status import shard_file_name

        stem, dot, ext = name.rpartition(".")
        name = shard_file_name(stem, dot + ext, shard) if dot else shard_file_name(name, "", shard)
    payload: dict[str, Any] = {"command": command, "healnet_version": __version__, "options": plain(dict(values))}
    if sources:
        payload["sources"] = dict(sources)
    return atomic.write_text(Path(folder) / name, yaml.safe_dump(payload, sort_keys=True))
