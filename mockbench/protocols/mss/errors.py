"""World errors and the door's own refusals on the SMTP wire: one named status table (RFC 5321 reply codes,
RFC 3463 enhanced codes). Nothing else in the door writes a status line."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ...world import errors


@dataclass(frozen=True)
class Status:
    code: int
    enhanced: str       # RFC 3463 class.subject.detail
    text: str

    def line(self, detail: str | None = None) -> str:
        """The reply line; `detail` replaces the default text (one line, no CR/LF)."""
        text = " ".join((detail or self.text).split())
        return f"{self.code} {self.enhanced} {ascii_text(text)}"

    @property
    def ok(self) -> bool:
        return self.code < 400


def ascii_text(text: str) -> str:
    """RFC 5321 2.4: reply text is US-ASCII (without SMTPUTF8): accents dropped (MSSanté -> MSSante)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return plain.replace("\r", " ").replace("\n", " ")


# Successes
AUTH_OK = Status(235, "2.7.0", "Authentication successful")
RCPT_OK = Status(250, "2.1.5", "Recipient OK")
ACCEPTED = Status(250, "2.0.0", "Message accepted")
# Authentication (RFC 4954 section 6)
AUTH_REQUIRED = Status(530, "5.7.0", "Authentication required: AUTH PLAIN/LOGIN, XOAUTH2, OAUTHBEARER or EXTERNAL")
AUTH_INVALID = Status(535, "5.7.8", "Authentication credentials invalid")
# Envelope
SENDER_MISMATCH = Status(553, "5.7.1", "the sender is not the authenticated mailbox")
MAILBOX_UNKNOWN = Status(550, "5.1.1", "not an MSSanté mailbox of this world")
NOT_FOUND = Status(550, "5.1.0", "no such object in this world")
TOO_MANY_RECIPIENTS = Status(452, "4.5.3", "Too many recipients")
# Content
SIZE_EXCEEDED = Status(552, "5.3.4", "Message too big for the door's data_size limit")
SIZE_DECLARED_EXCEEDED = Status(552, "5.3.4", "The declared SIZE exceeds the door's data_size limit")
HEADER_FLOOD = Status(552, "5.3.4", "Too many header fields")
LINE_TOO_LONG = Status(500, "5.5.2", "Line too long (RFC 5321 4.5.3.1.6: 1000 octets with CRLF)")
COMMAND_TOO_LONG = Status(500, "5.5.2", "Command line too long (RFC 5321 4.5.3.1.4: 512 octets with CRLF)")
INVALID = Status(554, "5.6.0", "The message was refused")
REFUSED = Status(554, "5.7.1", "Transaction failed")
# Unexpected
TEMPORARY = Status(451, "4.3.0", "Local error in processing, try again later")
# RFC 5321 4.2.3 / 4.5.3.1.10: 452 insufficient system storage; RFC 3463 3.5: X.3.1 mail system full
STORAGE_FULL = Status(452, "4.3.1", "Insufficient system storage, try again later")
# Another process held the world's write lock past its wait (world/xlock.py WriteLockTimeout), nothing stored:
# RFC 5321 4.2.3 451 "local error in processing", a transient failure the client retries (4.2.1); RFC 3463 3.4:
# X.4.5 mail system congestion, "useful only as a persistent transient error", which it is while the lock
# is held. IMAP says the same with NO [UNAVAILABLE] (RFC 5530 3, imap.py), as for a full disk.
BUSY = Status(451, "4.4.5", "The bench's store is busy with another process's change, try again later")

# world error code -> status; looked up along the class's MRO, so every WorldError subclass has one.
FOR_CODE: dict[str, Status] = {
    errors.UnknownMailbox.code: MAILBOX_UNKNOWN,
    errors.NotFound.code: NOT_FOUND,
    errors.TokenInvalid.code: AUTH_INVALID,
    errors.InvalidRequest.code: INVALID,
    errors.WorldError.code: REFUSED,
}

# aiosmtpd's own literal replies, rewritten from this table by the engine's push().
ENGINE_REPLIES: dict[str, tuple[Status, str]] = {
    "552 Error: Too much mail data": (SIZE_EXCEEDED, "SIZE_EXCEEDED"),
    "552 Error: message size exceeds fixed maximum message size": (SIZE_DECLARED_EXCEEDED, "SIZE_EXCEEDED"),
    "500 Line too long (see RFC5321 4.5.3.1.6)": (LINE_TOO_LONG, "LINE_TOO_LONG"),
    "500 Command line too long": (COMMAND_TOO_LONG, "COMMAND_TOO_LONG"),
    "530 5.7.0 Authentication required": (AUTH_REQUIRED, "AUTH_REQUIRED"),
}


class Refusal(Exception):
    """A refusal decided by the door itself (not a world rule): a status, a stable code for the journal,
    the reply text, and the rule it comes from."""

    def __init__(self, status: Status, code: str, detail: str, rule: str = "SMTP") -> None:
        super().__init__(detail)
        self.status, self.code, self.message, self.rule = status, code, detail, rule


def status_for(exc: errors.WorldError | Refusal) -> Status:
    if isinstance(exc, Refusal):
        return exc.status
    for cls in type(exc).__mro__:
        status = FOR_CODE.get(getattr(cls, "code", ""))
        if status is not None:
            return status
    return REFUSED
