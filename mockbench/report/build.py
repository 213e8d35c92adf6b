"""The evidence report as data: the loaded scenario, its steps with their verdicts and the journal entries
that decided them (raw messages pretty-printed), its transitions, the world before (as seeded) and after
(now), and the conformance findings.

Reading the report changes nothing. A step still pending is shown as the run's finish would leave it
(`failed`, "not observed", with the nearest miss; ARCHITECTURE.md, "Scenarios") and marked
`not_observed`, but the bench keeps it pending: a report taken mid-run (the dashboard's link, a Ctrl-C in
`mockbench scenario run`) does not end the run, and `POST /_bench/steps/finish` remains the one call that
does.

Bounded: the timeline lists at most `ReportLimits.timeline` entries, at most `ReportLimits.detailed` are
printed in full, and each printed message is cut (pretty.py); the report says where it cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..world.message_lookup import by_message_id
from ..world.store import Tx
from ..world.summary import world_summary
from .pretty import PrettyLimits, pretty_raw

if TYPE_CHECKING:
    from ..scenarios.engine import ScenarioEngine
    from ..world.world import World

REPORT_VERSION = 1
ENTRY_FIELDS = ("seq", "time", "channel", "operation", "direction", "actor", "patient", "patient_ins", "document",
                "verdict", "code", "findings", "size", "raw_truncated", "ref", "fault")


@dataclass(frozen=True)
class ReportLimits:
    timeline: int = 2000          # journal entries listed (one line each, no raw)
    detailed: int = 60            # entries printed in full: those deciding steps first, then those with findings
    findings: int = 500           # finding groups listed
    mail_bytes: int = 8 * 1024 * 1024   # a mail the journal cut is read whole from its mailbox up to this size
    pretty: PrettyLimits = PrettyLimits()


def build_report(world: World, engine: ScenarioEngine, *, limits: ReportLimits | None = None,
                 bench: dict | None = None) -> dict:
    """The report of what the bench saw, as JSON-able data. `bench`: what to say about the bench itself
    (version, URL). One read transaction: a consistent view that never holds a door's write."""
    limits = limits or ReportLimits()
    with world.read() as tx:
        state = engine.loaded(tx)
        spec = (state or {}).get("spec") or {}
        steps = _steps(engine, tx, spec)
        stats = world.journal.stats(tx)
        timeline = world.journal.query(tx, limit=limits.timeline + 1)
        capped = len(timeline) > limits.timeline
        timeline = timeline[: limits.timeline]
        findings = _findings(world, tx)
        wanted = _detailed_seqs(steps, findings, limits.detailed)
        # The raw messages are read here; printing them waits until the transaction is over, so that the
        # doors are not kept waiting on the store while a large mail is parsed.
        sources = [_source(world, tx, e, limits.mail_bytes) for e in _entries(world, tx, wanted)]
        report = {
            "report_version": REPORT_VERSION,
            "generated_at": world.clock.now_iso(),
            "bench": bench or {},
            "scenario": None if not state else {
                "id": state.get("id"), "title": state.get("title"), "requirement": state.get("requirement"),
                "description": (spec.get("description") or "").strip() or None, "source": state.get("source"),
                "loaded_at": _iso(state.get("loaded_at")),
            },
            "outcome": _outcome(steps),
            "steps": steps,
            "transitions": _transitions(world, engine, tx, spec),
            "entries": [],
            "entries_capped": len(wanted) < len(_all_wanted(steps, findings)),
            "timeline": [{k: e.get(k) for k in ENTRY_FIELDS} for e in timeline],
            "timeline_capped": capped,
            "journal": {"count": stats["count"], "dropped": stats["dropped"]},
            "world": {"before": engine.before(tx) if state else None, "after": world_summary(world, tx)},
            "findings": findings[: limits.findings],
            "findings_capped": len(findings) > limits.findings,
            # the injected faults that fired (world/faults.py): what was not a genuine outcome
            "faults": world.faults.fired(tx),
        }
    report["entries"] = [_detail(entry, raw, source, limits.pretty) for entry, raw, source in sources]
    return report


def report_filename(scenario: str | None, fmt: str, when: datetime | None = None) -> str:
    """mockbench-report-<scenario>-<UTC time>.<fmt>, the scenario id reduced to safe file-name characters."""
    when = when or datetime.now(UTC)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", scenario or "sans-scenario").strip("-.") or "sans-scenario"
    return f"mockbench-report-{name}-{when.strftime('%Y%m%d-%H%M%S')}.{fmt}"


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _steps(engine: ScenarioEngine, tx: Tx, spec: dict) -> list[dict]:
    by_id = {s["id"]: s for s in spec.get("steps", [])}
    out = []
    for step in engine.finished_steps(tx):
        s = by_id.get(step["id"], {})
        out.append({
            "id": step["id"], "say": step.get("say", ""), "expect": s.get("expect"),
            "verdict": s.get("verdict", "accepted"), "status": step["status"], "reason": step.get("reason"),
            "reason_fr": step.get("reason_fr"), "reason_code": step.get("reason_code"),
            "problems": list(step.get("problems") or []), "nearest_seq": step.get("nearest_seq"),
            "decided_at": step.get("decided_at"), "entries": list(step.get("entries") or []),
            "not_observed": bool(step.get("not_observed")),
        })
    return out


def _outcome(steps: list[dict]) -> str | None:
    if not steps:
        return None
    return "passed" if all(s["status"] == "passed" for s in steps) else "failed"


def _findings(world: World, tx: Tx) -> list[dict]:
    """The conformance advisor's findings (checks/advisor.py), as GET /_bench/findings gives them."""
    return list(world.advisor.findings(tx))


_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _all_wanted(steps: list[dict], findings: list[dict]) -> list[int]:
    seqs: dict[int, None] = {}
    for step in steps:
        seqs.update(dict.fromkeys(step["entries"]))
        if step.get("nearest_seq"):   # what the software sent instead of what a step expected
            seqs[step["nearest_seq"]] = None
    for f in sorted(findings, key=lambda f: _SEVERITY_ORDER.get(f.get("severity") or "", 3)):
        seqs.update(dict.fromkeys(f.get("entries") or []))
    return list(seqs)


def _detailed_seqs(steps: list[dict], findings: list[dict], cap: int) -> list[int]:
    return _all_wanted(steps, findings)[:cap]


def _entries(world: World, tx: Tx, seqs: list[int]) -> list[dict]:
    found = []
    for seq in sorted(seqs):
        page = world.journal.query(tx, since=seq - 1, limit=1)
        if page and page[0]["seq"] == seq:
            found.append(page[0])
    return found


def _source(world: World, tx: Tx, entry: dict, mail_bytes: int) -> tuple[dict, str | bytes, str]:
    """(entry, what to print, where it comes from): the journal's raw, or for a mail the journal cut (and
    not larger than `mail_bytes`), the whole message its mailbox kept."""
    if entry.get("raw_truncated") and entry["channel"] == "mss" and entry.get("ref") and \
            (entry.get("size") or 0) <= mail_bytes:
        stored = _stored_mail(world, tx, entry["ref"], entry.get("size"))
        if stored is not None:
            return entry, stored, "mailbox"
    return entry, entry.get("raw") or "", "journal"


def _detail(entry: dict, raw: str | bytes, source: str, limits: PrettyLimits) -> dict:
    out = {k: entry.get(k) for k in ENTRY_FIELDS}
    out["raw"] = entry.get("raw") or ""
    out["pretty"] = pretty_raw(raw, entry["channel"], limits)
    out["pretty_source"] = source
    if isinstance(entry.get("response"), str):   # the bench's answer, kept beside the request (issue 18 point 12)
        out["response"] = entry["response"]
        out["response_truncated"] = bool(entry.get("response_truncated"))
        out["response_size"] = entry.get("response_size") or 0
        out["response_pretty"] = pretty_raw(entry["response"], entry["channel"], limits)
    return out


def _stored_mail(world: World, tx: Tx, message_id: str, size: int | None) -> bytes | None:
    """The whole message a mailbox kept, for a mail the journal truncated (same Message-ID and size)."""
    for stored in by_message_id(tx, message_id, limit=5):
        try:
            raw = world.mss.raw(tx, stored["id"])
        except Exception:  # noqa: BLE001 - evidence falls back to the journal's copy
            continue
        if size is None or len(raw) == size:
            return raw
    return None


def _transitions(world: World, engine: ScenarioEngine, tx: Tx, spec: dict) -> list[dict]:
    by_id = {t["id"]: t for t in spec.get("transitions", [])}
    fired_lines = world.journal.query(tx, channel="control", operation="transition", limit=1000)
    out = []
    for t in engine.transitions(tx):
        line = next((e for e in fired_lines if (e.get("raw") or "").startswith(f"{t['id']} (")), None)
        out.append({
            "id": t["id"], "say": t.get("say", ""), "when": t.get("when"), "do": by_id.get(t["id"], {}).get("do", []),
            "fired": bool(t.get("fired")), "fired_at": t.get("fired_at"), "count": t.get("count", 0),
            "error": t.get("error"), "what": line.get("raw") if line else None, "entry": line["seq"] if line else None,
        })
    return out


__all__ = ["REPORT_VERSION", "ReportLimits", "build_report", "report_filename"]
