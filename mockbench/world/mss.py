"""MSSanté operations: the mailboxes, the messages they hold, delivery, and how simulated recipients answer.

Addresses come from the world: declared mailboxes; the professionals' MSSanté addresses (a personal
mailbox is made on first use); `<INS>@patient.mssante.fr` for a known patient. Mail to a domain outside
MSSanté lands in the catch-all "outside world" mailbox. A message is kept byte for byte (IMAP gives it back
identical) with a summary of its headers. Delivery to a correspondent (a simulated recipient) runs its
behaviour: integrate (and answer an MDN when asked), fail integration (an error MDN), bounce (a DSN) or
ignore; with `read_after` the MDN waits that long on the virtual clock (pending answers are kept in the
store and sent by the world's tick hook). MDNs and DSNs go back to the sender's mailbox through this same
delivery and are published on the event bus with the id of the message that caused them, for the PFI to
turn into ZAM^Z02 / Z03.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING

from ..checks import verification
from ..formats.mime import addresses, dsn, error_mail, header_summary, mdn
from . import errors, events
from .clock import parse_duration
from .journal import finding
from .model import Mailbox, Message
from .store import Tx

if TYPE_CHECKING:
    from .world import World

PATIENT_DOMAIN = "patient.mssante.fr"
OUTSIDE_MAILBOX = "outside@mockbench.invalid"
BEHAVIOURS = ("integrate", "fail_integration", "bounce", "ignore")
DEFAULT_BOUNCE = "550^5.1.1 mailbox unavailable"   # a bounce's DSN unless the behaviour's error says otherwise
PENDING = "mss:pending"   # store meta: MDNs waiting for their correspondent's read_after delay
INBOX = "INBOX"
UIDVALIDITY = "imap-uidvalidity:"   # store meta: a folder's UIDVALIDITY (IMAP SELECT, STATUS, UIDPLUS)
SEQ = "seq:"               # Tx.next_seq's meta prefix: a folder's UID counter (uid_counter)
FOLDERS = "mss-folders:"  # store meta: the folders a mailbox's reader created (IMAP CREATE), besides INBOX
MAX_FOLDERS = 200
MAX_FOLDER_NAME = 200


def uid_counter(address: str, folder: str = INBOX) -> str:
    """The Tx.next_seq name of a folder's UIDs (RFC 3501 2.3.1.1: per mailbox, strictly ascending)."""
    return f"mss-uid:{address}" if folder == INBOX else f"mss-uid:{address}/{folder}"


def is_mssante(address: str) -> bool:
    domain = address.rpartition("@")[2].lower()
    return domain == "mssante.fr" or domain.endswith(".mssante.fr")


# MSS/CONF.01: only applicative mailboxes use a client certificate, and they should use it.
CERT_TYPES = ("APP",)
TOKEN_TYPES = ("PER", "ORG")    # DOMAIN.md section 3: personal and organisational mailboxes use a PSC token


def app_mailbox_by_password(box_type: str, address: str, *, done: str, done_fr: str, opens: str, opens_fr: str,
                            command: str) -> list[dict]:
    """MSS/CONF.01, the one rule both mail doors apply when a mailbox was opened by something other than its
    certificate: an applicative (APP) mailbox authenticates with its client certificate (STARTTLS, then
    `command`: AUTH EXTERNAL on SMTP, AUTHENTICATE EXTERNAL on IMAP). The bench's password opens it too, for
    convenience, but a DPI that uses it for its APP mailbox would not pass on a real operator: a warning, which
    a scenario step can forbid. `done` / `opens` say it in the door's words, in English and French."""
    if box_type not in CERT_TYPES:
        return []
    return [finding("MSS/CONF.01", f"the applicative mailbox {address} {done}; an APP mailbox {opens} with its "
                    f"client certificate (STARTTLS, then {command})", "warning",
                    fr=f"la boîte aux lettres applicative {address} {done_fr} ; une BAL APP {opens_fr} son "
                       f"certificat client (STARTTLS, puis {command})")]


class Mss:
    def __init__(self, world: World) -> None:
        self.world = world
        # The earliest pending answer's time, cached so that the tick hook costs nothing when none waits;
        # set after the commit that changed the pending list (reload() re-reads it after a restore).
        self._next_due: float | None = None

    # Who opens a mailbox (MSS/CONF.01, DOMAIN.md section 3), for both mail doors ------------------------
    @staticmethod
    def token_type_refusal(box: Mailbox) -> tuple[str, str] | None:
        """(code, reason) when the mailbox's type does not open with an access token (an APP mailbox uses its
        client certificate, MSS/CONF.01), else None."""
        if box.type not in TOKEN_TYPES:
            return ("AUTH_MECHANISM_REFUSED", f"token authentication is for PER and ORG mailboxes; {box.address} "
                    f"is {box.type} (MSS/CONF.01: applicative mailboxes use a client certificate)")
        return None

    def token_refusal(self, tx: Tx, box: Mailbox, professional: str) -> tuple[str, str] | None:
        """Why the access token's professional may not open the mailbox ((code, reason)), or None when it may:
        a PER mailbox, its owner; an ORG mailbox, its structure's members; never an APP mailbox."""
        refused = self.token_type_refusal(box)
        if refused is not None:
            return refused
        if box.type == "PER" and box.owner != professional:
            return ("TOKEN_NOT_OWNER", f"the token's professional {professional or '(none)'} does not own "
                    f"{box.address}")
        if box.type == "ORG":
            structure = self.world.directory.professional(tx, professional).structure if professional else ""
            if not structure or structure != box.owner:
                return ("TOKEN_NOT_MEMBER", f"the token's professional {professional or '(none)'} does not work "
                        f"in {box.owner or '(no structure)'}, which owns {box.address}")
        return None

    # Addresses ----------------------------------------------------------------------------------
    def mailbox_for(self, tx: Tx, address: str) -> Mailbox:
        """The mailbox that receives mail for `address`, made on first use for a professional's address,
        a patient's address, or the outside world. UnknownMailbox for an unknown MSSanté address."""
        address = address.strip().lower()
        directory = self.world.directory
        try:
            return directory.mailbox(tx, address)
        except errors.UnknownMailbox:
            pass
        local, _, domain = address.rpartition("@")
        if not is_mssante(address):
            try:
                return directory.mailbox(tx, OUTSIDE_MAILBOX)
            except errors.UnknownMailbox:
                return directory.add_mailbox(tx, Mailbox(address=OUTSIDE_MAILBOX, type="APP", owner="",
                                                         role="outside"))
        if domain == PATIENT_DOMAIN:
            try:
                patient = directory.patient(tx, local)
            except errors.UnknownPatient:
                raise errors.UnknownMailbox(f"{address}: no patient has the INS {local}") from None
            return directory.add_mailbox(tx, Mailbox(address=address, type="PER", owner=patient.ins,
                                                     role="correspondent"))
        for professional in directory.professionals(tx):
            if professional.mssante.lower() == address:
                return directory.add_mailbox(tx, Mailbox(address=address, type="PER", owner=professional.id,
                                                         role="correspondent"))
        raise errors.UnknownMailbox(f"{address} is not an MSSanté mailbox of this world")

    def set_behaviour(self, tx: Tx, address: str, behaviour: dict) -> Mailbox:
        on_receive = behaviour.get("on_receive", "integrate")
        if on_receive not in BEHAVIOURS:
            raise errors.InvalidRequest(f"on_receive must be one of {', '.join(BEHAVIOURS)}")
        error = behaviour.get("error")
        if error is not None and "^" not in str(error):
            raise errors.InvalidRequest("error is written code^label, as in the MDN's processed/Error")
        if error is not None and on_receive == "bounce" and not re.fullmatch(r"5\d\d", str(error).split("^")[0]):
            raise errors.InvalidRequest("a bounce's error is the DSN's SMTP reply: a 5xx code^text, e.g. "
                                        "552^5.2.2 mailbox full")
        read_after = behaviour.get("read_after")
        if read_after is not None:
            try:
                if parse_duration(read_after) < 0:
                    raise ValueError
            except ValueError:
                raise errors.InvalidRequest("read_after is a duration: 30s, 5m, 1h30m") from None
        mailbox = self.mailbox_for(tx, address)
        mailbox.behaviour = {k: v for k, v in behaviour.items() if k in ("on_receive", "mdn", "error", "read_after")}
        self.world.directory.save_mailbox(tx, mailbox)
        return mailbox

    # Delivery -----------------------------------------------------------------------------------
    def deliver(self, tx: Tx, sender: str, recipients: list[str], raw: bytes, *, findings: list[dict] | None = None,
                cause: str | None = None, behave: bool = True, document: str | None = None) -> list[Message]:
        """Store the message in each recipient's mailbox, then let correspondents answer. All or nothing:
        an unknown MSSanté recipient refuses the whole delivery (the SMTP door checks at RCPT already)."""
        boxes = [self.mailbox_for(tx, r) for r in recipients]
        summary = header_summary(raw)
        # SSI/IE.31: a mail to addresses outside MSSanté is read as an address verification, once per mail.
        outside = [r.strip().lower() for r, b in zip(recipients, boxes, strict=True) if b.role == "outside"]
        verified = verification.check(self.world, tx, sender, list(dict.fromkeys(outside)), raw,
                                      summary.get("Message-ID", "")) if outside and behave else []
        stored = []
        for box in boxes:
            message = Message(
                id=str(uuid.uuid4()), mailbox=box.address, sender=sender.lower(), subject=summary.get("Subject", ""),
                received_at=self.world.clock.now_iso(), size=len(raw), headers=summary,
                uid=tx.next_seq(uid_counter(box.address)), message_id=summary.get("Message-ID", ""),
                recipients=[r.lower() for r in recipients], document=document or "",
                findings=[*(findings or []), *(verified if box.role == "outside" else [])])
            tx.put("messages", message.to_dict(), id=message.id, mailbox=box.address)
            tx.put("mailraw", raw, id=message.id)
            stored.append(message)
            self.world.events.publish(tx, events.Event(events.MAIL_DELIVERED, cause or message.message_id,
                                                       data={"mailbox": box.address, "message": message.id,
                                                             "sender": sender}))
        if behave:
            for box, message in zip(boxes, stored, strict=True):
                if box.role == "correspondent":
                    self._answer(tx, box, message)
        return stored

    def _answer(self, tx: Tx, box: Mailbox, message: Message, *, now: bool = False) -> None:
        behaviour = box.behaviour or {}
        on_receive = behaviour.get("on_receive", "integrate")
        original = message.headers
        wants_mdn = bool(original.get("Disposition-Notification-To")) or bool(behaviour.get("mdn"))
        notify = (addresses(original.get("Disposition-Notification-To", "")) or [message.sender])[0]
        if on_receive == "ignore" or not message.sender:
            return
        if on_receive == "bounce":  # the operator's DSN: at once, whatever read_after says
            error = behaviour.get("error") or DEFAULT_BOUNCE
            code, _, text = error.partition("^")
            enhanced = re.match(r"[245]\.\d{1,3}\.\d{1,3}\b", text)
            report = dsn(original=original, recipient=box.address, to=message.sender,
                         status=enhanced.group(0) if enhanced else f"{code[0]}.0.0", diagnostic=f"{code} {text}")
            self._send_report(tx, "postmaster@mockbench.invalid", message.sender, report, events.MAIL_DSN, message,
                              error=error)
            return
        delay = parse_duration(behaviour["read_after"]) if behaviour.get("read_after") else 0.0
        if not now and (wants_mdn or on_receive == "fail_integration"):
            # an mdn_delay fault rule (faults.py), matched on operation MDN and the answering mailbox
            fired = self.world.faults.decide(tx, "mss", "MDN", actor=box.address, kinds=("mdn_delay",))
            if fired is not None:
                delay += fired.params["seconds"]
        if not now and delay > 0 and (wants_mdn or on_receive == "fail_integration"):
            self._defer(tx, box, message, self.world.clock.timestamp() + delay)
            return
        if on_receive == "fail_integration":
            error = behaviour.get("error") or "I01^Erreur d'intégration du document"
            # the ANS error MDN (trans-cda-mss/struct-msg-mdn.md), as integration_error writes it
            report = mdn(original=original, reporter=box.address, to=notify, error=error,
                         original_recipient=box.address, returned=self.raw(tx, message.id))
            self._send_report(tx, box.address, notify, report, events.MAIL_MDN, message, error=error)
            return
        if wants_mdn:
            report = mdn(original=original, reporter=box.address, to=notify)
            self._send_report(tx, box.address, notify, report, events.MAIL_MDN, message)

    # Answers after read_after ------------------------------------------------------------------------
    def _defer(self, tx: Tx, box: Mailbox, message: Message, due: float) -> None:
        pending = tx.meta_get(PENDING, [])
        pending.append({"due": due, "mailbox": box.to_dict(), "message": message.to_dict()})
        tx.meta_set(PENDING, pending)
        self._schedule(tx, pending)

    def _schedule(self, tx: Tx, pending: list[dict]) -> None:
        next_due = min((p["due"] for p in pending), default=None)
        tx.after_commit(lambda: setattr(self, "_next_due", next_due))

    def on_tick(self, tx: Tx) -> None:
        """A world tick hook: send the answers whose read_after delay the virtual clock has reached, in the
        order they fall due, with the behaviour the correspondent had when the mail arrived."""
        if self._next_due is None or self.world.clock.timestamp() < self._next_due:
            return
        now = self.world.clock.timestamp()
        pending = tx.meta_get(PENDING, [])
        due = sorted((p for p in pending if p["due"] <= now), key=lambda p: p["due"])
        rest = [p for p in pending if p["due"] > now]
        tx.meta_set(PENDING, rest)
        for p in due:
            self._answer(tx, Mailbox.from_dict(p["mailbox"]), Message.from_dict(p["message"]), now=True)
        self._schedule(tx, rest)

    def tick_due(self) -> bool:
        return self._next_due is not None and self.world.clock.timestamp() >= self._next_due

    def pending(self, tx: Tx) -> list[dict]:
        """The answers waiting: when each falls due, from which mailbox, answering which message."""
        return [{"due": p["due"], "mailbox": p["mailbox"]["address"], "message": p["message"]["id"]}
                for p in tx.meta_get(PENDING, [])]

    def reload(self, tx: Tx) -> None:
        self._next_due = min((p["due"] for p in tx.meta_get(PENDING, [])), default=None)

    def _send_report(self, tx: Tx, sender: str, to: str, report: bytes, kind: str, original: Message, *,
                     error: str | None = None) -> None:
        try:
            self.deliver(tx, sender, [to], report, behave=False, cause=original.message_id)
        except errors.UnknownMailbox:
            return  # the sender is not a mailbox of this world: nobody to tell
        self.world.events.publish(tx, events.Event(kind, original.message_id, data={
            "from": sender, "to": to, "original": original.id, "error": error}))
        # What a simulated recipient answers crosses the bench's edge too: it goes in the timeline.
        self.world.journal.append(
            tx, "mss", "MDN" if kind == events.MAIL_MDN else "DSN", direction="out", actor=sender,
            verdict="accepted", code=error.split("^")[0] if error else None, raw=report,
            ref=original.message_id, document=original.document or None)

    def integration_error(self, tx: Tx, mailbox: str, message_id: str, error: str) -> Message:
        """The consumer (the DPI) could not integrate the document a mail delivered to `mailbox` carried:
        tell the mail's sender as trans-cda-mss asks. When the mail asked for one (Disposition-Notification-To),
        an error MDN (struct-msg-mdn.md: `processed/Error: code^libellé`, Original-Message-ID and
        Original-Recipient, the subject `[KO Intégration système !][code] <subject>`, the original mail and its
        attachments returned), published as MAIL_MDN like a correspondent's; otherwise a standard error mail
        (struct-email-standard.md) with the same subject, text and returned attachments. Journaled as `mss` MDN
        or ERROR_MAIL, direction out. Returns the notification as stored in the sender's mailbox."""
        box = self.world.directory.mailbox(tx, mailbox)
        original = self.message(tx, message_id)
        raw = self.raw(tx, message_id)
        headers = original.headers
        notify = addresses(headers.get("Disposition-Notification-To", ""))
        to = notify[0] if notify else original.sender
        if not to:
            raise errors.InvalidRequest(f"the mail {original.message_id or message_id} names no sender to tell")
        if notify:
            recipient = addresses(headers.get("Original-Recipient", "").partition(";")[2]) or [box.address]
            report = mdn(original=headers, reporter=box.address, to=to, error=error, original_recipient=recipient[0],
                         returned=raw)
            kind, operation = events.MAIL_MDN, "MDN"
        else:
            report = error_mail(original=headers, reporter=box.address, to=to, error=error, returned=raw)
            kind, operation = None, "ERROR_MAIL"
        stored = self.deliver(tx, box.address, [to], report, behave=False, cause=original.message_id)
        if kind is not None:
            self.world.events.publish(tx, events.Event(kind, original.message_id, data={
                "from": box.address, "to": to, "original": original.id, "error": error}))
        self.world.journal.append(
            tx, "mss", operation, direction="out", actor=box.address, verdict="accepted", code=error.split("^")[0],
            raw=report, ref=original.message_id, document=original.document or None)
        return stored[0]

    # Reading ------------------------------------------------------------------------------------
    def messages(self, tx: Tx, address: str, folder: str | None = None) -> list[Message]:
        """A mailbox's messages in UID order: of one folder, or of all its folders (`folder` None)."""
        box = self.mailbox_for(tx, address)
        rows = tx.select("messages", mailbox=box.address)
        found = (Message.from_dict(r) for r in rows)
        if folder is not None:
            found = (m for m in found if m.folder == folder)
        return sorted(found, key=lambda m: (m.folder != INBOX, m.folder, m.uid))

    def uids(self, tx: Tx, address: str, folder: str = INBOX) -> list[int]:
        """A folder's UIDs in order, without decoding its messages (an IMAP session checks them on every
        command)."""
        box = self.mailbox_for(tx, address)
        rows = tx.conn.execute("SELECT json_extract(data, '$.uid') FROM messages WHERE ns = ? AND mailbox = ? "
                               "AND coalesce(json_extract(data, '$.folder'), 'INBOX') = ?",
                               (tx.ns, box.address, folder)).fetchall()
        return sorted(int(r[0]) for r in rows)

    def by_uids(self, tx: Tx, address: str, uids: list[int], folder: str = INBOX) -> list[Message]:
        """The messages of a folder with these UIDs, in UID order."""
        if not uids:
            return []
        box = self.mailbox_for(tx, address)
        found: list[Message] = []
        for start in range(0, len(uids), 500):   # SQLite's bound on host parameters
            chunk = uids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = tx.conn.execute(
                f"SELECT data FROM messages WHERE ns = ? AND mailbox = ? AND json_extract(data, '$.uid') IN ({marks}) "
                "AND coalesce(json_extract(data, '$.folder'), 'INBOX') = ?",
                (tx.ns, box.address, *chunk, folder)).fetchall()
            found.extend(Message.from_dict(json.loads(r[0])) for r in rows)
        return sorted(found, key=lambda m: m.uid)

    # UIDs (RFC 3501 2.3.1.1) ---------------------------------------------------------------------------
    def uid_validity(self, tx: Tx, address: str, folder: str = INBOX) -> int:
        """A folder's UIDVALIDITY: constant until the world is reset (a reset restarts the UIDs, so it must
        change), the time it was first asked for."""
        key = UIDVALIDITY + address + ("" if folder == INBOX else "/" + folder)
        value = tx.meta_get(key)
        if value is None:
            value = max(1, int(time.time()) & 0x7FFFFFFF)
            tx.meta_set(key, value)
        return int(value)

    def uid_next(self, tx: Tx, address: str, folder: str, messages: list[Message]) -> int:
        """The UID the folder's next message will get (UIDNEXT), given its present `messages`."""
        counter = int(tx.meta_get(SEQ + uid_counter(address, folder), 0) or 0)
        return max([counter, *(m.uid for m in messages)]) + 1

    # Folders (IMAP CREATE / DELETE / COPY / MOVE / APPEND) ---------------------------------------------
    def folders(self, tx: Tx, address: str) -> list[str]:
        box = self.mailbox_for(tx, address)
        return [INBOX, *tx.meta_get(FOLDERS + box.address, [])]

    def folder(self, tx: Tx, address: str, name: str) -> str:
        """The folder's own name (INBOX is case-insensitive, RFC 3501 5.1); NotFound when there is none."""
        if name.upper() == INBOX:
            return INBOX
        if name in self.folders(tx, address):
            return name
        raise errors.NotFound(f"no folder {name[:80]} in {address}")

    def create_folder(self, tx: Tx, address: str, name: str) -> str:
        box = self.mailbox_for(tx, address)
        name = name.rstrip("/")      # RFC 3501 6.3.3: a trailing hierarchy delimiter names the same folder
        existing = self.folders(tx, box.address)
        if not name or name.upper() == INBOX or name in existing:
            raise errors.InvalidRequest(f"the folder {name[:80] or '(empty)'} already exists")
        if len(name) > MAX_FOLDER_NAME or any(ord(c) < 32 or c in "*%" for c in name) or "//" in name \
                or name.startswith("/"):
            raise errors.InvalidRequest(f"{name[:80]!r} is not a folder name (at most {MAX_FOLDER_NAME} characters, "
                                        "no control characters, no * or %, / between names)")
        if len(existing) > MAX_FOLDERS:
            raise errors.InvalidRequest(f"a mailbox holds at most {MAX_FOLDERS} folders")
        tx.meta_set(FOLDERS + box.address, [*existing[1:], name])
        return name

    def delete_folder(self, tx: Tx, address: str, name: str) -> None:
        box = self.mailbox_for(tx, address)
        folder = self.folder(tx, box.address, name)
        if folder == INBOX:
            raise errors.InvalidRequest("INBOX cannot be deleted (RFC 3501 6.3.4)")
        for message in self.messages(tx, box.address, folder):
            tx.delete("messages", id=message.id)
            tx.delete("mailraw", id=message.id)
        tx.meta_set(FOLDERS + box.address, [f for f in self.folders(tx, box.address)[1:] if f != folder])

    def copy(self, tx: Tx, address: str, messages: list[Message], target: str, *, move: bool = False) \
            -> list[tuple[int, int]]:
        """Copy (or move) messages into another folder of the same mailbox, flags kept (RFC 3501 6.4.7,
        RFC 6851); (source UID, new UID) per message, for COPYUID (RFC 4315)."""
        box = self.mailbox_for(tx, address)
        target = self.folder(tx, box.address, target)
        pairs = []
        for message in messages:
            raw = self.raw(tx, message.id)
            copy = Message.from_dict({**message.to_dict(), "id": str(uuid.uuid4()), "folder": target,
                                      "uid": tx.next_seq(uid_counter(box.address, target))})
            tx.put("messages", copy.to_dict(), id=copy.id, mailbox=box.address)
            tx.put("mailraw", raw, id=copy.id)
            if move:
                tx.delete("messages", id=message.id)
                tx.delete("mailraw", id=message.id)
            pairs.append((message.uid, copy.uid))
        return pairs

    def append(self, tx: Tx, address: str, folder: str, raw: bytes, flags: list[str], received_at: str = "") \
            -> Message:
        """A message the mailbox's reader stores itself (IMAP APPEND, RFC 3501 6.3.11): kept byte for byte,
        not delivered (no recipient behaviour, no event)."""
        box = self.mailbox_for(tx, address)
        folder = self.folder(tx, box.address, folder)
        summary = header_summary(raw)
        message = Message(
            id=str(uuid.uuid4()), mailbox=box.address, sender=(addresses(summary.get("From", "")) or [""])[0],
            subject=summary.get("Subject", ""), received_at=received_at or self.world.clock.now_iso(), size=len(raw),
            headers=summary, uid=tx.next_seq(uid_counter(box.address, folder)), message_id=summary.get("Message-ID", ""),
            flags=sorted(set(flags)), folder=folder)
        tx.put("messages", message.to_dict(), id=message.id, mailbox=box.address)
        tx.put("mailraw", raw, id=message.id)
        return message

    def message(self, tx: Tx, message_id: str) -> Message:
        row = tx.get("messages", id=message_id)
        if row is None:
            raise errors.NotFound(f"no message {message_id}")
        return Message.from_dict(row)

    def raw(self, tx: Tx, message_id: str) -> bytes:
        blob = tx.get_blob("mailraw", id=message_id)
        if blob is None:
            raise errors.NotFound(f"no message {message_id}")
        return blob

    def set_flags(self, tx: Tx, message_id: str, flags: list[str]) -> Message:
        message = self.message(tx, message_id)
        message.flags = sorted(set(flags))
        tx.put("messages", message.to_dict(), id=message.id, mailbox=message.mailbox)
        return message

    def expunge(self, tx: Tx, address: str, folder: str = INBOX, only: set[int] | None = None) -> list[int]:
        """Remove a folder's messages flagged \\Deleted (of those UIDs only, for UID EXPUNGE, RFC 4315);
        returns their UIDs."""
        gone = []
        for message in self.messages(tx, address, folder):
            if "\\Deleted" in message.flags and (only is None or message.uid in only):
                tx.delete("messages", id=message.id)
                tx.delete("mailraw", id=message.id)
                gone.append(message.uid)
        return gone
