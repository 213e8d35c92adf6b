"""The world's event bus.

Operations publish what happened (a document fed, replaced, deleted; a mail delivered; an MDN; a DSN...)
with the id of the message that caused it. Events are delivered after the transaction that published them
committed, so a subscriber never sees a change that was rolled back. Doors subscribe to answer later (the
PFI's ZAM) without importing one another. A subscriber that must write what the event makes due durably
with it (the PFI's outbound queue) subscribes `in_transaction`: it runs at the end of the publishing
transaction, before its commit, in a savepoint of its own (its failure is logged and undone alone, except a
store failure such as a full disk, which fails the whole transaction).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .store import StorageFull, Tx

log = logging.getLogger("mockbench.events")

# The kinds published by the world. Doors may publish their own kinds too.
DOCUMENT_FED = "document.fed"
DOCUMENT_REPLACED = "document.replaced"
DOCUMENT_DELETED = "document.deleted"
DOCUMENT_ARCHIVED = "document.archived"
DOCUMENT_UNARCHIVED = "document.unarchived"
DOCUMENT_CONFIDENTIALITY = "document.confidentiality"
AUTHORIZATION_CHANGED = "authorization.changed"
DMP_STATE_CHANGED = "dmp.state"
MAIL_DELIVERED = "mail.delivered"
MAIL_MDN = "mail.mdn"
MAIL_DSN = "mail.dsn"
WORLD_RESET = "world.reset"


@dataclass(frozen=True)
class Event:
    kind: str
    cause: str | None = None        # id of the message that caused it (MSH-10, WS-A MessageID, Message-ID)
    patient: str | None = None
    document: str | None = None
    time: str = ""
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._in_transaction: list[tuple[str, Subscriber]] = []

    def subscribe(self, kind: str, fn: Subscriber) -> Callable[[], None]:
        """`kind` is an event kind, a prefix ending in '.' ('document.'), or '*'."""
        return self._add(self._subscribers, (kind, fn))

    def subscribe_in_transaction(self, kind: str, fn: Subscriber) -> Callable[[], None]:
        """As subscribe, but `fn` runs inside the publishing transaction, before its commit (the current
        transaction is the publisher's: `world.transaction()` joins it)."""
        return self._add(self._in_transaction, (kind, fn))

    def _add(self, subscribers: list, entry: tuple[str, Subscriber]) -> Callable[[], None]:
        with self._lock:
            subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in subscribers:
                    subscribers.remove(entry)

        return unsubscribe

    def publish(self, tx: Tx, event: Event) -> None:
        with self._lock:
            inside = [fn for kind, fn in self._in_transaction if _matches(kind, event.kind)]
        for fn in inside:
            tx.before_commit(functools.partial(self._run_inside, tx, fn, event))
        tx.after_commit(lambda: self._dispatch(event))

    @staticmethod
    def _run_inside(tx: Tx, fn: Subscriber, event: Event) -> None:
        try:
            with tx.savepoint():
                fn(event)
        except (sqlite3.Error, StorageFull):
            raise   # the store failed: the whole change fails with it
        except Exception:  # a faulty subscriber must not fail the change that published the event
            log.exception("event subscriber failed on %s", event.kind)

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for kind, fn in subscribers:
            if _matches(kind, event.kind):
                try:
                    fn(event)
                except Exception:  # a faulty subscriber must not undo a committed change
                    log.exception("event subscriber failed on %s", event.kind)


def _matches(kind: str, event_kind: str) -> bool:
    return kind == "*" or kind == event_kind or (kind.endswith(".") and event_kind.startswith(kind))
