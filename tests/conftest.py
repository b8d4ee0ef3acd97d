"""Shared test fixtures. Stage-specific factories live in each test folder's conftest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no stray SLURM/HEALNET variables from the developer's shell."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in list(os.environ):
        if name.startswith(("SLURM_", "HEALNET_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real TCGA data); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
