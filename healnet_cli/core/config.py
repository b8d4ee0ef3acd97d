"""Configuration files: one YAML section per command, read with a safe loader.

Precedence (applied by the CLI): command line > environment variable > config file > default.
Environment variables are ``HEALNET_<COMMAND>_<OPTION>`` (e.g. ``HEALNET_TILE_MPP=0.25``), plus
``HEALNET_WORKDIR`` for every command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
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


def command_section(config: Mapping[str, Any], command_path: Sequence[str], *, source: str = "config") -> dict[str, Any]:
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
) -> Path:
    """Write the resolved options of a command (and where each came from) beside its outputs."""
    payload: dict[str, Any] = {"command": command, "healnet_version": __version__, "options": plain(dict(values))}
    if sources:
        payload["sources"] = dict(sources)
    return atomic.write_text(Path(folder) / name, yaml.safe_dump(payload, sort_keys=True))
