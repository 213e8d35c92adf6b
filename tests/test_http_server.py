"""The HTTP port's server (mockbench/http_server.py, cheroot): kept-alive connections, responses streamed as
they are produced, long-lived responses that leave workers for the other requests, a bounded stop."""

import http.client
import socket
import threading
import time

from mockbench import http_server
from mockbench.http_server import HttpServer


def test_a_connection_is_kept_alive_between_requests(mockbench):
    conn = http.client.HTTPConnection("127.0.0.1", mockbench.ports["http"], timeout=10)
    try:
        conn.request("GET", "/_bench/health")
        first = conn.getresponse()
        assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
        first.read()
        sock = conn.sock
        conn.request("GET", "/_bench/health")
        second = conn.getresponse()
        assert second.status == 200 and second.read()
        assert conn.sock is sock and sock is not None    # the same TCP connection served both
    finally:
        conn.close()


class Streams:
    """A WSGI app: /stream answers a first chunk, then waits for `release` before its second; / answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] != "/stream":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        with self.lock:
            self.started += 1
        return self._stream()

    def _stream(self):
        yield b"first"
        self.release.wait(20)
        yield b"second"


def serve(app) -> HttpServer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = HttpServer(sock, app, ssl_context=None, name="test")
    server.start()
    return server


def test_a_stream_is_sent_as_produced_and_leaves_workers_for_other_requests():
    app = Streams()
    server = serve(app)
    streams = []
    try:
        for _ in range(16):   # the control API allows 16 event streams at once
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", "/stream")
            response = conn.getresponse()
            assert response.read(5) == b"first"      # before the generator's end: not buffered
            streams.append((conn, response))
        assert app.started == 16
        other = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        other.request("GET", "/")
        assert other.getresponse().read() == b"ok"   # 16 streams open, a worker still answers
        other.close()
        assert http_server.WORKERS > 16
        app.release.set()
        for conn, response in streams:
            assert response.read() == b"second"
            conn.close()
    finally:
        app.release.set()
        server.stop()


def test_stop_is_bounded_while_a_stream_waits():
    app = Streams()
    server = serve(app)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/stream")
    assert conn.getresponse().read(5) == b"first"
    workers = list(server.server.requests._threads)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < http_server.SHUTDOWN_TIMEOUT + 2
    refused = socket.socket()
    try:
        assert refused.connect_ex(("127.0.0.1", server.port)) != 0   # nothing listens any more
    finally:
        refused.close()
    app.release.set()   # the worker left behind ends with its stream
    conn.close()
    deadline = time.monotonic() + 5
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == http_server.WORKERS and not any(w.is_alive() for w in workers)
