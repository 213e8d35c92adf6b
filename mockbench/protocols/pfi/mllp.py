"""MLLP framing: bytes in, bytes out. No HL7 parsing and no world here (see hl7.py and door.py).

A block is VT + payload + FS CR (HL7 MLLP Release 2, section 1.2.2 "Block Format"). The reader owns the
limits MLLP itself leaves open (size, time, bytes outside a block) and turns every way a peer can break
the framing into an `MllpFramingError` with a stable `kind`, so the door decides in one place whether to
answer (AR) or hang up.

Only public asyncio stream calls are used. `MllpReader` reads with `StreamReader.read(n)`, so the stream
`limit` never bounds a message; it only sets the flow-control watermark of streams created here
(`STREAM_LIMIT`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

VT = b"\x0b"  # start block
FS = b"\x1c"  # end block, first byte
CR = b"\x0d"  # end block, second byte

READ_SIZE = 64 * 1024
STREAM_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class MllpLimits:
    # MLLP sets no maximum. The ANS guide notes that messages carrying a base64 CDA exceed 300 KB, and a
    # CDA with embedded PDF or images runs to several MB: 16 MiB is the bench's own ceiling above that.
    max_message_bytes: int = 16 * 1024 * 1024
    # MLLP defines no timeouts. The bench's own choice: a whole frame gets 60 s from its first byte, so a
    # sender trickling one byte a second is cut rather than holding a connection forever.
    frame_timeout: float = 60.0
    # The bench's own choice: a connection that starts no frame for 10 minutes is closed.
    idle_timeout: float = 600.0
    # MLLP allows no bytes outside a block; the bench tolerates a little (a stray LF after FS CR is common)
    # and reports it as a finding. Its own choice of 1 KiB before judging the stream broken.
    max_junk_bytes: int = 1024


@dataclass(frozen=True)
class Frame:
    payload: bytes
    junk_skipped: int  # bytes skipped before this frame's VT: the door journals them as a finding
    started: float  # clock value when the VT was seen
    elapsed: float  # seconds from the VT to the end block
    missing_cr: bool = False  # ended by a bare FS (at EOF, or followed by something other than CR)


HEAD_BYTES = 2048   # kept of an oversized frame, enough for its MSH


class MllpFramingError(Exception):
    """The peer broke the framing. `kind` is stable; `in_sync` says whether the stream is at a frame
    boundary, i.e. whether the door may answer on this connection and read on."""

    kind = "framing"

    def __init__(self, reason: str, *, size: int = 0, in_sync: bool = False, head: bytes = b"") -> None:
        self.reason = reason
        self.head = head  # an oversized frame's first bytes: the door's ACK still names its MSH-10
        self.size = size  # bytes seen: the frame's payload so far, or the junk skipped
        self.in_sync = in_sync
        super().__init__(reason)


class MllpJunkError(MllpFramingError):
    kind = "junk"


class MllpTooLargeError(MllpFramingError):
    kind = "too_large"


class MllpTimeoutError(MllpFramingError):
    kind = "timeout"


class MllpTruncatedError(MllpFramingError):
    kind = "truncated"


class MllpIdleError(MllpFramingError):
    kind = "idle"


class MllpReader:
    """Reads MLLP frames from an `asyncio.StreamReader`.

    Once wrapped, the stream must be read only through this reader: bytes read past one frame's end are
    kept here for the next call.

    Tolerances, each documented because the standard asks for stricter:
    - bytes before a VT (before the first frame or between frames) are skipped up to `max_junk_bytes` and
      counted in the next `Frame.junk_skipped` (or in `trailing_junk` when EOF follows them);
    - an FS followed by anything other than CR ends the frame, and that byte starts the next data;
      an FS as the very last byte before EOF ends the frame too. Both set `Frame.missing_cr`. After an
      FS the reader waits for the next byte to tell which case it is, so a sender that sends a bare FS
      and then waits for its answer without closing gets a frame timeout;
    - a VT inside a frame is kept in the payload: the framing layer does not judge content;
    - a connection reset counts as EOF.

    An oversized frame is read to its end and discarded before `MllpTooLargeError` is raised with
    `in_sync=True`, so the door can answer AR on the same connection and read the next frame (as aiosmtpd
    reads oversized DATA to its end before the 552). If the frame timeout or EOF comes first, the error
    has `in_sync=False` and the connection must be closed.
    """

    def __init__(
        self,
        stream: asyncio.StreamReader,
        limits: MllpLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_size: int = READ_SIZE,
    ) -> None:
        self._stream = stream
        self.limits = limits or MllpLimits()
        self._clock = clock
        self._read_size = read_size
        self._pending = b""  # bytes read past the last frame's end
        self.trailing_junk = 0  # junk skipped before a clean EOF

    async def read_frame(self) -> Frame | None:
        """The next frame, or None on EOF between frames. Raises an `MllpFramingError` otherwise."""
        limits = self.limits
        idle_deadline = self._clock() + limits.idle_timeout
        junk = 0
        data = self._take_pending()
        while True:
            start = data.find(VT)
            if start >= 0:
                junk += start
                data = data[start + 1:]
                break
            junk += len(data)
            if junk > limits.max_junk_bytes:
                raise MllpJunkError(f"more than {limits.max_junk_bytes} bytes outside a frame", size=junk)
            data = await self._read(idle_deadline, functools.partial(
                MllpIdleError, f"no frame started within {limits.idle_timeout:g} s", size=junk))
            if not data:
                self.trailing_junk = junk
                return None
        if junk > limits.max_junk_bytes:
            raise MllpJunkError(f"more than {limits.max_junk_bytes} bytes outside a frame", size=junk)

        started = self._clock()
        deadline = started + limits.frame_timeout
        parts: list[bytes] = []
        size = 0
        oversized = False
        head = b""

        def on_timeout() -> MllpFramingError:
            if oversized:
                return MllpTooLargeError(
                    f"frame over {limits.max_message_bytes} bytes ({size} seen) not ended within "
                    f"{limits.frame_timeout:g} s", size=size)
            return MllpTimeoutError(f"frame not ended within {limits.frame_timeout:g} s ({size} bytes seen)",
                                    size=size)

        while True:
            end = data.find(FS)
            body = data if end < 0 else data[:end]
            size += len(body)
            if not oversized and size > limits.max_message_bytes:
                # Stop keeping the payload but go on reading to the end block, to stay in sync.
                oversized = True
                head = b"".join([*parts, body])[:HEAD_BYTES]
                parts.clear()
            if not oversized:
                parts.append(body)
            if end >= 0:
                break
            data = await self._read(deadline, on_timeout)
            if not data:
                raise MllpTruncatedError(f"connection closed inside a frame ({size} bytes seen)", size=size)

        rest = data[end + 1:]
        if not rest:
            rest = await self._read(deadline, on_timeout)  # b"" at EOF: a bare FS ends the frame
        missing_cr = rest[:1] != CR
        self._pending = rest if missing_cr else rest[1:]
        if oversized:
            raise MllpTooLargeError(f"frame of {size} bytes, over {limits.max_message_bytes}", size=size,
                                    in_sync=True, head=head)
        return Frame(b"".join(parts), junk, started, self._clock() - started, missing_cr)

    def _take_pending(self) -> bytes:
        data, self._pending = self._pending, b""
        return data

    async def _read(self, deadline: float, on_timeout: Callable[[], MllpFramingError]) -> bytes:
        # Measured before each read, not only while waiting: a sender trickling bytes never lets a single
        # read time out.
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise on_timeout()
        try:
            async with asyncio.timeout(remaining):
                return await self._stream.read(self._read_size)
        except TimeoutError:
            raise on_timeout() from None
        except ConnectionError:
            # A reset is an end of stream like any other (python-hl7's client resets when it closes with
            # an answer unread): None between frames, truncated inside one.
            return b""


def frame(payload: bytes) -> bytes:
    """The payload wrapped in an MLLP block. A payload holding VT or FS could not be framed faithfully."""
    if VT in payload or FS in payload:
        raise ValueError("an MLLP payload cannot contain VT (0x0b) or FS (0x1c)")
    return VT + payload + FS + CR


async def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(frame(payload))
    await writer.drain()


class MllpClient:
    """One MLLP connection that sends a frame and waits for one answer frame: for tests and for the
    bench's outbound messages (ZAMs to the DPI)."""

    def __init__(self, limits: MllpLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or MllpLimits()
        self._clock = clock
        self._reader: MllpReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            stream, self._writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
        self._reader = MllpReader(stream, self.limits, clock=self._clock)

    async def send(self, payload: bytes, timeout: float = 10.0) -> bytes:
        """Send one frame and return the payload of the answer frame. `timeout` bounds the whole exchange
        (TimeoutError); a peer that closes without answering raises ConnectionError."""
        if self._reader is None or self._writer is None:
            raise RuntimeError("MllpClient.send before connect")
        async with asyncio.timeout(timeout):
            await write_frame(self._writer, payload)
            answer = await self._reader.read_frame()
        if answer is None:
            raise ConnectionError("the peer closed the connection without answering")
        return answer.payload

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass  # the peer already dropped the connection: closed either way

    async def __aenter__(self) -> MllpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def send_and_receive(host: str, port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Connect, send one frame, return the answer's payload, close: for callers outside asyncio (it runs
    its own event loop, so it cannot be called from a running one). `timeout` bounds the whole exchange."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("send_and_receive runs its own event loop: inside asyncio, use MllpClient")

    async def exchange() -> bytes:
        async with asyncio.timeout(timeout), MllpClient() as client:
            await client.connect(host, port, timeout)
            return await client.send(payload, timeout)

    return asyncio.run(exchange())
