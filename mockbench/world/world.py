"""The World: the store, the clock, the journal, the event bus and the services that hold the rules."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..checks.advisor import Advisor
from .clock import Clock
from .directory import Directory
from .dmp import Dmp
from .events import WORLD_RESET, Event, EventBus
from .faults import Faults
from .journal import Journal, JournalLimits
from .mss import Mss
from .store import Store, Tx
from .tokens import Tokens


class World:
    def __init__(self, store: Store, clock: Clock | None = None, *,
                 journal_limits: JournalLimits | None = None) -> None:
        self.store = store
        self.clock = clock or Clock()
        self.events = EventBus()
        self.journal = Journal(self, journal_limits)
        self.directory = Directory(self)
        self.dmp = Dmp(self)
        self.tokens = Tokens(self)
        self.mss = Mss(self)
        self.faults = Faults(self)     # faults on demand (issue 23)
        self.advisor = Advisor(self)   # the findings across exchanges (GET /_bench/findings)
        # Run at the start of every outermost transaction, with the transaction open: the scenario
        # engine fires the `at:` transitions that the virtual clock has reached.
        self.tick_hooks: list[Callable[[Tx], None]] = [self.mss.on_tick]  # MSSanté answers after read_after
        # Run when another process committed since this one last wrote (Store._follow): re-read the timers'
        # next due times. The clock's offset is re-read by _follow itself.
        self.follow_hooks: list[Callable[[Tx], None]] = [self.mss.reload]
        # The process that owns the timers (tick hooks); another process serving the same world (a worker)
        # leaves them to it and follows the clock in its reads too.
        self.primary = True
        store.followers.append(self._follow)
        with store.transaction() as tx:
            if tx.meta_get("world:created") is None:
                tx.meta_set("world:created", self.clock.now_iso())
            self.clock.offset = float(tx.meta_get("clock:offset", 0.0))
            self.mss.reload(tx)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        outer = not self.store.in_transaction()
        with self.store.transaction() as tx:
            # Read and restored under the store's lock: another thread's clock move is never undone here.
            offset = self.clock.offset
            try:
                if outer and self.primary:
                    for hook in list(self.tick_hooks):
                        hook(tx)
                yield tx
            except BaseException:
                if outer:
                    self.clock.offset = offset  # the clock moved inside a transaction that is rolled back
                raise

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only view in a transaction of its own (Store.read): for reads that may take long (reports,
        journal pages, the dashboard's data); it never holds a door's write. No tick hooks: they write."""
        with self.store.read() as tx:
            if not self.primary and not self.store.in_transaction():
                self.clock.offset = float(tx.meta_get("clock:offset", 0.0))   # moved by the primary
            yield tx

    @contextmanager
    def read_snapshot(self, *, dry: bool = False) -> Iterator[Tx]:
        """`read` for a request computed before the write transaction that journals it (Store.read_snapshot): a
        write in it raises NeedsWrite; `Store.unchanged(tx, mark)` in that write transaction tells whether the
        world it read is still the world."""
        with self.store.read_snapshot(dry=dry) as tx:
            if not self.primary:
                self.clock.offset = float(tx.meta_get("clock:offset", 0.0))   # moved by the primary
            yield tx

    def _follow(self, tx: Tx) -> None:
        """Another process committed: the clock's offset and the timers as the store holds them."""
        self.clock.offset = float(tx.meta_get("clock:offset", 0.0))
        if self.primary:
            for hook in list(self.follow_hooks):
                hook(tx)

    def reset(self, tx: Tx) -> None:
        """Empty world, empty journal, clock back to real time. Signing keys are kept."""
        self.store.clear(tx)
        self.clock.offset = 0.0
        tx.meta_set("world:created", self.clock.now_iso())
        self.events.publish(tx, Event(WORLD_RESET, time=self.clock.now_iso()))

    def reload(self, tx: Tx) -> None:
        """Re-read what is cached in memory after the store changed under us (a snapshot restored)."""
        self.clock.offset = float(tx.meta_get("clock:offset", 0.0))
        self.mss.reload(tx)

    def advance_clock(self, tx: Tx, seconds: float) -> None:
        self.clock.advance(seconds)
        tx.meta_set("clock:offset", self.clock.offset)
        for hook in list(self.tick_hooks):
            hook(tx)

    # Identifiers: drawn from `rng` while a scenario seeds the world (same ids every run), random otherwise.
    @staticmethod
    def new_uuid(rng: random.Random | None = None) -> str:
        value = uuid.UUID(int=rng.getrandbits(128), version=4) if rng else uuid.uuid4()
        return f"urn:uuid:{value}"

    @staticmethod
    def new_oid(rng: random.Random | None = None) -> str:
        value = uuid.UUID(int=rng.getrandbits(128), version=4) if rng else uuid.uuid4()
        return f"2.25.{value.int}"
