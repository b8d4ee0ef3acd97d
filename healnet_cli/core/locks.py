"""Item locks as leases: created atomically, refreshed by a heartbeat, taken over once their holder
has stopped refreshing them, whichever host it ran on.

A lock file ``<item>.lock`` holds JSON ``{host, pid, token, time, refresh_s}``. It is written
completely under a temporary name and then hard-linked into place (``os.link`` fails when the lock
exists), so no process ever sees a half-written lock. While a process holds locks, a daemon
thread touches them (``os.utime``) every ``refresh_s`` seconds. A lock is stale, and is taken
over, when

* it has not been touched for ``expiry_s`` seconds (the holder was killed, its node failed, or it
  is suspended), on any host; or
* its holder ran on this host and that process no longer exists (taken over at once).

Taking over goes through a short-lived ``<item>.lock.break`` lock, so two contenders never both
remove a stale lock and one of them a fresh one. Releasing checks the token: a process never
removes a lock it does not hold.

Timing, read from the environment at call time (tests shorten it; nothing waits for it):

``HEALNET_LOCK_EXPIRY_S``
    A lock not refreshed for this long is stale (default :data:`DEFAULT_EXPIRY_S`, 5 minutes).
``HEALNET_LOCK_REFRESH_S``
    Heartbeat interval (default :data:`DEFAULT_REFRESH_S`, 30 s; at most a third of the expiry).
``HEALNET_HOSTNAME``
    The host name recorded in locks and temporary files (default ``socket.gethostname()``): for
    tests that simulate a rerun on another node, and for containers whose host name is not unique.

The expiry compares the lock's modification time with the contender's clock, so the nodes' clocks
must agree to well within the expiry (NTP keeps them within milliseconds).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXPIRY_S = 300.0
DEFAULT_REFRESH_S = 30.0
LOCK_TMP_PREFIX = ".lock-tmp-"
BREAK_SUFFIX = ".break"
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def hostname() -> str:
    """This host's name as recorded in locks: ``HEALNET_HOSTNAME`` when set, else the system's."""
    return os.environ.get("HEALNET_HOSTNAME") or socket.gethostname()


@dataclass(frozen=True)
class LeaseTiming:
    """How long a lock lives without a refresh (``expiry_s``) and how often it is refreshed."""

    expiry_s: float
    refresh_s: float


def lease_timing(expiry_s: float | None = None) -> LeaseTiming:
    """The lease timing: ``expiry_s`` when given, else ``HEALNET_LOCK_EXPIRY_S``, else 5 minutes;
    the refresh interval from ``HEALNET_LOCK_REFRESH_S`` (default 30 s), capped at a third of it."""
    expiry = expiry_s if expiry_s is not None else _env_seconds("HEALNET_LOCK_EXPIRY_S", DEFAULT_EXPIRY_S)
    refresh = _env_seconds("HEALNET_LOCK_REFRESH_S", DEFAULT_REFRESH_S)
    return LeaseTiming(expiry_s=expiry, refresh_s=min(refresh, expiry / 3))


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as read from its file (``token`` is None for an unreadable file)."""

    host: str
    pid: int
    token: str | None
    refresh_s: float
    mtime: float
    inode: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    @property
    def age_s(self) -> float:
        return time.time() - self.mtime


def read_holder(path: str | os.PathLike[str]) -> Holder | None:
    """The holder of the lock at ``path``, or None when there is no lock."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        host, pid = str(data.get("host", "?")), int(data.get("pid", -1))
        token = data.get("token")
        refresh = float(data.get("refresh_s", 0.0))
    except (ValueError, TypeError):  # written by a writer that was killed, or by an old healnet
        host, pid, token, refresh = "?", -1, None, 0.0
    return Holder(host, pid, None if token is None else str(token), refresh, st.st_mtime, (st.st_dev, st.st_ino))


def acquire(path: str | os.PathLike[str], *, expiry_s: float | None = None) -> str | None:
    """Take the lock at ``path``; None on success, else who holds it (``host:pid``).

    A stale lock (see the module docstring) is taken over. Taking a lock this process already
    holds succeeds.
    """
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    keeper = _keeper()
    timing = lease_timing(expiry_s)
    holder = read_holder(lock)
    if holder is not None and holder.token is not None and holder.token == keeper.token(lock):
        return None
    token = uuid.uuid4().hex
    payload = json.dumps(
        {"host": hostname(), "pid": os.getpid(), "token": token, "time": time.time(), "refresh_s": timing.refresh_s}
    )
    for _ in range(4):
        if _create_exclusive(lock, payload):
            keeper.add(lock, token, timing.refresh_s)
            return None
        holder = read_holder(lock)
        if holder is None:
            continue  # released in the meantime
        if not is_stale(holder, timing, keeper) or not _break(lock, holder, timing):
            return str(holder)
    return str(read_holder(lock) or "unknown")


def release(path: str | os.PathLike[str]) -> None:
    """Release the lock at ``path`` if this process holds it (another job's lock is left alone)."""
    lock = Path(path)
    token = _keeper().remove(lock)
    holder = read_holder(lock)
    if holder is not None and token is not None and holder.token == token:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def holds(path: str | os.PathLike[str]) -> bool:
    """Whether this process still holds the lock at ``path`` (False once another job took it over)."""
    lock = Path(path)
    token = _keeper().token(lock)
    holder = read_holder(lock)
    return token is not None and holder is not None and holder.token == token


def is_stale(holder: Holder, timing: LeaseTiming, keeper: _LeaseKeeper | None = None) -> bool:
    """Whether ``holder``'s lease is over: not refreshed within the expiry (any host), or its
    process is gone (this host)."""
    if holder.age_s > max(timing.expiry_s, 3 * holder.refresh_s):
        return True
    if holder.host != hostname() or holder.pid <= 0:
        return False
    if holder.pid == os.getpid():  # left by an earlier run in this process, unless held right now
        return keeper is None or holder.token is None or not keeper.holds_token(holder.token)
    return not pid_alive(holder.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _create_exclusive(lock: Path, payload: str) -> bool:
    """Create ``lock`` holding ``payload``, atomically; False when it exists."""
    tmp = lock.parent / f"{LOCK_TMP_PREFIX}{lock.name}.{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except OSError as exc:  # name the lock, not the temporary file
        raise type(exc)(exc.errno, exc.strerror, str(lock)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        try:
            os.link(tmp, lock)
            return True
        except FileExistsError:
            # NFS may report EEXIST for a link whose first reply was lost: the link count tells
            return os.stat(tmp).st_nlink > 1
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            return _create_without_links(lock, payload)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _create_without_links(lock: Path, payload: str) -> bool:
    """For file systems without hard links: exclusive create, then write. A reader may see the
    file empty for a moment; an unreadable lock counts as held until it expires, never as stale."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    return True


def _break(lock: Path, stale: Holder, timing: LeaseTiming) -> bool:
    """Remove the stale lock ``stale`` under the ``.break`` lock (left alone when it changed since it
    was read); False when another process is breaking it right now."""
    breaker = lock.with_name(lock.name + BREAK_SUFFIX)
    payload = json.dumps({"host": hostname(), "pid": os.getpid(), "time": time.time()})
    if not _create_exclusive(breaker, payload):
        other = read_holder(breaker)
        if other is not None and other.age_s > timing.expiry_s:  # a breaker that died mid-way
            with contextlib.suppress(FileNotFoundError):
                breaker.unlink()
        return False
    try:
        current = read_holder(lock)
        if current is not None and current.inode == stale.inode and current.mtime == stale.mtime:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            breaker.unlink()


class _LeaseKeeper:
    """The locks this process holds, and the heartbeat thread that keeps them fresh."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[Path, str] = {}
        self._refresh_s = DEFAULT_REFRESH_S
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, lock: Path, token: str, refresh_s: float) -> None:
        with self._mutex:
            self._held[lock] = token
            self._refresh_s = min(self._refresh_s, refresh_s) if self._thread else refresh_s
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="healnet-lock-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, lock: Path) -> str | None:
        with self._mutex:
            return self._held.pop(lock, None)

    def token(self, lock: Path) -> str | None:
        with self._mutex:
            return self._held.get(lock)

    def holds_token(self, token: str) -> bool:
        with self._mutex:
            return token in self._held.values()

    def reset(self) -> None:
        """In a forked child: it holds no locks and has no heartbeat thread."""
        self._mutex = threading.Lock()
        self._held = {}
        self._wake = threading.Event()
        self._thread = None

    def _beat(self) -> None:
        while True:
            self._wake.wait(self._refresh_s)
            with self._mutex:
                held = dict(self._held)
                if not held:
                    self._thread = None
                    return
            self.refresh(held)

    def refresh(self, held: dict[Path, str]) -> None:
        """Touch each lock of ``held`` (a snapshot of the held locks) that still carries its token;
        forget one taken over by another job, unless this process re-took it since the snapshot."""
        for lock, token in held.items():
            holder = read_holder(lock)
            if holder is None or holder.token != token:  # taken over after our lease expired
                with self._mutex:
                    if self._held.get(lock) == token:
                        del self._held[lock]
                continue
            with contextlib.suppress(OSError):
                os.utime(lock)


_KEEPER: _LeaseKeeper | None = None
_KEEPER_MUTEX = threading.Lock()


def _keeper() -> _LeaseKeeper:
    """The process's lease keeper (one per process: the heartbeat and signal handling are too)."""
    global _KEEPER
    with _KEEPER_MUTEX:
        if _KEEPER is None:
            _KEEPER = _LeaseKeeper()
            os.register_at_fork(after_in_child=_KEEPER.reset)
        return _KEEPER


@contextlib.contextmanager
def waiting_for(path: str | os.PathLike[str], *, timeout_s: float = 10.0, poll_s: float = 0.02) -> Iterator[bool]:
    """Hold the lock at ``path`` for a short critical section, waiting up to ``timeout_s`` for it.

    Yields True when the lock was taken, False when it could not be taken in time (the caller
    goes on without it: for best-effort merges, never for item outputs).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        taken = acquire(path) is None
        if taken or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    try:
        yield taken
    finally:
        if taken:
            release(path)
