"""The MSSanté IMAP door: IMAP4rev1 (RFC 3501) over the world's mailboxes, one INBOX per login.

The login IS the mailbox: a client authenticates as a mailbox address (LOGIN with the bench password,
AUTHENTICATE PLAIN, or AUTHENTICATE XOAUTH2 with an access token the OIDC door issued, for a personal
mailbox's owner or an organisational mailbox's structure member) and sees that mailbox as INBOX. Each
command reads or changes the world in one transaction; flags and expunges are the world's, so the control
API, the SMTP door and other IMAP sessions see them at once. A message fetched is the bytes delivered.

Written by hand on asyncio rather than on pymap: plugging the world in as a pymap backend meant its login,
identity, session, mailbox-set and versioned mailbox-data interfaces plus its argparse-driven service set-up,
more glue than this whole door. The wire details (reader, tokens, BODYSTRUCTURE) are in imap_wire.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...world import errors, events
from ...world.faults import NETWORK
from ...world.journal import finding
from ...world.model import Mailbox, Message
from ...world.mss import INBOX, app_mailbox_by_password, is_mssante, uid_counter
from ...world.store import StorageFull, Tx
from ..context import DoorContext
from ..loop import SocketDoor, network_fault
from .imap_wire import (
    Atom,
    CommandReader,
    ImapLimits,
    ImapProtocolError,
    SeqSet,
    as_text,
    bodystructure,
    boundary_parts,
    decoded,
    envelope,
    header_fields,
    literal,
    parse_headers,
    quote,
    split_entity,
    tokenize,
    valid_tag,
)

if TYPE_CHECKING:
    from ...config import Config
    from ...pki import TlsFiles

log = logging.getLogger("mockbench.imap")

STREAM_LIMIT = 64 * 1024          # asyncio buffer; lines beyond ImapLimits.line_length are refused anyway
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
UIDVALIDITY_META = "imap-uidvalidity:"
SEQ_META = "seq:"                  # Tx.next_seq's meta prefix: a folder's UID counter (world/mss.py uid_counter)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

NOT_AUTHENTICATED, AUTHENTICATED, SELECTED, LOGOUT = "not authenticated", "authenticated", "selected", "logout"


@dataclass(frozen=True)
class ImapSettings:
    host: str = "127.0.0.1"
    port: int = 1143
    limits: ImapLimits = ImapLimits()
    password: str | None = "mockbench"      # LOGIN / AUTHENTICATE PLAIN password of every mailbox; None: off
    poll_interval: float = 0.5               # how often an IDLE session looks for new mail
    tls: ssl.SSLContext | None = None        # STARTTLS offered when set
    # With TLS: no authentication in clear (RFC 3501 6.2.3 LOGINDISABLED, 11.1; Dovecot's default
    # disable_plaintext_auth): before STARTTLS, LOGINDISABLED and no AUTH= are advertised and LOGIN /
    # AUTHENTICATE get NO [PRIVACYREQUIRED] (RFC 5530). [doors.mss] auth_require_tls = false lifts it.
    auth_require_tls: bool = True
    max_connections: int = 128               # sessions at once; beyond, greeted with BYE and closed


class ImapRefusal(Exception):
    """A command refused with a tagged NO (or BAD) and a text; `code` is the response code ([...])."""

    def __init__(self, text: str, *, code: str = "", bad: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.bad = bad


# Which states each command is valid in (RFC 3501 section 6).
ANY = (NOT_AUTHENTICATED, AUTHENTICATED, SELECTED)
AUTH = (AUTHENTICATED, SELECTED)
COMMANDS: dict[str, tuple[str, ...]] = {
    "CAPABILITY": ANY, "NOOP": ANY, "LOGOUT": ANY, "ID": ANY,
    "STARTTLS": (NOT_AUTHENTICATED,), "LOGIN": (NOT_AUTHENTICATED,), "AUTHENTICATE": (NOT_AUTHENTICATED,),
    "SELECT": AUTH, "EXAMINE": AUTH, "LIST": AUTH, "LSUB": AUTH, "STATUS": AUTH, "SUBSCRIBE": AUTH,
    "UNSUBSCRIBE": AUTH, "CREATE": AUTH, "DELETE": AUTH, "RENAME": AUTH, "APPEND": AUTH, "NAMESPACE": AUTH,
    "CHECK": (SELECTED,), "CLOSE": (SELECTED,), "UNSELECT": (SELECTED,), "EXPUNGE": (SELECTED,),
    "SEARCH": (SELECTED,), "FETCH": (SELECTED,), "STORE": (SELECTED,), "COPY": (SELECTED,), "MOVE": (SELECTED,),
    "UID": (SELECTED,),
    "IDLE": AUTH,
}


class ImapDoor(SocketDoor):
    name = "mss"
    port_name = "imap"
    cap_setting = "imap_max_connections"
    thread = "mockbench-imap"
    stream_limit = STREAM_LIMIT
    # RFC 3501 §7.1.5: BYE may be the greeting, when the server refuses the connection; RFC 5530 §3:
    # UNAVAILABLE, a temporary shortage of a resource.
    refusal = b"* BYE [UNAVAILABLE] too many connections to this server; try again later\r\n"

    def __init__(self, context: DoorContext, settings: ImapSettings | None = None) -> None:
        self.settings = settings or ImapSettings()
        super().__init__(context, host=self.settings.host, port=self.settings.port,
                         max_connections=self.settings.max_connections)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ImapSession(self, reader, writer)
        try:
            if not await self._network_fault(session, reader, writer):
                return
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # the door is stopping: end the connection quietly
        except Exception:
            log.exception("IMAP connection from %s failed", session.peer)

    async def _network_fault(self, session: ImapSession, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> bool:
        """A network fault rule met at the connection (world/faults.py, operation IMAP_CONNECT), journaled:
        reset and timeout end it before the greeting, delay holds the greeting, trickle writes it a few bytes
        at a time. Returns whether the session goes on."""
        if not self.world.faults.armed("mss"):
            return True
        with self.world.transaction() as tx:
            fired = self.world.faults.decide(tx, "mss", "IMAP_CONNECT", kinds=NETWORK)
            if fired is None:
                return True
            self.world.journal.append(tx, "mss", "IMAP_CONNECT", actor=session.peer,
                                      verdict="error" if fired.refusing else "accepted",
                                      code=f"FAULT_{fired.kind.upper()}", fault=fired.rule, raw=fired.kind)
        if fired.kind in ("reset", "timeout"):
            await network_fault(fired, reader, writer, b"")
            return False
        if fired.kind == "delay":
            await asyncio.sleep(fired.params["seconds"])
        else:
            await network_fault(fired, reader, writer, session.greeting() + b"\r\n")
            session.greeted = True
        return True


@dataclass
class FetchItem:
    name: str                    # FLAGS, UID, BODY, BODYSTRUCTURE, RFC822, ...
    section: str = ""            # for BODY[...]: "", HEADER, TEXT, 1.2, HEADER.FIELDS (A B) ...
    partial: tuple[int, int] | None = None
    peek: bool = False
    label: str = ""              # how it is named in the answer

    @property
    def sets_seen(self) -> bool:
        return (self.name == "BODY" and not self.peek and self.label.startswith("BODY[")) or \
            self.name in ("RFC822", "RFC822.TEXT")

    @property
    def has_content(self) -> bool:
        return self.label.startswith("BODY[") or self.name in ("RFC822", "RFC822.TEXT", "RFC822.HEADER")


@dataclass
class ImapSession:
    door: ImapDoor
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    state: str = NOT_AUTHENTICATED
    address: str = ""
    folder: str = INBOX                              # the selected folder
    readonly: bool = False
    uids: list[int] = field(default_factory=list)   # sequence number n is uids[n - 1], as the client knows it
    tls_active: bool = False
    peer: str = ""
    greeted: bool = False                            # a trickle fault rule wrote the greeting already

    def __post_init__(self) -> None:
        self.world = self.door.world
        self.settings = self.door.settings
        self.limits = self.settings.limits
        self.io = CommandReader(self.reader, self.writer, self.limits)
        peer = self.writer.get_extra_info("peername")
        self.peer = "{}:{}".format(*peer[:2]) if peer else ""

    # The loop -----------------------------------------------------------------------------------
    def greeting(self) -> bytes:
        return b"* OK [CAPABILITY " + self.capabilities().encode() + b"] mockbench IMAP4rev1 ready"

    async def run(self) -> None:
        if not self.greeted:
            self.send(self.greeting())
            await self.writer.drain()
        bad_in_a_row = 0
        for _ in range(self.limits.commands_per_connection):
            try:
                got = await asyncio.wait_for(self.io.command(), self.limits.inactivity_timeout)
            except TimeoutError:
                await self.bye("autologout: no command within the inactivity timeout")
                return
            except ImapProtocolError as exc:
                self.send(f"{exc.tag} BAD {exc.text}".encode())
                await self.writer.drain()
                bad_in_a_row += 1
                if exc.fatal or bad_in_a_row >= self.limits.bad_commands:
                    await self.bye("too many bad commands" if not exc.fatal else "the stream is out of sync")
                    return
                continue
            if got is None:
                return
            ok = await self.execute(*got)
            bad_in_a_row = 0 if ok else bad_in_a_row + 1
            await self.writer.drain()
            if self.state == LOGOUT:
                return
            if bad_in_a_row >= self.limits.bad_commands:
                await self.bye("too many bad commands")
                return
        await self.bye(f"command limit of {self.limits.commands_per_connection} per connection reached")

    async def bye(self, text: str) -> None:
        self.send(f"* BYE {text}".encode())
        try:
            await self.writer.drain()
        except ConnectionError:
            pass

    def send(self, data: bytes) -> None:
        self.writer.write(data + b"\r\n")

    def answer(self, tag: str, status: str, text: str) -> None:
        """A tagged (or untagged) status line; the text is kept to one line whatever an error message held."""
        self.send(f"{tag} {status} {' '.join(text.split())}".encode())

    async def execute(self, text: str, literals: list[bytes]) -> bool:
        """Run one command; False when it was answered BAD."""
        tag, _, rest = text.partition(" ")
        if not valid_tag(tag):
            self.send(b"* BAD the command has no valid tag")
            return False
        try:
            tokens = tokenize(rest, literals)
        except ImapProtocolError as exc:
            self.send(f"{tag} BAD {exc.text}".encode())
            return False
        if not tokens or not isinstance(tokens[0], Atom):
            self.send(f"{tag} BAD a command name is expected after the tag".encode())
            return False
        name = tokens[0].upper()
        args = tokens[1:]
        if name not in COMMANDS:
            self.send(f"{tag} BAD unknown command {name[:40]}: this server speaks IMAP4rev1 "
                      f"({', '.join(sorted(COMMANDS))})".encode())
            return False
        if self.state not in COMMANDS[name]:
            if self.state == NOT_AUTHENTICATED:
                self.send(f"{tag} NO {name} is not allowed before authentication: LOGIN or AUTHENTICATE first"
                          .encode())
            else:
                self.send(f"{tag} BAD {name} is not valid in the {self.state} state".encode())
            return self.state == NOT_AUTHENTICATED
        if self._injected(tag, name):
            return True
        try:
            handler = getattr(self, f"cmd_{name.lower()}")
            done = await handler(tag, args)
            self.answer(tag, "OK", done or f"{name} completed")
            return True
        except _AlreadyAnswered:
            return True
        except ImapRefusal as exc:
            code = f"[{exc.code}] " if exc.code else ""
            self.answer(tag, "BAD" if exc.bad else "NO", code + exc.text)
            return not exc.bad
        except ImapProtocolError as exc:
            self.answer(tag, "BAD", exc.text)
            return False
        except errors.WorldError as exc:
            self.answer(tag, "NO", f"[{exc.code}] {exc}")
            return True
        except (ConnectionError, asyncio.CancelledError):
            raise
        except StorageFull:   # RFC 5530 3: UNAVAILABLE, a temporary failure of a subsystem (logged by the store)
            self.answer(tag, "NO", "[UNAVAILABLE] the bench's disk is full; try again later")
            return True
        except Exception as exc:
            log.exception("IMAP %s failed", name)
            with self.world.transaction() as tx:
                self.world.journal.append(tx, "mss", f"IMAP_{name}", actor=self.address or self.peer,
                                          verdict="error", code="INTERNAL_ERROR",
                                          findings=[finding("IMAP/SERVER", f"{type(exc).__name__}: {exc}",
                                                            "error",
                                                            fr=f"erreur interne du serveur IMAP : {type(exc).__name__}: {exc}")],
                                          raw=name if name in ("LOGIN", "AUTHENTICATE") else text[:500])
            self.send(f"{tag} NO [SERVERBUG] the server failed on {name}; the journal holds the details".encode())
            return True

    def _injected(self, tag: str, name: str) -> bool:
        """A fault rule met by this command (world/faults.py; matched on `IMAP_<COMMAND>`), journaled and
        answered before the command runs, so nothing changes: `imap_no` a tagged NO (RFC 3501 7.1.2; RFC 5530
        3, [UNAVAILABLE], a temporary failure), `imap_bye` an untagged BYE and the connection closed (RFC 3501
        7.1.5: the server is closing the connection)."""
        if not self.world.faults.armed("mss"):
            return False
        operation = f"IMAP_{name}"
        with self.world.transaction() as tx:
            fired = self.world.faults.decide(tx, "mss", operation, actor=self.address or None,
                                             kinds=("imap_bye", "imap_no"))
            if fired is None:
                return False
            self.world.journal.append(tx, "mss", operation, actor=self.address or self.peer, verdict="error",
                                      code=f"FAULT_{fired.kind.upper()}", fault=fired.rule,
                                      findings=[finding("FAULT", f"injected fault {fired.rule} ({fired.kind})",
                                                        "info", fr=f"panne injectée {fired.rule} ({fired.kind})")],
                                      raw=name)
        if fired.kind == "imap_no":
            self.answer(tag, "NO", fired.params["text"])
        else:
            self.send(f"* BYE {' '.join(fired.params['text'].split())}".encode())
            self.state = LOGOUT
        return True

    @property
    def clear_auth_refused(self) -> bool:
        """RFC 3501 6.2.3 and 11.1: with TLS offered, no credential crosses the wire before STARTTLS."""
        return self.settings.tls is not None and self.settings.auth_require_tls and not self.tls_active

    def capabilities(self) -> str:
        # NAMESPACE (RFC 2342), UIDPLUS (RFC 4315), MOVE (RFC 6851): a DPI files what it processed
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "IDLE", "UNSELECT", "ID", "NAMESPACE", "UIDPLUS", "MOVE"]
        if self.state == NOT_AUTHENTICATED:
            if self.settings.tls is not None and not self.tls_active:
                caps.append("STARTTLS")
            caps += ["LOGINDISABLED"] if self.clear_auth_refused else ["AUTH=PLAIN", "AUTH=XOAUTH2"]
            if self.tls_active:      # the client certificate of an applicative mailbox (MSS/CONF.01)
                caps.append("AUTH=EXTERNAL")
        return " ".join(caps)

    def _refuse_in_clear(self, what: str, user: str = "") -> None:
        if self.clear_auth_refused:
            with self.world.transaction() as tx:
                self._journal_login(tx, user.strip().lower(), ("PRIVACY_REQUIRED", f"{what} before STARTTLS: authentication in clear "
                                             "is refused when TLS is offered (RFC 3501 6.2.3)", ""), what)
            raise ImapRefusal(f"{what} is disabled before STARTTLS (LOGINDISABLED, RFC 3501 6.2.3): STARTTLS first",
                              code="PRIVACYREQUIRED")

    # Any state ----------------------------------------------------------------------------------
    async def cmd_capability(self, tag: str, args: list) -> None:
        self.send(b"* CAPABILITY " + self.capabilities().encode())

    async def cmd_noop(self, tag: str, args: list) -> None:
        if self.state == SELECTED:
            self.sync(expunges=True)

    async def cmd_check(self, tag: str, args: list) -> None:
        self.sync(expunges=True)

    async def cmd_logout(self, tag: str, args: list) -> None:
        self.send(b"* BYE mockbench IMAP4rev1 server logging out")
        self.state = LOGOUT

    async def cmd_id(self, tag: str, args: list) -> None:
        self.send(b'* ID ("name" "mockbench")')

    async def cmd_starttls(self, tag: str, args: list) -> str | None:
        context = self.settings.tls
        if context is None or self.tls_active:
            raise ImapRefusal("STARTTLS is not offered: the bench runs without --tls-dir" if context is None
                              else "TLS is already active")
        self.send(f"{tag} OK begin TLS negotiation now".encode())
        await self.writer.drain()
        await self.writer.start_tls(context)
        self.tls_active = True
        raise _AlreadyAnswered

    # Authentication -----------------------------------------------------------------------------
    async def cmd_login(self, tag: str, args: list) -> str:
        if len(args) != 2:
            raise ImapRefusal("LOGIN takes a user name (the mailbox address) and a password", bad=True)
        user, password = as_text(args[0]), as_text(args[1])
        self._refuse_in_clear("LOGIN", user)
        self._password_login(user, password, f"LOGIN {user}")
        return "LOGIN completed: INBOX is " + self.address

    async def cmd_authenticate(self, tag: str, args: list) -> str:
        if not args:
            raise ImapRefusal("AUTHENTICATE takes a mechanism: PLAIN or XOAUTH2", bad=True)
        mechanism = as_text(args[0]).upper()
        self._refuse_in_clear(f"AUTHENTICATE {mechanism[:20]}")
        if mechanism not in ("PLAIN", "XOAUTH2", "EXTERNAL"):
            raise ImapRefusal(f"mechanism {mechanism[:40]} is not supported: PLAIN, XOAUTH2 or EXTERNAL (after "
                              "STARTTLS)")
        if len(args) > 1:      # SASL-IR (RFC 4959)
            response = as_text(args[1])
        else:
            self.send(b"+ ")
            await self.writer.drain()
            line = await self.io.line()
            if line is None:
                raise ConnectionError("the client left during AUTHENTICATE")
            response = line.decode("ascii", "replace").strip()
        if response == "*":
            raise ImapRefusal("AUTHENTICATE cancelled by the client", bad=True)
        try:
            data = base64.b64decode(response, validate=True) if response != "=" else b""
        except (binascii.Error, ValueError):
            raise ImapRefusal("the AUTHENTICATE response is not base64", bad=True) from None
        if mechanism == "EXTERNAL":
            self._external(data.decode("utf-8", "replace").strip().lower())
            return "AUTHENTICATE completed: INBOX is " + self.address
        if mechanism == "PLAIN":
            parts = data.split(b"\x00")
            if len(parts) != 3:
                raise ImapRefusal("PLAIN expects authzid NUL authcid NUL password", bad=True)
            authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
            if authzid and authzid.lower() != user.lower():
                with self.world.transaction() as tx:
                    self._journal_login(tx, user, ("AUTHZID_REFUSED", "acting as another mailbox is not allowed",
                                                   ""), f"AUTHENTICATE PLAIN {user} as {authzid}")
                raise ImapRefusal("[AUTHORIZATIONFAILED] authorization identity must be the mailbox itself")
            self._password_login(user, password, f"AUTHENTICATE PLAIN {user}")
        else:
            self._xoauth2(data)
        return "AUTHENTICATE completed: INBOX is " + self.address

    def _password_login(self, user: str, password: str, raw: str) -> None:
        address = user.strip().lower()
        refusal: tuple[str, str, str] | None = None      # (journal code, reason, answer)
        with self.world.transaction() as tx:
            try:
                box = self._mailbox(tx, address)
            except errors.UnknownMailbox as exc:
                refusal = (exc.code, str(exc), f"no mailbox {address} in this world")
            else:
                if self.settings.password is None:
                    refusal = ("PASSWORD_LOGIN_OFF", "password login is turned off",
                               "password login is turned off on this bench: use AUTHENTICATE XOAUTH2")
                elif password != self.settings.password:
                    refusal = ("PASSWORD_WRONG", "wrong password", "wrong password for " + address)
            self._journal_login(tx, address, refusal, raw, warnings=[] if refusal else self._conf01(box, raw))
        if refusal is not None:
            raise ImapRefusal(refusal[2], code="AUTHENTICATIONFAILED")
        self.address, self.state = box.address, AUTHENTICATED

    @staticmethod
    def _conf01(box: Mailbox, raw: str) -> list[dict]:
        """MSS/CONF.01 (the world's rule, world/mss.py) on a LOGIN or AUTHENTICATE PLAIN."""
        how = raw.split(" ")[0] if raw.startswith("LOGIN") else " ".join(raw.split(" ")[:2])
        return app_mailbox_by_password(box.type, box.address, done=f"was opened with {how} and the password",
                                       done_fr=f"a été ouverte par {how} et le mot de passe", opens="is opened",
                                       opens_fr="s'ouvre avec", command="AUTHENTICATE EXTERNAL")

    def _external(self, authzid: str) -> None:
        """AUTHENTICATE EXTERNAL (RFC 4422 appendix A) with the TLS client certificate: the SMTP door's rule
        (smtp.certificate_identity, MSS/CONF.01), an APP mailbox's own certificate or its structure's."""
        from .errors import Refusal
        from .smtp import certificate_identity

        peercert = self.writer.get_extra_info("peercert") if self.tls_active else None
        refusal: tuple[str, str, str] | None = None
        with self.world.transaction() as tx:
            try:
                identity = certificate_identity(self.world, tx, authzid, peercert or None, self.tls_active)
            except (Refusal, errors.WorldError) as exc:
                text = exc.message if isinstance(exc, Refusal) else str(exc)
                refusal = (exc.code, text, text)
            self._journal_login(tx, authzid if refusal else identity.address, refusal,
                                f"AUTHENTICATE EXTERNAL {authzid}".strip())
        if refusal is not None:
            raise ImapRefusal(refusal[2], code="AUTHENTICATIONFAILED")
        self.address, self.state = identity.address, AUTHENTICATED

    def _xoauth2(self, data: bytes) -> None:
        fields = dict(part.split("=", 1) for part in data.decode("utf-8", "replace").split("\x01") if "=" in part)
        address = fields.get("user", "").strip().lower()
        auth = fields.get("auth", "")
        if not address or not auth.lower().startswith("bearer "):
            raise ImapRefusal("XOAUTH2 expects user=ADDRESS^Aauth=Bearer TOKEN^A^A", bad=True)
        token = auth[7:].strip()
        refusal: tuple[str, str, str] | None = None
        with self.world.transaction() as tx:
            try:
                box = self._mailbox(tx, address)
                row = self.world.tokens.verify(tx, token, kind="access")
                why_not = self._may_read(tx, box, row.get("professional", ""))
            except errors.WorldError as exc:
                why_not = (exc.code, str(exc))
            if why_not is not None:
                refusal = (why_not[0], why_not[1], f"{address}: {why_not[1]}")
            self._journal_login(tx, address, refusal, f"AUTHENTICATE XOAUTH2 user={address}")
        if refusal is not None:
            raise ImapRefusal(refusal[2], code="AUTHENTICATIONFAILED")
        self.address, self.state = box.address, AUTHENTICATED

    def _may_read(self, tx: Tx, box: Mailbox, professional: str) -> tuple[str, str] | None:
        """Why the token's professional may not read the mailbox ((code, reason)), or None when it may:
        a PER mailbox, its owner; an ORG mailbox, its structure's members (the SMTP door's rule too)."""
        if box.type not in ("PER", "ORG"):
            return ("AUTH_MECHANISM_REFUSED", f"token authentication is for PER and ORG mailboxes; {box.address} "
                    f"is {box.type} (MSS/CONF.01: applicative mailboxes use a client certificate)")
        if box.type == "PER" and box.owner != professional:
            return ("TOKEN_NOT_OWNER", f"the token's professional {professional or '(none)'} does not own "
                    f"{box.address}")
        if box.type == "ORG":
            structure = self.world.directory.professional(tx, professional).structure if professional else ""
            if not structure or structure != box.owner:
                return ("TOKEN_NOT_MEMBER", f"the token's professional {professional or '(none)'} does not work "
                        f"in {box.owner or '(no structure)'}, which owns {box.address}")
        return None

    def _mailbox(self, tx: Tx, address: str) -> Mailbox:
        if "@" not in address:
            raise errors.UnknownMailbox(f"{address} is not a mailbox address")
        try:
            return self.world.directory.mailbox(tx, address)
        except errors.UnknownMailbox:
            if not is_mssante(address):
                raise
        box = self.world.mss.mailbox_for(tx, address)   # a professional's or a patient's, made on first use
        if box.address != address:
            raise errors.UnknownMailbox(f"no mailbox {address}")
        return box

    def _journal_login(self, tx: Tx, address: str, refusal: tuple[str, str, str] | None, raw: str, *,
                       warnings: list[dict] | None = None) -> None:
        """One IMAP_LOGIN entry (never with the password). The caller raises only after its transaction
        committed, so a refused login stays in the journal."""
        self.world.journal.append(
            tx, "mss", "IMAP_LOGIN", actor=address, verdict="refused" if refusal else "accepted",
            code=refusal[0] if refusal else None,
            findings=[finding("IMAP/LOGIN", refusal[1], "error",
                              fr=f"connexion IMAP refusée : {refusal[1]}")] if refusal else list(warnings or []), raw=raw)

    # Mailboxes ----------------------------------------------------------------------------------
    # The login is the MSSanté mailbox; its IMAP folders are INBOX, where mail arrives, and those the client
    # creates (RFC 3501 6.3.3), one level namespace with "/" as hierarchy delimiter (RFC 2342).
    def _folder(self, args: list, what: str) -> str:
        if not args:
            raise ImapRefusal(f"{what} takes a mailbox name", bad=True)
        name = as_text(args[0])
        with self.world.transaction() as tx:
            try:
                return self.world.mss.folder(tx, self.address, name)
            except errors.NotFound:
                raise ImapRefusal(f"no mailbox {name[:60]} (CREATE it first)", code="NONEXISTENT") from None

    async def cmd_select(self, tag: str, args: list, readonly: bool = False) -> str:
        self.state, self.uids = AUTHENTICATED, []
        folder = self._folder(args, "SELECT")
        with self.world.transaction() as tx:
            messages = self.world.mss.messages(tx, self.address, folder)
            validity, uid_next = self._validity(tx, folder), self._uid_next(tx, messages, folder)
        self.uids = [m.uid for m in messages]
        unseen = next((i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags), None)
        self.send(b"* FLAGS (" + " ".join(SYSTEM_FLAGS).encode() + b")")
        self.send(f"* {len(messages)} EXISTS".encode())
        self.send(b"* 0 RECENT")
        if unseen is not None:
            self.send(f"* OK [UNSEEN {unseen}] first unseen message".encode())
        self.send(f"* OK [UIDVALIDITY {validity}] UIDs valid".encode())
        self.send(f"* OK [UIDNEXT {uid_next}] predicted next UID".encode())
        flags = "" if readonly else " ".join(SYSTEM_FLAGS) + " \\*"
        self.send(f"* OK [PERMANENTFLAGS ({flags})] flags kept in the world".encode())
        self.state, self.readonly, self.folder = SELECTED, readonly, folder
        return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {'EXAMINE' if readonly else 'SELECT'} completed"

    async def cmd_examine(self, tag: str, args: list) -> str:
        return await self.cmd_select(tag, args, readonly=True)

    def _validity(self, tx: Tx, folder: str | None = None) -> int:
        """Constant per folder until the world is reset (a reset restarts the UIDs, so it must change)."""
        folder = folder or self.folder
        key = UIDVALIDITY_META + self.address + ("" if folder == INBOX else "/" + folder)
        value = tx.meta_get(key)
        if value is None:
            value = max(1, int(time.time()) & 0x7FFFFFFF)
            tx.meta_set(key, value)
        return int(value)

    def _uid_next(self, tx: Tx, messages: list[Message], folder: str | None = None) -> int:
        counter = int(tx.meta_get(SEQ_META + uid_counter(self.address, folder or self.folder), 0) or 0)
        return max([counter, *(m.uid for m in messages)]) + 1

    async def cmd_namespace(self, tag: str, args: list) -> None:
        """RFC 2342: one personal namespace, no prefix, "/" between levels; no other users', no shared."""
        self.send(b'* NAMESPACE (("" "/")) NIL NIL')

    async def cmd_list(self, tag: str, args: list, verb: str = "LIST") -> None:
        if len(args) != 2:
            raise ImapRefusal(f"{verb} takes a reference and a mailbox pattern", bad=True)
        reference, pattern = as_text(args[0]), as_text(args[1])
        if pattern == "":
            self.send(f'* {verb} (\\Noselect) "/" ""'.encode())
            return
        pattern = reference + pattern if reference else pattern
        with self.world.transaction() as tx:
            folders = self.world.mss.folders(tx, self.address)
        for name in folders:
            if _matches(pattern, name):
                children = any(f.startswith(name + "/") for f in folders)
                attribute = "\\HasChildren" if children else "\\HasNoChildren"
                self.send(f"* {verb} ({attribute}) \"/\" ".encode() + _astring(name))

    async def cmd_lsub(self, tag: str, args: list) -> None:
        await self.cmd_list(tag, args, "LSUB")

    async def cmd_status(self, tag: str, args: list) -> None:
        folder = self._folder(args, "STATUS")
        if len(args) != 2 or not isinstance(args[1], list):
            raise ImapRefusal("STATUS takes a mailbox and a list of items", bad=True)
        with self.world.transaction() as tx:
            messages = self.world.mss.messages(tx, self.address, folder)
            values = {"MESSAGES": len(messages), "RECENT": 0, "UIDNEXT": self._uid_next(tx, messages, folder),
                      "UIDVALIDITY": self._validity(tx, folder),
                      "UNSEEN": sum(1 for m in messages if "\\Seen" not in m.flags)}
        out = []
        for item in args[1]:
            key = as_text(item).upper()
            if key not in values:
                raise ImapRefusal(f"unknown STATUS item {key[:40]}", bad=True)
            out.append(f"{key} {values[key]}")
        self.send(b"* STATUS " + _astring(folder) + f" ({' '.join(out)})".encode())

    async def cmd_subscribe(self, tag: str, args: list) -> None:
        self._folder(args, "SUBSCRIBE")

    async def cmd_unsubscribe(self, tag: str, args: list) -> None:
        self._folder(args, "UNSUBSCRIBE")

    async def cmd_create(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ImapRefusal("CREATE takes a mailbox name", bad=True)
        name = as_text(args[0])
        with self.world.transaction() as tx:
            exists = name.rstrip("/").upper() == INBOX or name.rstrip("/") in self.world.mss.folders(tx, self.address)
            if exists:
                raise ImapRefusal(f"{name[:60]} already exists", code="ALREADYEXISTS")
            created = self.world.mss.create_folder(tx, self.address, name)
            self.world.journal.append(tx, "mss", "IMAP_CREATE", actor=self.address, raw=f"CREATE {created}")
        return f"CREATE completed: {created}"

    async def cmd_delete(self, tag: str, args: list) -> None:
        folder = self._folder(args, "DELETE")
        if folder == INBOX:
            raise ImapRefusal("INBOX cannot be deleted (RFC 3501 6.3.4)", code="CANNOT")
        if self.state == SELECTED and self.folder == folder:
            self.state, self.uids = AUTHENTICATED, []
        with self.world.transaction() as tx:
            self.world.mss.delete_folder(tx, self.address, folder)
            self.world.journal.append(tx, "mss", "IMAP_DELETE", actor=self.address, raw=f"DELETE {folder}")

    async def cmd_rename(self, tag: str, args: list) -> None:
        raise ImapRefusal("RENAME is not offered: CREATE the new folder and MOVE the messages", code="CANNOT")

    async def cmd_append(self, tag: str, args: list) -> str:
        """RFC 3501 6.3.11, with APPENDUID (RFC 4315): a message the client files itself (a copy of what it
        sent, a draft); a folder that does not exist is NO [TRYCREATE]."""
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise ImapRefusal("APPEND takes a mailbox, optional flags and date, and the message as a literal",
                              bad=True)
        name = as_text(args[0])
        flags: list[str] = []
        received_at = ""
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags = _flags(extra)
            else:
                received_at = _append_date(as_text(extra))
        raw = args[-1]
        if not raw:
            raise ImapRefusal("APPEND of an empty message", bad=True)
        with self.world.transaction() as tx:
            try:
                folder = self.world.mss.folder(tx, self.address, name)
            except errors.NotFound:
                raise ImapRefusal(f"no mailbox {name[:60]}: CREATE it first", code="TRYCREATE") from None
            message = self.world.mss.append(tx, self.address, folder, raw, flags, received_at)
            validity = self._validity(tx, folder)
            self.world.journal.append(tx, "mss", "IMAP_APPEND", actor=self.address,
                                      ref=message.message_id or message.id,
                                      raw=f"APPEND {folder} ({' '.join(flags)}) {len(raw)} octets -> UID {message.uid}")
        return f"[APPENDUID {validity} {message.uid}] APPEND completed"

    async def cmd_copy(self, tag: str, args: list, by_uid: bool = False, move: bool = False) -> str:
        """COPY (RFC 3501 6.4.7) and MOVE (RFC 6851), with COPYUID (RFC 4315 3): into another folder of the
        same mailbox; a folder that does not exist is NO [TRYCREATE]."""
        verb = "MOVE" if move else "COPY"
        if len(args) != 2 or not isinstance(args[0], Atom):
            raise ImapRefusal(f"{verb} takes a sequence set and a mailbox", bad=True)
        if move and self.readonly:
            raise ImapRefusal("the mailbox was opened with EXAMINE: read-only", code="READ-ONLY")
        name = as_text(args[1])
        self.sync(expunges=False)
        targets = self._targets(str(args[0]), by_uid)
        with self.world.transaction() as tx:
            try:
                folder = self.world.mss.folder(tx, self.address, name)
            except errors.NotFound:
                raise ImapRefusal(f"no mailbox {name[:60]}: CREATE it first", code="TRYCREATE") from None
            pairs = self.world.mss.copy(tx, self.address, [m for _, m in targets], folder, move=move)
            validity = self._validity(tx, folder)
            self.world.journal.append(
                tx, "mss", f"IMAP_{verb}", actor=self.address,
                raw=f"{'UID ' if by_uid else ''}{verb} {args[0]} {folder}: "
                    + (", ".join(f"{a}->{b}" for a, b in pairs) or "no message"))
        code = (f"[COPYUID {validity} {','.join(str(a) for a, _ in pairs)} {','.join(str(b) for _, b in pairs)}] "
                if pairs else "")
        if not move:
            return f"{code}COPY completed"
        if code:   # RFC 6851 4.3: COPYUID in an untagged OK before the EXPUNGE responses
            self.send(f"* OK {code}moved".encode())
        for seq, _ in sorted(targets, reverse=True):
            del self.uids[seq - 1]
            self.send(f"* {seq} EXPUNGE".encode())
        return "MOVE completed"

    async def cmd_move(self, tag: str, args: list, by_uid: bool = False) -> str:
        return await self.cmd_copy(tag, args, by_uid=by_uid, move=True)

    # Selected state -----------------------------------------------------------------------------
    def sync(self, *, expunges: bool) -> list[int]:
        """Tell the client about new messages (EXISTS) and, when allowed, about expunged ones (EXPUNGE).
        Returns the mailbox's UIDs as the world holds them now (UIDs only: decoding every message record
        on every command made one FETCH per message cost 15 ms in a 1,000-message mailbox)."""
        with self.world.transaction() as tx:
            uids = self.world.mss.uids(tx, self.address, self.folder)
        present = set(uids)
        if expunges:
            for seq in range(len(self.uids), 0, -1):
                if self.uids[seq - 1] not in present:
                    del self.uids[seq - 1]
                    self.send(f"* {seq} EXPUNGE".encode())
        last = self.uids[-1] if self.uids else 0
        fresh = [u for u in uids if u > last]   # UIDs only grow: anything newer is new mail
        if fresh:
            self.uids.extend(fresh)
            self.send(f"* {len(self.uids)} EXISTS".encode())
        return uids

    def _targets(self, set_text: str, by_uid: bool) -> list[tuple[int, Message]]:
        """(sequence number, message) for each message of the set that still exists, in sequence order."""
        if by_uid:
            wanted = SeqSet(set_text, self.uids[-1] if self.uids else 0)
            picked = [(i, u) for i, u in enumerate(self.uids, 1) if u in wanted]
        else:
            wanted = SeqSet(set_text, len(self.uids))
            if any(hi > len(self.uids) and lo > len(self.uids) for lo, hi in wanted.ranges):
                raise ImapRefusal(f"no message {set_text} here: the mailbox has {len(self.uids)}", bad=True)
            picked = [(i, u) for i, u in enumerate(self.uids, 1) if i in wanted]
        with self.world.transaction() as tx:
            by_uid_map = {m.uid: m for m in self.world.mss.by_uids(tx, self.address, [u for _, u in picked],
                                                                    self.folder)}
        return [(i, by_uid_map[u]) for i, u in picked if u in by_uid_map]

    async def cmd_uid(self, tag: str, args: list) -> str:
        if not args or not isinstance(args[0], Atom):
            raise ImapRefusal("UID takes FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE", bad=True)
        sub = args[0].upper()
        if sub == "FETCH":
            await self.cmd_fetch(tag, args[1:], by_uid=True)
        elif sub == "SEARCH":
            await self.cmd_search(tag, args[1:], by_uid=True)
        elif sub == "STORE":
            await self.cmd_store(tag, args[1:], by_uid=True)
        elif sub in ("COPY", "MOVE"):
            return "UID " + await self.cmd_copy(tag, args[1:], by_uid=True, move=sub == "MOVE")
        elif sub == "EXPUNGE":
            if len(args) != 2 or not isinstance(args[1], Atom):
                raise ImapRefusal("UID EXPUNGE takes a UID set", bad=True)
            await self.cmd_expunge(tag, [], only=str(args[1]))
        else:
            raise ImapRefusal(f"UID {sub[:40]} is not supported: UID FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE",
                              bad=True)
        return f"UID {sub} completed"

    async def cmd_close(self, tag: str, args: list) -> None:
        if not self.readonly:
            with self.world.transaction() as tx:
                self.world.mss.expunge(tx, self.address, self.folder)
        self.state, self.uids, self.folder = AUTHENTICATED, [], INBOX

    async def cmd_unselect(self, tag: str, args: list) -> None:
        self.state, self.uids = AUTHENTICATED, []

    async def cmd_expunge(self, tag: str, args: list, only: str | None = None) -> None:
        if self.readonly:
            raise ImapRefusal("the mailbox was opened with EXAMINE: read-only", code="READ-ONLY")
        self.sync(expunges=False)
        uids = None
        if only is not None:   # UID EXPUNGE (RFC 4315 2.1): only these UIDs
            wanted = SeqSet(only, self.uids[-1] if self.uids else 0)
            uids = {u for u in self.uids if u in wanted}
        with self.world.transaction() as tx:
            self.world.mss.expunge(tx, self.address, self.folder, uids)
        self.sync(expunges=True)

    # FETCH --------------------------------------------------------------------------------------
    async def cmd_fetch(self, tag: str, args: list, by_uid: bool = False) -> None:
        if len(args) != 2 or not isinstance(args[0], Atom):
            raise ImapRefusal("FETCH takes a sequence set and data items", bad=True)
        items = _fetch_items(args[1])
        if by_uid and not any(i.name == "UID" for i in items):
            items.insert(0, FetchItem("UID", label="UID"))
        self.sync(expunges=False)
        targets = self._targets(str(args[0]), by_uid)
        sets_seen = not self.readonly and any(i.sets_seen for i in items)
        wants_flags = any(i.name == "FLAGS" for i in items)
        with self.world.transaction() as tx:
            for seq, message in targets:
                raw = self.world.mss.raw(tx, message.id) if any(i.has_content or i.name in (
                    "BODYSTRUCTURE", "BODY", "ENVELOPE") for i in items) else b""
                extra = []
                if sets_seen and "\\Seen" not in message.flags:
                    message = self.world.mss.set_flags(tx, message.id, [*message.flags, "\\Seen"])
                    if not wants_flags:
                        extra.append(FetchItem("FLAGS", label="FLAGS"))
                parts = [self._render(item, message, raw) for item in [*items, *extra]]
                self.send(f"* {seq} FETCH (".encode() + b" ".join(parts) + b")")
                if any(i.has_content for i in items):
                    self.world.journal.append(
                        tx, "mss", "IMAP_FETCH", actor=self.address, ref=message.message_id or message.id,
                        document=message.document or None,
                        raw=f"{'UID ' if by_uid else ''}FETCH {message.uid} "
                            f"{' '.join(i.label for i in items)} -> {message.size} octets")
                if self.writer.transport.get_write_buffer_size() > 1024 * 1024:
                    await self.writer.drain()

    def _render(self, item: FetchItem, message: Message, raw: bytes) -> bytes:
        name = item.name
        if name == "UID":
            return f"UID {message.uid}".encode()
        if name == "FLAGS":
            return f"FLAGS ({' '.join(message.flags)})".encode()
        if name == "RFC822.SIZE":
            return f"RFC822.SIZE {len(raw) if raw else message.size}".encode()
        if name == "INTERNALDATE":
            return b"INTERNALDATE " + quote(_internaldate(message.received_at))
        if name == "ENVELOPE":
            return b"ENVELOPE " + envelope(split_entity(raw)[0])
        if name == "BODYSTRUCTURE":
            return b"BODYSTRUCTURE " + bodystructure(raw)
        if name == "BODY" and not item.label.startswith("BODY["):
            return b"BODY " + bodystructure(raw, extensible=False)
        if name == "RFC822":
            return b"RFC822 " + literal(raw)
        if name == "RFC822.HEADER":
            return b"RFC822.HEADER " + literal(split_entity(raw)[0])
        if name == "RFC822.TEXT":
            return b"RFC822.TEXT " + literal(split_entity(raw)[1])
        data = _section(raw, item.section)
        label = item.label
        if item.partial is not None:
            start, length = item.partial
            data = data[start:start + length]
            label += f"<{start}>"
        return label.encode() + b" " + literal(data)

    # SEARCH -------------------------------------------------------------------------------------
    async def cmd_search(self, tag: str, args: list, by_uid: bool = False) -> None:
        if len(args) >= 2 and isinstance(args[0], Atom) and args[0].upper() == "CHARSET":
            if as_text(args[1]).upper() not in ("UTF-8", "US-ASCII"):
                raise ImapRefusal(f"charset {as_text(args[1])[:40]} is not supported", code="BADCHARSET (UTF-8)")
            args = args[2:]
        if not args:
            raise ImapRefusal("SEARCH takes at least one search key", bad=True)
        self.sync(expunges=False)
        with self.world.transaction() as tx:
            present = {m.uid: m for m in self.world.mss.messages(tx, self.address, self.folder)}
        rows = [(seq, present[uid]) for seq, uid in enumerate(self.uids, 1) if uid in present]
        test = _search_program(list(args), self)
        with self.world.transaction() as tx:
            found = [m.uid if by_uid else seq for seq, m in rows if test(_Candidate(self, tx, seq, m))]
        self.send(("* SEARCH" + "".join(f" {n}" for n in found)).encode())

    # STORE --------------------------------------------------------------------------------------
    async def cmd_store(self, tag: str, args: list, by_uid: bool = False) -> None:
        if len(args) < 3 or not isinstance(args[0], Atom) or not isinstance(args[1], Atom):
            raise ImapRefusal("STORE takes a sequence set, FLAGS / +FLAGS / -FLAGS [.SILENT] and flags", bad=True)
        if self.readonly:
            raise ImapRefusal("the mailbox was opened with EXAMINE: read-only", code="READ-ONLY")
        action = args[1].upper()
        silent = action.endswith(".SILENT")
        mode = action.removesuffix(".SILENT")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise ImapRefusal(f"unknown STORE item {action[:40]}: FLAGS, +FLAGS or -FLAGS (.SILENT)", bad=True)
        flags = _flags(args[2] if isinstance(args[2], list) else args[2:])
        self.sync(expunges=False)
        targets = self._targets(str(args[0]), by_uid)
        with self.world.transaction() as tx:
            for seq, message in targets:
                current = set(message.flags)
                new = set(flags) if mode == "FLAGS" else current | set(flags) if mode == "+FLAGS" \
                    else current - set(flags)
                if new != current:
                    message = self.world.mss.set_flags(tx, message.id, list(new))
                if not silent:
                    uid = f"UID {message.uid} " if by_uid else ""
                    self.send(f"* {seq} FETCH ({uid}FLAGS ({' '.join(message.flags)}))".encode())
            self.world.journal.append(
                tx, "mss", "IMAP_STORE", actor=self.address,
                raw=f"{'UID ' if by_uid else ''}STORE {args[0]} {action} ({' '.join(flags)}) -> "
                    f"{', '.join(str(m.uid) for _, m in targets) or 'no message'}")

    # IDLE ---------------------------------------------------------------------------------------
    async def cmd_idle(self, tag: str, args: list) -> str:
        """RFC 2177. New mail wakes the session at once (the world's MAIL_DELIVERED event); a poll every
        `poll_interval` also reports what other sessions expunged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.idle_timeout
        wake = asyncio.Event()

        def delivered(event: events.Event) -> None:   # on the thread that committed the delivery
            if event.data.get("mailbox") == self.address:
                loop.call_soon_threadsafe(wake.set)

        unsubscribe = self.world.events.subscribe(events.MAIL_DELIVERED, delivered)  # before "+": no gap
        done_task = None
        try:
            self.send(b"+ idling")
            if self.state == SELECTED:
                self.sync(expunges=True)
            await self.writer.drain()
            done_task = loop.create_task(self.io.line())
            while True:
                woken = loop.create_task(wake.wait())
                finished, _ = await asyncio.wait({done_task, woken}, timeout=self.settings.poll_interval,
                                                 return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                wake.clear()
                if done_task in finished:
                    line = done_task.result()
                    if line is None:
                        raise ConnectionError("the client left while idling")
                    if line.strip().upper() != b"DONE":
                        raise ImapRefusal("IDLE ends with DONE", bad=True)
                    return "IDLE terminated"
                if loop.time() > deadline:
                    await self.bye("IDLE lasted longer than the idle timeout")
                    self.state = LOGOUT
                    raise _AlreadyAnswered
                if self.state == SELECTED:
                    self.sync(expunges=True)
                    await self.writer.drain()
        finally:
            unsubscribe()
            if done_task is not None and not done_task.done():
                done_task.cancel()


class _AlreadyAnswered(Exception):
    """Raised by a command that wrote its own tagged answer (STARTTLS) or ended the session (IDLE timeout)."""


def _matches(pattern: str, name: str) -> bool:
    """RFC 3501 6.3.8: `*` matches anything, `%` anything but the hierarchy delimiter; INBOX in any case."""
    regex = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    if re.fullmatch(regex, name, re.DOTALL):
        return True
    return name == INBOX and re.fullmatch(regex, name, re.DOTALL | re.IGNORECASE) is not None


def _astring(name: str) -> bytes:
    """A mailbox name as an atom when it is one (RFC 3501 9 ATOM-CHAR), else a quoted string."""
    if name and name.isascii() and not any(c in '(){ %*"\\]' or ord(c) < 33 for c in name):
        return name.encode()
    return quote(name)


def _append_date(text: str) -> str:
    """APPEND's date-time (RFC 3501 9: "dd-Mon-yyyy hh:mm:ss +zzzz") as ISO 8601."""
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").isoformat()
    except ValueError:
        raise ImapRefusal(f"{text[:40]!r} is not an IMAP date-time (dd-Mon-yyyy hh:mm:ss +zzzz)", bad=True) from None


def _internaldate(iso: str) -> str:
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        when = datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return f"{when.day:02d}-{MONTHS[when.month - 1]}-{when.year} {when:%H:%M:%S} +0000"


def _flags(tokens: list) -> list[str]:
    out = []
    for token in tokens:
        flag = as_text(token)
        if flag.startswith("\\"):
            canonical = next((f for f in SYSTEM_FLAGS if f.lower() == flag.lower()), None)
            if canonical is None:
                raise ImapRefusal(f"flag {flag[:40]} cannot be stored: {' '.join(SYSTEM_FLAGS)} or keywords",
                                  bad=True)
            flag = canonical
        elif not flag or any(c in flag for c in '(){ %*"]\\') or any(ord(c) < 33 or ord(c) > 126 for c in flag):
            raise ImapRefusal(f"{flag[:40]!r} is not a valid keyword", bad=True)
        out.append(flag)
    return out


MACROS = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
          "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
          "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
SIMPLE_ITEMS = ("FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822",
                "RFC822.HEADER", "RFC822.TEXT")


def _fetch_items(spec: Any) -> list[FetchItem]:
    if isinstance(spec, list):
        names = [as_text(t) for t in spec]
        if not names:
            raise ImapRefusal("FETCH takes at least one data item", bad=True)
    else:
        name = as_text(spec)
        names = MACROS.get(name.upper(), [name])
    return [_fetch_item(n) for n in names]


def _fetch_item(text: str) -> FetchItem:
    upper = text.upper()
    if upper in SIMPLE_ITEMS:
        return FetchItem(upper, label=upper)
    for prefix, peek in (("BODY.PEEK[", True), ("BODY[", False)):
        if upper.startswith(prefix) and "]" in upper:
            close = upper.rindex("]")
            section = upper[len(prefix):close].strip()
            rest = text[close + 1:]
            partial = None
            if rest:
                if not (rest.startswith("<") and rest.endswith(">")):
                    raise ImapRefusal(f"unreadable partial {rest[:40]}", bad=True)
                start, _, length = rest[1:-1].partition(".")
                if not start.isdigit() or not length.isdigit() or int(length) == 0:
                    raise ImapRefusal(f"a partial is <start.length>, not {rest[:40]}", bad=True)
                partial = (int(start), int(length))
            _check_section(section)
            return FetchItem("BODY", section=section, partial=partial, peek=peek, label=f"BODY[{section}]")
    raise ImapRefusal(f"unknown FETCH item {text[:60]}: FLAGS, UID, RFC822.SIZE, INTERNALDATE, ENVELOPE, "
                      "BODYSTRUCTURE, BODY[...], BODY.PEEK[...], RFC822 (.HEADER, .TEXT)", bad=True)


def _check_section(section: str) -> None:
    parts = section.split(".")
    i = 0
    while i < len(parts) and parts[i].isdigit() and int(parts[i]) > 0:
        i += 1
    tail = ".".join(parts[i:])
    if tail in ("", "HEADER", "TEXT") or (tail == "MIME" and i > 0):
        return
    if tail.startswith(("HEADER.FIELDS (", "HEADER.FIELDS.NOT (")) and tail.endswith(")"):
        return
    raise ImapRefusal(f"unknown section [{section[:60]}]", bad=True)


def _subpart(entity: bytes, n: int) -> bytes:
    header, body = split_entity(entity)
    msg = parse_headers(header)
    if msg.get_content_maintype() == "multipart":
        boundary = msg.get_param("boundary")
        parts = boundary_parts(body, str(boundary)) if boundary else []
        if n > len(parts):
            return b""
        return parts[n - 1]
    if msg.get_content_type() == "message/rfc822":
        return _subpart(body, n)
    return entity if n == 1 else b""


def _section(raw: bytes, section: str) -> bytes:
    """The bytes of BODY[section] of a message (RFC 3501 section 6.4.5)."""
    if not section:
        return raw
    parts = section.split(".")
    entity, nested = raw, False
    numbers = []
    while parts and parts[0].isdigit():
        numbers.append(int(parts.pop(0)))
    for n in numbers:
        entity = _subpart(entity, n)
        nested = True
    tail = ".".join(parts)
    if nested and (tail in ("HEADER", "TEXT") or tail.startswith("HEADER.FIELDS")):
        # HEADER/TEXT of a part apply to a message/rfc822 part's encapsulated message
        header, body = split_entity(entity)
        if nested and parse_headers(header).get_content_type() == "message/rfc822":
            entity = body
    header, body = split_entity(entity)
    if not tail:
        return body if nested else raw
    if tail == "HEADER" or tail == "MIME":
        return header
    if tail == "TEXT":
        return body
    names = tail[tail.index("(") + 1:-1].split()
    return header_fields(header, names, exclude=tail.startswith("HEADER.FIELDS.NOT"))


# SEARCH programs --------------------------------------------------------------------------------
@dataclass
class _Candidate:
    session: ImapSession
    tx: Tx
    seq: int
    message: Message
    _raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.session.world.mss.raw(self.tx, self.message.id)
        return self._raw

    def header(self, name: str) -> str:
        values = parse_headers(split_entity(self.raw)[0]).get_all(name) or []
        return "\n".join(decoded(str(v)) for v in values)


FLAG_KEYS = {"SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False), "DELETED": ("\\Deleted", True),
             "UNDELETED": ("\\Deleted", False), "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
             "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False), "DRAFT": ("\\Draft", True),
             "UNDRAFT": ("\\Draft", False)}
HEADER_KEYS = {"SUBJECT": "subject", "FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc"}


def _search_program(tokens: list, session: ImapSession):
    """Compile search keys (RFC 3501 section 6.4.4, the common subset) into a predicate on _Candidate."""

    def take() -> Any:
        if not tokens:
            raise ImapRefusal("SEARCH ended in the middle of a key", bad=True)
        return tokens.pop(0)

    def key() -> Any:
        token = take()
        if isinstance(token, list):
            inner = _search_program(list(token), session)
            return inner
        word = as_text(token).upper()
        if word == "ALL":
            return lambda c: True
        if word in ("NEW", "RECENT"):
            return lambda c: False
        if word == "OLD":
            return lambda c: True
        if word in FLAG_KEYS:
            flag, present = FLAG_KEYS[word]
            return lambda c: (flag in c.message.flags) == present
        if word in ("KEYWORD", "UNKEYWORD"):
            kw, present = as_text(take()), word == "KEYWORD"
            return lambda c: (kw in c.message.flags) == present
        if word == "NOT":
            inner = key()
            return lambda c: not inner(c)
        if word == "OR":
            a, b = key(), key()
            return lambda c: a(c) or b(c)
        if word in HEADER_KEYS or word == "HEADER":
            name = HEADER_KEYS.get(word) or as_text(take())
            needle = as_text(take()).lower()
            return lambda c: needle in c.header(name).lower() if needle else bool(c.header(name))
        if word in ("BODY", "TEXT"):
            needle = as_text(take()).lower().encode()
            part = 1 if word == "BODY" else None
            return lambda c: needle in (split_entity(c.raw)[1] if part else c.raw).lower()
        if word in ("LARGER", "SMALLER"):
            value = as_text(take())
            if not value.isdigit():
                raise ImapRefusal(f"{word} takes a number", bad=True)
            n = int(value)
            return (lambda c: c.message.size > n) if word == "LARGER" else (lambda c: c.message.size < n)
        if word in ("BEFORE", "ON", "SINCE"):
            day = _search_date(as_text(take()))
            cmp = {"BEFORE": lambda d: d < day, "ON": lambda d: d == day, "SINCE": lambda d: d >= day}[word]
            return lambda c: cmp(_day(c.message.received_at))
        if word == "UID":
            text = as_text(take())
            uids = SeqSet(text, session.uids[-1] if session.uids else 0)
            return lambda c: c.message.uid in uids
        if word[:1].isdigit() or word[:1] == "*":
            seqs = SeqSet(word, len(session.uids))
            return lambda c: c.seq in seqs
        raise ImapRefusal(f"unknown search key {word[:40]}", bad=True)

    keys = []
    while tokens:
        keys.append(key())
    return lambda c: all(k(c) for k in keys)


def _search_date(text: str):
    try:
        return datetime.strptime(text, "%d-%b-%Y").date()
    except ValueError:
        raise ImapRefusal(f"{text[:40]} is not a date (d-Mon-yyyy)", bad=True) from None


def _day(iso: str):
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).date()
    except ValueError:
        return datetime.now(UTC).date()


def settings_from(config: Config, tls_files: TlsFiles | None = None) -> ImapSettings:
    """The door's settings from the bench config: [doors.mss] `password` (default "mockbench") and
    `plain_login` (default true), shared with the SMTP door (which validates them)."""
    options = config.doors.get("mss", {}) or {}
    password = str(options.get("password", "mockbench"))
    if options.get("plain_login", True) is False:
        password = None
    tls = None
    if tls_files is not None:
        from ...pki import server_context

        tls = server_context(tls_files, require_client_cert=False)
    return ImapSettings(host=config.host, port=config.imap_port, password=password, tls=tls,
                        auth_require_tls=options.get("auth_require_tls", True) is not False,
                        max_connections=config.imap_max_connections)
