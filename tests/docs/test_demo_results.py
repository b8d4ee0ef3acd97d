"""The README's demo figures are the demo's own output: the sentence equals what
scripts/demo_results.py writes from docs/demo_results.json, and (slow) a fresh demo at the default
options gives the c-indices that file records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("demo_results", ROOT / "scripts" / "demo_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results() -> dict:
    return json.loads((ROOT / "docs" / "demo_results.json").read_text())


def test_readme_sentence_is_written_from_the_results_file() -> None:
    script = _script()
    readme = (ROOT / "README.md").read_text()
    assert script.render(readme, _results()) == readme, (
        "README demo figures are stale: run `python scripts/demo_results.py`"
    )
    c = _results()["cindex"]
    assert f"{c['wsi_rna']:.3f}" in readme and f"{c['wsi']:.3f}" in readme and f"{c['rna']:.3f}" in readme


def test_results_come_from_a_demo_json(tmp_path: Path) -> None:
    script = _script()
    demo = {"config": {"seed": 0}, "cindex": {"wsi_rna": 0.71234, "wsi": 0.5, "rna": 0.75}, "total_seconds": 99.6}
    results = script.results_from_demo(demo, "a laptop")
    assert results["cindex"] == {"wsi_rna": 0.712, "wsi": 0.5, "rna": 0.75} and results["total_seconds"] == 100
    text = script.sentence(results)
    assert "does not beat the best single modality" in text and "100 s on a laptop" in text
    with pytest.raises(ValueError, match="no c-index for wsi"):
        script.results_from_demo({**demo, "cindex": {"wsi_rna": 0.7, "wsi": None, "rna": 0.6}}, "x")


@pytest.mark.slow
def test_a_fresh_demo_gives_the_recorded_cindices(tmp_path: Path) -> None:
    """Minutes: the whole demo at the recorded options (the default ones)."""
    from healnet_cli.stages.demo.plan import DemoConfig, required_commands
    from healnet_cli.stages.demo.run import run_demo

    recorded = _results()
    result = run_demo(
        DemoConfig(out_dir=tmp_path / "demo", **recorded["config"]),
        available_commands=required_commands(),
        progress=lambda _: None,
    )
    assert {k: round(v, 3) for k, v in result.cindex.items()} == recorded["cindex"]
