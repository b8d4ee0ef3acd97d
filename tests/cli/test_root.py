from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from healnet_cli import __version__
from healnet_cli.cli import build_app
from healnet_cli.cli.common import ConfigOpt, WorkdirOpt, cli_errors, resolved_options
from healnet_cli.core.errors import InputError

runner = CliRunner()


def _app_with_probe() -> typer.Typer:
    """The real app plus a probe command that prints its resolved options."""
    app = build_app()

    @app.command("probe")
    def probe(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workdir: WorkdirOpt = Path("healnet_work"),
        mpp: float = 0.5,
        patch_size: int = 256,
        fail: str = "",
        json_output: bool = typer.Option(False, "--json"),
    ) -> None:
        with cli_errors(ctx):
            if fail == "input":
                raise InputError("x.csv: missing column 'time'; pass --time-col")
            if fail == "crash":
                raise RuntimeError("boom")
            values, sources = resolved_options(ctx)
            typer.echo(json.dumps({"values": {k: str(v) for k, v in values.items()}, "sources": sources}))

    return app


def test_version_and_help() -> None:
    app = build_app()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "doctor" in result.output


def test_unknown_command_exits_2() -> None:
    result = runner.invoke(build_app(), ["frobnicate"])
    assert result.exit_code == 2


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    app = _app_with_probe()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("probe:\n  mpp: 0.25\n  patch-size: 512\n")
    out = json.loads(runner.invoke(app, ["probe"]).output)
    assert out["values"]["mpp"] == "0.5" and out["sources"]["mpp"] == "default"
    out = json.loads(runner.invoke(app, ["probe", "--config", str(cfg)]).output)
    assert out["values"]["mpp"] == "0.25" and out["sources"]["mpp"] == "config"
    assert out["values"]["patch_size"] == "512"
    env = {"HEALNET_PROBE_MPP": "1.0", "HEALNET_WORKDIR": str(tmp_path / "w")}
    out = json.loads(runner.invoke(app, ["probe", "--config", str(cfg)], env=env).output)
    assert out["values"]["mpp"] == "1.0" and out["sources"]["mpp"] == "environment"
    assert out["values"]["workdir"] == str(tmp_path / "w")
    out = json.loads(runner.invoke(app, ["probe", "--config", str(cfg), "--mpp", "2"], env=env).output)
    assert out["values"]["mpp"] == "2.0" and out["sources"]["mpp"] == "cli"


def test_unknown_config_key_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("probe:\n  mppp: 0.25\n")
    result = runner.invoke(_app_with_probe(), ["probe", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "mppp" in result.output


def test_errors_are_one_line_with_exit_codes() -> None:
    app = _app_with_probe()
    result = runner.invoke(app, ["probe", "--fail", "input"])
    assert result.exit_code == 2
    assert "error: x.csv: missing column 'time'; pass --time-col" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["probe", "--fail", "crash"])
    assert result.exit_code == 1
    assert "unexpected failure: RuntimeError: boom" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["--debug", "probe", "--fail", "crash"])
    assert result.exit_code == 1
    assert "Traceback" in result.output


def test_doctor_runs_and_reports_json(tmp_path: Path) -> None:
    result = runner.invoke(build_app(), ["doctor", "--workdir", str(tmp_path), "--json"])
    assert result.exit_code in (0, 1)
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    names = [c["name"] for c in payload["checks"]]
    assert {"python", "torch", "timm", "openslide", "workdir", "disk", "hub"} <= set(names)
    hub = next(c for c in payload["checks"] if c["name"] == "hub")
    assert "offline" in hub["detail"]  # HF_HUB_OFFLINE=1 in tests: no network probe


def test_doctor_fails_on_unwritable_workdir(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        if (target / "probe").parent.stat().st_mode & 0o200 == 0:
            import os

            if os.geteuid() == 0:
                pytest.skip("root can write anywhere")
        result = runner.invoke(build_app(), ["doctor", "--workdir", str(target)])
        assert result.exit_code == 1
        assert "not writable" in result.output
    finally:
        target.chmod(0o700)


def test_console_script_and_module_entry_points() -> None:
    result = subprocess.run([sys.executable, "-m", "healnet_cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_config_keys_may_be_the_flag_names(tmp_path: Path) -> None:
    app = _app_with_probe()
    cfg = tmp_path / "c.yaml"
    for text in ("probe:\n  json: true\n", "probe:\n  json_output: true\n"):  # the flag's name, or the parameter's
        cfg.write_text(text)
        out = json.loads(runner.invoke(app, ["probe", "--config", str(cfg)]).output)
        assert out["values"]["json_output"] == "True" and out["sources"]["json_output"] == "config"
    cfg.write_text("probe:\n  jsn: true\n")
    result = runner.invoke(app, ["probe", "--config", str(cfg)])
    assert result.exit_code == 2 and "jsn" in result.output and "json" in result.output


def test_root_flags_read_only_their_documented_variables(tmp_path: Path) -> None:
    app = _app_with_probe()
    for env in ({"HEALNET_VERSION": "true"}, {"HEALNET_VERSION": "0.1.0"}):
        result = runner.invoke(app, ["probe"], env=env)
        assert result.exit_code == 0 and '"values"' in result.output, result.output
    result = runner.invoke(app, ["probe", "--fail", "crash"], env={"HEALNET_DEBUG": "1"})
    assert result.exit_code == 1 and "Traceback" in result.output
    result = runner.invoke(app, ["probe", "--fail", "crash"], env={"HEALNET_DEBUG": "no"})
    assert "Traceback" not in result.output


def test_no_private_typer_or_click_modules() -> None:
    """healnet and its scripts import typer's public API only (typer vendors click as a private
    module since 0.26; pyproject pins the range the CLI is tested with)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bad = []
    for path in [*(root / "healnet_cli").rglob("*.py"), *(root / "scripts").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = (node.module or "").startswith(("typer._", "click")) or (
                    node.module == "typer" and any(a.name.startswith("_") for a in node.names)
                )
            elif isinstance(node, ast.Import):
                private = any(a.name.startswith(("typer._", "click")) for a in node.names)
            else:
                continue
            if private:
                bad.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not bad, bad


def test_usage_errors_and_exits_inside_a_command_keep_typers_handling() -> None:
    import typer
    from typer.testing import CliRunner

    from healnet_cli.cli.common import cli_errors

    app = typer.Typer()

    @app.command()
    def run(ctx: typer.Context, what: str) -> None:
        with cli_errors(ctx):
            if what == "usage":
                raise typer.BadParameter("not like that")
            raise typer.Exit(3)

    usage = CliRunner().invoke(app, ["usage"])
    assert usage.exit_code == 2 and "not like that" in usage.output
    assert CliRunner().invoke(app, ["exit"]).exit_code == 3


def test_reflow_help_joins_paragraph_lines_keeps_lists_and_tables() -> None:
    from healnet_cli.cli.common import reflow_help

    text = """Summary line.

    First paragraph wrapped
    at the source width.

    - item one
      continued
    - item two

    | a | b |
    |---|---|
    """
    assert reflow_help(text) == (
        "Summary line.\n\nFirst paragraph wrapped at the source width.\n\n- item one continued\n- item two"
        "\n\n| a | b |\n|---|---|"
    )
    assert reflow_help(None) is None


@pytest.mark.parametrize("command", [["extract"], ["predict"], ["omics"], ["import-features"], []])
def test_help_paragraphs_wrap_to_the_terminal(command: list[str]) -> None:
    """At 80 columns no help line is a ragged half-line left by a docstring's own line breaks: every
    line of a paragraph but its last reaches near the terminal width."""
    result = runner.invoke(build_app(), [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    prose = result.output.split("╭")[0].splitlines()[3:]  # after the usage line
    paragraphs: list[list[str]] = [[]]
    for line in prose:
        if line.strip():
            paragraphs[-1].append(line.rstrip())
        else:
            paragraphs.append([])
    for para in paragraphs:
        for line in para[:-1]:
            assert len(line) > 55, f"ragged help line in {command}: {line!r}"
