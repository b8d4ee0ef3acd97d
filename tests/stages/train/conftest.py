"""Fixtures of the train-stage tests: tiny synthetic workspaces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "healnet_train_factories", Path(__file__).resolve().parents[2] / "data" / "factories.py"
)
factories = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(factories)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """40 patients with rna (12 features) and cnv (5), some cnv missing, and toy WSI bags."""
    return factories.make_workspace(tmp_path / "ws", wsi=True, missing={"cnv": 0.2, "wsi": 0.25})


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Toy models: one intra-op thread is as fast and avoids oversubscription on shared CI cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
