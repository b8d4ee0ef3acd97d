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

    A SLURM array maps to ``N = SLURM_ARRAY_TASK_COUNT`` shards, task ``I`` being the position of
    ``SLURM_ARRAY_TASK_ID`` in the array: see :func:`slurm_array_shard`.

    Raises
    ------
    InputError
        When the text is not ``I/N`` with ``0 <= I < N``, or the array cannot be mapped.
    """
    env = os.environ if env is None else env
    if text is None or text == "":
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            return slurm_array_shard(env)
        return Shard()
    parts = text.split("/")
    if len(parts) != 2:
        raise InputError(f"--shard {text!r} is not of the form I/N (e.g. 0/4 for the first of 4 shards)")
    try:
        index, count = int(parts[0]), int(parts[1])
    except ValueError as exc:
        raise InputError(f"--shard {text!r}: I and N must be integers (e.g. 0/4)") from exc
    return _checked(index, count, "--shard")


def slurm_array_shard(env: Mapping[str, str]) -> Shard:
    """The shard of this SLURM array task: the array's ids, in order, are shards ``0..COUNT-1``.

    SLURM exports ``SLURM_ARRAY_TASK_{ID,MIN,MAX,COUNT}`` and ``SLURM_ARRAY_TASK_STEP`` (the number
    after ``:`` in ``--array``, 1 for an id list). Any array whose ids are evenly spaced maps:
    ``--array=0-15``, ``--array=1-16``, ``--array=0-30:2``, ``--array=1,3,5``, ``--array=0-15%4``.
    The spacing is ``(MAX - MIN) / (COUNT - 1)``, which is also right for evenly spaced id lists
    (SLURM reports their step as 1). An array whose ids are not evenly spaced (``--array=1,2,5``,
    ``--array=0-6:2,9``) is refused in every task whose id is off that spacing, so it never
    silently loses items. A resubmission of some tasks (``--array=3,5``) shares the whole item
    list between its tasks; items already done are skipped.

    Raises
    ------
    InputError
        Non-integer variables, or an array that is not evenly spaced.
    """
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(env.get("SLURM_ARRAY_TASK_STEP", "1"))
        last = int(env["SLURM_ARRAY_TASK_MAX"]) if "SLURM_ARRAY_TASK_MAX" in env else first + step * (count - 1)
    except ValueError as exc:
        raise InputError(f"SLURM array variables are not integers ({exc}); pass --shard I/N") from exc
    if count > 1:
        step, rest = divmod(last - first, count - 1)
        offset = task - first
        if rest or step < 1 or offset % step or not 0 <= offset // step < count:
            raise InputError(
                f"SLURM array task {task} (array ids {first}..{last}, {count} tasks) is not evenly spaced, so it "
                f"cannot be mapped to a shard of {count}; submit the array as --array=0-{count - 1} (add %K to limit "
                "how many run at once), or pass --shard I/N explicitly in each task"
            )
        return _checked(offset // step, count, "SLURM_ARRAY_TASK_ID")
    return _checked(0, max(count, 1), "SLURM_ARRAY_TASK_ID")


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
