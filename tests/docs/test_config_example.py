"""examples/config.yaml only uses commands and options that exist, and the CLI accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli_tree import root_command, subcommands
from typer.testing import CliRunner

from healnet_cli.core.config import command_section, read_config_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "config.yaml"


def _sections(config: dict, command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(command path, command) for every section of ``config``, sub-command sections included."""
    out = []
    for name, sub in subcommands(command).items():
        if isinstance(config.get(name), dict):
            out.append(((*path, name), sub))
            out += _sections(config[name], sub, (*path, name))
    return out


def test_example_sections_are_commands_and_keys_are_options() -> None:
    config = read_config_file(EXAMPLE)
    root = root_command()
    commands = subcommands(root)
    unknown_sections = sorted(set(config) - set(commands))
    assert not unknown_sections, f"sections that are not commands: {unknown_sections}"
    problems = []
    for path, command in _sections(config, root):
        section = command_section(config, list(path))
        valid = {p.name for p in command.params}
        problems += [f"{'.'.join(path)}: unknown option {key!r}" for key in sorted(set(section) - valid)]
    assert not problems, "\n".join(problems)
    assert {"tile", "extract", "omics", "train", "evaluate"} <= set(config)


@pytest.mark.parametrize("command", ["tile", "extract", "train", "evaluate", "demo", "cohort"])
def test_cli_loads_the_example(command: str) -> None:
    from healnet_cli.cli import build_app

    result = CliRunner().invoke(build_app(), [command, "--config", str(EXAMPLE), "--help"])
    assert result.exit_code == 0, result.output


def test_cli_rejects_an_unknown_key(tmp_path: Path) -> None:
    from healnet_cli.cli import build_app

    bad = tmp_path / "bad.yaml"
    bad.write_text("tile:\n  no-such-option: 1\n")
    result = CliRunner().invoke(build_app(), ["tile", "--config", str(bad), "x.svs"])
    assert result.exit_code == 2
    assert "no_such_option" in result.output
