"""Parquet tables with healnet metadata (a JSON object under the schema-metadata key ``healnet``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from healnet_cli import __version__
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

META_KEY = b"healnet"


def write_table(path: str | os.PathLike[str], frame: pd.DataFrame, meta: dict[str, Any], *, schema: str) -> Path:
    """Atomically write ``frame`` (index kept) with ``meta`` + schema name + version as metadata."""
    return write_arrow(path, pa.Table.from_pandas(frame, preserve_index=True), meta, schema=schema)


def write_arrow(path: str | os.PathLike[str], table: pa.Table, meta: dict[str, Any], *, schema: str) -> Path:
    """Atomically write an Arrow ``table`` with ``meta`` + schema name + version as metadata (no
    pandas needed: ``healnet tile`` does not import it)."""
    table = attach_meta(table, {**meta, "schema": schema})
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def attach_meta(table: pa.Table, payload: dict[str, Any]) -> pa.Table:
    """``table`` with ``payload`` (+ the healnet version) as its healnet metadata: the one encoder."""
    meta = {**payload, "healnet_version": __version__}
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta, default=str).encode()}
    )


def decode_meta(metadata: dict[bytes, bytes] | None) -> dict[str, Any] | None:
    """The healnet JSON object of a Parquet schema's metadata (None when absent): the one decoder."""
    raw = (metadata or {}).get(META_KEY)
    return json.loads(raw) if raw is not None else None


def read_meta(path: str | os.PathLike[str], *, schema: str, hint: str, unversioned: bool = False) -> dict[str, Any]:
    """The healnet metadata of a Parquet file, checked against ``schema``; reads no rows: the one
    reader of that metadata. ``unversioned`` accepts files written before the format had a schema
    name (no metadata, or metadata without ``schema``: schema-1 run tables)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_one_line(exc)}); {hint}") from exc
    meta = decode_meta(metadata)
    if unversioned and (meta is None or "schema" not in meta):
        return meta or {}
    if meta is None:
        raise InputError(f"{path}: no healnet metadata (not written by healnet); {hint}")
    found = meta.get("schema", "")
    if found.split("/")[0] != schema.split("/")[0]:
        raise InputError(f"{path}: schema {found!r}, expected {schema!r}; {hint}")
    if found != schema:
        raise InputError(f"{path}: schema version {found!r} is not {schema!r}; {hint} with this healnet version")
    return meta


def read_table(
    path: str | os.PathLike[str], *, schema: str, hint: str, unversioned: bool = False
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a healnet Parquet table and its metadata (schema checked; ``unversioned`` as in :func:`read_meta`)."""
    meta = read_meta(path, schema=schema, hint=hint, unversioned=unversioned)
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: cannot read the table ({_one_line(exc)}); {hint}") from exc
    return frame, meta


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
