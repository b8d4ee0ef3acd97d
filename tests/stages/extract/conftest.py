"""Fixtures for extract tests (factories in extract_factories.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from extract_factories import add_slide, save_random_weights


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workdir with three small slides (6, 4 and 0 patches)."""
    workdir = tmp_path / "work"
    add_slide(workdir, "s1", seed=1, n_patches=6)
    add_slide(workdir, "s2", seed=2, n_patches=4)
    add_slide(workdir, "s3", seed=3, n_patches=0)
    return workdir


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    return save_random_weights(tmp_path / "tiny.safetensors")


@pytest.fixture
def make_weights(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "tiny.pt", *, seed: int = 0, model: str = "test_resnet") -> Path:
        return save_random_weights(tmp_path / name, model, seed)

    return make
