"""The timeline: one bounded journal of everything that crossed a door.

Bounded by count and by bytes; the oldest entries are dropped first and counted, so that a bench left
running for days keeps a flat memory and disk footprint (WireMock's unbounded journal is what to avoid).
Entries are written in the transaction of the request they describe, so that a scenario transition
triggered by an entry fires in that same transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ..formats.findings import SEVERITIES as SEVERITIES  # one shape for every finding, re-exported
from ..formats.findings import finding as finding
from . import jsontext
from .store import Tx

if TYPE_CHECKING:
    from .world import World

CHANNELS = ("dmp", "pfi", "mss", "oidc", "annuaire", "control")
DIRECTIONS = ("in", "out")
VERDICTS = ("accepted", "refused", "error")


TRIM_ENTRIES = 256            # at most this many entries dropped by one append past the bound
TRIM_BYTES = 4 * 1024 * 1024  # ... and about this many bytes (more only when one entry is larger)


@dataclass(frozen=True)
class JournalLimits:
    max_entries: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    raw_bytes: int = 64 * 1024       # a raw message is truncated to this many bytes


JournalHook = Callable[[Tx, dict], None]

# JSON leaves these bytes of a string as they are (ensure_ascii=False); `_json_string` escapes the others.
_JSON_PLAIN = bytes(b for b in range(256) if b >= 0x20 and b not in (0x22, 0x5C))
_JSON_SHORT = ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\r", b"\\r"), (b"\n", b"\\n"), (b"\t", b"\\t"))
_LARGE_RAW = 4096
_LARGE_KEYS = ("raw", "response")


def entry_json(entry: dict) -> str:
    """The entry as `json.dumps(entry, separators=(",", ":"), ensure_ascii=False)` writes it, the same text,
    with a large raw message or response escaped by byte replacements: the standard library's escaping of a
    30 KiB HL7 message character by character was most of the journal's cost per PFI message. orjson writes
    most entries (world/jsontext.py); these replacements are for those it would not write the same."""
    text = jsontext.orjson_dumps(entry)
    if text is not None:
        return text
    escaped = {}
    for key in _LARGE_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and len(value) >= _LARGE_RAW:
            text = _json_string(value)
            if text is not None:
                escaped[key] = text
    if not escaped:
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    # Each large value stands in as a random token while json writes the rest, then takes its place.
    token = secrets.token_hex(8)
    text = json.dumps({k: (f"{token}{k}" if k in escaped else v) for k, v in entry.items()}, separators=(",", ":"),
                      ensure_ascii=False)
    for key, value in escaped.items():
        text = text.replace(f'"{token}{key}"', value, 1)
    return text


def entry_json_utf8(entry: dict) -> str | bytes:
    """`entry_json(entry)`, as the UTF-8 bytes orjson writes when it writes the entry (Tx.put_json stores them
    as the same text): decoding them, then SQLite encoding the text back, was a tenth of a TD3.1's
    instructions with its 54 KiB response (issue 21)."""
    data = jsontext.orjson_dumps_utf8(entry)
    return entry_json(entry) if data is None else data


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
        fault: str | None = None,
        response: bytes | str | None = None,
    ) -> dict:
        """Journal one exchange. `response` is what the bench answered on the door's wire (the ACK, the SOAP
        response or fault, the SMTP reply, the HTTP body), kept to `raw_bytes` like `raw` (issue 18 point 12);
        None when the door has no answer to record (then the entry has no `response` field)."""
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
        if fault is not None:   # the id of the fault rule this exchange met (world/faults.py)
            entry["fault"] = fault
        if response is not None:
            kept_response = self._bounded(response)
            entry["response"], entry["response_truncated"], entry["response_size"] = kept_response
        for annotate in list(self.annotators):
            annotate(tx, entry)
        stored = len(kept) + 256 + len(entry.get("response") or "")
        # actor and verdict as columns too: a check reads them without decoding the entry (set_response leaves
        # them as they are).
        tx.put_json("journal", entry_json_utf8(entry), seq=entry["seq"], time=entry["time"], channel=channel,
                    operation=operation, patient=patient, size=stored, actor=entry["actor"],
                    verdict=entry["verdict"])
        self._account(tx, stored)
        for hook in list(self.hooks):
            hook(tx, entry)
        for listener in list(self.listeners):
            tx.after_commit(partial(listener, entry))
        return entry

    def _bounded(self, data: bytes | str) -> tuple[str, bool, int]:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        kept = raw[: self.limits.raw_bytes]
        return kept.decode("utf-8", "replace"), len(raw) > len(kept), len(raw)

    def set_response(self, tx: Tx, entry: dict, response: bytes | str) -> None:
        """Record the answer of an entry appended earlier in the same transaction, for a door that builds its
        answer after journaling the request (the stored row and the dict the listeners get both change)."""
        before = len(entry.get("response") or "")
        entry["response"], entry["response_truncated"], entry["response_size"] = self._bounded(response)
        added = len(entry["response"]) - before
        tx.conn.execute("UPDATE journal SET data = ?, size = size + ? WHERE ns = ? AND seq = ?",
                        (entry_json(entry), added, tx.ns, entry["seq"]))
        stats = tx.meta_get("journal:stats", {"count": 0, "bytes": 0, "dropped": 0})
        stats["bytes"] += added
        tx.meta_set("journal:stats", stats)

    def _account(self, tx: Tx, added: int) -> None:
        stats = tx.meta_get("journal:stats", {"count": 0, "bytes": 0, "dropped": 0})
        stats["count"] += 1
        stats["bytes"] += added
        max_n, max_b = self.limits.max_entries, self.limits.max_bytes
        if stats["count"] > max_n or stats["bytes"] > max_b:
            # Drop below the bounds by a slack at once, so that the cost is amortized: a tenth of them, but at most
            # TRIM_ENTRIES entries and TRIM_BYTES, so that no one append pays for 10,000 deletions (issue 21:
            # a 56 ms spike once every 10,000 requests at the default bound).
            keep_n = max_n - min(max_n // 10, TRIM_ENTRIES)
            keep_b = max_b - min(max_b // 10, TRIM_BYTES)
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
        return [jsontext.loads(r[0]) for r in tx.conn.execute(" ".join(sql), params)]
