"""A fake DPI written with the bench's own MLLP framing (mockbench.protocols.pfi.mllp): it listens, records
what the PFI sends it, answers each message with an ACK carrying a chosen MSA-1, and has every ZAM read by
hl7apy in strict mode (kit.strict_hl7). For a DPI scripted the way a vendor would write one, see
kit.dpi_listener (python-hl7's server)."""

from __future__ import annotations

import asyncio
import threading

from mockbench.protocols.pfi.hl7 import parse as parse_hl7
from mockbench.protocols.pfi.mllp import MllpReader, write_frame

from .strict_hl7 import check_zam


class FakeDpi:
    """The DPI's MLLP listener on `port` (0: any free one; a given port is bound with SO_REUSEADDR, for a DPI
    that comes back on the port it had). `close()` fails the test when a ZAM was not well formed."""

    def __init__(self, answer: str = "AA", port: int = 0) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.malformed: list[str] = []
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5)

    def _run(self) -> None:
        async def serve(reader, writer):
            mllp = MllpReader(reader)
            while (frame := await mllp.read_frame()) is not None:
                self.received.append(frame.payload)
                if b"|ZAM^" in frame.payload.split(b"\r", 1)[0]:
                    try:
                        check_zam(frame.payload)   # every ZAM, by hl7apy in strict mode
                    except Exception as exc:
                        self.malformed.append(f"{exc!r}: {frame.payload!r}")
                message = parse_hl7(frame.payload)
                msh10, event = message.control_id, message.message_type[1]
                ack = f"MSH|^~\\&|DPI|CHU|PFI|MOCKBENCH|20261120||ACK^{event}^ACK|D1|P|2.6\rMSA|{self.answer}|{msh10}\r"
                await write_frame(writer, ack.encode())
            writer.close()

        async def start():
            self.server = await asyncio.start_server(serve, "127.0.0.1", self.port, reuse_address=True)
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        assert self.malformed == [], self.malformed
