"""Where a run goes: <workdir>/runs/<name> by default (not the current folder), --name, --out; and
evaluate finds a run by its name."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.core.workspace import Workspace


def healnet(*args) -> object:
    return CliRunner().invoke(build_app(), [*map(str, args)])


def _args(ws: Path, *extra) -> list:
    return [
        "train",
        "--modalities",
        "rna",
        "--model",
        "snn",
        "--workdir",
        ws,
        "--folds",
        "2",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--ensemble",
        "1",
        *extra,
    ]


def test_runs_go_under_the_workdir_by_default_and_evaluate_finds_them_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=16, omics={"rna": 4})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = healnet(*_args(ws))
    assert result.exit_code == 0, result.output
    runs = list((ws / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("snn-rna-") and (runs[0] / "summary.json").is_file()
    assert not list(cwd.iterdir())  # nothing in the current folder
    named = healnet(*_args(ws, "--name", "blca_snn"))
    assert named.exit_code == 0 and (ws / "runs" / "blca_snn" / "summary.json").is_file()
    again = healnet(*_args(ws, "--name", "blca_snn", "--resume"))
    assert again.exit_code == 0 and "already finished" in again.output
    evaluated = healnet("evaluate", "blca_snn", "-w", ws, "--bootstrap", "0", "--no-attention")
    assert evaluated.exit_code in (0, 3), evaluated.output
    assert (ws / "runs" / "blca_snn" / "evaluation" / "metrics.json").is_file()
    gathered = healnet("train", "--gather", "--name", "blca_snn", "--workdir", ws)
    assert gathered.exit_code == 0, gathered.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--name", "a/b"], "--name 'a/b': use a plain folder name"),
        (["--name", ".."], "--name '..': use a plain folder name"),
        (["--fold", "0"], "--fold 0: pass --out or --name"),
    ],
)
def test_bad_run_names_are_input_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    result = healnet(*_args(tmp_path / "ws", *extra))
    assert result.exit_code == 2 and message in result.output, result.output


def test_find_run_prefers_an_existing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ws = Workspace.at(tmp_path / "w")
    (ws.runs_dir / "r1").mkdir(parents=True)
    assert ws.find_run("r1") == ws.runs_dir / "r1"
    Path("r1").mkdir()
    assert ws.find_run("r1") == Path("r1")
    assert ws.find_run("missing") == Path("missing")
