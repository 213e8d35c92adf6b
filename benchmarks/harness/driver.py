"""The load process: drives HTTP or MLLP requests at one server on loopback, bounded in count and time.

    python -m benchmarks.harness.driver < spec.json      (prints one JSON object on stdout)

The harness runs it as a separate process, so that the system under test and its peer get the very same
client, and neither shares a process (or a GIL) with the load. Standard library only: asyncio streams, one
request in flight per connection, keep-alive HTTP/1.1 (reconnecting when the server closes), MLLP frames
(VT ... FS CR) with the ACK awaited. The spec (JSON):

    kind         "http", "mllp", "smtp" or "oidc"
    port         the server's port on 127.0.0.1 (nothing else is ever a target)
    count        how many requests at most (the timed ones; `warmup` more are sent first, untimed)
    time_limit   seconds at most for the timed requests; the driver stops at whichever bound comes first
    connections  how many connections share the count (default 1)
    warmup       untimed requests first, on the first connection (default 0)
    http:        method, path, headers (dict), body_b64, expect_status (default 200)
    mllp:        template_b64: the HL7 message; every `@@N@@` in it becomes the request's number, from
                 `first` (default 0) on, so that each message is distinct; expect (default "MSA|AA|")
    smtp:        message_b64 (the message, CRLF line ends), mail_from, rcpt_to, login ([user, password] for
                 AUTH PLAIN, or absent); each request is MAIL, RCPT, DATA and the message on a session opened
                 (greeting, EHLO, AUTH) once per connection, the 250 after the final dot awaited
    oidc:        authorize, token, userinfo (paths), client_id, client_secret, redirect_uri, scope, login_hint;
                 each request is a whole authorization code flow: authorize with PKCE S256, every redirect on
                 the server followed (with the flow's own cookies, none kept between flows) up to the one to
                 redirect_uri with the code, the token request (client_secret_basic), then userinfo

It answers {"done", "elapsed", "rate", "p50_ms", "p99_ms", "max_ms", "errors", "first_error", "bytes_in",
"connections", "cpu_s"}: cpu_s is the driver's own CPU time over the timed requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import sys
import time
from urllib.parse import parse_qs, urlencode, urlsplit

HOST = "127.0.0.1"          # loopback only, whatever the spec says
CONNECT_TIMEOUT = 5.0
IO_TIMEOUT = 30.0           # one request's answer
MAX_ERRORS = 20             # give up after this many failed requests
HARD_LIMIT_S = 600.0        # no spec may keep the driver longer than this
MAX_COUNT = 2_000_000


class Failed(Exception):
    pass


class HttpConnection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers: dict[str, str] = {}     # the last answer's headers (the last value of a repeated one)
        self.cookies: list[str] = []          # the last answer's Set-Cookie values

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port),
                                                          CONNECT_TIMEOUT)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                await self.open()
            try:
                self.writer.write(request)
                return await asyncio.wait_for(self._response(), IO_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()  # the server closed a kept-alive connection: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        self.cookies = []
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
                if name.strip().lower() == "set-cookie":
                    self.cookies.append(value.strip())
        self.headers = headers
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers expected
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await self.reader.read()  # until the server closes
            self.close()
            return status, body
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0" and \
                headers.get("connection", "").lower() != "keep-alive":
            self.close()
        return status, body


def http_request(spec: dict) -> bytes:
    body = base64.b64decode(spec.get("body_b64") or "")
    headers = {"Host": f"{HOST}:{spec['port']}", "Connection": "keep-alive", **(spec.get("headers") or {})}
    if body or spec.get("method", "GET") in ("POST", "PUT", "PATCH", "DELETE"):
        headers["Content-Length"] = str(len(body))
    head = f"{spec.get('method', 'GET')} {spec['path']} HTTP/1.1\r\n" + \
        "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


MAX_REDIRECTS = 8


async def oidc_flow(conn: HttpConnection, spec: dict) -> int:
    """One authorization code flow: authorize (PKCE S256), redirects followed with this flow's own cookies
    until the one to redirect_uri, the code for tokens (client_secret_basic), then userinfo."""
    port, redirect = spec["port"], spec["redirect_uri"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"client_id": spec["client_id"], "response_type": "code", "scope": spec["scope"],
                       "redirect_uri": redirect, "state": secrets.token_urlsafe(8), "nonce": "n",
                       "login_hint": spec["login_hint"], "code_challenge": challenge,
                       "code_challenge_method": "S256"})
    base = {"Host": f"{HOST}:{port}", "Connection": "keep-alive"}
    jar: dict[str, str] = {}
    path, received = f"{spec['authorize']}?{query}", 0
    for _ in range(MAX_REDIRECTS):
        headers = {**base, "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else base
        status, body = await conn.exchange(f"GET {path} HTTP/1.1\r\n".encode() + _head(headers))
        received += len(body)
        for cookie in conn.cookies:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            jar[name.strip()] = value.strip()
        location = conn.headers.get("location", "")
        if status not in (302, 303) or not location:
            raise Failed(f"authorize: status {status}: {body[:200]!r}")
        if location.startswith(redirect + "?"):
            found = parse_qs(urlsplit(location).query)
            if "code" not in found:
                raise Failed(f"authorize: no code in {location[:200]}")
            code = found["code"][0]
            break
        parts = urlsplit(location)
        if parts.netloc not in ("", f"{HOST}:{port}"):
            raise Failed(f"authorize: redirected off the server: {location[:200]}")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
    else:
        raise Failed("authorize: too many redirects")
    form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                      "code_verifier": verifier}).encode()
    basic = base64.b64encode(f"{spec['client_id']}:{spec['client_secret']}".encode()).decode()
    status, body = await conn.exchange(f"POST {spec['token']} HTTP/1.1\r\n".encode() + _head(
        {**base, "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
         "Content-Length": str(len(form))}) + form)
    if status != 200:
        raise Failed(f"token: status {status}: {body[:200]!r}")
    received += len(body)
    access = json.loads(body)["access_token"]
    status, body = await conn.exchange(f"GET {spec['userinfo']} HTTP/1.1\r\n".encode() + _head(
        {**base, "Authorization": f"Bearer {access}"}))
    if status != 200:
        raise Failed(f"userinfo: status {status}: {body[:200]!r}")
    return received + len(body)


def _head(headers: dict[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1")


class MllpConnection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, message: bytes) -> bytes:
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port),
                                                              CONNECT_TIMEOUT)
        self.writer.write(b"\x0b" + message + b"\x1c\r")
        frame = await asyncio.wait_for(self.reader.readuntil(b"\x1c\r"), IO_TIMEOUT)
        return frame


class SmtpConnection:
    def __init__(self, port: int, login: list[str] | None) -> None:
        self.port = port
        self.login = login
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def reply(self, expect: str) -> bytes:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)
            if not line:
                raise ConnectionError("the SMTP server closed the connection")
            lines.append(line)
            if line[3:4] != b"-":
                break
        if not line.startswith(expect.encode()):
            raise Failed(f"expected {expect}, got {b''.join(lines)[:200]!r}")
        return b"".join(lines)

    async def command(self, line: str, expect: str) -> bytes:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply(expect)

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), CONNECT_TIMEOUT)
        await self.reply("220")
        await self.command("EHLO driver.test", "250")
        if self.login:
            token = base64.b64encode(f"\0{self.login[0]}\0{self.login[1]}".encode()).decode()
            await self.command(f"AUTH PLAIN {token}", "235")

    async def exchange(self, mail_from: str, rcpt_to: str, data: bytes) -> int:
        if self.writer is None:
            await self.open()
        await self.command(f"MAIL FROM:<{mail_from}>", "250")
        await self.command(f"RCPT TO:<{rcpt_to}>", "250")
        await self.command("DATA", "354")
        self.writer.write(data)
        return len(await self.reply("250"))


def smtp_data(message: bytes) -> bytes:
    """The DATA payload: dot-stuffed (RFC 5321 4.5.2), ended by CRLF . CRLF."""
    lines = message.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


async def drive(spec: dict) -> dict:
    kind = spec["kind"]
    count = min(int(spec["count"]), MAX_COUNT)
    time_limit = min(float(spec["time_limit"]), HARD_LIMIT_S)
    connections = max(1, int(spec.get("connections", 1)))
    warmup = int(spec.get("warmup", 0))
    latencies: list[float] = []
    errors: list[str] = []
    received = 0

    if kind == "http":
        request = http_request(spec)
        expect_status = int(spec.get("expect_status", 200))

        def make_conn():
            return HttpConnection(spec["port"])

        async def one(conn, _n: int) -> int:
            status, body = await conn.exchange(request)
            if status != expect_status:
                raise Failed(f"status {status}: {body[:200]!r}")
            return len(body)
    elif kind == "oidc":
        def make_conn():
            return HttpConnection(spec["port"])

        async def one(conn, _n: int) -> int:
            return await oidc_flow(conn, spec)
    elif kind == "mllp":
        template = base64.b64decode(spec["template_b64"])
        expect = spec.get("expect", "MSA|AA|").encode()
        first = int(spec.get("first", 0))

        def make_conn():
            return MllpConnection(spec["port"])

        async def one(conn, n: int) -> int:
            frame = await conn.exchange(template.replace(b"@@N@@", str(first + n).encode()))
            if expect not in frame:
                raise Failed(f"unexpected answer: {frame[:200]!r}")
            return len(frame)
    elif kind == "smtp":
        data = smtp_data(base64.b64decode(spec["message_b64"]))

        def make_conn():
            return SmtpConnection(spec["port"], spec.get("login"))

        async def one(conn, _n: int) -> int:
            return await conn.exchange(spec["mail_from"], spec["rcpt_to"], data)
    else:
        raise SystemExit(f"unknown kind {kind!r}")

    conns = [make_conn() for _ in range(connections)]
    for i in range(warmup):
        try:
            await one(conns[0], count + i)  # numbered after the timed ones: MLLP numbers stay distinct
        except (TimeoutError, Failed, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"warm-up: {type(exc).__name__}: {exc}")
            conns[0].close()

    issued = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    deadline = t0 + time_limit

    async def worker(conn) -> None:
        nonlocal issued, received
        while issued < count and len(errors) < MAX_ERRORS and time.perf_counter() < deadline:
            n = issued
            issued += 1
            start = time.perf_counter()
            try:
                received += await one(conn, n)
            except (TimeoutError, Failed, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    for c in conns:
        c.close()
    latencies.sort()

    def pct(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else None

    return {"done": len(latencies), "elapsed": elapsed, "rate": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": latencies[-1] * 1000 if latencies else None,
            "errors": len(errors), "first_error": errors[0] if errors else None, "bytes_in": received,
            "connections": connections, "cpu_s": cpu}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(drive(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
