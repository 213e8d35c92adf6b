"""Many threads changing the same patient's DMP through world.transaction(): no lost update, no gap."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from mockbench.world import errors
from mockbench.world.model import MASQUE_PS, Actor, Professional

THREADS = 8
OPS = 50


def _add_professionals(cast, ids, n):
    """One author per thread in chu (authorized at structure level) and one 'flip' professional per thread."""
    with cast.tx() as tx:
        for t in range(n):
            for role, base in (("w", 2000), ("f", 3000)):
                rpps = ids.make_luhn(f"{base + t:010d}")
                cast.world.directory.add_professional(tx, Professional(
                    id=f"{role}{t}", idnps="8" + rpps, rpps=rpps, family_name=f"{role}{t}", given_name="P",
                    structure="chu"))


def test_many_threads_same_patient(cast, ids, record_property):
    _add_professionals(cast, ids, THREADS)
    world = cast.world
    barrier = threading.Barrier(THREADS)

    def worker(t: int) -> dict:
        me = Actor(kind="professional", id=f"w{t}", structure="chu")
        acked: list[str] = []
        changes = Counter()
        masked, masked_uid = False, ""
        authorized = None
        barrier.wait()
        for i in range(OPS):
            step = i % 5
            with world.transaction() as tx:
                if step in (0, 1, 2) or not acked:
                    uid = f"1.2.250.99.{t}.{i}"
                    world.dmp.submit(tx, me, "alice", {"type_code": "11488-4", "unique_id": uid, "creation_time": "2026-11-20T10:00:00Z"},
                                     f"doc {t} {i}".encode())
                    op = "submit"
                elif step == 3:
                    masked = not masked
                    world.dmp.set_masked(tx, me, acked[-1] if masked else masked_uid, masked)
                    op = "mask"
                else:
                    authorized = "INTERDIT" if authorized == "VALIDE" else "VALIDE"
                    world.dmp.set_authorization(tx, cast.patient, "alice", status=authorized,
                                                professional=f"f{t}")
                    op = "authorization"
                world.journal.append(tx, "dmp", op, actor=me.id, patient="alice")
            # acknowledged only once the transaction committed
            if op == "submit":
                acked.append(uid)
            if op == "mask" and masked:
                masked_uid = acked[-1]
            changes[op] += 1
        return {"acked": acked, "changes": changes, "last_authorization": authorized}

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    record_property("concurrency_seconds", round(time.perf_counter() - started, 3))

    acked = [uid for r in results for uid in r["acked"]]
    total = Counter()
    for r in results:
        total.update(r["changes"])
    assert sum(total.values()) == THREADS * OPS
    assert total["submit"] == len(acked) == len(set(acked))

    with world.transaction() as tx:
        current = world.dmp.documents(tx, "alice")
        history = world.dmp.documents(tx, "alice", history=True)
        traces = world.dmp.traces(tx, "alice")
        journal = world.journal.query(tx, limit=10_000)
        auths = {a.subject: a.status for a in world.dmp.authorizations(tx, "alice")}
        contents = {uid: world.dmp.content(tx, uid) for uid in acked}

    # every acknowledged submit is there, once, with its own bytes
    assert sorted(d.unique_id for d in current) == sorted(acked)
    for uid, data in contents.items():
        t, i = uid.split(".")[-2:]
        assert data == f"doc {t} {i}".encode()
    # each mask/unmask made exactly one more metadata version; one current version per document
    assert len(history) == len(acked) + total["mask"]
    per_doc = Counter(d.unique_id for d in history if d.current)
    assert set(per_doc.values()) == {1}
    # a thread's masks and unmasks alternate on its documents: an even count leaves none masked
    masked_now = Counter(d.unique_id.split(".")[-2] for d in current if MASQUE_PS in d.confidentiality)
    for t, r in enumerate(results):
        assert masked_now[str(t)] == r["changes"]["mask"] % 2
    # one trace per operation, sequence contiguous and unique (2 traces come from the cast's set-up)
    setup = 2
    assert len(traces) == setup + THREADS * OPS
    assert [tr.seq for tr in traces] == list(range(1, setup + THREADS * OPS + 1))
    actions = Counter(tr.action for tr in traces[setup:])
    assert actions["alimentation"] == total["submit"]
    assert actions["masquage"] + actions["demasquage"] == total["mask"]
    assert actions["autorisation"] + actions["retrait_autorisation"] == total["authorization"]
    # journal: one entry per operation, seq contiguous, unique
    assert [e["seq"] for e in journal] == list(range(1, THREADS * OPS + 1))
    assert Counter(e["operation"] for e in journal) == total
    # the last authorization flip of each thread is the one that stays
    for t, r in enumerate(results):
        assert auths[f"f{t}"] == r["last_authorization"]


def test_concurrent_readers_see_whole_changes(cast):
    """A reader never sees a document without its trace: both are written in one transaction."""
    world = cast.world
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> int:
        reads = 0
        while not stop.is_set():
            with world.transaction() as tx:
                docs = len(world.dmp.documents(tx, "alice"))
                fed = sum(1 for tr in world.dmp.traces(tx, "alice") if tr.action == "alimentation")
            if docs != fed:
                problems.append(f"{docs} documents but {fed} feeding traces")
            reads += 1
        return reads

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(reader) for _ in range(2)]
        for i in range(60):
            cast.submit(unique_id=f"1.2.250.7.{i}")
        stop.set()
        assert all(r.result() > 0 for r in readers)
    assert problems == []


def test_failing_transactions_in_threads_leave_nothing(cast):
    world = cast.world

    def worker(t: int) -> str:
        try:
            with world.transaction() as tx:
                world.dmp.submit(tx, cast.author, "alice", {"type_code": "11488-4", "unique_id": f"9.{t}", "creation_time": "2026-11-20T10:00:00Z"}, b"x")
                if t % 2:
                    raise errors.WorldError("the door refused after feeding")
            return "ok"
        except errors.WorldError:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(worker, range(40)))
    assert outcomes.count("ok") == 20
    with world.transaction() as tx:
        uids = sorted(d.unique_id for d in world.dmp.documents(tx, "alice", history=True))
        fed = [tr for tr in world.dmp.traces(tx, "alice") if tr.action == "alimentation"]
    assert uids == sorted(f"9.{t}" for t in range(0, 40, 2))
    assert len(fed) == 20


@pytest.mark.parametrize("round_", range(3))
def test_rolled_back_clock_move_does_not_undo_another_threads_move(cast, round_):
    """Thread B moves the clock and rolls back while thread A waits for the lock then fails: the clock must
    end where the committed state says it is (A must not restore B's rolled-back offset)."""
    world = cast.world
    b_moved, a_started = threading.Event(), threading.Event()

    def b() -> None:
        with pytest.raises(RuntimeError), world.transaction() as tx:
            world.advance_clock(tx, 1000)
            b_moved.set()
            a_started.wait(5)
            time.sleep(0.05)  # let A reach the lock
            raise RuntimeError("B rolls back")

    def a() -> None:
        b_moved.wait(5)
        a_started.set()
        with pytest.raises(RuntimeError), world.transaction():
            raise RuntimeError("A fails too")

    threads = [threading.Thread(target=b), threading.Thread(target=a)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    with world.transaction() as tx:
        stored = tx.meta_get("clock:offset", 0.0)
    assert stored == 0.0
    assert world.clock.offset == stored
