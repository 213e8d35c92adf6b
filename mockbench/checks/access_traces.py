"""DMP/CONF.14: each accepted DMP action of the journal must have left its access trace (user, document, time,
action); a missing one is an error; one info per patient summarizes what the DPI must be able to show. End.

(The seed's requirement, design DOMAIN.md section 6: "access traces: user, document, time, action, including
invisibilisation and remise en visibilité". The DPI's own extract of its traces is checked by
world/trace_check.py.)"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from ..world.journal import finding
from ..world.model import INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX
from ..world.store import Tx
from .common import timestamp
from .registry import rule

if TYPE_CHECKING:
    from ..world.world import World

RULE = "DMP/CONF.14"
# A trace is written in the transaction of the action it records; this absorbs a clock moved in it.
TRACE_TOLERANCE_SECONDS = 2.0

# The journal's DMP operations and the trace actions (world/dmp.py `_trace`) that record them.
_ITI57 = ("masquage", "demasquage", "remise_en_visibilite", "suppression", "archivage", "desarchivage")
TRACED_ACTIONS: dict[str, tuple[str, ...]] = {
    "TD2.1": ("alimentation", "remplacement"),
    "TD3.1": ("consultation",),
    "TD3.1b": ("consultation",),
    "TD3.2": ("telechargement",),
    "TD3.3a": ("masquage", "demasquage"),
    "TD3.3b": ("remise_en_visibilite",),
    "TD3.3c": ("suppression",),
    "TD3.3d": ("archivage", "desarchivage"),
    "TD3.3": _ITI57,                 # one ITI-57 doing several kinds of change
}
UNDOCUMENTED_ACTIONS = ("consultation",)   # traces that name no document
INVISIBLE = (INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX)

Pool = dict[tuple, list[float]]


@rule(RULE, "run", "Each accepted DMP action leaves its access trace (user, document, time, action), which the "
      "software must be able to show",
      fr="Chaque action acceptée sur le DMP laisse sa trace d'accès (utilisateur, document, date, action), que "
         "le logiciel doit pouvoir afficher",
      channel="dmp", operations=tuple(TRACED_ACTIONS))
def access_traces(world: World, tx: Tx, entries: list[dict]) -> list[dict]:
    entries = [e for e in entries if e.get("verdict") == "accepted" and e.get("patient")]
    if not entries:
        return []
    patients = {e["patient"] for e in entries}
    pool = _pool(tx, patients)
    fed_invisible = _fed_invisible(tx, patients)
    missing: dict[tuple, list[int]] = defaultdict(list)
    shown: dict[str, Counter] = defaultdict(Counter)
    shown_entries: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        patient, operation = entry["patient"], entry["operation"]
        ts = timestamp(entry.get("time"))
        expected = [TRACED_ACTIONS[operation]]
        if operation == "TD2.1" and entry.get("document") in fed_invisible:
            expected.append(("invisibilisation",))
        for actions in expected:
            document = None if actions[0] in UNDOCUMENTED_ACTIONS else entry.get("document")
            hit = _take(pool, patient, actions, document, ts)
            if hit is None:
                missing[(patient, operation, "/".join(actions))].append(entry["seq"])
            else:
                shown[patient][hit] += 1
                shown_entries[patient].append(entry["seq"])
    out: list[dict] = []
    for (patient, operation, actions), seqs in missing.items():
        out.append({**finding(RULE, f"{operation} on {patient}'s DMP left no {actions} access trace "
                              f"({len(seqs)} time{'s' if len(seqs) > 1 else ''})", "error",
                              fr=f"{operation} sur le DMP de {patient} n'a laissé aucune trace d'accès {actions} ({len(seqs)} fois)"),
                    "entries": sorted(seqs)})
    for patient in sorted(shown):
        counts = ", ".join(f"{n} {action}" for action, n in sorted(shown[patient].items()))
        total = sum(shown[patient].values())
        out.append({**finding(RULE, f"{patient}: the DPI must be able to show {total} access "
                              f"trace{'s' if total > 1 else ''} of these exchanges (user, document, time, "
                              f"action): {counts}", "info",
                              fr=f"{patient} : le DPI doit pouvoir afficher {total} trace{'s' if total > 1 else ''} d'accès de ces échanges (utilisateur, document, date, action) : {counts}"), "entries": sorted(set(shown_entries[patient]))})
    return out


def _pool(tx: Tx, patients: set[str]) -> Pool:
    """The world's traces of these patients, per (patient, action, document): their times, in order, each
    usable once."""
    pool: Pool = defaultdict(list)
    for (data,) in tx.conn.execute("SELECT data FROM traces WHERE ns = ? ORDER BY seq", (tx.ns,)):
        trace = json.loads(data)
        if trace.get("patient") not in patients:
            continue
        ts = timestamp(trace.get("time"))
        if ts is not None:
            document = None if trace.get("action") in UNDOCUMENTED_ACTIONS else trace.get("document")
            pool[(trace["patient"], trace.get("action"), document)].append(ts)
    return pool


def _take(pool: Pool, patient: str, actions: tuple[str, ...], document: str | None, ts: float | None) -> str | None:
    """Use up the trace recording this action (any of `actions`, same document, time within the tolerance);
    the action found, or None."""
    for action in actions:
        times = pool.get((patient, action, document))
        if not times:
            continue
        for i, t in enumerate(times):
            if ts is None or abs(t - ts) <= TRACE_TOLERANCE_SECONDS:
                del times[i]
                return action
    return None


def _fed_invisible(tx: Tx, patients: set[str]) -> set[str]:
    """Unique ids of the documents fed invisible (first metadata version hiding them from the patient or the
    legal representatives): their feed also traces an invisibilisation."""
    out: set[str] = set()
    for patient in patients:
        for row in tx.select("documents", patient=patient):
            if row.get("version") == 1 and set(row.get("confidentiality") or []) & set(INVISIBLE):
                out.add(str(row.get("unique_id")))
    return out
