"""MIME helpers shared by the mail paths: a summary of a message's headers, the MDN (RFC 8098) and DSN
(RFC 3464) reports a recipient sends back, the reading of an MDN's shape (the SMTP door judges the MDNs
a DPI submits; the advisor's MSS/UX.12 recognizes error MDNs) and of what a person reads in a mail (its
text, links and attachments: SSI/IE.31 reads the verification mails). No wire and no rules: the world decides when to
send them, the door and the advisor what a shape means."""

from __future__ import annotations

import base64
import binascii
import functools
import html
import re
import uuid
from dataclasses import dataclass
from email import policy
from email.header import Header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser, Parser
from email.utils import collapse_rfc2231_value, formatdate, getaddresses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

# The feed parser's own test for a header line (email.feedparser.headerRE, which typeshed does not declare):
# `From `, a field name (printable ASCII but the colon) and its colon, or a continuation line's blank.
_HEADER_LINE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")

SUMMARY_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "Disposition-Notification-To",
                   "Return-Receipt-To", "X-MSS-CODECDA", "X-MSS-INS", "X-MSS-MES", "X-MSS-NIL",
                   "Content-Type")


def header_end(raw: bytes) -> int | None:
    """Where the first empty line (CRLF CRLF, or LF LF) starts, None when there is none."""
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n", 0, len(raw) if crlf < 0 else crlf)   # one before the CRLF pair, if any
    return lf if lf >= 0 else crlf if crlf >= 0 else None


# Header blocks up to this size have their summary kept (`_summary`): the XDM check and the delivery each ask
# for the summary of the same mail, whose parse was 0.8 M instructions of the SMTP door's 30 M per mail.
_SUMMARY_KEPT = 64 * 1024


def header_summary(raw: bytes) -> dict[str, str]:
    """The headers the bench shows and reasons on, decoded; absent ones left out."""
    end = header_end(raw)
    # The header block only: the parser would otherwise read the whole body line by line to skip it.
    block = raw if end is None else raw[:end + 2]
    return dict(_summary(block) if len(block) <= _SUMMARY_KEPT else _summary.__wrapped__(block))


@functools.lru_cache(maxsize=64)
def _summary(block: bytes) -> dict[str, str]:
    """`header_summary` of a header block: a function of its bytes (callers get a copy)."""
    headers = BytesHeaderParser(policy=policy.default).parsebytes(block)
    first: dict[str, tuple[str, str]] = {}
    for name, value in headers.raw_items():     # what Message.get would pick: the first field of a name
        first.setdefault(name.lower(), (name, value))
    out = {}
    for name in SUMMARY_HEADERS:
        found = first.get(name.lower())
        if found is not None:
            out[name] = _decoded(*found)
    return out


def _decoded(name: str, value: str) -> str:
    """A field's text as `policy.default` decodes it (`Message.get`, then str). A value that parser cannot read
    (`Message-ID: <>`, `From: "`) is given unfolded, as it is: header_problems says why."""
    text, _ = _fetched(name, value)
    return " ".join(value.split()) if text is None else text


@functools.lru_cache(maxsize=1024)
def _fetched(name: str, value: str) -> tuple[str | None, str | None]:
    """(text, None) as `policy.default` decodes the field, or (None, why) when it cannot: a function of the
    name and the raw value, kept for the values that come back (a sender's From, the X-MSS fields) and shared
    by header_summary and header_problems, which read the same fields of the same mail."""
    try:
        return str(policy.default.header_fetch_parse(name, value)), None
    except Exception as exc:   # the email package's structured parsers raise several unrelated classes
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def header_problems(raw: bytes) -> list[tuple[str, str]]:
    """(field name, why) for each summary field the email package cannot parse: the mail is kept as it is,
    these become findings (a malformed header is the recipient's to judge, not a reason to refuse)."""
    end = header_end(raw)
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw if end is None else raw[:end + 2])
    wanted = {h.lower() for h in SUMMARY_HEADERS}
    problems = []
    for name, value in headers.items():
        if name.lower() not in wanted:
            continue
        _, why = _fetched(name, str(value))
        if why is not None:
            problems.append((name, why))
    return problems


def _name(part: Message) -> str:
    name = part.get_filename() or part.get_param("name") or ""
    if isinstance(name, tuple):  # RFC 2231 continuation
        name = collapse_rfc2231_value(name)
    return str(name)


def find_attachment(raw: bytes, filename: str) -> tuple[Message, bytes | None]:
    """The message (compat32) and the decoded payload of its first part, in `walk()` order, named `filename`
    (case-insensitive, Content-Disposition filename or Content-Type name), None when there is none.

    The email package's feed parser reads the whole message line by line (most of the time a mail with a
    100 KB attachment takes here). A mail with CRLF line ends and one level of parts is split on its boundary
    instead, each part's header block parsed alone, the payload decoded by the same `get_payload(decode=True)`:
    the same answer (a test compares the two). Anything else goes through the feed parser, whose errors are
    the caller's. The message returned by the split carries the top-level headers only."""
    wanted = filename.upper()
    found = _split_attachment(raw, wanted)
    if found is not None:
        return found
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    for part in message.walk():
        if _name(part).upper() == wanted:
            return message, _leaf_payload(part)
    return message, None


def _leaf_payload(part: Message) -> bytes:
    """A leaf part's payload, its transfer encoding undone (`get_payload(decode=True)`: bytes for a leaf)."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _clean_header_block(block: bytes) -> bool:
    """Whether the feed parser would read every line of `block` (CRLF-ended lines) as a header line."""
    for line in block.split(b"\r\n")[:-1]:
        if line.startswith(b"From ") or not _HEADER_LINE.match(line.decode("ascii", "surrogateescape")):
            return False
    return True


def _delimiters(raw: bytes, boundary: bytes, body: int) -> Iterator[re.Match]:
    """The delimiter lines of a CRLF-only body (`raw` from offset `body`), as the feed parser matches them:
    `--boundary`, then `--` for the close delimiter, spaces or tabs, the line end (RFC 2046 5.1.1)."""
    line = re.compile(rb"--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)")
    needle = b"\r\n--" + boundary
    start = body if raw.startswith(needle[2:], body) else raw.find(needle, body) + 2   # 1: none
    while start != 1:
        match = line.match(raw, start)
        if match:
            yield match
        start = raw.find(needle, start) + 2


def _split_attachment(raw: bytes, wanted: str) -> tuple[Message, bytes | None] | None:
    """`find_attachment` by splitting on the boundary; None when the message is not of the simple shape.

    Offsets into `raw` rather than copies of the body, of the part and of its payload (each as large as the
    attachment); the mail without its CRLFs, made once to find a bare CR or LF, gives the base64 payload's
    text as `get_payload(decode=True)` joins its lines."""
    without = raw.replace(b"\r\n", b"")
    if b"\r" in without or b"\n" in without:
        return None                                    # bare CR or LF: the feed parser's line ends differ
    end = raw.find(b"\r\n\r\n")
    if end < 0 or raw.startswith(b"\r\n") or not _clean_header_block(raw[:end + 2]):
        return None
    parser = BytesHeaderParser(policy=policy.compat32)
    top = parser.parsebytes(raw[:end + 4])
    maintype = top.get_content_maintype()
    if maintype == "message" or _name(top).upper() == wanted:
        return None
    if maintype != "multipart":
        return top, None                               # walk() visits the message alone
    boundary = top.get_boundary()
    if boundary is None:
        return None
    previous = None
    for match in _delimiters(raw, boundary.encode("ascii", "surrogateescape"), end + 4):
        if previous is None:
            if match.group(1):
                return None                            # a close delimiter first: no parts
            previous = match
            continue
        start, stop = previous.end(), match.start()   # the part
        if start == stop:
            return None                                # repeated delimiters: the feed parser merges them
        if raw.startswith(b"\r\n", start):
            head, payload = b"", start + 2
        else:
            cut = raw.find(b"\r\n\r\n", start, stop)
            if cut < 0 or not _clean_header_block(raw[start:cut + 2]):
                return None
            head, payload = raw[start:cut + 4], cut + 4
        headers = parser.parsebytes(head)
        if headers.get_content_maintype() in ("multipart", "message"):
            return None                                # nested: walk() would go into it
        if _name(headers).upper() == wanted:
            if stop - payload >= 2 and raw.startswith(b"\r\n", stop - 2):
                stop -= 2                              # RFC 2046: the CRLF before a delimiter is the delimiter's
            return top, _part_payload(headers, raw, without, payload, stop)
        if match.group(1):
            return top, None                           # the close delimiter: the rest is the epilogue
        previous = match
    return None                                        # no close delimiter


def _part_payload(headers: Message, raw: bytes, without: bytes, start: int, stop: int) -> bytes:
    """`raw[start:stop]` as the part's payload, its transfer encoding undone, as `get_payload(decode=True)`
    does once it is set (`_leaf_payload`). For base64 that is `decode_b` of its lines joined, which in a
    mail without bare CR or LF is the same bytes in `without` (the offsets moved back by two per CRLF before
    them; `start` and `stop` are never inside a CRLF): one copy of the text instead of five (str, the
    surrogate check, bytes, the lines, their join)."""
    if str(headers.get("content-transfer-encoding", "")).lower() != "base64":
        headers.set_payload(raw[start:stop].decode("ascii", "surrogateescape"))
        return _leaf_payload(headers)
    crlfs = (len(raw) - len(without)) // 2
    first = start - 2 * raw.count(b"\r\n", 0, start)
    last = stop - 2 * (crlfs - raw.count(b"\r\n", stop))
    return _decode_b(without[first:last])


def _decode_b(encoded: bytes) -> bytes:
    """What `get_payload(decode=True)` makes of a base64 text (the email package's `decode_b`, whose module is
    private): strict with the padding completed, else lenient, else lenient with extra padding, else the text
    itself (a length of 4n + 1 cannot be decoded). The differential tests of `find_attachment` against the
    feed parser cover each branch."""
    missing = -len(encoded) % 4
    try:
        return base64.b64decode(encoded + b"=" * missing, validate=True)
    except binascii.Error:
        pass
    for padding in (b"", b"=="):
        try:
            return base64.b64decode(encoded + padding, validate=False)
        except binascii.Error:
            pass
    return encoded


def addresses(value: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses([value]) if addr]


KO_MARK = "[KO Intégration système !]"   # trans-cda-mss/struct-msg-mdn.md: the subject of an integration error


def ko_subject(error: str, subject: str) -> str:
    """`[KO Intégration système !][code erreur] <the original subject>` (trans-cda-mss/struct-msg-mdn.md and
    struct-email-standard.md)."""
    return f"{KO_MARK}[{error.split('^')[0]}] {subject}"


def integration_text(error: str) -> str:
    """The human part of an integration error: the consumer's code and label (struct-msg-mdn.md, its example)."""
    code, _, label = error.partition("^")
    return ("Le message ci-dessous n'a pas pu être intégré automatiquement dans le DPI pour la raison suivante : "
            f"{label or code}\r\nLe système a retourné l'erreur {error}")


def attachments(raw: bytes) -> list[tuple[str, str, bytes]]:
    """(content type, file name, bytes) of each named leaf part of a message, in order (the IHE_XDM.ZIP, a
    PDF...): what an integration error returns to the sender."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    out = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = _name(part)
        if name:
            payload = part.get_payload(decode=True)
            out.append((part.get_content_type(), name, payload if isinstance(payload, bytes) else b""))
    return out


def _returned_parts(boundary: str, raw: bytes) -> list[str]:
    """The original mail as a message/rfc822 part, then its attachments in base64 (struct-msg-mdn.md:
    "Les pièces jointes envoyées avec le courriel d'origine ... doivent être remises en pièces jointes")."""
    # RFC 2046 5.2.1: a message/rfc822 body is 7bit or 8bit, never base64: the original's bytes as they are.
    text = raw.replace(b"\r\n", b"\n").decode("utf-8", "surrogateescape").rstrip("\n")
    lines = [f"--{boundary}", "Content-Type: message/rfc822",
             'Content-Disposition: attachment; filename="message_original.eml"',
             f"Content-Transfer-Encoding: {'7bit' if raw.isascii() else '8bit'}", "", *text.split("\n")]
    for content_type, name, payload in attachments(raw):
        quoted = name.replace("\\", "").replace('"', "")
        lines += [f"--{boundary}", f'Content-Type: {content_type}; name="{quoted}"',
                  "Content-Transfer-Encoding: base64", f'Content-Disposition: attachment; filename="{quoted}"', "",
                  *base64.encodebytes(payload).decode("ascii").rstrip("\n").split("\n")]
    return lines


def mdn(*, original: dict[str, str], reporter: str, to: str, disposition: str = "processed",
        error: str | None = None, domain: str = "mockbench.invalid", original_recipient: str | None = None,
        returned: bytes | None = None) -> bytes:
    """A disposition notification (RFC 8098) answering the message whose headers are `original`.
    `error` ("code^label") makes it the ANS integration-error form (trans-cda-mss/struct-msg-mdn.md):
    `processed/Error: code^label`, the subject `[KO Intégration système !][code] <original subject>` and the
    error's code and label in the human part. `original_recipient` adds Original-Recipient; `returned` (the
    original mail's bytes) adds it as a message/rfc822 part followed by its attachments."""
    subject = original.get("Subject", "")
    subject = ko_subject(error, subject) if error else f"Accusé de lecture : {subject}"
    human = (integration_text(error) if error
             else f"Le message {original.get('Message-ID', '')} a été traité.")
    fields = [f"Reporting-UA: {domain}; mockbench"]
    if original_recipient:
        fields.append(f"Original-Recipient: rfc822;{original_recipient}")
    fields.append(f"Final-Recipient: rfc822;{reporter}")
    if original.get("Message-ID"):
        fields.append(f"Original-Message-ID: {original['Message-ID']}")
    fields.append("Disposition: automatic-action/MDN-sent-automatically; "
                  + (f"processed/Error: {error}" if error else disposition))
    return _report("disposition-notification", "message/disposition-notification", fields, human, subject=subject,
                   sender=reporter, to=to, original=original, domain=domain, returned=returned)


def error_mail(*, original: dict[str, str], reporter: str, to: str, error: str, returned: bytes,
               domain: str = "mockbench.invalid") -> bytes:
    """The standard mail that reports an integration error when the sender asked for no MDN
    (trans-cda-mss/struct-email-standard.md): multipart/mixed, the subject
    `[KO Intégration système !][code] <original subject>`, a human part with the code and label, the original
    mail (message/rfc822) and its attachments."""
    boundary = f"=_mockbench_{uuid.uuid4().hex}"
    headers = [f"From: {reporter}", f"To: {to}", f"Date: {formatdate(localtime=False)}",
               f"Message-ID: <{uuid.uuid4()}@{domain}>",
               f"Subject: {Header(ko_subject(error, original.get('Subject', '')), 'utf-8').encode()}"]
    if original.get("Message-ID"):
        headers += [f"In-Reply-To: {original['Message-ID']}", f"References: {original['Message-ID']}"]
    headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"']
    text = base64.encodebytes(integration_text(error).encode("utf-8")).decode("ascii").rstrip("\n").split("\n")
    lines = [*headers, "", f"--{boundary}", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: base64", "", *text, *_returned_parts(boundary, returned),
             f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def dsn(*, original: dict[str, str], recipient: str, to: str, status: str = "5.1.1",
        diagnostic: str = "550 5.1.1 mailbox unavailable", postmaster: str = "postmaster@mockbench.invalid",
        domain: str = "mockbench.invalid") -> bytes:
    """A delivery status notification (RFC 3464) saying the delivery to `recipient` failed."""
    fields = [f"Reporting-MTA: dns; {domain}", "", f"Final-Recipient: rfc822;{recipient}", "Action: failed",
              f"Status: {status}", f"Diagnostic-Code: smtp; {diagnostic}"]
    return _report("delivery-status", "message/delivery-status", fields,
                   f"Le message n'a pas pu être remis à {recipient} : {diagnostic}",
                   subject=f"Non distribué : {original.get('Subject', '')}", sender=postmaster, to=to,
                   original=original, domain=domain)


def _report(report_type: str, content_type: str, fields: list[str], human: str, *, subject: str, sender: str,
            to: str, original: dict[str, str], domain: str, returned: bytes | None = None) -> bytes:
    # Written out by hand: the email package's generator wants message/delivery-status parts as lists of
    # header blocks and re-folds the Disposition field; a report is small and its shape fixed.
    boundary = f"=_mockbench_{uuid.uuid4().hex}"
    headers = [f"From: {sender}", f"To: {to}", f"Date: {formatdate(localtime=False)}",
               f"Message-ID: <{uuid.uuid4()}@{domain}>", f"Subject: {Header(subject, 'utf-8').encode()}"]
    if original.get("Message-ID"):
        headers += [f"In-Reply-To: {original['Message-ID']}", f"References: {original['Message-ID']}"]
    headers += ["MIME-Version: 1.0",
                f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"']
    text = base64.encodebytes(human.encode("utf-8")).decode("ascii").rstrip("\n").split("\n")
    lines = [*headers, "", f"--{boundary}", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: base64", "", *text, f"--{boundary}", f"Content-Type: {content_type}",
             "Content-Transfer-Encoding: 7bit", "", *fields, "",
             *(_returned_parts(boundary, returned) if returned is not None else []), f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


XDM_ATTACHMENT = "IHE_XDM.ZIP"   # the package's file name in an MSSanté mail (DOMAIN.md section 3)


def xdm_mail(*, sender: str, to: list[str], subject: str, package: bytes, text: str = "",
             disposition_notification_to: str | None = None, domain: str = "mockbench.invalid",
             extra_headers: dict[str, str] | None = None) -> bytes:
    """An MSSanté mail carrying an IHE_XDM.ZIP (multipart/mixed, the zip in base64), as DOMAIN.md section 3
    describes it; `Disposition-Notification-To` asks the recipient for an MDN."""
    boundary = f"=_mockbench_{uuid.uuid4().hex}"
    headers = [f"From: {sender}", f"To: {', '.join(to)}", f"Date: {formatdate(localtime=False)}",
               f"Message-ID: <{uuid.uuid4()}@{domain}>", f"Subject: {Header(subject, 'utf-8').encode()}"]
    if disposition_notification_to:
        headers.append(f"Disposition-Notification-To: {disposition_notification_to}")
    headers += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
    headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"']
    body = base64.encodebytes((text or subject).encode("utf-8")).decode("ascii").rstrip("\n").split("\n")
    attachment = base64.encodebytes(package).decode("ascii").rstrip("\n").split("\n")
    lines = [*headers, "", f"--{boundary}", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: base64", "", *body, f"--{boundary}",
             f'Content-Type: application/zip; name="{XDM_ATTACHMENT}"', "Content-Transfer-Encoding: base64",
             f'Content-Disposition: attachment; filename="{XDM_ATTACHMENT}"', "", *attachment, f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8")


# Reading disposition notifications -----------------------------------------------------------------

# RFC 8098 3.2.6: action-mode/sending-mode; disposition-type[/modifier]; the ANS error form is
# `processed/Error: code^label` (DOMAIN.md section 3); IHE's `displayed` and `deleted` are accepted too.
_DISPOSITION = re.compile(r"\s*(manual-action|automatic-action)\s*/\s*(MDN-sent-manually|MDN-sent-automatically)\s*;"
                          r"\s*(displayed|deleted|dispatched|processed)\s*(/\s*([A-Za-z-]+)\s*(:.*)?)?\s*",
                          re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class MdnShape:
    """What a disposition notification says, and how it departs from RFC 8098."""
    problems: tuple[str, ...]       # how it departs from RFC 8098 (empty: well formed)
    error: str | None               # the error modifier's text (`E12^Document illisible`), None for no error
    original: str                   # Original-Message-ID, else In-Reply-To
    subject: str = ""
    original_message_id: bool = False     # the notification carries Original-Message-ID
    original_recipient: bool = False      # ... and Original-Recipient (trans-cda-mss/struct-msg-mdn.md)
    attachments: tuple[str, ...] = ()     # the file names the MDN returns (upper-cased)


def read_mdn(raw: bytes) -> MdnShape | None:
    """The shape of a multipart/report; report-type=disposition-notification, None for any other message."""
    end = header_end(raw)
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(  # the body only for MDNs
        raw if end is None else raw[:end + 4])
    if head.get_content_type() != "multipart/report" or \
            str(head.get_param("report-type", "")).lower() != "disposition-notification":
        return None
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    problems = []
    parts = [p for p in message.get_payload() if isinstance(p, Message)] if message.is_multipart() else []
    if not parts or parts[0].get_content_type() != "text/plain":
        problems.append("the first part is not the human-readable text/plain (RFC 6522 3)")
    notification = next((p for p in parts if p.get_content_type() == "message/disposition-notification"), None)
    if notification is None:
        return MdnShape((*problems, "no message/disposition-notification part (RFC 8098 3)"), None,
                        str(message.get("In-Reply-To", "")).strip())
    body = notification.get_payload()
    text = "".join(b.as_string() if isinstance(b, Message) else str(b) for b in body) if isinstance(body, list) else str(body)
    fields = Parser(policy=policy.compat32).parsestr(text.lstrip("\r\n"), headersonly=True)
    if not fields.get("Final-Recipient"):
        problems.append("the notification has no Final-Recipient field (RFC 8098 3.1)")
    disposition = " ".join(str(fields.get("Disposition", "")).split())
    error = None
    match = _DISPOSITION.fullmatch(disposition)
    if not disposition:
        problems.append("the notification has no Disposition field (RFC 8098 3.1)")
    elif match is None:
        problems.append(f"Disposition {disposition!r} is not action-mode/sending-mode; type[/modifier] "
                        "(RFC 8098 3.2.6)")
    elif (match.group(5) or "").lower() == "error":
        error = (match.group(6) or ":").lstrip(":").strip()
    original = str(fields.get("Original-Message-ID") or message.get("In-Reply-To") or "").strip()
    try:
        subject = str(policy.default.header_fetch_parse("Subject", str(message.get("Subject", ""))))
    except (ValueError, LookupError):
        subject = str(message.get("Subject", ""))
    names = tuple(_name(p).upper() for p in message.walk() if not p.is_multipart() and _name(p))
    return MdnShape(tuple(problems), error, original, " ".join(subject.split()),
                    bool(str(fields.get("Original-Message-ID", "")).strip()),
                    bool(str(fields.get("Original-Recipient", "")).strip()), names)


# Reading what a person reads in a mail -------------------------------------------------------------

MAX_TEXT = 256 * 1024        # the text read from one mail
_LINK = re.compile(r"""https?://[^\s"'<>()\[\]]+""", re.IGNORECASE)
_HREF = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class MailText:
    """What a person reads in a mail: its subject and text parts, the links, the attachments' names."""
    text: str
    links: tuple[str, ...]
    attachments: tuple[str, ...]


def read_mail(raw: bytes) -> MailText:
    """Its subject and text parts (HTML without its tags, each part and the whole bounded by MAX_TEXT), its
    links (http(s) in the text and HTML hrefs, trailing punctuation removed), its attachments' names (or
    content types). Never fails on a part it cannot decode: read as Latin-1."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    texts = [str(message.get("Subject", ""))]
    links: list[str] = []
    attachments: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        name = part.get_filename()
        if name or part.get_content_disposition() == "attachment" or not ctype.startswith("text/"):
            attachments.append(name or ctype)
            continue
        try:
            body = part.get_content()
        except Exception:   # an unknown charset or transfer encoding: read it as Latin-1, never fail
            payload = part.get_payload(decode=True)
            body = payload.decode("latin-1") if isinstance(payload, bytes) else str(part.get_payload())
        body = str(body)[:MAX_TEXT]
        if ctype == "text/html":
            links.extend(html.unescape(h) for h in _HREF.findall(body))
            body = html.unescape(_TAG.sub(" ", body))
        texts.append(body)
    text = "\n".join(texts)[:MAX_TEXT]
    links.extend(_LINK.findall(text))
    return MailText(text, tuple(dict.fromkeys(link.rstrip(".,;:!?") for link in links)), tuple(attachments))
