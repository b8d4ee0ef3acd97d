"""Atomic file writes: a temporary file in the destination folder, fsync, then rename.

An interrupted writer (SIGKILL, walltime, node failure) leaves either the old file or the new one,
never a truncated one. Temporary files are named ``.tmp-<target>.<host>+<pid>.<random>`` so that
a sweep (:func:`sweep_temporaries`) can tell those of dead writers from those being written.

Files get the mode the user's umask gives (``0644`` under umask ``022``), like any file the user
creates, so lab-mates sharing a project folder can read the outputs. A write that fails because
the disk or the quota is full raises :class:`~healnet_cli.core.errors.DiskFullError`, naming the
path and the free space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import numbers
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from healnet_cli.core.errors import DiskFullError
from healnet_cli.core.locks import LOCK_TMP_PREFIX, hostname, lease_timing, pid_alive

TMP_PREFIX = ".tmp-"
#: Below this much free space, a failed write is reported as a full disk whatever the library said
#: (torch's zip writer reports ENOSPC as "unexpected pos ...").
LOW_SPACE_BYTES = 64 * 1024 * 1024
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_WORDS = ("no space left", "disk quota exceeded", "quota exceeded")
_TMP_NAME = re.compile(r"^\.tmp-(?P<target>.+)\.(?P<host>[A-Za-z0-9_-]+)\+(?P<pid>\d+)\.[A-Za-z0-9_]+$")
_UMASK_MUTEX = threading.Lock()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse to open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process's umask (from ``/proc/self/status``; elsewhere set and restored under a lock)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as status:
            line = next(line for line in status if line.startswith("Umask:"))
        return int(line.split()[1], 8)
    with _UMASK_MUTEX:  # pragma: no cover - non-Linux
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under the current umask (``0o644`` under ``022``)."""
    return 0o666 & ~current_umask()


def writer_tag() -> str:
    """``<host>+<pid>`` of this process, as embedded in its temporary file names."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', hostname())}+{os.getpid()}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it onto ``path``.

    Use for writers that want a file name (pyarrow, safetensors, h5py, matplotlib). On an
    exception the temporary file is removed and ``path`` is untouched; a full disk or quota is
    raised as :class:`~healnet_cli.core.errors.DiskFullError`.

    Examples
    --------
    >>> with atomic_path(out) as tmp:  # doctest: +SKIP
    ...     table.to_parquet(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.{writer_tag()}.", dir=target.parent)
    except OSError as exc:  # name the target, not the temporary file
        raise disk_full_error(exc, target) or type(exc)(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    mode = file_mode()
    try:
        os.chmod(tmp, mode)
        yield tmp
        _publish(tmp, target, mode)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        full = disk_full_error(exc, target) if isinstance(exc, Exception) else None
        if full is not None:
            raise full from exc
        raise


def _publish(tmp: Path, target: Path, mode: int) -> None:
    """Give the written temporary file its mode, flush it to disk and rename it onto ``target``
    (the seam where a full disk shows: delayed allocation reports ENOSPC at fsync)."""
    os.chmod(tmp, mode)  # the writer may have replaced the file
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (see :func:`json_text`)."""
    return write_text(path, json_text(obj, indent=2) + "\n")


def json_text(obj: Any, *, indent: int | None = None) -> str:
    """``obj`` as valid JSON: sorted keys, non-JSON values stringified, and a NaN or infinity
    written as ``null`` (never the ``NaN`` that JSON parsers refuse). Writers that can produce a
    missing number record why beside it (e.g. ``"reason"``); this is the safety net."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=True, default=str, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral) and not math.isfinite(float(obj)):
        return None
    return obj


# -- full disks ----------------------------------------------------------------------------------
def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent), or None."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_full_error(exc: BaseException, path: str | os.PathLike[str]) -> DiskFullError | None:
    """``exc`` as a :class:`DiskFullError` when it means the disk or quota is full, else None.

    Recognised: ``ENOSPC``/``EDQUOT`` anywhere in the exception chain, their messages in a
    library's own exception, or any failure while less than :data:`LOW_SPACE_BYTES` are free.
    """
    if isinstance(exc, DiskFullError):
        return exc
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and len(chain) < 8:
        chain.append(node)
        node = node.__cause__ or node.__context__
    full = any(isinstance(e, OSError) and e.errno in _FULL_ERRNOS for e in chain)
    full = full or any(word in str(e).lower() for e in chain for word in _FULL_WORDS)
    free = free_bytes(Path(path).parent)
    if not full and not (free is not None and free < LOW_SPACE_BYTES):
        return None
    shown = "unknown" if free is None else format_bytes(free)
    return DiskFullError(
        f"no space left writing {path} ({shown} free on its file system; or the quota is full); finished items are "
        "kept: free some space (or write elsewhere) and rerun the same command to resume",
        path=str(path),
        free_bytes=free,
    )


def format_bytes(n: int) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# -- temporaries of killed writers ---------------------------------------------------------------
def sweep_temporaries(folder: str | os.PathLike[str], *, item: str | None = None, held: bool = False) -> int:
    """Delete temporary files of writers that are gone; return how many were removed.

    Removed: those of dead processes on this host; those of other hosts (or untagged, from an
    older healnet) not modified for the lease expiry, and half-created lock files as old; and, with ``item`` (whose
    lock the caller holds, so no live writer of it exists), that item's temporaries not modified for a heartbeat
    interval (``held``: every temporary of ``folder`` is of something whose lock the caller
    holds). Temporaries of live writers on this host, this process's included, are kept.
    """
    base = Path(folder)
    if not base.is_dir():
        return 0
    timing = lease_timing()
    own_host = writer_tag().split("+")[0]
    removed = 0
    for tmp in base.glob(f"{TMP_PREFIX}*"):
        match = _TMP_NAME.match(tmp.name)
        try:
            age = time.time() - tmp.stat().st_mtime
        except OSError:
            continue
        if match is not None and match["host"] == own_host:
            pid = int(match["pid"])
            stale = pid != os.getpid() and not pid_alive(pid)
        else:
            target = match["target"] if match is not None else tmp.name[len(TMP_PREFIX) :]
            mine = held or (item is not None and target.startswith(f"{item}."))
            stale = age > timing.expiry_s or (mine and age > timing.refresh_s)
        if stale:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    for tmp in base.glob(f"{LOCK_TMP_PREFIX}*"):  # a lock being created when its writer was killed
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > timing.expiry_s:
                tmp.unlink()
                removed += 1
    return removed


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Delete temporaries left in ``folder`` by writers that are gone (see :func:`sweep_temporaries`)."""
    return sweep_temporaries(folder)
