"""The world's write lock across processes: an advisory `flock` on a file beside the database.

Every write transaction on a world's file takes it (with the store's thread lock) before BEGIN IMMEDIATE and
drops it after COMMIT or ROLLBACK, so that writers in several processes queue in the kernel and each is woken
the moment the lock is free, instead of SQLite's busy handler, which sleeps and polls (1 ms to 100 ms steps)
while another process writes (issue 21, point 3). The kernel drops the lock of a process that ends, even by
kill -9, so a dead holder never blocks the others.

The wait is bounded (`WAIT`): a holder that keeps the lock longer (a process stopped in a debugger, a disk that
hangs) makes the waiter fail with `WriteLockTimeout`, which names the lock file, instead of waiting without
end. `flock` has no timeout of its own: an uncontended lock is taken without blocking (one system call); a
contended one is awaited by a helper thread on a descriptor of its own (flock locks belong to an open file
description), which the caller waits for with a timeout; a helper that gets the lock after its caller gave up
drops it at once.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path

WAIT = 10.0   # seconds a writer waits for another process's write (SQLite's busy_timeout was the same)


class WriteLockTimeout(sqlite3.OperationalError):
    """Another process held the world's write lock longer than the wait allows: nothing was changed.

    A `sqlite3.OperationalError`, as SQLite's own "database is locked" was. Each door answers it as a
    circumstantial refusal on its own wire, as it answers `StorageFull` (see each door's errors.py); the store
    logs it once per episode."""

    code = "WORLD_BUSY"


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


class WriteLock:
    """The cross-process write lock of one database file. Not re-entrant and not for several threads at once:
    the store takes it under its own thread lock, once per outermost transaction."""

    def __init__(self, db: Path, wait: float = WAIT) -> None:
        self.path = lock_path(db)
        self.wait = wait
        self.created = not self.path.exists()   # a refused state folder is left as it was (discard())
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._held: int | None = None   # the descriptor whose lock is held
        self.waits = 0                  # contended acquisitions (tests and benchmarks read it)

    def acquire(self) -> None:
        assert self._held is None, "the write lock is not re-entrant"
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.waits += 1
            self._held = self._await()
        else:
            self._held = self._fd

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it, without waiting (the checkpointer: world/store.py)."""
        assert self._held is None, "the write lock is not re-entrant"
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._held = self._fd
        return True

    def _await(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        got = threading.Event()
        guard = threading.Lock()
        gave_up = False
        failed: list[OSError] = []

        def wait_for_it() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                failed.append(exc)
            with guard:
                if gave_up or failed:
                    os.close(fd)   # drops the lock the caller no longer wants (or never got)
                if not gave_up:
                    got.set()

        threading.Thread(target=wait_for_it, name="mockbench-write-lock", daemon=True).start()
        if not got.wait(self.wait):
            with guard:
                if not got.is_set():
                    gave_up = True
                    raise WriteLockTimeout(
                        f"another process held the world's write lock ({self.path}) for more than {self.wait:g} s: "
                        "the change was not made; retry, or stop the process that holds it")
        if failed:
            raise WriteLockTimeout(f"cannot take the world's write lock ({self.path}): {failed[0]}")
        return fd

    def release(self) -> None:
        fd, self._held = self._held, None
        if fd is None:
            return
        if fd == self._fd:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.close(fd)   # the helper's descriptor: closing it drops its lock

    def discard(self) -> None:
        """Close, and remove the lock file if this lock made it: for a store refused at open, whose folder must
        be left as the user gave it (tests/reliability/test_unusable_state.py)."""
        self.close()
        if self.created:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Idempotent (a store may be closed twice): a descriptor number closed twice could be another file's."""
        self.release()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
