from __future__ import annotations

import io
from pathlib import Path

from healnet_cli.core import atomic
from healnet_cli.core.console import Console
from healnet_cli.core.errors import ItemError
from healnet_cli.core.hpc import parse_shard
from healnet_cli.core.runner import ItemResult, WorkItem, report, run_items
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore


def _process(store: ArtifactStore, calls: list[str]):
    def process(item: WorkItem) -> ItemResult:
        calls.append(item.id)
        if item.source == "bad":
            raise ItemError(f"{item.id}.svs: not a slide; remove it or fix the file")
        out = store.output_path(item.id, ".txt")
        atomic.write_text(out, item.source)
        return ItemResult([out], warning="no tissue" if item.source == "empty" else "")

    return process


def _items(sources: dict[str, str]) -> list[WorkItem]:
    return [WorkItem(k, v, fingerprint=f"fp-{v}") for k, v in sources.items()]


def test_batch_goes_on_after_a_failure_and_reruns_skip_fresh_items(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "demo", {"p": 1})
    calls: list[str] = []
    items = _items({"a": "ok", "b": "bad", "c": "empty"})
    status = run_items(
        items, _process(store, calls), store=store, status=StatusTable("demo"), console=Console(quiet=True)
    )
    assert status.counts() == {"done": 2, "skipped": 0, "failed": 1}
    assert status.exit_code == 3
    assert "not a slide" in status.failed[0].reason
    assert [r.warning for r in status.records if r.item == "c"] == ["no tissue"]

    calls.clear()
    status = run_items(
        items, _process(store, calls), store=store, status=StatusTable("demo"), console=Console(quiet=True)
    )
    assert calls == ["b"]  # only the failed item is retried
    assert status.counts() == {"done": 0, "skipped": 2, "failed": 1}

    calls.clear()
    run_items(
        items, _process(store, calls), store=store, status=StatusTable("demo"), console=Console(quiet=True), force=True
    )
    assert calls == ["a", "b", "c"]


def test_on_error_fail_stops_at_first_failure(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "demo", {})
    calls: list[str] = []
    items = _items({"a": "bad", "b": "ok"})
    status = run_items(
        items,
        _process(store, calls),
        store=store,
        status=StatusTable("demo"),
        console=Console(quiet=True),
        on_error="fail",
    )
    assert calls == ["a"]
    assert status.exit_code == 3


def test_shards_never_write_the_same_file(tmp_path: Path) -> None:
    items = _items({f"s{i}": "ok" for i in range(9)})
    written: list[set[Path]] = []
    for index in range(3):
        shard = parse_shard(f"{index}/3")
        store = ArtifactStore(tmp_path, "demo", {})
        before = set(tmp_path.rglob("*"))
        status = run_items(
            shard.select(items, key=lambda w: w.id),
            _process(store, []),
            store=store,
            status=StatusTable("demo", shard=str(shard)),
            console=Console(quiet=True),
        )
        report(status, Console(quiet=True), folder=tmp_path)
        written.append(set(tmp_path.rglob("*")) - before)
    assert not (written[0] & written[1]) and not (written[1] & written[2]) and not (written[0] & written[2])
    assert sorted(p.name for p in tmp_path.glob("status-shard-*")) == [f"status-shard-{i}-of-3.csv" for i in range(3)]
    assert len(list(tmp_path.glob("*.txt"))) == 9


def test_report_prints_summary_and_json(tmp_path: Path) -> None:
    status = StatusTable("demo")
    status.add("a", "done", seconds=1.0)
    status.add("b", "failed", reason="corrupt")
    err, out = io.StringIO(), io.StringIO()
    code = report(status, Console(json_output=True, stream=err, out=out), folder=tmp_path)
    assert code == 3
    assert "1 done, 0 skipped (fresh), 1 failed" in err.getvalue()
    assert '"exit_code": 3' in out.getvalue()
    assert (tmp_path / "status.csv").read_text().count("\n") == 3


def test_plain_progress_lines_when_not_a_terminal() -> None:
    err = io.StringIO()
    console = Console(stream=err, log_every_s=0.0)
    assert list(console.track(range(3), description="tile")) == [0, 1, 2]
    assert "tile: 3/3" in err.getvalue()


def test_an_item_held_by_a_live_job_is_skipped_not_failed(tmp_path: Path) -> None:
    import json
    import os
    import time

    from healnet_cli.core import locks

    store = ArtifactStore(tmp_path, "demo", {})
    holder = {"host": "node017", "pid": 4242, "token": "theirs", "time": time.time(), "refresh_s": 30}
    store.lock_path("b").write_text(json.dumps(holder))  # a live job elsewhere, refreshing its lease
    calls: list[str] = []
    status = run_items(_items({"a": "ok", "b": "ok"}), _process(store, calls), store=store, status=StatusTable("demo"),
                       console=Console(quiet=True))  # fmt: skip
    assert calls == ["a"] and status.exit_code == 0
    assert status.counts() == {"done": 1, "skipped": 1, "failed": 0}
    assert [r.reason for r in status.held] == ["held by node017:4242 (another job is writing it)"]
    err = io.StringIO()
    report(status, Console(stream=err), folder=tmp_path)
    assert "1 skipped (0 fresh, 1 held by other jobs)" in err.getvalue()
    assert store.lock_path("b").exists() and locks.read_holder(store.lock_path("b")).pid == 4242  # type: ignore[union-attr]
    assert not store.lock_path("a").exists() and os.getpid()


def test_concurrent_status_writers_are_merged(tmp_path: Path) -> None:
    """Two runs of one shard split the items; whichever writes last, every item ends up done."""
    first, second = StatusTable("demo"), StatusTable("demo")
    first.add("a", "done")
    first.add("b", "skipped", reason="held by n2:2 (another job is writing it)")
    second.add("a", "skipped", reason="held by n1:1 (another job is writing it)")
    second.add("b", "done")
    for k, order in enumerate(((first, second), (second, first))):
        folder = tmp_path / f"order{k}"
        folder.mkdir()
        for table in order:
            table.write(folder)
        rows = (folder / "status.csv").read_text().splitlines()
        assert [r.split(",")[:2] for r in rows[1:]] == [["a", "done"], ["b", "done"]]
    # a later run that did not handle an item drops the earlier runs' row for it
    later = StatusTable("demo")
    later.add("a", "skipped", reason="fresh")
    later.write(folder)
    assert [r.split(",")[:2] for r in (folder / "status.csv").read_text().splitlines()[1:]] == [["a", "skipped"]]


def test_a_full_disk_stops_the_batch_and_keeps_what_is_done(tmp_path: Path) -> None:
    import errno

    import pytest

    from healnet_cli.core.errors import DiskFullError

    store = ArtifactStore(tmp_path, "demo", {})
    calls: list[str] = []

    def process(item: WorkItem) -> ItemResult:
        calls.append(item.id)
        out = store.output_path(item.id, ".txt")
        if item.id == "b":
            with atomic.atomic_path(out) as tmp:
                tmp.write_text("partial")
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        atomic.write_text(out, item.source)
        return ItemResult([out])

    status = StatusTable("demo")
    with pytest.raises(DiskFullError, match=r"no space left writing .*b\.txt \(.* free"):
        run_items(
            _items({"a": "ok", "b": "ok", "c": "ok"}), process, store=store, status=status, console=Console(quiet=True)
        )
    assert calls == ["a", "b"]  # c was never started
    assert store.is_fresh("a", "fp-ok") and not (tmp_path / "b.txt").exists()
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob("*.lock"))
    assert [r.status for r in status.records] == ["done", "failed"]


def test_an_item_whose_lease_was_taken_over_meanwhile_is_not_committed(tmp_path: Path) -> None:
    import json
    import time

    store = ArtifactStore(tmp_path, "demo", {})

    def process(item: WorkItem) -> ItemResult:  # this job is suspended past the expiry; another takes over
        thief = {"host": "node9", "pid": 9, "token": "other", "time": time.time(), "refresh_s": 30}
        store.lock_path(item.id).write_text(json.dumps(thief))
        out = store.output_path(item.id, ".txt")
        atomic.write_text(out, "late")
        return ItemResult([out])

    status = run_items(
        _items({"a": "ok"}), process, store=store, status=StatusTable("demo"), console=Console(quiet=True)
    )
    assert status.exit_code == 0 and len(status.held) == 1 and not store.manifest_path("a").exists()
    assert json.loads(store.lock_path("a").read_text())["token"] == "other"  # the other job's lock stays
