"""The store's schema version (world/store.py MIGRATIONS): a version 3 file gets the journal's `actor` and
`verdict` columns, filled from the entries it holds; a file of a newer version is refused, naming both."""

from __future__ import annotations

import sqlite3

import pytest

from mockbench.checks import auto_search
from mockbench.world.journal import entry_json
from mockbench.world.store import INDEXES, NAMESPACES_DDL, SCHEMA_VERSION, TABLES, Store, StoreError, _ddl

V3_JOURNAL = ("seq", "time", "channel", "operation", "patient", "size")   # the journal's key columns in schema 3


def _entry(seq: int, actor: str, verdict: str, **more) -> dict:
    return {"seq": seq, "time": f"2026-12-07T10:00:{seq:02d}.000Z", "channel": "dmp", "operation": "TD3.1",
            "direction": "in", "actor": actor, "patient": "alice", "patient_ins": None, "document": None,
            "verdict": verdict, "code": None, "findings": [], "raw": "x", "raw_truncated": False, "size": 1,
            "ref": None, **more}


def v3_file(path, rows: list[tuple[str, int, str | bytes]]) -> None:
    """A world.db as schema 3 made it (the tables, indexes and namespaces of store.py, the journal without its
    schema-4 columns), holding the journal rows (namespace, seq, data)."""
    conn = sqlite3.connect(path)
    for table, keys in TABLES.items():
        conn.execute(_ddl(table, V3_JOURNAL if table == "journal" else keys))
    for ddl in INDEXES:
        conn.execute(ddl)
    conn.execute(NAMESPACES_DDL)
    conn.executemany("INSERT INTO journal (ns, seq, time, channel, operation, patient, size, data) "
                     "VALUES (?, ?, '2026-12-07T10:00:00.000Z', 'dmp', 'TD3.1', 'alice', 1, ?)", rows)
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()


def test_a_version_3_file_gets_the_journal_columns_filled_from_its_entries(tmp_path):
    path = tmp_path / "world.db"
    awkward = 'dr "a",\\"findings":[]'
    v3_file(path, [
        ("default", 1, entry_json(_entry(1, "dr-a", "accepted"))),
        ("default", 2, entry_json(_entry(2, awkward, "refused", response="<r>" + "é" * 40_000 + "</r>"))),
        ("default", 3, b"\x00not json"),                                     # left NULL, not a failed open
        ("default@snap", 1, entry_json(_entry(1, "dr-b", "error"))),        # a snapshot's rows too
    ])
    store = Store(path)
    try:
        with store.read() as tx:
            assert tx.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
            rows = tx.conn.execute("SELECT ns, seq, actor, verdict FROM journal ORDER BY ns, seq").fetchall()
            assert rows == [("default", 1, "dr-a", "accepted"), ("default", 2, awkward, "refused"),
                            ("default", 3, None, None), ("default@snap", 1, "dr-b", "error")]
            # auto_search reads them as they are now stored, after the entry's data in a migrated table.
            assert [(seq, actor, verdict) for seq, _, _, actor, verdict in auto_search._recent(tx, "alice", 0.0)] \
                == [(3, None, None), (2, awkward, "refused"), (1, "dr-a", "accepted")]
        with store.transaction() as tx:   # a new row goes to the migrated table's columns by name
            tx.put_json("journal", entry_json(_entry(4, "dr-c", "accepted")), seq=4, actor="dr-c",
                        verdict="accepted", patient="alice", channel="dmp")
            assert tx.conn.execute("SELECT actor, verdict FROM journal WHERE ns = ? AND seq = 4",
                                   (tx.ns,)).fetchone() == ("dr-c", "accepted")
    finally:
        store.close()
    store = Store(path)   # opened again: nothing left to migrate
    store.close()


def test_a_fresh_file_has_the_columns_before_the_entry(tmp_path):
    """A fresh journal has actor and verdict before `data`, so that reading them never walks the entry's
    overflow pages."""
    store = Store(tmp_path / "world.db")
    try:
        with store.read() as tx:
            columns = [r[1] for r in tx.conn.execute("PRAGMA table_info(journal)")]
    finally:
        store.close()
    assert columns[-3:] == ["actor", "verdict", "data"]


def test_a_newer_version_is_refused_naming_both_versions(tmp_path):
    path = tmp_path / "world.db"
    v3_file(path, [])
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as refused:
        Store(path)
    message = str(refused.value)
    assert str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message and f"schema version {SCHEMA_VERSION} " in message
    assert path.read_bytes() == before
