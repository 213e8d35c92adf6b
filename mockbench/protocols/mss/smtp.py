"""The MSSanté SMTP door: submission from the software under test into the world's mailboxes.

The session is aiosmtpd's engine with the door's policy (smtp_session.py: `MssSmtp`, `MssHandler`); the
content's findings are in content.py (the XDM check, unreadable header fields, MDNs), the authentication
rules both mail doors share in auth.py. `SmtpDoor` holds the settings, the listener and the world calls: each
runs in one transaction, and a delivery answers 250 only after it committed.

Every attempt is journaled on channel `mss`: `SMTP_AUTH` (accepted or refused), `SUBMIT` (accepted with
the XDM findings, or refused with its code) and one `DELIVER` per recipient mailbox.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from ...formats.mime import attachments, read_mdn
from ...world import errors
from ...world.faults import NETWORK, Fired
from ...world.journal import finding
from ...world.mss import is_mssante
from ...world.store import Tx
from ..context import DoorContext
from ..loop import SocketDoor
from . import errors as status
from .auth import Identity, Outcome, certificate_identity, mechanism_findings
from .content import XDM_ATTACHMENT, count_header_fields, header_findings, mdn_findings, xdm_check
from .errors import Refusal, status_for

if TYPE_CHECKING:
    from .smtp_session import MssHandler, MssSmtp

# Kept importable from here (the control API's XDM check, older imports).
__all__ = ["XDM_ATTACHMENT", "MssSettings", "SmtpDoor", "SmtpLimits", "count_header_fields", "mdn_findings",
           "xdm_check"]

log = logging.getLogger("mockbench.mss")

MIB = 1024 * 1024


@dataclass(frozen=True)
class SmtpLimits:
    # RFC 1870 SIZE: advertised in EHLO; an oversized DATA is read to its end, then refused with 552.
    # MSSanté operators cap a message around 10-20 MiB; 32 MiB leaves room for base64 overhead.
    data_size: int = 32 * MIB
    # RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with CRLF; aiosmtpd adds 1 for the
    # transparency dot (RFC 5321 4.5.2).
    line_length: int = 1001
    # RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF (EHLO's SIZE/SMTPUTF8 extend MAIL).
    command_length: int = 512
    # RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients; more get 452 (4.5.3.1.10).
    recipients: int = 100
    # RFC 5322 2.2 sets no count of header fields; a real MSSanté mail has a few dozen. Parsing is bounded
    # by refusing a flood (552) before the message is parsed.
    header_fields: int = 1000
    # RFC 5321 4.5.3.2.7: the server waits 5 minutes for the next command.
    timeout: float = 300.0


@dataclass(frozen=True)
class MssSettings:
    host: str = "127.0.0.1"
    port: int = 2525
    limits: SmtpLimits = SmtpLimits()
    password: str | None = "mockbench"   # AUTH PLAIN/LOGIN with the mailbox address; None: not offered
    auth_required: bool = True           # False: unauthenticated submission is accepted (an open door)
    require_starttls: bool = False       # only with TLS: nothing but EHLO/STARTTLS/QUIT before STARTTLS
    # Only with TLS: AUTH is neither advertised nor accepted before STARTTLS (538 5.7.11), as aiosmtpd and
    # Dovecot do by default (RFC 4954 4: a mechanism that exposes the password needs an encrypted channel).
    # false: the bench accepts authentication in clear (what a DPI must not rely on).
    auth_require_tls: bool = True
    hostname: str = "mockbench.invalid"  # the name in the greeting and EHLO (aiosmtpd would ask the DNS)
    max_connections: int = 128           # sessions at once; beyond, greeted with 421 and closed

    @classmethod
    def from_config(cls, host: str, port: int, doors_mss: dict[str, Any]) -> MssSettings:
        """`[doors.mss]`: plain_login (bool), password (str), auth_required (bool), require_starttls (bool),
        and any SmtpLimits field (data_size, line_length, ...); keys starting with `imap` belong to the IMAP
        door. ValueError names what is wrong."""
        s = dict(doors_mss or {})
        known = {"plain_login", "password", "auth_required", "require_starttls", "auth_require_tls", "hostname"}
        limit_names = {f.name for f in fields(SmtpLimits)}
        unknown = sorted(k for k in set(s) - known - limit_names if not k.startswith("imap"))  # the IMAP door's
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}; known: {', '.join(sorted(known | limit_names))}")
        for name in ("plain_login", "auth_required", "require_starttls", "auth_require_tls"):
            if name in s and not isinstance(s[name], bool):
                raise ValueError(f"{name} must be true or false")
        for name in limit_names & set(s):
            if isinstance(s[name], bool) or not isinstance(s[name], int | float) or s[name] <= 0:
                raise ValueError(f"{name} must be a positive number")
        password = s.get("password", cls.password)
        if not isinstance(password, str) or not password:
            raise ValueError("password must be a non-empty string")
        limits = replace(SmtpLimits(), **{k: s[k] for k in limit_names & set(s)})
        return cls(host=host, port=port, limits=limits,
                   password=password if s.get("plain_login", True) else None,
                   auth_required=s.get("auth_required", True), require_starttls=s.get("require_starttls", False),
                   auth_require_tls=s.get("auth_require_tls", True), hostname=str(s.get("hostname", cls.hostname)))


# --- The door ----------------------------------------------------------------------------------------------

class _Refusal(asyncio.Protocol):
    """A connection beyond the door's cap (or met by a fault rule at the connect stage). RFC 5321 §3.1 and
    §4.2.3: a server that cannot serve may answer the connection with 421 and close; RFC 3463: 4.3.2, the system
    is not accepting network messages."""

    def __init__(self, line: str = "421 4.3.2 mockbench.invalid too many connections, try again later") -> None:
        self.line = line

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.line.encode("ascii", "replace") + b"\r\n")
        transport.close()


# an smtp_reply fault's code -> its enhanced status code (RFC 3463) and default text (RFC 5321, 4.2.3)
FAULT_ENHANCED = {421: "4.3.2", 451: "4.3.0", 452: "4.3.1"}
FAULT_TEXTS = {421: "Service not available, closing transmission channel",
               451: "Requested action aborted: local error in processing",
               452: "Requested action not taken: insufficient system storage"}


class SmtpDoor(SocketDoor):
    name = "mss"
    port_name = "smtp"
    cap_setting = "smtp_max_connections"
    thread = "mockbench-smtp"

    def __init__(self, context: DoorContext, settings: MssSettings | None = None) -> None:
        self.settings = settings or MssSettings()
        super().__init__(context, host=self.settings.host, port=self.settings.port,
                         max_connections=self.settings.max_connections)
        self.tls_context = None
        if context.tls is not None:
            from ...pki import server_context

            self.tls_context = server_context(context.tls, require_client_cert=False)
        # aiosmtpd is imported at the first connection; a broken install still fails here, at start.
        if importlib.util.find_spec("aiosmtpd") is None:
            raise RuntimeError("the SMTP door needs aiosmtpd, which is not installed: reinstall mockbench")
        self._engine: tuple[type[MssSmtp], MssHandler] | None = None   # at the first connection (_session_engine)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: weakref.WeakSet[MssSmtp] = weakref.WeakSet()

    # Lifecycle: aiosmtpd's engine is an asyncio.Protocol, not a stream handler ---------------------------
    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def open(self, loop: asyncio.AbstractEventLoop) -> None:
        def session() -> asyncio.Protocol:
            if not self.cap.admit():
                return _Refusal()
            line = self.fault_reply("connect", "")
            if line is not None:
                self.cap.release()
                return _Refusal(line)
            engine_class, handler = self._engine or self._session_engine()
            engine = engine_class(self, handler, loop)
            self._sessions.add(engine)
            return engine

        self._server = await loop.create_server(session, self.host, self.port)

    def _session_engine(self) -> tuple[type[MssSmtp], MssHandler]:
        """The session's class and handler, imported at the first connection, on the door's loop: aiosmtpd and
        attrs were a twentieth of the bench's start-up (issue 21, point 5); that connection waits for them
        instead (about 10 ms, benchmarks/README.md)."""
        from .smtp_session import MssHandler, MssSmtp

        self._engine = (MssSmtp, MssHandler(self))
        return self._engine

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for engine in list(self._sessions):
            if engine.transport is not None:
                engine.transport.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # World calls ----------------------------------------------------------------------------------------
    def _run(self, operation: str, actor: str, fn: Callable[[Tx], Outcome], *, raw: bytes = b"",
             recipients: list[str] | None = None, findings: list[dict] | None = None,
             as_status: status.Status | None = None) -> Outcome:
        """One transaction: `fn`'s changes commit with its journal entries, or roll back while the refusal is
        journaled. The one place where world errors and the door's refusals become a reply."""
        with self.world.transaction() as tx:
            try:
                with tx.savepoint():
                    return fn(tx)
            except (errors.WorldError, Refusal) as exc:
                line = self._journal_refusal(tx, operation, actor, exc, raw=raw, recipients=recipients,
                                             findings=findings, as_status=as_status)
                return Outcome(False, line)

    def _journal_refusal(self, tx: Tx, operation: str, actor: str, exc: errors.WorldError | Refusal, *,
                         raw: bytes = b"", recipients: list[str] | None = None, findings: list[dict] | None = None,
                         as_status: status.Status | None = None) -> str:
        st = as_status or status_for(exc)
        rule = exc.rule if isinstance(exc, Refusal) else "MSS/SMTP"
        line = st.line(exc.message if as_status is None else f"{st.text}: {exc.message}")
        note = f"{line}" + (f" (recipients: {', '.join(recipients)})" if recipients else "")
        self.world.journal.append(tx, "mss", operation, actor=actor, verdict="refused", code=exc.code,
                                  findings=[*(findings or []), finding(rule, note, "error",
                                                                       fr=f"refusé : {line}" + (f" (destinataires : {', '.join(recipients)})" if recipients else ""))],
                                  raw=raw, response=line)
        return line

    def network_fault(self, operation: str, actor: str) -> Fired | None:
        """A network fault rule met at a connection (SMTP_CONNECT, IMAP_CONNECT), journaled: reset and timeout
        with verdict error (nothing happens on that connection), delay and trickle accepted."""
        if not self.world.faults.armed("mss"):
            return None
        with self.world.transaction() as tx:
            fired = self.world.faults.decide(tx, "mss", operation, actor=actor or None, kinds=NETWORK)
            if fired is not None:
                self.world.journal.append(tx, "mss", operation, actor=actor,
                                          verdict="error" if fired.refusing else "accepted",
                                          code=f"FAULT_{fired.kind.upper()}", fault=fired.rule, raw=fired.kind)
        return fired

    def fault_reply(self, stage: str, actor: str) -> str | None:
        """The reply of an `smtp_reply` fault rule (world/faults.py) at this stage of the session, journaled as a
        SUBMIT met by it (verdict error, nothing delivered), or None. The codes are RFC 5321's transient ones
        (4.2.2, 4.2.3) with RFC 3463's enhanced codes, as trans-cda-r2/error-codes.md lists them: 421 service
        not available (closing), 451 local error in processing, 452 insufficient system storage."""
        if not self.world.faults.armed("mss"):
            return None
        with self.world.transaction() as tx:
            fired = self.world.faults.decide(tx, "mss", "SUBMIT", actor=actor or None, kinds=("smtp_reply",),
                                             where={"stage": stage})
            if fired is None:
                return None
            code = fired.params["code"]
            line = f"{code} {FAULT_ENHANCED[code]} {fired.params.get('text') or FAULT_TEXTS[code]}"
            self.world.journal.append(tx, "mss", "SUBMIT", actor=actor, verdict="error", code=f"FAULT_SMTP_{code}",
                                      findings=[finding("FAULT", f"injected fault {fired.rule} at {stage}: {line}",
                                                        "info", fr=f"panne injectée {fired.rule} à l'étape {stage} : "
                                                                   f"{line}")],
                                      raw=f"{stage}: {line}", fault=fired.rule)
        return line

    def refused(self, operation: str, actor: str, refusal: Refusal, *, recipients: list[str] | None = None) -> str:
        """Journal a refusal the engine decided (size, line length, authentication required)."""
        with self.world.transaction() as tx:
            return self._journal_refusal(tx, operation, actor, refusal, recipients=recipients)

    def failed(self, actor: str, error: Exception) -> None:
        with self.world.transaction() as tx:
            self.world.journal.append(tx, "mss", "SUBMIT", actor=actor, verdict="error", code="INTERNAL_ERROR",
                                      findings=[finding("MSS/SMTP", f"{type(error).__name__}: {error}", "error",
                                                        fr=f"erreur SMTP : {type(error).__name__}: {error}")])

    def authenticate(self, mechanism: str, address: str, *, password: str | None = None, token: str | None = None,
                     peercert: dict | None = None, tls: bool = False) -> Outcome:
        def check(tx: Tx) -> Outcome:
            if mechanism == "EXTERNAL":
                identity = self._by_certificate(tx, address, peercert, tls)
            else:
                box = self._mailbox(tx, address)
                if mechanism in ("PLAIN", "LOGIN"):
                    expected = self.settings.password
                    if expected is None or not hmac.compare_digest((password or "").encode(), expected.encode()):
                        raise Refusal(status.AUTH_INVALID, "PASSWORD_WRONG", f"wrong password for {address}")
                    identity = Identity(box.address, box.type, mechanism)
                else:
                    identity = self._by_token(tx, box, mechanism, token or "")
            self.world.journal.append(tx, "mss", "SMTP_AUTH", actor=identity.address, raw=mechanism,
                                      findings=[finding("MSS/SMTP", f"{mechanism} as {identity.address} "
                                                        f"({identity.type}{', ' + identity.subject if identity.subject else ''})",
                                                        "info",
                                                        fr=f"{mechanism} en tant que {identity.address} ({identity.type}{', ' + identity.subject if identity.subject else ''})"), *mechanism_findings(identity)],
                                      response=status.AUTH_OK.line())
            return Outcome(True, status.AUTH_OK.line(), identity)

        if mechanism == "EXTERNAL" and peercert and not address:  # no authzid: the certificate names the mailbox
            from ...pki import describe_peer

            address = (describe_peer(peercert)["email"] or address).lower()
        return self._run("SMTP_AUTH", address, check, raw=mechanism.encode(), as_status=status.AUTH_INVALID)

    def _mailbox(self, tx: Tx, address: str):
        if not address or not is_mssante(address):
            raise Refusal(status.AUTH_INVALID, "MAILBOX_UNKNOWN", f"{address or '(no user)'} is not an MSSanté "
                          "mailbox of this world")
        return self.world.mss.mailbox_for(tx, address)

    def _by_token(self, tx: Tx, box: Any, mechanism: str, token: str) -> Identity:
        """The world's rule (world/mss.py token_refusal), the mailbox's type checked before the token."""
        refused = self.world.mss.token_type_refusal(box)
        if refused is not None:
            raise Refusal(status.AUTH_INVALID, refused[0], f"{mechanism}: {refused[1]}", rule="MSS/CONF.01")
        row = self.world.tokens.verify(tx, token, kind="access")
        professional = row["professional"]
        refused = self.world.mss.token_refusal(tx, box, professional)
        if refused is not None:
            raise Refusal(status.AUTH_INVALID, *refused)
        return Identity(box.address, box.type, mechanism, professional)

    def _by_certificate(self, tx: Tx, authzid: str, peercert: dict | None, tls: bool) -> Identity:
        return certificate_identity(self.world, tx, authzid, peercert, tls)

    def recipient(self, sender: str, address: str, count: int) -> Outcome:
        def check(tx: Tx) -> Outcome:
            if count >= self.settings.limits.recipients:
                raise Refusal(status.TOO_MANY_RECIPIENTS, "TOO_MANY_RECIPIENTS",
                              f"Too many recipients (limit {self.settings.limits.recipients}, RFC 5321 4.5.3.1.8)")
            self.world.mss.mailbox_for(tx, address)  # UnknownMailbox: 550 5.1.1 from the status table
            return Outcome(True, status.RCPT_OK.line(f"<{address}> OK"))

        return self._run("SUBMIT", sender, check, recipients=[address])

    def data(self, sender: str, recipients: list[str], raw: bytes) -> tuple[str, bool]:
        """After the final dot: an `smtp_reply` fault rule's reply at the DATA stage (nothing is delivered), or
        the submission's; (reply, whether a fault rule answered)."""
        line = self.fault_reply("DATA", sender)
        if line is not None:
            return line, True
        return self.submit(sender, recipients, raw), False

    def submit(self, sender: str, recipients: list[str], raw: bytes) -> str:
        """DATA: the XDM check, then delivery and its journal in one transaction; 250 after the commit."""
        limit = self.settings.limits.header_fields
        findings: list[dict] = []
        unique_id = ins = None
        flood = count_header_fields(raw, limit) > limit
        shape = None
        if not flood:
            findings, unique_id, ins = xdm_check(raw, recipients)
            findings += header_findings(raw)
            try:
                shape = read_mdn(raw)
            except Exception as exc:  # the email package is lenient; anything left is a finding
                findings.append(finding("MSS/UX.12", f"the message cannot be read as an MDN: {exc}", "error",
                                        fr=f"le message ne peut pas être lu comme un MDN : {exc}"))
            if shape is not None:  # an MDN's subject repeats the original's XDM/1.0/DDM with no package; the
                # attachments an error MDN returns are the original's: ECO.2.4.1/2 are the original's business
                findings = [f for f in findings if f["rule"] not in ("MSS/XDM", "REF2/ECO.2.4.1", "REF2/ECO.2.4.2")]

        def deliver(tx: Tx) -> Outcome:
            if flood:
                raise Refusal(status.HEADER_FLOOD, "HEADER_FLOOD",
                              f"More than {limit} header fields (the door's header_fields limit)")
            if shape is not None:
                original_errors, original_names = self._original(tx, sender, shape.original)
                findings.extend(mdn_findings(shape, original_errors, original_names))
            stored = self.world.mss.deliver(tx, sender, recipients, raw, findings=findings, document=unique_id)
            ref = stored[0].message_id if stored else None
            # What the world found on delivery (SSI/IE.31 on a mail outside MSSanté) goes in the SUBMIT too.
            added = [f for m in stored for f in m.findings if f not in findings]
            boxes = len(stored)
            reply = status.ACCEPTED.line(
                f"Message accepted {ref or ''} into {boxes} mailbox{'es' if boxes != 1 else ''}")
            self.world.journal.append(tx, "mss", "SUBMIT", actor=sender, document=unique_id, patient_ins=ins,
                                      findings=[*findings, *[f for i, f in enumerate(added) if f not in added[:i]]],
                                      raw=raw, ref=ref, response=reply)
            for message in stored:
                self.world.journal.append(tx, "mss", "DELIVER", direction="out", actor=message.mailbox,
                                          document=unique_id, patient_ins=ins, ref=ref,
                                          findings=[f for f in message.findings if f not in findings],
                                          raw=f"message {message.id} from {sender} into {message.mailbox}")
            return Outcome(True, reply)

        return self._run("SUBMIT", sender, deliver, raw=raw, recipients=recipients, findings=findings).line

    def _original(self, tx: Tx, sender: str, original: str) -> tuple[list[dict] | None, list[str] | None]:
        """The error findings and the attachment names (upper-cased) of the message an MDN answers, looked up
        in the answering mailbox (where the original was delivered); (None, None) when it is not there."""
        if not original:
            return None, None
        try:
            messages = self.world.mss.messages(tx, sender)
        except errors.WorldError:
            return None, None
        found = next((m for m in messages if m.message_id.strip() == original), None)
        if found is None:
            return None, None
        try:
            names = [name.upper() for _, name, _ in attachments(self.world.mss.raw(tx, found.id))]
        except Exception:   # the email package is lenient; an unreadable original returns nothing to check
            names = []
        return [f for f in found.findings if f.get("severity") == "error"], names
