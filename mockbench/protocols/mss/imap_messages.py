"""IMAP message commands of the selected state: FETCH (RFC 3501 6.4.5, with its sections and partials),
SEARCH (6.4.4, the common subset of keys) and STORE (6.4.6). Flags are the world's: another session, the
control API and the SMTP door see them at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...world.model import Message
from ...world.store import Tx
from .imap_base import ImapRefusal, SessionBase, flags_of
from .imap_wire import (
    Atom,
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
)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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


class MessageCommands(SessionBase):
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
        flags = flags_of(args[2] if isinstance(args[2], list) else args[2:])
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


def _internaldate(iso: str) -> str:
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        when = datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return f"{when.day:02d}-{MONTHS[when.month - 1]}-{when.year} {when:%H:%M:%S} +0000"


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


@dataclass
class _Candidate:
    session: SessionBase
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


def _search_program(tokens: list, session: SessionBase):
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
            octets = as_text(take()).lower().encode()
            part = 1 if word == "BODY" else None
            return lambda c: octets in (split_entity(c.raw)[1] if part else c.raw).lower()
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

