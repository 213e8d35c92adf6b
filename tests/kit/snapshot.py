"""A spy on a door's snapshot path (issue 21 point 3), shared by the DMP and Annuaire tests: it records whether
each request's snapshot gave an answer, how many times the door's handler ran (1: the snapshot's answer was
journaled; 2: computed again in the write transaction), and runs the callables put in `between` right after
the snapshot, before the write transaction."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def spy_snapshots(door: Any, monkeypatch: Any, handler: str) -> SimpleNamespace:
    seen = SimpleNamespace(snapshots=[], runs=0, between=[])
    on_snapshot, run = door._on_snapshot, getattr(door, handler)

    def spied_snapshot(*args, **kwargs):
        early = on_snapshot(*args, **kwargs)
        seen.snapshots.append(early is not None)
        while seen.between:
            seen.between.pop(0)()
        return early

    def spied_run(*args, **kwargs):
        seen.runs += 1
        return run(*args, **kwargs)

    # As in a world shared by several processes, where the doors compute reads on a snapshot.
    monkeypatch.setattr(door.world.store, "shared", True)
    monkeypatch.setattr(door, "_on_snapshot", spied_snapshot)
    monkeypatch.setattr(door, handler, spied_run)
    return seen
