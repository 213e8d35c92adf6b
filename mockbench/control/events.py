"""The live timeline: journal entries as server-sent events (`GET /_bench/events`, text/event-stream).

One `EventHub` per application. It listens to the journal only while someone watches: its listener is
added to `journal.listeners` when the first subscriber arrives and removed when the last one leaves, so the
doors pay nothing for it when nobody watches. Each subscriber has a bounded queue; a subscriber that falls
behind (queue full) is not fed more from memory but catches up from the journal itself, which holds every
entry anyway. The number of subscribers is bounded too.

The stream: `retry:` once, then one `event: entry` per journal entry (`id:` its sequence number, `data:` the
entry without its raw message, which `GET /_bench/journal` gives), and a comment line as heartbeat when
nothing happened for a while. A client resumes with `Last-Event-ID` (browsers send it when they reconnect)
or `?since=SEQ`; `?tail=N` starts with the newest N entries. A reset or a scenario load empties the journal
and restarts the numbering at 1: a resume point beyond the journal's last entry means "from the start".
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..world.world import World

SUMMARY_FIELDS = ("seq", "time", "channel", "operation", "direction", "actor", "patient", "patient_ins",
                  "document", "verdict", "code", "findings", "size", "ref")
RESTART_OPERATIONS = ("reset", "load")   # control entries after which the journal starts again at seq 1
_CLOSE = object()


@dataclass(frozen=True)
class EventLimits:
    max_subscribers: int = 16     # a workshop's screens and a few developers' tabs
    queue_size: int = 1000        # entries held for one subscriber before it catches up from the journal
    heartbeat: float = 15.0       # seconds of silence before a comment line (proxies, dead peers)
    replay_page: int = 500        # journal entries read per transaction when replaying
    max_tail: int = 10_000


class TooManySubscribers(Exception):
    pass


def summary(entry: dict) -> dict:
    """What the timeline shows of an entry: everything but the raw message."""
    return {k: entry.get(k) for k in SUMMARY_FIELDS}


class Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.lagged = False


class EventHub:
    def __init__(self, world: World, limits: EventLimits | None = None) -> None:
        self.world = world
        self.limits = limits or EventLimits()
        self.heartbeat = self.limits.heartbeat
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self.closed = False
        self.calls = 0          # listener calls: stays still while nobody watches (tests count it)

    # Subscribers --------------------------------------------------------------------------------
    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber:
        with self._lock:
            if self.closed:
                raise TooManySubscribers("the bench is stopping")
            if len(self._subscribers) >= self.limits.max_subscribers:
                raise TooManySubscribers(f"{len(self._subscribers)} clients already follow the timeline (at most "
                                         f"{self.limits.max_subscribers}); close one and retry")
            sub = Subscriber(self.limits.queue_size)
            self._subscribers.append(sub)
            if len(self._subscribers) == 1:
                self.world.journal.listeners.append(self._on_entry)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub not in self._subscribers:
                return
            self._subscribers.remove(sub)
            if not self._subscribers and self._on_entry in self.world.journal.listeners:
                self.world.journal.listeners.remove(self._on_entry)

    def close(self) -> None:
        """End every stream (the bench stops)."""
        with self._lock:
            self.closed = True
            subs = list(self._subscribers)
        for sub in subs:
            try:
                sub.queue.put_nowait(_CLOSE)
            except queue.Full:
                sub.lagged = True

    def _on_entry(self, entry: dict) -> None:
        """The journal listener (after commit, on the door's thread): one summary, a non-blocking put each."""
        self.calls += 1
        item = summary(entry)
        for sub in list(self._subscribers):
            if sub.lagged:
                continue
            try:
                sub.queue.put_nowait(item)
            except queue.Full:
                sub.lagged = True

    # Reading the journal ------------------------------------------------------------------------
    def last_seq(self) -> int:
        with self.world.read() as tx:
            return int(tx.meta_get("seq:journal", 0))

    def start_point(self, since: int | None, tail: int | None) -> int:
        last = self.last_seq()
        if since is not None:
            return 0 if since > last else max(since, 0)   # beyond the end: the journal restarted since
        if tail is not None:
            return max(last - tail, 0)
        return last

    def _replay(self, since: int) -> Iterator[dict]:
        page_size = self.limits.replay_page
        while True:
            with self.world.read() as tx:   # the catch-up never holds a door's write
                page = self.world.journal.query(tx, since=since, limit=page_size)
            for entry in page:
                yield summary(entry)
            if len(page) < page_size:
                return
            since = page[-1]["seq"]

    # The stream ---------------------------------------------------------------------------------
    def stream(self, sub: Subscriber, since: int) -> Iterator[str]:
        """The text/event-stream body: replay from `since`, then live entries, with heartbeats."""
        yield "retry: 2000\n\n"
        last = since
        overlap: int | None = None
        while True:
            if self.closed:
                return
            if sub.lagged or overlap is None:
                # First pass, or fallen behind: take what the queue holds as stale and read the journal.
                if sub.lagged:
                    _drain(sub.queue)
                    sub.lagged = False
                    if last > self.last_seq():
                        last = 0
                overlap = last
                for item in self._replay(last):
                    last = overlap = item["seq"]
                    yield _event(item)
                continue
            try:
                item = sub.queue.get(timeout=self.heartbeat)
            except queue.Empty:
                yield ": heartbeat\n\n"
                continue
            if item is _CLOSE:
                return
            restart = item["channel"] == "control" and item["operation"] in RESTART_OPERATIONS
            if overlap and item["seq"] <= overlap and not restart:
                continue   # already sent by the replay
            overlap = 0
            last = item["seq"]
            yield _event(item)


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def _event(item: dict) -> str:
    return f"id: {item['seq']}\nevent: entry\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"
