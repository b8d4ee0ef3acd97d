"""With --json, every outcome is one JSON object on stdout (with ok and exit_code): a summary, an
input error, a crash or an interruption, never empty output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app


def _json(argv: list[str]) -> tuple[int, dict]:
    result = CliRunner().invoke(build_app(), argv)
    return result.exit_code, json.loads(result.stdout)


def test_train_input_error_is_a_json_object(tmp_path: Path) -> None:
    code, payload = _json(["train", "-w", str(tmp_path / "empty"), "--modalities", "rna", "--json"])
    assert code == 2 and payload["ok"] is False and payload["exit_code"] == 2 and payload["command"] == "train"
    assert "labels" in payload["error"] or "omics" in payload["error"]


def test_tile_input_error_is_a_json_object(tmp_path: Path) -> None:
    code, payload = _json(["tile", str(tmp_path / "no_slides"), "-w", str(tmp_path / "w"), "--json"])
    assert code == 2 and payload == {"ok": False, "exit_code": 2, "command": "tile", "error": payload["error"]}
    assert "no_slides" in payload["error"]


def test_evaluate_input_error_is_a_json_object(tmp_path: Path) -> None:
    (tmp_path / "not_a_run").mkdir()
    code, payload = _json(["evaluate", str(tmp_path / "not_a_run"), "--json"])
    assert code == 2 and not payload["ok"] and payload["command"] == "evaluate" and "not_a_run" in payload["error"]


def test_omics_labels_error_names_the_sub_command(tmp_path: Path) -> None:
    code, payload = _json(
        ["omics", "labels", str(tmp_path / "missing.csv"), "--time-col", "t", "-w", str(tmp_path / "w"), "--json"]
    )
    assert code == 2 and payload["command"] == "omics labels"


def test_a_crash_and_an_interruption_are_json_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from healnet_cli.core.errors import Interrupted
    from healnet_cli.stages.train import run

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "run_train", crash)
    code, payload = _json(["train", "--modalities", "rna", "--json"])
    assert code == 1 and payload["exit_code"] == 1 and payload["error"] == "unexpected failure: RuntimeError: boom"

    def term(*args, **kwargs):
        raise Interrupted(15)

    monkeypatch.setattr(run, "run_train", term)
    code, payload = _json(["train", "--modalities", "rna", "--json"])
    assert code == 143 and payload["exit_code"] == 143 and payload["error"].startswith("terminated by SIGTERM")


def test_a_summary_carries_ok_and_exit_code(tmp_path: Path) -> None:
    from pipeline_factories import TILE_ARGS, make_slides

    slides = make_slides(tmp_path / "slides", n=1)
    code, payload = _json(["tile", str(slides), "-w", str(tmp_path / "w"), *TILE_ARGS, "--json"])
    assert code == 0 and payload["ok"] is True and payload["exit_code"] == 0 and payload["counts"]["done"] == 1


def test_usage_errors_are_json_objects_too(tmp_path: Path) -> None:
    code, payload = _json(["omics", "labels", str(tmp_path / "t.csv"), "--json"])
    assert code == 2 and payload["command"] == "omics labels" and "Missing option '--time-col'" in payload["error"]
    code, payload = _json(["train", "--modalities", "rna", "--epochs", "x", "--json"])
    assert code == 2 and payload["command"] == "train" and "--epochs" in payload["error"] and payload["ok"] is False
    config = tmp_path / "study.yaml"
    config.write_text("tiles:\n  mpp: 0.5\n")
    code, payload = _json(["tile", str(tmp_path), "--config", str(config), "--json"])
    assert code == 2 and "unknown section 'tiles'" in payload["error"]
    plain = CliRunner().invoke(build_app(), ["train", "--modalities", "rna", "--epochs", "x"])
    assert plain.exit_code == 2 and '"ok"' not in plain.stdout  # without --json: no JSON
