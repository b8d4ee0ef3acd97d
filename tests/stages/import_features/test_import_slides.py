"""--slides-csv of import-features: column aliases, file names as slide ids, TCGA fallback, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from healnet_cli.core.errors import InputError
from healnet_cli.stages.import_features.slides import read_slide_table


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slides.csv"
    path.write_text(text)
    return path


def test_aliases_file_names_and_fallbacks(tmp_path: Path) -> None:
    table = read_slide_table(_csv(tmp_path, "FILENAME\tPATIENT\tmpp\ncohort/S1.svs\tP1\t0.25\nS2.h5\tP2\t\n"))
    assert table.cases == {"S1": "P1", "S2": "P2"} and table.mpp == {"S1": 0.25}
    assert table.case_of("TCGA-AB-1234-01Z-00-DX1") == "TCGA-AB-1234" and table.case_of("other") == "other"
    assert read_slide_table(None).case_of("S1") == "S1"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name,who\nS1,P1\n", "needs a slide column"),
        ("slide_id,case_id,mpp\nS1,P1,-0.5\n", r"row 2: mpp '-0.5' is not a positive number"),
        ("slide_id,case_id,mpp\nS1,P1,0.25\nS1.svs,P1,0.5\n", "listed again with mpp 0.5"),
    ],
)
def test_bad_tables(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        read_slide_table(_csv(tmp_path, text))
    with pytest.raises(InputError, match="file not found"):
        read_slide_table(tmp_path / "missing.csv")
