"""The HTTP and HTTPS ports' server: cheroot's WSGI server, in threads of the bench process, with an
event-driven front of our own for what a slow or silent client could otherwise hold.

Werkzeug's development server, used before, starts a thread per connection and answers every request with
`Connection: close`, so each request paid a TCP connection and a thread; cheroot keeps HTTP/1.1 connections
alive and serves them from a fixed pool of worker threads. Measured on TD3.1 (benchmarks/README.md).

Slow clients (issue 17 point 9). Out of the box cheroot gives a connection to a worker as soon as it is
accepted or its first byte arrives, and the worker then blocks reading the request head: 32 silent or
slowloris connections held every worker, and on HTTPS the TLS handshake ran on the accepting thread. Here one
selector thread (`_Connections`) accepts, runs each TLS handshake without blocking, and reads each request
head without blocking; a connection reaches a worker only with a complete head in hand. So idle and slow
connections cost a descriptor and a buffer, never a worker. Bounds:
- `HEAD_TIMEOUT`: from its accept (or the end of its previous request) a connection has this long to send a
  complete request head (TLS handshake included); then it is closed. An idle kept-alive connection too.
- `MAX_HEAD_BYTES`: a request head beyond it gets 431 (cheroot's max_request_header_size; header count is
  bounded by the size).
- `BODY_TIMEOUT`: a worker reads the body for at most this long in all (408 after), and `IDLE_TIMEOUT`
  between two reads.
- `max_connections` (setting `http_max_connections`, 1000): beyond it a new connection gets 503 (plain HTTP)
  or is closed (HTTPS: no handshake is spent on it), logged once per episode.
- Out of file descriptors: accepting pauses for `ACCEPT_PAUSE` seconds, logged once per episode.

Workers. `WORKERS` requests are served at once; a long-lived response (a server-sent event stream) holds a
worker for as long as it lasts, so `WORKERS` is well above the streams the control API allows at once (16).
More complete requests than workers wait in the queue.

TLS (the HTTPS port): the bench's own `ssl.SSLContext` (mutual TLS with CERT_OPTIONAL, pki.server_context)
wraps each accepted socket; the client's certificate reaches the doors as `SSL_CLIENT_CERT` (PEM) in the WSGI
environ.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import ssl
import struct
import threading
import time
from typing import Any, Literal

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.connections import ConnectionManager
from cheroot.makefile import MakeFile, StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cheroot.workers.threadpool import _SHUTDOWNREQUEST, ThreadPool, WorkerThread  # type: ignore[attr-defined]  # cheroot internal

log = logging.getLogger("mockbench.http")
_Mode = Literal["r", "w", "rw", "rb", "wb", "rwb"]

WORKERS = 32            # requests in progress at once, event streams included
KEEP_ALIVE_IDLE = 1000  # idle kept-alive connections watched at once (the connection cap bounds them anyway)
IDLE_TIMEOUT = 10       # seconds: the socket timeout of a worker's reads and writes
HEAD_TIMEOUT = 10.0     # seconds for a complete request head, from accept or from the previous answer
BODY_TIMEOUT = 30.0     # seconds for a whole request body, once the head is in
MAX_HEAD_BYTES = 64 * 1024   # request line and headers
MAX_CONNECTIONS = 1000  # default of the http_max_connections setting
ACCEPT_PAUSE = 0.5      # seconds without accepting when the process is out of file descriptors
SHUTDOWN_TIMEOUT = 2.0  # seconds given to requests in progress when the bench stops
_READ_CHUNK = 64 * 1024
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 41\r\n"
         b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections; try again in a moment")


class _TlsAdapter(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter around a context made by the bench (its own constructor wants file names,
    builds its own context and opens a loopback TLS connection to read the server's certificate)."""

    def __init__(self, context: ssl.SSLContext) -> None:  # noqa: D107 - the parent's is skipped on purpose
        self.certificate = self.private_key = self.certificate_chain = self.ciphers = None
        self.private_key_password = None
        self.context = context
        self._server_env: dict[str, Any] = {}


class _Workers(ThreadPool):
    """A fixed pool of daemon threads (cheroot's are not daemons: a process that never stopped its bench could
    not exit), started without waiting for each to be ready (cheroot polls every 0.1 s)."""

    def grow(self, amount: int) -> None:
        budget = max(self.max - len(self._threads), 0)  # type: ignore[attr-defined]  # cheroot internal
        self._threads.extend(self._spawn_worker() for _ in range(min(amount, budget)))  # type: ignore[attr-defined]  # cheroot internal

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Ask every worker to end, wait `timeout` in all; a worker still busy then (a stream whose generator
        waits) gets its connection's read side shut and is left behind (a daemon), instead of being joined
        without end as cheroot does."""
        workers, self._threads[:] = self._threads[:], []  # type: ignore[attr-defined]  # cheroot internal
        for _ in workers:
            self._queue.put(_SHUTDOWNREQUEST)  # type: ignore[attr-defined]  # cheroot internal
        deadline = time.monotonic() + (timeout or 0)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                self._force_close(worker.conn)  # type: ignore[attr-defined]  # cheroot internal

    def _spawn_worker(self) -> WorkerThread:
        worker = WorkerThread(self.server)
        worker.name = f"mockbench-http-worker-{len(self._threads)}"  # type: ignore[attr-defined]  # cheroot internal
        worker.daemon = True
        worker.start()
        return worker


class _Raw(socket.SocketIO):
    """The socket as a worker reads it: first the bytes the selector thread already read (the request head,
    perhaps some body), then the socket, within the request's deadline."""

    def __init__(self, sock: socket.socket, mode: _Mode) -> None:
        super().__init__(sock, mode)
        self.prefix = b""
        self.deadline: float | None = None
        self.timeout = IDLE_TIMEOUT

    def readinto(self, b: Any) -> int | None:
        if self.prefix:
            n = min(len(b), len(self.prefix))
            b[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")   # cheroot answers 408 to what it reads as a timeout
            self._sock.settimeout(min(left, self.timeout))  # type: ignore[attr-defined]  # cheroot internal
        return super().readinto(b)


class _Reader(StreamReader):
    def __init__(self, sock: socket.socket, mode: _Mode = "rb", bufsize: int = 8192) -> None:  # noqa: D107
        io_buffered = StreamReader.__mro__[1]   # cheroot's StreamReader wraps socket.SocketIO itself
        io_buffered.__init__(self, _Raw(sock, mode), bufsize)  # type: ignore[misc]  # skips cheroot's own
        self.bytes_read = 0

    def has_data(self) -> bool:
        return super().has_data() or bool(self.raw.prefix)  # type: ignore[attr-defined]  # raw is our _Raw


def _makefile(sock: socket.socket, mode: _Mode = "r", bufsize: int = 8192) -> Any:
    return _Reader(sock, mode, bufsize) if "r" in mode else MakeFile(sock, mode, bufsize)


class _Connection(cheroot_server.HTTPConnection):
    """One connection, with the state the selector thread keeps while it is not with a worker."""

    def __init__(self, server: _Server, sock: socket.socket, makefile: Any = _makefile) -> None:
        super().__init__(server, sock, _makefile)
        self.handshaking = False
        self.head = bytearray()
        self.expires = time.monotonic() + HEAD_TIMEOUT
        self._counted = True
        server.open_connections += 1

    def close(self) -> None:
        if self._counted:
            self._counted = False
            with self.server.count_lock:
                self.server.open_connections -= 1
        super().close()


class _Connections(ConnectionManager):
    """cheroot's connection manager, made to hand a worker only a connection whose request head is complete
    (see the module's docstring)."""

    def __init__(self, server: _Server) -> None:
        super().__init__(server)
        self._paused_until = 0.0
        self._last_expiry = 0.0
        self._out_of_descriptors = False
        self._refusing = False

    # The selector thread's loop --------------------------------------------------------------------------
    def _run(self, expiration_interval: float) -> None:
        while not self._stop_requested:  # type: ignore[attr-defined]  # cheroot internal
            self._resume_accepting()
            try:
                active = list(self._selector.select(timeout=expiration_interval))  # type: ignore[attr-defined]  # cheroot internal
            except OSError:
                self._remove_invalid_sockets()  # type: ignore[attr-defined]  # cheroot internal
                continue
            for _fd, conn in active:
                if conn is self.server:
                    new = self._accept()
                    if new is not None:
                        self._advance(new)
                else:
                    self._advance(conn)
            self._expire_heads()

    def put(self, conn: _Connection) -> None:
        """A worker is done with `conn`, kept alive: it waits for its next request head here."""
        conn.last_used = time.time()
        conn.expires = time.monotonic() + HEAD_TIMEOUT
        conn.head = bytearray()
        if conn.rfile.has_data():   # a pipelined request already read
            conn.rfile.raw.deadline = time.monotonic() + BODY_TIMEOUT
            self.server.process_conn(conn)
            return
        conn.socket.setblocking(False)
        self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)  # type: ignore[attr-defined]  # cheroot internal

    def _advance(self, conn: _Connection) -> None:
        """Move `conn` on without blocking: handshake, read what its head has sent, hand it to a worker once
        the head is complete."""
        sock = conn.socket
        try:
            if conn.handshaking:
                try:
                    sock.do_handshake()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    self._watch(conn)
                    return
                conn.handshaking = False
                conn.ssl_env = self.server.ssl_adapter.get_environ(sock)
            while len(conn.head) <= MAX_HEAD_BYTES:
                try:
                    chunk = sock.recv(_READ_CHUNK)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                if not chunk:   # the client went away
                    self._drop(conn)
                    return
                conn.head += chunk
                if b"\r\n\r\n" in conn.head or b"\n\n" in conn.head:
                    break
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.debug("connection dropped before its request: %s", exc)
            self._drop(conn)
            return
        complete = b"\r\n\r\n" in conn.head or b"\n\n" in conn.head or len(conn.head) > MAX_HEAD_BYTES
        if not complete:
            self._watch(conn)
            return
        self._unwatch(conn)
        sock.settimeout(self.server.timeout)
        conn.rfile.raw.prefix = bytes(conn.head)
        conn.rfile.raw.deadline = time.monotonic() + BODY_TIMEOUT
        conn.head = bytearray()
        conn.last_used = time.time()
        self.server.process_conn(conn)

    def _watch(self, conn: _Connection) -> None:
        fd = conn.socket.fileno()
        try:
            self._selector.register(fd, selectors.EVENT_READ, data=conn)  # type: ignore[attr-defined]  # cheroot internal
        except KeyError:
            pass   # already watched

    def _unwatch(self, conn: _Connection) -> None:
        try:
            self._selector.unregister(conn.socket.fileno())  # type: ignore[attr-defined]  # cheroot internal
        except (KeyError, ValueError):
            pass

    def _drop(self, conn: _Connection) -> None:
        self._unwatch(conn)
        try:
            conn.close()
        except OSError:
            pass

    def _expire_heads(self) -> None:
        now = time.monotonic()
        if now - self._last_expiry < 0.1:
            return   # a busy port wakes the selector often; the deadlines are seconds
        self._last_expiry = now
        late = [conn for _, conn in self._selector.connections  # type: ignore[attr-defined]  # cheroot internal
                if conn is not self.server and conn.expires < now]
        for conn in late:
            self._drop(conn)

    def _expire(self, threshold: float) -> None:  # cheroot's: replaced by _expire_heads
        pass

    # Accepting ------------------------------------------------------------------------------------------
    def _accept(self) -> _Connection | None:
        server = self.server
        try:
            sock, addr = server.socket.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                self._pause_accepting(exc)
            return None
        if self._out_of_descriptors:
            self._out_of_descriptors = False
            log.info("%s: accepting connections again", server.name)
        if server.open_connections >= server.max_connections:
            if not self._refusing:
                self._refusing = True
                log.warning("%s: %d connections open, its cap (http_max_connections); new ones get 503 until "
                            "some close", server.name, server.open_connections)
            try:
                sock.setblocking(False)
                if server.ssl_adapter is None:
                    sock.send(_BUSY)
            except OSError:
                pass
            sock.close()
            return None
        if self._refusing and server.open_connections < server.max_connections * 0.9:
            self._refusing = False
        sock.setblocking(False)
        handshaking = False
        if server.ssl_adapter is not None:
            try:
                sock = server.ssl_adapter.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError):
                sock.close()
                return None
            handshaking = True
        with server.count_lock:
            conn = server.ConnectionClass(server, sock)
        conn.handshaking = handshaking
        conn.ssl_env = {}
        conn.remote_addr, conn.remote_port = addr[:2] if addr else ("0.0.0.0", 0)
        return conn

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors: the listening socket stays readable, so it leaves the selector for a while
        instead of waking it in a loop."""
        if not self._out_of_descriptors:
            self._out_of_descriptors = True
            log.error("%s: cannot accept a connection (%s); new connections wait until descriptors are free "
                      "(raise the open-files limit, or lower http_max_connections)", self.server.name,
                      exc.strerror or exc)
        try:
            self._selector.unregister(self.server.socket.fileno())  # type: ignore[attr-defined]  # cheroot internal
        except (KeyError, ValueError):
            pass
        self._paused_until = time.monotonic() + ACCEPT_PAUSE

    def _resume_accepting(self) -> None:
        if self._paused_until and time.monotonic() >= self._paused_until:
            self._paused_until = 0.0
            self._selector.register(self.server.socket.fileno(), selectors.EVENT_READ, data=self.server)  # type: ignore[attr-defined]  # cheroot internal


class _Gateway(wsgi.Gateway_10):
    """WSGI 1.0, with two additions for the fault rules that drop a connection (world/faults.py,
    protocols/faults.py): `mockbench.socket`, the connection's socket (to see the client give up), and
    `mockbench.abort`, which a response body calls to drop the connection with a TCP RST without a byte sent."""

    def get_environ(self) -> dict:  # type: ignore[override]  # cheroot's stub says None
        env = super().get_environ()
        env["mockbench.socket"] = self.req.conn.socket
        env["mockbench.abort"] = self._abort
        return env

    def _abort(self) -> None:
        req = self.req
        req.sent_headers = True        # cheroot sends pending headers even when the body fails: none here
        req.close_connection = True
        try:   # SO_LINGER 0: the close that follows sends a RST
            req.conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # an error cheroot ignores (errors.socket_errors_to_ignore): it closes the connection, logs nothing
        raise ConnectionResetError(errno.ECONNRESET, "connection dropped by a fault rule")


class _Server(wsgi.Server):
    ConnectionClass = _Connection

    def __init__(self, sock: socket.socket, app: Any, *, name: str, max_connections: int) -> None:
        self._bound = sock
        super().__init__(sock.getsockname()[:2], app, numthreads=WORKERS, max=WORKERS, server_name="mockbench",
                         request_queue_size=128, timeout=IDLE_TIMEOUT, shutdown_timeout=SHUTDOWN_TIMEOUT)  # type: ignore[arg-type]  # a float works
        self.gateway = _Gateway
        self.name = name
        self.max_connections = max_connections
        self.open_connections = 0
        self.count_lock = threading.Lock()
        self.requests = _Workers(self, min=WORKERS, max=WORKERS)
        self.keep_alive_conn_limit = KEEP_ALIVE_IDLE
        self.max_request_header_size = MAX_HEAD_BYTES
        self.expiration_interval = 0.2   # the selector's wake-up: a stop waits for it (cheroot's 0.5 s)

    def bind(self, family: int, type: int, proto: int = 0) -> None:  # noqa: A002 - cheroot's signature
        """The socket the bench bound itself (it reports a taken port its own way)."""
        self.socket = self._bound
        self.bind_addr = self._bound.getsockname()[:2]

    def prepare(self) -> None:
        super().prepare()
        self.socket.setblocking(False)   # accept only when the selector says so, never wait in it
        self._connections.close()  # type: ignore[has-type]  # cheroot's own manager: never ran, holds only its selector
        self._connections = _Connections(self)

    def serve(self) -> None:
        """cheroot's loop, without its thread answering 503 when the accepted queue is full (it is unbounded)."""
        while self.ready:
            try:
                self._connections.run(self.expiration_interval)
            except Exception:
                log.exception("the HTTP server's loop failed; it goes on")
                time.sleep(0.1)   # never a tight loop of tracebacks

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # cheroot reports a client's dropped connection or bad TLS handshake at INFO: not the user's concern.
        log.log(logging.ERROR if level >= logging.ERROR else logging.DEBUG, "%s", msg, exc_info=traceback)


class HttpServer:
    """One port's server: `start()` begins serving on `sock` (already bound), `stop()` ends it."""

    def __init__(self, sock: socket.socket, app: Any, *, ssl_context: ssl.SSLContext | None, name: str,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # an answer's last segment is not held back
        self.port: int = sock.getsockname()[1]
        self.server = _Server(sock, app, name=name, max_connections=max_connections)
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
