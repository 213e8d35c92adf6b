"""An event loop of a door's own, in a thread: how the socket doors (MLLP, SMTP, IMAP) run beside the
HTTP server without sharing a loop, so that two benches in one process never share one either.

`SocketDoor` is their one base: construction (context, host, port, connection cap), start (bind on the
door's loop, or raise `ListenError`), stop, and the door's shape (context.Door). A door writes `serve` (one
connection) and, when it has them, `refuse` (a connection beyond its cap), `started` and `stopping`."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .context import DoorContext, ListenError

if TYPE_CHECKING:
    from flask import Blueprint

log = logging.getLogger("mockbench")

START_TIMEOUT = 10.0   # seconds for a door to bind its port and say it is ready
REFUSAL_TIMEOUT = 2.0  # seconds to write a refusal to a connection beyond the cap before it is dropped
QUIET_SECONDS = 60.0           # a resource shortage is logged once per episode, and again at most this often
TRICKLE_STEPS_PER_SECOND = 10  # a trickled answer goes in this many pieces a second
STOP_TIMEOUT = 10.0            # seconds for a door's loop to close its connections and end
STREAM_BUFFER = 64 * 1024      # asyncio's stream buffer, and what a `timeout` fault reads (and drops) at once


class ConnectionCap:
    """A door's named connection cap: `admit()` at each new connection, `release()` when it ends. Beyond
    the cap the door refuses on its own wire; the first refusal of an episode is logged, the episode ends
    (and is summed up) when the door is back under its cap."""

    def __init__(self, door: str, setting: str, limit: int) -> None:
        self.door, self.setting, self.limit = door, setting, limit
        self.active = 0
        self.refused = 0

    def admit(self) -> bool:
        if self.active < self.limit:
            self.active += 1
            return True
        if not self.refused:
            log.warning("%s: %d connections open, its cap (%s); further connections are refused until one "
                        "closes", self.door, self.active, self.setting)
        self.refused += 1
        return False

    def release(self) -> None:
        self.active -= 1
        if self.refused and self.active < self.limit:
            log.info("%s: under its cap again; %d connection(s) were refused", self.door, self.refused)
            self.refused = 0


def _exception_handler(name: str) -> Callable[[asyncio.AbstractEventLoop, dict], None]:
    """asyncio's own handler, except that running out of file descriptors (asyncio then pauses accepting
    for a second and says so each time) is logged once per episode."""
    last = [0.0]

    def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = time.monotonic()
            if now - last[0] > QUIET_SECONDS:
                exc = context.get("exception")
                log.error("%s: cannot accept a connection (%s); new connections wait until descriptors are "
                          "free (raise the open-files limit, or lower the connection caps)", name,
                          getattr(exc, "strerror", None) or exc)
            last[0] = now
            return
        loop.default_exception_handler(context)

    return handle


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, open_: Callable[[asyncio.AbstractEventLoop], Awaitable[None]],
              close: Callable[[], Awaitable[None]], *, port_name: str, host: str, port: int) -> None:
        """Run `open_` on a new loop in a new thread, then serve until stop(), then run `close`. A failure to
        open is raised here as a `ListenError`, which the bench words for its user."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            loop.set_exception_handler(_exception_handler(self.name))
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
            exc = failure[0]
            raise ListenError(port_name, host, port, str(getattr(exc, "strerror", None) or exc)) from None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        loop, thread = self.loop, self._thread
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=STOP_TIMEOUT)
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
                     host: str, port: int, *, limit: int, cap: ConnectionCap | None = None,
                     refuse: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None) -> None:
        """Serve `handler` on host:port; beyond `cap`, `refuse` says so on the door's wire (or the connection
        is just closed) and the connection ends."""
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            admitted = cap is None or cap.admit()
            try:
                if admitted:
                    await handler(reader, writer)
                elif refuse is not None:
                    try:
                        await asyncio.wait_for(refuse(writer), REFUSAL_TIMEOUT)
                    except (TimeoutError, OSError):
                        pass
            finally:
                if admitted and cap is not None:
                    cap.release()
                writer.close()
                try:
                    await writer.wait_closed()
                except (OSError, asyncio.CancelledError):
                    pass  # the peer already dropped the connection, or the door is stopping
                if task is not None:
                    self._tasks.discard(task)

        self.server = await asyncio.start_server(serve, host, port, limit=limit)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
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


class SocketDoor:
    """A door on a port of its own, served by a loop of its own (LoopThread) whose connections are tracked
    (DoorTasks) and capped (ConnectionCap). Subclasses set the class attributes and write `serve`; a door
    whose server is not built on streams (SMTP: aiosmtpd's protocol) overrides `open` and `close` instead."""

    name = ""                  # the door's name in the registry and health ("mss" for SMTP and IMAP)
    port_name = ""             # the port's name: in the port map, health, /_bench/endpoints, --<name>-port
    cap_setting = ""           # the Config setting of the connection cap, named in the log when it is met
    thread = ""                # the loop thread's name
    stream_limit = STREAM_BUFFER   # asyncio's stream buffer (the door's own limits bound what it reads)
    refusal: bytes | None = None   # written to a connection beyond the cap (None: closed before a byte is read)

    def __init__(self, context: DoorContext, *, host: str, port: int, max_connections: int) -> None:
        self.context = context
        self.world = context.world
        self.host, self.port = host, port
        self.cap = ConnectionCap(self.port_name, self.cap_setting, max_connections)
        self._runner = LoopThread(self.thread or f"mockbench-{self.port_name}")
        self._net = DoorTasks()

    # The door's shape (context.Door) ---------------------------------------------------------------------
    def wanted_ports(self) -> dict[str, int]:
        return {self.port_name: self.port}

    def http_routes(self) -> tuple[str, Blueprint] | None:
        return None

    def endpoints(self) -> Any:
        return {"host": self.context.urls.socket_host(), "port": self.context.urls.published_port(self.port_name)}

    def start(self) -> dict[str, int]:
        """Bind and serve on the door's loop; `ListenError` when the port cannot be bound."""
        self._runner.start(lambda loop: self.open(loop), self.close, port_name=self.port_name, host=self.host,
                           port=self.port)
        self.started()
        return {self.port_name: self.bound_port}

    def stop(self) -> None:
        self.stopping()
        self._runner.stop()

    @property
    def bound_port(self) -> int:
        return self._net.port

    # What a door writes ----------------------------------------------------------------------------------
    async def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the door's loop: listen. Beyond the cap, `refusal` answers on the door's wire (or, without one,
        the connection is closed before a byte is read)."""
        await self._net.listen(self.serve, self.host, self.port, limit=self.stream_limit, cap=self.cap,
                               refuse=self._refuse if self.refusal is not None else None)

    async def close(self) -> None:
        """On the door's loop, once stopped: end every connection and background task."""
        await self._net.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        writer.write(self.refusal or b"")
        await writer.drain()

    def started(self) -> None:
        """Once the port is bound, on the thread that started the door."""

    def stopping(self) -> None:
        """Before the loop stops, on the thread that stops the door."""


async def network_fault(fired: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        answer: bytes) -> bool:
    """A socket door's answer (bytes as they go on the wire) as the network fault `fired` (world/faults.py)
    delivers it: `delay` waits then writes it, `trickle` writes it a few bytes at a time over the rule's
    seconds, `reset` drops the connection with a TCP RST, `timeout` answers nothing until the client closes
    (its timeout) or the rule's seconds pass, then drops it; another kind writes the answer as it is.
    Returns whether the connection goes on. Awaits only: no thread is held."""
    kind, seconds = fired.kind, fired.params.get("seconds", 0.0)
    if kind == "timeout":
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            while (left := deadline - loop.time()) > 0:
                if not await asyncio.wait_for(reader.read(STREAM_BUFFER), left):
                    break   # the client gave up
        except (TimeoutError, ConnectionError):
            pass
        kind = "reset"
    if kind == "reset":
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()
        return False
    if kind == "delay":
        await asyncio.sleep(seconds)
    if kind == "trickle" and answer:
        steps = max(1, min(len(answer), int(seconds * TRICKLE_STEPS_PER_SECOND)))
        size = -(-len(answer) // steps)
        for start in range(0, len(answer), size):
            writer.write(answer[start:start + size])
            await writer.drain()
            await asyncio.sleep(seconds / steps)
        return True
    writer.write(answer)
    await writer.drain()
    return True
