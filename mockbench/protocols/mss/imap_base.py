"""What every group of IMAP session commands shares: the states, the refusals, the session's attributes and
the few steps several groups use (writing a line, the folder argument, the selected folder's sync, the
sequence set's messages, the login journal). The commands themselves are in imap_auth.py (authentication
and any-state commands), imap_mailbox.py (folders and their state), imap_messages.py (FETCH, SEARCH, STORE)
and imap_transfer.py (APPEND, COPY, MOVE); imap.py runs the session and dispatches to them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ...world import errors
from ...world.journal import finding
from ...world.model import Message
from ...world.store import Tx
from .imap_wire import CommandReader, ImapLimits, SeqSet, as_text

if TYPE_CHECKING:
    from ...world.world import World
    from .imap import ImapDoor, ImapSettings

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")

NOT_AUTHENTICATED, AUTHENTICATED, SELECTED, LOGOUT = "not authenticated", "authenticated", "selected", "logout"


class ImapRefusal(Exception):
    """A command refused with a tagged NO (or BAD) and a text; `code` is the response code ([...])."""

    def __init__(self, text: str, *, code: str = "", bad: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.bad = bad


class AlreadyAnswered(Exception):
    """Raised by a command that wrote its own tagged answer (STARTTLS) or ended the session (IDLE timeout)."""


class SessionBase:
    """The attributes of an IMAP session (ImapSession, a dataclass, sets them) and the steps its command groups
    share."""

    door: ImapDoor
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    state: str
    address: str
    folder: str
    readonly: bool
    uids: list[int]          # sequence number n is uids[n - 1], as the client knows it
    tls_active: bool
    peer: str
    world: World
    settings: ImapSettings
    limits: ImapLimits
    io: CommandReader

    def send(self, data: bytes) -> None:
        self.writer.write(data + b"\r\n")

    def answer(self, tag: str, status: str, text: str) -> None:
        """A tagged (or untagged) status line; the text is kept to one line whatever an error message held."""
        self.send(f"{tag} {status} {' '.join(text.split())}".encode())

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

    def _journal_login(self, tx: Tx, address: str, refusal: tuple[str, str, str] | None, raw: str, *,
                       warnings: list[dict] | None = None) -> None:
        """One IMAP_LOGIN entry (never with the password). The caller raises only after its transaction
        committed, so a refused login stays in the journal."""
        self.world.journal.append(
            tx, "mss", "IMAP_LOGIN", actor=address, verdict="refused" if refusal else "accepted",
            code=refusal[0] if refusal else None,
            findings=[finding("IMAP/LOGIN", refusal[1], "error",
                              fr=f"connexion IMAP refusée : {refusal[1]}")] if refusal else list(warnings or []), raw=raw)

    def _folder(self, args: list, what: str) -> str:
        if not args:
            raise ImapRefusal(f"{what} takes a mailbox name", bad=True)
        name = as_text(args[0])
        with self.world.transaction() as tx:
            try:
                return self.world.mss.folder(tx, self.address, name)
            except errors.NotFound:
                raise ImapRefusal(f"no mailbox {name[:60]} (CREATE it first)", code="NONEXISTENT") from None

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


def flags_of(tokens: list) -> list[str]:
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

