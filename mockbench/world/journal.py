"""The timeline: one bounded journal of everything that crossed a door.

Bounded by count and by bytes; the oldest entries are dropped first and counted, so that a bench left
running for days keeps a flat memory and disk footprint (WireMock's unbounded journal is what to avoid).
Entries are written in the transaction of the request they describe, so that a scenario transition
triggered by an entry fires in that same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .store import Tx

if TYPE_CHECKING:
    from .world import World

CHANNELS = ("dmp", "pfi", "mss", "oidc", "annuaire", "control")
DIRECTIONS = ("in", "out")
VERDICTS = ("accepted", "refused", "error")
SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class JournalLimits:
    max_entries: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    raw_bytes: int = 64 * 1024       # a raw message is truncated to this many bytes


def finding(rule: str, message: str, severity: str = "warning", *, fr: str | None = None) -> dict:
    """A finding: `rule` is the stable machine code, `message` the English text (CI scripts read it),
    `fr` its French translation, stored as `message_fr` and shown to users (issue 19)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    out = {"rule": rule, "severity": severity, "message": message}
    if fr is not None:
        out["message_fr"] = fr
    return out


JournalHook = Callable[[Tx, dict], None]

# JSON leaves these bytes of a string as they are (ensure_ascii=False); `_json_string` escapes the others.
_JSON_PLAIN = bytes(b for b in range(256) if b >= 0x20 and b not in (0x22, 0x5C))
_JSON_SHORT = ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\r", b"\\r"), (b"\n", b"\\n"), (b"\t", b"\\t"))
_LARGE_RAW = 4096


def entry_json(entry: dict) -> str:
    """The entry as `json.dumps(entry, separators=(",", ":"), ensure_ascii=False)` writes it, the same text,
    with a large raw message escaped by byte replacements: the standard library's escaping of a 30 KiB HL7
    message character by character was most of the journal's cost per PFI message."""
    raw = entry.get("raw")
    if not isinstance(raw, str) or len(raw) < _LARGE_RAW:
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    escaped = _json_string(raw)
    if escaped is None:
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    keys = list(entry)
    at = keys.index("raw")
    parts = []
    if at:
        parts.append(json.dumps({k: entry[k] for k in keys[:at]}, separators=(",", ":"), ensure_ascii=False)[1:-1])
    parts.append('"raw":' + escaped)
    if at + 1 < len(keys):
        parts.append(json.dumps({k: entry[k] for k in keys[at + 1:]}, separators=(",", ":"),
                                ensure_ascii=False)[1:-1])
    return "{" + ",".join(parts) + "}"


def _json_string(text: str) -> str | None:
    """`text` as a JSON string (quotes included), when its only characters to escape are backslash, quote,
    CR, LF and tab; None otherwise (other control characters: the caller lets json escape them)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate: json writes it as it is, bytes cannot
        return None
    special = data.translate(None, _JSON_PLAIN)
    if special.strip(b'\\"\r\n\t'):
        return None
    for char, escape in _JSON_SHORT:
        if char in special:
            data = data.replace(char, escape)
    return '"' + data.decode("utf-8") + '"'


class Journal:
    def __init__(self, world: World, limits: JournalLimits | None = None) -> None:
        self.world = world
        self.limits = limits or JournalLimits()
        self.hooks: list[JournalHook] = []            # run inside the transaction (scenario engine)
        # Run on each entry before it is stored, in the same transaction: they may add findings to
        # entry["findings"] (the conformance advisor), so that the stored entry and the hooks see them.
        self.annotators: list[JournalHook] = []
        self.listeners: list[Callable[[dict], None]] = []  # run after commit (log lines, live views)

    def append(
        self,
        tx: Tx,
        channel: str,
        operation: str,
        *,
        direction: str = "in",
        actor: str = "",
        patient: str | None = None,
        patient_ins: str | None = None,
        document: str | None = None,
        verdict: str = "accepted",
        code: str | None = None,
        findings: Iterable[dict] = (),
        raw: bytes | str = b"",
        ref: str | None = None,
    ) -> dict:
        if channel not in CHANNELS:
            raise ValueError(f"unknown journal channel {channel!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}")
        raw_bytes = raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
        size = len(raw_bytes)
        kept = raw_bytes[: self.limits.raw_bytes]
        # The key columns alone: no need to decode the patient's record for its id or INS.
        if patient is None and patient_ins:
            row = tx.conn.execute("SELECT id FROM patients WHERE ns = ? AND ins = ? LIMIT 1",
                                  (tx.ns, patient_ins)).fetchone()
            patient = row[0] if row else None
        elif patient is not None and patient_ins is None:
            row = tx.conn.execute("SELECT ins FROM patients WHERE ns = ? AND id = ? LIMIT 1",
                                  (tx.ns, patient)).fetchone()
            patient_ins = row[0] if row else None
        entry: dict[str, Any] = {
            "seq": tx.next_seq("journal"),
            "time": self.world.clock.now_iso(),
            "channel": channel,
            "operation": operation,
            "direction": direction,
            "actor": actor,
            "patient": patient,
            "patient_ins": patient_ins,
            "document": document,
            "verdict": verdict,
            "code": code,
            "findings": list(findings),
            "raw": kept.decode("utf-8", "replace"),
            "raw_truncated": size > len(kept),
            "size": size,
            "ref": ref,
        }
        for annotate in list(self.annotators):
            annotate(tx, entry)
        stored = len(kept) + 256
        tx.put_json("journal", entry_json(entry), seq=entry["seq"], time=entry["time"], channel=channel,
                    operation=operation, patient=patient, size=stored)
        self._account(tx, stored)
        for hook in list(self.hooks):
            hook(tx, entry)
        for listener in list(self.listeners):
            tx.after_commit(lambda listener=listener: listener(entry))
        return entry

    def _account(self, tx: Tx, added: int) -> None:
        stats = tx.meta_get("journal:stats", {"count": 0, "bytes": 0, "dropped": 0})
        stats["count"] += 1
        stats["bytes"] += added
        max_n, max_b = self.limits.max_entries, self.limits.max_bytes
        if stats["count"] > max_n or stats["bytes"] > max_b:
            # Drop down to nine tenths of the bounds at once, so that the cost is amortized.
            keep_n, keep_b = max_n - max_n // 10, max_b - max_b // 10
            n = b = 0
            last = None
            cursor = tx.conn.execute("SELECT seq, size FROM journal WHERE ns = ? ORDER BY seq", (tx.ns,))
            for seq, size in cursor:
                if stats["count"] - n <= keep_n and stats["bytes"] - b <= keep_b:
                    break
                n, b, last = n + 1, b + size, seq
            cursor.close()
            if last is not None:
                tx.conn.execute("DELETE FROM journal WHERE ns = ? AND seq <= ?", (tx.ns, last))
                stats["count"] -= n
                stats["bytes"] -= b
                stats["dropped"] += n
        tx.meta_set("journal:stats", stats)

    def stats(self, tx: Tx) -> dict:
        return tx.meta_get("journal:stats", {"count": 0, "bytes": 0, "dropped": 0})

    def query(
        self,
        tx: Tx,
        *,
        channel: str | None = None,
        operation: str | None = None,
        patient: str | None = None,
        since: int | None = None,
        until_time: str | None = None,
        since_time: str | None = None,
        limit: int = 1000,
    ) -> list[dict]:
        sql = ["SELECT data FROM journal WHERE ns = ?"]
        params: list[Any] = [tx.ns]
        if channel:
            sql.append("AND channel = ?")
            params.append(channel)
        if operation:
            sql.append("AND operation = ?")
            params.append(operation)
        if patient:
            sql.append("AND patient = ?")
            params.append(patient)
        if since is not None:
            sql.append("AND seq > ?")
            params.append(int(since))
        if since_time:
            sql.append("AND time >= ?")
            params.append(since_time)
        if until_time:
            sql.append("AND time <= ?")
            params.append(until_time)
        sql.append("ORDER BY seq LIMIT ?")
        params.append(int(limit))
        return [json.loads(r[0]) for r in tx.conn.execute(" ".join(sql), params)]
