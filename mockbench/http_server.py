"""The HTTP and HTTPS ports' server: cheroot's WSGI server, in threads of the bench process.

Werkzeug's development server, used before, starts a thread per connection and answers every request with
`Connection: close`, so each request paid a TCP connection and a thread; cheroot keeps HTTP/1.1 connections
alive and serves them from a fixed pool of worker threads. Measured on TD3.1 (benchmarks/README.md).

Bounds. `WORKERS` requests are served at once; a long-lived response (a server-sent event stream) holds a
worker for as long as it lasts, so `WORKERS` is well above the streams the control API allows at once (16).
An idle kept-alive connection holds no worker (cheroot watches it with a selector); at most
`KEEP_ALIVE_IDLE` are kept, past that an answer closes its connection; one idle for `IDLE_TIMEOUT` seconds
is closed. More requests than workers wait in cheroot's queue.

TLS (the HTTPS port): the bench's own `ssl.SSLContext` (mutual TLS with CERT_OPTIONAL, pki.server_context)
wraps each accepted socket; the client's certificate reaches the doors as `SSL_CLIENT_CERT` (PEM) in the WSGI
environ, as it did with Werkzeug. The handshake runs on the port's accepting thread (cheroot's design), bounded
by `IDLE_TIMEOUT`: a client that connects to the HTTPS port and never speaks delays that port's other new
connections by as much.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cheroot.workers.threadpool import _SHUTDOWNREQUEST, ThreadPool, WorkerThread

log = logging.getLogger("mockbench.http")

WORKERS = 32            # requests in progress at once, event streams included
KEEP_ALIVE_IDLE = 512   # idle kept-alive connections watched at once
IDLE_TIMEOUT = 10       # seconds: an idle kept-alive connection is closed; also the socket timeout
SHUTDOWN_TIMEOUT = 2.0  # seconds given to requests in progress when the bench stops


class _TlsAdapter(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter around a context made by the bench (its own constructor wants file names,
    builds its own context and opens a loopback TLS connection to read the server's certificate)."""

    def __init__(self, context: ssl.SSLContext) -> None:  # noqa: D107 - the parent's is skipped on purpose
        self.certificate = self.private_key = self.certificate_chain = self.ciphers = None
        self.private_key_password = None
        self.context = context
        self._server_env = {}


class _Workers(ThreadPool):
    """A fixed pool of daemon threads (cheroot's are not daemons: a process that never stopped its bench could
    not exit), started without waiting for each to be ready (cheroot polls every 0.1 s)."""

    def grow(self, amount: int) -> None:
        budget = max(self.max - len(self._threads), 0)
        self._threads.extend(self._spawn_worker() for _ in range(min(amount, budget)))

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Ask every worker to end, wait `timeout` in all; a worker still busy then (a stream whose generator
        waits) gets its connection's read side shut and is left behind (a daemon), instead of being joined
        without end as cheroot does."""
        workers, self._threads[:] = self._threads[:], []
        for _ in workers:
            self._queue.put(_SHUTDOWNREQUEST)
        deadline = time.monotonic() + (timeout or 0)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                self._force_close(worker.conn)

    def _spawn_worker(self) -> WorkerThread:
        worker = WorkerThread(self.server)
        worker.name = f"mockbench-http-worker-{len(self._threads)}"
        worker.daemon = True
        worker.start()
        return worker


class _Server(wsgi.Server):
    def __init__(self, sock: socket.socket, app: Any) -> None:
        self._bound = sock
        super().__init__(sock.getsockname()[:2], app, numthreads=WORKERS, max=WORKERS, server_name="mockbench",
                         request_queue_size=128, timeout=IDLE_TIMEOUT, shutdown_timeout=SHUTDOWN_TIMEOUT)
        self.requests = _Workers(self, min=WORKERS, max=WORKERS)
        self.keep_alive_conn_limit = KEEP_ALIVE_IDLE
        self.expiration_interval = 0.2   # the selector's wake-up: a stop waits for it (cheroot's 0.5 s)

    def bind(self, family: int, type: int, proto: int = 0) -> None:  # noqa: A002 - cheroot's signature
        """The socket the bench bound itself (it reports a taken port its own way)."""
        self.socket = self._bound
        self.bind_addr = self._bound.getsockname()[:2]

    def serve(self) -> None:
        """cheroot's loop, without its thread answering 503 when the accepted queue is full (it is unbounded)."""
        while self.ready:
            try:
                self._connections.run(self.expiration_interval)
            except Exception:
                log.exception("the HTTP server's loop failed; it goes on")

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # cheroot reports a client's dropped connection or bad TLS handshake at INFO: not the user's concern.
        log.log(logging.ERROR if level >= logging.ERROR else logging.DEBUG, "%s", msg, exc_info=traceback)


class HttpServer:
    """One port's server: `start()` begins serving on `sock` (already bound), `stop()` ends it."""

    def __init__(self, sock: socket.socket, app: Any, *, ssl_context: ssl.SSLContext | None, name: str) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # an answer's last segment is not held back
        self.port: int = sock.getsockname()[1]
        self.server = _Server(sock, app)
        if ssl_context is not None:
            self.server.ssl_adapter = _TlsAdapter(ssl_context)
        self.thread = threading.Thread(target=self.server.serve, name=f"mockbench-{name}", daemon=True)

    def start(self) -> None:
        self.server.prepare()   # listens on the socket, starts the workers
        self.thread.start()

    def stop(self) -> None:
        """Stop accepting, close idle connections, give requests in progress SHUTDOWN_TIMEOUT to end."""
        if self.server.ready:
            self.server.stop()
            self.thread.join(timeout=5)
        else:   # never started, or already stopped
            self.server._bound.close()
