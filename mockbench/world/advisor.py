"""The conformance advisor: every finding over the journal, the doors' own and those computed across exchanges.

Two kinds of rules:
- known when an entry arrives (the world state and the recent journal say it): `annotate` adds the finding to
  the entry before it is stored (a journal annotator), so that the entry, the scenario steps'
  `forbid_findings` and the report all see it;
- known only once the run is over (a copy that may still come, a trace checked against the whole timeline):
  computed by `findings(tx)`, which also groups the doors' findings.

Rules (the README's section on findings lists them with one line each):
- EX_3.1-2030 (DMP integration guide [GI] v2.10.0, as quoted in the project's DOMAIN.md: the software must not
  call TD3.1 automatically after feeding a document; searches after opening the record must come from an
  explicit user action). The guide gives no figure: a FindDocuments by the same actor for the same patient
  within AUTO_SEARCH_SECONDS of its accepted TD2.1 reads as automatic; STORM_COUNT FindDocuments by the same
  actor for the same patient within STORM_WINDOW_SECONDS read as a storm no user clicks through. On the entry.
- DMP/TD3.3c: a TD3.2 for a document that was deleted or masked to the reader when it was asked for (the DPI
  should have shown it as no longer accessible), or replaced (info: a newer version exists). On the entry.
- DMP/CONSENT: consultation or feeding against the hospital-side ZFA consent; made by the world's DMP
  operations (world/dmp.py `_consent_findings`, for TD2.1 through the DMP door or the PFI, TD3.1, TD3.1b, TD3.2)
  and carried by the doors onto the entry.
- MSS/UX.12: an error MDN submitted by a hospital or applicative mailbox with no copy delivered to a mailbox of
  role `error` of the same structure within UX12_COPY_WINDOW_SECONDS (in the same message or another); or a
  package the bench found broken, fetched by such a mailbox, then neither an error MDN answering it nor any
  mail to the error mailbox within the window. End.
- DMP/CONF.14: each accepted DMP action of the journal must have left its access trace (user, document, time,
  action); a missing one is an error; one info per patient summarizes what the DPI must be able to show. End.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from ..formats.mime import read_mdn
from .clock import parse_time
from .errors import DocumentMasked
from .journal import finding
from .model import INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS
from .store import Tx

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger(__name__)

PAGE = 2_000    # journal entries read at once (without their raw message)
SCAN_SEQS = 20_000   # journal sequence numbers looked through by one statement (a bounded filter's scan)
SCAN_LIMIT = 1_000   # at most this many of a patient's recent DMP entries looked back at per TD3.1 (a burst)

# EX_3.1-2030 thresholds (virtual clock). A DPI that refreshes the list because the user clicked does not
# do it within seconds of its own feed, nor five times a minute.
AUTO_SEARCH_SECONDS = 5.0
STORM_WINDOW_SECONDS = 60.0
STORM_COUNT = 5
# MSS/UX.12: how far from the error MDN (before or after) its copy to the error mailbox may be delivered.
UX12_COPY_WINDOW_SECONDS = 3600.0
# DMP/CONF.14: a trace is written in the transaction of the action it records; this absorbs a clock moved in it.
TRACE_TOLERANCE_SECONDS = 2.0

RULE_AUTO_SEARCH = "EX_3.1-2030"
RULE_READ_GONE = "DMP/TD3.3c"
RULE_CONSENT = "DMP/CONSENT"      # made in world/dmp.py
RULE_ERROR_COPY = "MSS/UX.12"
RULE_TRACES = "DMP/CONF.14"
RULE_INTERNAL = "ADVISOR/INTERNAL"

# DMP/CONF.14: the journal's DMP operations and the trace actions (world/dmp.py `_trace`) that record them.
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



def _world_code(code: Any) -> str:
    """The world's error code behind a door's: `DMPDocumentMasked` (the DMP door's derived code) or
    `DOCUMENT_MASKED` -> `DOCUMENT_MASKED`."""
    text = str(code or "")
    if "_" in text or text.isupper():
        return text
    return re.sub(r"(?<!^)(?=[A-Z])", "_", text.removeprefix("DMP")).upper()


def _ts(text: Any) -> float | None:
    try:
        return parse_time(str(text)).timestamp()
    except (TypeError, ValueError):
        return None


class Advisor:
    def __init__(self, world: World) -> None:
        self.world = world
        world.journal.annotators.append(self.annotate)

    # Findings known when an entry arrives ----------------------------------------------------------
    def annotate(self, tx: Tx, entry: dict) -> None:
        """A journal annotator: the findings this entry shows, given the world and the journal before it.
        An advisor bug never refuses an exchange: it becomes a finding of its own."""
        if entry.get("channel") != "dmp" or not entry.get("patient"):
            return
        try:
            found: list[dict] = []
            if entry.get("operation") == "TD3.1":
                found.extend(self._auto_search(tx, entry))
            elif entry.get("operation") == "TD3.2" and entry.get("document"):
                found.extend(self._read_gone(tx, entry))
        except Exception as exc:   # noqa: BLE001 - the exchange goes on; the failure is reported
            log.exception("advisor: annotating entry %s failed", entry.get("seq"))
            found = [finding(RULE_INTERNAL, f"the advisor failed on this entry: {type(exc).__name__}: {exc}",
                             "info",
                             fr=f"le conseiller a échoué sur cette entrée : {type(exc).__name__}: {exc}")]
        entry["findings"].extend(found)

    def _recent(self, tx: Tx, patient: str, since: float):
        """(seq, time, operation, actor, verdict) of the patient's DMP entries from `since` on, newest first.
        Entries are in clock order (the virtual clock only moves forward), so the scan stops at `since`.
        The actor and verdict are read from the entry's head: its text up to `"findings"`, which Journal.append
        writes after them (scalars only before it; a JSON string cannot hold an unescaped quote, so the first
        `,"findings":` is that key). json_extract parsed the whole text twice per row, a TD3.1's 54 KiB response
        included: a fifth of a TD3.1's instructions (issue 21). A head that is not JSON reads the whole text."""
        cursor = tx.conn.execute(
            "SELECT seq, time, operation, json_extract(head, '$.actor'), json_extract(head, '$.verdict') FROM ("
            "SELECT seq, time, operation, CASE WHEN json_valid(cut) THEN cut ELSE data END AS head FROM ("
            "SELECT seq, time, operation, data, substr(data, 1, instr(data, ',\"findings\":') - 1) || '}' AS cut "
            "FROM journal WHERE ns = ? AND patient = ? AND channel = 'dmp' ORDER BY seq DESC LIMIT ?))",
            (tx.ns, patient, SCAN_LIMIT))
        try:
            for seq, time, operation, actor, verdict in cursor:
                ts = _ts(time)
                if ts is None or ts < since:
                    break
                yield seq, ts, operation, actor, verdict
        finally:
            cursor.close()

    def _auto_search(self, tx: Tx, entry: dict) -> list[dict]:
        now = _ts(entry["time"])
        if now is None:
            return []
        actor, patient = entry.get("actor") or "", entry["patient"]
        out: list[dict] = []
        feed = None
        searches = 1                                   # this one
        horizon = now - max(AUTO_SEARCH_SECONDS, STORM_WINDOW_SECONDS)
        for seq, ts, operation, who, verdict in self._recent(tx, patient, horizon):
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
            f = finding(RULE_AUTO_SEARCH, f"TD3.1 by {actor} for {patient} {feed[1]:.1f} s after its own TD2.1 "
                        f"(entry {feed[0]}): a search must come from an explicit user action, not follow a feed "
                        f"automatically (threshold {AUTO_SEARCH_SECONDS:g} s)", "warning",
                        fr=f"TD3.1 par {actor} pour {patient} {feed[1]:.1f} s après sa propre TD2.1 (entrée {feed[0]}) : une recherche doit venir d'une action explicite de l'utilisateur, et non suivre automatiquement une alimentation (seuil {AUTO_SEARCH_SECONDS:g} s)")
            f["related"] = [feed[0]]
            out.append(f)
        if searches >= STORM_COUNT:
            out.append(finding(RULE_AUTO_SEARCH, f"a storm of TD3.1 by {actor} for {patient}: {STORM_COUNT} or more "
                               f"within {STORM_WINDOW_SECONDS:g} s; searches must come from explicit user actions",
                               "warning",
                               fr=f"une rafale de TD3.1 par {actor} pour {patient} : {STORM_COUNT} ou plus en {STORM_WINDOW_SECONDS:g} s ; les recherches doivent venir d'actions explicites de l'utilisateur"))
        return out

    def _read_gone(self, tx: Tx, entry: dict) -> list[dict]:
        row = tx.get("documents", unique_id=entry["document"], current=1)
        if row is None or row.get("patient") != entry["patient"]:
            return []
        unique_id, status = row.get("unique_id"), row.get("status")
        if status == "deleted":
            return [finding(RULE_READ_GONE, f"TD3.2 asks for {unique_id}, deleted from {entry['patient']}'s DMP"
                            f"{self._when(tx, entry['patient'], unique_id, 'suppression')}: the DPI must show it as "
                            "deleted rather than offer it", "warning",
                            fr=f"la TD3.2 demande {unique_id}, supprimé du DMP de {entry['patient']}{self._when(tx, entry['patient'], unique_id, 'suppression', 'fr')} : le DPI doit l'afficher comme supprimé plutôt que le proposer")]
        masked_to_reader = (MASQUE_PS in (row.get("confidentiality") or []) and entry.get("verdict") != "accepted"
                            and _world_code(entry.get("code")) == DocumentMasked.code)
        if masked_to_reader:
            return [finding(RULE_READ_GONE, f"TD3.2 asks for {unique_id}, masked to professionals in "
                            f"{entry['patient']}'s DMP{self._when(tx, entry['patient'], unique_id, 'masquage')}: the "
                            "DPI must show it as no longer accessible rather than offer it", "warning",
                            fr=f"la TD3.2 demande {unique_id}, masqué aux professionnels dans le DMP de {entry['patient']}{self._when(tx, entry['patient'], unique_id, 'masquage', 'fr')} : le DPI doit l'afficher comme n'étant plus accessible plutôt que le proposer")]
        if status == "deprecated" and row.get("replaced_by"):
            return [finding(RULE_READ_GONE, f"TD3.2 reads {unique_id}, replaced by {row['replaced_by']}: the DPI "
                            "should show that a newer version exists", "info",
                            fr=f"la TD3.2 lit {unique_id}, remplacé par {row['replaced_by']} : le DPI devrait indiquer qu'une version plus récente existe")]
        return []

    @staticmethod
    def _when(tx: Tx, patient: str, unique_id: str, action: str, lang: str = "en") -> str:
        """The time of the latest `action` trace of the document, as " at <time>" (" le <time>" in French),
        or ""."""
        rows = tx.conn.execute(
            "SELECT json_extract(data, '$.time') FROM traces WHERE ns = ? AND patient = ? "
            "AND json_extract(data, '$.document') = ? AND json_extract(data, '$.action') = ? "
            "ORDER BY seq DESC LIMIT 1", (tx.ns, patient, unique_id, action)).fetchone()
        if not rows or not rows[0]:
            return ""
        return f" at {rows[0]}" if lang == "en" else f" le {rows[0]}"

    # All findings ---------------------------------------------------------------------------------
    def findings(self, tx: Tx) -> list[dict]:
        """Every finding, `{"rule", "severity", "message", "message_fr", "entries"}` (entries: journal seqs):
        those on the entries grouped by (rule, severity, English message), keeping the group's French, then those computed over the whole run."""
        grouped: dict[tuple, dict] = {}
        dmp_entries: list[dict] = []
        mdn_submits: list[dict] = []
        deliveries: list[dict] = []
        fetches: list[dict] = []
        since = 0
        last = tx.conn.execute("SELECT coalesce(max(seq), 0) FROM journal WHERE ns = ?", (tx.ns,)).fetchone()[0]
        while True:
            # Only the entries that can matter are decoded in Python: those with findings, and the DMP and MSSanté
            # operations the rules below look at (a journal of 100,000 control or PFI entries without findings
            # took 600 ms, issue 21 point 6). An entry's empty list is the text `,"findings":[],` (entry_json's
            # compact form; no nested object has that key, and a string value cannot hold it unescaped): a
            # substring test in C, where JSON functions would parse every entry's raw message.
            rows = tx.conn.execute(
                "SELECT seq, json_remove(data, '$.raw') FROM journal WHERE ns = ? AND seq > ? AND seq <= ? AND ("
                f"(channel = 'dmp' AND operation IN ({', '.join('?' * len(TRACED_ACTIONS))})) "
                "OR (channel = 'mss' AND operation IN ('SUBMIT', 'DELIVER', 'IMAP_FETCH')) "
                "OR instr(data, ',\"findings\":[],') = 0) ORDER BY seq LIMIT ?",
                (tx.ns, since, since + SCAN_SEQS, *TRACED_ACTIONS, PAGE)).fetchall()
            for seq, data in rows:
                entry = json.loads(data)
                for f in entry.get("findings") or []:
                    if not isinstance(f, dict):
                        continue
                    key = (str(f.get("rule")), str(f.get("severity")), str(f.get("message")))
                    group = grouped.setdefault(key, {"rule": key[0], "severity": key[1], "message": key[2],
                                                     "entries": set()})
                    if isinstance(f.get("message_fr"), str):
                        group.setdefault("message_fr", f["message_fr"])
                    group["entries"].add(seq)
                    related = f.get("related")
                    if isinstance(related, list):
                        group["entries"].update(r for r in related if isinstance(r, int))
                channel, operation = entry.get("channel"), entry.get("operation")
                if channel == "dmp" and entry.get("verdict") == "accepted" and operation in TRACED_ACTIONS:
                    dmp_entries.append(entry)
                elif channel == "mss" and operation == "SUBMIT" and entry.get("verdict") == "accepted":
                    mdn_submits.append(entry)
                elif channel == "mss" and operation == "DELIVER":
                    deliveries.append(entry)
                elif channel == "mss" and operation == "IMAP_FETCH":
                    fetches.append(entry)
            if len(rows) == PAGE:
                since = rows[-1][0]
            elif since + SCAN_SEQS < last:
                since += SCAN_SEQS
            else:
                break
        out = [{**g, "entries": sorted(g["entries"])} for g in grouped.values()]
        out.extend(self._error_copies(tx, mdn_submits, deliveries, fetches))
        out.extend(self._traces(tx, dmp_entries))
        return out

    # MSS/UX.12 ------------------------------------------------------------------------------------
    def _error_copies(self, tx: Tx, submits: list[dict], deliveries: list[dict], fetches: list[dict]) -> list[dict]:
        boxes = {m.address.lower(): m for m in self.world.directory.mailboxes(tx)}
        hospital = {a for a, m in boxes.items()
                    if m.role == "hospital" or (m.type == "APP" and m.role not in ("outside", "error"))}
        submits = [e for e in submits if str(e.get("actor") or "").lower() in hospital]
        fetches = [e for e in fetches if str(e.get("actor") or "").lower() in hospital and e.get("ref")]
        if not submits and not fetches:
            return []
        errors_of: dict[str, list[str]] = defaultdict(list)   # structure -> its error mailboxes
        for address, box in boxes.items():
            if box.role == "error":
                errors_of[box.owner].append(address)
        # When each error mailbox received something: its messages, and the journal's deliveries into it
        # (a message expunged since still counts).
        received: dict[str, list[float]] = defaultdict(list)
        for addresses in errors_of.values():
            for address in addresses:
                for message in self.world.mss.messages(tx, address):
                    ts = _ts(message.received_at)
                    if ts is not None:
                        received[address].append(ts)
        for entry in deliveries:
            address = str(entry.get("actor") or "").lower()
            ts = _ts(entry.get("time"))
            if address in boxes and boxes[address].role == "error" and ts is not None:
                received[address].append(ts)

        def copied(owner: str, ts: float | None, *, after: bool = False) -> bool:
            return ts is not None and any(
                (0 if after else -UX12_COPY_WINDOW_SECONDS) <= t - ts <= UX12_COPY_WINDOW_SECONDS
                for address in errors_of.get(owner, []) for t in received.get(address, []))

        out: list[dict] = []
        answered: set[tuple[str, str]] = set()   # (structure, original Message-ID) an error MDN answered
        for entry in submits:
            raw = self._raw(tx, entry["seq"])
            if "disposition-notification" not in raw.lower():
                continue
            shape = read_mdn(raw.encode("utf-8"))   # the SMTP door's reading of the same MDN
            if shape is None or shape.error is None:
                continue
            sender = str(entry["actor"]).lower()
            owner = boxes[sender].owner
            if shape.original:
                answered.add((owner, shape.original))
            about = f" answering {shape.original}" if shape.original else ""
            if not errors_of.get(owner):
                whose = owner or "its structure"
                out.append({**finding(RULE_ERROR_COPY, f"{sender} sent an error MDN{about}, but {whose} has no "
                                      "mailbox of role error to receive the copy", "error",
                                      fr=f"{sender} a envoyé un MDN d'erreur{f' en réponse à {shape.original}' if shape.original else ''}, mais {owner or 'sa structure'} n'a aucune boîte aux lettres de rôle erreur pour en recevoir la copie"),
                            "entries": [entry["seq"]]})
            elif not copied(owner, _ts(entry.get("time"))):
                out.append({**finding(RULE_ERROR_COPY, f"{sender} sent an error MDN{about} with no copy delivered to "
                                      f"the error mailbox ({', '.join(sorted(errors_of[owner]))}) within "
                                      f"{UX12_COPY_WINDOW_SECONDS:g} s", "error",
                                      fr=f"{sender} a envoyé un MDN d'erreur{f' en réponse à {shape.original}' if shape.original else ''} sans copie remise à la boîte aux lettres d'erreur ({', '.join(sorted(errors_of[owner]))}) dans les {UX12_COPY_WINDOW_SECONDS:g} s"), "entries": [entry["seq"]]})
        # A package the bench found broken, fetched by the hospital's software, then neither an error MDN nor a
        # mail to the error mailbox (DOMAIN.md section 3: without an MDN request, a standard mail is expected).
        inbox: dict[str, dict[str, Any]] = {}
        seen: set[tuple[str, str]] = set()
        for entry in fetches:
            address, ref = str(entry["actor"]).lower(), str(entry["ref"]).strip()
            if (address, ref) in seen:
                continue
            seen.add((address, ref))
            if address not in inbox:
                inbox[address] = {m.message_id.strip(): m for m in self.world.mss.messages(tx, address)}
            message = inbox[address].get(ref)
            broken = [f for f in (message.findings if message else []) if f.get("severity") == "error"]
            owner = boxes[address].owner
            if not broken or (owner, ref) in answered or copied(owner, _ts(entry.get("time")), after=True):
                continue
            reasons = "; ".join(str(f.get("message")) for f in broken[:2])
            out.append({**finding(RULE_ERROR_COPY, f"{address} fetched {ref}, whose package cannot be integrated "
                                  f"({reasons}), and neither answered an error MDN nor wrote to an error mailbox",
                                  "error",
                                  fr=f"{address} a relevé {ref}, dont le paquet ne peut pas être intégré (" + "; ".join(str(f.get("message_fr") or f.get("message")) for f in broken[:2]) + "), et n'a ni répondu par un MDN d'erreur ni écrit à une boîte aux lettres d'erreur"), "entries": [entry["seq"]]})
        return out

    @staticmethod
    def _raw(tx: Tx, seq: int) -> str:
        row = tx.conn.execute("SELECT json_extract(data, '$.raw') FROM journal WHERE ns = ? AND seq = ?",
                              (tx.ns, seq)).fetchone()
        return str(row[0]) if row and row[0] is not None else ""

    # DMP/CONF.14 ----------------------------------------------------------------------------------
    def _traces(self, tx: Tx, entries: list[dict]) -> list[dict]:
        entries = [e for e in entries if e.get("patient")]
        if not entries:
            return []
        patients = {e["patient"] for e in entries}
        # The world's traces, per (patient, action, document): their times, in order, each usable once.
        pool: dict[tuple, list[float]] = defaultdict(list)
        for (data,) in tx.conn.execute("SELECT data FROM traces WHERE ns = ? ORDER BY seq", (tx.ns,)):
            trace = json.loads(data)
            if trace.get("patient") not in patients:
                continue
            ts = _ts(trace.get("time"))
            if ts is not None:
                document = None if trace.get("action") in UNDOCUMENTED_ACTIONS else trace.get("document")
                pool[(trace["patient"], trace.get("action"), document)].append(ts)
        fed_invisible = self._fed_invisible(tx, patients)
        missing: dict[tuple, list[int]] = defaultdict(list)
        shown: dict[str, Counter] = defaultdict(Counter)
        shown_entries: dict[str, list[int]] = defaultdict(list)
        for entry in entries:
            patient, operation = entry["patient"], entry["operation"]
            ts = _ts(entry.get("time"))
            expected = [TRACED_ACTIONS[operation]]
            if operation == "TD2.1" and entry.get("document") in fed_invisible:
                expected.append(("invisibilisation",))
            for actions in expected:
                document = None if actions[0] in UNDOCUMENTED_ACTIONS else entry.get("document")
                hit = self._take(pool, patient, actions, document, ts)
                if hit is None:
                    missing[(patient, operation, "/".join(actions))].append(entry["seq"])
                else:
                    shown[patient][hit] += 1
                    shown_entries[patient].append(entry["seq"])
        out: list[dict] = []
        for (patient, operation, actions), seqs in missing.items():
            out.append({**finding(RULE_TRACES, f"{operation} on {patient}'s DMP left no {actions} access trace "
                                  f"({len(seqs)} time{'s' if len(seqs) > 1 else ''})", "error",
                                  fr=f"{operation} sur le DMP de {patient} n'a laissé aucune trace d'accès {actions} ({len(seqs)} fois)"),
                        "entries": sorted(seqs)})
        for patient in sorted(shown):
            counts = ", ".join(f"{n} {action}" for action, n in sorted(shown[patient].items()))
            total = sum(shown[patient].values())
            out.append({**finding(RULE_TRACES, f"{patient}: the DPI must be able to show {total} access "
                                  f"trace{'s' if total > 1 else ''} of these exchanges (user, document, time, "
                                  f"action): {counts}", "info",
                                  fr=f"{patient} : le DPI doit pouvoir afficher {total} trace{'s' if total > 1 else ''} d'accès de ces échanges (utilisateur, document, date, action) : {counts}"), "entries": sorted(set(shown_entries[patient]))})
        return out

    @staticmethod
    def _take(pool: dict[tuple, list[float]], patient: str, actions: tuple[str, ...], document: str | None,
              ts: float | None) -> str | None:
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

    @staticmethod
    def _fed_invisible(tx: Tx, patients: set[str]) -> set[str]:
        """Unique ids of the documents fed invisible (first metadata version hiding them from the patient or
        the legal representatives): their feed also traces an invisibilisation."""
        out = set()
        for patient in patients:
            for row in tx.select("documents", patient=patient):
                if row.get("version") == 1 and set(row.get("confidentiality") or []) & set(INVISIBLE):
                    out.add(row.get("unique_id"))
        return out
