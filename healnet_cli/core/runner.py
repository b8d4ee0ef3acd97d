"""The batch loop every per-item stage shares: skip fresh items, lock, process, commit, record.

A stage supplies the list of :class:`WorkItem` and a ``process`` function that writes the item's
outputs (atomically) and returns them as an :class:`ItemResult`. Failures of one item are recorded
with a one-line reason and the batch goes on, unless ``on_error="fail"``. Two things stop the
batch whatever ``on_error`` says: a full disk (:class:`~healnet_cli.core.errors.DiskFullError`,
every further write would fail too) and SIGTERM/SIGINT; both release the item's lock first and keep
every finished item.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from healnet_cli.core import atomic
from healnet_cli.core.console import Console, json_result
from healnet_cli.core.errors import InputError, one_line
from healnet_cli.core.status import HELD_PREFIX, StatusTable
from healnet_cli.core.store import ArtifactStore

OnError = Literal["continue", "fail"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("continue", "fail")


def check_on_error(value: str) -> OnError:
    """``--on-error`` checked (the one check every stage's options use).

    Raises
    ------
    InputError
        ``value`` is not ``continue`` or ``fail``.
    """
    if value not in ON_ERROR_CHOICES:
        raise InputError(f"--on-error {value!r} is not one of: {', '.join(ON_ERROR_CHOICES)}")
    return value  # narrowed to OnError by the membership check above


@dataclass
class WorkItem:
    """One unit of work: its id (file-name safe), what the stage needs to process it, and the
    fingerprint of its input (keys the cache together with the parameters)."""

    id: str
    source: Any
    fingerprint: str


@dataclass
class ItemResult:
    """What ``process`` wrote for one item."""

    outputs: list[Path]
    meta: dict[str, Any] = field(default_factory=dict)
    warning: str = ""


def run_items(
    items: Sequence[WorkItem],
    process: Callable[[WorkItem], ItemResult],
    *,
    store: ArtifactStore,
    status: StatusTable,
    console: Console,
    force: bool = False,
    on_error: OnError = "continue",
    debug: bool = False,
    description: str = "",
) -> StatusTable:
    """Process ``items`` one by one into ``store``, recording each outcome in ``status``.

    Fresh items (same parameters, input and version, outputs untouched) are skipped unless
    ``force``. Each item is locked while it is written, its old manifest removed first and the new
    one committed last, so a killed job never leaves a half-written item that counts as done.
    """
    store.folder.mkdir(parents=True, exist_ok=True)
    for item in console.track(items, total=len(items), description=description or status.stage):
        if not claim(item, store=store, status=status, console=console, force=force):
            continue
        start = time.perf_counter()
        try:
            write_item(item, functools.partial(process, item), store=store, status=status, console=console, start=start)
        except KeyboardInterrupt:
            done = status.counts()["done"]
            console.error(
                f"{status.stage}: interrupted while writing {item.id} ({done} item(s) finished in this run are kept)"
            )
            raise
        except Exception as exc:  # one bad item never sinks the batch
            full = atomic.disk_full_error(exc, store.folder / item.id)
            reason = one_line(full or exc)
            status.add(item.id, "failed", reason=reason, seconds=time.perf_counter() - start)
            console.error(f"{item.id}: {reason}")
            if debug:
                traceback.print_exc()
            if full is not None:
                raise full from exc
            if on_error == "fail":
                break
        finally:
            store.release_lock(item.id)
    return status


def write_item(
    item: WorkItem,
    write: Callable[[], ItemResult],
    *,
    store: ArtifactStore,
    status: StatusTable,
    console: Console,
    start: float,
) -> bool:
    """The commit protocol for one locked item, the one every stage uses (``run_items`` and
    extract's streaming loop): sweep the item's stale temporaries, remove its old manifest, let
    ``write`` write its outputs atomically, and commit the new manifest last — unless this job lost
    the item's lock meanwhile (then it is left to the job that took it over). Records the outcome
    in ``status``; True when committed. ``start`` is the ``time.perf_counter()`` the item's time
    counts from. Exceptions from ``write`` propagate (the caller records the failure)."""
    atomic.sweep_temporaries(store.folder, item=item.id)
    store.invalidate(item.id)
    result = write()
    seconds = time.perf_counter() - start
    if not store.holds_lock(item.id):  # suspended past the lease expiry: another job took it over
        status.add(item.id, "skipped", reason=f"{HELD_PREFIX}another job: this job's lock expired while it wrote")
        console.warn(
            f"{item.id}: the lock expired while it was written (job suspended?); left to the job that took it over"
        )
        return False
    store.commit(item.id, item.fingerprint, result.outputs, meta=result.meta, seconds=seconds)
    status.add(item.id, "done", seconds=seconds, warning=result.warning)
    if result.warning:
        console.warn(f"{item.id}: {result.warning}")
    return True


def claim(item: WorkItem, *, store: ArtifactStore, status: StatusTable, console: Console, force: bool) -> bool:
    """Whether ``item`` is to be written now: False (recorded as skipped) when it is fresh or another
    live job holds its lock; True once its lock is taken (release it with ``store.release_lock``).

    An item held by another job is not a failure: that job writes it. If that job dies, its lease
    expires within minutes and a rerun takes the item over.
    """
    if not force and store.is_fresh(item.id, item.fingerprint):
        status.add(item.id, "skipped", reason="fresh")
        return False
    holder = store.acquire_lock(item.id)
    if holder is not None:
        reason = f"{HELD_PREFIX}{holder} (another job is writing it)"
        status.add(item.id, "skipped", reason=reason)
        console.info(f"{item.id}: skipped, {reason}")
        return False
    if not force and store.is_fresh(item.id, item.fingerprint):  # committed by that job meanwhile
        store.release_lock(item.id)
        status.add(item.id, "skipped", reason="fresh")
        return False
    return True


def report(status: StatusTable, console: Console, *, folder: Path | None = None) -> int:
    """Write the status table (when ``folder``), print the summary, and return the exit code."""
    path = status.write(folder) if folder is not None else None
    if folder is not None:
        atomic.sweep_temporaries(folder)
    counts = status.counts()
    held = len(status.held)
    skipped = (
        f"{counts['skipped']} skipped (fresh)"
        if not held
        else (f"{counts['skipped']} skipped ({counts['skipped'] - held} fresh, {held} held by other jobs)")
    )
    line = f"{status.stage}: {counts['done']} done, {skipped}, {counts['failed']} failed"
    if path is not None:
        line += f"; status table: {path}"
    console.info(line)
    if console.json_output:
        summary = json_result(status.summary(), status.exit_code)
        if path is not None:
            summary["status_table"] = str(path)
        console.emit_json(summary)
    return status.exit_code
