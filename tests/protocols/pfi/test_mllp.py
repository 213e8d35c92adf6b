"""MLLP framing: bytes fed to a StreamReader with no sockets, then real sockets on 127.0.0.1 (our client, the
sync helper and python-hl7's own client), many connections at once and a 5 MB frame."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import hl7.client
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockbench.protocols.pfi.mllp import (
    STREAM_LIMIT,
    Frame,
    MllpClient,
    MllpFramingError,
    MllpLimits,
    MllpReader,
    frame,
    send_and_receive,
    write_frame,
)

MSG = b"MSH|^~\\&|DPI|HOP|PFI|ANS|20250615120000||MDM^T02^MDM_T02|1|P|2.6\rEVN|T02|20250615120000\r"
ACK = b"MSH|^~\\&|PFI|ANS|DPI|HOP|20250615120001||ACK^T02^ACK|2|P|2.6\rMSA|AA|1\r"


def run(coro: Awaitable, timeout: float = 5.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def stream_of(*chunks: bytes, eof: bool = True) -> asyncio.StreamReader:
    """A StreamReader already holding the bytes (call inside a running loop)."""
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk)
    if eof:
        stream.feed_eof()
    return stream


async def trickle(stream: asyncio.StreamReader, chunks: Iterable[bytes], eof: bool = True,
                  before_each: Callable[[], None] | None = None) -> None:
    """Feed the chunks one at a time, letting the reader run between them."""
    for chunk in chunks:
        await asyncio.sleep(0)
        if before_each:
            before_each()
        stream.feed_data(chunk)
    await asyncio.sleep(0)
    if eof:
        stream.feed_eof()


async def read_all(reader: MllpReader) -> list[bytes]:
    payloads = []
    while (f := await reader.read_frame()) is not None:
        payloads.append(f.payload)
    return payloads


# -- framing, no sockets -----------------------------------------------------------------------------------


def test_one_frame():
    async def body():
        reader = MllpReader(stream_of(frame(MSG)))
        f = await reader.read_frame()
        assert isinstance(f, Frame)
        assert (f.payload, f.junk_skipped, f.missing_cr) == (MSG, 0, False)
        assert f.elapsed >= 0
        assert await reader.read_frame() is None
    run(body())


def test_frame_bytes():
    assert frame(b"abc") == b"\x0babc\x1c\x0d"
    with pytest.raises(ValueError):
        frame(b"a\x1cb")
    with pytest.raises(ValueError):
        frame(b"a\x0bb")


def test_two_frames_back_to_back():
    async def body():
        reader = MllpReader(stream_of(frame(b"one") + frame(b"two")))
        assert await read_all(reader) == [b"one", b"two"]
    run(body())


def test_empty_stream_is_clean_eof():
    async def body():
        reader = MllpReader(stream_of())
        assert await reader.read_frame() is None
        assert reader.trailing_junk == 0
        assert await reader.read_frame() is None
    run(body())


def test_frame_split_across_tiny_feeds():
    async def body():
        stream = asyncio.StreamReader()
        data = frame(MSG) + frame(b"second")
        feeder = asyncio.create_task(trickle(stream, [data[i:i + 1] for i in range(len(data))]))
        assert await read_all(MllpReader(stream, read_size=3)) == [MSG, b"second"]
        await feeder
    run(body())


def test_junk_within_tolerance_is_skipped_and_counted():
    async def body():
        reader = MllpReader(stream_of(b"\r\n  " + frame(b"one") + b"\n" + frame(b"two") + b"\r\n"),
                            MllpLimits(max_junk_bytes=4))
        first, second = await reader.read_frame(), await reader.read_frame()
        assert (first.payload, first.junk_skipped) == (b"one", 4)
        assert (second.payload, second.junk_skipped) == (b"two", 1)
        assert await reader.read_frame() is None
        assert reader.trailing_junk == 2
    run(body())


def test_junk_beyond_tolerance():
    async def body():
        reader = MllpReader(stream_of(b"x" * 11 + frame(b"one")), MllpLimits(max_junk_bytes=10))
        with pytest.raises(MllpFramingError) as err:
            await reader.read_frame()
        assert (err.value.kind, err.value.size, err.value.in_sync) == ("junk", 11, False)
    run(body())


def test_junk_beyond_tolerance_without_any_vt():
    async def body():
        stream = asyncio.StreamReader()
        # Never EOF: the error must come from counting, not from the end of the stream.
        feeder = asyncio.create_task(trickle(stream, [b"GET / HTTP/1.1\r\n"] * 100, eof=False))
        with pytest.raises(MllpFramingError) as err:
            await MllpReader(stream, MllpLimits(max_junk_bytes=64)).read_frame()
        assert err.value.kind == "junk"
        assert 64 < err.value.size < 200
        feeder.cancel()
    run(body())


def test_data_between_frames_counts_as_junk():
    async def body():
        reader = MllpReader(stream_of(frame(b"one") + b"garbage!" + frame(b"two")), MllpLimits(max_junk_bytes=4))
        assert (await reader.read_frame()).payload == b"one"
        with pytest.raises(MllpFramingError) as err:
            await reader.read_frame()
        assert err.value.kind == "junk"
    run(body())


@pytest.mark.parametrize("data", [b"\x0bMSH|partial", b"\x0b", b"junk\x0bMSH"])
def test_eof_inside_a_frame_is_truncated(data):
    async def body():
        with pytest.raises(MllpFramingError) as err:
            await MllpReader(stream_of(data)).read_frame()
        assert err.value.kind == "truncated"
        assert err.value.size == len(data) - data.index(b"\x0b") - 1
    run(body())


def test_connection_reset_counts_as_eof():
    async def body():
        between = stream_of(frame(b"one"), eof=False)
        reader = MllpReader(between)
        assert (await reader.read_frame()).payload == b"one"
        between.set_exception(ConnectionResetError())
        assert await reader.read_frame() is None

        inside = asyncio.StreamReader()
        feeder = asyncio.create_task(trickle(inside, [b"\x0bMSH|"], eof=False))
        reader = MllpReader(inside)
        read = asyncio.create_task(reader.read_frame())
        await feeder
        await asyncio.sleep(0)
        inside.set_exception(ConnectionResetError())
        with pytest.raises(MllpFramingError) as err:
            await read
        assert (err.value.kind, err.value.size) == ("truncated", 4)
    run(body())


def test_oversized_frame_is_read_to_its_end_then_the_next_frame_reads():
    async def body():
        reader = MllpReader(stream_of(frame(b"a" * 500) + frame(b"next") + frame(b"b" * 100)),
                            MllpLimits(max_message_bytes=100), read_size=7)
        with pytest.raises(MllpFramingError) as err:
            await reader.read_frame()
        assert (err.value.kind, err.value.size, err.value.in_sync) == ("too_large", 500, True)
        assert (await reader.read_frame()).payload == b"next"
        assert (await reader.read_frame()).payload == b"b" * 100  # exactly the limit is allowed
        assert await reader.read_frame() is None
    run(body())


def test_oversized_frame_that_never_ends_is_out_of_sync():
    async def body():
        stream = stream_of(b"\x0b" + b"a" * 500, eof=False)
        with pytest.raises(MllpFramingError) as err:
            await MllpReader(stream, MllpLimits(max_message_bytes=100, frame_timeout=0.2)).read_frame()
        assert (err.value.kind, err.value.size, err.value.in_sync) == ("too_large", 500, False)
    run(body())


def test_frame_timeout_real_clock():
    async def body():
        stream = stream_of(b"\x0bMSH|half a mess", eof=False)
        reader = MllpReader(stream, MllpLimits(frame_timeout=0.2))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(MllpFramingError) as err:
            await reader.read_frame()
        assert err.value.kind == "timeout"
        assert err.value.size == len(b"MSH|half a mess")
        assert 0.15 < loop.time() - t0 < 2.0
    run(body())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_frame_timeout_cuts_a_sender_trickling_one_byte_a_second():
    async def body():
        clock = FakeClock()
        stream = asyncio.StreamReader()
        data = frame(b"x" * 100)

        def one_second():
            clock.now += 1.0

        feeder = asyncio.create_task(trickle(stream, [data[i:i + 1] for i in range(len(data))],
                                             before_each=one_second))
        reader = MllpReader(stream, MllpLimits(frame_timeout=60.0), clock=clock)
        with pytest.raises(MllpFramingError) as err:
            await reader.read_frame()
        assert err.value.kind == "timeout"
        assert 55 <= err.value.size <= 62
        feeder.cancel()
    run(body())


def test_frame_elapsed_uses_the_clock():
    async def body():
        clock = FakeClock()
        stream = asyncio.StreamReader()

        def ten_seconds():
            clock.now += 10.0

        feeder = asyncio.create_task(trickle(stream, [b"\x0bMSH|", b"rest", b"\x1c\x0d"], before_each=ten_seconds))
        f = await MllpReader(stream, clock=clock).read_frame()
        assert (f.payload, f.started, f.elapsed) == (b"MSH|rest", 1010.0, 20.0)
        await feeder
    run(body())


def test_idle_timeout():
    async def body():
        with pytest.raises(MllpFramingError) as err:
            await MllpReader(stream_of(b"\r\n", eof=False), MllpLimits(idle_timeout=0.2)).read_frame()
        assert (err.value.kind, err.value.size) == ("idle", 2)
    run(body())


def test_fs_without_cr_ends_the_frame_and_the_byte_starts_the_next_data():
    async def body():
        reader = MllpReader(stream_of(b"\x0bone\x1c\x0btwo\x1cX\x0bthree\x1c\x0d\x0bfour\x1c"),
                            MllpLimits(max_junk_bytes=1))
        frames = [await reader.read_frame() for _ in range(4)]
        assert [(f.payload, f.missing_cr, f.junk_skipped) for f in frames] == [
            (b"one", True, 0), (b"two", True, 0), (b"three", False, 1), (b"four", True, 0)]
        assert await reader.read_frame() is None
    run(body())


def test_fs_at_the_end_of_a_read_waits_for_the_next_byte():
    async def body():
        stream = asyncio.StreamReader()
        feeder = asyncio.create_task(trickle(stream, [b"\x0bone\x1c", b"\x0d", b"\x0btwo\x1c", b"\x0d"]))
        reader = MllpReader(stream)
        assert [(f.payload, f.missing_cr) for f in [await reader.read_frame(), await reader.read_frame()]] == [
            (b"one", False), (b"two", False)]
        assert await reader.read_frame() is None
        await feeder
    run(body())


def test_vt_inside_a_frame_is_kept():
    async def body():
        f = await MllpReader(stream_of(b"\x0bab\x0bcd\x1c\x0d")).read_frame()
        assert f.payload == b"ab\x0bcd"
    run(body())


def test_errors_share_one_class_with_stable_kinds():
    from mockbench.protocols.pfi import mllp

    kinds = {cls.kind for cls in MllpFramingError.__subclasses__()}
    assert kinds == {"junk", "too_large", "timeout", "truncated", "idle"}
    err = mllp.MllpTooLargeError("too big", size=3, in_sync=True)
    assert (err.reason, str(err), err.size, err.in_sync) == ("too big", "too big", 3, True)


payloads = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
                    max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=payloads, cuts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
       read_size=st.integers(min_value=1, max_value=64))
def test_property_framed_payloads_come_back_whatever_the_chunking(payloads, cuts, read_size):
    data = b"".join(frame(p) for p in payloads)
    chunks, pos, i = [], 0, 0
    while pos < len(data):
        chunks.append(data[pos:pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1

    async def body():
        stream = asyncio.StreamReader()
        feeder = asyncio.create_task(trickle(stream, chunks))
        got = await read_all(MllpReader(stream, read_size=read_size))
        await feeder
        return got

    assert run(body()) == payloads


# -- real sockets on 127.0.0.1 -----------------------------------------------------------------------------


class EchoServer:
    """A tiny door: answers ACK + the frame's length to each frame, AR + kind to an in-sync framing error."""

    def __init__(self, limits: MllpLimits | None = None) -> None:
        self.limits = limits or MllpLimits()
        self.frames = 0
        self.errors: list[str] = []

    async def handle(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = MllpReader(stream, self.limits)
        try:
            while True:
                try:
                    f = await reader.read_frame()
                except MllpFramingError as err:
                    self.errors.append(err.kind)
                    if not err.in_sync:
                        break
                    await write_frame(writer, b"AR|" + err.kind.encode())
                    continue
                if f is None:
                    break
                self.frames += 1
                await write_frame(writer, ACK + b"LEN|" + str(len(f.payload)).encode())
        finally:
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, limit=STREAM_LIMIT)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_client_against_server():
    async def body():
        async with EchoServer() as port, MllpClient() as client:
            await client.connect("127.0.0.1", port, timeout=2)
            assert await client.send(MSG, timeout=2) == ACK + b"LEN|%d" % len(MSG)
            assert await client.send(b"second", timeout=2) == ACK + b"LEN|6"
    run(body())


def test_oversized_frame_answered_on_the_same_connection():
    async def body():
        server = EchoServer(MllpLimits(max_message_bytes=1000))
        async with server as port, MllpClient() as client:
            await client.connect("127.0.0.1", port, timeout=2)
            assert await client.send(b"z" * 5000, timeout=2) == b"AR|too_large"
            assert await client.send(MSG, timeout=2) == ACK + b"LEN|%d" % len(MSG)
        assert server.errors == ["too_large"]
    run(body())


def test_client_send_times_out_on_a_silent_server():
    async def body():
        async def silent(stream, writer):
            await stream.read()  # never answers, until the client goes
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with MllpClient() as client:
            await client.connect("127.0.0.1", port, timeout=2)
            with pytest.raises(TimeoutError):
                await client.send(MSG, timeout=0.2)
        server.close()
        await server.wait_closed()
    run(body())


def test_client_send_raises_when_the_server_hangs_up():
    async def body():
        async def rude(stream, writer):
            await stream.read(1)
            writer.close()

        server = await asyncio.start_server(rude, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with MllpClient() as client:
            await client.connect("127.0.0.1", port, timeout=2)
            with pytest.raises(ConnectionError):
                await client.send(MSG, timeout=2)
        server.close()
        await server.wait_closed()
    run(body())


def test_send_and_receive_sync_helper():
    async def body():
        async with EchoServer() as port:
            # It runs its own event loop, so call it from a thread while this loop serves.
            return await asyncio.to_thread(send_and_receive, "127.0.0.1", port, MSG, 2.0)
    assert run(body()) == ACK + b"LEN|%d" % len(MSG)


def test_send_and_receive_refuses_a_running_loop():
    async def body():
        with pytest.raises(RuntimeError, match="MllpClient"):
            send_and_receive("127.0.0.1", 9, MSG, 0.1)
    run(body())


def python_hl7_exchange(port: int) -> tuple[bytes, bytes]:
    """python-hl7's blocking client: send() takes an already framed block, answers with one recv(4096)
    including the framing, and has no timeout of its own."""
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        client.socket.settimeout(2.0)
        raw = client.send(frame(MSG))
        while not raw.endswith(b"\x1c\x0d"):
            raw += client.socket.recv(4096)
        # send_message frames for us and encodes a str as UTF-8.
        wrapped = client.send_message(MSG.decode("ascii") + "OBX|1|ST|||éàü\r")
        while not wrapped.endswith(b"\x1c\x0d"):
            wrapped += client.socket.recv(4096)
    return raw, wrapped


def test_python_hl7_client_interoperates():
    async def body():
        server = EchoServer()
        async with server as port:
            result = await asyncio.to_thread(python_hl7_exchange, port)
        return result, server.frames

    (raw, wrapped), frames = run(body())
    assert raw == frame(ACK + b"LEN|%d" % len(MSG))
    assert wrapped == frame(ACK + b"LEN|%d" % (len(MSG) + len("OBX|1|ST|||éàü\r".encode())))
    assert frames == 2


def test_python_hl7_mllp_stream_reader_reads_our_frames():
    from hl7.mllp import MLLPStreamReader

    async def body():
        stream = MLLPStreamReader(limit=STREAM_LIMIT)
        stream.feed_data(frame(MSG) + frame(ACK))
        stream.feed_eof()
        return [await stream.readblock(), await stream.readblock()]

    assert run(body()) == [MSG, ACK]


def test_many_concurrent_connections():
    async def body():
        server = EchoServer()
        async with server as port:
            async def one(n: int) -> list[bytes]:
                async with MllpClient() as client:
                    await client.connect("127.0.0.1", port, timeout=3)
                    return [await client.send(b"MSH|%d|%d" % (n, k), timeout=3) for k in range(5)]

            answers = await asyncio.gather(*(one(n) for n in range(50)))
        assert all(a == [ACK + b"LEN|%d" % len(b"MSH|%d|%d" % (n, k)) for k in range(5)]
                   for n, a in enumerate(answers))
        assert server.frames == 250
        assert server.errors == []
    run(body(), timeout=8)


def test_five_megabyte_frame():
    big = b"OBX|1|ED|||^text^XML^Base64^" + b"QUJD" * (5 * 1024 * 1024 // 4) + b"\r"

    async def body():
        received: list[bytes] = []

        async def keep(stream, writer):
            f = await MllpReader(stream).read_frame()
            received.append(f.payload)
            await write_frame(writer, ACK)
            writer.close()

        server = await asyncio.start_server(keep, "127.0.0.1", 0, limit=STREAM_LIMIT)
        port = server.sockets[0].getsockname()[1]
        async with MllpClient() as client:
            await client.connect("127.0.0.1", port, timeout=2)
            answer = await client.send(big, timeout=5)
        server.close()
        await server.wait_closed()
        return answer, received

    answer, received = run(body(), timeout=8)
    assert answer == ACK
    assert received == [big]

