"""Several processes serving one world's file (issue 21 point 3): what a process keeps of the store (the
clock's offset, the live generation, the timers' next due times) follows what another one committed. Two
stores on one file stand for two processes: each has its own connection, which is what SQLite tells apart."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from mockbench.scenarios.engine import ScenarioEngine
from mockbench.scenarios.loader import parse
from mockbench.world.clock import Clock
from mockbench.world.store import Store
from mockbench.world.world import World

AT = """\
id: t
title: Essai
world:
  structures: [{id: chu}]
  patients: [{id: alice}]
transitions:
  - id: plus_tard
    when: {at: +30s}
    do: [{close_dmp: {patient: alice}}]
"""


class _Time:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def _pair(tmp_path, now: _Time) -> tuple[World, World]:
    primary = World(Store(tmp_path / "world.db"), Clock(real=now))
    worker = World(Store(tmp_path / "world.db"), Clock(real=now))
    worker.primary = False
    worker.store.shared = True
    return primary, worker


def _close(*worlds: World) -> None:
    for world in worlds:
        world.store.close()


def test_a_clock_moved_by_one_process_is_seen_by_the_other(tmp_path):
    now = _Time()
    primary, worker = _pair(tmp_path, now)
    try:
        with primary.transaction() as tx:
            primary.advance_clock(tx, 3600)
        with worker.read():
            assert worker.clock.offset == 3600          # a read, before any write of its own
        worker.clock.offset = 0.0
        with worker.transaction():
            assert worker.clock.timestamp() == now.now + 3600
        with primary.transaction() as tx:
            primary.reset(tx)
        with worker.transaction():
            assert worker.clock.offset == 0
    finally:
        _close(primary, worker)


def test_a_reset_by_one_process_switches_the_others_generation(tmp_path):
    now = _Time()
    primary, worker = _pair(tmp_path, now)
    try:
        with primary.transaction() as tx:
            tx.meta_set("mark", "before")
        with primary.transaction() as tx:
            primary.reset(tx)
            tx.meta_set("mark", "after")
        with worker.read() as tx:
            assert tx.meta_get("mark") == "after"
        with worker.transaction() as tx:
            assert tx.meta_get("mark") == "after"
            tx.meta_set("by", "worker")
        with primary.read() as tx:
            assert tx.meta_get("by") == "worker"
    finally:
        _close(primary, worker)


def test_at_timers_fire_once_in_the_primary_whatever_process_loaded_them(tmp_path):
    """The worker never fires a timer; the primary finds the one set elsewhere from the store (its next due
    time re-read when another process committed) and fires it once."""
    now = _Time()
    primary, worker = _pair(tmp_path, now)
    engine, other = ScenarioEngine(primary), ScenarioEngine(worker)
    try:
        other.load(parse(AT))
        now.now += 31
        with worker.transaction() as tx:   # a worker's request after the due time: not its timer
            assert worker.directory.patient(tx, "alice").dmp == "active"
        assert not engine.tick_due()       # the primary has not looked at the store since
        with primary.transaction() as tx:  # its ticker's transaction (or any request it serves)
            assert primary.directory.patient(tx, "alice").dmp == "closed"
        with worker.transaction() as tx:
            assert worker.directory.patient(tx, "alice").dmp == "closed"
        with primary.transaction() as tx:
            transitions = engine.transitions(tx)
            fired = primary.journal.query(tx, channel="control", operation="transition")
        assert [t["fired"] for t in transitions] == [True] and len(fired) == 1
        assert not engine.tick_due()
    finally:
        _close(primary, worker)


def test_another_process_sees_the_moved_clock(tmp_path):
    """The issue's symptom, with a real second process: it saw offset 0 after the clock had moved an hour."""
    db = tmp_path / "world.db"
    primary = World(Store(db))
    try:
        with primary.transaction() as tx:
            primary.reset(tx)
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import sys
            from pathlib import Path
            from mockbench.world.store import Store
            from mockbench.world.world import World
            world = World(Store(Path(sys.argv[1])))
            print("ready", flush=True)
            sys.stdin.readline()
            with world.transaction():
                print(world.clock.offset, flush=True)
            world.primary = False
            sys.stdin.readline()
            with world.read():
                print(world.clock.offset, flush=True)
            world.store.close()
        """), str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        with primary.transaction() as tx:
            primary.advance_clock(tx, 3600)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert float(proc.stdout.readline()) == 3600
        with primary.transaction() as tx:
            primary.advance_clock(tx, 60)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert float(proc.stdout.readline()) == 3660
        assert proc.wait(30) == 0
    finally:
        primary.store.close()


def test_one_process_alone_never_re_reads(tmp_path):
    """Its own commits (and its checkpoints) leave SQLite's data_version alone: a bench of one process pays one
    PRAGMA per transaction, never the re-reads."""
    now = _Time()
    world = World(Store(tmp_path / "world.db"), Clock(real=now))
    calls: list[int] = []
    world.store.followers.append(lambda tx: calls.append(1))
    try:
        for i in range(50):
            with world.transaction() as tx:
                world.journal.append(tx, "dmp", "TD3.1", patient=f"p{i}")
                tx.put("mailraw", {"x": "y" * 200_000}, id=str(i))   # enough bytes for background checkpoints
        world.store._checkpointer.request()
        time.sleep(0.5)
        with world.transaction() as tx:
            tx.meta_set("last", 1)
        assert calls == []
        other = Store(tmp_path / "world.db")
        with other.transaction() as tx:
            tx.meta_set("other", 1)
        other.close()
        with world.transaction():
            pass
        assert calls == [1]
    finally:
        world.store.close()
