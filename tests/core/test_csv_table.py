"""The one reader of users' small CSV tables (tile's --slides-csv/--mpp-csv, import-features' --slides-csv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from healnet_cli.core.csv_table import read_csv_table
from healnet_cli.core.errors import InputError


@pytest.mark.parametrize("text", ["\ufeffslide_id,mpp\ns1,0.5\n", "slide_id\tmpp\ns1\t0.5\n", "slide_id;mpp\ns1;0.5\n"])
def test_delimiters_and_bom(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    frame = read_csv_table(path, "--mpp-csv")
    assert list(frame.columns) == ["slide_id", "mpp"] and frame.iloc[0].tolist() == ["s1", "0.5"]


def test_missing_and_unreadable_files_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--slides-csv \S+nope.csv: file not found"):
        read_csv_table(tmp_path / "nope.csv", "--slides-csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="--mpp-csv .*not a readable CSV"):
        read_csv_table(tmp_path / "empty.csv", "--mpp-csv")
    # both stages read through it
    import healnet_cli.stages.import_features.slides as imported
    import healnet_cli.stages.tile.inputs as tile

    assert "read_csv_table" in vars(imported) and "read_csv_table" in vars(tile)
