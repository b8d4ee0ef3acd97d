"""Fixtures of the evaluate tests (helpers live in evaluate_fixtures.py, a unique module name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluate_fixtures import make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run_01")
