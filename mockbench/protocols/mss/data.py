"""The SMTP DATA phase read in blocks, with aiosmtpd's per-line rules (RFC 5321 4.5.2 and 4.5.3.1.6).

aiosmtpd 1.4's `SMTP.smtp_DATA` awaits one `readuntil(b"\\r\\n")` per line (about 1,900 for a mail carrying a
100 KB package) and unstuffs each line on its own. `DataReader` takes what the socket gave in one piece and
applies the same rules to the whole block, so the reply is the one aiosmtpd would give for any split of the
stream into reads:

- lines end with CRLF only (a bare LF is part of its line, as in aiosmtpd); the content ends at the first line
  that is exactly ".", which is not part of it;
- a line whose text (without CRLF) is longer than the line limit is "too long" before its bytes are counted
  (aiosmtpd's StreamReader overrun); otherwise its bytes, CRLF and transparency dot included, are added to the
  count, which over the size limit makes the message "too much", then a line longer than the limit with its
  CRLF is "too long"; the first of these states wins and the rest is read to the terminator and dropped;
- a leading dot is removed from every line (transparency).
"""

from __future__ import annotations

import asyncio

NOMINAL, TOO_LONG, TOO_MUCH = "nominal", "too_long", "too_much"
_TERMINATOR = b"\r\n.\r\n"


class DataReader:
    """Feed the DATA stream in blocks of any size; `feed` returns the bytes read past the terminator (the
    next commands) once it is found, None while more is needed. Then `state` and `content()`."""

    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.state = NOMINAL
        self.size = 0                      # bytes counted as aiosmtpd counts them (dots and CRLFs included)
        self._parts: list[bytes] = []      # unstuffed content, whole lines
        self._pending = b""                # the incomplete last line, from a line start
        self.done = False

    def feed(self, chunk: bytes) -> bytes | None:
        assert not self.done
        data = self._pending + chunk if self._pending else chunk
        if data.startswith(b".\r\n"):
            self.done = True
            self._pending = b""
            return data[3:]
        end = data.find(_TERMINATOR)
        if end >= 0:
            self._lines(data[:end + 2])
            self.done = True
            self._pending = b""
            return data[end + 5:]
        cut = data.rfind(b"\r\n") + 2      # 1 when there is no complete line: nothing to take
        if cut > 1:
            self._lines(data[:cut])
            pending = data[cut:]
        else:
            pending = data
        if self.state == NOMINAL and len(pending) > self.line_limit + 1:
            # Whatever follows, this line's text is longer than the limit (it may end with the CR of its CRLF).
            self._fail(TOO_LONG)
        if self.state != NOMINAL and len(pending) > 3:
            # Only the terminator matters now: keep the last two bytes (a CR, or CR and dot, may start it)
            # behind a byte that cannot be a dot at a line start.
            pending = b"x" + pending[-2:]
        self._pending = pending
        return None

    def content(self) -> bytes:
        assert self.done and self.state == NOMINAL
        return b"".join(self._parts)

    def _fail(self, state: str) -> None:
        self.state = state
        self._parts = []

    def _lines(self, block: bytes) -> None:
        """Complete lines, from a line start to a CRLF, none of them the terminator."""
        if self.state != NOMINAL:
            return
        lines = block.split(b"\r\n")
        lines.pop()                        # the empty text after the last CRLF
        limit = self.size_limit
        if max(map(len, lines)) + 2 <= self.line_limit and not (limit and self.size + len(block) > limit):
            self.size += len(block)
            if block.startswith(b"."):
                block = block[1:]
            self._parts.append(block.replace(b"\r\n.", b"\r\n"))
            return
        for line in lines:                 # a limit is reached in this block: find which, in order
            if len(line) > self.line_limit:
                self._fail(TOO_LONG)
                return
            self.size += len(line) + 2
            if limit and self.size > limit:
                self._fail(TOO_MUCH)
                return
            if len(line) + 2 > self.line_limit:
                self._fail(TOO_LONG)
                return
        raise AssertionError("a block over a limit has a line over it")  # pragma: no cover


_SEPARATOR = b".\r\n"   # every terminator ends with it; the reader tells which ones are terminators


async def read_data(stream: asyncio.StreamReader, reader: DataReader) -> bool:
    """Feed `reader` from `stream` up to the terminator and no further, with the stream's public calls: each
    `readuntil` stops at the next ".CRLF" (the end of every terminator, and of some lines), or, past the stream's
    limit, the bytes it has buffered are taken with `readexactly` (LimitOverrunError.consumed leaves the last
    bytes, where a separator may start). False when the stream ended first (nothing is stored)."""
    while not reader.done:
        try:
            try:
                chunk = await stream.readuntil(_SEPARATOR)
            except asyncio.LimitOverrunError as exc:
                chunk = await stream.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return False
        rest = reader.feed(chunk)
        assert not rest, "the stream is read up to a separator, never past the terminator"
    return True
