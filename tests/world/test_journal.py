"""The bounded journal: entries, limits by count and bytes, raw truncation, queries, hooks and listeners."""

from __future__ import annotations

import pytest

from mockbench.world.journal import JournalLimits, finding


def _append(world, n, **kwargs):
    entries = []
    with world.transaction() as tx:
        for _ in range(n):
            entries.append(world.journal.append(tx, kwargs.pop("channel", "dmp"), kwargs.pop("operation", "op"),
                                                **kwargs))
    return entries


def test_entry_shape(cast, ids):
    with cast.tx() as tx:
        entry = cast.world.journal.append(
            tx, "dmp", "TD2.1", actor="dr-a", patient="alice", document="1.2.3", verdict="refused",
            code="HASH_MISMATCH", findings=[finding("DMP/X", "careful")], raw="<Envelope/>", ref="urn:uuid:1")
    assert entry == {
        "seq": 1, "time": "2025-06-15T15:06:40.000Z", "channel": "dmp", "operation": "TD2.1", "direction": "in",
        "actor": "dr-a", "patient": "alice", "patient_ins": ids.ins["alice"], "document": "1.2.3",
        "verdict": "refused", "code": "HASH_MISMATCH",
        "findings": [{"rule": "DMP/X", "severity": "warning", "message": "careful"}],
        "raw": "<Envelope/>", "raw_truncated": False, "size": 11, "ref": "urn:uuid:1",
    }
    with cast.tx() as tx:
        assert cast.world.journal.query(tx) == [entry]


def test_patient_ins_resolved_to_patient(cast, ids):
    with cast.tx() as tx:
        known = cast.world.journal.append(tx, "pfi", "MDM^T02", patient_ins=ids.ins["bob"])
        unknown = cast.world.journal.append(tx, "pfi", "MDM^T02", patient_ins=ids.make_nir("2991299123456"))
        by_id = cast.world.journal.append(tx, "pfi", "MDM^T02", patient="nobody")
    assert (known["patient"], known["patient_ins"]) == ("bob", ids.ins["bob"])
    assert (unknown["patient"], unknown["patient_ins"]) == (None, ids.make_nir("2991299123456"))
    assert (by_id["patient"], by_id["patient_ins"]) == ("nobody", None)
    with cast.tx() as tx:
        assert [e["seq"] for e in cast.world.journal.query(tx, patient="bob")] == [known["seq"]]


@pytest.mark.parametrize("kwargs", [{"channel": "fax"}, {"verdict": "maybe"}, {"direction": "sideways"}])
def test_invalid_values_refused(world, kwargs):
    args = {"channel": "dmp", "operation": "op", **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))), world.transaction() as tx:
        world.journal.append(tx, args.pop("channel"), args.pop("operation"), **args)
    with world.transaction() as tx:
        assert world.journal.query(tx) == []
        assert world.journal.stats(tx)["count"] == 0


def test_finding_severity_checked():
    assert finding("R", "m", "error")["severity"] == "error"
    with pytest.raises(ValueError):
        finding("R", "m", "fatal")


def test_bounded_by_count(make_world):
    world = make_world(journal_limits=JournalLimits(max_entries=50, max_bytes=10**9))
    _append(world, 50)
    with world.transaction() as tx:
        assert world.journal.stats(tx) == {"count": 50, "bytes": 50 * 256, "dropped": 0}
    _append(world, 1)  # the 51st drops down to nine tenths of the bound: 45 left
    with world.transaction() as tx:
        assert world.journal.stats(tx) == {"count": 45, "bytes": 45 * 256, "dropped": 6}
        assert [e["seq"] for e in world.journal.query(tx)] == list(range(7, 52))
    _append(world, 149)
    with world.transaction() as tx:
        stats = world.journal.stats(tx)
        seqs = [e["seq"] for e in world.journal.query(tx)]
    assert stats["count"] == len(seqs) <= 50
    assert stats["count"] + stats["dropped"] == 200
    assert seqs == list(range(201 - len(seqs), 201))  # the oldest went first


def test_bounded_by_bytes(make_world):
    world = make_world(journal_limits=JournalLimits(max_entries=10**6, max_bytes=10_000))
    raw = "x" * 744  # 744 + 256 accounted per entry = 1000
    for _ in range(10):
        _append(world, 1, raw=raw)
    with world.transaction() as tx:
        assert world.journal.stats(tx) == {"count": 10, "bytes": 10_000, "dropped": 0}
    _append(world, 1, raw=raw)
    with world.transaction() as tx:
        assert world.journal.stats(tx) == {"count": 9, "bytes": 9_000, "dropped": 2}
        assert [e["seq"] for e in world.journal.query(tx)] == list(range(3, 12))
        assert tx.conn.execute("SELECT SUM(size) FROM journal WHERE ns = ?", (tx.ns,)).fetchone()[0] == 9_000


def test_raw_truncated(make_world):
    world = make_world(journal_limits=JournalLimits(raw_bytes=16))
    with world.transaction() as tx:
        long = world.journal.append(tx, "mss", "SMTP", raw=b"0123456789" * 10)
        short = world.journal.append(tx, "mss", "SMTP", raw="é" * 8)  # 16 bytes in UTF-8
    assert (long["raw"], long["raw_truncated"], long["size"]) == ("0123456789012345", True, 100)
    assert (short["raw"], short["raw_truncated"], short["size"]) == ("é" * 8, False, 16)
    with world.transaction() as tx:
        assert world.journal.stats(tx)["bytes"] == 2 * (16 + 256)


def test_responses_are_bounded_like_requests_and_counted(make_world):
    """Issue 18 point 12: the bench's answer is cut at journal_raw_bytes, given at append or set later in the
    same transaction (a door that builds its answer after journaling), and counted in the journal's bytes."""
    world = make_world(journal_limits=JournalLimits(raw_bytes=16))
    with world.transaction() as tx:
        given = world.journal.append(tx, "pfi", "MDM^T02", raw="MSH", response=b"MSA|AA|1" * 4)
        later = world.journal.append(tx, "pfi", "MDM^T02", raw="MSH")
        assert "response" not in later
        world.journal.set_response(tx, later, "250 ok")
    assert (given["response"], given["response_truncated"], given["response_size"]) == ("MSA|AA|1MSA|AA|1", True, 32)
    with world.read() as tx:
        stored = {e["seq"]: e for e in world.journal.query(tx)}
        assert world.journal.stats(tx)["bytes"] == 2 * (3 + 256) + 16 + 6
    assert stored[later["seq"]]["response"] == "250 ok" and stored[later["seq"]]["response_size"] == 6
    assert stored[given["seq"]]["response"] == given["response"]


def test_query_filters(world):
    with world.transaction() as tx:
        j = world.journal
        j.append(tx, "dmp", "TD2.1", patient="alice")
        j.append(tx, "dmp", "TD3.1", patient="bob")
        j.append(tx, "pfi", "MDM^T02", patient="alice")
        world.advance_clock(tx, 60)
        j.append(tx, "mss", "SMTP")
    with world.transaction() as tx:
        q = world.journal.query
        assert [e["seq"] for e in q(tx, channel="dmp")] == [1, 2]
        assert [e["seq"] for e in q(tx, operation="MDM^T02")] == [3]
        assert [e["seq"] for e in q(tx, patient="alice")] == [1, 3]
        assert [e["seq"] for e in q(tx, since=2)] == [3, 4]
        assert [e["seq"] for e in q(tx, channel="dmp", patient="alice")] == [1]
        assert [e["seq"] for e in q(tx, since_time="2025-06-15T15:07:00.000Z")] == [4]
        assert [e["seq"] for e in q(tx, until_time="2025-06-15T15:06:40.000Z")] == [1, 2, 3]
        assert [e["seq"] for e in q(tx, limit=2)] == [1, 2]


def test_hooks_in_transaction_listeners_after_commit(world):
    hooked, heard = [], []
    world.journal.hooks.append(lambda tx, entry: hooked.append((entry["seq"], world.store.in_transaction())))
    world.journal.listeners.append(lambda entry: heard.append(entry["seq"]))
    with world.transaction() as tx:
        world.journal.append(tx, "dmp", "TD0.2")
        assert hooked == [(1, True)]
        assert heard == []
    assert heard == [1]
    with pytest.raises(RuntimeError), world.transaction() as tx:
        world.journal.append(tx, "dmp", "TD0.2")
        raise RuntimeError
    assert heard == [1]
    with world.transaction() as tx:
        assert [e["seq"] for e in world.journal.query(tx)] == [1]
        assert world.journal.stats(tx)["count"] == 1


def test_seq_continues_after_rollback_without_gap(world):
    _append(world, 2)
    with pytest.raises(RuntimeError), world.transaction() as tx:
        world.journal.append(tx, "dmp", "op")
        raise RuntimeError
    _append(world, 1)
    with world.transaction() as tx:
        assert [e["seq"] for e in world.journal.query(tx)] == [1, 2, 3]


# --- The stored JSON of an entry ----------------------------------------------------------------------


def _reference(entry: dict) -> str:
    import json

    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("raw", [
    "MSH|^~\\&|DPI|CHU\r" * 40 + "OBX|1|ED|^text^XML^Base64^" + "QUJD" * 5000 + "\r",   # an HL7 message
    'quotes " and \\ backslashes\r\n\tand tabs ' * 200,
    "accents é€ and DEL \x7f and U+2028 \u2028 " * 200,
    "a control character \x01 makes json escape it " * 200,                               # the fallback
    "short",
    "x" * 5000 + "\udc80",                                                                  # a lone surrogate
])
def test_entry_json_is_the_text_json_dumps_writes(raw):
    from mockbench.world.journal import entry_json

    entry = {"seq": 1, "time": "2026-01-01T00:00:00.000Z", "actor": 'é"\\', "findings": [{"m": "a\rb"}],
             "raw": raw, "raw_truncated": False, "ref": None}
    assert entry_json(entry) == _reference(entry)
    moved = {"raw": raw, **{k: v for k, v in entry.items() if k != "raw"}}      # raw first, then last
    assert entry_json(moved) == _reference(moved)
    last = {**{k: v for k, v in entry.items() if k != "raw"}, "raw": raw}
    assert entry_json(last) == _reference(last)
    answered = {**entry, "response": raw[::-1], "response_truncated": False}   # the bench's answer too
    assert entry_json(answered) == _reference(answered)


@pytest.mark.parametrize("value", [
    2**64, -(2**63) - 1, 10**30, 2**63 - 1,                        # integers beyond 64 bits (orjson refuses)
    float("nan"), float("inf"), float("-inf"), 1e-05, 0.5,         # floats (orjson writes null, 0.00001)
    "\ud800", "x" * 5000 + "\udc80",                                # lone surrogates (orjson refuses)
    "é€ 漢字 😀 \u2028 \x7f \x01", "MSH|^~\\&|é\r" * 400,            # non-ASCII, controls, a large raw
])
def test_entry_json_writes_what_json_writes_whatever_the_values(value):
    """Whatever a field holds (a finding's detail, a hook's addition, the raw message), the stored text is
    json's: orjson writes an entry only when it writes the same (world/jsontext.py)."""
    from mockbench.world.journal import entry_json

    base = {"seq": 1, "time": "2026-01-01T00:00:00.000Z", "actor": "dr", "findings": [], "raw": "r", "ref": None}
    for entry in ({**base, "extra": value}, {**base, "findings": [{"rule": "r", "detail": [value]}]},
                  {**base, "raw": value, "response": value}):
        assert entry_json(entry) == _reference(entry)


def test_a_large_raw_message_round_trips_through_the_store(world):
    raw = ("MSH|^~\\&|DPI|CHU\r" + "PID|||1\\S\\2\r" + "OBX|1|ED|" + '"q"' + "Zm9v" * 4000 + "\r").encode()
    with world.transaction() as tx:
        world.journal.append(tx, "pfi", "MDM^T02", raw=raw)
    with world.transaction() as tx:
        stored = world.journal.query(tx, channel="pfi")[-1]
    assert stored["raw"].encode() == raw and stored["size"] == len(raw)


def test_a_large_bound_is_trimmed_in_small_steps(make_world):
    """Past a bound of 10,000 entries, one append drops 256 of them, not a thousand (issue 21: no spike)."""
    world = make_world(journal_limits=JournalLimits(max_entries=10_000, max_bytes=10**9))
    with world.transaction() as tx:
        for _ in range(10_001):
            world.journal.append(tx, "control", "x", raw=b"y")
        stats = world.journal.stats(tx)
    assert (stats["count"], stats["dropped"]) == (10_000 - 256, 257)
