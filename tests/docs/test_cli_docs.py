"""docs/cli.md is exactly what scripts/gen_cli_docs.py generates from the Typer app (no drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = _generator().render()
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == expected, "docs/cli.md is stale: run `python scripts/gen_cli_docs.py` and commit it"


def test_cli_reference_covers_every_command_and_option() -> None:
    from typer.main import get_command

    from healnet_cli.cli import build_app

    text = (ROOT / "docs" / "cli.md").read_text()
    root = get_command(build_app())
    for name, command in root.commands.items():
        assert f"## `healnet {name}`" in text
        for param in command.params:
            for flag in getattr(param, "opts", []):
                if flag.startswith("--") and not getattr(param, "hidden", False):
                    assert f"`{flag}`" in text, f"{flag} of {name} missing"


def test_check_mode_detects_staleness(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    gen = _generator()
    assert gen.main(["--check", "--out", str(stale)]) == 1
    assert gen.main(["--out", str(stale)]) == 0
    assert gen.main(["--check", "--out", str(stale)]) == 0
