"""The DATA phase read in blocks (protocols/mss/data.py, MssSmtp.smtp_DATA) answers as aiosmtpd's line loop.

The differential test runs aiosmtpd's own `SMTP.smtp_DATA` and the door's override on the same stream (a real
asyncio.StreamReader with the door's line limit), the door's read in blocks of random sizes, and compares the
replies, the content handed to the handler and what is left in the stream for the next command."""

import asyncio
import smtplib
import socket

from aiosmtpd.smtp import MISSING, SMTP, Envelope
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mockbench.protocols.mss.content import count_header_fields
from mockbench.protocols.mss.data import NOMINAL, TOO_LONG, TOO_MUCH, DataReader
from mockbench.protocols.mss.smtp_session import MssSmtp

LINE_LIMIT = 40


class _Writer:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Engine:
    """What smtp_DATA reads and calls on its engine, with the handler's hook recording the content."""

    def __init__(self, reader: asyncio.StreamReader, size_limit: int | None, block: int) -> None:
        self._reader = reader
        self._writer = _Writer()
        self.transport = object()
        self.data_size_limit = size_limit
        self.line_length_limit = LINE_LIMIT
        self.data_line_limit = LINE_LIMIT           # what smtp_DATA reads (line_length_limit sizes command lines)
        self._decode_data = False
        self.envelope = Envelope()
        self.envelope.rcpt_tos = ["a@b"]
        self._handle_hooks = {"DATA": None}
        self.replies: list[str] = []
        self.content = None

    async def check_helo_needed(self) -> bool:
        return False

    async def check_auth_needed(self, _: str) -> bool:
        return False

    async def push(self, line: str) -> None:
        self.replies.append(line)

    async def _call_handler_hook(self, _: str):
        self.content = self.envelope.original_content
        return MISSING

    def _set_post_data_state(self) -> None:
        self.envelope = Envelope()


def _run(method, stream: bytes, size_limit: int | None, block: int, pieces: list[int]) -> tuple:
    async def go():
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        engine = _Engine(reader, size_limit, block)
        start = 0
        for size in pieces:          # what the socket delivered so far; the rest arrives while DATA reads
            reader.feed_data(stream[start:start + size])
            start += size
        reader.feed_data(stream[start:])
        await method(engine, "")
        reader.feed_eof()
        return engine.replies, engine.content, await reader.read()
    return asyncio.run(go())


_LINES = st.lists(st.one_of(
    st.sampled_from([b"", b".", b"..", b"...", b". ", b".x", b"x.", b"\r", b"\n", b"\r.", b".\r", b"\n.\r\n"]),
    st.binary(max_size=8),
    st.integers(LINE_LIMIT - 4, LINE_LIMIT + 4).map(lambda n: b"." * (n % 3 == 0) + b"y" * n),
), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_LINES, size_limit=st.sampled_from([None, 0, 30, 120, 400]), block=st.integers(1, 64),
       pieces=st.lists(st.integers(1, 50), max_size=6), tail=st.sampled_from([b"", b"QUIT\r\n", b"MAIL FROM:<x>\r\nRC"]))
def test_block_reader_answers_as_aiosmtpd(lines, size_limit, block, pieces, tail):
    stream = b"".join(line + b"\r\n" for line in lines) + b".\r\n" + tail
    expected = _run(SMTP.smtp_DATA, stream, size_limit, block, pieces)
    assert _run(MssSmtp.smtp_DATA, stream, size_limit, block, pieces) == expected


def _feed(reader: DataReader, stream: bytes, sizes: list[int]) -> bytes | None:
    start = 0
    for size in [*sizes, len(stream)]:
        rest = reader.feed(stream[start:start + size]) if start < len(stream) else None
        start += size
        if rest is not None:
            return rest + stream[start:]
    return None


@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=40))
def test_terminator_and_dots_across_reads(sizes):
    stream = b"a\r\n..\r\n.b\r\n\r\n.\r\nNEXT"
    reader = DataReader(None, 1001)
    assert _feed(reader, stream, sizes) == b"NEXT"
    assert reader.state == NOMINAL and reader.content() == b"a\r\n.\r\nb\r\n\r\n"


def test_a_lone_dot_ends_the_data_and_bare_lf_is_part_of_a_line():
    reader = DataReader(None, 1001)
    # LF-only line ends are not line ends: "\n.\n" is no terminator, the whole is one line (too long here)
    assert reader.feed(b"QUJD\n.\nREVG\n" * 100 + b"\r\n.\r\n") == b""
    assert reader.state == TOO_LONG
    reader = DataReader(None, 1001)
    assert reader.feed(b"QUJD\n.\n\r\n.\r\n") == b""
    assert reader.content() == b"QUJD\n.\n\r\n"


def test_over_size_is_read_to_the_end_then_dropped():
    reader = DataReader(100, 1001)
    assert reader.feed(b"x" * 50 + b"\r\n") is None
    assert reader.feed(b"y" * 50 + b"\r\n" + b"z" * 5000) is None   # a long line after the size state
    assert reader.feed(b"\r\n.\r\nQUIT\r\n") == b"QUIT\r\n"
    assert reader.state == TOO_MUCH and reader.size == 104


def _dialog(port: int, data: bytes) -> list[bytes]:
    """Raw SMTP: login, one DATA written in one piece with QUIT pipelined after it; the replies after 354."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        out = sock.makefile("rb")
        out.readline()
        sock.sendall(b"EHLO t\r\n")
        while out.readline()[3:4] == b"-":
            pass
        sock.sendall(b"AUTH PLAIN AGRwaUBjaHUubXNzYW50ZS5mcgBtb2NrYmVuY2g=\r\n")
        assert out.readline().startswith(b"235")
        sock.sendall(b"MAIL FROM:<dpi@chu.mssante.fr>\r\nRCPT TO:<sec@chu.mssante.fr>\r\n")
        assert out.readline().startswith(b"250") and out.readline().startswith(b"250")
        sock.sendall(b"DATA\r\n")
        assert out.readline().startswith(b"354")
        sock.sendall(data + b"QUIT\r\n")
        return [out.readline(), out.readline()]


def test_pipelined_quit_after_the_data_is_answered(mockbench):
    mockbench.client.load_yaml("""\
id: blocks
title: DATA en blocs
world:
  structures: [{id: chu}]
  mailboxes:
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: sec@chu.mssante.fr, type: ORG, owner: chu, role: hospital}
""")
    body = b"Subject: t\r\n\r\n" + b"".join(b".line %d\r\n" % i for i in range(20000)) + b"..\r\n"
    first, second = _dialog(mockbench.ports["smtp"], body + b".\r\n")
    assert first.startswith(b"250 ") and second.startswith(b"221")
    stored = mockbench.client.call("GET", "/mss/mailboxes/sec@chu.mssante.fr/messages")
    import requests
    raw = requests.get(f"{mockbench.url}/_bench/mss/messages/{stored[0]['id']}", params={"raw": 1}, timeout=5)
    assert raw.content == body.replace(b"\r\n.", b"\r\n")
    with smtplib.SMTP("127.0.0.1", mockbench.ports["smtp"], timeout=10) as smtp:   # still serving
        assert smtp.noop()[0] == 250


def _count_header_fields_by_split(raw: bytes, stop_after: int) -> int:
    """The former count_header_fields, which split the whole message."""
    count = 0
    for line in raw.split(b"\n", stop_after * 4):
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] not in (b" ", b"\t"):
            count += 1
            if count > stop_after:
                break
    return count


@settings(max_examples=500, deadline=None)
@example(b"A: 1\n c\n c\n c\nB:2", 1)
@example(b"A: 1\n c\n\r\nB:2", 3)
@given(st.lists(st.sampled_from([b"A: 1", b" cont", b"\tc", b"", b"\r", b"B:2\r", b"x"]), max_size=20)
       .map(lambda lines: b"\n".join(lines)), st.integers(0, 4))
def test_count_header_fields_as_the_split_did(raw, stop_after):
    assert count_header_fields(raw, stop_after) == _count_header_fields_by_split(raw, stop_after)
