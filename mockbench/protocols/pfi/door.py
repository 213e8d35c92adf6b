"""The PFI door: HL7 v2 over MLLP, both directions.

Inbound, each frame is read (mllp.py), parsed and checked for itself (hl7.py, messages.py), applied to
the world in one transaction, and acknowledged only after that transaction committed. What is wrong with
the message itself is a technical ACK AE (AR only when the store is unavailable); what the DMP or the
patient's identity refuses is an AA now and a ZAM^Z01 error later (to the DPI's listener when one is
configured) and, in every case, a journal entry.

MSSanté: a message with DESTMSSANTEPS=Y and/or DESTMSSANTEPAT=Y is also sent as a real MSSanté mail through
the world (mail.py builds it: IHE_XDM.ZIP, ANS subject, X-MSS-* headers), in the same transaction as its other
effects: one mail to the PRT RCT professionals' addresses, one to the patient's `<INS>@patient.mssante.fr`,
from an applicative mailbox (BAL APP, trans-cda-r2/mapping-mss.md): the sender's structure's, else the PFI's
(an APP mailbox of role hospital); none: a finding and no mail. Each mail is an `mss` DELIVER journal entry
(ref = its Message-ID); the Message-ID is mapped to the HL7 message in the world store (meta `pfi-mail:<Message-ID>`), so the answers still map after a restart.
An unknown recipient does not change the technical ACK (AA): it is a journal finding and a ZAM^Z02 N with
SMTP code 550. The door listens to the world's MAIL_DSN and MAIL_MDN events: a DSN is a ZAM^Z02 N (550), an
MDN a ZAM^Z03 (Y, or N with the MDN's code^label) when ACK_LECTURE_MSS=Y or the MDN reports an error.
Delivery in the bench is immediate, so ACK_RECEPTION=Y gets its ZAM^Z02 Y right after the commit, for each
recipient except those whose behaviour bounces (their DSN makes the Z02 N instead).

Inbound mail (PFI -> DPI, [CDA-MSS]): a mail delivered to a `hospital` mailbox that carries an IHE_XDM.ZIP
becomes one MDM^T02 / T10 / T04 per document (inbound.py), MSH-21 `1.1^CISIS_CDA_HL7_LPS`, with an extra OBX
carrying the mail (Message-ID, subject, base64 body); a package that cannot be read is an error entry.

Outbound, ZAMs and those MDMs go to the DPI's MLLP listener from a queue kept in the world's store, written in the transaction that makes them due (outbox.py): each waits for the DPI's ACK, is
retried with backoff, and each attempt is journaled; what cannot be delivered ends dead, with its reason.
The listener is the last one set of: `--dpi-mllp HOST:PORT` at start, a scenario's `dpi: {mllp: HOST:PORT}` when
it is loaded, `PUT /_bench/pfi/dpi` at run time (world/dpi.py: kept in the world's store, which a reset keeps, so
a restarted bench still knows where its queue goes). Without one, nothing is queued for the DPI.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...formats.mime import header_summary, read_mdn
from ...formats.times import dtm
from ...formats.xdm import XdmError, read_package
from ...world import errors, events
from ...world.dpi import clear_dpi, dpi_endpoint, dpi_source, set_dpi
from ...world.dpi import parse_endpoint as parse_endpoint  # the bench reads --dpi-mllp with it
from ...world.faults import Fired
from ...world.journal import finding
from ...world.model import Actor
from ...world.store import UNAVAILABLE, StorageFull, Tx
from ...world.xlock import WriteLockTimeout
from ..context import DoorConfigError, DoorContext
from ..loop import SocketDoor, network_fault
from . import hl7 as wire
from . import inbound as inbound_mail
from . import mail
from .errors import _hl7, unavailable_control_prefix, z01_error, z03_error
from .messages import ConsentMessage, DocumentMessage, check_header, read_consent, read_document
from .mllp import STREAM_LIMIT, MllpFramingError, MllpLimits, MllpReader, write_frame
from .mllp import frame as frame_bytes
from .outbox import Outbox

if TYPE_CHECKING:
    from ...config import Config

log = logging.getLogger("mockbench.pfi")

# the fault kinds (world/faults.py) a message can meet on arrival; the ZAM kinds are met once it is integrated
FAULTS_ON_ARRIVAL = ("delay", "reset", "timeout", "trickle", "ack_ar", "no_ack")
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
    outbound_timeout: float = 10.0           # for the DPI's ACK to one message
    outbound_attempts: int | None = None     # attempts before a message is given up (dead); None: no bound
    outbound_backoff: float = 0.5            # seconds, doubled after each failed attempt...
    outbound_backoff_max: float = 30.0       # ...up to this
    outbound_expiry: float | None = 24 * 3600.0   # seconds a message may wait for the DPI before it is dead
    outbound_queue: int = 10_000             # pending messages at most; beyond, a new one is dead at once
    max_connections: int = 128               # MLLP connections at once; beyond, closed at once (logged)

    @classmethod
    def from_config(cls, host: str, port: int, dpi: tuple[str, int] | None, table: dict,
                    max_connections: int = 128) -> PfiSettings:
        """[doors.pfi] of the config file: the outbound_* settings."""
        names = ("outbound_timeout", "outbound_attempts", "outbound_backoff", "outbound_backoff_max",
                 "outbound_expiry", "outbound_queue")
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}; settings: {', '.join(names)}")
        values: dict = {}
        for name, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number")
            values[name] = int(value) if name in ("outbound_attempts", "outbound_queue") else float(value)
        return cls(host=host, port=port, dpi=dpi, max_connections=max_connections, **values)


def build(context: DoorContext, config: Config) -> PfiDoor:
    """The door from the bench's configuration: --mllp-port, --dpi-mllp, mllp_max_connections, [doors.pfi]."""
    try:
        dpi = parse_endpoint(config.dpi_mllp)
    except ValueError as exc:
        raise DoorConfigError(str(exc)) from None
    try:
        settings = PfiSettings.from_config(config.host, config.mllp_port, dpi, config.doors.get("pfi", {}),
                                           max_connections=config.mllp_max_connections)
    except ValueError as exc:
        raise DoorConfigError(f"[doors.pfi] {exc}") from None
    return PfiDoor(context, settings)


class _InjectedZamError(Exception):
    def __init__(self, fired: Fired) -> None:
        super().__init__(fired.rule)
        self.fired = fired


class PfiDoor(SocketDoor):
    name = "pfi"
    port_name = "mllp"
    cap_setting = "mllp_max_connections"
    thread = "mockbench-pfi"
    stream_limit = STREAM_LIMIT
    # Beyond the cap a connection is closed before a byte is read (no `refusal`): an AR needs the message's
    # MSH, and reading it would hold the descriptor the cap protects.

    def __init__(self, context: DoorContext, settings: PfiSettings | None = None) -> None:
        self.settings = settings or PfiSettings()
        super().__init__(context, host=self.settings.host, port=self.settings.port,
                         max_connections=self.settings.max_connections)
        self.outbox = Outbox(self.world, self.settings, inspect=self._inbound_answered,
                             tell_sender=self._tell_sender, endpoint=self.dpi)
        self._unsubscribe: list = []

    # Lifecycle ----------------------------------------------------------------------------------
    def started(self) -> None:
        # In the transaction that delivers the mail, DSN or MDN: what they make due is queued with them.
        subscribe = self.world.events.subscribe_in_transaction
        self._unsubscribe = [subscribe(kind, self._on_mail_event) for kind in (events.MAIL_DSN, events.MAIL_MDN)]
        self._unsubscribe.append(subscribe(events.MAIL_DELIVERED, self._on_mail_delivered))

    async def open(self, loop: asyncio.AbstractEventLoop) -> None:
        await super().open(loop)
        # Always: the listener may be set later (a scenario, PUT /_bench/pfi/dpi); without one it waits.
        self._net.spawn(self.outbox.run())

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer)

    def stopping(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def endpoints(self) -> dict:
        """Its section of /_bench/endpoints: where the DPI sends, and where the ZAMs and MDMs go."""
        with self.world.read() as tx:   # --dpi-mllp, or what a scenario or PUT /_bench/pfi/dpi set since
            dpi = self.dpi_view(tx)
        urls = self.context.urls
        return {"host": urls.socket_host(), "port": urls.published_port("mllp"), "dpi_listener": dpi["mllp"],
                "dpi_listener_source": dpi["source"]}

    def dpi(self, tx: Tx) -> tuple[str, int] | None:
        return dpi_endpoint(tx, self.settings.dpi)

    def set_dpi(self, tx: Tx, mllp: str | None, source: str = "control") -> dict:
        """Where the queue goes from now on (ValueError when `mllp` is not HOST:PORT); the queue is woken.
        `source` "config": back to `--dpi-mllp`."""
        if source == "config":
            clear_dpi(tx)
        else:
            set_dpi(tx, mllp, source)
        tx.after_commit(self.outbox.wake)
        return self.dpi_view(tx)

    def dpi_view(self, tx: Tx) -> dict:
        endpoint = self.dpi(tx)
        return {"mllp": "{}:{}".format(*endpoint) if endpoint else None,
                "source": dpi_source(tx) or ("config" if self.settings.dpi else None)}

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
                fired: list[Fired] = []
                if len(frame.payload) <= INLINE_BYTES:
                    # On the loop's own thread: world changes are serialized by the store's lock anyway, and
                    # a thread hop per message cost more than the brief wait it spares other connections.
                    answer = self.handle(frame.payload, peer, frame.junk_skipped, fired)
                else:  # a large message must not hold up every other connection while it is parsed
                    answer = await asyncio.to_thread(self.handle, frame.payload, peer, frame.junk_skipped, fired)
                if fired:
                    if fired[0].kind == "no_ack":
                        continue   # the connection stays open; no ACK is ever sent for that message
                    if not await network_fault(fired[0], reader, writer, frame_bytes(answer)):
                        return
                    continue
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

    def handle(self, payload: bytes, peer: str = "", junk: int = 0, faults: list[Fired] | None = None) -> bytes:
        """One inbound message -> the technical ACK to send back, after the world change committed.

        trans-cda-r2/profils-messages.md, ACK section, MSA-1: AA once the change committed; AE for what is
        wrong in the message itself (Hl7Reject); AR, "rejeté pour une raison circonstancielle, il peut être
        réémis plus tard", only when the bench's store cannot take the message now (nothing was committed)."""
        try:
            return self._handle(payload, peer, junk, faults)
        except UNAVAILABLE as exc:
            return self._unavailable(wire.read_header(payload), exc)

    def _unavailable(self, inbound: wire.Inbound | None, exc: StorageFull | WriteLockTimeout) -> bytes:
        """Nothing could be stored (a full disk, or another process holding the world's write lock): AR,
        "rejeté pour une raison circonstancielle. Il peut être réémis plus tard" (trans-cda-r2
        profils-messages.md, MSA-1), ERR 207 (pfi/errors.py). Not journaled (it cannot be); the store logged
        the episode. The control id comes from the clock: the store's counter cannot move."""
        ack = wire.build_ack(inbound, "AR", f"{unavailable_control_prefix(exc)}{time.time_ns() // 1_000_000}",
                             self._now(), [wire.ErrorItem(wire.E_APPLICATION, str(exc))])
        return self._encode(ack, inbound)

    def _handle(self, payload: bytes, peer: str, junk: int, faults: list[Fired] | None = None) -> bytes:
        inbound: wire.Inbound | None = None
        try:
            try:
                inbound = wire.parse(payload)
                family = check_header(inbound)
                if junk:
                    inbound.findings.append(finding("MLLP/FRAMING",
                                                    f"{junk} bytes outside an MLLP block were skipped",
                                                    fr=f"{junk} octets hors d'un bloc MLLP ont été ignorés"))
                if family == "ADT":
                    consent = read_consent(inbound)
                    fired, answer = self._fault(inbound, payload, None, faults)
                    if answer is not None:
                        return answer
                    return self._consent(consent, payload, fault=fired)
                document = read_document(inbound, family)
                # Parsed and checked above, encoded below: the write transaction holds the fault check (the rules
                # read in it, not in a read transaction of their own), the world change and the journal.
                with self.world.transaction():
                    armed = self.world.faults.armed("pfi")   # the rules read once for both fault checks
                    fired, answer = self._fault(inbound, payload, document.unique_id, faults, armed=armed)
                    if answer is None:
                        ack = self._document(document, payload, fault=fired, armed=armed)
                return answer if answer is not None else self._encode(ack, inbound)
            except wire.Hl7Reject as reject:
                if inbound is None:
                    inbound = wire.read_header(payload)  # to name MSH-10 in MSA-2 whenever it can be found
                return self._reject(inbound, reject, payload)
        except WriteLockTimeout:
            raise   # answered by handle(), logged once by the store
        except sqlite3.Error as exc:
            log.error("PFI: the store is unavailable, message answered AR: %s", exc)
            if inbound is None:
                inbound = wire.read_header(payload)
            # no sequence from the store for MSH-10: a random id, unique enough for one answer
            ack = wire.build_ack(inbound, "AR", f"MBAR{uuid.uuid4().hex[:12]}", self._now(), [wire.ErrorItem(
                wire.E_APPLICATION, "the PFI cannot store the message now (its store is unavailable): send it again "
                "later")])
            return self._encode(ack, inbound)

    def _fault(self, inbound: wire.Inbound, payload: bytes, document: str | None, faults: list[Fired] | None,
               *, armed: bool | None = None) -> tuple[Fired | None, bytes | None]:
        """The fault rule this message meets (world/faults.py), asked before anything is applied; appended to
        `faults` for the connection to render the network kinds. A refusing one is journaled here and its answer
        returned: `ack_ar` is MSA-1 AR, "rejeté pour une raison circonstancielle. Il peut être réémis plus
        tard", with an ERR whose ERR-3 is from table 0357 and ERR-4 E [trans-cda-r2/profils-messages.md, ACK
        section, MSA-1 and segment ERR]; `no_ack`, reset and timeout answer nothing (b"")."""
        if not (self.world.faults.armed("pfi") if armed is None else armed):
            return None, None
        with self.world.transaction() as tx:
            fired = self.world.faults.decide(tx, "pfi", inbound.operation, patient_ins=self._pid_ins(inbound),
                                             actor=self._sender_app(inbound), document=document,
                                             kinds=FAULTS_ON_ARRIVAL)
            if fired is None:
                return None, None
            if faults is not None:
                faults.append(fired)
            if not fired.refusing:
                return fired, None
            self.world.journal.append(
                tx, "pfi", inbound.operation, actor=self._sender_app(inbound), patient_ins=self._pid_ins(inbound),
                document=document, verdict="error", code=f"FAULT_{fired.kind.upper()}",
                findings=[*inbound.findings, finding("FAULT", f"injected fault {fired.rule} ({fired.kind}): nothing "
                                                     "was applied", "info",
                                                     fr=f"panne injectée {fired.rule} ({fired.kind}) : rien n'a été "
                                                        "appliqué")],
                raw=payload, ref=inbound.control_id, fault=fired.rule)
            if fired.kind != "ack_ar":
                return fired, b""
            ack = wire.build_ack(inbound, "AR", self._control_id(tx), self._now(),
                                 [wire.ErrorItem(fired.params["error"], fired.params["text"])])
        return fired, self._encode(ack, inbound)

    def _reject(self, inbound: wire.Inbound | None, reject: wire.Hl7Reject, payload: bytes) -> bytes:
        with self.world.transaction() as tx:
            ack = wire.build_ack(inbound, reject.ack_code, self._control_id(tx), self._now(),
                                 [wire.ErrorItem(reject.error, reject.text, reject.location)])
            self.world.journal.append(
                tx, "pfi", inbound.operation if inbound else "UNKNOWN", actor=self._sender_app(inbound),
                patient_ins=self._pid_ins(inbound), verdict="refused", code=f"HL7_{reject.error}",
                findings=[*(inbound.findings if inbound else []),
                          finding("HL7/ACK", f"{reject.ack_code} {reject.error}: {reject.text}", "error",
                                  fr=f"accusé de réception {reject.ack_code} {reject.error} : {reject.text}")],
                raw=payload, ref=inbound.control_id if inbound else None, response=ack)
        return self._encode(ack, inbound)

    def _reject_unreadable(self, exc: MllpFramingError) -> bytes:
        reject = wire.Hl7Reject("AE", wire.E_OTHER_HL7, f"the MLLP frame was refused: {exc.reason}")
        inbound = wire.read_header(exc.head) if exc.head else None   # MSA-2 names its MSH-10 when it is there
        try:
            with self.world.transaction() as tx:
                ack = wire.build_ack(inbound, reject.ack_code, self._control_id(tx), self._now(),
                                     [wire.ErrorItem(reject.error, reject.text)])
        except UNAVAILABLE as full:
            return self._unavailable(inbound, full)
        return self._encode(ack, inbound)

    def _framing_error(self, exc: MllpFramingError, peer: str) -> None:
        try:
            with self.world.transaction() as tx:
                self.world.journal.append(tx, "pfi", "MLLP", actor=peer, verdict="error",
                                          code=f"MLLP_{exc.kind.upper()}",
                                          findings=[finding("MLLP/FRAMING", exc.reason, "error",
                                                            fr=f"trame MLLP invalide : {exc.reason}")])
        except UNAVAILABLE:
            pass   # the frame is answered all the same; the store logged the episode

    def _document(self, msg: DocumentMessage, payload: bytes, *, fault: Fired | None = None,
                  armed: bool | None = None) -> str:
        """Each document of the message (an ORU may carry several) is fed, replaced or deleted in its own
        savepoint, with its own dmp journal entry and ZAM^Z01; the pfi entry names the first. Returns the ACK's
        text, for the caller to encode once the transaction committed."""
        inbound = msg.inbound
        with self.world.transaction() as tx:
            control_id = self._control_id(tx)
            outcomes: list[tuple[DocumentMessage, str, str | None, list[dict], wire.ErrorItem | None, list]] = []
            patient_id: str | None = None   # once a document is applied: the journal need not look the INS up
            # A ZAM fault (world/faults.py) is met once the message is taken: zam_error stands for a DMP that
            # refused it (nothing fed; the Z01 carries the rule's DMP error code in ERR-5, as errors.py's
            # z01_error does for a genuine refusal), zam_delay and zam_duplicate change only the ZAM's delivery.
            zam_fault = self.world.faults.decide(tx, "pfi", inbound.operation, patient_ins=msg.patient.ins or None,
                                                 actor=self._sender_app(inbound), document=msg.unique_id,
                                                 kinds=("zam_error", "zam_delay", "zam_duplicate")) \
                if msg.flag("DESTDMP") and armed is not False else None   # not armed: no rule would fire
            if msg.flag("DESTDMP"):
                for doc in msg.documents:
                    zam: wire.ErrorItem | None = None
                    world_findings: list[dict] = []    # what the world found doing it (consent, versions...)
                    try:
                        if zam_fault is not None and zam_fault.kind == "zam_error":
                            raise _InjectedZamError(zam_fault)
                        with tx.savepoint():
                            patient_id = self._apply(tx, doc, world_findings)
                        verdict, code, extra = "accepted", None, []
                    except _InjectedZamError as injected:
                        text, dmp_code = injected.fired.params["text"], injected.fired.params["code"]
                        zam = wire.ErrorItem(wire.E_APPLICATION, text,
                                             application=f"{dmp_code}^{text.replace('^', ' ')}^DMP_ERROR_CODE")
                        verdict, code = "error", "FAULT_ZAM_ERROR"
                        extra = [finding("FAULT", f"injected fault {injected.fired.rule} (zam_error {dmp_code}): "
                                         "the document was not fed", "info",
                                         fr=f"panne injectée {injected.fired.rule} (zam_error {dmp_code}) : le "
                                            "document n'a pas été versé")]
                    except errors.WorldError as exc:
                        dmp_code, zam = z01_error(exc)
                        verdict, code = "refused", exc.code
                        extra = [finding("PFI/ZAM", f"ZAM^Z01 error {dmp_code}: {exc.message}", "error",
                                         fr=f"ZAM^Z01 erreur {dmp_code} : {exc.message}")]
                    outcomes.append((doc, verdict, code, extra, zam, world_findings))
            others = [d.unique_id for d in msg.others]
            extra_findings = [finding("CDA-HL7/OBX", f"the message carries {len(msg.documents)} documents: "
                                      + ", ".join([msg.unique_id, *others]), "info",
                                      fr=f"le message porte {len(msg.documents)} documents : " + ", ".join([msg.unique_id, *others]))] if others else []
            if others and (msg.flag("DESTMSSANTEPS") or msg.flag("DESTMSSANTEPAT")):
                extra_findings.append(finding("PFI/MSS", f"the MSSanté mail carries the first document ({msg.unique_id})"
                                              f" only, not {', '.join(others)}", "warning",
                                              fr=f"le courriel MSSanté ne porte que le premier document ({msg.unique_id}), pas {', '.join(others)}"))
            # AA whatever happens downstream (ZAMs say that): built first, so that the entry keeps it
            ack = wire.build_ack(inbound, "AA", control_id, self._now())
            self.world.journal.append(
                tx, "pfi", inbound.operation, actor=msg.sender.label, patient=patient_id,
                patient_ins=msg.patient.ins or None,
                document=msg.unique_id, verdict="accepted", findings=inbound.findings + msg.findings + extra_findings,
                raw=payload, ref=inbound.control_id, fault=fault.rule if fault else None, response=ack)
            for doc, verdict, code, extra, zam, consent_findings in outcomes:
                self.world.journal.append(
                    tx, "dmp", DMP_OPERATION[doc.action], actor=msg.sender.label,
                    patient=patient_id, patient_ins=msg.patient.ins or None, document=doc.unique_id, verdict=verdict,
                    code=code,
                    findings=consent_findings + (doc.findings if doc is not msg else []) + extra,
                    ref=inbound.control_id, raw=f"{doc.action} {doc.unique_id} via the PFI (MSH-10 {inbound.control_id})",
                    fault=zam_fault.rule if zam_fault else None)
                if self.dpi(tx) is not None:
                    zam_text = wire.build_zam("Z01", inbound, f"{control_id}Z{doc.position}", self._now(),
                                              success=verdict == "accepted", error=zam)
                    meta = {"patient_ins": msg.patient.ins or None, "document": doc.unique_id,
                            "ref": inbound.control_id}
                    kind = zam_fault.kind if zam_fault else None
                    delay = zam_fault.params["seconds"] if zam_fault is not None and kind == "zam_delay" else 0.0
                    for _ in range(2 if kind == "zam_duplicate" else 1):
                        self.outbox.add(tx, self._encode(zam_text, inbound), "ZAM^Z01", meta, delay=delay)
            if msg.flag("DESTMSSANTEPS") or msg.flag("DESTMSSANTEPAT"):
                self._send_mail(tx, msg)
        return ack

    def _apply(self, tx: Tx, msg: DocumentMessage, findings: list[dict]) -> str | None:
        """The DMP operation the message asks for, as the PFI performs it for the sender; what it finds goes
        to `findings`. Returns the patient's id when the patient holds the message's INS (the one the journal
        would look up by that INS)."""
        p = msg.patient
        patient = self.world.directory.identify(tx, p.ins, ins_oid=p.ins_oid, family_name=p.family_name,
                                                birth_date=p.birth_date, sex=p.sex)
        if msg.sender.idnps:
            prof = self.world.directory.professional(tx, msg.sender.idnps)
            author, structure = prof.id, prof.structure
            if msg.sender.finess:
                try:
                    structure = self.world.directory.structure(tx, msg.sender.finess).id
                except errors.UnknownStructure:
                    pass
        else:
            # A device (PRT-10, no PRT-5) asks for its structure (PRT-8): the VIHF names the structure and the
            # device (trans-cda-r2/profils-messages.md, footnote [2], SC.DMP/CONF.12).
            author = msg.sender.label
            structure = self.world.directory.structure(tx, msg.sender.finess).id
        actor = Actor(kind="professional" if msg.sender.idnps else "device", id=author, structure=structure)
        dmp = self.world.dmp
        if msg.action == "delete":
            dmp.delete(tx, actor, msg.unique_id, patient_key=patient.id, cause=msg.inbound.control_id)
            return patient.id if patient.ins == msg.patient.ins else None
        cda = msg.cda
        meta: dict[str, Any] = {
            "unique_id": msg.unique_id, "type_code": msg.type_code or (cda.type_code if cda else ""),
            "title": msg.title or (cda.title if cda else ""), "confidentiality": msg.confidentiality,
            "author": author, "author_structure": structure, "mime_type": "text/xml"}
        # The CDA's effectiveTime in UTC, and the other metadata its header gives (xds.py); one absent or
        # unreadable is left out: the DMP refuses the document without it (world/dmp.py), the refusal the Z01
        # reports (trans-cda-r2/mapping.md, Mapping XDS, Fiche).
        meta["creation_time"] = msg.creation_time
        derived = dict(msg.xds)
        extra = {slot: derived.pop(key) for key, slot in (("legal_authenticator", "legalAuthenticator"),
                                                          ("source_patient_id", "sourcePatientId")) if key in derived}
        meta.update(derived, extra=extra)
        meta = {k: v for k, v in meta.items() if v}
        if msg.action == "replace":
            findings.extend(self._modif_conf_code(tx, msg))
            dmp.replace(tx, actor, patient.id, msg.parent_id, meta, msg.content, cause=msg.inbound.control_id,
                        findings=findings)
        else:
            dmp.submit(tx, actor, patient.id, meta, msg.content, cause=msg.inbound.control_id, findings=findings)
        return patient.id if patient.ins == msg.patient.ins else None

    def _modif_conf_code(self, tx: Tx, msg: DocumentMessage) -> list[dict]:
        """A replacement (MDM^T10) whose masking or visibility differs from the version it replaces says so with
        MODIF_CONF_CODE at Y: through the PFI a masking or visibility change is a new version of the document
        (trans-cda-r2/def-proc-collab.md, "Demande de remplacement de document(s)"), which exemples.md example 4
        flags by "la valorisation et l'interprétation d'une balise OBX MODIF_CONF_CODE". A warning on the dmp
        entry (the DMP takes the version all the same), which a scenario step can forbid."""
        try:
            old = self.world.dmp.current(tx, msg.parent_id)
        except errors.WorldError:
            return []       # the replacement itself is refused, with its own reason
        before, after = set(old.confidentiality) - {"N"}, set(msg.confidentiality) - {"N"}
        if before != after and not msg.flag("MODIF_CONF_CODE"):
            return [finding(
                "PFI/MODIF_CONF_CODE", f"document {msg.unique_id} replaces {msg.parent_id} and changes its "
                f"confidentiality ({', '.join(sorted(before)) or 'N'} -> {', '.join(sorted(after)) or 'N'}) "
                "without MODIF_CONF_CODE at Y (trans-cda-r2/exemples.md example 4)", "warning",
                fr=f"le document {msg.unique_id} remplace {msg.parent_id} et change sa confidentialité "
                   f"({', '.join(sorted(before)) or 'N'} -> {', '.join(sorted(after)) or 'N'}) sans MODIF_CONF_CODE "
                   "à Y (trans-cda-r2/exemples.md, exemple 4)")]
        return []

    def _consent(self, msg: ConsentMessage, payload: bytes, *, fault: Fired | None = None) -> bytes:
        inbound = msg.inbound
        findings = inbound.findings + msg.findings
        with self.world.transaction() as tx:
            if msg.consultation or msg.feeding_opposition:
                try:
                    self.world.directory.record_consent(tx, msg.patient.ins, consultation=msg.consultation,
                                                        feeding_opposition=msg.feeding_opposition)
                except errors.UnknownPatient:
                    findings.append(finding("PAM.fr/ZFA", f"no patient has the INS {msg.patient.ins or '(none)'}: "
                                            "the consent was not recorded",
                                            fr=f"aucun patient n'a l'INS {msg.patient.ins or '(aucune)'} : le consentement n'a pas été enregistré"))
            ack = wire.build_ack(inbound, "AA", self._control_id(tx), self._now())
            self.world.journal.append(tx, "pfi", inbound.operation, actor=self._sender_app(inbound),
                                      patient_ins=msg.patient.ins or None, verdict="accepted", findings=findings,
                                      raw=payload, ref=inbound.control_id, fault=fault.rule if fault else None,
                                      response=ack)
        return self._encode(ack, inbound)

    # MSSanté ------------------------------------------------------------------------------------
    def _send_mail(self, tx: Tx, msg: DocumentMessage) -> None:
        """The mails DESTMSSANTEPS / DESTMSSANTEPAT ask for, delivered through the world in this transaction."""
        inbound = msg.inbound
        sender, author = self._mail_sender(tx, msg)
        common: dict[str, Any] = {"patient_ins": msg.patient.ins or None, "document": msg.unique_id}
        if sender is None:
            self.world.journal.append(
                tx, "mss", "DELIVER", direction="out", actor=msg.sender.idnps, verdict="error", code="MSS_NO_SENDER",
                findings=[finding("PFI/MSS", "no applicative mailbox (BAL APP) of the sender's structure nor of "
                                  "the PFI sends the mail (trans-cda-r2/mapping-mss.md: FROM is the BAL APP): "
                                  "no mail was sent", "error",
                                  fr="ni la boîte aux lettres applicative (BAL APP) de la structure émettrice ni celle du PFI n'envoie le courriel (trans-cda-r2/mapping-mss.md : FROM est la BAL APP) : aucun courriel n'a été envoyé")],
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
                    findings=[finding("PFI/MSS", f"the IHE_XDM.ZIP cannot be made: {exc}", "error",
                                      fr=f"l'IHE_XDM.ZIP ne peut pas être construit : {exc}")],
                    ref=inbound.control_id, **common)
                continue
            message_id = header_summary(raw).get("Message-ID", "")
            findings = [finding("PFI/MSS", f"sent for the HL7 message {inbound.control_id} "
                                f"({'DESTMSSANTEPAT' if kind == 'patient' else 'DESTMSSANTEPS'})", "info",
                                fr=f"envoyé pour le message HL7 {inbound.control_id} ({'DESTMSSANTEPAT' if kind == 'patient' else 'DESTMSSANTEPS'})")]
            findings += [finding("MSS/RCPT", f"550 5.1.1 {text}", "error",
                                 fr=f"destinataire refusé par le serveur MSSanté : 550 5.1.1 {text}") for _, text in unknown]
            # The delivery is journaled and its ZAM^Z02 queued before the world delivers: a recipient that
            # answers at once (MDN, DSN) is journaled after the delivery it answers, and its ZAM^Z03 reaches the
            # DPI after the Z02 (trans-cda-r2/profils-messages.md: Z02 on reception, Z03 on reading).
            self.world.journal.append(
                tx, "mss", "DELIVER", direction="out", actor=sender, verdict="accepted" if known else "refused",
                code="SMTP_550" if unknown else None, findings=findings, raw=raw, ref=message_id, **common)
            if self.dpi(tx) is not None:
                for address, text in unknown:
                    self._queue_zam(tx, inbound, "Z02", info, success=False, address=address,
                                    error=wire.ErrorItem(wire.E_APPLICATION, text, application=SMTP_550))
                if msg.flag("ACK_RECEPTION"):
                    for address, box in known:
                        if (box.behaviour or {}).get("on_receive") != "bounce":   # its DSN makes a Z02 N
                            self._queue_zam(tx, inbound, "Z02", info, success=True, address=address)
            if known:
                tx.meta_set(MAIL_KEY + message_id, info)
                self.world.mss.deliver(tx, sender, [a for a, _ in known], raw, cause=inbound.control_id,
                                       document=msg.unique_id)

    def _mail_sender(self, tx: Tx, msg: DocumentMessage) -> tuple[str | None, dict]:
        """The mail's From: the applicative mailbox (BAL APP) that sends it, never a professional's personal
        mailbox (trans-cda-r2/mapping-mss.md, FROM: "courriel de la BAL Applicative qui transmet le
        message"): the sender's structure's APP mailbox (PRT-8.10's FINESS, else the professional's
        structure), else the PFI's own, an APP mailbox of the establishment (role hospital)."""
        author = {"idnps": msg.sender.idnps, "family_name": msg.sender.family_name,
                  "given_name": msg.sender.given_name}
        structure = ""
        try:
            prof = self.world.directory.professional(tx, msg.sender.idnps)
        except errors.UnknownProfessional:
            prof = None
        if prof is not None:
            author = {"idnps": prof.idnps, "family_name": prof.family_name, "given_name": prof.given_name}
            structure = prof.structure or ""
        if msg.sender.finess:
            try:
                structure = self.world.directory.structure(tx, msg.sender.finess).id
            except errors.UnknownStructure:
                pass
        apps = [box for box in self.world.directory.mailboxes(tx) if box.type == "APP"]
        for box in apps:
            if structure and box.owner == structure:
                return box.address, author
        for box in apps:
            if box.role == "hospital":
                return box.address, author
        return None, author

    def _queue_zam(self, tx: Tx, original: wire.Inbound, event: str, info: dict, *, success: bool,
                   address: str = "", error: wire.ErrorItem | None = None) -> None:
        text = wire.build_zam(event, original, f"{self._control_id(tx)}Z", self._now(), success=success,
                              error=error, address=address)
        meta = {"patient_ins": info.get("patient_ins"), "document": info.get("document"),
                "ref": info.get("control_id")}
        self.outbox.add(tx, self._encode(text, original), f"ZAM^{event}", meta)

    def _on_mail_event(self, event: events.Event) -> None:
        """A DSN or an MDN answering a mail this door sent: ZAM^Z02 / ZAM^Z03 to the DPI."""
        if not event.cause:
            return
        with self.world.transaction() as tx:
            if self.dpi(tx) is None:
                return
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
                item = z03_error(code, text)
            self._queue_zam(tx, original, "Z03", info, success=not error, address=data.get("from", ""), error=item)

    def _on_mail_delivered(self, event: events.Event) -> None:
        """A mail received on a hospital mailbox: each document of its IHE_XDM.ZIP goes to the DPI as an
        MDM^T02 / T10 / T04 of the guide [CDA-MSS] (inbound.py builds it), through the outbound queue."""
        data = event.data or {}
        with self.world.transaction() as tx:
            endpoint = self.dpi(tx)
            if endpoint is None:
                return
            try:
                box = self.world.directory.mailbox(tx, data.get("mailbox") or "")
                message = self.world.mss.message(tx, data.get("message") or "")
                raw = self.world.mss.raw(tx, message.id)
            except errors.WorldError:
                return
            if box.role != "hospital":
                return
            parsed, package_bytes = inbound_mail.read_mail(raw)
            if package_bytes is None or read_mdn(raw) is not None:
                return      # a mail without a package, or an MDN returning one: nothing for the DPI
            message_id = message.message_id or event.cause or ""
            dpi = "{}:{}".format(*endpoint)
            try:
                package = read_package(package_bytes)
            except XdmError as exc:
                self.world.journal.append(
                    tx, "pfi", "MDM^T02", direction="out", actor=dpi, verdict="error", code=exc.code,
                    findings=[finding("PFI/XDM", f"the IHE_XDM.ZIP of the mail {message_id} on {box.address} cannot "
                                      f"be read: {exc.message}; nothing was sent to the DPI", "error",
                                      fr=f"l'IHE_XDM.ZIP du courriel {message_id} sur {box.address} est illisible : {exc.message} ; rien n'a été transmis au DPI")],
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
                                          "CDA: it was not sent to the DPI", "error",
                                          fr=f"{doc.path} du courriel {message_id} n'est pas un CDA lisible : il n'a pas été transmis au DPI")], ref=message_id)
                    continue
                operation, text, found = inbound_mail.build_mdm(
                    doc, package.action, mail_info, control_id=self._control_id(tx), now=self._now(),
                    receiving=("DPI", box.owner), sender_person=person, package=package)
                meta = {"patient_ins": doc.cda.ins[0] if doc.cda.ins else None, "document": doc.cda.unique_id,
                        "ref": message_id, "findings": found,
                        "inbound": {"message": message.id, "mailbox": box.address}}
                self.outbox.add(tx, self._encode(text, None), operation, meta)

    @staticmethod
    def _inbound_answered(answer: bytes) -> tuple[list[dict], str | None]:
        """The DPI answered an inbound MDM: its ACK checked against the guide (findings for the MDM's journal
        entry), and a refusal's `code^libellé` for `_tell_sender` (None when it accepted)."""
        ack = inbound_mail.read_dpi_ack(answer)
        refusal = ack.error if ack.code not in ("AA", "CA", "") and ack.error is not None else None
        return list(ack.findings), refusal

    def _tell_sender(self, tx: Tx, inbound: dict, error: str, ref: str | None) -> None:
        """After the MDM's journal entry: the DPI's refusal goes back to the mail's sender as the guide asks
        (trans-cda-mss/struct-msg-mdn.md: an error MDN when the mail asked for one, else a standard error mail,
        struct-email-standard.md; both `[KO Intégration système !][code] <subject>` with the original
        attachments)."""
        try:
            with tx.savepoint():
                self.world.mss.integration_error(tx, inbound["mailbox"], inbound["message"], error)
        except errors.WorldError as exc:
            self.world.journal.append(
                tx, "mss", "MDN", direction="out", actor=inbound["mailbox"], verdict="error", code=exc.code,
                findings=[finding("CDA-MSS/MDN", f"the DPI refused the document ({error}) but the sender "
                                  f"cannot be told: {exc}", "error",
                                  fr=f"le DPI a refusé le document ({error}) mais l'émetteur ne peut pas en être informé : {exc}")], ref=ref)

    # Small things -------------------------------------------------------------------------------
    def _control_id(self, tx: Tx) -> str:
        return f"MB{tx.next_seq('pfi-control')}"

    def _now(self) -> str:
        return dtm(self.world.clock.now())

    @staticmethod
    def _encode(text: str, inbound: wire.Inbound | None) -> bytes:
        """In the charset the answer declares in its MSH-18 (the message's, when the PFI knows it)."""
        return text.encode(wire.codec_for(wire.known_charset(inbound.charset if inbound else "")), "replace")

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

