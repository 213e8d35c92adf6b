"""EX_3.1-2030: no automatic search after feeding a document, nor a storm of searches.

DMP integration guide [GI] v2.10.0, as quoted in the project's DOMAIN.md: the software must not call TD3.1
automatically after feeding a document; searches after opening the record must come from an explicit user
action. The guide gives no figure: a FindDocuments by the same actor for the same patient within
AUTO_SEARCH_SECONDS of its accepted TD2.1 reads as automatic; STORM_COUNT FindDocuments by the same actor for
the same patient within STORM_WINDOW_SECONDS read as a storm no user clicks through. On the entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..world.journal import finding
from ..world.store import Tx
from .common import timestamp
from .registry import rule

if TYPE_CHECKING:
    from ..world.world import World

RULE = "EX_3.1-2030"
# Thresholds (virtual clock). A DPI that refreshes the list because the user clicked does not do it within
# seconds of its own feed, nor five times a minute.
AUTO_SEARCH_SECONDS = 5.0
STORM_WINDOW_SECONDS = 60.0
STORM_COUNT = 5
SCAN_LIMIT = 1_000   # at most this many of a patient's recent DMP entries looked back at per TD3.1 (a burst)


def _recent(tx: Tx, patient: str, since: float) -> Iterator[tuple[int, float, str, str, str]]:
    """(seq, time, operation, actor, verdict) of the patient's DMP entries from `since` on, newest first.
    Entries are in clock order (the virtual clock only moves forward), so the scan stops at `since`.
    The actor and verdict are the journal's own columns (store schema 4): decoding an entry, a TD3.1's
    54 KiB response included, for them was a fifth of a TD3.1's instructions (issue 21)."""
    cursor = tx.conn.execute(
        "SELECT seq, time, operation, actor, verdict FROM journal WHERE ns = ? AND patient = ? AND channel = 'dmp' "
        "ORDER BY seq DESC LIMIT ?", (tx.ns, patient, SCAN_LIMIT))
    try:
        for seq, time, operation, actor, verdict in cursor:
            ts = timestamp(time)
            if ts is None or ts < since:
                break
            yield seq, ts, operation, actor, verdict
    finally:
        cursor.close()


@rule(RULE, "entry", "A search of the DMP (TD3.1) comes from an explicit user action: it neither follows the "
      "software's own feed within seconds nor comes in storms",
      fr="Une recherche dans le DMP (TD3.1) vient d'une action explicite de l'utilisateur : elle ne suit pas "
         "de quelques secondes la propre alimentation du logiciel et ne vient pas en rafale",
      channel="dmp", operations=("TD3.1",))
def auto_search(world: World, tx: Tx, entry: dict) -> list[dict]:
    now = timestamp(entry["time"])
    if now is None or not entry.get("patient"):
        return []
    actor, patient = entry.get("actor") or "", entry["patient"]
    out: list[dict] = []
    feed = None
    searches = 1                                   # this one
    horizon = now - max(AUTO_SEARCH_SECONDS, STORM_WINDOW_SECONDS)
    for seq, ts, operation, who, verdict in _recent(tx, patient, horizon):
        if who != actor:
            continue
        if operation == "TD2.1" and verdict == "accepted" and feed is None and now - ts <= AUTO_SEARCH_SECONDS:
            feed = (seq, now - ts)
        elif operation == "TD3.1" and now - ts <= STORM_WINDOW_SECONDS:
            searches += 1
        if searches >= STORM_COUNT:
            # A storm: its first searches already named the feed before them (the scan is newest first).
            break
    if feed is not None:
        f = finding(RULE, f"TD3.1 by {actor} for {patient} {feed[1]:.1f} s after its own TD2.1 "
                    f"(entry {feed[0]}): a search must come from an explicit user action, not follow a feed "
                    f"automatically (threshold {AUTO_SEARCH_SECONDS:g} s)", "warning",
                    fr=f"TD3.1 par {actor} pour {patient} {feed[1]:.1f} s après sa propre TD2.1 (entrée {feed[0]}) : une recherche doit venir d'une action explicite de l'utilisateur, et non suivre automatiquement une alimentation (seuil {AUTO_SEARCH_SECONDS:g} s)")
        f["related"] = [feed[0]]
        out.append(f)
    if searches >= STORM_COUNT:
        out.append(finding(RULE, f"a storm of TD3.1 by {actor} for {patient}: {STORM_COUNT} or more "
                           f"within {STORM_WINDOW_SECONDS:g} s; searches must come from explicit user actions",
                           "warning",
                           fr=f"une rafale de TD3.1 par {actor} pour {patient} : {STORM_COUNT} ou plus en {STORM_WINDOW_SECONDS:g} s ; les recherches doivent venir d'actions explicites de l'utilisateur"))
    return out
