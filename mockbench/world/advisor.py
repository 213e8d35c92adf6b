"""The conformance advisor: every finding over the journal, the doors' own and those across exchanges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import Tx

if TYPE_CHECKING:
    from .world import World

PAGE = 10_000   # journal entries read at once


class Advisor:
    def __init__(self, world: World) -> None:
        self.world = world

    def findings(self, tx: Tx) -> list[dict]:
        """Every finding, grouped by (rule, severity, message), each with the journal seqs it names."""
        grouped: dict[tuple, dict] = {}
        since = 0
        while True:
            page = self.world.journal.query(tx, since=since, limit=PAGE)
            for entry in page:
                for f in entry.get("findings") or []:
                    key = (f["rule"], f["severity"], f["message"])
                    grouped.setdefault(key, {**f, "entries": []})["entries"].append(entry["seq"])
            if len(page) < PAGE:
                break
            since = page[-1]["seq"]
        return list(grouped.values())
