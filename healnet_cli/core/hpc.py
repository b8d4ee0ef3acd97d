"""HPC helpers: deterministic sharding (``--shard I/N`` or SLURM array variables) and CPU counts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from healnet_cli.core.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def select(self, items: Sequence[T], key=str) -> list[T]:
        """This shard's items: every ``count``-th item of the list sorted by ``key``, from ``index``.

        All shards together cover every item exactly once, and the assignment depends only on the
        sorted item list, so reruns and other shards agree.
        """
        ordered = sorted(items, key=key)
        return ordered[self.index :: self.count]


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> Shard:
    """Parse ``"I/N"``; without it, use the SLURM array variables when set, else the whole list.

    From SLURM: ``I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` and ``N = SLURM_ARRAY_TASK_COUNT``.

    Raises
    ------
    InputError
        When the text is not ``I/N`` with ``0 <= I < N``.
    """
    env = os.environ if env is None else env
    if text is None or text == "":
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            try:
                task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
                count = int(env["SLURM_ARRAY_TASK_COUNT"])
            except ValueError as exc:
                raise InputError(f"SLURM array variables are not integers ({exc}); pass --shard I/N") from exc
            return _checked(task, count, "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN")
        return Shard()
    parts = text.split("/")
    if len(parts) != 2:
        raise InputError(f"--shard {text!r} is not of the form I/N (e.g. 0/4 for the first of 4 shards)")
    try:
        index, count = int(parts[0]), int(parts[1])
    except ValueError as exc:
        raise InputError(f"--shard {text!r}: I and N must be integers (e.g. 0/4)") from exc
    return _checked(index, count, "--shard")


def _checked(index: int, count: int, origin: str) -> Shard:
    if count < 1 or not 0 <= index < count:
        raise InputError(f"{origin} gives shard {index}/{count}; need 0 <= I < N (shards are 0-based)")
    return Shard(index, count)


def available_cpus() -> int:
    """CPUs this job may use (``os.sched_getaffinity``), not the node's core count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)
