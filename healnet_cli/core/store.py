"""The artifact store: per-item outputs committed by a manifest written last.

Each item (a slide, a modality table) owns a few output files in a stage folder and one manifest,
``<item>.manifest.json``, recording the parameters' hash (which covers the stage's algorithm
version), the input's fingerprint, the package version (for the record) and the size and
modification time of every output. The manifest is the commit marker:

1. :meth:`ArtifactStore.invalidate` removes the old manifest before any output is rewritten;
2. the stage writes its outputs atomically (:mod:`healnet_cli.core.atomic`);
3. :meth:`ArtifactStore.commit` removes the outputs of the old manifest that were not written
   again (e.g. an export no longer asked for), then writes the manifest atomically, last.

An item is reused only when its manifest matches the current parameters, algorithm version and
input and every output is still the file that was committed (:meth:`ArtifactStore.is_fresh`). Each
stage owns an ``ALGORITHM_VERSION`` constant that a change to what its code computes bumps (new
resize code, new cleaning rules); the package version does not key the cache. A job killed at
any point therefore leaves either a committed item or one that the rerun recomputes.

Lock files (``<item>.lock``) keep two jobs from writing the same item. They are leases
(:mod:`healnet_cli.core.locks`): created atomically, refreshed by a heartbeat while held, and taken
over minutes after their holder stopped, on whichever host it ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli import __version__
from healnet_cli.core import atomic, locks
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
    algorithm: int | None = None
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
    algorithm
        The stage's algorithm version (its ``ALGORITHM_VERSION``), hashed with ``params``: bumping
        it recomputes every item. Every stage's store gives it (``tests/core/test_store.py`` checks);
        a store only read or locked through leaves it out.
    """

    def __init__(
        self, folder: str | os.PathLike[str], stage: str, params: Mapping[str, Any], *, algorithm: int | None = None
    ):
        self.folder = Path(folder)
        self.stage = stage
        self.params = dict(params)
        self.algorithm = algorithm
        keyed = self.params if algorithm is None else {**self.params, "algorithm": int(algorithm)}
        self.params_hash = hash_params(keyed)
        self._previous: dict[str, list[str]] = {}

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
        """True when ``item`` was committed with these parameters, this algorithm version and this
        input, and its outputs are untouched since."""
        record = self.read_record(item)
        if record is None:
            return False
        if (record.params_hash, record.input_fingerprint) != (self.params_hash, input_fingerprint):
            return False
        return all(_stat_matches(self.folder / name, st) for name, st in record.outputs.items())

    # -- writing -----------------------------------------------------------------------------
    def invalidate(self, item: str) -> None:
        """Remove ``item``'s manifest so that a half-rewritten item is never taken for done.

        The outputs it listed are remembered: :meth:`commit` removes those not written again.
        """
        record = self.read_record(item)
        if record is not None:
            self._previous[item] = list(record.outputs)
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
            algorithm=self.algorithm,
            created=time.time(),
            seconds=round(seconds, 4),
        )
        self._remove_stale_outputs(item, set(stats))
        atomic.write_json(self.manifest_path(item), asdict(record))
        return record

    def _remove_stale_outputs(self, item: str, current: set[str]) -> None:
        """Delete the outputs of ``item``'s previous commit that this commit does not list."""
        root = self.folder.resolve()
        for name in self._previous.pop(item, []):
            path = (self.folder / name).resolve()
            if name in current or root not in path.parents:
                continue
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                path.unlink()

    # -- locks -------------------------------------------------------------------------------
    def acquire_lock(self, item: str, *, stale_after_s: float | None = None) -> str | None:
        """Take ``item``'s lock; return None on success, else who holds it (``host:pid``).

        ``stale_after_s`` overrides the lease expiry (default: ``HEALNET_LOCK_EXPIRY_S`` or 5
        minutes); see :mod:`healnet_cli.core.locks`.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        return locks.acquire(self.lock_path(item), expiry_s=stale_after_s)

    def release_lock(self, item: str) -> None:
        """Release ``item``'s lock if this process holds it."""
        locks.release(self.lock_path(item))

    def holds_lock(self, item: str) -> bool:
        """Whether this process still holds ``item``'s lock (False once it was taken over)."""
        return locks.holds(self.lock_path(item))


def _stat_matches(path: Path, expected: Mapping[str, int]) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == expected.get("size") and st.st_mtime_ns == expected.get("mtime_ns")
