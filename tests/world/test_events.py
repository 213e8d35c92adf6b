"""The event bus: subscriptions by kind, prefix and '*', delivery after commit only, faulty subscribers."""

from __future__ import annotations

import logging

import pytest

from mockbench.world import events
from mockbench.world.events import Event


def _publish(world, *kinds, **fields):
    with world.transaction() as tx:
        for kind in kinds:
            world.events.publish(tx, Event(kind, **fields))


def test_subscribe_by_kind_prefix_and_star(world):
    exact, prefix, star = [], [], []
    world.events.subscribe("document.fed", lambda e: exact.append(e.kind))
    world.events.subscribe("document.", lambda e: prefix.append(e.kind))
    world.events.subscribe("*", lambda e: star.append(e.kind))
    _publish(world, "document.fed", "document.deleted", "mail.mdn", "documentary")
    assert exact == ["document.fed"]
    assert prefix == ["document.fed", "document.deleted"]
    assert star == ["document.fed", "document.deleted", "mail.mdn", "documentary"]


def test_kind_without_dot_is_not_a_prefix(world):
    got = []
    world.events.subscribe("document", got.append)
    _publish(world, "document.fed")
    assert got == []


def test_unsubscribe(world):
    got = []
    unsubscribe = world.events.subscribe("*", lambda e: got.append(e.kind))
    _publish(world, "a.one")
    unsubscribe()
    unsubscribe()  # twice is harmless
    _publish(world, "a.two")
    assert got == ["a.one"]


def test_same_function_twice_is_two_subscriptions(world):
    got = []
    first = world.events.subscribe("*", got.append)
    world.events.subscribe("*", got.append)
    _publish(world, "x.y")
    assert len(got) == 2
    first()
    _publish(world, "x.z")
    assert [e.kind for e in got] == ["x.y", "x.y", "x.z"]


def test_delivered_after_commit_not_on_rollback(world):
    got = []
    world.events.subscribe("*", lambda e: got.append((e.kind, world.store.in_transaction())))
    with world.transaction() as tx:
        world.events.publish(tx, Event("a.b"))
        assert got == []
    assert got == [("a.b", False)]
    with pytest.raises(RuntimeError), world.transaction() as tx:
        world.events.publish(tx, Event("a.rolled-back"))
        raise RuntimeError
    assert got == [("a.b", False)]


def test_event_from_failed_savepoint_not_delivered(world):
    got = []
    world.events.subscribe("*", lambda e: got.append(e.kind))
    with world.transaction() as tx:
        world.events.publish(tx, Event("kept.one"))
        with pytest.raises(ValueError), tx.savepoint():
            world.events.publish(tx, Event("undone.one"))
            raise ValueError
        world.events.publish(tx, Event("kept.two"))
    assert got == ["kept.one", "kept.two"]


def test_failing_subscriber_breaks_nothing(cast, caplog):
    got = []

    def broken(event):
        raise RuntimeError("subscriber bug")

    cast.world.events.subscribe("document.", broken)
    cast.world.events.subscribe("document.", lambda e: got.append(e.document))
    with caplog.at_level(logging.ERROR, logger="mockbench.events"):
        doc = cast.submit()
    assert got == [doc.unique_id]
    assert cast.doc(doc.unique_id).status == "approved"  # committed
    assert "event subscriber failed on document.fed" in caplog.text


def test_event_fields_from_world_operations(cast):
    got = []
    cast.world.events.subscribe("*", got.append)
    with cast.tx() as tx:
        meta = {"type_code": "11488-4", "creation_time": "2026-11-20T10:00:00Z"}
        doc = cast.world.dmp.submit(tx, cast.author, "alice", meta, b"x", cause="m1")
        cast.world.dmp.archive(tx, cast.author, doc.unique_id, cause="m2")
        cast.world.dmp.unarchive(tx, cast.author, doc.unique_id)
        cast.world.dmp.set_masked(tx, cast.author, doc.unique_id, True)
        cast.world.dmp.delete(tx, cast.author, doc.unique_id)
        cast.world.dmp.set_authorization(tx, cast.patient, "alice", status="VALIDE", structure="lab", cause="m3")
    assert [(e.kind, e.cause, e.patient, e.document) for e in got] == [
        (events.DOCUMENT_FED, "m1", "alice", doc.unique_id),
        (events.DOCUMENT_ARCHIVED, "m2", "alice", doc.unique_id),
        (events.DOCUMENT_UNARCHIVED, None, "alice", doc.unique_id),
        (events.DOCUMENT_CONFIDENTIALITY, None, "alice", doc.unique_id),
        (events.DOCUMENT_DELETED, None, "alice", doc.unique_id),
        (events.AUTHORIZATION_CHANGED, "m3", "alice", None),
    ]
    assert got[3].data == {"action": "masquage", "confidentiality": ["N", "MASQUE_PS"], "version": 2}
    assert {e.time for e in got} == {"2025-06-15T15:06:40.000Z"}


def test_subscriber_may_open_its_own_transaction(cast):
    """A subscriber runs after commit, outside the lock: it can write to the world (the PFI's ZAM does)."""
    def on_fed(event):
        with cast.world.transaction() as tx:
            cast.world.journal.append(tx, "pfi", "ZAM^Z01", patient=event.patient, document=event.document)

    cast.world.events.subscribe(events.DOCUMENT_FED, on_fed)
    doc = cast.submit()
    with cast.tx() as tx:
        entries = cast.world.journal.query(tx, operation="ZAM^Z01")
    assert [(e["patient"], e["document"]) for e in entries] == [("alice", doc.unique_id)]


def test_an_in_transaction_subscriber_writes_with_the_publisher(world, caplog):
    """What it writes commits with the publishing change, or not at all; the publisher's later writes in the
    same transaction are visible to it (it runs before the commit); its failure is logged and undone alone."""
    def note(event):
        with world.transaction() as tx:   # joins the publisher's transaction
            tx.meta_set(f"note:{event.cause}", tx.meta_get("publisher:after", "unset"))

    def broken(event):
        with world.transaction() as tx:
            tx.meta_set("broken:wrote", True)
        raise RuntimeError("a faulty subscriber")

    world.events.subscribe_in_transaction("mail.", note)
    world.events.subscribe_in_transaction("mail.mdn", broken)
    with world.transaction() as tx:
        world.events.publish(tx, Event("mail.mdn", cause="m1"))
        tx.meta_set("publisher:after", "written later in the same transaction")
    with pytest.raises(RuntimeError), world.transaction() as tx:
        world.events.publish(tx, Event("mail.dsn", cause="m2"))
        raise RuntimeError("the publisher fails")
    with world.transaction() as tx:
        assert tx.meta_get("note:m1") == "written later in the same transaction"
        assert tx.meta_get("note:m2") is None          # rolled back with its publisher
        assert tx.meta_get("broken:wrote") is None      # undone alone
    assert "event subscriber failed on mail.mdn" in caplog.text
