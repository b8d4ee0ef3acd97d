from __future__ import annotations

import pytest

from healnet_cli.core.errors import InputError
from healnet_cli.core.hpc import Shard, available_cpus, parse_shard


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_cover_every_item_exactly_once(n: int) -> None:
    items = [f"slide_{i:03d}" for i in range(23)]
    shards = [parse_shard(f"{i}/{n}").select(items) for i in range(n)]
    flat = [x for shard in shards for x in shard]
    assert sorted(flat) == sorted(items)
    assert len(flat) == len(set(flat))
    # deterministic regardless of input order
    assert parse_shard(f"0/{n}").select(list(reversed(items))) == shards[0]


def test_slurm_array_variables_are_the_default() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert parse_shard(None, env) == Shard(2, 4)
    assert parse_shard("1/3", env) == Shard(1, 3)  # explicit wins
    assert parse_shard(None, {}) == Shard(0, 1)


@pytest.mark.parametrize("text,match", [("3/3", "0 <= I < N"), ("a/b", "integers"), ("2", "I/N"), ("-1/2", "0 <= I")])
def test_bad_shards_are_input_errors(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_shard(text, {})


def test_available_cpus_is_positive() -> None:
    assert available_cpus() >= 1
