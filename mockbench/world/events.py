"""The world's event bus.

Operations publish what happened (a document fed, replaced, deleted; a mail delivered; an MDN; a DSN...)
with the id of the message that caused it. Events are delivered after the transaction that published them
committed, so a subscriber never sees a change that was rolled back. Doors subscribe to answer later (the
PFI's ZAM) without importing one another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .store import Tx

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

    def subscribe(self, kind: str, fn: Subscriber) -> Callable[[], None]:
        """`kind` is an event kind, a prefix ending in '.' ('document.'), or '*'."""
        entry = (kind, fn)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, tx: Tx, event: Event) -> None:
        tx.after_commit(lambda: self._dispatch(event))

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for kind, fn in subscribers:
            if kind == "*" or kind == event.kind or (kind.endswith(".") and event.kind.startswith(kind)):
                try:
                    fn(event)
                except Exception:  # a faulty subscriber must not undo a committed change
                    log.exception("event subscriber failed on %s", event.kind)
