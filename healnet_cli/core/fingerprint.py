"""Fingerprints: of parameters (a stable hash) and of input files (cheap, content-sensitive)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_EDGE_BYTES = 1 << 16


def params_hash(params: Mapping[str, Any], *, length: int = 16) -> str:
    """A stable hex hash of a JSON-serialisable mapping (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """Size, modification time and a hash of the first and last 64 KiB of ``path``.

    Cheap on multi-GB slides yet changes when the file is replaced or edited. Folders (e.g. MIRAX
    companions) are fingerprinted over their files.
    """
    p = Path(path)
    if p.is_dir():
        return combine(file_fingerprint(f) for f in sorted(p.rglob("*")) if f.is_file())
    st = p.stat()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(p, "rb") as handle:
        digest.update(handle.read(_EDGE_BYTES))
        if st.st_size > 2 * _EDGE_BYTES:
            handle.seek(-_EDGE_BYTES, os.SEEK_END)
            digest.update(handle.read(_EDGE_BYTES))
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Full SHA-256 of a file (for provenance of weights files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def combine(fingerprints: Iterable[str]) -> str:
    """Combine several fingerprints into one (order-sensitive)."""
    digest = hashlib.blake2b(digest_size=16)
    for fp in fingerprints:
        digest.update(fp.encode())
        digest.update(b"\0")
    return digest.hexdigest()
