"""Import layering: cli -> stages -> {models, artifacts, slides, data, extractors, metrics} -> core.

Stages never import each other; lower layers never import higher ones. Checked statically with ast.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "healnet_cli"

# layer -> packages it may import from healnet_cli (besides itself and the package root)
ALLOWED = {
    "core": set(),
    "artifacts": {"core"},
    "slides": {"core"},
    "models": set(),
    "metrics": set(),
    "extractors": {"core", "artifacts", "slides"},
    "data": {"core", "artifacts", "models", "metrics"},
    "stages": {"core", "artifacts", "slides", "models", "data", "extractors", "metrics"},
    "cli": {"core", "stages", "cli", "artifacts", "slides", "models", "extractors", "data", "metrics"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("healnet_cli.")}


def test_layers_import_only_downwards() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if len(rel) == 1:
            continue
        layer = rel[0]
        allowed = ALLOWED.get(layer)
        if allowed is None:
            problems.append(f"{path}: layer {layer!r} is not declared in tests/test_layering.py")
            continue
        for name in _imports(path):
            target = name.split(".")[1]
            if target in (layer, "__init__") or name == "healnet_cli":
                continue
            if target not in allowed:
                problems.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not problems, "\n".join(problems)


def test_stages_never_import_each_other() -> None:
    stages = PACKAGE / "stages"
    problems = []
    for path in stages.rglob("*.py"):
        rel = path.relative_to(stages).parts
        if len(rel) == 1:
            continue
        own = rel[0]
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) > 2 and parts[1] == "stages" and parts[2] != own:
                problems.append(f"stages/{'/'.join(rel)} imports {name}")
    assert not problems, "\n".join(problems)


def test_importing_the_package_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, healnet_cli.cli; print(int('torch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0", "`healnet --help` must not import torch"
