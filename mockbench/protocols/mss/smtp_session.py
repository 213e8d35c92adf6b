"""The SMTP session: aiosmtpd's `SMTP` engine with the door's policy (`MssSmtp`, one per connection) and the two
handler hooks (`MssHandler`). The engine owns the wire (command order, the limits); `MssSmtp` reads DATA in
blocks with aiosmtpd's own rules and replies (data.py), and adds the SASL mechanisms MSSanté uses (PLAIN/LOGIN
with the bench password, XOAUTH2 and OAUTHBEARER with a bearer token from the world's token service, EXTERNAL
with the TLS client certificate), the binding of MAIL FROM to the authenticated mailbox, the status table's
wording, fault rules and `handle_exception`. Each hook is one call to the door (smtp.py)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, Session, TLSSetupException

from ...world.store import UNAVAILABLE, StorageFull
from ..loop import network_fault
from . import errors as status
from .auth import Identity, Outcome, bearer_token
from .data import NOMINAL, TOO_LONG, DataReader, read_data
from .errors import Refusal

if TYPE_CHECKING:
    from .smtp import SmtpDoor

log = logging.getLogger("mockbench.mss")


class _Session(Session):
    """aiosmtpd's Session whose legacy `login_data` does not log a deprecation warning on every AUTH."""

    login_data = property(lambda self: self._login_data, lambda self, value: setattr(self, "_login_data", value))


# --- The engine --------------------------------------------------------------------------------------------

AUTH_LINE_LIMIT = 12288
ADDRESS_MEMO = 4096     # parsed MAIL/RCPT arguments kept by a door (a bench sees a few senders and recipients)


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
        await super().push(status_line if isinstance(status_line, str) else status_line.decode("ascii", "replace"))

    async def handle_exception(self, error: Exception) -> str:
        """The one place where an unexpected error becomes a reply: 451, journaled."""
        if isinstance(error, TLSSetupException):
            return status.TEMPORARY.line("TLS handshake failed")
        if isinstance(error, UNAVAILABLE):   # logged once by the store; not journaled either
            if self.envelope is not None and self.envelope.content is not None:
                self.envelope = self._create_envelope()
            return (status.STORAGE_FULL if isinstance(error, StorageFull) else status.BUSY).line()
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
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's `smtp_DATA` with the body read in blocks (data.py): the same checks and replies, in the
        same order. The stream is read with its public calls only, never past the terminator: the bytes after it
        (pipelined commands) stay in the stream for the command loop."""
        if self._decode_data:
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
        try:
            done = await read_data(self._reader, reader)
        except asyncio.CancelledError:   # eof_received cancels the handler: the client left mid-DATA
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        if not done:                         # end of stream without the cancellation: nothing is stored
            log.info("Connection lost during DATA")
            self._writer.close()
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

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parser of a MAIL or RCPT address (email's `get_angle_addr`, about 50 µs a call, twice per
        MAIL), its answers kept by the handler: a function of the argument and of `local_part_limit`, which is
        the same for every session of the door. Bounded: cleared past ADDRESS_MEMO entries."""
        memo = self.event_handler.addresses
        found = memo.get(arg)
        if found is None:
            if len(memo) >= ADDRESS_MEMO:
                memo.clear()
            found = memo[arg] = SMTP._getaddr(self, arg)
        return found

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
            return items.get("user", ""), bearer_token(items.get("auth", ""))
        return await self._bearer("XOAUTH2", args, parse)

    async def auth_OAUTHBEARER(self, _: Any, args: list[str]) -> AuthResult:
        def parse(text: str) -> tuple[str, str]:
            gs2, _, rest = text.partition("\x01")       # n,a=user@example.org,
            user = next((p[2:] for p in gs2.split(",") if p.startswith("a=")), "")
            items = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
            return user.replace("=2C", ",").replace("=3D", "="), bearer_token(items.get("auth", ""))
        return await self._bearer("OAUTHBEARER", args, parse)

    async def auth_EXTERNAL(self, _: Any, args: list[str]) -> AuthResult:
        blob = await self._sasl_response(args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        peercert = (self.session.ssl or {}).get("peercert") if self.session else None
        authzid = blob.decode("utf-8", "replace").strip().lower()
        return self._result(self.door.authenticate("EXTERNAL", authzid, peercert=peercert or None,
                                                   tls=self._tls_protocol is not None))


# --- The handler -------------------------------------------------------------------------------------------

class MssHandler:
    """Two hooks, each one door call. aiosmtpd makes handle_RCPT add the recipient to the envelope itself."""

    def __init__(self, door: SmtpDoor) -> None:
        self.door = door
        self.addresses: dict[str, tuple[str | None, str | None]] = {}   # MssSmtp._getaddr's answers

    async def handle_RCPT(self, server: MssSmtp, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        # In a worker thread, as DATA: the look-up takes the store's lock, which another session's delivery may
        # hold for milliseconds; the event loop serves every session meanwhile. This session waits for it.
        outcome = await asyncio.to_thread(self.door.recipient, envelope.mail_from or "", address,
                                          len(envelope.rcpt_tos))
        if outcome.ok:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return outcome.line

    async def handle_DATA(self, server: MssSmtp, session: Any, envelope: Any) -> str:
        """The fault rules of the DATA stage, then the submission, in a worker thread: the event loop goes on
        serving the other sessions while this one's mail is checked and stored, and the 250 is written only
        after the delivery committed."""
        line, faulted = await asyncio.to_thread(self.door.data, envelope.mail_from or "", list(envelope.rcpt_tos),
                                                bytes(envelope.original_content or b""))
        if faulted and line.startswith("421") and server.transport is not None:
            asyncio.get_running_loop().call_soon(server.transport.close)   # after the reply is written
        return line
