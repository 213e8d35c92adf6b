"""The conformance advisor: every finding over the journal, the doors' own and those the registered rules
compute across exchanges (checks/registry.py).

Two kinds of rules:
- known when an entry arrives (the world state and the recent journal say it, rules `on="entry"`):
  `annotate` adds the finding to the entry before it is stored (a journal annotator), so that the entry, the
  scenario steps' `forbid_findings` and the report all see it;
- known only once the run is over (a copy that may still come, a trace checked against the whole timeline,
  rules `on="run"`): computed by `findings(tx)`, which also groups the doors' findings.

DMP/CONSENT (consultation or feeding against the hospital-side ZFA consent) is made by the world's DMP
operations (world/dmp.py `_consent_findings`) and carried by the doors onto the entry; it is grouped here.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ..world.journal import finding
from ..world.store import Tx
from .registry import RULES, Rule

if TYPE_CHECKING:
    from ..world.world import World

log = logging.getLogger(__name__)

PAGE = 2_000    # journal entries read at once (without their raw message)
SCAN_SEQS = 20_000   # journal sequence numbers looked through by one statement (a bounded filter's scan)

RULE_CONSENT = "DMP/CONSENT"      # made in world/dmp.py
RULE_INTERNAL = "ADVISOR/INTERNAL"


class Advisor:
    def __init__(self, world: World) -> None:
        self.world = world
        self.on_entry: dict[tuple[str, str], list[Rule]] = {}
        for r in RULES.on("entry"):
            for operation in r.operations:
                self.on_entry.setdefault((r.channel or "", operation), []).append(r)
        self.on_run = RULES.on("run")
        world.journal.annotators.append(self.annotate)

    # Findings known when an entry arrives ----------------------------------------------------------
    def annotate(self, tx: Tx, entry: dict) -> None:
        """A journal annotator: the findings this entry shows, given the world and the journal before it.
        An advisor bug never refuses an exchange: it becomes a finding of its own."""
        rules = self.on_entry.get((entry.get("channel") or "", entry.get("operation") or ""))
        if not rules:
            return
        found: list[dict] = []
        try:
            for r in rules:
                found.extend(r.check(self.world, tx, entry))
        except Exception as exc:   # noqa: BLE001 - the exchange goes on; the failure is reported
            log.exception("advisor: annotating entry %s failed", entry.get("seq"))
            found = [finding(RULE_INTERNAL, f"the advisor failed on this entry: {type(exc).__name__}: {exc}",
                             "info",
                             fr=f"le conseiller a échoué sur cette entrée : {type(exc).__name__}: {exc}")]
        entry["findings"].extend(found)

    # All findings ---------------------------------------------------------------------------------
    def findings(self, tx: Tx) -> list[dict]:
        """Every finding, `{"rule", "severity", "message", "message_fr", "entries"}` (entries: journal seqs):
        those on the entries grouped by (rule, severity, English message), keeping the group's French, then
        those the run rules compute over the whole run, in the order they were registered."""
        grouped: dict[tuple, dict] = {}
        read: dict[str, list[dict]] = {r.id: [] for r in self.on_run}
        for seq, entry in self._entries(tx):
            for f in entry.get("findings") or []:
                if isinstance(f, dict):
                    _group(grouped, seq, f)
            for r in self.on_run:
                if entry.get("channel") == r.channel and entry.get("operation") in r.operations:
                    read[r.id].append(entry)
        out = [{**g, "entries": sorted(g["entries"])} for g in grouped.values()]
        for r in self.on_run:
            out.extend(r.check(self.world, tx, read[r.id]))
        return out

    def _entries(self, tx: Tx):
        """(seq, entry without its raw message) of the entries that can matter, in journal order: those with
        findings, and those the run rules read."""
        # Only these are decoded in Python (a journal of 100,000 control or PFI entries without findings took
        # 600 ms, issue 21 point 6). An entry's empty list is the text `,"findings":[],` (entry_json's compact
        # form; no nested object has that key, and a string value cannot hold it unescaped): a substring test
        # in C, where JSON functions would parse every entry's raw message.
        wanted = " OR ".join(f"(channel = ? AND operation IN ({', '.join('?' * len(r.operations))}))"
                             for r in self.on_run)
        params = [p for r in self.on_run for p in (r.channel, *r.operations)]
        since = 0
        last = tx.conn.execute("SELECT coalesce(max(seq), 0) FROM journal WHERE ns = ?", (tx.ns,)).fetchone()[0]
        while True:
            rows = tx.conn.execute(
                "SELECT seq, json_remove(data, '$.raw') FROM journal WHERE ns = ? AND seq > ? AND seq <= ? AND ("
                f"{wanted + ' OR ' if wanted else ''}instr(data, ',\"findings\":[],') = 0) ORDER BY seq LIMIT ?",
                (tx.ns, since, since + SCAN_SEQS, *params, PAGE)).fetchall()
            for seq, data in rows:
                yield seq, json.loads(data)
            if len(rows) == PAGE:
                since = rows[-1][0]
            elif since + SCAN_SEQS < last:
                since += SCAN_SEQS
            else:
                return


def _group(grouped: dict[tuple, dict], seq: int, f: dict) -> None:
    """Add finding `f` of entry `seq` to its group (rule, severity, English message)."""
    key = (str(f.get("rule")), str(f.get("severity")), str(f.get("message")))
    group = grouped.setdefault(key, {"rule": key[0], "severity": key[1], "message": key[2], "entries": set()})
    if isinstance(f.get("message_fr"), str):
        group.setdefault("message_fr", f["message_fr"])
    group["entries"].add(seq)
    related = f.get("related")
    if isinstance(related, list):
        group["entries"].update(r for r in related if isinstance(r, int))
