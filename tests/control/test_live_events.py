"""GET /_bench/events: the journal as server-sent events, read with a plain streaming HTTP client."""

import json
import time

import pytest
import requests
from jsonschema import Draft202012Validator
from kit.wait import wait_until
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mockbench.control.events import EventLimits
from mockbench.control.openapi import openapi_document


class Stream:
    """A text/event-stream read line by line: events as dicts, comments kept apart."""

    def __init__(self, url: str, headers: dict | None = None, params: dict | None = None) -> None:
        self.response = requests.get(url, headers=headers, params=params, stream=True, timeout=10)
        self.lines = self.response.iter_lines(decode_unicode=True)
        self.comments: list[str] = []
        self.retry = None

    def next_event(self) -> dict:
        event: dict = {}
        for line in self.lines:
            if line == "":
                if event:
                    return event
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                self.retry = int(value)
            else:
                event[name] = value
        raise AssertionError("the stream ended")

    def entries(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            event = self.next_event()
            assert event["event"] == "entry"
            data = json.loads(event["data"])
            assert event["id"] == str(data["seq"])
            out.append(data)
        return out

    def close(self) -> None:
        self.response.close()


def validator():
    spec = openapi_document()
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(spec, DRAFT202012))
    return Draft202012Validator({"$ref": "urn:openapi#/components/schemas/JournalEvent"}, registry=registry)


@pytest.fixture
def bench(mockbench_factory):
    running = mockbench_factory()
    running.client.load("dmp-authorization-withdrawn")
    return running


def hub_of(running):
    return running.bench.app.extensions["mockbench.events"]


def test_entries_arrive_live_as_they_are_journaled(bench):
    url = bench.url + "/_bench/events"
    stream = Stream(url, params={"since": 0})
    try:
        assert stream.response.status_code == 200
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.response.headers["Cache-Control"] == "no-cache"
        (load,) = stream.entries(1)
        assert stream.retry == 2000
        assert (load["seq"], load["channel"], load["operation"]) == (1, "control", "load")
        bench.client.advance("30s")
        bench.client.fire("retrait_chu")
        clock, fired = stream.entries(2)
        assert [(e["seq"], e["operation"]) for e in (clock, fired)] == [(2, "clock"), (3, "transition")]
        check = validator()
        for entry in (load, clock, fired):
            assert not list(check.iter_errors(entry))
            assert "raw" not in entry      # the stream carries summaries; /_bench/journal has the message
    finally:
        stream.close()


def test_without_since_only_new_entries_and_tail_gives_the_newest(bench):
    for _ in range(3):
        bench.client.advance("1s")          # seq 2, 3, 4
    url = bench.url + "/_bench/events"
    live, tail = Stream(url), Stream(url, params={"tail": 2})
    try:
        assert [e["seq"] for e in tail.entries(2)] == [3, 4]
        bench.client.advance("1s")
        assert [e["seq"] for e in live.entries(1)] == [5]
        assert [e["seq"] for e in tail.entries(1)] == [5]
    finally:
        live.close()
        tail.close()


def test_resume_with_last_event_id_or_since(bench):
    for _ in range(4):
        bench.client.advance("1s")          # seq 2..5
    url = bench.url + "/_bench/events"
    resumed = Stream(url, headers={"Last-Event-ID": "3"}, params={"since": 1})   # the header wins
    try:
        assert [e["seq"] for e in resumed.entries(2)] == [4, 5]
        bench.client.advance("1s")
        assert [e["seq"] for e in resumed.entries(1)] == [6]
    finally:
        resumed.close()
    by_query = Stream(url, params={"since": 4})
    try:
        assert [e["seq"] for e in by_query.entries(2)] == [5, 6]
    finally:
        by_query.close()
    # A reset restarts the journal at 1: a resume point beyond its end replays from the start.
    bench.client.load("dmp-authorization-withdrawn")
    after_reset = Stream(url, headers={"Last-Event-ID": "6"})
    try:
        (first,) = after_reset.entries(1)
        assert (first["seq"], first["operation"]) == (1, "load")
    finally:
        after_reset.close()


def test_bad_resume_points_are_refused(bench):
    url = bench.url + "/_bench/events"
    bad = requests.get(url, headers={"Last-Event-ID": "abc"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_PARAMETER"
    assert requests.get(url, params={"tail": -1}, timeout=5).status_code == 400
    assert requests.get(url, params={"since": "x"}, timeout=5).status_code == 400
    assert hub_of(bench).subscribers == 0


def test_the_number_of_subscribers_is_bounded(bench):
    hub = hub_of(bench)
    hub.limits = EventLimits(max_subscribers=2)
    hub.heartbeat = 0.1                      # a closed client is noticed at the next heartbeat
    url = bench.url + "/_bench/events"
    first, second = Stream(url), Stream(url)
    try:
        assert hub.subscribers == 2
        refused = requests.get(url, timeout=5)
        assert refused.status_code == 429
        assert refused.json()["error"] == "TOO_MANY_SUBSCRIBERS"
        assert refused.headers["Retry-After"] == "5"
        first.close()
        wait_until(lambda: hub.subscribers == 1)
        third = Stream(url)
        try:
            assert third.response.status_code == 200
            bench.client.advance("1s")
            assert third.entries(1)[0]["operation"] == "clock"
        finally:
            third.close()
    finally:
        second.close()
    wait_until(lambda: hub.subscribers == 0)


def test_heartbeat_while_nothing_happens(bench):
    hub_of(bench).heartbeat = 0.1
    stream = Stream(bench.url + "/_bench/events")
    try:
        bench.client.advance("1s")
        stream.entries(1)
        started = time.monotonic()
        assert ": heartbeat" in [next(stream.lines) for _ in range(4)]   # an empty line, then the comment
        assert time.monotonic() - started < 5
    finally:
        stream.close()


def test_nobody_watching_costs_the_doors_nothing(bench):
    """Work is counted, not timed: with no subscriber the hub is not even among the journal's listeners."""
    hub, journal = hub_of(bench), bench.world.journal
    assert hub.subscribers == 0 and hub._on_entry not in journal.listeners
    for _ in range(20):
        bench.client.advance("1s")
    assert hub.calls == 0
    hub.heartbeat = 0.1
    stream = Stream(bench.url + "/_bench/events")
    try:
        assert hub._on_entry in journal.listeners
        for _ in range(5):
            bench.client.advance("1s")
        assert len(stream.entries(5)) == 5
        assert hub.calls == 5
    finally:
        stream.close()
    wait_until(lambda: hub._on_entry not in journal.listeners)
    for _ in range(20):
        bench.client.advance("1s")
    assert hub.calls == 5


def test_a_subscriber_that_falls_behind_catches_up_from_the_journal(bench):
    """Its queue is bounded: past it, the stream reads the journal instead, losing and repeating nothing."""
    hub = hub_of(bench)
    hub.limits = EventLimits(queue_size=3, replay_page=4)
    sub = hub.subscribe()
    try:
        stream = hub.stream(sub, hub.start_point(None, None))
        assert next(stream) == "retry: 2000\n\n"
        for _ in range(11):
            bench.client.advance("1s")      # seq 2..12: the queue overflows after three
        assert sub.lagged and sub.queue.qsize() == 3
        seqs = [json.loads(next(stream).split("data: ", 1)[1])["seq"] for _ in range(11)]
        assert seqs == list(range(2, 13))
        bench.client.advance("1s")
        assert json.loads(next(stream).split("data: ", 1)[1])["seq"] == 13
        assert not sub.lagged
    finally:
        hub.unsubscribe(sub)
    assert hub._on_entry not in bench.world.journal.listeners


def test_stopping_the_bench_ends_the_streams(mockbench_factory):
    running = mockbench_factory()
    running.client.advance("1s")
    stream = Stream(running.url + "/_bench/events", params={"since": 0})
    stream.entries(1)
    running.bench.stop()
    with pytest.raises((AssertionError, requests.exceptions.ChunkedEncodingError)):
        stream.next_event()
    assert hub_of(running).closed


def test_entries_journaled_by_another_process_reach_the_stream(tmp_path):
    """Two stores on one file stand for two processes serving one world (issue 21 point 3: a live stream got 10
    of 20 events): the stream reads the journal by cursor, so it gets every entry whoever wrote it, in order,
    and follows the other process's reset to the new journal's start."""
    from mockbench.control.events import EventHub
    from mockbench.world.store import Store
    from mockbench.world.world import World

    here, there = World(Store(tmp_path / "world.db")), World(Store(tmp_path / "world.db"))
    here.store.shared = True
    hub = EventHub(here, EventLimits(poll=0.05, heartbeat=0.05))
    sub = hub.subscribe()
    try:
        stream = hub.stream(sub, hub.start_point(None, None))
        assert next(stream) == "retry: 2000\n\n"

        def entries(n: int) -> list[dict]:
            got: list[dict] = []
            deadline = time.monotonic() + 20
            while len(got) < n and time.monotonic() < deadline:
                chunk = next(stream)
                if chunk.startswith("id: "):
                    got.append(json.loads(chunk.split("data: ", 1)[1]))
            return got

        for i in range(20):
            world = there if i % 2 else here
            with world.transaction() as tx:
                world.journal.append(tx, "dmp", "TD3.1", patient=f"p{i}")
        assert [(e["seq"], e["patient"]) for e in entries(20)] == [(i + 1, f"p{i}") for i in range(20)]
        with there.transaction() as tx:
            there.reset(tx)
            there.journal.append(tx, "control", "reset", actor="mockbench")
        with there.transaction() as tx:
            there.journal.append(tx, "dmp", "TD3.1", patient="after")
        assert [(e["seq"], e["operation"]) for e in entries(2)] == [(1, "reset"), (2, "TD3.1")]
    finally:
        hub.unsubscribe(sub)
        here.store.close()
        there.store.close()
