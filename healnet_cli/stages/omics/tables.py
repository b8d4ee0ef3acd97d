"""Reading omics tables: CSV / TSV / TXT (delimiter sniffed), optionally .gz / .zip, and Parquet.

Every problem with the file itself (empty, unreadable compression, duplicate column names, ragged
rows) is an :class:`~healnet_cli.core.errors.InputError` naming the file, the problem and the fix.
The reader is pyarrow's multi-threaded CSV parser: columns the caller declares numeric are parsed
straight to float32; when such a column holds text, the file is re-read with inferred types so the
text cells can be coerced and reported (see :mod:`healnet_cli.stages.omics.clean`).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import pyarrow as pa

from healnet_cli.core.errors import InputError

INDEX_NAME = ""  # an unnamed first column (pandas' written index)
NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "-nan", "NULL", "null", "None", "#N/A", "#NA", "-", "."]
_DELIMITERS = ("\t", ",", ";", "|")
_PREVIEW_LINES = 32
_PARQUET_MAGIC = b"PAR1"
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")
_DECIMAL_POINT = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True)
class TableHead:
    """What a table's first lines say: its column names and the first column's first values."""

    path: Path
    fmt: str  # "text" or "parquet"
    delimiter: str
    columns: list[str]
    first_values: list[str]
    decimal: str = "."  # "," for tables written with decimal commas (e.g. ';'-separated European exports)
    decimal_note: str = ""  # both decimal commas and points seen (see sniff_decimal)

    def decimal_text(self, values: list) -> list:
        """Text values with the table's decimal comma as a point (``"12,5"`` → ``"12.5"``)."""
        if self.decimal == ".":
            return values
        return [v.replace(",", ".") if isinstance(v, str) and _DECIMAL_COMMA.match(v.strip()) else v for v in values]


def _suffixes(path: Path) -> list[str]:
    return [s.lower() for s in path.suffixes]


def _open_binary(path: Path) -> IO[bytes]:
    """A binary stream of the decompressed file content."""
    suffixes = _suffixes(path)
    try:
        if suffixes and suffixes[-1] == ".gz":
            return cast(IO[bytes], gzip.open(path, "rb"))
        if suffixes and suffixes[-1] == ".zip":
            archive = zipfile.ZipFile(path)
            members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members[:5]) or "nothing"
                raise InputError(
                    f"{path}: a zip archive must hold exactly one table, it holds {names}; unzip it and pass the table"
                )
            return archive.open(members[0])
        return open(path, "rb")
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(
            f"{path}: cannot open the compressed file ({exc}); check that it is a valid "
            f"{suffixes[-1] if suffixes else ''} file or pass the uncompressed table"
        ) from exc


def _is_parquet(path: Path) -> bool:
    if _suffixes(path)[-1:] in ([".parquet"], [".pq"]):
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _PARQUET_MAGIC
    except OSError:
        return False


def _preview_lines(path: Path) -> list[str]:
    """The first lines of a text table (decompressed, decoded), without line ends."""
    lines: list[str] = []
    try:
        with _open_binary(path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
            for line in text:
                lines.append(line.rstrip("\r\n"))
                if len(lines) >= _PREVIEW_LINES:
                    break
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot decompress it ({exc}); re-download the file or pass it uncompressed") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def sniff_delimiter(header: str, path: Path) -> str:
    """The delimiter of a text table from its header line (tab, comma, semicolon or pipe)."""
    counts = {d: header.count(d) for d in _DELIMITERS}
    if _suffixes(path)[:1] in ([".tsv"], [".tab"]) and counts["\t"]:
        return "\t"
    best = max(_DELIMITERS, key=lambda d: counts[d])
    if counts[best] == 0:
        raise InputError(
            f"{path}: no delimiter (tab, comma, semicolon or pipe) in the first line; "
            "a table needs an identifier column and at least one feature column"
        )
    return best


def check_columns(columns: list[str], path: Path) -> None:
    """Fail on duplicate column names (pandas would silently rename them to ``x.1``)."""
    counts = Counter(columns)
    duplicated = [name for name, n in counts.items() if n > 1 and name != INDEX_NAME]
    if duplicated:
        shown = ", ".join(repr(n) for n in duplicated[:5])
        more = f" and {len(duplicated) - 5} more" if len(duplicated) > 5 else ""
        raise InputError(
            f"{path}: duplicate column names {shown}{more}; rename or remove the duplicates so each column is unique"
        )


def read_head(path: str | Path) -> TableHead:
    """Column names and the first column's first values, reading only the first lines."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: table not found; check the path")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file; pass a table with a header row and one row per sample")
    if _is_parquet(p):
        return _parquet_head(p)
    lines = _preview_lines(p)
    if not lines:
        raise InputError(f"{p}: empty file (no header row); pass a table with a header row and one row per sample")
    delimiter = sniff_delimiter(lines[0], p)
    rows = list(csv.reader(lines, delimiter=delimiter))
    columns = [c.strip() for c in rows[0]]
    if columns and columns[0].startswith("Unnamed: 0"):
        columns[0] = INDEX_NAME
    check_columns(columns, p)
    if len(rows) < 2:
        raise InputError(f"{p}: only a header row, no data rows; pass a table with one row per sample")
    first_values = [r[0].strip() for r in rows[1:] if r]
    decimal, note = sniff_decimal(rows, delimiter)
    return TableHead(p, "text", delimiter, columns, first_values, decimal, note)


def sniff_decimal(rows: list[list[str]], delimiter: str) -> tuple[str, str]:
    """The decimal separator of a text table's first rows and, when both styles appear, a note.

    ``","`` when numbers are written with decimal commas (``12,5``; only possible when the
    delimiter is not a comma) and none with decimal points; else ``"."``. When both appear (a
    column of lists such as ``1,2`` beside decimals, or a half-converted export), the table is read
    with decimal points and the note names one example of each: the comma values then become
    missing and are reported like any non-numeric cell.
    """
    if delimiter == ",":
        return ".", ""
    comma = point = None
    header = rows[0]
    for row in rows[1:]:
        for name, value in zip(header[1:], row[1:], strict=False):
            text = value.strip()
            if comma is None and _DECIMAL_COMMA.match(text):
                comma = (name, text)
            elif point is None and _DECIMAL_POINT.match(text):
                point = (name, text)
    if comma and point:
        return ".", (
            f"numbers with decimal commas ({comma[1]!r} in column {comma[0]!r}) and decimal points ({point[1]!r} in "
            f"column {point[0]!r}): read with decimal points, so the comma values become missing; "
            "save the table with one decimal separator"
        )
    return ("," if comma else "."), ""


def _parquet_head(path: Path) -> TableHead:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        first = (
            parquet.read_row_group(0, columns=names[:1]).column(0).to_pylist()[:_PREVIEW_LINES]
            if parquet.num_row_groups
            else []
        )
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types on corrupt files
        raise InputError(f"{path}: not a readable Parquet file ({exc}); re-export it or pass a CSV") from exc
    columns = [INDEX_NAME if n == "__index_level_0__" else n for n in names]
    check_columns(columns, path)
    if not first:
        raise InputError(f"{path}: empty table (no rows); pass a table with one row per sample")
    return TableHead(path, "parquet", "", columns, [str(v) for v in first])


def read_full(
    head: TableHead,
    *,
    float_columns: Iterable[str] = (),
    string_columns: Iterable[str] = (),
    only: Sequence[str] | None = None,
) -> pa.Table:
    """Read the whole table; ``float_columns`` are parsed as float32 and ``string_columns`` as text.

    Raises :class:`ValueError` (not InputError) when a declared float column holds text, so the
    caller can retry with inferred types; file-level problems raise InputError. ``only`` reads just
    those columns.
    """
    if head.fmt == "parquet":
        return _read_parquet(head, only)
    from pyarrow import csv as pacsv

    names = [f"column_{i}" if c == INDEX_NAME and i == 0 else c for i, c in enumerate(head.columns)]
    types: dict[str, pa.DataType] = {c: pa.float32() for c in float_columns}
    types.update({c: pa.string() for c in string_columns})
    types[names[0]] = pa.string()  # the index, the identifier or the feature-name column
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 26)
    parse_options = pacsv.ParseOptions(delimiter=head.delimiter, newlines_in_values=False)
    include = [names[head.columns.index(c)] for c in only] if only is not None else []
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        include_columns=include,
        decimal_point=head.decimal,
    )
    try:
        with _open_binary(head.path) as raw:
            table = pacsv.read_csv(raw, read_options=read_options, parse_options=parse_options, convert_options=convert)
    except pa.ArrowInvalid as exc:
        message = " ".join(str(exc).split())
        if "conversion error" in message.lower() or "in CSV column" in message:
            raise ValueError(message) from exc
        raise InputError(
            f"{head.path}: malformed table ({message[:300]}); fix the file (every row needs as many fields as the "
            "header)"
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{head.path}: cannot read or decompress it ({exc}); re-download the file or pass it uncompressed"
        ) from exc
    return table.rename_columns(list(only) if only is not None else head.columns)


def _read_parquet(head: TableHead, only: Sequence[str] | None = None) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        names = [head.columns.index(c) for c in only] if only is not None else None
        table = pq.read_table(head.path)
        if only is not None:  # names were looked up from only
            table = table.select(names)
            return table.rename_columns(list(only))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{head.path}: not a readable Parquet file ({exc}); re-export it or pass a CSV") from exc
    return table.rename_columns(head.columns)
