from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from healnet_cli.core import atomic
from healnet_cli.core.store import ArtifactStore


def _write_item(store: ArtifactStore, item: str, payload: bytes) -> Path:
    out = store.output_path(item, ".bin")
    store.invalidate(item)
    atomic.write_bytes(out, payload)
    store.commit(item, "fp1", [out])
    return out


def test_fresh_only_when_params_input_and_outputs_match(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "test", {"a": 1})
    assert not store.is_fresh("s1", "fp1")
    out = _write_item(store, "s1", b"x" * 10)
    assert store.is_fresh("s1", "fp1")
    assert not store.is_fresh("s1", "fp2")  # input changed
    assert not ArtifactStore(tmp_path, "test", {"a": 2}).is_fresh("s1", "fp1")  # params changed
    assert ArtifactStore(tmp_path, "test", {"a": 1}).is_fresh("s1", "fp1")  # same params, new object
    out.write_bytes(b"y" * 11)  # output edited behind the store's back
    assert not store.is_fresh("s1", "fp1")


def test_missing_output_or_manifest_is_not_fresh(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "test", {})
    out = _write_item(store, "s1", b"abc")
    out.unlink()
    assert not store.is_fresh("s1", "fp1")
    _write_item(store, "s2", b"abc")
    store.manifest_path("s2").write_text("{not json")
    assert not store.is_fresh("s2", "fp1")
    assert store.read_record("s2") is None


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "test", {})
    assert store.acquire_lock("s1") is None
    # a lock held by a live other process on this host blocks
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        store.lock_path("s2").write_text(
            f'{{"host": "{os.uname().nodename}", "pid": {proc.pid}, "time": {time.time():f}}}'
        )
        assert store.acquire_lock("s2") is not None
    finally:
        proc.kill()
        proc.wait()
    # the same lock of a dead process is stale
    assert store.acquire_lock("s2") is None
    store.release_lock("s1")
    assert not store.lock_path("s1").exists()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from healnet_cli.core.store import ArtifactStore
    from healnet_cli.core import atomic

    folder, marker = Path(sys.argv[1]), Path(sys.argv[2])
    store = ArtifactStore(folder, "test", {"v": 2})
    out = store.output_path("item", ".bin")
    store.invalidate("item")
    with atomic.atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            for i in range(10_000):
                handle.write(b"N" * 4096)
                handle.flush()
                if i == 50:
                    marker.write_text("writing")
                time.sleep(0.001)
    store.commit("item", "fp", [out])
    """
)


def test_sigkill_mid_write_leaves_old_or_new_never_partial(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    old = ArtifactStore(folder, "test", {"v": 1})
    out = _write_item(old, "item", b"O" * 1000)
    marker = tmp_path / "marker"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(marker)], env=env)
    deadline = time.time() + 30
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "writer never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the artifact is the old one, complete; no new manifest was committed
    assert out.read_bytes() == b"O" * 1000
    new = ArtifactStore(folder, "test", {"v": 2})
    assert not new.is_fresh("item", "fp")
    # a temporary file was left behind; the rerun completes and sweeps it
    assert list(folder.glob(".tmp-*"))
    proc = subprocess.run([sys.executable, str(script), str(folder), str(marker)], env=env, timeout=120)
    assert proc.returncode == 0
    assert new.is_fresh("item", "fp")
    assert out.read_bytes() == b"N" * 4096 * 10_000
    atomic.remove_stale_temporaries(folder)
    assert not list(folder.glob(".tmp-*"))


def test_outputs_not_written_again_are_removed_at_commit(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, "test", {"export": ["clam"]})
    main, extra = store.output_path("s1", ".bin"), store.output_path("s1", ".h5")
    store.invalidate("s1")
    atomic.write_bytes(main, b"a")
    atomic.write_bytes(extra, b"old coordinates")
    store.commit("s1", "fp", [main, extra])
    other = store.output_path("s2", ".h5")
    atomic.write_bytes(other, b"another item's file")
    rerun = ArtifactStore(tmp_path, "test", {"export": []})
    rerun.invalidate("s1")
    atomic.write_bytes(main, b"b")
    rerun.commit("s1", "fp", [main])
    assert not extra.exists() and other.exists() and rerun.is_fresh("s1", "fp")


def test_sweep_removes_only_temporaries_of_writers_that_are_gone(tmp_path: Path, monkeypatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = atomic.writer_tag().split("+")[0]
    dead = tmp_path / f".tmp-s1.parquet.{host}+{proc.pid}.abc123"
    live = tmp_path / f".tmp-s2.parquet.{host}+{os.getppid()}.abc123"
    mine = tmp_path / f".tmp-s3.parquet.{atomic.writer_tag()}.abc123"
    foreign = tmp_path / ".tmp-s4.parquet.node017+123.abc123"
    old_foreign = tmp_path / ".tmp-s5.parquet.node017+123.abc123"
    for path in (dead, live, mine, foreign, old_foreign):
        path.write_bytes(b"x")
    os.utime(old_foreign, (time.time() - 3600, time.time() - 3600))
    assert atomic.sweep_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, mine, foreign))
    # the item whose lock this process holds: another host's temporary of it goes once it is idle
    monkeypatch.setenv("HEALNET_LOCK_EXPIRY_S", "0.3")
    os.utime(foreign, (time.time() - 0.2, time.time() - 0.2))
    assert atomic.sweep_temporaries(tmp_path, item="s4") == 1 and not foreign.exists()


def test_a_full_disk_is_recognised_in_library_errors(tmp_path: Path, monkeypatch) -> None:
    import errno

    from healnet_cli.core.errors import DiskFullError

    target = tmp_path / "fold_0" / "checkpoint.pt"
    assert atomic.disk_full_error(RuntimeError("boom"), target) is None
    err = OSError(errno.EDQUOT, "Disk quota exceeded")
    wrapped = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    wrapped.__cause__ = err
    full = atomic.disk_full_error(wrapped, target)
    assert isinstance(full, DiskFullError) and str(target) in str(full) and "free on its file system" in str(full)
    monkeypatch.setattr(atomic, "free_bytes", lambda path: 4096)  # torch's "unexpected pos" on a full disk
    full = atomic.disk_full_error(RuntimeError("unexpected pos 1234 vs 5678"), target)
    assert full is not None and "(4.0 KiB free" in str(full)


def test_written_files_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
        with atomic.atomic_path(tmp_path / "b.bin") as tmp:
            tmp.unlink()  # a writer that replaces the file
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert {oct((tmp_path / n).stat().st_mode & 0o777) for n in ("a.txt", "b.bin")} == {"0o664"}


def test_the_algorithm_version_keys_the_cache_and_the_package_version_does_not(tmp_path: Path, monkeypatch) -> None:
    from healnet_cli.core import store as store_module

    store = ArtifactStore(tmp_path, "test", {"a": 1}, algorithm=1)
    _write_item(store, "s1", b"x")
    assert store.read_record("s1").algorithm == 1
    assert ArtifactStore(tmp_path, "test", {"a": 1}, algorithm=1).is_fresh("s1", "fp1")
    assert not ArtifactStore(tmp_path, "test", {"a": 1}, algorithm=2).is_fresh("s1", "fp1")
    monkeypatch.setattr(store_module, "__version__", "99.0")
    assert ArtifactStore(tmp_path, "test", {"a": 1}, algorithm=1).is_fresh("s1", "fp1")


# Stores that only read records or hold locks; every other store commits items and keys on its
# stage's ALGORITHM_VERSION.
_READ_OR_LOCK_ONLY = {"stages/extract/items.py", "artifacts/run.py"}


def test_every_stage_store_gives_an_algorithm_version() -> None:
    import ast

    package = Path(__file__).resolve().parents[2] / "healnet_cli"
    missing = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "ArtifactStore"
                and rel not in _READ_OR_LOCK_ONLY
                and not any(k.arg == "algorithm" for k in node.keywords)
            ):
                missing.append(f"{rel}:{node.lineno}")
    assert not missing, f"ArtifactStore without algorithm=: {missing}"
