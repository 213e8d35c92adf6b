"""The PFI's outbound queue to the DPI's MLLP listener (ZAMs, and the MDMs of mails received), durable in the
world's store (issue 17, point 1).

A message due to the DPI is a row of the store's `outbox` table, written in the transaction that makes it due
(the inbound message's, the mail delivery's): once that transaction committed, the message survives a kill -9
or a SIGTERM and is delivered at least once after any restart. The sender sends the oldest pending message
first and waits for its ACK before the next one (HL7 v2 original-mode ordering: a T10 must not overtake its
T02). Each attempt is journaled: a failed one as `pfi OUTBOX` (verdict error, the reason and the next
attempt's time), the outcome under the message's own operation (`ZAM^Z01`, `MDM^T02`...): accepted on MSA-1
AA/CA, refused on AE/AR, error when it was given up. A failed attempt is retried with a doubling backoff
(`outbound_backoff` up to `outbound_backoff_max`); a message the DPI refuses (AE/AR: trans-cda-r2
profils-messages.md, "Acquittement": AR is "rejeté pour une raison circonstancielle", which the DPI decides,
not the sender), or that could not be delivered within `outbound_attempts` attempts or `outbound_expiry`
seconds, ends `dead` with its reason: listed by `GET /_bench/pfi/outbox`, never dropped silently. Delivered
messages leave the table (their journal entry is the record); dead ones are kept up to `DEAD_KEPT`.

A row: id (order), state (pending | dead), due (epoch seconds of the next attempt); its data: operation,
payload (base64), patient_ins, document, ref, created (epoch seconds), attempts, last_error, reason, findings
(those known when it was queued, for its journal entry) and, for an MDM made from a mail received, inbound
(the mail's id and mailbox): the DPI's ACK to it is checked (`inspect`) and a refusal goes back to the mail's
sender (`tell_sender`) in the transaction that journals the outcome, after its entry (trans-cda-mss/).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...world.journal import finding
from ...world.outbox import trim_dead
from ...world.store import UNAVAILABLE, Tx
from . import hl7 as wire
from .mllp import MllpClient, MllpFramingError

if TYPE_CHECKING:
    from ...world.world import World
    from .door import PfiSettings

log = logging.getLogger("mockbench.pfi")

DEAD_KEPT = 1000           # dead rows kept for the control API; older ones go (each was journaled)
STORE_RETRY = 1.0          # seconds before the sender reads the store again after it failed (a full disk)
IDLE_POLL = 2.0            # seconds between looks at an empty queue: what another process or a restore put there
ROW_FIELDS = ("id", "state", "operation", "patient_ins", "document", "ref", "created", "attempts", "next_attempt",
              "last_error", "reason", "size")


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ZAM_ACK_RULE = "PFI/ZAM-ACK"


def zam_ack_findings(zam: bytes, answer: bytes) -> list[dict]:
    """The DPI's ACK to a business acknowledgement, against trans-cda-r2/profils-messages.md "Message
    d'acquittement technique des accusés métiers": the ACK of the guide's ACK section (MSA-2 the ZAM's MSH-10)
    with MSH-9 `ACK^Z01^ACK`, `ACK^Z02^ACK` or `ACK^Z03^ACK` after the ZAM's event."""
    try:
        sent = wire.parse(zam)
        ack = wire.parse(answer)
    except wire.Hl7Reject as exc:
        return [finding(ZAM_ACK_RULE, f"the DPI's answer to the ZAM cannot be read: {exc.text}", "error",
                        fr=f"la réponse du DPI au ZAM est illisible : {exc.text}")]
    out = []
    event = sent.message_type[1]
    want = f"ACK^{event}^ACK"
    got = "^".join(ack.message_type).rstrip("^")
    if got != want:
        out.append(finding(ZAM_ACK_RULE, f"MSH-9 of the DPI's ACK is {got or '(empty)'}, not {want} (the ACK of a "
                           f"ZAM^{event} names its event)", "error",
                           fr=f"MSH-9 de l'accusé de réception du DPI vaut {got or '(vide)'}, et non {want} (l'accusé d'un ZAM^{event} nomme son événement)"))
    if ack.get("MSA", 2) != sent.control_id:
        out.append(finding(ZAM_ACK_RULE, f"MSA-2 of the DPI's ACK is {ack.get('MSA', 2) or '(empty)'}, not the "
                           f"ZAM's MSH-10 {sent.control_id}", "error",
                           fr=f"MSA-2 de l'accusé de réception du DPI vaut {ack.get('MSA', 2) or '(vide)'}, et non le MSH-10 du ZAM {sent.control_id}"))
    return out


class Outbox:
    def __init__(self, world: World, settings: PfiSettings, *, clock: Callable[[], float] = time.time,
                 inspect: Callable[[bytes], tuple[list[dict], str | None]] | None = None,
                 tell_sender: Callable[[Tx, dict, str, str | None], None] | None = None,
                 endpoint: Callable[[Tx], tuple[str, int] | None] | None = None) -> None:
        self.world = world
        self.settings = settings
        self.clock = clock
        self.inspect = inspect            # the DPI's ACK to an inbound MDM -> (findings, refusal or None)
        self.tell_sender = tell_sender    # (tx, inbound, refusal, ref): the mail's sender told of the refusal
        self.endpoint = endpoint or (lambda tx: settings.dpi)   # the DPI's listener now (None: wait)
        self._wake: Callable[[], None] = lambda: None

    def wake(self) -> None:
        """Look at the queue now (the listener changed)."""
        self._wake()

    # In the transaction that makes a message due ----------------------------------------------------
    def add(self, tx: Tx, payload: bytes, operation: str, meta: dict, *, delay: float = 0.0) -> None:
        """Queue `payload` for the DPI; `delay`: not before so many seconds (a fault rule's delayed ZAM,
        world/faults.py; the queue keeps its order, so what follows waits too)."""
        now = self.clock() + delay
        row = {"id": tx.next_seq("pfi-outbox"), "state": "pending", "operation": operation,
               "payload": base64.b64encode(payload).decode("ascii"), "patient_ins": meta.get("patient_ins"),
               "document": meta.get("document"), "ref": meta.get("ref"), "created": now, "attempts": 0,
               "due": now, "last_error": None, "reason": None, "size": len(payload),
               "findings": list(meta.get("findings") or []), "inbound": meta.get("inbound")}
        if tx.count("outbox", state="pending") >= self.settings.outbound_queue:
            self._die(tx, row, "error", "OUTBOX_FULL", f"the outbound queue already holds "
                      f"{self.settings.outbound_queue} messages for the DPI (outbound_queue)", payload)
            return
        tx.put("outbox", row, id=row["id"], state="pending", due=now)
        tx.after_commit(lambda: self._wake())

    # Read by the control API -----------------------------------------------------------------------------
    def rows(self, tx: Tx, state: str | None = None, limit: int = 1000) -> list[dict]:
        where: dict[str, Any] = {"state": state} if state else {}
        return [self.view(r) for r in tx.select("outbox", order="id", limit=limit, **where)]

    def counts(self, tx: Tx) -> dict[str, int]:
        return {state: tx.count("outbox", state=state) for state in ("pending", "dead")}

    @staticmethod
    def view(row: dict) -> dict:
        out = {k: row.get(k) for k in ROW_FIELDS}
        out["created"] = _iso(row.get("created"))
        out["next_attempt"] = _iso(row.get("due")) if row.get("state") == "pending" else None
        return out

    # The sender, on the door's event loop --------------------------------------------------------------
    async def run(self) -> None:
        """Send pending messages, oldest first, until cancelled (the door stops)."""
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(wakeup.set)
        self._wake = wake
        failing = False   # an unexpected failure is logged once, until the sender works again
        unrecorded = 0    # attempts in a row whose outcome could not be stored
        try:
            while True:
                wakeup.clear()
                try:
                    row = await asyncio.to_thread(self._next)
                except UNAVAILABLE:   # the store logs a full disk, or another process's write lock, once
                    await asyncio.sleep(STORE_RETRY)
                    continue
                except Exception:
                    if not failing:
                        log.exception("the PFI outbox cannot be read; trying again every %g s", STORE_RETRY)
                    failing = True
                    await asyncio.sleep(STORE_RETRY)
                    continue
                failing = False
                if row is None:
                    try:
                        async with asyncio.timeout(IDLE_POLL):
                            await wakeup.wait()
                    except TimeoutError:
                        pass
                    continue
                wait = row["due"] - self.clock()
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await wakeup.wait()
                    except TimeoutError:
                        pass
                    continue
                outcome = await self._attempt(base64.b64decode(row["payload"]), row.pop("_to"))
                try:
                    await asyncio.to_thread(self._record, row, *outcome)
                    unrecorded = 0
                except Exception as exc:
                    # Delivered or not, the row stays pending and is sent again (at least once), after a wait
                    # that grows as the backoff does, so that a full disk does not flood the DPI with copies.
                    if not isinstance(exc, UNAVAILABLE):
                        log.exception("the outcome of PFI outbox #%s could not be recorded; it stays pending",
                                      row["id"])
                    unrecorded += 1
                    await asyncio.sleep(min(STORE_RETRY * 2 ** (unrecorded - 1), self.settings.outbound_backoff_max))
        finally:
            self._wake = lambda: None

    def _next(self) -> dict | None:
        """The oldest pending message with the listener it goes to (`_to`), after giving up those past
        outbound_expiry (a read when none is); None while no listener is set: the queue waits for one."""
        with self.world.read() as tx:
            endpoint = self.endpoint(tx)
            if endpoint is None:
                return None
            rows = tx.select("outbox", state="pending", order="id", limit=1)
            if rows:
                rows[0]["_to"] = endpoint
        expiry = self.settings.outbound_expiry
        if not rows or expiry is None or rows[0]["created"] > self.clock() - expiry:
            return rows[0] if rows else None
        with self.world.transaction() as tx:
            limit = self.clock() - expiry
            for row in tx.select("outbox", state="pending", order="id"):
                if row["created"] > limit:
                    break
                self._die(tx, row, "error", "DPI_UNREACHABLE",
                          f"not delivered within {expiry:g} s (outbound_expiry) after {row['attempts']} "
                          f"attempt(s); last: {row['last_error'] or 'none'}")
            rows = tx.select("outbox", state="pending", order="id", limit=1)
        if rows:
            rows[0]["_to"] = endpoint
        return rows[0] if rows else None

    async def _attempt(self, payload: bytes, dpi: tuple[str, int]) -> tuple[str, str | None, str, bytes | None]:
        """One delivery: ("delivered", None, note, answer), ("refused", code, reason, answer) or
        ("failed", code, reason, answer or None)."""
        s = self.settings
        client = MllpClient(s.limits)
        try:
            await client.connect(*dpi, timeout=s.outbound_timeout)
            answer = await client.send(payload, timeout=s.outbound_timeout)
        except TimeoutError:
            return "failed", "DPI_TIMEOUT", f"no ACK within {s.outbound_timeout:g} s", None
        except (OSError, ConnectionError, MllpFramingError) as exc:
            return "failed", "DPI_UNREACHABLE", str(exc) or type(exc).__name__, None
        finally:
            await client.close()
        try:
            code = wire.parse(answer).get("MSA", 1)
        except wire.Hl7Reject as exc:
            return "failed", "DPI_ACK_UNREADABLE", f"the DPI's answer is not HL7: {exc.text}", answer
        if code in ("AA", "CA"):
            return "delivered", None, f"acknowledged {code}", answer
        return "refused", f"DPI_{code or 'NO_MSA'}", f"the DPI answered {code or 'without MSA-1'}", answer

    def _record(self, row: dict, outcome: str, code: str | None, note: str, answer: bytes | None = None) -> None:
        """The attempt's outcome and its journal entry, in one transaction."""
        checked: list[dict] = []
        refusal = None
        if row.get("inbound") and answer is not None and outcome != "failed" and self.inspect is not None:
            checked, refusal = self.inspect(answer)
        elif str(row.get("operation", "")).startswith("ZAM^") and answer is not None and outcome != "failed":
            checked = zam_ack_findings(base64.b64decode(row["payload"]), answer)
        with self.world.transaction() as tx:
            current = tx.get("outbox", id=row["id"])
            if current is None or current.get("created") != row["created"] or current["state"] != "pending":
                return   # a reset emptied the outbox meanwhile: the message belonged to the world before
            attempts = current["attempts"] + 1
            current.update(attempts=attempts, last_error=None if outcome == "delivered" else note)
            payload = base64.b64decode(current["payload"])
            current["findings"] = [*(current.get("findings") or []), *checked]
            if outcome == "delivered":
                tx.delete("outbox", id=current["id"])
                self._journal(tx, current, current["operation"], "accepted", None, current["findings"], payload)
            else:
                if outcome == "refused":
                    self._die(tx, current, "refused", code, note, payload)
            if outcome != "failed":
                if refusal and self.tell_sender is not None:   # after the MDM's own entry
                    self.tell_sender(tx, current["inbound"], refusal, current.get("ref"))
                return
            s = self.settings
            if s.outbound_attempts is not None and attempts >= s.outbound_attempts:
                self._die(tx, current, "error", code, f"no answer after {attempts} attempts ({note})", payload)
                return
            delay = min(s.outbound_backoff * 2 ** (attempts - 1), s.outbound_backoff_max)
            current["due"] = self.clock() + delay
            tx.put("outbox", current, id=current["id"], state="pending", due=current["due"])
            self._journal(tx, current, "OUTBOX", "error", code, [finding(
                "PFI/OUTBOUND", f"attempt {attempts} to send {current['operation']} (outbox #{current['id']}) "
                f"failed: {note}; next attempt in {delay:g} s", "warning",
                fr=f"la tentative {attempts} d'envoi de {current['operation']} (file sortante n°{current['id']}) a échoué : {note} ; prochaine tentative dans {delay:g} s")], b"")

    def _die(self, tx: Tx, row: dict, verdict: str, code: str | None, reason: str, payload: bytes = b"") -> None:
        row.update(state="dead", reason=f"{code}: {reason}" if code else reason, due=None)
        tx.put("outbox", row, id=row["id"], state="dead", due=None)
        self._journal(tx, row, row["operation"], verdict, code,
                      [*(row.get("findings") or []), finding("PFI/OUTBOUND", reason, "error",
                                                             fr=f"envoi abandonné ({code or verdict}) : {reason}")],
                      payload or base64.b64decode(row["payload"]))
        trim_dead(tx, DEAD_KEPT)

    def _journal(self, tx: Tx, row: dict, operation: str, verdict: str, code: str | None, findings: list[dict],
                 payload: bytes) -> None:
        dpi = self.endpoint(tx)
        self.world.journal.append(
            tx, "pfi", operation, direction="out", actor="{}:{}".format(*dpi) if dpi else "",
            patient_ins=row.get("patient_ins"), document=row.get("document"), verdict=verdict, code=code,
            findings=findings, raw=payload, ref=row.get("ref"))

    def retry(self, tx: Tx, message_id: int) -> dict[str, Any] | None:
        """A dead message put back in the queue (POST /_bench/pfi/outbox/{id}/retry); None when unknown."""
        row = tx.get("outbox", id=message_id)
        if row is None:
            return None
        if row["state"] == "dead":
            now = self.clock()
            row.update(state="pending", due=now, created=now, attempts=0, reason=None)
            tx.put("outbox", row, id=row["id"], state="pending", due=now)
            tx.after_commit(lambda: self._wake())
        return self.view(row)
