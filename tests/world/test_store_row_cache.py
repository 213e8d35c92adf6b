"""The transaction's cache of rows read (world/store.py, Tx._rows; issue 21 point 1): a row read twice in one
transaction is one SQL query, and whatever path writes (Tx.put, put_json, delete, SQL on tx.conn, a savepoint
rolled back, a reset), the next read sees the write."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockbench.world.store import Store

IDS = ["a", "b", "c"]


def _fresh(tx, table: str, **where) -> list[dict]:
    """The rows as SQL has them now, without the cache."""
    sql = " AND ".join(["ns = ?", *[f"{k} = ?" for k in where]])
    rows = tx.conn.execute(f"SELECT data FROM {table} WHERE {sql} ORDER BY id", [tx.ns, *where.values()])
    return [json.loads(r[0]) for r in rows]


def _reads(tx) -> None:
    """Every query shape the cache keeps, against SQL."""
    for table in ("structures", "patients"):
        assert tx.select(table, order="id") == _fresh(tx, table)
        for rid in IDS:
            got = tx.get(table, id=rid)
            fresh = _fresh(tx, table, id=rid)
            assert got == (fresh[0] if fresh else None)
    for finess in ("1", "2"):
        assert tx.select("structures", order="id", finess=finess) == _fresh(tx, "structures", finess=finess)
    for key in ("m", "keep:m"):   # a meta row's text (the scenario's record, read for each journal entry)
        row = tx.conn.execute("SELECT data FROM meta WHERE ns = ? AND key = ?", (tx.ns, key)).fetchone()
        assert tx.meta_text(key) == (None if row is None else str(row[0]))


class Rollback(Exception):
    pass


def _apply(store, tx, op: tuple) -> None:
    kind, table, rid, value = op
    key = "finess" if table == "structures" else "ins"
    if kind == "put":
        tx.put(table, {"id": rid, "v": value}, id=rid, **{key: str(value % 2 + 1)})
    elif kind == "put_json":
        tx.put_json(table, json.dumps({"id": rid, "v": value, "by": "json"}), id=rid, **{key: str(value % 2 + 1)})
    elif kind == "delete":
        tx.delete(table, id=rid)
    elif kind == "sql_update":
        tx.conn.execute(f"UPDATE {table} SET data = ?, {key} = ? WHERE ns = ? AND id = ?",
                        (json.dumps({"id": rid, "v": value, "by": "sql"}), str(value % 2 + 1), tx.ns, rid))
    elif kind == "sql_insert":
        tx.conn.execute(f"INSERT OR REPLACE INTO {table} (ns, id, {key}, data) VALUES (?, ?, ?, ?)",
                        (tx.ns, rid, str(value % 2 + 1), json.dumps({"id": rid, "v": value, "by": "sql"})))
    elif kind == "sql_delete":
        tx.conn.execute(f"DELETE FROM {table} WHERE ns = ?", (tx.ns,))
    elif kind == "meta_set":
        tx.meta_set("m" if value % 2 else "keep:m", {"v": value, "of": rid})
    elif kind == "sql_meta":
        tx.conn.execute("INSERT OR REPLACE INTO meta (ns, key, data) VALUES (?, ?, ?)",
                        (tx.ns, "m" if value % 2 else "keep:m", json.dumps({"v": value, "by": "sql"})))
    elif kind == "savepoint_rolled_back":
        with pytest.raises(Rollback), tx.savepoint():
            tx.put(table, {"id": rid, "v": value, "by": "undone"}, id=rid, **{key: "1"})
            tx.meta_set("m", {"v": value, "by": "undone"})
            _reads(tx)   # the undone row is read, so cached, inside the savepoint
            raise Rollback
    elif kind == "reset":
        store.clear(tx)
    elif kind == "mutate_a_read_row":   # a caller changing the dict it got changes nothing stored
        row = tx.get(table, id=rid)
        if row is not None:
            row["v"] = "changed in memory only"


_ops = st.lists(st.tuples(
    st.sampled_from(["put", "put_json", "delete", "sql_update", "sql_insert", "sql_delete",
                     "savepoint_rolled_back", "reset", "mutate_a_read_row", "meta_set", "sql_meta"]),
    st.sampled_from(["structures", "patients"]), st.sampled_from(IDS), st.integers(0, 9)), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_a_write_through_any_path_is_seen_by_the_next_read(tmp_path, ops):
    store = Store(tmp_path / f"w{abs(hash(tuple(ops)))}.db")
    try:
        with store.transaction() as tx:
            _reads(tx)
            for op in ops:
                _apply(store, tx, op)
                _reads(tx)
        with store.read() as tx:   # and what was committed is what the transaction last read
            _reads(tx)
    finally:
        store.close()


def test_a_row_read_again_in_the_transaction_is_not_queried_again(tmp_path):
    store = Store(tmp_path / "w.db")
    try:
        with store.transaction() as tx:
            tx.put("patients", {"id": "alice"}, id="alice", ins="1")
            statements: list[str] = []
            tx.conn.set_trace_callback(statements.append)
            first = tx.get("patients", id="alice")
            first["changed"] = True
            again = tx.get("patients", id="alice")
            tx.conn.set_trace_callback(None)
            assert again == {"id": "alice"}   # a fresh dict each time
            assert len([s for s in statements if s.startswith("SELECT data FROM patients")]) == 1
        with store.transaction() as tx:   # a new transaction reads afresh
            statements.clear()
            tx.conn.set_trace_callback(statements.append)
            assert tx.get("patients", id="alice") == {"id": "alice"}
            tx.conn.set_trace_callback(None)
            assert any(s.startswith("SELECT data FROM patients") for s in statements)
    finally:
        store.close()
