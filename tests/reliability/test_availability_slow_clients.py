"""Issue 17 point 9: slow and silent clients do not stall the HTTP ports.

500 idle connections and 100 slowloris connections (a header line every half second, never the end of the
head) are opened on the HTTP port: normal clients are still answered, each within a few seconds (before, 32
of them held every worker and each request waited ~10 s). On HTTPS, silent connections that never start
their TLS handshake do not delay a new client, whose certificate still reaches the DMP door. A request head
is bounded in size and time, a body in time, and the port's connection count by `http_max_connections` (503
beyond).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests

from mockbench import http_server

ANSWER_WITHIN = 5.0   # seconds: a bound for a request that takes milliseconds, not a measurement


class Slowloris:
    """Connections that send a request head a line at a time, never ending it."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /_bench/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.socks.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        n = 0
        while not self._stop.wait(0.5):
            n += 1
            for s in self.socks:
                try:
                    s.sendall(f"X-Slow-{n}: a\r\n".encode())
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=ANSWER_WITHIN, headers={"Connection": "close"})


def test_normal_clients_are_served_beside_500_idle_and_100_slowloris_connections(mockbench):
    port = mockbench.ports["http"]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(500)]
    slow = Slowloris(port, 100)
    try:
        time.sleep(0.5)   # let the server accept them all (and, before the fix, hand them to its workers)
        for path in ("/_bench/health", "/_bench/patients", "/fhir/v1/metadata", "/"):
            for _ in range(5):
                response = _get(mockbench.url + path)
                assert response.status_code in (200, 401), (path, response.status_code)
        # A kept-alive client too.
        with requests.Session() as session:
            for _ in range(20):
                assert session.get(mockbench.url + "/_bench/health", timeout=ANSWER_WITHIN).ok
    finally:
        slow.close()
        for s in idle:
            s.close()


def test_silent_connections_on_https_do_not_delay_a_new_client(tmp_path, mockbench_factory):
    from mockbench.pki import client_context, init_pki

    files = init_pki(tmp_path / "pki")
    running = mockbench_factory(tls_dir=tmp_path / "pki")
    port = running.ports["https"]
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    try:
        url = f"https://localhost:{port}/si-dmp-server/v2/services/registry"
        envelope = b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body/></soap:Envelope>'
        request = urllib.request.Request(url, data=envelope, headers={"Content-Type": "application/soap+xml"})
        for _ in range(3):
            with pytest.raises(urllib.error.HTTPError) as answered:
                urllib.request.urlopen(request, context=client_context(files, "org-auth-cli"), timeout=ANSWER_WITHIN)
            # The certificate reached the door: the refusal is about the empty SOAP body, not the certificate.
            assert answered.value.code == 400 and b"DMPInvalidCertificate" not in answered.value.read()
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(request, context=client_context(files), timeout=ANSWER_WITHIN)
        assert anonymous.value.code == 403 and b"DMPInvalidCertificate" in anonymous.value.read()
    finally:
        for s in silent:
            s.close()


def _response_head(sock: socket.socket, timeout: float = ANSWER_WITHIN) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_huge_request_head_is_refused(mockbench):
    with socket.create_connection(("127.0.0.1", mockbench.ports["http"]), timeout=5) as s:
        s.sendall(b"GET /_bench/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (2 * 1024 * 1024))
        head = _response_head(s)
    assert head.startswith(b"HTTP/1.1 4") and not head.startswith(b"HTTP/1.1 200"), head[:80]


def test_a_head_or_body_that_never_ends_is_cut_off(mockbench, monkeypatch):
    """Deadlines for the whole head and the whole body (1 s here; 10 s and 30 s by default): a client that
    keeps sending a line every 0.2 s would defeat a per-read timeout, not these."""
    monkeypatch.setattr(http_server, "HEAD_TIMEOUT", 1.0)
    monkeypatch.setattr(http_server, "BODY_TIMEOUT", 1.0)
    port = mockbench.ports["http"]
    for first, more in ((b"GET /_bench/health HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: a\r\n"),
                        (b"POST /_bench/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{", b" ")):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(first)
            t0 = time.monotonic()
            cut = False
            while time.monotonic() - t0 < ANSWER_WITHIN and not cut:
                time.sleep(0.2)
                try:
                    slow.sendall(more)
                    slow.setblocking(False)
                    try:
                        slow.recv(4096)   # an answer (408) or the end of the connection
                        cut = True
                    except BlockingIOError:
                        pass
                    finally:
                        slow.setblocking(True)
                except OSError:
                    cut = True
            assert cut, f"{first[:4]!r}: still open after {ANSWER_WITHIN} s"


def test_beyond_the_connection_cap_a_new_client_gets_503(mockbench_factory):
    running = mockbench_factory(http_max_connections=20)
    port = running.ports["http"]
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            assert _response_head(extra).startswith(b"HTTP/1.1 503")
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + ANSWER_WITHIN
    while True:   # the slots free as the server sees the closes
        try:
            if requests.get(running.url + "/_bench/health", timeout=ANSWER_WITHIN).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the port never served again"
        time.sleep(0.05)
