"""The MSSanté SMTP door: submission from the software under test into the world's mailboxes.

aiosmtpd's `SMTP` engine owns the wire (command order, the limits below); `MssSmtp`, a thin subclass,
reads DATA in blocks with aiosmtpd's own rules and replies (data.py: dot-unstuffing, line length, size), and
adds what is session policy: the SASL mechanisms MSSanté uses (PLAIN/LOGIN with the bench
password, XOAUTH2 and OAUTHBEARER with a bearer token from the world's token service, EXTERNAL with the TLS
client certificate), the binding of MAIL FROM to the authenticated mailbox, the status table's wording,
and `handle_exception`. `MssHandler` implements only `handle_RCPT` and `handle_DATA`; each is one call to
the door, whose world work runs in one transaction and answers 250 only after it committed.

Every attempt is journaled on channel `mss`: `SMTP_AUTH` (accepted or refused), `SUBMIT` (accepted with
the XDM findings, or refused with its code) and one `DELIVER` per recipient mailbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hmac
import json
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, Session, TLSSetupException

from ...checks.xdm import xdm_check
from ...formats.mime import KO_MARK, MdnShape, attachments, read_mdn
from ...world import errors
from ...world.faults import NETWORK, Fired
from ...world.journal import finding
from ...world.mss import CERT_TYPES, app_mailbox_by_password, is_mssante
from ...world.store import StorageFull, Tx
from ..context import DoorContext
from ..loop import SocketDoor, network_fault
from . import errors as status
from .data import NOMINAL, TOO_LONG, DataReader
from .errors import Refusal, status_for

log = logging.getLogger("mockbench.mss")

MIB = 1024 * 1024
TOKEN_TYPES = ("PER", "ORG")    # DOMAIN.md section 3: personal and organisational mailboxes use a PSC token


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


@dataclass(frozen=True)
class Identity:
    """Who authenticated on a session: the mailbox, its type, how, and as whom (professional or certificate)."""
    address: str
    type: str
    mechanism: str
    subject: str = ""


@dataclass
class Outcome:
    ok: bool
    line: str
    value: Any = None


# RFC 5322 section of each field header_problems may name
RFC5322_SECTION = {"from": "3.6.2", "to": "3.6.3", "cc": "3.6.3", "date": "3.6.1", "message-id": "3.6.4",
                   "subject": "3.6.5", "disposition-notification-to": "RFC 8098 2.1",
                   "return-receipt-to": "3.6.2", "content-type": "RFC 2045 5.1"}


def header_findings(raw: bytes) -> list[dict]:
    """A header field the mail parser cannot read (`Message-ID: <>`, `From: "`) is a finding on a mail that
    is still delivered, never a temporary refusal (issue 17, point 12): an operator's MTA (Postfix, as the
    MSSanté operators run) carries the content as it is and checks only the envelope, and a 4xx would make the
    client retry the same bytes forever. The recipient judges the fields."""
    from ...formats.mime import header_problems

    out = []
    for name, why in header_problems(raw):
        section = RFC5322_SECTION.get(name.lower(), "3.6")
        where = section if section.startswith("RFC") else f"RFC 5322 {section}"
        out.append(finding("MIME/HEADER", f"the {name} field cannot be parsed ({where}): {why}; the mail was "
                           "delivered with the field as it is", "error",
                           fr=f"le champ {name} ne peut pas être analysé ({where}) : {why} ; le courriel a été remis avec le champ tel quel"))
    return out


# --- MDNs the software under test sends (MSS/UX.12) ----------------------------------------------------------

def mdn_findings(shape: MdnShape, original_errors: list[dict] | None,
                 original_attachments: list[str] | None = None) -> list[dict]:
    """MSS/UX.12 findings on an MDN the software under test submits, by the rules the bench's own error MDNs
    follow (trans-cda-mss/struct-msg-mdn.md): not RFC 8098-shaped; answering a message whose package the bench
    found broken (`original_errors`) without an error disposition; an error disposition not in the ANS form
    code^label; an error MDN without the subject `[KO Intégration système !][code] ...`, without
    Original-Message-ID or Original-Recipient, or without the original's attachments
    (`original_attachments`, upper-cased names) returned."""
    rule = "MSS/UX.12"
    out = [finding(rule, f"the MDN is not well formed: {p}", "error",
                   fr=f"l'accusé de réception (MDN) est mal formé : {p}") for p in shape.problems]
    if original_errors and shape.error is None and not shape.problems:
        reasons = "; ".join(f["message"] for f in original_errors[:3])
        out.append(finding(rule, f"the MDN answering {shape.original or 'the message'} reports no error, but its "
                           f"package could not be integrated ({reasons}): processed/Error: code^label was "
                           "expected", "error",
                           fr=f"le MDN répondant à {shape.original or 'ce message'} ne signale aucune erreur, mais son paquet n'a pas pu être intégré (" + "; ".join(f.get("message_fr") or f["message"] for f in original_errors[:3]) + ") : processed/Error: code^libellé était attendu"))
    if shape.error is None:
        return out
    if "^" not in shape.error:
        out.append(finding(rule, f"the error disposition {shape.error!r} is not in the ANS form code^label",
                           "warning",
                           fr=f"la disposition d'erreur {shape.error!r} n'est pas de la forme code^libellé de l'ANS"))
    code = shape.error.split("^")[0].strip()
    if not shape.subject.startswith(f"{KO_MARK}[{code}]"):
        out.append(finding(rule, f"the error MDN's subject {shape.subject[:80]!r} does not start with "
                           f"{KO_MARK}[{code}] (trans-cda-mss/struct-msg-mdn.md)", "error",
                           fr=f"l'objet du MDN d'erreur {shape.subject[:80]!r} ne commence pas par {KO_MARK}[{code}] (trans-cda-mss/struct-msg-mdn.md)"))
    for present, name in ((shape.original_message_id, "Original-Message-ID"),
                          (shape.original_recipient, "Original-Recipient")):
        if not present:
            out.append(finding(rule, f"the error MDN has no {name} field: the PFI that reads it needs it "
                               "(trans-cda-mss/struct-msg-mdn.md)", "error",
                               fr=f"le MDN d'erreur n'a pas de champ {name} : le PFI qui le lit en a besoin (trans-cda-mss/struct-msg-mdn.md)"))
    missing = [n for n in (original_attachments or []) if n not in shape.attachments]
    if missing:
        out.append(finding(rule, f"the error MDN does not return the original's attachments ({', '.join(missing)}); "
                           "trans-cda-mss/struct-msg-mdn.md asks for them", "error",
                           fr=f"le MDN d'erreur ne renvoie pas les pièces jointes du message d'origine ({', '.join(missing)}) ; trans-cda-mss/struct-msg-mdn.md les demande"))
    return out


def count_header_fields(raw: bytes, stop_after: int) -> int:
    """Header fields before the first empty line (continuation lines do not count), up to `stop_after`+1.
    Lines are LF-ended, trailing CRs ignored; at most stop_after*4 lines and the rest are looked at. The lines
    are found one by one: splitting the whole message would cut its body too."""
    count = 0
    start = 0
    pieces = stop_after * 4
    for n in range(pieces + 1):
        end = raw.find(b"\n", start) if n < pieces else -1
        line = (raw[start:] if end < 0 else raw[start:end]).rstrip(b"\r")
        if not line:
            break
        if line[:1] not in (b" ", b"\t"):
            count += 1
            if count > stop_after:
                break
        if end < 0:
            break
        start = end + 1
    return count


class _Session(Session):
    """aiosmtpd's Session whose legacy `login_data` does not log a deprecation warning on every AUTH."""

    login_data = property(lambda self: self._login_data, lambda self, value: setattr(self, "_login_data", value))


# --- The engine --------------------------------------------------------------------------------------------

AUTH_LINE_LIMIT = 12288


class MssSmtp(SMTP):
    """aiosmtpd's engine with the door's authentication and replies; one per connection."""

    def __init__(self, door: SmtpDoor, handler: MssHandler, loop: asyncio.AbstractEventLoop) -> None:
        s = door.settings
        self.door = door
        # Instance attributes, read by the engine's __init__: its class-level dict is shared by all connections.
        # The engine sizes its command line reader with line_length_limit: room for an AUTH line (below);
        # DATA lines keep the RFC 5321 limit through data_line_limit.
        self.line_length_limit = max(s.limits.line_length, AUTH_LINE_LIMIT)
        self.data_line_limit = s.limits.line_length
        self.command_size_limit = s.limits.command_length
        self.command_size_limits = collections.defaultdict(lambda: s.limits.command_length)
        super().__init__(
            handler, data_size_limit=s.limits.data_size, hostname=s.hostname, ident="mockbench MSSante ESMTP",
            tls_context=door.tls_context, require_starttls=s.require_starttls and door.tls_context is not None,
            timeout=s.limits.timeout, auth_required=False,  # checked by check_auth_needed below
            auth_require_tls=s.auth_require_tls and door.tls_context is not None, authenticator=self._password,
            auth_exclude_mechanism=[] if s.password is not None else ["PLAIN", "LOGIN"], loop=loop)
        # RFC 4954 section 4: an AUTH line may reach 12288 octets (an XOAUTH2/OAUTHBEARER initial response
        # carries a whole access token; Pro Santé Connect's are signed JWTs). The engine's __init__ cleared the
        # per-command limits; other commands stay at command_length.
        self.command_size_limits["AUTH"] = AUTH_LINE_LIMIT

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.door.cap.release()

    @property
    def identity(self) -> Identity | None:
        return self.session.auth_data if self.session is not None and self.session.authenticated else None

    # Replies and errors ---------------------------------------------------------------------------------
    async def push(self, status_line: str | bytes) -> None:
        text = status_line.decode("ascii", "replace") if isinstance(status_line, bytes) else status_line
        named = status.ENGINE_REPLIES.get(text)
        if named is not None:
            st, code = named
            status_line = st.line()
            if code in ("SIZE_EXCEEDED", "LINE_TOO_LONG"):
                envelope = self.envelope
                self.door.refused("SUBMIT", self._actor(), Refusal(st, code, st.text),
                                  recipients=list(envelope.rcpt_tos) if envelope else [])
        trickle = getattr(self, "_trickle", None)
        if trickle is not None:   # a trickle fault rule: each reply a few bytes at a time
            line = status_line.encode("ascii", "replace") if isinstance(status_line, str) else status_line
            await network_fault(trickle, self._reader, self._writer, line + b"\r\n")
            return
        await super().push(status_line)

    async def handle_exception(self, error: Exception) -> str:
        """The one place where an unexpected error becomes a reply: 451, journaled."""
        if isinstance(error, TLSSetupException):
            return status.TEMPORARY.line("TLS handshake failed")
        if isinstance(error, StorageFull):   # logged once by the store; the journal cannot take an entry
            if self.envelope is not None and self.envelope.content is not None:
                self.envelope = self._create_envelope()
            return status.STORAGE_FULL.line()
        log.exception("SMTP session from %s failed", self.session.peer if self.session else "?")
        if self.envelope is not None and self.envelope.content is not None:
            self.envelope = self._create_envelope()  # the DATA was consumed: the transaction is over
        try:
            self.door.failed(self._actor(), error)
        except Exception:
            log.exception("could not journal an SMTP failure")
        return status.TEMPORARY.line()

    def _actor(self) -> str:
        identity = self.identity
        if identity is not None:
            return identity.address
        if self.envelope is not None and self.envelope.mail_from:
            return self.envelope.mail_from
        return "{}:{}".format(*self.session.peer[:2]) if self.session and self.session.peer else ""

    # DATA -----------------------------------------------------------------------------------------------
    DATA_BLOCK = 256 * 1024   # the most one read takes from the stream (asyncio's transports read 256 KiB)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's `smtp_DATA` with the body read in blocks (data.py): the same checks and replies, in the
        same order. The bytes read past the terminator (pipelined commands) go back to the stream's buffer,
        where the command loop reads them; without that buffer (another asyncio), aiosmtpd's own loop."""
        if self._decode_data or not isinstance(getattr(self._reader, "_buffer", None), bytearray):
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = DataReader(self.data_size_limit, self.data_line_limit)
        while self.transport is not None:
            try:
                chunk = await self._reader.read(self.DATA_BLOCK)
            except asyncio.CancelledError:   # eof_received cancels the handler: the client left mid-DATA
                log.info("Connection lost during DATA")
                self._writer.close()
                raise
            if not chunk:                    # end of stream without the cancellation: nothing is stored
                log.info("Connection lost during DATA")
                self._writer.close()
                return
            rest = reader.feed(chunk)
            if rest is not None:
                if rest:
                    self._reader._buffer[:0] = rest
                break
        if not reader.done:
            return
        if reader.state != NOMINAL:
            if reader.state == TOO_LONG:
                await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            else:
                await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        content = reader.content()
        self.envelope.content = content
        self.envelope.original_content = content
        status_line = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status_line is MISSING else status_line)

    # Authentication -------------------------------------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        """aiosmtpd's EHLO, with AUTH EXTERNAL advertised only on a TLS connection: without TLS there is no
        client certificate for it to use (RFC 4422 appendix A, MSS/CONF.01)."""
        if self._tls_protocol is not None:
            await super().smtp_EHLO(hostname)
            return
        external = self._auth_methods.pop("EXTERNAL", None)
        try:
            await super().smtp_EHLO(hostname)
        finally:
            if external is not None:
                self._auth_methods["EXTERNAL"] = external

    async def check_auth_needed(self, caller_method: str) -> bool:
        if not self.door.settings.auth_required or self.identity is not None:
            return False
        if caller_method == "MAIL":
            refusal = Refusal(status.AUTH_REQUIRED, "AUTH_REQUIRED", status.AUTH_REQUIRED.text)
            await self.push(self.door.refused("SUBMIT", self._actor(), refusal))
        else:
            await self.push(status.AUTH_REQUIRED.line())
        return True

    async def _handle_client(self) -> None:
        """aiosmtpd's session, after a network fault rule met at the connection (world/faults.py, operation
        SMTP_CONNECT): reset or timeout end it before the greeting; delay holds the greeting; trickle writes
        every reply of the session a few bytes at a time."""
        fired = self.door.network_fault("SMTP_CONNECT", self._actor())
        if fired is not None:
            if fired.kind in ("reset", "timeout"):
                await network_fault(fired, self._reader, self._writer, b"")
                return
            if fired.kind == "delay":
                await asyncio.sleep(fired.params["seconds"])
            else:
                self._trickle = fired
        await super()._handle_client()

    async def _injected(self, stage: str) -> bool:
        """A fault rule's reply at this stage (world/faults.py), journaled by the door; 421 closes the
        connection (RFC 5321, 3.8: the server closes after it)."""
        line = self.door.fault_reply(stage, self._actor())
        if line is None:
            return False
        await self.push(line)
        if line.startswith("421") and self.transport is not None:
            self.transport.close()
        return True

    async def smtp_RCPT(self, arg: str | None) -> None:
        if self.envelope is not None and self.envelope.mail_from and await self._injected("RCPT"):
            return
        await super().smtp_RCPT(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if self.session is not None and self.session.host_name and await self._injected("MAIL"):
            return
        identity = self.identity
        if identity is not None and arg is not None:
            stripped = self._strip_command_keyword("FROM:", arg)
            address = self._getaddr(stripped)[0] if stripped is not None else None
            if address and address.lower() != identity.address:
                refusal = Refusal(status.SENDER_MISMATCH, "SENDER_MISMATCH",
                                  f"<{address}> is not the authenticated mailbox <{identity.address}>",
                                  rule="MSS/SMTP")
                await self.push(self.door.refused("SUBMIT", identity.address, refusal))
                return
        await super().smtp_MAIL(arg)

    def _password(self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = data.login.decode("utf-8", "replace").strip().lower()
        password = data.password.decode("utf-8", "replace")
        return self._result(self.door.authenticate(mechanism, login, password=password))

    @staticmethod
    def _result(outcome: Outcome) -> AuthResult:
        if outcome.ok:
            return AuthResult(success=True, auth_data=outcome.value, message=outcome.line)
        return AuthResult(success=False, handled=False, message=outcome.line)

    async def _sasl_response(self, args: list[str]) -> bytes | None:
        """The initial response (RFC 4954), or the answer to an empty challenge; None when aborted."""
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return None
        blob = await self.challenge_auth("")
        return None if blob is MISSING else blob

    async def _bearer(self, mechanism: str, args: list[str], parse: Callable[[str], tuple[str, str]]) -> AuthResult:
        blob = await self._sasl_response(args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        user, token = parse(blob.decode("utf-8", "replace"))
        outcome = self.door.authenticate(mechanism, user.strip().lower(), token=token)
        if outcome.ok:
            return self._result(outcome)
        # XOAUTH2 and RFC 7628 3.2.2: an error challenge (JSON), the client's dummy answer, then the final 535.
        error = {"status": "invalid_token", "schemes": "bearer", "scope": "openid"}
        answer = await self.challenge_auth(json.dumps(error).encode())
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=outcome.line)

    async def auth_XOAUTH2(self, _: Any, args: list[str]) -> AuthResult:
        def parse(text: str) -> tuple[str, str]:
            items = dict(p.split("=", 1) for p in text.split("\x01") if "=" in p)
            return items.get("user", ""), _bearer_token(items.get("auth", ""))
        return await self._bearer("XOAUTH2", args, parse)

    async def auth_OAUTHBEARER(self, _: Any, args: list[str]) -> AuthResult:
        def parse(text: str) -> tuple[str, str]:
            gs2, _, rest = text.partition("\x01")       # n,a=user@example.org,
            user = next((p[2:] for p in gs2.split(",") if p.startswith("a=")), "")
            items = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
            return user.replace("=2C", ",").replace("=3D", "="), _bearer_token(items.get("auth", ""))
        return await self._bearer("OAUTHBEARER", args, parse)

    async def auth_EXTERNAL(self, _: Any, args: list[str]) -> AuthResult:
        blob = await self._sasl_response(args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        peercert = (self.session.ssl or {}).get("peercert") if self.session else None
        authzid = blob.decode("utf-8", "replace").strip().lower()
        return self._result(self.door.authenticate("EXTERNAL", authzid, peercert=peercert or None,
                                                   tls=self._tls_protocol is not None))


def mechanism_findings(identity: Identity) -> list[dict]:
    """MSS/CONF.01 on an accepted authentication (the world's rule, world/mss.py). (Certificates on PER and ORG
    mailboxes are refused outright, in `_by_certificate`.)"""
    if identity.mechanism == "EXTERNAL":
        return []
    return app_mailbox_by_password(identity.type, identity.address, done=f"authenticated with {identity.mechanism}",
                                   done_fr=f"s'est authentifiée par {identity.mechanism}", opens="authenticates",
                                   opens_fr="s'authentifie par", command="AUTH EXTERNAL")


def _bearer_token(auth: str) -> str:
    scheme, _, token = auth.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def certificate_identity(world: Any, tx: Tx, authzid: str, peercert: dict | None, tls: bool) -> Identity:
    """AUTH EXTERNAL (SMTP and IMAP) with the TLS client certificate, MSS/CONF.01: only applicative (APP)
    mailboxes. Two kinds of certificate open one:
    - a mailbox certificate, whose rfc822Name SAN is the mailbox (the authorization identity, if given, must
      be that address);
    - the structure's own ORG_AUTH_CLI-style certificate (no email SAN; O the structure, OU its IDNST, the
      certificate a DPI already holds for the DMP, which the seed says may be reused): the authorization
      identity names the APP mailbox, which the structure whose IDNST (or FINESS) the OU carries must own."""
    from ...pki import describe_peer

    if not tls or not peercert:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_MISSING",
                      "EXTERNAL needs STARTTLS with a client certificate", rule="MSS/CONF.01")
    peer = describe_peer(peercert)
    address = (peer["email"] or "").lower()
    if not address:
        return _structure_certificate(world, tx, authzid, peer)
    if authzid and authzid != address:
        wanted = _known_mailbox(world, tx, authzid)
        if wanted is not None and wanted.type not in CERT_TYPES:   # the rule first: MSS/CONF.01
            raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NOT_ALLOWED",
                          f"client certificate authentication is for applicative (APP) mailboxes only; "
                          f"{wanted.address} is {wanted.type} (MSS/CONF.01)", rule="MSS/CONF.01")
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_MISMATCH",
                      f"the client certificate is for {address}, not {authzid}", rule="MSS/CONF.01")
    box = _cert_mailbox(world, tx, address)
    return Identity(box.address, box.type, "EXTERNAL", peer["common_name"] or "")


def _known_mailbox(world: Any, tx: Tx, address: str) -> Any:
    if not is_mssante(address):
        return None
    try:
        return world.mss.mailbox_for(tx, address)
    except errors.WorldError:
        return None


def _cert_mailbox(world: Any, tx: Tx, address: str) -> Any:
    if not address or not is_mssante(address):
        raise Refusal(status.AUTH_INVALID, "MAILBOX_UNKNOWN", f"{address or '(no user)'} is not an MSSanté "
                      "mailbox of this world")
    box = world.mss.mailbox_for(tx, address)
    if box.type not in CERT_TYPES:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NOT_ALLOWED",
                      f"client certificate authentication is for applicative (APP) mailboxes only; "
                      f"{box.address} is {box.type} (MSS/CONF.01)", rule="MSS/CONF.01")
    return box


def _structure_certificate(world: Any, tx: Tx, authzid: str, peer: dict) -> Identity:
    who = f"{peer['common_name'] or '?'}, O={peer['organization'] or '?'}, OU={peer['organizational_unit'] or '?'}"
    if not authzid:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NO_EMAIL",
                      f"the client certificate ({who}) names no mailbox in an email SAN: a structure's certificate "
                      "gives the applicative mailbox as authorization identity", rule="MSS/CONF.01")
    box = _cert_mailbox(world, tx, authzid)
    unit = (peer["organizational_unit"] or "").strip()
    try:
        structure = world.directory.structure(tx, unit) if unit else None
    except errors.UnknownStructure:
        structure = None
    if structure is None or structure.id != box.owner:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NOT_OWNER",
                      f"the client certificate's structure ({who}: "
                      f"{structure.id if structure else 'no structure of this world'}) does not own {box.address} "
                      f"(owner {box.owner or 'none'})", rule="MSS/CONF.01")
    return Identity(box.address, box.type, "EXTERNAL", f"{peer['common_name'] or ''} ({structure.id})".strip())


# --- The handler -------------------------------------------------------------------------------------------

class MssHandler:
    """Two hooks, each one door call. aiosmtpd makes handle_RCPT add the recipient to the envelope itself."""

    def __init__(self, door: SmtpDoor) -> None:
        self.door = door

    async def handle_RCPT(self, server: MssSmtp, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        outcome = self.door.recipient(envelope.mail_from or "", address, len(envelope.rcpt_tos))
        if outcome.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return outcome.line

    async def handle_DATA(self, server: MssSmtp, session: Any, envelope: Any) -> str:
        line = self.door.fault_reply("DATA", envelope.mail_from or "")
        if line is not None:   # after the final dot: nothing is delivered
            if line.startswith("421") and server.transport is not None:
                asyncio.get_running_loop().call_soon(server.transport.close)   # after the reply is written
            return line
        return await asyncio.to_thread(self.door.submit, envelope.mail_from or "", list(envelope.rcpt_tos),
                                       bytes(envelope.original_content or b""))


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
        self._handler = MssHandler(self)
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
            engine = MssSmtp(self, self._handler, loop)
            self._sessions.add(engine)
            return engine

        self._server = await loop.create_server(session, self.host, self.port)

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
        if box.type not in TOKEN_TYPES:
            raise Refusal(status.AUTH_INVALID, "AUTH_MECHANISM_REFUSED",
                          f"{mechanism}: token authentication is for PER and ORG mailboxes; {box.address} is "
                          f"{box.type} (MSS/CONF.01: applicative mailboxes use a client certificate)", rule="MSS/CONF.01")
        row = self.world.tokens.verify(tx, token, kind="access")
        professional = row["professional"]
        if box.type == "PER" and box.owner != professional:
            raise Refusal(status.AUTH_INVALID, "TOKEN_NOT_OWNER",
                          f"the token's professional {professional or '(none)'} does not own {box.address}")
        if box.type == "ORG":
            structure = self.world.directory.professional(tx, professional).structure if professional else ""
            if not structure or structure != box.owner:
                raise Refusal(status.AUTH_INVALID, "TOKEN_NOT_MEMBER",
                              f"the token's professional {professional or '(none)'} does not work in "
                              f"{box.owner or '(no structure)'}, which owns {box.address}")
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
