"""The live timeline: journal entries as server-sent events (`GET /_bench/events`, text/event-stream).

One `EventHub` per application. It listens to the journal only while someone watches: its listener is
added to `journal.listeners` when the first subscriber arrives and removed when the last one leaves, so the
doors pay nothing for it when nobody watches. The listener only wakes the streams (a bounded queue each):
every stream reads the entries from the journal by cursor, so that nothing is lost whatever process wrote
them (several processes may serve one world) or however far a subscriber fell behind. The number of
subscribers is bounded too.

The stream: `retry:` once, then one `event: entry` per journal entry (`id:` its sequence number, `data:` the
entry without its raw message, which `GET /_bench/journal` gives), and a comment line as heartbeat when
nothing happened for a while. A client resumes with `Last-Event-ID` (browsers send it when they reconnect)
or `?since=SEQ`; `?tail=N` starts with the newest N entries. A reset or a scenario load empties the journal
and restarts the numbering at 1: a resume point beyond the journal's last entry means "from the start", and a
stream that sees the world's generation change (a reset, a load or a snapshot restored) follows the new
journal from its start.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..world.world import World

SUMMARY_FIELDS = ("seq", "time", "channel", "operation", "direction", "actor", "patient", "patient_ins",
                  "document", "verdict", "code", "findings", "size", "ref")
_CLOSE = object()


@dataclass(frozen=True)
class EventLimits:
    max_subscribers: int = 16     # a workshop's screens and a few developers' tabs
    queue_size: int = 1000        # entries held for one subscriber before it catches up from the journal
    heartbeat: float = 15.0       # seconds of silence before a comment line (proxies, dead peers)
    poll: float = 0.5             # seconds between looks at the journal for what other processes journaled
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
        self.poll = self.limits.poll
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
        """The journal listener (after commit, on the door's thread): a non-blocking wake-up for each stream,
        which reads the entry from the journal itself."""
        self.calls += 1
        for sub in list(self._subscribers):
            if sub.lagged:
                continue
            try:
                sub.queue.put_nowait(entry["seq"])
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

    def _read(self, cursor: _Cursor) -> Iterator[dict]:
        """The journal's entries after the cursor, page by page (each page in a read transaction of its own: the
        catch-up never holds a door's write). A new generation of the world (a reset, a load or a restore,
        whatever process made it) restarts the cursor at the new journal's start."""
        page_size = self.limits.replay_page
        while True:
            with self.world.read() as tx:
                if cursor.generation is not None and tx.ns != cursor.generation:
                    cursor.seq = 0
                cursor.generation = tx.ns
                page = self.world.journal.query(tx, since=cursor.seq, limit=page_size)
            for entry in page:
                cursor.seq = entry["seq"]
                yield summary(entry)
            if len(page) < page_size:
                return

    # The stream ---------------------------------------------------------------------------------
    def stream(self, sub: Subscriber, since: int) -> Iterator[str]:
        """The text/event-stream body: the journal from `since` on, then each new entry, with heartbeats.

        Entries are read from the journal by cursor, never from process memory: the listener's queue only
        wakes the stream, and a look every `poll` seconds finds what another process serving the same world
        journaled (issue 21 point 3). So a subscriber that falls behind (its queue full) loses nothing."""
        yield "retry: 2000\n\n"
        cursor = _Cursor(since)
        quiet = time.monotonic()
        while True:
            if self.closed:
                return
            for item in self._read(cursor):
                yield _event(item)
                quiet = time.monotonic()
            try:
                item = sub.queue.get(timeout=max(0.0, min(self.poll, quiet + self.heartbeat - time.monotonic())))
            except queue.Empty:
                if time.monotonic() - quiet >= self.heartbeat:
                    yield ": heartbeat\n\n"
                    quiet = time.monotonic()
                continue
            if item is _CLOSE:
                return
            sub.lagged = False   # before draining: an entry committed from now on wakes the stream again
            if _drain(sub.queue):
                return


class _Cursor:
    """Where a stream is in the journal: the last sequence number sent and the world's generation it is of."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.generation: str | None = None


def _drain(q: queue.Queue) -> bool:
    """Empty the queue; True when the bench asked the stream to end."""
    try:
        while True:
            if q.get_nowait() is _CLOSE:
                return True
    except queue.Empty:
        return False


def _event(item: dict) -> str:
    return f"id: {item['seq']}\nevent: entry\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"
