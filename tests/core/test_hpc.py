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


def _array_env(ids: list[int], task: int, step: int = 1) -> dict[str, str]:
    """What SLURM exports to one task of an array with these ids (STEP: the number after ':')."""
    return {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_MIN": str(min(ids)),
        "SLURM_ARRAY_TASK_MAX": str(max(ids)),
        "SLURM_ARRAY_TASK_COUNT": str(len(ids)),
        "SLURM_ARRAY_TASK_STEP": str(step),
    }


@pytest.mark.parametrize(
    "spec,ids,step",
    [
        ("0-7", list(range(8)), 1),
        ("1-8", list(range(1, 9)), 1),
        ("0-6:2", [0, 2, 4, 6], 2),
        ("3-15:4%2", [3, 7, 11, 15], 4),
        ("1,3,5", [1, 3, 5], 1),  # SLURM reports STEP=1 for id lists
        ("4", [4], 1),
    ],
)
def test_every_evenly_spaced_array_maps_to_all_shards(spec: str, ids: list[int], step: int) -> None:
    items = [f"slide_{i}" for i in range(8)]
    shards = [parse_shard(None, _array_env(ids, task, step)) for task in ids]
    assert [s.index for s in shards] == list(range(len(ids))), spec
    covered = [x for s in shards for x in s.select(items)]
    assert sorted(covered) == items and len(covered) == len(set(covered)), spec


@pytest.mark.parametrize("spec,ids,step", [("1,2,5", [1, 2, 5], 1), ("0-6:2,9", [0, 2, 4, 6, 9], 2)])
def test_unevenly_spaced_arrays_are_refused_with_how_to_submit(spec: str, ids: list[int], step: int) -> None:
    refused = 0
    for task in ids:
        try:
            parse_shard(None, _array_env(ids, task, step))
        except InputError as exc:
            refused += 1
            assert "--array=0-" in str(exc) and "--shard I/N" in str(exc)
    assert refused >= 1, spec  # at least one task refuses: no array silently loses items
