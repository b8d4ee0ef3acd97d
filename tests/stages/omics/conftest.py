"""Fixtures for the omics stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from omics_factory import wide_frame


@pytest.fixture
def wide_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tcga_toy_all_clean.csv"
    wide_frame(slides_per_patient=1).to_csv(path)  # unnamed integer index first, as the study tables
    return path
