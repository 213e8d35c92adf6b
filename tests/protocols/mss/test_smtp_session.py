"""The SMTP session's own steps beside aiosmtpd's (protocols/mss/smtp_session.py)."""

import asyncio

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.protocols.mss.smtp_session import ADDRESS_MEMO, MssSmtp

ARGS = ["<jeanne.martin@chu.mssante.fr>", "<dpi@chu.mssante.fr> SIZE=146072", "dpi@chu.mssante.fr", "<>", "",
        "<a@b> BODY=8BITMIME", '<"quoted local"@example.org>', "<no-at-sign>", "<a@b", "<@route:a@b>", "<<a@b>>",
        "<" + "x" * 70 + "@b>", " <a@b>", "<a@[127.0.0.1]>"]


class _Engine:
    """What `_getaddr` reads: the handler's memo and aiosmtpd's `local_part_limit`."""

    def __init__(self, local_part_limit: int = 0) -> None:
        self.event_handler = type("Handler", (), {"addresses": {}})()
        self.local_part_limit = local_part_limit


def _answer(getaddr, engine, arg):
    try:
        return getaddr(engine, arg)
    except Exception as exc:   # email's parser raises IndexError on some text: the same error either way
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(ARGS), st.text(max_size=30)), max_size=12),
       local_part_limit=st.sampled_from([0, 64]))
def test_address_memo_answers_as_aiosmtpd(args, local_part_limit):
    engine = _Engine(local_part_limit)
    for arg in [*args, *args]:          # the second time from the memo
        assert _answer(MssSmtp._getaddr, engine, arg) == _answer(SMTP._getaddr, engine, arg)
    assert len(engine.event_handler.addresses) <= ADDRESS_MEMO


def test_address_memo_is_bounded():
    engine = _Engine()
    for n in range(ADDRESS_MEMO + 10):
        MssSmtp._getaddr(engine, f"<user{n}@example.org>")
    assert len(engine.event_handler.addresses) <= ADDRESS_MEMO
    assert MssSmtp._getaddr(engine, "<user1@example.org>") == ("user1@example.org", "")


def test_data_after_the_terminator_is_left_in_the_stream():
    """read_data reads up to the terminator with the stream's public calls; what follows (a pipelined
    command) stays for the command loop, whatever the stream's limit."""
    from mockbench.protocols.mss.data import DataReader, read_data

    async def go(limit: int) -> tuple[bool, bytes, bytes]:
        stream = asyncio.StreamReader(limit=limit)
        body = b"".join(b"line %d.\r\n" % n for n in range(200)) + b"..dot\r\n"
        stream.feed_data(body + b".\r\nQUIT\r\n")
        stream.feed_eof()
        reader = DataReader(None, 1001)
        done = await read_data(stream, reader)
        return done, reader.content(), await stream.read()

    for limit in (16, 1001, 64 * 1024):
        done, content, rest = asyncio.run(go(limit))
        assert done and rest == b"QUIT\r\n"
        assert content.endswith(b"line 199.\r\n.dot\r\n") and content.startswith(b"line 0.\r\n")


def test_a_stream_that_ends_mid_data_stores_nothing():
    from mockbench.protocols.mss.data import DataReader, read_data

    async def go() -> bool:
        stream = asyncio.StreamReader(limit=64)
        stream.feed_data(b"Subject: x\r\n\r\nno terminator\r\n")
        stream.feed_eof()
        return await read_data(stream, DataReader(None, 1001))

    assert asyncio.run(go()) is False
