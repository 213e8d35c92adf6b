"""SQLite persistence for the world.

Every table carries a namespace column, so that several worlds (benches, snapshots) can share one file.
One world change is one transaction (BEGIN IMMEDIATE ... COMMIT) taken under a lock: concurrent requests
never see half a change, and an acknowledgement is sent only after COMMIT returned. WAL with
synchronous=NORMAL survives a killed process (kill -9) without an fsync per commit; only a power loss may
lose the last commits, which a test bench can afford.

Checkpoints (copying the WAL back into the database file, with its two fsyncs) are taken off the request
path: a `Checkpointer` thread with a connection of its own copies the WAL while writers go on, then takes the
write lock (the store's and the cross-process one) only to copy what was committed meanwhile, so the next
writer starts the WAL over. SQLite's own
checkpoint after a commit stays as a bound (`WAL_LIMIT_PAGES`) should that thread fall behind. A checkpoint
changes nothing a reader sees and is crash-safe whenever it is cut short.

Reads that may take long (a report, a journal page, the dashboard's data, the live timeline's catch-up) go
through `read()`: a read transaction on a connection of its own, which WAL lets run beside the writer, so that
they never hold a door's write (issue 17, point 13).

The file records its schema version (PRAGMA user_version): an older one is migrated in one transaction
(MIGRATIONS), a newer one is refused with both versions named. A write that fails for lack of disk space is
`StorageFull`, which each door answers on its own wire as a circumstantial refusal; it is logged once per
episode, and the next commit that succeeds ends the episode. So is `WriteLockTimeout` (xlock.py: another
process held the write lock too long), logged once until the lock is taken again.

At about 830 lines this module is above the house's ~800: the transaction, its row cache and its write-back
counters, the namespaces and the checkpointer share the connection and the store's lock, and splitting them
would expose those to each other; the cross-process lock (xlock.py) and JSON (jsontext.py) are already apart.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import jsontext
from .xlock import WriteLock, WriteLockTimeout

# 1: the tables below without `outbox` (mockbench 0.1.0). 2: `outbox`, the PFI's durable outbound queue.
# 3: `namespaces`, which generation of rows each namespace reads (a reset switches generation: see `clear`).
# 4: the journal's `actor` and `verdict` columns, which checks read without decoding the entry (issue 21).
SCHEMA_VERSION = 4
log = logging.getLogger("mockbench.store")

# Each table: its key columns after `ns`. Every table has `ns` first and `data` (JSON) last.
TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key",),
    "structures": ("id", "finess"),
    "professionals": ("id", "idnps"),
    "patients": ("id", "ins"),
    "authorizations": ("patient", "subject_kind", "subject"),
    "documents": ("entry_uuid", "unique_id", "patient", "current"),
    "contents": ("unique_id",),
    "traces": ("seq", "patient"),
    "mailboxes": ("address",),
    "messages": ("id", "mailbox"),
    "mailraw": ("id",),
    "tokens": ("token_hash", "kind"),
    "journal": ("seq", "time", "channel", "operation", "patient", "size", "actor", "verdict"),
    "outbox": ("id", "state", "due"),
}
PRIMARY_KEYS = {
    "meta": ("key",),
    "structures": ("id",),
    "professionals": ("id",),
    "patients": ("id",),
    "authorizations": ("patient", "subject_kind", "subject"),
    "documents": ("entry_uuid",),
    "contents": ("unique_id",),
    "traces": ("seq",),
    "mailboxes": ("address",),
    "messages": ("id",),
    "mailraw": ("id",),
    "tokens": ("token_hash",),
    "journal": ("seq",),
    "outbox": ("id",),
}
INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_prof_idnps ON professionals(ns, idnps)",
    "CREATE INDEX IF NOT EXISTS ix_pat_ins ON patients(ns, ins)",
    "CREATE INDEX IF NOT EXISTS ix_struct_finess ON structures(ns, finess)",
    "CREATE INDEX IF NOT EXISTS ix_doc_patient ON documents(ns, patient, current)",
    "CREATE INDEX IF NOT EXISTS ix_doc_unique ON documents(ns, unique_id)",
    "CREATE INDEX IF NOT EXISTS ix_trace_patient ON traces(ns, patient, seq)",
    "CREATE INDEX IF NOT EXISTS ix_msg_mailbox ON messages(ns, mailbox)",
    "CREATE INDEX IF NOT EXISTS ix_journal_channel ON journal(ns, channel, seq)",
    "CREATE INDEX IF NOT EXISTS ix_journal_patient ON journal(ns, patient, seq)",
    "CREATE INDEX IF NOT EXISTS ix_outbox_state ON outbox(ns, state, id)",
]
# A background checkpoint once about this many bytes were written since the last one (the data stored plus
# a few pages per commit for the tables' indexes and meta rows): SQLite's default is 1000 pages of 4 KiB.
CHECKPOINT_BYTES = 4 * 1024 * 1024
COMMIT_OVERHEAD_BYTES = 4 * 4096
WAL_LIMIT_PAGES = 10_000   # the writer checkpoints by itself past this WAL size (40 MiB)
CHECKPOINTER_IDLE = 5.0    # seconds without work before the checkpoint thread ends (started again on demand)
# Meta rows a transaction may change many times (sequence numbers, the journal's counts): read at most once and
# written once, at commit (`Tx.meta_get` / `meta_set` keep them in the transaction meanwhile). A PFI message
# moved each of them two or three times (issue 21, point 4).
WRITE_BACK_PREFIX = "seq:"
WRITE_BACK_KEYS = frozenset({"journal:stats", "store:world_writes"})
# How many committed transactions changed the world's state (every table but the logs below, every meta row but
# the write-back counters), so that a request computed on a snapshot (`Store.read_snapshot`) can tell, in the write
# transaction that journals it, that the state it read is still the state (`Store.unchanged`). The logs are left
# out so that concurrent journaled reads (a TD3.1 appends a trace and a journal entry) do not invalidate each
# other: what is computed on a snapshot must not read them (issue 21, point 3).
WORLD_WRITES = "store:world_writes"
LOG_TABLES = frozenset({"journal", "traces"})
# Kept by reset: the bench's own infrastructure (signing keys), not the world's content.
KEEP_ON_RESET = {"meta": "key LIKE 'keep:%'"}
ROWS_KEPT = 64             # a query answering more rows is not kept by the transaction's cache (Tx._rows)
READERS_KEPT = 8           # idle read connections kept open for the next read


class StoreError(Exception):
    """The world's file cannot be used: said in one line that names the file and what to do."""


class NeedsWrite(Exception):
    """A request computed on a snapshot (`Store.read_snapshot`) tried to write: it must run in a write transaction."""


class StorageFull(Exception):
    """A write failed for lack of disk space: nothing was changed; the same request may succeed later."""

    code = "STORAGE_FULL"

    def __init__(self, path: Path) -> None:
        super().__init__(f"the disk holding {path} is full: the change was not stored; retry once space is freed")


# What the store cannot take now, with nothing changed: a full disk, another process holding the world's write
# lock past its wait. Each door answers them as one circumstantial, retryable refusal on its own wire.
UNAVAILABLE: tuple[type[StorageFull], type[WriteLockTimeout]] = (StorageFull, WriteLockTimeout)


# A namespace's rows live under a physical name: the namespace's own until its first reset, then a fresh
# generation (`name~hex`). A reset (`Store.clear`) switches generation in one small transaction and marks the
# old one dead; the `Reaper` deletes dead generations in small chunks afterwards, so that a reset takes the
# same time whatever the world's size (issue 21, point 6). `live` is 1 for the one a namespace reads.
NAMESPACES_DDL = ("CREATE TABLE IF NOT EXISTS namespaces (physical TEXT PRIMARY KEY, name TEXT NOT NULL, "
                  "live INTEGER NOT NULL)")
REAP_CHUNK = 200   # rows deleted per reaper transaction: a door waits at most one chunk (a few ms)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    conn.execute(_ddl("outbox", TABLES["outbox"]))


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    conn.execute(NAMESPACES_DDL)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    # ADD COLUMN puts them after `data`, where a fresh file has them before it: reading them then walks the
    # entry's overflow pages, still without decoding it. A row that is not JSON keeps NULLs.
    conn.execute("ALTER TABLE journal ADD COLUMN actor")
    conn.execute("ALTER TABLE journal ADD COLUMN verdict")
    conn.execute("UPDATE journal SET actor = json_extract(CAST(data AS TEXT), '$.actor'), "
                 "verdict = json_extract(CAST(data AS TEXT), '$.verdict') WHERE json_valid(CAST(data AS TEXT))")


# from version -> the step to the next version; run in order, in one transaction, when an older file is opened
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3,
                                                                3: _migrate_3_to_4}


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or "disk is full" in str(exc)


def _ddl(table: str, keys: tuple[str, ...]) -> str:
    cols = ", ".join(["ns TEXT NOT NULL", *[f"{k}" for k in keys], "data BLOB"])
    pk = ", ".join(("ns", *PRIMARY_KEYS[table]))
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({pk}))"


# Each table's INSERT, written once.
_INSERT = {table: f"INSERT OR REPLACE INTO {table} (ns, {', '.join(cols)}, data) VALUES "
                  f"({', '.join('?' * (len(cols) + 2))})" for table, cols in TABLES.items()}
# The same, the data given as the UTF-8 bytes of its JSON text and stored as TEXT (byte for byte, in the UTF-8
# database): a caller holding the bytes (orjson's) spares decoding them and SQLite's encoding them back.
_INSERT_UTF8 = {table: sql.rsplit("?", 1)[0] + "CAST(? AS TEXT))" for table, sql in _INSERT.items()}


class Tx:
    """One open transaction on one namespace. Rows go in and out as dicts."""

    def __init__(self, conn: sqlite3.Connection, ns: str, name: str | None = None) -> None:
        self.conn = conn
        self.ns = ns              # the physical namespace the SQL uses (see NAMESPACES_DDL)
        self.name = name or ns    # the namespace as callers name it
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], None]] = []
        self._savepoints = 0
        self.written = 0   # bytes of data put, to tell when a checkpoint is due
        # Write-back meta rows (WRITE_BACK_*): key -> value as this transaction sees it, and the keys it changed.
        self._back: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self.read_only = False    # a snapshot's: a write raises NeedsWrite
        self.dry = False          # a dry run's snapshot: a write is dropped
        self.world_wrote = False  # a write to the world's state (WORLD_WRITES), or one this class did not see
        self.mark: tuple[str, int] | None = None   # a snapshot's: the world's state it read (Store.unchanged)
        self._rows_init()

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after_commit.append(fn)

    def before_commit(self, fn: Callable[[], None]) -> None:
        """Run at the end of the outermost transaction, inside it: its writes commit with the rest."""
        self._before_commit.append(fn)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that can fail alone: on error its changes and its after-commit
        callbacks are undone, and the error goes on up."""
        self._savepoints += 1
        name, pending, before = f"sp{self._savepoints}", len(self._after_commit), len(self._before_commit)
        back, dirty = {k: _copy(v) for k, v in self._back.items()}, set(self._dirty)
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            self._rows_forget()
            del self._after_commit[pending:]
            del self._before_commit[before:]
            self._back, self._dirty = back, dirty   # the write-back rows as they were, like the others
            raise
        else:
            self.conn.execute(f"RELEASE {name}")

    # Generic row access -------------------------------------------------------------------------
    def put(self, table: str, data: dict | bytes, **keys: Any) -> None:
        cols = TABLES[table]
        if not self._writes(table):
            return
        values = [keys.get(c) for c in cols]
        blob = data if isinstance(data, bytes) else jsontext.dumps(data)
        self.written += len(blob)
        self._rows_check()
        self.conn.execute(_INSERT[table], [self.ns, *values, blob])
        self._rows_wrote(table)

    def put_json(self, table: str, text: str | bytes, **keys: Any) -> None:
        """`put` of a row whose JSON the caller already wrote (the journal: see journal.entry_json), as a str
        or as its UTF-8 bytes (stored as the same TEXT)."""
        cols = TABLES[table]
        if not self._writes(table):
            return
        self.written += len(text)
        self._rows_check()
        sql = _INSERT_UTF8[table] if isinstance(text, bytes) else _INSERT[table]
        self.conn.execute(sql, [self.ns, *[keys.get(c) for c in cols], text])
        self._rows_wrote(table)

    def _writes(self, table: str) -> bool:
        """Whether a write to `table` goes through (False: dropped, on a dry run's snapshot)."""
        if self.read_only:
            raise NeedsWrite(f"a write to {table}")
        if self.dry:
            return False
        if table not in LOG_TABLES:
            self.world_wrote = True
        return True

    def get(self, table: str, **where: Any) -> dict | None:
        rows = self.select(table, limit=1, **where)
        return rows[0] if rows else None

    def select(self, table: str, *, order: str | None = None, limit: int | None = None, offset: int = 0,
               **where: Any) -> list[dict]:
        key = (self.ns, order, limit, offset, *where.items())
        texts = self._rows_cached(table, key)
        if texts is None:
            sql = _select_sql(table, tuple(where), order, limit, offset)
            texts = [r[0] for r in self.conn.execute(sql, [self.ns, *where.values()])]
            self._rows_keep(table, key, texts)
        return [self._load(text) for text in texts]

    def delete(self, table: str, **where: Any) -> int:
        if not self._writes(table):
            return 0
        sql, params = self._where(table, where)
        self._rows_check()
        count = self.conn.execute(f"DELETE FROM {table}{sql}", params).rowcount
        self._rows_wrote(table)
        return count

    def count(self, table: str, **where: Any) -> int:
        sql, params = self._where(table, where)
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}{sql}", params).fetchone()[0]

    def get_blob(self, table: str, **where: Any) -> bytes | None:
        sql, params = self._where(table, where)
        row = self.conn.execute(f"SELECT data FROM {table}{sql} LIMIT 1", params).fetchone()
        return None if row is None else bytes(row[0])

    def _where(self, table: str, where: dict) -> tuple[str, list]:
        allowed = TABLES[table]
        parts, params = ["ns = ?"], [self.ns]
        for k, v in where.items():
            if k not in allowed:
                raise KeyError(f"{table} has no key column {k}")
            parts.append(f"{k} = ?")
            params.append(v)
        return " WHERE " + " AND ".join(parts), params

    @staticmethod
    def _load(raw: Any) -> dict:
        return jsontext.loads(raw)

    # The transaction's cache of rows read (issue 21 point 1) ----------------------------------------
    # `select` (and so `get`) keeps the JSON text of the rows it read, per table and query, for the rest of the
    # transaction: a TD3.1 read the same patient row five times. Each call still decodes the text afresh, so
    # a caller that changes the dict it got changes nothing else. A write through `put`, `put_json` or
    # `delete` forgets its table's queries; any other write (SQL on `tx.conn`) is seen by the connection's
    # total_changes moving, and forgets them all; so does a savepoint rolled back. Rows (`Tx`) live for one
    # transaction, on one thread.
    def _rows_init(self) -> None:
        self._rows: dict[str, dict[tuple, list]] = {}
        self._rows_mark = self.conn.total_changes

    def _rows_check(self) -> None:
        """Forget everything if a write went around this class since the last look."""
        changes = self.conn.total_changes
        if changes != self._rows_mark:
            self.world_wrote = True   # counted as a change of the world's state: the safe side
            self._rows.clear()
            self._rows_mark = changes

    def _rows_cached(self, table: str, key: tuple) -> list | None:
        self._rows_check()
        queries = self._rows.get(table)
        return None if queries is None else queries.get(key)

    def _rows_keep(self, table: str, key: tuple, texts: list) -> None:
        if len(texts) <= ROWS_KEPT:
            self._rows.setdefault(table, {})[key] = texts

    def _rows_wrote(self, table: str) -> None:
        """A write to `table` through this class (after `_rows_check`): only its queries are forgotten."""
        self._rows.pop(table, None)
        self._rows_mark = self.conn.total_changes

    def _rows_forget(self) -> None:
        if self.conn.total_changes != self._rows_mark:
            self.world_wrote = True
        self._rows.clear()
        self._rows_mark = self.conn.total_changes

    # Small key/value area -----------------------------------------------------------------------
    def meta_get(self, key: str, default: Any = None) -> Any:
        if key in self._back:
            value = self._back[key]
            return default if value is None else _copy(value)
        row = self.conn.execute("SELECT data FROM meta WHERE ns = ? AND key = ?", (self.ns, key)).fetchone()
        value = None if row is None else jsontext.loads(row[0])
        if _write_back(key):
            self._back[key] = _copy(value)
        return default if value is None else value

    def meta_text(self, key: str) -> str | None:
        """A meta value's stored JSON text, undecoded (a caller that caches the decoded value by its text)."""
        if key in self._back:   # a write-back row: its text as it will be stored
            value = self._back[key]
            return None if value is None else jsontext.dumps(value)
        # Kept with the transaction's rows (read again for each journal entry: the scenario's record), forgotten
        # with them on any write to the meta table.
        query = ("meta_text", self.ns, key)
        texts = self._rows_cached("meta", query)
        if texts is None:
            row = self.conn.execute("SELECT data FROM meta WHERE ns = ? AND key = ?", (self.ns, key)).fetchone()
            texts = [None if row is None else str(row[0])]
            self._rows_keep("meta", query, texts)
        return texts[0]

    def meta_set(self, key: str, value: Any) -> None:
        if self.read_only:
            raise NeedsWrite(f"a write to meta {key}")
        if self.dry:
            return
        if _write_back(key):
            self._back[key] = _copy(value)
            self._dirty.add(key)
            return
        self.put("meta", value, key=key)

    def flush(self) -> None:
        """Write the write-back meta rows this transaction changed (at commit, and before anything reads the
        meta table by SQL: a reset's or a snapshot's copy)."""
        if not self._dirty:
            return
        rows = []
        for key in sorted(self._dirty):
            blob = jsontext.dumps(self._back[key])
            self.written += len(blob)
            rows.append((self.ns, key, blob))
        self._dirty.clear()
        self._rows_check()
        self.conn.executemany(_INSERT["meta"], rows)
        self._rows_wrote("meta")

    def next_seq(self, name: str) -> int:
        value = int(self.meta_get(f"seq:{name}", 0)) + 1
        self.meta_set(f"seq:{name}", value)
        return value


@functools.lru_cache(maxsize=256)
def _select_sql(table: str, keys: tuple[str, ...], order: str | None, limit: int | None, offset: int) -> str:
    """`Tx.select`'s statement, written once per shape (its parameters: the namespace, then the keys' values);
    an unknown key column raises KeyError every time (an exception is not kept)."""
    allowed = TABLES[table]
    for k in keys:
        if k not in allowed:
            raise KeyError(f"{table} has no key column {k}")
    sql = "SELECT data FROM " + table + " WHERE " + " AND ".join(["ns = ?", *[f"{k} = ?" for k in keys]])
    if order:
        sql += f" ORDER BY {order}"
    if limit is not None or offset:
        sql += f" LIMIT {-1 if limit is None else int(limit)}"
    if offset:
        sql += f" OFFSET {int(offset)}"
    return sql


def _write_back(key: str) -> bool:
    return key.startswith(WRITE_BACK_PREFIX) or key in WRITE_BACK_KEYS


def _copy(value: Any) -> Any:
    # The write-back values are numbers and flat dicts: a caller that changes what it read changes its own copy.
    return dict(value) if isinstance(value, dict) else value


class Store:
    def __init__(self, path: Path, namespace: str = "default") -> None:
        self.path = Path(path)
        self.namespace = namespace
        self._lock = threading.RLock()
        self._writing = 0   # depth of _writer() on the thread holding _lock
        # Several processes on one file (issue 21 point 3): what this process keeps of the store is re-read
        # when another one committed (see _follow); `shared` makes reads look up the live generation too.
        self.followers: list[Callable[[Tx], None]] = []
        self.shared = False
        self._data_version = 0
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []   # idle read connections (read())
        self._readers_lock = threading.Lock()
        self._full = False   # a disk-full episode is on: logged when it starts and when it ends
        self._locked_out = False   # the same for another process holding the write lock (WriteLockTimeout)
        self._physical: dict[str, str] = {}   # namespace -> its live generation (read at open, set by clear)
        self._xlock = self._write_lock()
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                         timeout=10)
        except sqlite3.Error as exc:
            self._xlock.discard()
            raise StoreError(self.unusable(exc)) from None
        try:
            self._open()
        except sqlite3.Error as exc:
            self._conn.close()
            self._xlock.discard()
            if _is_full(exc):
                raise StorageFull(self.path) from None
            raise StoreError(self.unusable(exc)) from None
        except StoreError:
            self._conn.close()
            self._xlock.discard()
            raise
        self._written = 0   # bytes written since the last checkpoint was asked for (under the lock)
        self._checkpointer = Checkpointer(self)
        self._reaper = Reaper(self)
        if self._conn.execute("SELECT 1 FROM namespaces WHERE live = 0 LIMIT 1").fetchone():
            self._reaper.request()   # left by a bench stopped before it finished

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            from .. import __version__

            raise StoreError(
                f"{self.path} has schema version {version}, written by a newer mockbench; this mockbench "
                f"({__version__}) reads schema version {SCHEMA_VERSION} and older: run the newer mockbench, or "
                "give another --state folder")

    def unusable(self, exc: sqlite3.Error) -> str:
        return (f"{self.path} cannot be used as the world's database ({exc}): move it away (or delete it) to start "
                "with an empty world, or give another --state folder")

    def _open(self) -> None:
        # Read first, before anything (journal_mode included) writes to the file: a newer one stays untouched.
        self._refuse_newer(self._conn.execute("PRAGMA user_version").fetchone()[0])
        # A new file is made WAL and given its tables without an fsync (six of them, 17 ms of a start here: issue
        # 21 point 5); its first checkpoint (CHECKPOINT_BYTES written, or the bench stopped) makes it durable. A
        # power loss before then may cost the file, whose commits NORMAL would not have kept either; a killed
        # process costs nothing.
        new = self._conn.execute("PRAGMA page_count").fetchone()[0] == 0
        self._conn.execute("PRAGMA synchronous=OFF" if new else "PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_PAGES}")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        # Writers are ordered by the write lock (xlock.py); SQLite's busy wait is left for what holds a WAL lock
        # for a moment outside it: a connection opening the file, or re-reading the WAL index after reading it
        # while a commit changed it (SQLite then takes the WAL's write lock to read it again).
        self._conn.execute("PRAGMA busy_timeout=10000")
        with self._writer():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                self._refuse_newer(version)
                if version:
                    for step in range(version, SCHEMA_VERSION):
                        MIGRATIONS[step](self._conn)
                for table, keys in TABLES.items():
                    self._conn.execute(_ddl(table, keys))
                for ddl in INDEXES:
                    self._conn.execute(ddl)
                self._conn.execute(NAMESPACES_DDL)
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._physical = dict(self._conn.execute("SELECT name, physical FROM namespaces WHERE live = 1"))
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if 0 < version < SCHEMA_VERSION:
            log.info("%s migrated from schema version %d to %d", self.path, version, SCHEMA_VERSION)

    def _write_lock(self) -> WriteLock:
        try:
            return WriteLock(self.path)
        except OSError as exc:
            raise StoreError(f"cannot open the world's write lock beside {self.path} ({exc.strerror}): give a "
                             "--state folder this user can write to") from None

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """The right to write: the thread lock, then the cross-process lock (xlock.py), so that SQLite never
        waits in its busy handler for another process's write. Re-entrant on the same thread."""
        with self._lock:
            self._writing += 1
            if self._writing == 1:
                try:
                    self._xlock.acquire()
                except BaseException as exc:
                    self._writing -= 1
                    if isinstance(exc, WriteLockTimeout) and not self._locked_out:   # once per episode
                        self._locked_out = True
                        log.error("%s; every door refuses changes (as a circumstantial, retryable refusal) until "
                                  "it is released", exc)
                    raise
                if self._locked_out:
                    self._locked_out = False
                    log.warning("%s: the world's write lock is free again, the bench stores changes again",
                                self.path)
            try:
                yield
            finally:
                self._writing -= 1
                if not self._writing:
                    self._xlock.release()

    def _follow(self, tx: Tx) -> None:
        """At the start of a write transaction: when another connection (another process) committed since this
        one last looked (SQLite's data_version, which this connection's own commits leave alone), re-read the
        live generations (a reset elsewhere) and let the followers re-read what they keep (the clock's offset,
        the timers): any process then sees the world as the last writer left it."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        self._physical = dict(self._conn.execute("SELECT name, physical FROM namespaces WHERE live = 1"))
        tx.ns = self.physical(tx.name)
        for fn in list(self.followers):
            fn(tx)

    def foreign_commits(self) -> bool:
        """Whether another connection (another process) committed since this store's last write transaction
        looked: the primary's ticker then opens one, which re-reads the timers another process set."""
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0] != self._data_version

    @staticmethod
    def _follow_read(tx: Tx) -> None:
        """A read in a store shared by several processes: the generation live in this read's snapshot, which
        another process's reset may have switched."""
        row = tx.conn.execute("SELECT physical FROM namespaces WHERE name = ? AND live = 1", (tx.name,)).fetchone()
        if row is not None:
            tx.ns = row[0]

    def physical(self, ns: str | None = None) -> str:
        name = ns or self.namespace
        return self._physical.get(name, name)

    def close(self) -> None:
        self._reaper.close()
        self._checkpointer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        with self._lock:
            self._conn.close()
            self._xlock.close()

    @contextmanager
    def transaction(self, ns: str | None = None) -> Iterator[Tx]:
        """A write transaction. Nested calls on the same thread join the outer one. A write that fails for
        lack of disk space raises StorageFull, with nothing changed."""
        current: Tx | None = getattr(self._local, "tx", None)
        if current is not None and (ns is None or ns == current.name):
            yield current
            return
        if getattr(self._local, "snapshot", False):   # it would commit apart from the request computed on it
            raise NeedsWrite("a write transaction inside a snapshot")
        with self._writer():
            tx = Tx(self._conn, self.physical(ns), ns or self.namespace)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._failed(exc)
                raise
            self._local.tx = tx
            changes = self._conn.total_changes
            try:
                self._follow(tx)
                yield tx
                while tx._before_commit:   # a callback may add more
                    tx._before_commit.pop(0)()
                tx._rows_check()   # a write in SQL of its own since the last look: world_wrote
                if tx.world_wrote:
                    tx.meta_set(WORLD_WRITES, int(tx.meta_get(WORLD_WRITES, 0)) + 1)
                tx.flush()
                self._conn.execute("COMMIT")
                if tx.ns != self.physical(tx.name):   # a reset switched generation: readers follow now
                    self._physical[tx.name] = tx.ns
                    self._reaper.request()
            except BaseException as exc:
                if self._conn.in_transaction:   # SQLite may have rolled back by itself (a full disk)
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    self._failed(exc)
                raise
            else:
                if self._full and self._conn.total_changes != changes:   # a write went through: space is back
                    self._full = False
                    log.warning("%s: disk space is back, the bench stores changes again", self.path)
                self._written += tx.written + COMMIT_OVERHEAD_BYTES
                if self._written >= CHECKPOINT_BYTES:
                    self._written = 0
                    self._checkpointer.request()
            finally:
                self._local.tx = None
        for fn in tx._after_commit:
            try:
                fn()
            except Exception:  # the change is committed: a failing listener must not undo the answer
                log.exception("an after-commit callback failed")

    def _failed(self, exc: sqlite3.Error) -> None:
        """A failed write, under the lock: a full disk becomes StorageFull, logged once per episode."""
        if not _is_full(exc):
            return
        if not self._full:
            self._full = True
            log.error("%s: the disk is full; every door refuses changes (as a circumstantial, retryable "
                      "refusal) until space is freed", self.path)
        raise StorageFull(self.path) from exc

    @contextmanager
    def read(self, ns: str | None = None) -> Iterator[Tx]:
        """A read transaction on a connection of its own: one consistent view that never holds the writer
        (WAL). Inside a write transaction on the same thread, that transaction (it sees its own changes)."""
        current: Tx | None = getattr(self._local, "tx", None) or getattr(self._local, "read", None)
        if current is not None and (ns is None or ns == current.name):
            yield current
            return
        with self._readers_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        tx = Tx(conn, self.physical(ns), ns or self.namespace)
        conn.execute("BEGIN")
        if self.shared:
            self._follow_read(tx)
        self._local.read = tx
        try:
            yield tx
        finally:
            self._local.read = None
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
            else:
                with self._readers_lock:
                    keep = len(self._readers) < READERS_KEPT
                    if keep:
                        self._readers.append(conn)
                if not keep:
                    conn.close()

    @contextmanager
    def read_snapshot(self, ns: str | None = None, *, dry: bool = False) -> Iterator[Tx]:
        """A read transaction (`read`) for a request computed before the write transaction that journals it
        (issue 21, point 3): a write in it, or a write transaction opened inside it, raises NeedsWrite (the
        request then runs in a write transaction as a whole); `tx.mark` is the world's state it reads, which
        `unchanged` compares in that write transaction. Not inside another transaction on this thread.
        `dry`: a dry run, whose only product is what it computed on the side (signatures): writes through `Tx`
        are dropped, and what it reads back is the snapshot, not its own writes."""
        if self.in_transaction() or getattr(self._local, "read", None) is not None:
            raise NeedsWrite("a snapshot inside a transaction")
        with self.read(ns) as tx:
            tx.read_only, tx.dry = not dry, dry
            self._local.snapshot = True
            try:
                tx.mark = (tx.ns, int(tx.meta_get(WORLD_WRITES, 0)))   # the first read: the snapshot's own
                yield tx
            except sqlite3.OperationalError as exc:   # a write in SQL of its own, on a query_only connection
                if "readonly" in str(exc):
                    raise NeedsWrite(str(exc)) from exc
                raise
            finally:
                self._local.snapshot = False

    @staticmethod
    def unchanged(tx: Tx, mark: tuple[str, int] | None) -> bool:
        """In a write transaction: no change of the world's state committed since the snapshot that took `mark`,
        none made so far in `tx` either (a timer fired at its start): what was computed on the snapshot is what
        this transaction would compute. The logs (LOG_TABLES) and the write-back counters are not counted."""
        tx._rows_check()
        return mark is not None and not tx.world_wrote and (tx.ns, int(tx.meta_get(WORLD_WRITES, 0))) == mark

    def in_transaction(self) -> bool:
        return getattr(self._local, "tx", None) is not None

    # Whole-namespace operations -----------------------------------------------------------------
    def clear(self, tx: Tx) -> None:
        """Empty the transaction's namespace, in the same short time whatever its size: its rows move to a
        fresh generation holding only what a reset keeps (signing keys); the old generation is marked dead
        and deleted by the Reaper in small chunks after the commit. The rest of `tx` writes to the new one."""
        self._switch(tx, source=tx.ns)

    def _switch(self, tx: Tx, *, source: str) -> None:
        """Point `tx` at a new generation of its namespace holding the current generation's kept rows and,
        when `source` is another namespace (a snapshot), a copy of `source`'s other rows."""
        tx.flush()   # the old generation's counters as this transaction left them, before its rows are read
        tx._back.clear()
        old = tx.ns
        new = f"{tx.name}~{uuid.uuid4().hex[:12]}"
        for table, keys in TABLES.items():
            keep = KEEP_ON_RESET.get(table)
            cols = ", ".join((*keys, "data"))
            if keep:
                tx.conn.execute(f"INSERT INTO {table} (ns, {cols}) SELECT ?, {cols} FROM {table} "
                                f"WHERE ns = ? AND ({keep})", (new, old))
            if source != old:
                extra = f" AND NOT ({keep})" if keep else ""
                tx.conn.execute(f"INSERT INTO {table} (ns, {cols}) SELECT ?, {cols} FROM {table} "
                                f"WHERE ns = ?{extra}", (new, source))
        tx.conn.execute("INSERT OR REPLACE INTO namespaces (physical, name, live) VALUES (?, ?, 0)", (old, tx.name))
        tx.conn.execute("INSERT INTO namespaces (physical, name, live) VALUES (?, ?, 1)", (new, tx.name))
        tx.ns = new
        tx._rows_forget()   # cached rows of the old generation

    def copy_namespace(self, tx: Tx, source: str, target: str) -> None:
        """Replace the world in `target` by a copy of `source` (snapshot). What a reset keeps (signing keys)
        is neither copied nor replaced: restoring a snapshot must not change the keys."""
        tx.flush()
        for table, keys in TABLES.items():
            cols = ", ".join((*keys, "data"))
            keep = KEEP_ON_RESET.get(table)
            extra = f" AND NOT ({keep})" if keep else ""
            tx.conn.execute(f"DELETE FROM {table} WHERE ns = ?{extra}", (target,))
            tx.conn.execute(f"INSERT INTO {table} (ns, {cols}) SELECT ?, {cols} FROM {table} WHERE ns = ?{extra}",
                            (target, source))

    def snapshot(self, name: str) -> None:
        with self.transaction() as tx:
            self.copy_namespace(tx, tx.ns, f"{tx.name}@{name}")

    def restore(self, name: str) -> None:
        """The snapshot's rows copied into a new generation (the current one is reaped later, as by a reset)."""
        with self.transaction() as tx:
            source = f"{tx.name}@{name}"
            if not tx.conn.execute("SELECT 1 FROM meta WHERE ns = ? LIMIT 1", (source,)).fetchone():
                raise KeyError(name)
            self._switch(tx, source=source)

    def snapshots(self) -> list[str]:
        with self.read() as tx:
            prefix = f"{tx.name}@"
            rows = tx.conn.execute("SELECT DISTINCT ns FROM meta WHERE substr(ns, 1, ?) = ? ORDER BY ns",
                                   (len(prefix), prefix)).fetchall()
        return [r[0][len(prefix):] for r in rows]

    def holds_world(self) -> bool:
        with self.read() as tx:
            return tx.meta_get("world:created") is not None


class Checkpointer:
    """Checkpoints a store's WAL from a thread of its own, started when a checkpoint is asked for and ended
    after CHECKPOINTER_IDLE seconds without one (a bench left idle, or never closed by a test, keeps no
    thread). Failures are logged, never raised: SQLite's own checkpoint after a commit is the fallback."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._wanted = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.passes = [0, 0]   # locked passes run, and skipped because another process wrote (tests read them)

    def request(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mockbench-checkpoint", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify()
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    deadline = time.monotonic() + CHECKPOINTER_IDLE
                    while not self._wanted and not self._closed:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    if self._closed or not self._wanted:
                        self._thread = None
                        return
                    self._wanted = False
                if conn is None:
                    conn = sqlite3.connect(str(self.store.path), check_same_thread=False, isolation_level=None,
                                           timeout=10)
                    conn.execute("PRAGMA synchronous=NORMAL")
                # The bulk, while writers go on; then what they committed meanwhile, under the write lock (the
                # thread lock and the cross-process one), so that the whole WAL is copied and the next writer
                # starts it over instead of growing it. Under the thread lock alone another process's write
                # went on beside it. That process holding the lock: skipped, not awaited (its writes ask again).
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                with self.store._lock:
                    if self.store._xlock.try_acquire():
                        try:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        finally:
                            self.store._xlock.release()
                        self.passes[0] += 1
                    else:
                        self.passes[1] += 1
        except sqlite3.Error:
            log.warning("background checkpoint failed; SQLite checkpoints after commits instead", exc_info=True)
            with self._cond:
                self._thread = None
        finally:
            if conn is not None:
                conn.close()


class Reaper:
    """Deletes the dead generations of namespaces (left by resets and restores) from a thread of its own, in
    transactions of REAP_CHUNK rows per table under the store's lock, so that no door waits more than one
    chunk. Started on demand, ended when nothing is left; what a stopped bench left is reaped at its next
    start. Failures are logged, never raised: the rows stay dead and are retried at the next request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._closed = False
        self._wanted = False
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()   # set when nothing is left to reap (tests and benchmarks wait on it)
        self.idle.set()

    def request(self) -> None:
        with self._cond:
            if self._closed:
                return
            self.idle.clear()
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mockbench-reaper", daemon=True)
                self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _chunk(self) -> bool:
        """Delete one chunk of one dead generation; False when none is left."""
        store = self.store
        with store._writer():
            conn = store._conn
            row = conn.execute("SELECT physical FROM namespaces WHERE live = 0 LIMIT 1").fetchone()
            if row is None:
                return False
            (dead,) = row
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for table in TABLES:
                    deleted += conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                                            f"WHERE ns = ? LIMIT {REAP_CHUNK})", (dead,)).rowcount
                    if deleted >= REAP_CHUNK:
                        break
                if not deleted:
                    conn.execute("DELETE FROM namespaces WHERE physical = ?", (dead,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            store._written += deleted * 256 + COMMIT_OVERHEAD_BYTES   # a rough size of the pages changed
            if store._written >= CHECKPOINT_BYTES:
                store._written = 0
                store._checkpointer.request()
        return True

    def _run(self) -> None:
        try:
            while not self._closed:
                with self._cond:
                    if not self._wanted:
                        break
                    self._wanted = False
                while not self._closed:
                    t0 = time.perf_counter()
                    if not self._chunk():
                        break
                    # At most half the store's time: a waiting door takes the lock between chunks.
                    time.sleep(max(0.002, time.perf_counter() - t0))
        except sqlite3.Error:
            log.warning("deleting an old generation of the world failed; retried at the next reset or start",
                        exc_info=True)
        finally:
            with self._cond:
                self._thread = None
                if not self._closed:
                    self.idle.set()
