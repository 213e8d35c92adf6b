"""The network-level faults (world/faults.py) as the HTTP doors render them, on the answer the door built:
`delay` holds the answer, `trickle` sends it a few bytes at a time, `reset` drops the connection with a TCP
RST, `timeout` answers nothing until the client gives up (or the rule's bound passes), then drops it.

Shared by the HTTP doors (DMP, OIDC, Annuaire) as loop.py is by the socket doors; it knows no door's wire.
A held answer takes one of the HTTP port's workers: `Faults.hold()` bounds how many at once, beyond which the
answer goes at once (a `timeout` becomes a `reset`).
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

from flask import Response

from ..world.faults import Faults, Fired

TRICKLE_STEPS_PER_SECOND = 10


def _dropped(environ: dict, wait: float = 0.0, faults: Faults | None = None) -> Iterator[bytes]:
    """The body of an answer never sent: after `wait` (until the client gives up), the connection is dropped
    with a RST by the HTTP server (http_server.py, `mockbench.abort`)."""
    if wait and faults is not None:
        with faults.hold() as held:
            if held:
                wait_for_client(environ.get("mockbench.socket"), wait)
    abort = environ.get("mockbench.abort")
    if abort is not None:
        abort()
    raise ConnectionResetError(errno.ECONNRESET, "connection dropped by a fault rule")
    yield b""   # a generator: the server runs it once the view has returned


def wait_for_client(sock: Any, seconds: float) -> None:
    """No answer: wait until the client closes (its timeout) or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or sock is None:
            if sock is None:
                time.sleep(max(left, 0))
            return
        try:
            readable, _, _ = select.select([sock], [], [], min(left, 1.0))
        except (OSError, ValueError):
            return
        if readable:
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    return   # the client closed: it gave up
            except (OSError, ValueError):
                return
            time.sleep(min(0.05, max(left, 0)))   # it sent more (pipelined): keep not answering


def render(faults: Faults, fired: Fired | None, response: Response, environ: dict) -> Response:
    """The door's `response` as the network fault `fired` delivers it (None: unchanged)."""
    if fired is None or fired.kind not in ("delay", "trickle", "reset", "timeout"):
        return response
    if fired.kind in ("reset", "timeout"):
        wait = fired.params["seconds"] if fired.kind == "timeout" else 0.0
        return Response(_dropped(environ, wait, faults), status=200)
    if fired.kind == "delay":
        with faults.hold() as held:
            if held:
                time.sleep(fired.params["seconds"])
        return response
    body = response.get_data()
    seconds = fired.params["seconds"]

    def trickle() -> Iterator[bytes]:
        with faults.hold() as held:
            if not held:
                yield body
                return
            steps = max(1, min(len(body), int(seconds * TRICKLE_STEPS_PER_SECOND)))
            size = -(-len(body) // steps) if body else 0
            for start in range(0, len(body), size or 1):
                yield body[start:start + size]
                time.sleep(seconds / steps)

    slow = Response(trickle(), status=response.status_code, headers=dict(response.headers))
    slow.headers["Content-Length"] = str(len(body))
    return slow
