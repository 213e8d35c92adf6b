"""The MSSanté IMAP door: IMAP4rev1 (RFC 3501) over the world's mailboxes, one INBOX per login.

The login IS the mailbox: a client authenticates as a mailbox address (LOGIN with the bench password,
AUTHENTICATE PLAIN, or AUTHENTICATE XOAUTH2 with an access token the OIDC door issued, for a personal
mailbox's owner or an organisational mailbox's structure member) and sees that mailbox as INBOX. Each
command reads or changes the world in one transaction; flags and expunges are the world's, so the control
API, the SMTP door and other IMAP sessions see them at once. A message fetched is the bytes delivered.

Written by hand on asyncio rather than on pymap: plugging the world in as a pymap backend meant its login,
identity, session, mailbox-set and versioned mailbox-data interfaces plus its argparse-driven service set-up,
more glue than this whole door. The wire details (reader, tokens, BODYSTRUCTURE) are in imap_wire.py; the
session's commands, by group, in imap_auth.py, imap_mailbox.py, imap_messages.py and imap_transfer.py.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...world import errors, events
from ...world.faults import NETWORK
from ...world.journal import finding
from ...world.mss import INBOX
from ...world.store import StorageFull
from ...world.xlock import WriteLockTimeout
from ..context import DoorContext
from ..loop import SocketDoor, network_fault
from .imap_auth import AuthCommands
from .imap_base import (
    AUTHENTICATED,
    LOGOUT,
    NOT_AUTHENTICATED,
    SELECTED,
    SYSTEM_FLAGS,
    AlreadyAnswered,
    ImapRefusal,
)
from .imap_mailbox import MailboxCommands
from .imap_messages import MessageCommands
from .imap_transfer import TransferCommands
from .imap_wire import Atom, CommandReader, ImapLimits, ImapProtocolError, tokenize, valid_tag

if TYPE_CHECKING:
    from ...config import Config
    from ...pki import TlsFiles

__all__ = ["COMMANDS", "SYSTEM_FLAGS", "ImapDoor", "ImapRefusal", "ImapSession", "ImapSettings", "settings_from"]

log = logging.getLogger("mockbench.imap")

STREAM_LIMIT = 64 * 1024          # asyncio buffer; lines beyond ImapLimits.line_length are refused anyway


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
class ImapSession(AuthCommands, MailboxCommands, MessageCommands, TransferCommands):
    """One connection: the command loop, the dispatch by state (COMMANDS), fault rules, UID and IDLE; the
    commands by group in imap_auth.py, imap_mailbox.py, imap_messages.py and imap_transfer.py."""

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
        try:
            if self._injected(tag, name):   # in the try: a store that cannot take its entry is answered too
                return True
            handler = getattr(self, f"cmd_{name.lower()}")
            done = await handler(tag, args)
            self.answer(tag, "OK", done or f"{name} completed")
            return True
        except AlreadyAnswered:
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
        except WriteLockTimeout:   # the same, another process holding the world's write lock (mss/errors.py BUSY)
            self.answer(tag, "NO", "[UNAVAILABLE] the bench's store is busy with another process's change; try "
                        "again later")
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
                    raise AlreadyAnswered
                if self.state == SELECTED:
                    self.sync(expunges=True)
                    await self.writer.drain()
        finally:
            unsubscribe()
            if done_task is not None and not done_task.done():
                done_task.cancel()


def settings_from(config: Config, tls_files: TlsFiles | None = None) -> ImapSettings:
    """The door's settings from the bench config: [doors.mss] `password` (default "mockbench") and
    `plain_login` (default true), shared with the SMTP door (which validates them)."""
    options = config.doors.get("mss", {}) or {}
    password: str | None = str(options.get("password", "mockbench"))
    if options.get("plain_login", True) is False:
        password = None
    tls = None
    if tls_files is not None:
        from ...pki import server_context

        tls = server_context(tls_files, require_client_cert=False)
    return ImapSettings(host=config.host, port=config.imap_port, password=password, tls=tls,
                        auth_require_tls=options.get("auth_require_tls", True) is not False,
                        max_connections=config.imap_max_connections)
