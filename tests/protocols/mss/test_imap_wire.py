"""The IMAP wire helpers without sockets: the command reader over a fed StreamReader, tokens, sequence sets,
sections and BODYSTRUCTURE."""

from __future__ import annotations

import asyncio

import pytest

from mockbench.protocols.mss.imap import COMMANDS, ImapSession
from mockbench.protocols.mss.imap_messages import _section
from mockbench.protocols.mss.imap_wire import (
    CommandReader,
    ImapLimits,
    ImapProtocolError,
    SeqSet,
    bodystructure,
    header_fields,
    tokenize,
)


class _Writer:
    def __init__(self) -> None:
        self.out = b""

    def write(self, data: bytes) -> None:
        self.out += data

    async def drain(self) -> None:
        pass


SMALL = ImapLimits(line_length=100, literal_size=50)


def read_all(data: bytes, limits: ImapLimits = SMALL):
    async def go():
        reader = asyncio.StreamReader(limit=64)
        reader.feed_data(data)
        reader.feed_eof()
        writer = _Writer()
        commands = CommandReader(reader, writer, limits)
        out = []
        while True:
            try:
                got = await commands.command()
            except ImapProtocolError as exc:
                out.append(("error", exc.tag, exc.text))
                if exc.fatal:
                    break
                continue
            if got is None:
                break
            out.append(got)
        return out, writer.out
    return asyncio.run(go())


def test_reader_literals_and_limits():
    out, written = read_all(b"a1 LOGIN {5}\r\nhello {3}\r\nabc\r\na2 NOOP\r\n")
    assert out[0] == ("a1 LOGIN \x000\x00 \x001\x00", [b"hello", b"abc"])
    assert out[1] == ("a2 NOOP", [])
    assert written == b"+ Ready for literal data\r\n" * 2
    out, written = read_all(b"a1 NOOP " + b"x" * 500 + b"\r\na2 NOOP\r\n")
    assert out[0][0] == "error" and "line too long" in out[0][2] and out[1] == ("a2 NOOP", [])
    out, written = read_all(b"a1 LOGIN {51}\r\na2 NOOP\r\n")
    assert out[0] == ("error", "a1", "literal of 51 octets refused: the limit is 50 octets and 8 literals per command")
    assert out[1] == ("a2 NOOP", []) and written == b""
    out, _ = read_all(b"a1 LOGIN {51+}\r\n" + b"x" * 51 + b"\r\n")   # non-synchronizing: out of sync, fatal
    assert out == [("error", "a1", out[0][2])]


def test_tokens_and_sets():
    assert tokenize('FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.10>) "a \\"b\\""', []) == [
        "FETCH", "1:*", ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.10>"], 'a "b"']
    with pytest.raises(ImapProtocolError):
        tokenize("(unbalanced", [])
    s = SeqSet("1,3:5,9:*", 12)
    assert [n for n in range(1, 14) if n in s] == [1, 3, 4, 5, 9, 10, 11, 12]
    assert 4_000_000_000 in SeqSet("1:4294967295", 3)      # ranges are never expanded
    assert 7 in SeqSet("10:*", 7)                            # `*` is the largest, even below the start
    for bad in ("", "0", "a:b", "1:", "12345678901"):
        with pytest.raises(ImapProtocolError):
            SeqSet(bad, 5)


NESTED = (b"From: a@b.fr\r\nSubject: Transfert\r\nContent-Type: multipart/mixed; boundary=OUT\r\n\r\n"
          b"preamble\r\n--OUT\r\nContent-Type: text/plain\r\n\r\nvoir ci-dessous\r\n"
          b"--OUT\r\nContent-Type: message/rfc822\r\n\r\n"
          b"From: c@d.fr\r\nSubject: Original\r\n\r\ncorps\r\n"
          b"--OUT--\r\nepilogue\r\n")


def test_sections_and_bodystructure_of_a_nested_message():
    assert _section(NESTED, "1") == b"voir ci-dessous"
    assert _section(NESTED, "2") == b"From: c@d.fr\r\nSubject: Original\r\n\r\ncorps"
    assert _section(NESTED, "2.HEADER") == b"From: c@d.fr\r\nSubject: Original\r\n\r\n"
    assert _section(NESTED, "2.TEXT") == b"corps"
    assert _section(NESTED, "2.MIME") == b"Content-Type: message/rfc822\r\n\r\n"
    assert _section(NESTED, "HEADER.FIELDS (SUBJECT)") == b"Subject: Transfert\r\n\r\n"
    assert header_fields(b"A: 1\r\nB: 2\r\n folded\r\n\r\n", ["A"], exclude=True) == b"B: 2\r\n folded\r\n\r\n"
    structure = tokenize(bodystructure(NESTED).decode(), [])[0]
    text, message, subtype = structure[0], structure[1], structure[2]
    assert subtype == "MIXED" and text[:2] == ["TEXT", "PLAIN"] and text[6] == "15" and text[7] == "0"
    assert message[:2] == ["MESSAGE", "RFC822"] and message[7][1] == "Original"   # the envelope
    assert message[8][:2] == ["TEXT", "PLAIN"]


def test_every_command_has_a_handler():
    for name in COMMANDS:
        assert callable(getattr(ImapSession, f"cmd_{name.lower()}")), name
