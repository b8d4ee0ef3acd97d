"""Lease locks: atomic creation, owner-checked release, heartbeat, takeover across hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from healnet_cli.core import locks
from healnet_cli.core.store import ArtifactStore

REPO = Path(__file__).resolve().parents[2]

STRESS = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from healnet_cli.core.store import ArtifactStore

    folder, tries, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    store = ArtifactStore(folder, "stress", {})
    inside = folder / "inside"
    wins = violations = 0
    for i in range(tries):
        if store.acquire_lock("item") is not None:
            continue
        wins += 1
        try:
            fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
        except FileExistsError:
            violations += 1
            continue
        time.sleep(0.0002)
        inside.unlink()
        if (i + seed) % 7 == 0:  # "die" holding the lock: leave a lock that looks stale
            stale = folder / f"stale-{os.getpid()}"
            stale.write_text(json.dumps({"host": "deadnode", "pid": 1, "token": "x", "time": 0}))
            os.utime(stale, (0, 0))
            os.replace(stale, store.lock_path("item"))
            from healnet_cli.core import locks
            locks._keeper().remove(store.lock_path("item"))
        else:
            store.release_lock("item")
    print(json.dumps({"wins": wins, "violations": violations}))
    """
)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def test_concurrent_contenders_never_share_the_critical_section(tmp_path: Path) -> None:
    """3 processes x 1500 tries, with stale locks to take over: nobody ever finds another holder inside."""
    script = tmp_path / "stress.py"
    script.write_text(STRESS)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), "1500", str(k)], env=_env(), stdout=subprocess.PIPE, text=True
        )
        for k in range(3)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["violations"] for r in results) == 0, results
    assert sum(r["wins"] for r in results) > 300  # the lock was contended and taken over, not starved
    assert not list(tmp_path.glob(".lock-tmp-*")) and not list(tmp_path.glob("*.break"))


def test_a_lock_is_never_seen_empty_and_release_checks_the_owner(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "t", {})
    assert store.acquire_lock("a") is None
    holder = locks.read_holder(store.lock_path("a"))
    assert holder is not None and holder.pid == os.getpid() and holder.token
    assert store.acquire_lock("a") is None  # this process already holds it
    assert store.holds_lock("a")
    # another job's lock is never removed by release
    other = {"host": locks.hostname(), "pid": 1, "token": "theirs", "time": time.time(), "refresh_s": 30}
    store.lock_path("b").write_text(json.dumps(other))
    store.release_lock("b")
    assert store.lock_path("b").exists()
    store.release_lock("a")
    assert not store.lock_path("a").exists() and not store.holds_lock("a")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from healnet_cli.core.store import ArtifactStore

    store = ArtifactStore(Path(sys.argv[1]), "t", {})
    assert store.acquire_lock("slide") is None
    print("locked", flush=True)
    time.sleep(60)
    """
)


def _start_holder(folder: Path, host: str, **timing: str) -> subprocess.Popen:
    script = folder / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder)],
        env=_env(HEALNET_HOSTNAME=host, **timing),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_live_holder_on_another_host_keeps_its_lease_and_a_dead_one_loses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timing = {"HEALNET_LOCK_EXPIRY_S": "0.6", "HEALNET_LOCK_REFRESH_S": "0.1"}
    proc = _start_holder(tmp_path, "node017", **timing)
    monkeypatch.setenv("HEALNET_HOSTNAME", "node042")
    for name, value in timing.items():
        monkeypatch.setenv(name, value)
    store = ArtifactStore(tmp_path, "t", {})
    try:
        deadline = time.monotonic() + 1.5  # 2.5 expiry periods: the heartbeat keeps the lease
        while time.monotonic() < deadline:
            holder = store.acquire_lock("slide")
            assert holder is not None and holder.startswith("node017:")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the holder is dead: its pid cannot be checked from another host, its lease expires
    deadline = time.monotonic() + 5
    while store.acquire_lock("slide") is not None:
        assert time.monotonic() < deadline, "the dead holder's lease never expired"
        time.sleep(0.05)
    assert locks.read_holder(store.lock_path("slide")).host == "node042"  # type: ignore[union-attr]
    store.release_lock("slide")


def test_a_lock_left_on_this_host_by_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    proc = _start_holder(tmp_path, locks.hostname())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path, "t", {})
    assert store.acquire_lock("slide") is None  # default expiry (5 min) not needed: the pid is gone
    store.release_lock("slide")


def test_a_holder_that_lost_its_lease_knows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ArtifactStore(tmp_path, "t", {})
    assert store.acquire_lock("x") is None
    path = store.lock_path("x")
    os.utime(path, (time.time() - 3600, time.time() - 3600))  # as if suspended for an hour
    monkeypatch.setenv("HEALNET_HOSTNAME", "elsewhere")
    thief = {"host": "elsewhere", "pid": 99999, "token": "t2", "time": time.time(), "refresh_s": 30}
    locks._break(path, locks.read_holder(path), locks.lease_timing())  # type: ignore[arg-type]
    path.write_text(json.dumps(thief))
    assert not store.holds_lock("x")
    store.release_lock("x")
    assert path.exists()  # the thief's lock stays


def test_lease_timing_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert locks.lease_timing() == locks.LeaseTiming(locks.DEFAULT_EXPIRY_S, locks.DEFAULT_REFRESH_S)
    monkeypatch.setenv("HEALNET_LOCK_EXPIRY_S", "6")
    monkeypatch.setenv("HEALNET_LOCK_REFRESH_S", "5")
    assert locks.lease_timing() == locks.LeaseTiming(6.0, 2.0)  # refresh capped at a third
    monkeypatch.setenv("HEALNET_LOCK_EXPIRY_S", "soon")
    assert locks.lease_timing().expiry_s == locks.DEFAULT_EXPIRY_S
    monkeypatch.setenv("HEALNET_HOSTNAME", "fake-node")
    assert locks.hostname() == "fake-node"


def test_a_heartbeat_on_an_old_snapshot_keeps_a_lock_taken_again(tmp_path: Path) -> None:
    """The heartbeat reads the held locks, then touches them; if the job released a lock and took it
    again in between (the next item of a batch with the same name), the beat sees a new token on
    disk and must not forget the new lease (the job would then think it lost it: "lock expired")."""
    store = ArtifactStore(tmp_path, "t", {})
    assert store.acquire_lock("x") is None
    path = store.lock_path("x")
    keeper = locks._keeper()
    snapshot = {path: keeper.token(path)}
    store.release_lock("x")
    assert store.acquire_lock("x") is None  # taken again: a new token
    assert keeper.token(path) != snapshot[path]
    keeper.refresh(snapshot)  # type: ignore[arg-type]
    assert store.holds_lock("x")
    store.release_lock("x")
    assert not path.exists()


def test_a_heartbeat_forgets_a_lock_another_job_took_over(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "t", {})
    assert store.acquire_lock("x") is None
    path = store.lock_path("x")
    keeper = locks._keeper()
    snapshot = {path: keeper.token(path)}
    path.write_text(json.dumps({"host": "elsewhere", "pid": 99999, "token": "t2", "time": time.time()}))
    keeper.refresh(snapshot)  # type: ignore[arg-type]
    assert keeper.token(path) is None and not store.holds_lock("x")
