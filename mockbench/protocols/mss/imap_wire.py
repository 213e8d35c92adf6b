"""IMAP4rev1 wire format (RFC 3501): reading commands with their literals, tokenizing them, sequence sets,
and rendering what a FETCH returns (BODYSTRUCTURE and ENVELOPE computed from the raw bytes).

No world, no sockets beyond an asyncio.StreamReader: the door (imap.py) does the rest."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

CRLF = b"\r\n"
LITERAL = re.compile(rb"\{(\d{1,10})(\+?)\}$")


@dataclass(frozen=True)
class ImapLimits:
    """Bounds on what one client may send, each from the RFC that discusses it."""

    line_length: int = 8192             # RFC 7162 section 4: accept command lines of at least 8000 octets
    literal_size: int = 64 * 1024       # a literal in any command but APPEND: names, passwords, SASL data
    append_size: int = 32 * 1024 * 1024  # APPEND's message literal: the SMTP door's data_size (RFC 3501 6.3.11)
    literals_per_command: int = 8
    commands_per_connection: int = 100_000
    idle_timeout: float = 29 * 60       # RFC 2177: re-issue IDLE at least every 29 minutes
    inactivity_timeout: float = 30 * 60  # RFC 3501 section 5.4: autologout timer of at least 30 minutes
    bad_commands: int = 20              # consecutive BAD answers before the connection is closed


class ImapProtocolError(Exception):
    """What the client sent cannot be read as a command. `tag` when the line had one; `fatal` when the
    stream is no longer in sync (the connection is closed after the BAD)."""

    def __init__(self, text: str, *, tag: str = "*", fatal: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.fatal = fatal


class CommandReader:
    """Reads one command: a line, and each literal `{n}` it announces (after a `+` continuation)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: ImapLimits) -> None:
        self.reader = reader
        self.writer = writer
        self.limits = limits

    async def line(self) -> bytes | None:
        """One CRLF-terminated line without its CRLF; None at end of stream. An overlong line is read to its
        end (so the stream stays in sync) and refused."""
        too_long = False
        while True:
            try:
                data = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial and not too_long:
                    raise ImapProtocolError("the connection ended in the middle of a line", fatal=True) from None
                return None
            except asyncio.LimitOverrunError as exc:
                await self.reader.readexactly(exc.consumed)
                too_long = True
                continue
            if too_long or len(data) > self.limits.line_length + 2:
                raise ImapProtocolError(f"line too long: the limit is {self.limits.line_length} octets")
            return data.rstrip(b"\r\n") if data.endswith(b"\r\n") else data[:-1]

    async def command(self) -> tuple[str, list[bytes]] | None:
        """(text with literal markers, literals): the text holds \\x00N\\x00 where literal N stood."""
        first = await self.line()
        if first is None:
            return None
        text = b""
        literals: list[bytes] = []
        current = first
        while True:
            if b"\x00" in current:
                raise ImapProtocolError("NUL octets are not allowed in a command line", tag=_tag_of(first))
            match = LITERAL.search(current)
            if match is None:
                text += current
                break
            size, non_sync = int(match.group(1)), bool(match.group(2))
            text += current[: match.start()] + b"\x00%d\x00" % len(literals)
            allowed = self.limits.append_size if _is_append(first) else self.limits.literal_size
            if size > allowed or len(literals) >= self.limits.literals_per_command:
                # A synchronizing literal is refused before the client sends it; a non-synchronizing one
                # is already on its way and cannot be skipped safely if it is this large.
                raise ImapProtocolError(
                    f"literal of {size} octets refused: the limit is {allowed} octets "
                    f"and {self.limits.literals_per_command} literals per command",
                    tag=_tag_of(first), fatal=non_sync)
            if not non_sync:
                self.writer.write(b"+ Ready for literal data\r\n")
                await self.writer.drain()
            try:
                literals.append(await self.reader.readexactly(size))
            except asyncio.IncompleteReadError:
                return None
            nxt = await self.line()
            if nxt is None:
                return None
            current = nxt
        try:
            return text.decode("utf-8"), literals
        except UnicodeDecodeError:
            raise ImapProtocolError("the command line is not UTF-8", tag=_tag_of(first)) from None


def _is_append(line: bytes) -> bool:
    """Whether a command line is an APPEND (the one command whose literal is a whole message)."""
    parts = line.split(b" ", 2)
    return len(parts) > 1 and parts[1].upper() == b"APPEND"


def _tag_of(line: bytes) -> str:
    tag = line.split(b" ", 1)[0].decode("ascii", "replace")
    return tag if tag and valid_tag(tag) else "*"


def valid_tag(tag: str) -> bool:
    return bool(tag) and all(33 <= ord(c) < 127 and c not in '(){%*"\\+' for c in tag)


# Tokens -----------------------------------------------------------------------------------------
class Atom(str):
    """An atom as sent (case kept); strings and literals are plain str/bytes."""


def tokenize(text: str, literals: list[bytes]) -> list:
    """Atoms (with any [...] section kept whole), quoted strings, literals and parenthesized lists."""
    pos = 0
    stack: list[list] = [[]]
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == " ":
            pos += 1
        elif c == "(":
            stack.append([])
            pos += 1
        elif c == ")":
            if len(stack) == 1:
                raise ImapProtocolError("unbalanced parenthesis")
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif c == '"':
            out, pos = [], pos + 1
            while True:
                if pos >= n:
                    raise ImapProtocolError("unterminated quoted string")
                ch = text[pos]
                if ch == "\\" and pos + 1 < n:
                    out.append(text[pos + 1])
                    pos += 2
                elif ch == '"':
                    pos += 1
                    break
                else:
                    out.append(ch)
                    pos += 1
            stack[-1].append("".join(out))
        elif c == "\x00":
            end = text.index("\x00", pos + 1)
            stack[-1].append(literals[int(text[pos + 1:end])])
            pos = end + 1
        else:
            start, depth = pos, 0
            while pos < n:
                ch = text[pos]
                if ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                elif depth <= 0 and ch in ' ()"\x00':
                    break
                pos += 1
            stack[-1].append(Atom(text[start:pos]))
    if len(stack) != 1:
        raise ImapProtocolError("unbalanced parenthesis")
    return stack[0]


def as_text(token) -> str:
    """A string argument: atom, quoted string or literal."""
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    if isinstance(token, list):
        raise ImapProtocolError("a string was expected, not a list")
    return str(token)


# Sequence sets ----------------------------------------------------------------------------------
class SeqSet:
    """An RFC 3501 sequence-set over sequence numbers or UIDs: ranges, never expanded (1:4294967295 is
    cheap). `*` stands for `largest`; `a:b` may come in either order."""

    def __init__(self, text: str, largest: int) -> None:
        if not text:
            raise ImapProtocolError("empty sequence set")
        self.ranges: list[tuple[int, int]] = []
        for item in text.split(","):
            lo, sep, hi = item.partition(":")
            a = _number(lo, largest)
            b = _number(hi, largest) if sep else a
            self.ranges.append((min(a, b), max(a, b)))

    def __contains__(self, n: int) -> bool:
        return any(lo <= n <= hi for lo, hi in self.ranges)


def _number(text: str, largest: int) -> int:
    if text == "*":
        return largest
    if not text.isdigit() or int(text) == 0 or len(text) > 10:
        raise ImapProtocolError(f"{text!r} is not a valid number in a sequence set")
    return int(text)


# Rendering --------------------------------------------------------------------------------------
def quote(value: str | bytes | None) -> bytes:
    """A string as a quoted string, or a literal when it cannot be quoted; NIL for None."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8") if isinstance(value, str) else value
    if b"\r" in data or b"\n" in data or b"\x00" in data or len(data) > 1000 or any(c > 127 for c in data):
        return b"{%d}\r\n" % len(data) + data
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def split_entity(raw: bytes) -> tuple[bytes, bytes]:
    """(header including its terminating blank line, body) of a message or MIME part."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0 and (sep == b"\r\n\r\n" or raw.find(b"\r\n\r\n") < 0):
            return raw[: i + len(sep)], raw[i + len(sep):]
    if raw.startswith(b"\r\n"):
        return b"\r\n", raw[2:]
    return raw, b""


def header_fields(header: bytes, names: list[str], *, exclude: bool = False) -> bytes:
    """The header lines (with continuations) whose field name is (or with `exclude`, is not) in `names`,
    followed by the blank line, as RFC 3501 BODY[HEADER.FIELDS (...)] returns them."""
    wanted = {n.lower() for n in names}
    out, keep = [], False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        keep = (name in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


def parse_headers(header: bytes):
    return BytesHeaderParser(policy=compat32).parsebytes(header)


def _params(msg, name: str = "content-type") -> bytes:
    params = msg.get_params(header=name) or []
    items = [(k, v) for k, v in params[1:]] if name == "content-type" else [(k, v) for k, v in params[1:]]
    if not items:
        return b"NIL"
    parts = []
    for k, v in items:
        if isinstance(v, tuple):  # RFC 2231 (charset, language, value)
            v = v[2]
        parts.append(quote(k.upper()) + b" " + quote(str(v)))
    return b"(" + b" ".join(parts) + b")"


def _nstring(msg, name: str) -> bytes:
    value = msg.get(name)
    return quote(str(value).strip()) if value is not None else b"NIL"


def _disposition(msg) -> bytes:
    value = msg.get("content-disposition")
    if value is None:
        return b"NIL"
    kind = str(value).split(";", 1)[0].strip()
    return b"(" + quote(kind.upper()) + b" " + _params(msg, "content-disposition") + b")"


def _language(msg) -> bytes:
    value = msg.get("content-language")
    return quote(str(value).strip()) if value else b"NIL"


def boundary_parts(body: bytes, boundary: str) -> list[bytes]:
    """The body parts between `--boundary` delimiter lines; the CRLF before a delimiter belongs to it."""
    delim = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary.encode("utf-8", "replace")) +
                       rb"(--)?[ \t]*(?:\r?\n|$)")
    parts: list[bytes] = []
    start: int | None = None
    for match in delim.finditer(body):
        if start is not None:
            parts.append(body[start:match.start()])
        if match.group(1):
            return parts
        start = match.end()
    if start is not None:
        parts.append(body[start:])
    return parts


def bodystructure(raw: bytes, *, extensible: bool = True, default_type: str = "text/plain") -> bytes:
    """RFC 3501 BODYSTRUCTURE (or BODY when not extensible) of one entity, sizes from the raw bytes."""
    header, body = split_entity(raw)
    msg = parse_headers(header)
    ctype = msg.get_content_type() if msg.get("content-type") else default_type
    maintype, _, subtype = ctype.partition("/")
    if maintype == "multipart":
        boundary = msg.get_param("boundary")
        if isinstance(boundary, tuple):
            boundary = boundary[2]
        parts = boundary_parts(body, str(boundary)) if boundary else []
        child_default = "message/rfc822" if subtype == "digest" else "text/plain"
        inner = b"".join(bodystructure(p, extensible=extensible, default_type=child_default) for p in parts) \
            or b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)'
        out = b"(" + inner + b" " + quote(subtype.upper())
        if extensible:
            out += b" " + _params(msg) + b" " + _disposition(msg) + b" " + _language(msg) + b" " + \
                _nstring(msg, "content-location")
        return out + b")"
    encoding = str(msg.get("content-transfer-encoding", "7bit")).strip().upper() or "7BIT"
    fields = [quote(maintype.upper()), quote(subtype.upper()), _params(msg), _nstring(msg, "content-id"),
              _nstring(msg, "content-description"), quote(encoding), str(len(body)).encode()]
    if ctype == "message/rfc822":
        inner_header, _ = split_entity(body)
        fields += [envelope(inner_header), bodystructure(body, extensible=extensible),
                   str(body.count(b"\n")).encode()]
    elif maintype == "text":
        fields.append(str(body.count(b"\n")).encode())
    if extensible:
        fields += [_nstring(msg, "content-md5"), _disposition(msg), _language(msg), _nstring(msg, "content-location")]
    return b"(" + b" ".join(fields) + b")"


def decoded(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a malformed encoded word: give it back as it came
        return value


def _address_list(msg, name: str) -> bytes:
    values = msg.get_all(name)
    if not values:
        return b"NIL"
    out = []
    for display, addr in getaddresses([str(v) for v in values]):
        if not addr and not display:
            continue
        local, _, domain = addr.rpartition("@") if "@" in addr else (addr, "", "")
        out.append(b"(" + quote(decoded(display) or None) + b" NIL " + quote(local or None) + b" " +
                   quote(domain or None) + b")")
    return b"(" + b"".join(out) + b")" if out else b"NIL"


def envelope(header: bytes) -> bytes:
    msg = parse_headers(header)

    def field(name: str) -> bytes:
        value = msg.get(name)
        return quote(decoded(str(value)).strip()) if value is not None else b"NIL"

    sender = _address_list(msg, "from")
    parts = [field("date"), field("subject"), sender,
             _address_list(msg, "sender") if msg.get("sender") else sender,
             _address_list(msg, "reply-to") if msg.get("reply-to") else sender,
             _address_list(msg, "to"), _address_list(msg, "cc"), _address_list(msg, "bcc"),
             field("in-reply-to"), field("message-id")]
    return b"(" + b" ".join(parts) + b")"
