"""A scripted DPI's MLLP listener for the catalogue plays, written with python-hl7's asyncio MLLP server
(`hl7.mllp.start_hl7_server`) over a real socket: it keeps what the PFI sends it and answers each message
with what `answer` returns (by default the ACK the guide asks for)."""

import asyncio
import threading
import time
from collections.abc import Callable

import hl7
import hl7.mllp


def field(message: hl7.Message, segment: str, index: int) -> str:
    return str(message.segment(segment)[index])


def has(message: hl7.Message, segment: str) -> bool:
    return any(str(s[0]) == segment for s in message)


def ack(message: hl7.Message, code: str = "AA", err: str = "", *, message_type: str | None = None,
        msa2: str | None = None) -> str:
    """trans-cda-r2/profils-messages.md, "Message d'acquittement technique des accusés métiers" (and the ACK
    section it refers to): MSH-3/4 and 5/6 swapped, MSH-9 `ACK^<event>^ACK`, MSA-1 the code, MSA-2 the
    message's MSH-10; an ERR segment on AE/AR. `message_type` / `msa2` let a play make a mistake."""
    event = field(message, "MSH", 9).split("^")[1]
    head = (f"MSH|^~\\&|DPI|CHU|{field(message, 'MSH', 3)}|{field(message, 'MSH', 4)}|20261206120000||"
            f"{message_type or f'ACK^{event}^ACK'}|DPI{int(time.time() * 1000) % 10**9}|P|2.6|||||FRA|UNICODE UTF-8")
    lines = [head, f"MSA|{code}|{msa2 if msa2 is not None else field(message, 'MSH', 10)}"]
    if err:
        lines.append(err)
    return "\r".join(lines) + "\r"


class DpiListener:
    def __init__(self, answer: Callable[[hl7.Message], str] = ack) -> None:
        self.answer = answer
        self.received: list[hl7.Message] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        async def serve(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
            try:
                while not reader.at_eof():
                    message = await reader.readmessage()
                    self.received.append(message)
                    writer.writemessage(hl7.parse(self.answer(message)))
                    await writer.drain()
            except asyncio.IncompleteReadError:
                pass
            finally:
                writer.close()

        async def start() -> None:
            self.server = await hl7.mllp.start_hl7_server(serve, "127.0.0.1", 0, limit=8 * 1024 * 1024,
                                                          encoding="utf-8", encoding_errors="replace")
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def of_type(self, message_type: str) -> list[hl7.Message]:
        return [m for m in self.received if field(m, "MSH", 9).startswith(message_type)]

    def close(self) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
