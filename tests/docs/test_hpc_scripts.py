"""The SLURM recipes in examples/slurm parse, call only commands and options that exist, and are the
scripts docs/hpc.md shows."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _cli_tree import check_call, healnet_calls

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "examples" / "slurm").glob("*.sh"))
HPC_DOC = ROOT / "docs" / "hpc.md"


def test_there_are_scripts() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"tile_array.sh", "extract_array.sh", "train_torchrun.sh", "train_fold_array.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_uses_existing_commands_and_options(script: Path) -> None:
    calls = healnet_calls(script.read_text())
    assert calls, f"{script.name} calls no healnet command"
    problems = [p for call in calls for p in check_call(call)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_hpc_doc_includes_script_verbatim(script: Path) -> None:
    assert script.read_text().strip() in HPC_DOC.read_text(), f"docs/hpc.md does not show {script.name} as it is"


def test_hpc_doc_code_blocks_use_existing_options() -> None:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", HPC_DOC.read_text(), flags=re.S)
    problems = [p for block in blocks for call in healnet_calls(block) for p in check_call(call)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("healnet tile slides/ --no-such-flag 1", "unknown option --no-such-flag"),
        ("healnet tilee slides/", "unknown command 'tilee'"),
        ("srun healnet --debug train --nope", "unknown option --nope"),
    ],
)
def test_checker_catches_mistakes(text: str, problem: str) -> None:
    problems = [p for call in healnet_calls(text) for p in check_call(call)]
    assert any(problem in p for p in problems), problems


def test_checker_reads_continuations_and_module_calls() -> None:
    text = (
        "torchrun --nproc-per-node 2 -m healnet_cli \\\n    train --workdir w --epochs 3 \\\n    --bogus 1\n# "
        "healnet tile --x\n"
    )
    calls = healnet_calls(text)
    assert calls == [["train", "--workdir", "w", "--epochs", "3", "--bogus", "1"]]
    assert check_call(calls[0]) == [
        "unknown option --bogus of `healnet train` in `healnet train --workdir w --epochs 3 --bogus 1`"
    ]
