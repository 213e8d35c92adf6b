"""An event loop of a door's own, in a thread: how the socket doors (MLLP, SMTP, IMAP) run beside the
HTTP server without sharing a loop, so that two benches in one process never share one either."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

START_TIMEOUT = 10.0   # seconds for a door to bind its port and say it is ready


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, open_: Callable[[asyncio.AbstractEventLoop], Awaitable[None]],
              close: Callable[[], Awaitable[None]], *, port_name: str, host: str, port: int) -> None:
        """Run `open_` on a new loop in a new thread, then serve until stop(), then run `close`. A failure to
        open is raised here, said so that a user can act on it."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(open_(loop))
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(close())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        started.wait(timeout=START_TIMEOUT)
        if failure:
            from ..bench import BenchError

            exc = failure[0]
            raise BenchError(f"cannot listen on {host}:{port} for {port_name}: "
                             f"{getattr(exc, 'strerror', None) or exc}; choose another port with "
                             f"--{port_name}-port (0 takes any free port)") from None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        loop, thread = self.loop, self._thread
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        self.loop = self._thread = None


class DoorTasks:
    """A socket door's listening server and the tasks it runs on its loop (one per connection, plus its
    background work), tracked so that closing the door cancels them all and waits for them."""

    def __init__(self) -> None:
        self.server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self.server is not None, "listen() first"
        return self.server.sockets[0].getsockname()[1]

    async def listen(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                     host: str, port: int, *, limit: int) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await handler(reader, writer)
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except (OSError, asyncio.CancelledError):
                    pass  # the peer already dropped the connection, or the door is stopping
                if task is not None:
                    self._tasks.discard(task)

        self.server = await asyncio.start_server(serve, host, port, limit=limit)

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
