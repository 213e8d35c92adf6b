"""A request computed on a read snapshot, journaled by a short write transaction (issue 21, point 3): the store's
count of world writes says whether the state the snapshot read is still the state; the logs (journal, traces)
and the write-back counters do not count, so that concurrent journaled reads do not invalidate each other."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockbench.world.store import NeedsWrite, Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "world.db")
    with s.transaction() as tx:
        tx.put("patients", {"id": "p1"}, id="p1", ins="1")
    yield s
    s.close()


def _mark(store: Store) -> tuple[str, int] | None:
    with store.read_snapshot() as tx:
        assert tx.get("patients", id="p1") == {"id": "p1"}
        return tx.mark


def _unchanged(store: Store, mark) -> bool:
    with store.transaction() as tx:
        return store.unchanged(tx, mark)


# What another request may commit between a snapshot and its write transaction, and whether it changes the
# world's state as the snapshot read it.
def _world_row(tx, i):
    tx.put("patients", {"id": f"q{i}"}, id=f"q{i}", ins=f"q{i}")


def _same_row_again(tx, i):   # a write that leaves the row as it was still counts: the store cannot tell
    tx.put("patients", {"id": "p1"}, id="p1", ins="1")


def _delete(tx, i):
    tx.delete("patients", id=f"none{i}")


def _meta(tx, i):
    tx.meta_set("clock:offset", float(i))


def _raw_update(tx, i):   # SQL of its own around the Tx class (a token purge, a reset's copy)
    tx.conn.execute("UPDATE patients SET data = data WHERE ns = ?", (tx.ns,))


def _journal(tx, i):
    seq = tx.next_seq("journal")
    tx.put_json("journal", f'{{"seq":{seq}}}', seq=seq)
    tx.meta_set("journal:stats", {"count": seq})


def _trace(tx, i):
    seq = tx.next_seq("trace")
    tx.put("traces", {"seq": seq}, seq=seq, patient="p1")


def _nothing(tx, i):
    tx.get("patients", id="p1")


WRITES = {"world row": (_world_row, True), "same row": (_same_row_again, True), "delete": (_delete, True),
          "meta": (_meta, True), "raw SQL": (_raw_update, True), "journal": (_journal, False),
          "trace": (_trace, False), "read only": (_nothing, False)}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_commit_between_snapshot_and_write_tells_whether_the_world_changed(store, name):
    write, changes = WRITES[name]
    mark = _mark(store)
    with store.transaction() as tx:
        write(tx, 1)
    assert _unchanged(store, mark) is not changes


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_write_inside_the_write_transaction_before_the_check_counts(store, name):
    """A timer fired at the start of the write transaction (World.transaction's tick hooks) changed the
    world: the request must be computed again after it, as a serial execution would."""
    write, changes = WRITES[name]
    mark = _mark(store)
    with store.transaction() as tx:
        write(tx, 1)
        assert store.unchanged(tx, mark) is not changes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commits=st.lists(st.lists(st.sampled_from(sorted(WRITES)), max_size=3), max_size=4))
def test_any_interleaving_of_commits(store, commits):
    mark = _mark(store)
    for i, writes in enumerate(commits):
        with store.transaction() as tx:
            for name in writes:
                WRITES[name][0](tx, i)
    expected = not any(WRITES[name][1] for writes in commits for name in writes)
    assert _unchanged(store, mark) is expected


def test_a_reset_is_a_change_even_when_the_counts_meet(store):
    """A reset starts the world (and its count) over in a new generation: the count there may equal the count
    the snapshot read, so the generation is compared too."""
    for i in range(2):
        with store.transaction() as tx:
            _world_row(tx, i)
    mark = _mark(store)
    assert mark is not None and mark[1] == 3
    with store.transaction() as tx:
        store.clear(tx)
    for i in range(2):
        with store.transaction() as tx:
            _world_row(tx, i)
    with store.transaction() as tx:
        assert int(tx.meta_get("store:world_writes")) == 3 and tx.ns != mark[0]
        assert not store.unchanged(tx, mark)


def test_a_rolled_back_write_does_not_count(store):
    mark = _mark(store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        _world_row(tx, 1)
        raise RuntimeError
    assert _unchanged(store, mark)


@pytest.mark.parametrize("write", [
    lambda tx: tx.put("patients", {"id": "x"}, id="x"),
    lambda tx: tx.put_json("journal", "{}", seq=1),
    lambda tx: tx.delete("traces"),
    lambda tx: tx.meta_set("seq:journal", 3),
    lambda tx: tx.next_seq("trace"),
    lambda tx: tx.conn.execute("DELETE FROM patients"),
], ids=["put", "put_json", "delete", "meta_set", "next_seq", "raw SQL"])
def test_a_write_on_a_snapshot_raises_needs_write_and_changes_nothing(store, write):
    with pytest.raises(NeedsWrite), store.read_snapshot() as tx:
        write(tx)
    with store.read() as tx:
        assert tx.count("patients") == 1 and tx.count("journal") == 0 and tx.meta_get("seq:trace") is None


def test_a_write_transaction_inside_a_snapshot_raises_needs_write(store):
    """It would commit apart from the request computed on the snapshot."""
    with pytest.raises(NeedsWrite), store.read_snapshot():
        with store.transaction() as tx:
            _world_row(tx, 1)
    with store.read() as tx:
        assert tx.count("patients") == 1
    with store.transaction() as tx:   # the thread is left as it was: writes go on
        _world_row(tx, 2)


def test_no_snapshot_inside_a_transaction(store):
    with store.transaction(), pytest.raises(NeedsWrite), store.read_snapshot():
        pass
    with store.read(), pytest.raises(NeedsWrite), store.read_snapshot():
        pass


def test_the_snapshot_is_the_state_at_its_first_read_while_another_thread_commits(store):
    """The mark and the rows are read in one WAL snapshot: a commit made meanwhile by another thread is seen by
    neither, and makes `unchanged` false."""
    seen = []
    with store.read_snapshot() as tx:
        mark = tx.mark
        thread = threading.Thread(target=lambda: _commit(store))
        thread.start()
        thread.join()
        seen.append(tx.count("patients"))
    assert seen == [1]
    assert not _unchanged(store, mark)


def _commit(store: Store) -> None:
    with store.transaction() as tx:
        _world_row(tx, 9)


def test_a_dry_run_drops_its_writes(store):
    """A dry run (Provider._ahead) goes on past its writes, which are dropped: nothing is stored, it reads the
    snapshot back, and nothing counts as a change of the world."""
    mark = _mark(store)
    with store.read_snapshot(dry=True) as tx:
        tx.put("patients", {"id": "p1", "changed": True}, id="p1", ins="1")
        tx.put_json("journal", "{}", seq=1)
        tx.meta_set("clock:offset", 5.0)
        assert tx.delete("patients", id="p1") == 0
        assert tx.get("patients", id="p1") == {"id": "p1"}
    with store.read() as tx:
        assert tx.get("patients", id="p1") == {"id": "p1"} and tx.count("journal") == 0
        assert tx.meta_get("clock:offset") is None
    assert _unchanged(store, mark)
    with pytest.raises(NeedsWrite), store.read_snapshot(dry=True), store.transaction():
        pass   # a write transaction inside it would commit: refused as on any snapshot
