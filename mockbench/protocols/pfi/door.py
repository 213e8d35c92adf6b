"""The PFI door: HL7 v2 over MLLP, both directions.

Inbound, each frame is read (mllp.py), parsed and checked for itself (hl7.py, messages.py), applied to
the world in one transaction, and acknowledged only after that transaction committed. What is wrong with
the message itself is a technical ACK AE/AR; what the DMP or the patient's identity refuses is an AA now and
a ZAM^Z01 error later (to the DPI's listener when one is configured) and, in every case, a journal entry.

MSSanté: a message with DESTMSSANTEPS=Y and/or DESTMSSANTEPAT=Y is also sent as a real MSSanté mail through
the world (mail.py builds it: IHE_XDM.ZIP, ANS subject, X-MSS-* headers), in the same transaction as its other
effects: one mail to the PRT RCT professionals' addresses, one to the patient's `<INS>@patient.mssante.fr`,
from the sender professional's MSSanté address (or a mailbox of the sender's structure; neither: a finding
and no mail). Each mail is an `mss` DELIVER journal entry (ref = its Message-ID); the Message-ID is mapped to
the HL7 message in the world store (meta `pfi-mail:<Message-ID>`), so the answers still map after a restart.
An unknown recipient does not change the technical ACK (AA): it is a journal finding and a ZAM^Z02 N with
SMTP code 550. The door listens to the world's MAIL_DSN and MAIL_MDN events: a DSN is a ZAM^Z02 N (550), an
MDN a ZAM^Z03 (Y, or N with the MDN's code^label) when ACK_LECTURE_MSS=Y or the MDN reports an error.
Delivery in the bench is immediate, so ACK_RECEPTION=Y gets its ZAM^Z02 Y right after the commit, for each
recipient except those whose behaviour bounces (their DSN makes the Z02 N instead).

Inbound mail (PFI -> DPI, [CDA-MSS]): a mail delivered to a `hospital` mailbox that carries an IHE_XDM.ZIP
becomes one MDM^T02 / T10 / T04 per document (inbound.py), MSH-21 `1.1^CISIS_CDA_HL7_LPS`, with an extra OBX
carrying the mail (Message-ID, subject, base64 body); a package that cannot be read is an error entry.

Outbound, ZAMs and those MDMs go to the DPI's MLLP listener (--dpi-mllp HOST:PORT) from a queue: each waits
for the DPI's ACK, is retried with a bound, and is journaled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...formats.mime import header_summary
from ...formats.xdm import XdmError, read_package
from ...world import errors, events
from ...world.journal import finding
from ...world.model import Actor
from ...world.store import Tx
from ..loop import ConnectionCap, DoorTasks, LoopThread
from . import hl7 as wire
from . import inbound as inbound_mail
from . import mail
from .errors import ZamRefusal, _hl7, zam_error
from .messages import ConsentMessage, DocumentMessage, check_header, read_consent, read_document
from .mllp import STREAM_LIMIT, MllpClient, MllpFramingError, MllpLimits, MllpReader, write_frame

if TYPE_CHECKING:
    from ...bench import Bench

log = logging.getLogger("mockbench.pfi")

INLINE_BYTES = 256 * 1024   # messages up to this size are handled on the event loop's thread
DMP_OPERATION = {"submit": "TD2.1", "replace": "TD2.1", "delete": "TD3.3c"}
MAIL_KEY = "pfi-mail:"       # world meta key prefix: a sent mail's Message-ID -> the HL7 message it carried
SMTP_550 = "550^Boîte aux lettres indisponible^SMTPERRORCODE"


@dataclass(frozen=True)
class PfiSettings:
    host: str = "127.0.0.1"
    port: int = 2575
    dpi: tuple[str, int] | None = None       # the DPI's MLLP listener, for ZAMs
    limits: MllpLimits = MllpLimits()
    outbound_timeout: float = 10.0           # for the DPI's ACK to one ZAM
    outbound_attempts: int = 5
    outbound_backoff: float = 0.5            # seconds, doubled after each failed attempt
    outbound_queue: int = 10_000
    max_connections: int = 128               # MLLP connections at once; beyond, closed at once (logged)


def parse_endpoint(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--dpi-mllp {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class PfiDoor:
    name = "pfi"

    def __init__(self, bench: Bench, settings: PfiSettings | None = None) -> None:
        self.bench = bench
        self.world = bench.world
        self.settings = settings or PfiSettings()
        self._runner = LoopThread("mockbench-pfi")
        self._net = DoorTasks()
        self._outbox: asyncio.Queue | None = None
        self._unsubscribe: list = []

    # Lifecycle ----------------------------------------------------------------------------------
    def start(self) -> dict[str, int]:
        self._runner.start(lambda loop: self._open(), self._close, port_name="mllp", host=self.settings.host,
                           port=self.settings.port)
        self._unsubscribe = [self.world.events.subscribe(kind, self._on_mail_event)
                             for kind in (events.MAIL_DSN, events.MAIL_MDN)]
        self._unsubscribe.append(self.world.events.subscribe(events.MAIL_DELIVERED, self._on_mail_delivered))
        return {"mllp": self._net.port}

    async def _open(self) -> None:
        # Beyond the cap a connection is closed before a byte is read: an AR needs the message's MSH, and
        # reading it would hold the descriptor the cap protects.
        await self._net.listen(self._serve, self.settings.host, self.settings.port, limit=STREAM_LIMIT,
                               cap=ConnectionCap("mllp", "mllp_max_connections", self.settings.max_connections))
        self._outbox = asyncio.Queue(maxsize=self.settings.outbound_queue)
        self._net.spawn(self._send_outbox())

    async def _close(self) -> None:
        await self._net.close()

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._runner.stop()

    # Inbound ------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        mllp = MllpReader(reader, self.settings.limits)
        try:
            while True:
                try:
                    frame = await mllp.read_frame()
                except MllpFramingError as exc:
                    await asyncio.to_thread(self._framing_error, exc, peer)
                    if not exc.in_sync:
                        return
                    answer = await asyncio.to_thread(self._reject_unreadable, exc)
                    await write_frame(writer, answer)
                    continue
                if frame is None:
                    return
                if len(frame.payload) <= INLINE_BYTES:
                    # On the loop's own thread: world changes are serialized by the store's lock anyway, and
                    # a thread hop per message cost more than the brief wait it spares other connections.
                    answer = self.handle(frame.payload, peer, frame.junk_skipped)
                else:  # a large message must not hold up every other connection while it is parsed
                    answer = await asyncio.to_thread(self.handle, frame.payload, peer, frame.junk_skipped)
                try:
                    # A timeout scope rather than wait_for: no task per ACK (the write is done at once unless the
                    # peer stopped reading).
                    async with asyncio.timeout(self.settings.limits.frame_timeout):
                        await write_frame(writer, answer)
                except TimeoutError:
                    await asyncio.to_thread(self._framing_error, MllpFramingError(
                        "the peer did not read its ACK within the frame timeout"), peer)
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # the door is stopping: end the connection quietly
        except Exception:
            log.exception("PFI connection from %s failed", peer)

    def handle(self, payload: bytes, peer: str = "", junk: int = 0) -> bytes:
        """One inbound message -> the technical ACK to send back, after the world change committed."""
        inbound: wire.Inbound | None = None
        try:
            inbound = wire.parse(payload)
            family = check_header(inbound)
            if junk:
                inbound.findings.append(finding("MLLP/FRAMING", f"{junk} bytes outside an MLLP block were skipped"))
            if family == "ADT":
                return self._consent(read_consent(inbound), payload)
            return self._document(read_document(inbound, family), payload)
        except wire.Hl7Reject as reject:
            if inbound is None:
                inbound = wire.read_header(payload)  # to name MSH-10 in MSA-2 whenever the MSH is readable
            return self._reject(inbound, reject, payload)

    def _reject(self, inbound: wire.Inbound | None, reject: wire.Hl7Reject, payload: bytes) -> bytes:
        with self.world.transaction() as tx:
            ack = wire.build_ack(inbound, reject.ack_code, self._control_id(tx), self._now(),
                                 [wire.ErrorItem(reject.error, reject.text, reject.location)])
            self.world.journal.append(
                tx, "pfi", inbound.operation if inbound else "UNKNOWN", actor=self._sender_app(inbound),
                patient_ins=self._pid_ins(inbound), verdict="refused", code=f"HL7_{reject.error}",
                findings=[*(inbound.findings if inbound else []),
                          finding("HL7/ACK", f"{reject.ack_code} {reject.error}: {reject.text}", "error")],
                raw=payload, ref=inbound.control_id if inbound else None)
        return self._encode(ack, inbound)

    def _reject_unreadable(self, exc: MllpFramingError) -> bytes:
        reject = wire.Hl7Reject("AR", wire.E_OTHER_HL7, f"the MLLP frame was refused: {exc.reason}")
        with self.world.transaction() as tx:
            ack = wire.build_ack(None, reject.ack_code, self._control_id(tx), self._now(),
                                 [wire.ErrorItem(reject.error, reject.text)])
        return ack.encode("utf-8")

    def _framing_error(self, exc: MllpFramingError, peer: str) -> None:
        with self.world.transaction() as tx:
            self.world.journal.append(tx, "pfi", "MLLP", actor=peer, verdict="error", code=f"MLLP_{exc.kind.upper()}",
                                      findings=[finding("MLLP/FRAMING", exc.reason, "error")])

    def _document(self, msg: DocumentMessage, payload: bytes) -> bytes:
        inbound = msg.inbound
        with self.world.transaction() as tx:
            control_id = self._control_id(tx)
            outcome: tuple[str, str | None, list[dict]] | None = None
            zam: wire.ErrorItem | None = None
            if msg.flag("DESTDMP"):
                try:
                    with tx.savepoint():
                        self._apply(tx, msg)
                    outcome = ("accepted", None, [])
                except (errors.WorldError, ZamRefusal) as exc:
                    zam_code, zam = zam_error(exc)
                    outcome = ("refused", exc.code,
                               [finding("PFI/ZAM", f"ZAM^Z01 error {zam_code}: {zam.text}", "error")])
            consent_findings = tx.scratch.pop("findings", [])
            self.world.journal.append(
                tx, "pfi", inbound.operation, actor=msg.sender.idnps, patient_ins=msg.patient.ins or None,
                document=msg.unique_id, verdict="accepted", findings=inbound.findings + msg.findings, raw=payload,
                ref=inbound.control_id)
            if outcome is not None:
                verdict, code, extra = outcome
                self.world.journal.append(
                    tx, "dmp", DMP_OPERATION[msg.action], actor=msg.sender.idnps,
                    patient_ins=msg.patient.ins or None, document=msg.unique_id, verdict=verdict, code=code,
                    findings=consent_findings + extra, ref=inbound.control_id,
                    raw=f"{msg.action} {msg.unique_id} via the PFI (MSH-10 {inbound.control_id})")
                if self.settings.dpi is not None:
                    zam_text = wire.build_zam("Z01", inbound, f"{control_id}Z", self._now(),
                                              success=verdict == "accepted", error=zam)
                    meta = {"patient_ins": msg.patient.ins or None, "document": msg.unique_id,
                            "ref": inbound.control_id}
                    tx.after_commit(lambda: self._queue(zam_text, inbound, "ZAM^Z01", meta))
            if msg.flag("DESTMSSANTEPS") or msg.flag("DESTMSSANTEPAT"):
                self._send_mail(tx, msg)
            ack = wire.build_ack(inbound, "AA", control_id, self._now())
        return self._encode(ack, inbound)

    def _apply(self, tx: Tx, msg: DocumentMessage) -> None:
        """The DMP operation the message asks for, as the PFI performs it for the sender."""
        patient = self._identify(tx, msg)
        prof = self.world.directory.professional(tx, msg.sender.idnps)
        structure = prof.structure
        if msg.sender.finess:
            try:
                structure = self.world.directory.structure(tx, msg.sender.finess).id
            except errors.UnknownStructure:
                pass
        actor = Actor(kind="professional", id=prof.id, structure=structure)
        dmp = self.world.dmp
        if msg.action == "delete":
            dmp.delete(tx, actor, msg.unique_id, patient_key=patient.id, cause=msg.inbound.control_id)
            return
        cda = msg.cda
        meta = {"unique_id": msg.unique_id, "type_code": msg.type_code or (cda.type_code if cda else ""),
                "title": msg.title or (cda.title if cda else ""), "confidentiality": msg.confidentiality,
                "author": prof.id, "author_structure": structure, "format_code": "urn:asip:ci-sis:2010",
                "mime_type": "text/xml"}
        if cda is not None:
            meta["creation_time"] = _iso(cda.effective_time)
        meta = {k: v for k, v in meta.items() if v}
        if msg.action == "replace":
            dmp.replace(tx, actor, patient.id, msg.parent_id, meta, msg.content, cause=msg.inbound.control_id)
        else:
            dmp.submit(tx, actor, patient.id, meta, msg.content, cause=msg.inbound.control_id)

    def _identify(self, tx: Tx, msg: DocumentMessage):
        """The patient by INS, with the checks the guide's ZAM codes 902-905 name."""
        p = msg.patient
        if not p.ins:
            raise ZamRefusal("903", "PID-3 carries no INS")
        if not (p.ins_oid and p.family_name and p.birth_date and p.sex):
            raise ZamRefusal("905", "the INS comes without all its traits (OID, birth name, birth date, sex)")
        try:
            patient = self.world.directory.patient(tx, p.ins)
        except errors.UnknownPatient:
            raise ZamRefusal("902", f"no patient has the INS {p.ins}") from None
        differences = []
        if p.family_name.upper() != patient.family_name.upper():
            differences.append(f"birth name {p.family_name} / {patient.family_name}")
        if p.birth_date != patient.birth_date.replace("-", ""):
            differences.append(f"birth date {p.birth_date} / {patient.birth_date}")
        if p.sex != patient.sex:
            differences.append(f"sex {p.sex} / {patient.sex}")
        if p.ins_oid != patient.ins_oid:
            differences.append(f"INS OID {p.ins_oid} / {patient.ins_oid}")
        if differences:
            raise ZamRefusal("904", "the INS traits differ from the patient's: " + "; ".join(differences))
        return patient

    def _consent(self, msg: ConsentMessage, payload: bytes) -> bytes:
        inbound = msg.inbound
        findings = inbound.findings + msg.findings
        with self.world.transaction() as tx:
            if msg.consultation or msg.feeding_opposition:
                try:
                    self.world.directory.record_consent(tx, msg.patient.ins, consultation=msg.consultation,
                                                        feeding_opposition=msg.feeding_opposition)
                except errors.UnknownPatient:
                    findings.append(finding("PAM.fr/ZFA", f"no patient has the INS {msg.patient.ins or '(none)'}: "
                                            "the consent was not recorded"))
            self.world.journal.append(tx, "pfi", inbound.operation, actor=self._sender_app(inbound),
                                      patient_ins=msg.patient.ins or None, verdict="accepted", findings=findings,
                                      raw=payload, ref=inbound.control_id)
            ack = wire.build_ack(inbound, "AA", self._control_id(tx), self._now())
        return self._encode(ack, inbound)

    # MSSanté ------------------------------------------------------------------------------------
    def _send_mail(self, tx: Tx, msg: DocumentMessage) -> None:
        """The mails DESTMSSANTEPS / DESTMSSANTEPAT ask for, delivered through the world in this transaction."""
        inbound = msg.inbound
        sender, author = self._mail_sender(tx, msg)
        common = {"patient_ins": msg.patient.ins or None, "document": msg.unique_id}
        if sender is None:
            self.world.journal.append(
                tx, "mss", "DELIVER", direction="out", actor=msg.sender.idnps, verdict="error", code="MSS_NO_SENDER",
                findings=[finding("PFI/MSS", f"the sender {msg.sender.idnps} has no MSSanté address and the "
                                  "sender's structure no mailbox: no mail was sent", "error")],
                ref=inbound.control_id, **common)
            return
        info = {"control_id": inbound.control_id, "msh": inbound.text.split("\r", 1)[0], "charset": inbound.charset,
                "ack_reception": msg.flag("ACK_RECEPTION"), "ack_lecture": msg.flag("ACK_LECTURE_MSS"),
                "sender": sender, **common}
        for kind, recipients in mail.recipient_groups(msg):
            known, unknown = [], []
            for address in recipients:
                try:
                    known.append((address, self.world.mss.mailbox_for(tx, address)))
                except errors.UnknownMailbox as exc:
                    unknown.append((address, str(exc)))
            try:
                raw = mail.build_mail(msg, kind=kind, sender=sender, recipients=recipients, author=author)
            except ValueError as exc:   # metadata write_package refuses: the mail cannot be made
                self.world.journal.append(
                    tx, "mss", "DELIVER", direction="out", actor=sender, verdict="error", code="MSS_PACKAGE",
                    findings=[finding("PFI/MSS", f"the IHE_XDM.ZIP cannot be made: {exc}", "error")],
                    ref=inbound.control_id, **common)
                continue
            message_id = header_summary(raw).get("Message-ID", "")
            findings = [finding("PFI/MSS", f"sent for the HL7 message {inbound.control_id} "
                                f"({'DESTMSSANTEPAT' if kind == 'patient' else 'DESTMSSANTEPS'})", "info")]
            findings += [finding("MSS/RCPT", f"550 5.1.1 {text}", "error") for _, text in unknown]
            if known:
                self.world.mss.deliver(tx, sender, [a for a, _ in known], raw, cause=inbound.control_id,
                                       document=msg.unique_id)
                tx.meta_set(MAIL_KEY + message_id, info)
            self.world.journal.append(
                tx, "mss", "DELIVER", direction="out", actor=sender, verdict="accepted" if known else "refused",
                code="SMTP_550" if unknown else None, findings=findings, raw=raw, ref=message_id, **common)
            if self.settings.dpi is None:
                continue
            for address, text in unknown:
                self._queue_zam(tx, inbound, "Z02", info, success=False, address=address,
                                error=wire.ErrorItem(wire.E_APPLICATION, text, application=SMTP_550))
            if msg.flag("ACK_RECEPTION"):
                for address, box in known:
                    if (box.behaviour or {}).get("on_receive") != "bounce":   # its DSN makes a Z02 N
                        self._queue_zam(tx, inbound, "Z02", info, success=True, address=address)

    def _mail_sender(self, tx: Tx, msg: DocumentMessage) -> tuple[str | None, dict]:
        """The sender professional's MSSanté address, else a mailbox of the sender's structure."""
        author = {"idnps": msg.sender.idnps, "family_name": msg.sender.family_name,
                  "given_name": msg.sender.given_name}
        structure = ""
        try:
            prof = self.world.directory.professional(tx, msg.sender.idnps)
        except errors.UnknownProfessional:
            prof = None
        if prof is not None:
            author = {"idnps": prof.idnps, "family_name": prof.family_name, "given_name": prof.given_name}
            if prof.mssante:
                return prof.mssante.lower(), author
            structure = prof.structure or ""
        if msg.sender.finess:
            try:
                structure = self.world.directory.structure(tx, msg.sender.finess).id
            except errors.UnknownStructure:
                pass
        for box in self.world.directory.mailboxes(tx):
            if structure and box.owner == structure and box.type in ("ORG", "APP"):
                return box.address, author
        return None, author

    def _queue_zam(self, tx: Tx, original: wire.Inbound, event: str, info: dict, *, success: bool,
                   address: str = "", error: wire.ErrorItem | None = None) -> None:
        text = wire.build_zam(event, original, f"{self._control_id(tx)}Z", self._now(), success=success,
                              error=error, address=address)
        meta = {"patient_ins": info.get("patient_ins"), "document": info.get("document"),
                "ref": info.get("control_id")}
        tx.after_commit(lambda: self._queue(text, original, f"ZAM^{event}", meta))

    def _on_mail_event(self, event: events.Event) -> None:
        """A DSN or an MDN answering a mail this door sent: ZAM^Z02 / ZAM^Z03 to the DPI."""
        if self.settings.dpi is None or not event.cause or self._runner.loop is None:
            return
        with self.world.transaction() as tx:
            info = tx.meta_get(MAIL_KEY + event.cause)
            if not info:
                return
            try:
                label = info.get("charset") or wire.DEFAULT_ENCODING
                original = wire.parse(info["msh"].encode(wire.CHARSETS.get(label.split("~")[0].strip(), "utf-8"),
                                                         "replace"))
            except wire.Hl7Reject:
                return
            data = event.data
            if event.kind == events.MAIL_DSN:
                try:
                    address = self.world.mss.message(tx, data.get("original") or "").mailbox
                except errors.WorldError:
                    address = ""
                code, _, text = str(data.get("error") or "").partition("^")
                application = f"{_hl7(code)}^{_hl7(text)}^SMTPERRORCODE" if code and text else SMTP_550
                self._queue_zam(tx, original, "Z02", info, success=False, address=address, error=wire.ErrorItem(
                    wire.E_APPLICATION, f"the delivery to {address or 'a recipient'} failed (DSN"
                    + (f": {code} {text})" if code and text else ")"), application=application))
                return
            error = data.get("error")
            if not error and not info.get("ack_lecture"):
                return
            item = None
            if error:
                code, _, text = str(error).partition("^")
                item = wire.ErrorItem(wire.E_APPLICATION, f"the recipient could not integrate the document: {error}",
                                      application=f"{_hl7(code)}^{_hl7(text)}")
            self._queue_zam(tx, original, "Z03", info, success=not error, address=data.get("from", ""), error=item)

    def _on_mail_delivered(self, event: events.Event) -> None:
        """A mail received on a hospital mailbox: each document of its IHE_XDM.ZIP goes to the DPI as an
        MDM^T02 / T10 / T04 of the guide [CDA-MSS] (inbound.py builds it), through the outbound queue."""
        if self.settings.dpi is None or self._runner.loop is None:
            return
        data = event.data or {}
        with self.world.transaction() as tx:
            try:
                box = self.world.directory.mailbox(tx, data.get("mailbox") or "")
                message = self.world.mss.message(tx, data.get("message") or "")
                raw = self.world.mss.raw(tx, message.id)
            except errors.WorldError:
                return
            if box.role != "hospital":
                return
            parsed, package_bytes = inbound_mail.read_mail(raw)
            if package_bytes is None:
                return      # a mail without a package: nothing for the DPI
            message_id = message.message_id or event.cause or ""
            dpi = "{}:{}".format(*self.settings.dpi)
            try:
                package = read_package(package_bytes)
            except XdmError as exc:
                self.world.journal.append(
                    tx, "pfi", "MDM^T02", direction="out", actor=dpi, verdict="error", code=exc.code,
                    findings=[finding("PFI/XDM", f"the IHE_XDM.ZIP of the mail {message_id} on {box.address} cannot "
                                      f"be read: {exc.message}; nothing was sent to the DPI", "error")],
                    raw=raw, ref=message_id)
                return
            mail_info = inbound_mail.Mail(message_id=message_id, subject=message.subject or "",
                                          body=inbound_mail.text_body(parsed), sender=message.sender,
                                          mailbox=box.address)
            person = None
            for prof in self.world.directory.professionals(tx):
                if prof.mssante and prof.mssante.lower() == message.sender.lower():
                    person = {"idnps": prof.idnps, "family_name": prof.family_name,
                              "given_name": prof.given_name}
                    break
            for doc in package.documents:
                if doc.cda is None:
                    self.world.journal.append(
                        tx, "pfi", "MDM^T02", direction="out", actor=dpi, verdict="error", code="XDM_NOT_CDA",
                        document=doc.entry.meta.get("unique_id") or None,
                        findings=[finding("PFI/XDM", f"{doc.path} of the mail {message_id} is not a readable "
                                          "CDA: it was not sent to the DPI", "error")], ref=message_id)
                    continue
                operation, text = inbound_mail.build_mdm(
                    doc, package.action, mail_info, control_id=self._control_id(tx), now=self._now(),
                    receiving=("DPI", box.owner), sender_person=person)
                meta = {"patient_ins": doc.cda.ins[0] if doc.cda.ins else None, "document": doc.cda.unique_id,
                        "ref": message_id}
                tx.after_commit(lambda t=text, o=operation, m=meta: self._queue(t, None, o, m))

    # Outbound -----------------------------------------------------------------------------------
    def _queue(self, text: str, inbound: wire.Inbound | None, operation: str, meta: dict) -> None:
        loop, outbox = self._runner.loop, self._outbox
        if loop is None or outbox is None:
            return
        payload = self._encode(text, inbound)

        def put() -> None:
            try:
                outbox.put_nowait((payload, operation, meta))
            except asyncio.QueueFull:
                self._net.spawn(asyncio.to_thread(self._journal_out, operation, meta, payload, "error",
                                              "OUTBOX_FULL", "the outbound queue is full"))

        loop.call_soon_threadsafe(put)

    async def _send_outbox(self) -> None:
        assert self._outbox is not None
        while True:
            payload, operation, meta = await self._outbox.get()
            verdict, code, note = await self._deliver(payload)
            await asyncio.to_thread(self._journal_out, operation, meta, payload, verdict, code, note)

    async def _deliver(self, payload: bytes) -> tuple[str, str | None, str]:
        s = self.settings
        assert s.dpi is not None
        delay, last = s.outbound_backoff, ""
        for attempt in range(1, s.outbound_attempts + 1):
            client = MllpClient(s.limits)
            try:
                await client.connect(*s.dpi, timeout=s.outbound_timeout)
                answer = await client.send(payload, timeout=s.outbound_timeout)
            except (OSError, TimeoutError, ConnectionError, MllpFramingError) as exc:
                last = f"attempt {attempt}: {exc or type(exc).__name__}"
                await asyncio.sleep(delay)
                delay *= 2
                continue
            finally:
                await client.close()
            try:
                ack = wire.parse(answer)
                code = ack.get("MSA", 1)
            except wire.Hl7Reject as exc:
                return "error", "DPI_ACK_UNREADABLE", f"the DPI's answer is not HL7: {exc.text}"
            if code in ("AA", "CA"):
                return "accepted", None, f"acknowledged {code} after {attempt} attempt(s)"
            return "refused", f"DPI_{code or 'NO_MSA'}", f"the DPI answered {code or 'without MSA'}"
        return "error", "DPI_UNREACHABLE", f"no answer after {s.outbound_attempts} attempts ({last})"

    def _journal_out(self, operation: str, meta: dict, payload: bytes, verdict: str, code: str | None,
                     note: str) -> None:
        with self.world.transaction() as tx:
            self.world.journal.append(
                tx, "pfi", operation, direction="out", actor=self.settings.dpi and "{}:{}".format(*self.settings.dpi),
                patient_ins=meta.get("patient_ins"), document=meta.get("document"), verdict=verdict, code=code,
                findings=[] if verdict == "accepted" else [finding("PFI/OUTBOUND", note, "error")], raw=payload,
                ref=meta.get("ref"))

    # Small things -------------------------------------------------------------------------------
    def _control_id(self, tx: Tx) -> str:
        return f"MB{tx.next_seq('pfi-control')}"

    def _now(self) -> str:
        return self.world.clock.now().strftime("%Y%m%d%H%M%S")

    @staticmethod
    def _encode(text: str, inbound: wire.Inbound | None) -> bytes:
        label = (inbound.charset if inbound else "") or wire.DEFAULT_ENCODING
        return text.encode(wire.CHARSETS.get(label.split("~")[0].strip(), "utf-8"), "replace")

    @staticmethod
    def _sender_app(inbound: wire.Inbound | None) -> str:
        if inbound is None:
            return ""
        return "^".join(x for x in (inbound.value(inbound.msh, 3), inbound.value(inbound.msh, 4)) if x)

    @staticmethod
    def _pid_ins(inbound: wire.Inbound | None) -> str | None:
        if inbound is None or not inbound.segments("PID"):
            return None
        from .messages import read_patient
        try:
            return read_patient(inbound).ins or None
        except wire.Hl7Reject:
            return None


def _iso(hl7_time: str) -> str | None:
    digits = "".join(c for c in hl7_time if c.isdigit())[:14]
    if len(digits) < 8:
        return None
    digits = digits.ljust(14, "0")
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}T{digits[8:10]}:{digits[10:12]}:{digits[12:14]}Z"

