"""The SQLite store: transactions, savepoints, after-commit callbacks, snapshots, clear and reset."""

from __future__ import annotations

import sqlite3
import time

import pytest

from mockbench.world import events
from mockbench.world.store import SCHEMA_VERSION, TABLES, Store


def _structure(sid: str) -> dict:
    return {"id": sid, "name": sid.upper()}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "w.db")
    yield s
    s.close()


def test_schema_created(store):
    with store.transaction() as tx:
        tables = {r[0] for r in tx.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tx.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert tx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert set(TABLES) <= tables


def test_a_new_file_is_created_without_fsync_then_written_with_normal_sync(tmp_path):
    """Store._open makes a new file WAL with synchronous=OFF (no fsync at start-up, issue 21 point 5), then
    every commit runs under NORMAL, as on a file that existed (1 = NORMAL)."""
    path = tmp_path / "w.db"
    for opening in ("new", "existing"):
        store = Store(path)
        try:
            with store.transaction() as tx:
                assert tx.conn.execute("PRAGMA synchronous").fetchone()[0] == 1, opening
                tx.put("structures", _structure(opening), id=opening, finess=opening)
        finally:
            store.close()
    reopened = Store(path)
    try:
        with reopened.transaction() as tx:
            assert [r["id"] for r in tx.select("structures")] == ["existing", "new"]
    finally:
        reopened.close()


def test_put_get_select_count_delete(store):
    with store.transaction() as tx:
        tx.put("structures", _structure("b"), id="b", finess="2")
        tx.put("structures", _structure("a"), id="a", finess="1")
        tx.put("structures", {"id": "a", "name": "again"}, id="a", finess="1")  # insert or replace
        assert tx.get("structures", id="a") == {"id": "a", "name": "again"}
        assert tx.get("structures", finess="2") == _structure("b")
        assert tx.get("structures", id="zz") is None
        assert [r["id"] for r in tx.select("structures", order="id")] == ["a", "b"]
        assert [r["id"] for r in tx.select("structures", order="id DESC", limit=1)] == ["b"]
        assert tx.count("structures") == 2
        assert tx.delete("structures", id="a") == 1
        assert tx.count("structures") == 1
        with pytest.raises(KeyError):
            tx.get("structures", colour="blue")


def test_blob_round_trip(store):
    data = bytes(range(256))
    with store.transaction() as tx:
        tx.put("contents", data, unique_id="1.2")
    with store.transaction() as tx:
        assert tx.get_blob("contents", unique_id="1.2") == data
        assert tx.get_blob("contents", unique_id="9.9") is None


def test_meta_and_sequences(store):
    with store.transaction() as tx:
        assert tx.meta_get("x", "default") == "default"
        tx.meta_set("x", {"a": [1, 2]})
        assert [tx.next_seq("n") for _ in range(3)] == [1, 2, 3]
        assert tx.next_seq("other") == 1
    with store.transaction() as tx:
        assert tx.meta_get("x") == {"a": [1, 2]}
        assert tx.next_seq("n") == 4


def test_counters_are_written_once_per_transaction(store):
    """Sequence numbers and the journal's counts are read at most once and written once, at commit (issue 21,
    point 4), and every reader in the transaction sees their latest value."""
    statements: list[str] = []
    with store.transaction() as tx:
        tx.conn.set_trace_callback(statements.append)
        assert [tx.next_seq("n") for _ in range(3)] == [1, 2, 3]
        tx.meta_set("journal:stats", {"count": 1})
        stats = tx.meta_get("journal:stats")
        stats["count"] = 99   # a caller's copy: not the transaction's value until it is set
        assert tx.meta_get("journal:stats") == {"count": 1}
        assert tx.meta_get("seq:n") == 3
        assert tx.meta_text("seq:n") == "3" and tx.meta_text("journal:stats") == '{"count":1}'
        assert not any(s.startswith("INSERT") for s in statements)
    store._conn.set_trace_callback(None)
    assert sum(s.startswith("SELECT") for s in statements) == 1   # seq:n once; journal:stats was set first
    assert sum(s.startswith("INSERT") for s in statements) == 2   # each written once, at commit
    with store.read() as tx:   # another connection: committed
        assert tx.meta_get("seq:n") == 3
        assert tx.meta_get("journal:stats") == {"count": 1}


def test_counters_follow_savepoints_resets_and_snapshots(store):
    with store.transaction() as tx:
        tx.next_seq("n")
        with pytest.raises(RuntimeError), tx.savepoint():
            assert tx.next_seq("n") == 2
            raise RuntimeError("rolled back: the sequence with it")
        assert tx.next_seq("n") == 2
        store.snapshot("two")   # the snapshot holds the counter as the transaction left it
        assert tx.next_seq("n") == 3
        store.clear(tx)         # a reset starts the counters over, in the same transaction
        assert tx.next_seq("n") == 1
    with store.transaction() as tx:
        assert tx.next_seq("n") == 2
    store.restore("two")
    with store.transaction() as tx:
        assert tx.next_seq("n") == 3


def test_rollback_leaves_nothing(store):
    called = []
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put("structures", _structure("a"), id="a", finess="1")
        tx.meta_set("x", 1)
        tx.next_seq("n")
        tx.after_commit(lambda: called.append("cb"))
        raise RuntimeError("boom")
    assert not store.in_transaction()
    with store.transaction() as tx:
        assert tx.count("structures") == 0
        assert tx.meta_get("x") is None
        assert tx.next_seq("n") == 1
    assert called == []


def test_nested_transactions_join(store):
    with store.transaction() as outer:
        assert store.in_transaction()
        with store.transaction() as inner:
            assert inner is outer
            inner.put("structures", _structure("a"), id="a", finess="1")
        assert outer.count("structures") == 1
    assert not store.in_transaction()
    with pytest.raises(RuntimeError), store.transaction() as outer:
        outer.put("structures", _structure("b"), id="b", finess="2")
        with store.transaction() as inner:
            inner.put("structures", _structure("c"), id="c", finess="3")
            raise RuntimeError("the inner part fails: the whole transaction goes")
    with store.transaction() as tx:
        assert [r["id"] for r in tx.select("structures")] == ["a"]


def test_after_commit_runs_after_commit_in_order(store, tmp_path):
    called = []

    def seen_from_another_connection():
        other = sqlite3.connect(str(tmp_path / "w.db"))
        try:
            return other.execute("SELECT COUNT(*) FROM structures").fetchone()[0]
        finally:
            other.close()

    with store.transaction() as tx:
        tx.put("structures", _structure("a"), id="a", finess="1")
        tx.after_commit(lambda: called.append(("first", seen_from_another_connection())))
        tx.after_commit(lambda: called.append(("second", store.in_transaction())))
        assert called == []
    assert called == [("first", 1), ("second", False)]


def test_savepoint_rollback_undoes_only_its_part(store):
    called = []
    with store.transaction() as tx:
        tx.put("structures", _structure("a"), id="a", finess="1")
        tx.after_commit(lambda: called.append("a"))
        with pytest.raises(ValueError), tx.savepoint():
            tx.put("structures", _structure("b"), id="b", finess="2")
            tx.after_commit(lambda: called.append("b"))
            raise ValueError("this part fails alone")
        with tx.savepoint():
            tx.put("structures", _structure("c"), id="c", finess="3")
            tx.after_commit(lambda: called.append("c"))
        tx.put("structures", _structure("d"), id="d", finess="4")
    with store.transaction() as tx:
        assert [r["id"] for r in tx.select("structures", order="id")] == ["a", "c", "d"]
    assert called == ["a", "c"]


def test_nested_savepoints(store):
    with store.transaction() as tx:
        with tx.savepoint():
            tx.put("structures", _structure("a"), id="a", finess="1")
            with pytest.raises(ValueError), tx.savepoint():
                tx.put("structures", _structure("b"), id="b", finess="2")
                raise ValueError
        assert tx.count("structures") == 1
    with store.transaction() as tx:
        assert [r["id"] for r in tx.select("structures")] == ["a"]


def test_snapshot_and_restore(store):
    with store.transaction() as tx:
        tx.put("structures", _structure("a"), id="a", finess="1")
        tx.meta_set("x", 1)
    store.snapshot("s1")
    assert store.snapshots() == ["s1"]
    with store.transaction() as tx:
        tx.put("structures", _structure("b"), id="b", finess="2")
        tx.delete("structures", id="a")
        tx.meta_set("x", 2)
        assert tx.count("structures") == 1
    store.restore("s1")
    with store.transaction() as tx:
        assert [r["id"] for r in tx.select("structures")] == ["a"]
        assert tx.meta_get("x") == 1
    store.restore("s1")  # a snapshot can be restored more than once
    with store.transaction() as tx:
        assert tx.count("structures") == 1
    with pytest.raises(KeyError):
        store.restore("nope")


def test_snapshot_is_its_own_namespace(store):
    with store.transaction() as tx:
        tx.meta_set("x", 1)
        tx.put("structures", _structure("a"), id="a", finess="1")
    store.snapshot("s1")
    with store.transaction() as tx:
        rows = tx.conn.execute("SELECT ns, COUNT(*) FROM structures GROUP BY ns ORDER BY ns").fetchall()
    assert rows == [("default", 1), ("default@s1", 1)]


def test_world_snapshot_and_restore(cast):
    doc = cast.submit()
    cast.world.store.snapshot("before")
    with cast.tx() as tx:
        cast.world.dmp.delete(tx, cast.author, doc.unique_id)
        cast.world.advance_clock(tx, 60)
    later = cast.submit()
    cast.world.store.restore("before")
    with cast.tx() as tx:
        cast.world.reload(tx)
    assert cast.world.clock.offset == 0
    with cast.tx() as tx:
        docs = cast.world.dmp.documents(tx, "alice", history=True)
        assert tx.get_blob("contents", unique_id=later.unique_id) is None
    assert [(d.unique_id, d.status) for d in docs] == [(doc.unique_id, "approved")]
    assert cast.actions() == ["autorisation", "autorisation", "alimentation"]


def test_clear_keeps_keep_meta(store):
    with store.transaction() as tx:
        tx.meta_set("keep:signing", {"k": 1})
        tx.meta_set("other", 2)
        tx.put("structures", _structure("a"), id="a", finess="1")
        tx.put("journal", {"seq": 1}, seq=1)
        tx.put("contents", b"x", unique_id="1")
    with store.transaction() as tx:
        store.clear(tx)
    with store.transaction() as tx:
        assert tx.meta_get("keep:signing") == {"k": 1}
        assert tx.meta_get("other") is None
        assert {t: tx.count(t) for t in TABLES if t != "meta"} == {t: 0 for t in TABLES if t != "meta"}
        assert tx.count("meta") == 2   # and the count of world writes, which the reset started again
        assert tx.meta_get("store:world_writes") == 1


def test_clear_touches_only_its_namespace(tmp_path):
    a, b = Store(tmp_path / "w.db"), Store(tmp_path / "w.db", namespace="bench2")
    try:
        with a.transaction() as tx:
            tx.put("structures", _structure("a"), id="a", finess="1")
        with b.transaction() as tx:
            tx.put("structures", _structure("b"), id="b", finess="2")
        with a.transaction() as tx:
            assert [r["id"] for r in tx.select("structures")] == ["a"]
            a.clear(tx)
        with b.transaction() as tx:
            assert [r["id"] for r in tx.select("structures")] == ["b"]
    finally:
        a.close()
        b.close()


def test_two_stores_on_two_files_are_isolated(tmp_path):
    one, two = Store(tmp_path / "one.db"), Store(tmp_path / "two.db")
    try:
        with one.transaction() as tx:
            tx.put("structures", _structure("a"), id="a", finess="1")
            tx.meta_set("x", "one")
        with two.transaction() as tx:
            assert tx.count("structures") == 0
            assert tx.meta_get("x") is None
            tx.meta_set("x", "two")
        with one.transaction() as tx:
            assert tx.meta_get("x") == "one"
    finally:
        one.close()
        two.close()


def test_data_survives_reopening(tmp_path):
    s = Store(tmp_path / "w.db")
    with s.transaction() as tx:
        tx.put("structures", _structure("a"), id="a", finess="1")
    s.close()
    s = Store(tmp_path / "w.db")
    try:
        with s.transaction() as tx:
            assert tx.get("structures", id="a") == _structure("a")
    finally:
        s.close()


# --- World-level transactions and reset ----------------------------------------------------------


def test_world_marks_its_store(world):
    assert world.store.holds_world()
    with world.transaction() as tx:
        assert tx.meta_get("world:created") == "2025-06-15T15:06:40.000Z"


def test_world_rollback_restores_the_clock(cast):
    with pytest.raises(RuntimeError), cast.tx() as tx:
        cast.world.advance_clock(tx, 3600)
        assert cast.world.clock.offset == 3600
        raise RuntimeError
    assert cast.world.clock.offset == 0
    with cast.tx() as tx:
        assert tx.meta_get("clock:offset") is None
        cast.world.advance_clock(tx, 60)
    assert cast.world.clock.now_iso() == "2025-06-15T15:07:40.000Z"


def test_clock_offset_survives_reopening(make_world, clock):
    w = make_world()
    with w.transaction() as tx:
        w.advance_clock(tx, 90)
    assert make_world(world_clock=type(clock)(real=lambda: 1_750_000_000.0)).clock.offset == 90


def test_tick_hooks_run_once_per_outer_transaction(world):
    ticks = []
    world.tick_hooks.append(lambda tx: ticks.append(world.clock.offset))
    with world.transaction():
        with world.transaction():
            pass
    assert ticks == [0.0]
    with world.transaction() as tx:
        world.advance_clock(tx, 5)
    assert ticks == [0.0, 0.0, 5.0]


def test_reset_empties_the_world(cast, record_property):
    doc = cast.submit()
    seen = []
    cast.world.events.subscribe(events.WORLD_RESET, seen.append)
    with cast.tx() as tx:
        cast.world.journal.append(tx, "dmp", "TD2.1", patient="alice", document=doc.unique_id)
        cast.world.tokens.jwks(tx)
        cast.world.advance_clock(tx, 3600)
    for i in range(200):  # a world with some weight, for the measure
        cast.submit(unique_id=f"1.2.250.{i}", content=b"x" * 1000)
    started = time.perf_counter()
    with cast.tx() as tx:
        cast.world.reset(tx)
    elapsed = time.perf_counter() - started
    record_property("reset_seconds", round(elapsed, 4))  # measured, not asserted
    assert cast.world.clock.offset == 0
    with cast.tx() as tx:
        assert tx.count("patients") == 0
        assert tx.count("documents") == 0
        assert tx.count("contents") == 0
        assert tx.count("traces") == 0
        assert tx.count("authorizations") == 0
        assert cast.world.journal.query(tx) == []
        assert cast.world.journal.stats(tx) == {"count": 0, "bytes": 0, "dropped": 0}
        assert tx.meta_get("world:created") == "2025-06-15T15:06:40.000Z"
        assert tx.meta_get("clock:offset") is None
    assert [e.kind for e in seen] == ["world.reset"]


def test_restoring_a_snapshot_keeps_the_signing_keys(cast):
    world = cast.world
    world.store.snapshot("before-keys")
    with world.transaction() as tx:
        kids = [k["kid"] for k in world.tokens.jwks(tx)["keys"]]
    world.store.restore("before-keys")
    with world.transaction() as tx:
        assert [k["kid"] for k in world.tokens.jwks(tx)["keys"]] == kids


def test_a_failing_after_commit_callback_does_not_fail_the_committed_change(store):
    seen = []
    with store.transaction() as tx:
        tx.meta_set("k", 1)
        tx.after_commit(lambda: 1 / 0)
        tx.after_commit(lambda: seen.append("second"))
    assert seen == ["second"]
    with store.transaction() as tx:
        assert tx.meta_get("k") == 1


# --- Background checkpoints ----------------------------------------------------------------------


def _wal_frames(path) -> int:
    """Frames in the WAL right now (a passive checkpoint reports them before copying)."""
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        conn.close()


def test_background_checkpoints_keep_the_wal_short(tmp_path, monkeypatch):
    from mockbench.world import store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINTER_IDLE", 0.2)
    s = Store(tmp_path / "w.db")
    try:
        blob = bytes(range(256)) * 256      # 64 KiB: 320 commits write 20 MiB, half of SQLite's own bound
        # 320 commits, then on until a commit asks for a checkpoint (at most a checkpoint's worth more): the
        # checkpointer's last pass then follows the last commit. Commits after it are not copied, and the WAL
        # does not start over, when under load that pass runs before them (seen once).
        n = 0
        while n < 320 or s._written:
            with s.transaction() as tx:
                tx.put("contents", blob, unique_id=str(n))
            n += 1
        deadline = time.monotonic() + 30
        while s._checkpointer._thread is not None and time.monotonic() < deadline:
            time.sleep(0.05)             # the thread ends once idle: every checkpoint asked for is done
        assert s._checkpointer._thread is None
        with s.transaction() as tx:      # the first writer after a complete checkpoint starts the WAL over
            tx.meta_set("x", 1)
        assert _wal_frames(tmp_path / "w.db") < 100
        with s.transaction() as tx:
            assert tx.count("contents") == n
            assert tx.get_blob("contents", unique_id=str(n - 1)) == blob
    finally:
        s.close()
    assert s._checkpointer._thread is None


def test_close_stops_the_checkpoint_thread(tmp_path):
    s = Store(tmp_path / "w.db")
    s._checkpointer.request()
    thread = s._checkpointer._thread
    assert thread is not None
    s.close()
    assert not thread.is_alive()
    s._checkpointer.request()            # asked after close: ignored, no thread
    assert s._checkpointer._thread is None


def test_a_read_sees_one_snapshot_and_holds_no_writer(store):
    """Store.read (issue 17, point 13): a read transaction on a connection of its own; a write commits while
    it is open, which it does not see, and the next read does."""
    import threading

    with store.transaction() as tx:
        tx.put("structures", _structure("a"), id="a", finess="1")
    with store.read() as reader:
        assert reader.count("structures") == 1
        done = threading.Event()

        def write() -> None:
            with store.transaction() as tx:
                tx.put("structures", _structure("b"), id="b", finess="2")
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert done.wait(5), "a write waited for a read"
        writer.join()
        assert reader.count("structures") == 1          # the snapshot the read began with
        with pytest.raises(sqlite3.OperationalError):    # and it cannot write
            reader.put("structures", _structure("c"), id="c", finess="3")
    with store.read() as reader:
        assert reader.count("structures") == 2
    with store.transaction() as tx, store.read() as same:  # inside a write, a read is that write
        tx.put("structures", _structure("d"), id="d", finess="4")
        assert same is tx and same.count("structures") == 3


# Reset by generation (issue 21, point 6): a reset switches the namespace to a new generation in one short
# transaction; the old rows are deleted afterwards by the reaper, chunk by chunk.
def _fill(store: Store, n: int) -> None:
    with store.transaction() as tx:
        tx.meta_set("keep:signing", {"k": 1})
        tx.meta_set("world:created", "then")
        for i in range(n):
            tx.put("patients", {"id": f"p{i}"}, id=f"p{i}", ins=f"{i:015d}")
        tx.put("outbox", {"id": 1, "state": "pending"}, id=1, state="pending", due=0)


def _rows(store: Store, table: str) -> int:
    with store.read() as tx:
        return tx.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_clear_switches_generation_and_the_reaper_deletes_the_old_one(store):
    _fill(store, 3 * 200 + 7)   # several chunks
    with store.transaction() as tx:
        old = tx.ns
        store.clear(tx)
        assert tx.ns != old and tx.name == "default"
        assert tx.count("patients") == 0 and tx.count("outbox") == 0
        tx.meta_set("world:created", "now")   # the rest of the transaction writes to the new generation
    with store.read() as tx:
        assert tx.ns == store.physical() != old
        assert tx.meta_get("keep:signing") == {"k": 1} and tx.meta_get("world:created") == "now"
    assert store._reaper.idle.wait(30)
    assert _rows(store, "patients") == 0 and _rows(store, "outbox") == 0
    with store.read() as tx:   # the kept key, world:created and the count of world writes, in the live generation only
        assert sorted(r[0] for r in tx.conn.execute("SELECT key FROM meta")) == [
            "keep:signing", "store:world_writes", "world:created"]
    with store.read() as tx:
        assert tx.conn.execute("SELECT physical, live FROM namespaces").fetchall() == [(tx.ns, 1)]


def test_a_rolled_back_clear_changes_nothing(store):
    _fill(store, 10)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        store.clear(tx)
        raise RuntimeError("boom")
    with store.read() as tx:
        assert tx.ns == "default" and tx.count("patients") == 10
        assert tx.conn.execute("SELECT COUNT(*) FROM namespaces").fetchone()[0] == 0


def test_snapshots_survive_resets_and_restore_into_a_new_generation(store):
    _fill(store, 20)
    store.snapshot("s1")
    with store.transaction() as tx:
        store.clear(tx)
    assert store.snapshots() == ["s1"]
    store.restore("s1")
    with store.read() as tx:
        assert tx.count("patients") == 20 and tx.count("outbox") == 1
        assert tx.meta_get("keep:signing") == {"k": 1}
    assert store._reaper.idle.wait(30)
    # live generation + the snapshot, nothing else
    with store.read() as tx:
        kinds = {ns for (ns,) in tx.conn.execute("SELECT DISTINCT ns FROM patients")}
    assert kinds == {store.physical(), "default@s1"}


def test_a_generation_left_dead_by_a_stopped_bench_is_reaped_at_the_next_start(tmp_path):
    s = Store(tmp_path / "w.db")
    _fill(s, 50)
    s._reaper.close()   # stopped before it could reap
    with s.transaction() as tx:
        s.clear(tx)
    s.close()
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM patients").fetchone()[0] == 50
    again = Store(tmp_path / "w.db")
    try:
        with again.read() as tx:
            assert tx.count("patients") == 0 and tx.meta_get("keep:signing") == {"k": 1}
        assert again._reaper.idle.wait(30)
        assert _rows(again, "patients") == 0
    finally:
        again.close()


def test_clear_of_one_namespace_leaves_the_other(tmp_path):
    a, b = Store(tmp_path / "w.db"), Store(tmp_path / "w.db", namespace="bench2")
    try:
        _fill(a, 5)
        _fill(b, 7)
        with a.transaction() as tx:
            a.clear(tx)
        assert a._reaper.idle.wait(30)
        with b.read() as tx:
            assert tx.count("patients") == 7
        with a.read() as tx:
            assert tx.count("patients") == 0
    finally:
        a.close()
        b.close()


def test_select_orders_pages_and_refuses_an_unknown_key_every_time(store):
    """Tx.select's statement is written once per shape: its order, limit and offset, and its refusal of a
    column that is not a key, hold on every call."""
    with store.transaction() as tx:
        for sid, finess in (("c", "3"), ("a", "1"), ("b", "2"), ("d", "1")):
            tx.put("structures", _structure(sid), id=sid, finess=finess)
        for _ in range(2):
            assert [r["id"] for r in tx.select("structures", order="id")] == ["a", "b", "c", "d"]
            assert [r["id"] for r in tx.select("structures", order="id DESC", limit=2, offset=1)] == ["c", "b"]
            assert [r["id"] for r in tx.select("structures", order="id", offset=3)] == ["d"]
            assert [r["id"] for r in tx.select("structures", order="id", finess="1")] == ["a", "d"]
            assert [r["id"] for r in tx.select("structures", order="id", finess="1", id="d")] == ["d"]
            with pytest.raises(KeyError, match="structures has no key column name"):
                tx.select("structures", name="A")
