"""Reading tables (formats, malformed files) and telling their orientation apart."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from healnet_cli.core.errors import InputError
from healnet_cli.stages.omics.identifiers import COLUMNS, ROWS, detect_layout
from healnet_cli.stages.omics.tables import read_full, read_head

CSV = "case_id,g1,g2\nP1,1.5,2\nP2,3,4\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("t.csv", lambda p: _write(p, CSV)),
        ("t.tsv", lambda p: _write(p, CSV.replace(",", "\t"))),
        ("t.txt", lambda p: _write(p, CSV.replace(",", ";"))),
        ("t.csv.gz", lambda p: p.write_bytes(gzip.compress(CSV.encode()))),
        ("t.csv.zip", lambda p: zipfile.ZipFile(p, "w").writestr("inner.csv", CSV)),
        ("t.parquet", lambda p: pd.read_csv(pd.io.common.StringIO(CSV)).to_parquet(p)),
    ],
)
def test_formats_read_the_same(tmp_path: Path, name: str, writer) -> None:
    path = tmp_path / name
    writer(path)
    head = read_head(path)
    assert head.columns == ["case_id", "g1", "g2"]
    table = read_full(head, float_columns=["g1", "g2"], string_columns=["case_id"])
    assert table.column("case_id").to_pylist() == ["P1", "P2"]
    assert table.column("g1").to_pylist() == [1.5, 3.0]


def test_unnamed_first_column_is_an_index(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"case_id": ["P1"], "g1_rnaseq": [1.0]}).to_csv(path)
    head = read_head(path)
    assert head.columns == ["", "case_id", "g1_rnaseq"]
    assert detect_layout(head).id_column == "case_id"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        ("case_id,g1\n", "only a header row"),
        ("case_id,g1,g1\nP1,1,2\n", "duplicate column names 'g1'"),
        ("caseid\nP1\n", "no delimiter"),
    ],
)
def test_malformed_tables_name_file_problem_and_fix(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=match) as info:
        read_head(path)
    assert str(path) in str(info.value)


def test_unreadable_compression_and_ragged_rows(tmp_path: Path) -> None:
    bad_gz = tmp_path / "t.csv.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="cannot decompress"):
        read_head(bad_gz)
    bad_zip = tmp_path / "t.csv.zip"
    bad_zip.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match="compressed file"):
        read_head(bad_zip)
    ragged = _write(tmp_path / "r.csv", "case_id,g1\nP1,1\nP2,2,3\n")
    with pytest.raises(InputError, match="malformed table"):
        read_full(read_head(ragged))


def test_text_in_a_declared_float_column_asks_for_a_retry(tmp_path: Path) -> None:
    head = read_head(_write(tmp_path / "t.csv", "case_id,g1\nP1,1\nP2,oops\n"))
    with pytest.raises(ValueError, match="oops"):
        read_full(head, float_columns=["g1"])
    assert read_full(head).column("g1").to_pylist() == ["1", "oops"]


@pytest.mark.parametrize(
    ("text", "orientation", "where"),
    [
        ("patient_id,g1\nX1,1\n", ROWS, "patient_id"),
        ("sample,TCGA-AA-0001-01A,TCGA-AA-0002-01A\ng1,1,2\n", COLUMNS, "sample"),  # Xena matrices
        ("gene,TCGA-AA-0001-01A,TCGA-AA-0002-01A\ng1,1,2\n", COLUMNS, "gene"),
        ("x,TCGA-AA-0001-01A,TCGA-AA-0002-01A\ng1,1,2\n", COLUMNS, "x"),
        ("x,g1\nTCGA-AA-0001-01A,1\nTCGA-AA-0002-01A,2\n", ROWS, "x"),
        ("Hugo_Symbol,S1,S2\nTP53,1,2\n", COLUMNS, "Hugo_Symbol"),
    ],
)
def test_orientation_detection(tmp_path: Path, text: str, orientation: str, where: str) -> None:
    layout = detect_layout(read_head(_write(tmp_path / "t.csv", text)))
    assert layout.orientation == orientation
    assert (layout.id_column if orientation == ROWS else layout.feature_column) == where


def test_cbioportal_annotation_columns_are_dropped(tmp_path: Path) -> None:
    text = "Hugo_Symbol\tEntrez_Gene_Id\tTCGA-AA-0001-01\tTCGA-AA-0002-01\nTP53\t7157\t1\t2\n"
    layout = detect_layout(read_head(_write(tmp_path / "t.txt", text)))
    assert layout.sample_columns == ("TCGA-AA-0001-01", "TCGA-AA-0002-01")
    assert layout.annotation_columns == ("Entrez_Gene_Id",)


def test_ambiguous_orientation_and_missing_id_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "x,g1\nA,1\n")
    with pytest.raises(InputError, match="cannot tell whether samples are rows or columns.*--orientation"):
        detect_layout(read_head(path))
    assert detect_layout(read_head(path), orientation=ROWS).id_column == "x"
    with pytest.raises(InputError, match=r"no identifier column 'patient' \(columns: 'x', 'g1'\); pass --id-col"):
        detect_layout(read_head(path), id_col="patient")
    numeric = _write(tmp_path / "n.csv", "x,g1\n1,1\n2,2\n")
    with pytest.raises(InputError, match="missing identifier column.*holds numbers.*--id-col"):
        detect_layout(read_head(numeric), orientation=ROWS)


def test_non_utf8_text_and_id_col_with_transposed_orientation(tmp_path: Path) -> None:
    from healnet_cli.core.console import Console
    from healnet_cli.core.workspace import Workspace
    from healnet_cli.stages.omics import OmicsConfig, TableSpec, run_omics

    path = tmp_path / "latin1.csv"
    path.write_bytes("case_id,g1_rnaseq\nP\xe9,1\nP2,2\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin1.csv: cannot parse the table.*UTF-8"):
        run_omics(
            OmicsConfig(tables=(TableSpec(path),)), workspace=Workspace.at(tmp_path / "w"), console=Console(quiet=True)
        )
    with pytest.raises(InputError, match="--id-col"):
        detect_layout(read_head(_write(tmp_path / "t.csv", CSV)), orientation=COLUMNS, id_col="case_id")


@pytest.mark.parametrize(
    ("text", "decimal"),
    [("a;b;c\nP1;1,5;2\nP2;-0,25;3\n", ","), ("a\tb\nP1\t1,5\n", ","), ("a;b\nP1;1.5\n", "."), ("a,b\nP1,1.5\n", "."),
     ("a;b\nP1;1\n", ".")],
)  # fmt: skip
def test_decimal_commas_are_detected(tmp_path: Path, text: str, decimal: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(text)
    assert read_head(path).decimal == decimal
