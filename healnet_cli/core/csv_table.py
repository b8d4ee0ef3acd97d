"""Small CSV/TSV tables users hand to a stage (``--slides-csv``, ``--mpp-csv``): one reader.

The delimiter is sniffed from the header line (tab, else ``;`` when the header has no comma, else
comma); a UTF-8 byte-order mark is dropped; every cell is read as text (empty cells stay ``""``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from healnet_cli.core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


def read_csv_table(path: str | Path, what: str) -> pd.DataFrame:
    """The table at ``path`` as text cells; ``what`` names the option in messages (``--slides-csv``).

    Raises
    ------
    InputError
        The file is missing or is not a readable CSV.
    """
    import pandas as pd  # lazily: a run without CSVs does not pay for importing pandas

    if not Path(path).is_file():
        raise InputError(f"{what} {path}: file not found; check the path")
    try:
        with open(path, encoding="utf-8-sig") as handle:
            header = handle.readline()
        sep = "\t" if "\t" in header else (";" if ";" in header and "," not in header else ",")
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{what} {path}: not a readable CSV ({' '.join(str(exc).split())}); fix the file") from exc
