"""Per-item status of a stage run: done / skipped (fresh, or held by another job) / failed, with
reason, seconds, when and by whom.

Concurrent runs on one folder (two submissions of the same array task, a rerun while the first
job still runs) write the same status file; :meth:`StatusTable.write` merges instead of
overwriting, so an item one run committed is never left listed as failed or held by the other.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from healnet_cli.core import atomic, locks
from healnet_cli.core.errors import EXIT_OK, EXIT_PARTIAL

State = Literal["done", "skipped", "failed"]
#: The reason of an item skipped because another live job holds its lock starts with this.
HELD_PREFIX = "held by "


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shard_file_name(stem: str, suffix: str, shard: str) -> str:
    """``status.csv`` for the whole list, ``status-shard-I-of-N.csv`` for shard ``I/N``."""
    index, count = shard.split("/")
    return f"{stem}{suffix}" if count == "1" else f"{stem}-shard-{index}-of-{count}{suffix}"


@dataclass
class ItemStatus:
    """The outcome of one item (``time``: UTC ISO-8601 when recorded; ``by``: ``host:pid``)."""

    item: str
    status: State
    reason: str = ""
    seconds: float = 0.0
    warning: str = ""
    time: str = field(default_factory=_now)
    by: str = ""

    @property
    def held(self) -> bool:
        """Skipped because another job was writing it."""
        return self.status == "skipped" and self.reason.startswith(HELD_PREFIX)


@dataclass
class StatusTable:
    """The status of every item a stage run handled, and the summary derived from it."""

    stage: str
    shard: str = "0/1"
    records: list[ItemStatus] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, item: str, status: State, *, reason: str = "", seconds: float = 0.0, warning: str = "") -> None:
        by = f"{locks.hostname()}:{os.getpid()}"
        self.records.append(ItemStatus(item, status, reason, round(seconds, 3), warning, by=by))

    def counts(self) -> dict[str, int]:
        c = Counter(r.status for r in self.records)
        return {k: c.get(k, 0) for k in ("done", "skipped", "failed")}

    @property
    def failed(self) -> list[ItemStatus]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def held(self) -> list[ItemStatus]:
        """Items skipped because another live job holds them."""
        return [r for r in self.records if r.held]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 3 when some items failed (items held by other jobs are not failures)."""
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def summary(self) -> dict[str, Any]:
        """A machine-readable summary (what ``--json`` prints)."""
        return {
            "stage": self.stage,
            "shard": self.shard,
            "counts": self.counts(),
            "seconds": round(time.time() - self.started, 3),
            "exit_code": self.exit_code,
            "failed": [{"item": r.item, "reason": r.reason} for r in self.failed],
            "held": [{"item": r.item, "reason": r.reason} for r in self.held],
            "warnings": [{"item": r.item, "warning": r.warning} for r in self.records if r.warning],
        }

    def file_name(self) -> str:
        return shard_file_name("status", ".csv", self.shard)

    def write(self, folder: str | Path) -> Path:
        """Write ``status[-shard-I-of-N].csv`` into ``folder`` (atomically); return its path.

        Each shard writes its own file. A run of the same shard that wrote the file meanwhile is
        merged in: per item, an outcome (done, fresh, failed) beats "held by another job", and the
        later of two outcomes wins; rows of earlier runs for items this run did not handle are
        dropped.
        """
        path = Path(folder) / self.file_name()
        with locks.waiting_for(path.with_name(path.name + ".lock")):
            rows = merge_records(read_status(path), self.records, since=self.started)
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(ItemStatus)])
            writer.writeheader()
            for record in rows:
                writer.writerow(asdict(record))
            return atomic.write_text(path, buffer.getvalue())


def read_status(path: str | Path) -> list[ItemStatus]:
    """The rows of a status table (empty when absent or unreadable; old tables lack time/by)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error):
        return []
    out = []
    for row in rows:
        try:
            out.append(
                ItemStatus(
                    item=row["item"],
                    status=row["status"],  # type: ignore[arg-type]
                    reason=row.get("reason") or "",
                    seconds=float(row.get("seconds") or 0.0),
                    warning=row.get("warning") or "",
                    time=row.get("time") or "",
                    by=row.get("by") or "",
                )
            )
        except (KeyError, ValueError):
            continue
    return out


def merge_records(existing: Iterable[ItemStatus], ours: Iterable[ItemStatus], *, since: float) -> list[ItemStatus]:
    """Merge a status file's rows with this run's records (see :meth:`StatusTable.write`)."""
    cutoff = dt.datetime.fromtimestamp(since, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    best: dict[str, ItemStatus] = {}
    for record in ours:
        best[record.item] = _better(best.get(record.item), record)
    mine = set(best)
    for record in existing:
        if record.item in mine or record.time >= cutoff:
            best[record.item] = _better(best.get(record.item), record)
    return sorted(best.values(), key=lambda r: r.item)


def _better(a: ItemStatus | None, b: ItemStatus) -> ItemStatus:
    if a is None:
        return b
    if a.held != b.held:
        return b if a.held else a
    return b if b.time >= a.time else a
