"""DMP/CONF.14: the DPI traces its own accesses to the DMP and lets them be extracted; the extract is compared,
action by action, with the accesses the bench's DMP traced.

The seed's requirement (design DOMAIN.md section 6): "access traces: user, document, time, action, including
invisibilisation and remise en visibilité". The DPI keeps them in its own traces; a user exports them (CSV or
JSON) and `POST /_bench/traces/check` reads that extract.

The extract, CSV (UTF-8 with or without BOM, `;` or `,` as the header line shows, names compared without case,
accents or punctuation) or JSON (`{"traces": [...]}` or a bare list of objects with the keys in brackets):

| column | JSON key | required | what |
|---|---|---|---|
| `Date` (`Horodatage`, `Date et heure`) | `time` | yes | ISO 8601 (`2026-12-06T21:48:50+01:00`, without offset: Europe/Paris) or `JJ/MM/AAAA HH:MM[:SS]` (Europe/Paris) |
| `Utilisateur` (`Professionnel`, `IDNPS`) | `user` | yes | the user who acted: IDNPS (the VIHF NameID), RPPS, or the scenario's id |
| `Patient` (`INS`) | `patient` | yes | the patient's INS (or the scenario's id) |
| `Document` (`Identifiant du document`) | `document` | no | the document's unique id (empty for a search) |
| `Action` | `action` | yes | the bench's trace action names, case and accents free: alimentation, remplacement, consultation, telechargement, masquage, demasquage, invisibilisation, remise en visibilite, suppression, archivage, desarchivage, autorisation, retrait autorisation |

What the extract is compared with: the DMP traces recorded since the scenario was loaded (`since`, the seeding
excluded), of the professionals (and PFI devices) of the structures the extract's users belong to (or of
`structure` when given). Each bench trace is paired with the first unpaired extract row of the same patient,
user, action and document; a paired row whose time is more than `TIME_TOLERANCE` seconds off the DMP's is a
finding too. Each trace the extract lacks, and each row the DMP did not trace, is named in one DMP/CONF.14
finding. The check is journaled (control `trace_check`), accepted when every trace pairs.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..formats import table as csvtable
from . import errors
from .clock import parse_time
from .journal import finding
from .model import TRACE_ACTIONS, Trace
from .store import Tx

if TYPE_CHECKING:
    from .world import World

RULE = "DMP/CONF.14"
MAX_BYTES = 1024 * 1024
MAX_ROWS = 10_000
MAX_FIELD = 256
TIME_TOLERANCE = 300            # seconds between the DPI's clock and the DMP's for one access
NAMED = 50                      # at most this many missing or extra traces named one by one

COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("date", "horodatage", "date et heure", "date heure", "heure", "time"),
    "user": ("utilisateur", "professionnel", "idnps", "user", "identifiant utilisateur"),
    "patient": ("patient", "ins", "ins du patient"),
    "document": ("document", "identifiant du document", "id document", "uniqueid"),
    "action": ("action", "type d action"),
}
HEADER_HELP = "Date; Utilisateur; Patient; [Document]; Action"


class TraceExtractError(ValueError):
    """What is wrong with the extract, with the line (CSV, 1 is the header) or item (JSON, from 1) it is on."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


@dataclass
class Row:
    where: str                  # "line 3" or "item 2"
    time: datetime
    user: str
    patient: str
    document: str
    action: str


_norm = csvtable.fold


def _action(value: str, where: str) -> str:
    action = _norm(value).replace(" ", "_")
    if action not in TRACE_ACTIONS:
        raise TraceExtractError(where, f"Action {value!r} is not one of {', '.join(TRACE_ACTIONS)}")
    return action


def _time(value: str, where: str) -> datetime:
    v = value.strip()
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?", v)
    try:
        if m:
            day, month, year, hour, minute, second = (int(x or 0) for x in m.groups())
            when = datetime(year, month, day, hour, minute, second)
        else:
            when = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise TraceExtractError(where, f"Date {value!r} is not a time: ISO 8601 or JJ/MM/AAAA HH:MM:SS") from None
    if when.tzinfo is None:
        try:
            from zoneinfo import ZoneInfo
            when = when.replace(tzinfo=ZoneInfo("Europe/Paris"))
        except Exception:   # no time zone database: UTC
            when = parse_time(when.isoformat())
    return when


def _row(where: str, values: dict[str, Any]) -> Row:
    for key, name in (("time", "Date"), ("user", "Utilisateur"), ("patient", "Patient"), ("action", "Action")):
        if not str(values.get(key) or "").strip():
            raise TraceExtractError(where, f"{name} is empty")
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise TraceExtractError(where, f"{key} must be a text")
        if value and len(value) > MAX_FIELD:
            raise TraceExtractError(where, f"{key} is longer than {MAX_FIELD} characters")
    return Row(where, _time(values["time"], where), values["user"].strip(), values["patient"].strip(),
               (values.get("document") or "").strip(), _action(values["action"], where))


def parse_extract(data: bytes, kind: str) -> list[Row]:
    """The extract's rows; `kind` is `csv` or `json`. TraceExtractError names the line or item."""
    try:
        text = csvtable.decode(data, max_bytes=MAX_BYTES, what="extract")
    except csvtable.TableError as exc:
        raise TraceExtractError("", exc.message) from None   # JSON has no lines to name: said of the whole extract
    return _parse_json(text) if kind == "json" else _parse_csv(text)


def _parse_json(text: str) -> list[Row]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise TraceExtractError("", f"the JSON cannot be read: {exc}") from None
    except RecursionError:      # "[[[[..." nested deeper than the parser's stack
        raise TraceExtractError("", "the JSON is nested too deeply") from None
    items = body.get("traces") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise TraceExtractError("", 'send {"traces": [...]} or a list of traces')
    if len(items) > MAX_ROWS:
        raise TraceExtractError("", f"more than {MAX_ROWS} traces")
    rows = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise TraceExtractError(f"item {i}", "a trace is an object with time, user, patient, document, action")
        unknown = sorted(set(item) - set(COLUMNS))
        if unknown:
            raise TraceExtractError(f"item {i}", f"unknown key {unknown[0]!r}; keys: {', '.join(COLUMNS)}")
        rows.append(_row(f"item {i}", item))
    return rows


def _parse_csv(text: str) -> list[Row]:
    try:
        table = csvtable.read(text, COLUMNS, header_help=HEADER_HELP)
        missing = [k for k in ("time", "user", "patient", "action") if k not in table.columns]
        if missing:
            raise TraceExtractError("line 1", f"missing column(s) {', '.join(missing)}; expected {HEADER_HELP}")
        return [_row(f"line {line}", {k: record[i] for k, i in table.columns.items()})
                for line, record in table.records(max_rows=MAX_ROWS)]
    except csvtable.TableError as exc:
        raise TraceExtractError(f"line {exc.line}", exc.message) from None


def _resolve(world: World, tx: Tx, row: Row) -> tuple[str, str, str, str | None]:
    """(patient id, professional id, document unique id, why unknown or None)."""
    patient, user, document, unknown = row.patient, row.user, row.document, None
    try:
        patient = world.directory.patient(tx, row.patient).id
    except errors.WorldError:
        unknown = f"no patient {row.patient}"
    try:
        user = world.directory.professional(tx, row.user).id
    except errors.WorldError:
        unknown = unknown or f"no professional {row.user}"
    if document:
        try:
            document = world.dmp.current(tx, document).unique_id
        except errors.WorldError:
            pass
    return patient, user, document, unknown


def _say(action: str, document: str | None, user: str, patient: str) -> str:
    return f"{action}{f' of {document}' if document else ''} by {user} on {patient}'s DMP"


def _say_fr(action: str, document: str | None, user: str, patient: str) -> str:
    return f"{action}{f' sur {document}' if document else ''} par {user} dans le DMP de {patient}"


def _why_fr(unknown: str | None) -> str:
    if not unknown:
        return "le DMP n'a tracé aucun accès de ce genre"
    if unknown.startswith("no patient "):
        return "aucun patient " + unknown[len("no patient "):]
    if unknown.startswith("no professional "):
        return "aucun professionnel " + unknown[len("no professional "):]
    return unknown


def compare(world: World, tx: Tx, rows: list[Row], *, since: int = 0, structure: str | None = None) -> dict:
    resolved = [(row, *_resolve(world, tx, row)) for row in rows]
    if structure:
        structures = {world.directory.structure(tx, structure).id}
    else:
        structures = set()
        for _row, _, user, _, unknown in resolved:
            if not unknown:
                structures.add(world.directory.professional(tx, user).structure)
    bench = [t for t in (Trace.from_dict(r) for r in tx.select("traces", order="seq"))
             if t.seq > since and t.actor_kind in ("professional", "device") and t.structure in structures]
    waiting: dict[tuple, deque[int]] = {}      # (patient, user, document, action) -> unpaired rows, in order
    for i, (row, patient, user, document, unknown) in enumerate(resolved):
        if unknown is None:
            waiting.setdefault((patient, user, document, row.action), deque()).append(i)
    unpaired = set(range(len(resolved)))
    missing: list[dict] = []
    late: list[dict] = []
    matched = 0
    for trace in bench:
        queue = waiting.get((trace.patient, trace.actor, trace.document or "", trace.action))
        pair = queue.popleft() if queue else None
        said = _say(trace.action, trace.document, trace.actor, trace.patient)
        said_fr = _say_fr(trace.action, trace.document, trace.actor, trace.patient)
        if pair is None:
            missing.append({"seq": trace.seq, "time": trace.time, "patient": trace.patient, "user": trace.actor,
                            "document": trace.document, "action": trace.action, "mode": trace.mode,
                            "message": f"the extract lacks the {said} at {trace.time} (the DMP traced it)",
                            "message_fr": f"l'extraction n'a pas l'accès {said_fr} du {trace.time} (le DMP l'a "
                                          "tracé)"})
            continue
        unpaired.remove(pair)
        matched += 1
        row = resolved[pair][0]
        off = abs(row.time - parse_time(trace.time))
        if off > timedelta(seconds=TIME_TOLERANCE):
            late.append({"where": row.where, "message": f"{row.where}: the {said} is dated {row.time.isoformat()}, "
                         f"the DMP traced it at {trace.time} ({int(off.total_seconds())} s apart)",
                         "message_fr": f"{row.where} : l'accès {said_fr} est daté du {row.time.isoformat()}, le DMP "
                                       f"l'a tracé le {trace.time} ({int(off.total_seconds())} s d'écart)"})
    extra: list[dict] = []
    for i in sorted(unpaired):
        row, patient, user, document, unknown = resolved[i]
        why = unknown or "the DMP traced no such access"
        extra.append({"where": row.where, "patient": patient, "user": user, "document": document or None,
                      "action": row.action, "message": f"{row.where}: {_say(row.action, document, user, patient)} "
                      f"at {row.time.isoformat()}: {why}",
                      "message_fr": f"{row.where} : {_say_fr(row.action, document, user, patient)} le "
                                    f"{row.time.isoformat()} : {_why_fr(unknown)}"})
    differences = [*missing, *extra, *late]
    messages = [d["message"] for d in differences]
    findings = [finding(RULE, d["message"], "error", fr=d["message_fr"]) for d in differences[:NAMED]]
    if len(messages) > NAMED:
        findings.append(finding(RULE, f"and {len(messages) - NAMED} more differences", "error",
                                fr=f"et {len(messages) - NAMED} autres différences"))
    return {"verdict": "refused" if messages else "accepted", "traces": len(bench), "rows": len(rows),
            "matched": matched, "structures": sorted(structures), "missing": missing, "extra": extra,
            "time_differences": late, "findings": findings}


def check(world: World, tx: Tx, data: bytes, kind: str, *, since: int = 0, structure: str | None = None,
          actor: str = "") -> dict:
    """Parse, compare and journal (channel control, operation trace_check) in the caller's transaction.
    TraceExtractError for an extract that cannot be read (nothing is journaled: nothing was checked)."""
    rows = parse_extract(data, kind)
    result = compare(world, tx, rows, since=since, structure=structure)
    entry = world.journal.append(tx, "control", "trace_check", actor=actor, verdict=result["verdict"],
                                 code=None if result["verdict"] == "accepted" else "TRACE_MISMATCH",
                                 findings=result["findings"], raw=data)
    result["entry"] = entry["seq"]
    return result
