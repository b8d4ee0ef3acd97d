"""The artifact store: per-item outputs committed by a manifest written last.

Each item (a slide, a modality table) owns a few output files in a stage folder and one manifest,
``<item>.manifest.json``, recording the parameters' hash, the input's fingerprint, the package
version and the size and modification time of every output. The manifest is the commit marker:

1. :meth:`ArtifactStore.invalidate` removes the old manifest before any output is rewritten;
2. the stage writes its outputs atomically (:mod:`healnet_cli.core.atomic`);
3. :meth:`ArtifactStore.commit` writes the manifest atomically, last.

An item is reused only when its manifest matches the current parameters, input and version and
every output is still the file that was committed (:meth:`ArtifactStore.is_fresh`). A job killed at
any point therefore leaves either a committed item or one that the rerun recomputes.

Exclusive-create lock files (``<item>.lock``, holding host, pid and time) keep two jobs from
writing the same item; locks of dead processes on the same host, or older than ``stale_after_s``,
are taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli import __version__
from healnet_cli.core import atomic
from healnet_cli.core.fingerprint import params_hash as hash_params

MANIFEST_SUFFIX = ".manifest.json"
LOCK_SUFFIX = ".lock"


@dataclass
class ItemRecord:
    """What a manifest holds for one committed item."""

    item: str
    stage: str
    params_hash: str
    input_fingerprint: str
    version: str
    outputs: dict[str, dict[str, int]]
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    seconds: float = 0.0


class ArtifactStore:
    """Per-item artifacts of one stage in one folder, cached on parameters and input fingerprints.

    Parameters
    ----------
    folder
        Where the stage writes its per-item outputs and manifests.
    stage
        Stage name recorded in manifests (``"tile"``, ``"extract"``, ...).
    params
        The parameters that determine the outputs (JSON-serialisable). Their hash keys the cache.
    """

    def __init__(self, folder: str | os.PathLike[str], stage: str, params: Mapping[str, Any]):
        self.folder = Path(folder)
        self.stage = stage
        self.params = dict(params)
        self.params_hash = hash_params(self.params)

    # -- paths -------------------------------------------------------------------------------
    def manifest_path(self, item: str) -> Path:
        return self.folder / f"{item}{MANIFEST_SUFFIX}"

    def lock_path(self, item: str) -> Path:
        return self.folder / f"{item}{LOCK_SUFFIX}"

    def output_path(self, item: str, suffix: str) -> Path:
        """The path of one of ``item``'s outputs, e.g. ``output_path("s1", ".parquet")``."""
        return self.folder / f"{item}{suffix}"

    # -- reading -----------------------------------------------------------------------------
    def read_record(self, item: str) -> ItemRecord | None:
        """The committed record of ``item``, or None when absent or unreadable."""
        try:
            data = json.loads(self.manifest_path(item).read_text())
            return ItemRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def is_fresh(self, item: str, input_fingerprint: str) -> bool:
        """True when ``item`` was committed with these parameters, this input and this version,
        and its outputs are untouched since."""
        record = self.read_record(item)
        if record is None:
            return False
        if (record.params_hash, record.input_fingerprint, record.version) != (
            self.params_hash,
            input_fingerprint,
            __version__,
        ):
            return False
        return all(_stat_matches(self.folder / name, st) for name, st in record.outputs.items())

    def committed_items(self) -> list[str]:
        """Items with a manifest in this folder (any parameters)."""
        return sorted(p.name[: -len(MANIFEST_SUFFIX)] for p in self.folder.glob(f"*{MANIFEST_SUFFIX}"))

    # -- writing -----------------------------------------------------------------------------
    def invalidate(self, item: str) -> None:
        """Remove ``item``'s manifest so that a half-rewritten item is never taken for done."""
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(item).unlink()

    def commit(
        self,
        item: str,
        input_fingerprint: str,
        outputs: Iterable[str | os.PathLike[str]],
        *,
        meta: Mapping[str, Any] | None = None,
        seconds: float = 0.0,
    ) -> ItemRecord:
        """Write ``item``'s manifest (atomically, last) over its already written ``outputs``."""
        stats = {}
        for out in outputs:
            path = Path(out)
            st = path.stat()
            stats[os.path.relpath(path, self.folder)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        record = ItemRecord(
            item=item,
            stage=self.stage,
            params_hash=self.params_hash,
            input_fingerprint=input_fingerprint,
            version=__version__,
            outputs=stats,
            meta=dict(meta or {}),
            created=time.time(),
            seconds=round(seconds, 4),
        )
        atomic.write_json(self.manifest_path(item), asdict(record))
        return record

    # -- locks -------------------------------------------------------------------------------
    def acquire_lock(self, item: str, *, stale_after_s: float = 24 * 3600) -> str | None:
        """Take ``item``'s lock; return None on success, else who holds it (``host:pid``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.lock_path(item)
        payload = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _lock_holder(path)
                if holder is None or _lock_is_stale(holder, stale_after_s):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    continue
                return f"{holder.get('host')}:{holder.get('pid')}"
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            return None
        return "unknown"

    def release_lock(self, item: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.lock_path(item).unlink()


def _stat_matches(path: Path, expected: Mapping[str, int]) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == expected.get("size") and st.st_mtime_ns == expected.get("mtime_ns")


def _lock_holder(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _lock_is_stale(holder: Mapping[str, Any], stale_after_s: float) -> bool:
    if time.time() - float(holder.get("time", 0)) > stale_after_s:
        return True
    if holder.get("host") != socket.gethostname():
        return False
    pid = int(holder.get("pid", -1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
