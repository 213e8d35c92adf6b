"""The world's write lock across processes (world/xlock.py): writers in several processes queue on a flock
instead of SQLite's polling busy handler, a dead holder frees it, and a wait is bounded with a clear error."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mockbench.world.store import Store
from mockbench.world.xlock import WriteLock, WriteLockTimeout, lock_path

INCREMENTS = 1000

# A process that opens the store, turns SQLite's busy wait off (so that only the write lock can order the
# writers) and increments a counter; it says it is `ready` (its store open: opening reads the file outside the
# lock) and waits for `go` to exist, so that both processes write at once and only write.
_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mockbench.world.store import Store
    db, go, n, ready = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    store = Store(db)
    store._conn.execute("PRAGMA busy_timeout=0")
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    for _ in range(n):
        with store.transaction() as tx:
            tx.meta_set("count", int(tx.meta_get("count", 0)) + 1)
    store.close()
""")

# A process that takes a write transaction and holds it until `release` exists (or is killed).
_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mockbench.world.store import Store
    db, held, release = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    store = Store(db)
    with store.transaction() as tx:
        tx.meta_set("holder", 1)
        held.touch()
        while not release.exists():
            time.sleep(0.01)
    store.close()
""")


def _spawn(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the helper process ended"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def test_two_processes_write_without_busy_waits(tmp_path):
    """Without SQLite's busy wait, two processes writing at once would get `database is locked`: the write
    lock orders them, and no update is lost."""
    db, go = tmp_path / "world.db", tmp_path / "go"
    Store(db).close()
    ready = [tmp_path / f"ready{n}" for n in range(2)]
    procs = [_spawn(_WRITER, db, go, INCREMENTS, flag) for flag in ready]
    for flag, proc in zip(ready, procs, strict=True):
        _wait_for(flag, proc)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = Store(db)
    try:
        with store.read() as tx:
            assert tx.meta_get("count") == 2 * INCREMENTS
    finally:
        store.close()


def test_the_checkpoint_that_empties_the_wal_holds_the_cross_process_lock(tmp_path):
    """The checkpointer's second pass (the one meant to leave the next writer an empty WAL, world/store.py) takes
    the write lock across processes: while another process holds it, the pass is skipped instead of running
    beside that process's write (it took the thread lock only, and ran beside it)."""
    db = tmp_path / "world.db"
    store = Store(db)
    checkpointer = store._checkpointer
    fd = os.open(lock_path(db), os.O_RDWR)
    try:
        with store.transaction() as tx:
            tx.meta_set("x", 1)
        fcntl.flock(fd, fcntl.LOCK_EX)   # another process's write
        checkpointer.request()
        _until(lambda: checkpointer.passes != [0, 0])
        assert checkpointer.passes == [0, 1]
        fcntl.flock(fd, fcntl.LOCK_UN)
        checkpointer.request()
        _until(lambda: checkpointer.passes[0] == 1)
        assert checkpointer.passes == [1, 1]
        assert store._xlock.try_acquire()   # the pass released the lock after it
        store._xlock.release()
    finally:
        os.close(fd)
        store.close()


def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the checkpointer never ran"
        time.sleep(0.01)


def test_a_writer_waits_for_another_process_then_proceeds(tmp_path):
    db, held, release = tmp_path / "world.db", tmp_path / "held", tmp_path / "release"
    store = Store(db)
    holder = _spawn(_HOLDER, db, held, release)
    try:
        _wait_for(held, holder)
        threading_done: list[float] = []

        def write() -> None:
            with store.transaction() as tx:
                tx.meta_set("after", 1)
            threading_done.append(time.monotonic())

        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(0.3)
        assert not threading_done, "the write went through while another process held the lock"
        assert store._xlock.waits == 1
        released = time.monotonic()
        release.touch()
        thread.join(20)
        assert threading_done and threading_done[0] >= released
        with store.read() as tx:
            assert tx.meta_get("holder") == 1 and tx.meta_get("after") == 1
    finally:
        release.touch()
        holder.wait(20)
        store.close()


def test_a_bounded_wait_ends_with_a_clear_error(tmp_path):
    """SQLite's busy_timeout (10 s) would have waited for the holder; the lock's own bound says who to blame."""
    db, held, release = tmp_path / "world.db", tmp_path / "held", tmp_path / "release"
    store = Store(db)
    store._xlock.wait = 0.3
    holder = _spawn(_HOLDER, db, held, release)
    try:
        _wait_for(held, holder)
        t0 = time.monotonic()
        with pytest.raises(WriteLockTimeout, match=r"world\.db\.lock.*more than 0\.3 s"):
            with store.transaction() as tx:
                tx.meta_set("never", 1)
        assert time.monotonic() - t0 < 5
        release.touch()
        holder.wait(20)
        # the abandoned wait dropped the lock it got late: the next write goes through at once
        with store.transaction() as tx:
            tx.meta_set("later", 1)
        with store.read() as tx:
            assert tx.meta_get("never") is None and tx.meta_get("later") == 1
    finally:
        release.touch()
        holder.wait(20)
        store.close()


def test_a_killed_holder_frees_the_lock(tmp_path):
    db, held, release = tmp_path / "world.db", tmp_path / "held", tmp_path / "release"
    store = Store(db)
    holder = _spawn(_HOLDER, db, held, release)
    try:
        _wait_for(held, holder)
        holder.kill()
        holder.wait(20)
        with store.transaction() as tx:
            tx.meta_set("after", 1)
        with store.read() as tx:
            assert tx.meta_get("holder") is None and tx.meta_get("after") == 1
    finally:
        store.close()


def test_the_lock_file_lies_beside_the_database(tmp_path):
    lock = WriteLock(tmp_path / "world.db")
    try:
        assert lock.path == lock_path(tmp_path / "world.db") == tmp_path / "world.db.lock"
        lock.acquire()
        other = WriteLock(tmp_path / "world.db", wait=0.05)
        with pytest.raises(WriteLockTimeout):
            other.acquire()
        lock.release()
        other.acquire()
        other.release()
        other.close()
    finally:
        lock.close()
