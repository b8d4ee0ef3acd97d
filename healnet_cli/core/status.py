"""Per-item status of a stage run: done / skipped (fresh) / failed, with reason and seconds."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from healnet_cli.core import atomic
from healnet_cli.core.errors import EXIT_OK, EXIT_PARTIAL

State = Literal["done", "skipped", "failed"]


@dataclass
class ItemStatus:
    """The outcome of one item."""

    item: str
    status: State
    reason: str = ""
    seconds: float = 0.0
    warning: str = ""


@dataclass
class StatusTable:
    """The status of every item a stage run handled, and the summary derived from it."""

    stage: str
    shard: str = "0/1"
    records: list[ItemStatus] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, item: str, status: State, *, reason: str = "", seconds: float = 0.0, warning: str = "") -> None:
        self.records.append(ItemStatus(item, status, reason, round(seconds, 3), warning))

    def counts(self) -> dict[str, int]:
        c = Counter(r.status for r in self.records)
        return {k: c.get(k, 0) for k in ("done", "skipped", "failed")}

    @property
    def failed(self) -> list[ItemStatus]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 3 when some items failed."""
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
            "warnings": [{"item": r.item, "warning": r.warning} for r in self.records if r.warning],
        }

    def write(self, folder: str | Path) -> Path:
        """Write ``status[-shard-I-of-N].csv`` into ``folder`` (atomically); return its path.

        Each shard writes its own file so that concurrent array tasks never write the same file.
        """
        index, count = self.shard.split("/")
        name = "status.csv" if count == "1" else f"status-shard-{index}-of-{count}.csv"
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(ItemStatus.__dataclass_fields__))
        writer.writeheader()
        for record in self.records:
            writer.writerow(asdict(record))
        return atomic.write_text(Path(folder) / name, buffer.getvalue())
