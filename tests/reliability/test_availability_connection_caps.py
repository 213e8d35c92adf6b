"""Issue 17 point 10: each socket door has a named connection cap, and running out of file descriptors never
spins or floods the log.

Beyond its cap (`mllp_max_connections`, `smtp_max_connections`, `imap_max_connections`, 128 each by default)
a door refuses on its own wire and logs it once: MLLP closes the connection (an AR would need the message's
MSH), SMTP greets with 421 4.3.2 (RFC 5321 §3.1, §4.2.3; RFC 3463), IMAP with `* BYE [UNAVAILABLE]` (RFC 3501
§7.1.5, RFC 5530 §3). A bench whose open-files limit is lower than its caps, flooded with idle connections,
logs the shortage once per door and serves again when the connections end.
"""

from __future__ import annotations

import imaplib
import json
import logging
import os
import resource
import smtplib
import socket
import subprocess
import sys
import time

import pytest
import requests

ADT = b"\x0bMSH|^~\\&|DPI|CHU|PFI|CHU|20260101120000||ADT^A01^ADT_A01|CAP1|P|2.5\r\x1c\r"


def _closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _mllp_answers(port: int, deadline: float) -> bytes:
    """An ACK to a message on a new connection, retried until `deadline` (a slot frees when the door has
    seen the close)."""
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(ADT)
            s.settimeout(5)
            try:
                data = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                data = b""
        if data or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def test_each_socket_door_refuses_beyond_its_cap_on_its_wire_and_logs_once(mockbench_factory, caplog):
    caplog.set_level(logging.INFO, logger="mockbench")
    running = mockbench_factory(mllp_max_connections=3, smtp_max_connections=3, imap_max_connections=3)
    ports = running.ports
    held: list = []
    try:
        # MLLP: three served, the next ones closed before a byte.
        held += [socket.create_connection(("127.0.0.1", ports["mllp"]), timeout=5) for _ in range(3)]
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", ports["mllp"]), timeout=5) as extra:
                assert _closed_by_peer(extra)
        # SMTP: 421 as the greeting.
        smtp = [smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=5) for _ in range(3)]
        held += smtp
        for _ in range(2):
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=5)
            assert refused.value.smtp_code == 421 and b"4.3.2" in refused.value.smtp_error
        # IMAP: BYE as the greeting.
        imap = [imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=5) for _ in range(3)]
        held += imap
        for _ in range(2):
            with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
                imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=5)
        warnings = [r.getMessage() for r in caplog.records if "its cap" in r.getMessage()]
        assert sorted(w.split(":")[0] for w in warnings) == ["imap", "mllp", "smtp"], warnings
        # A slot freed is a slot served.
        held.pop(0).close()
        ack = _mllp_answers(ports["mllp"], time.monotonic() + 5)
        assert ack.startswith(b"\x0bMSH") and b"MSA|" in ack
        smtp[0].quit()
        deadline = time.monotonic() + 5
        while True:
            try:
                again = smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=5)
                break
            except smtplib.SMTPConnectError:
                assert time.monotonic() < deadline, "the SMTP door never served again"
                time.sleep(0.05)
        assert again.noop()[0] == 250
        again.quit()
        assert any("under its cap again" in r.getMessage() for r in caplog.records)
    finally:
        for item in held:
            try:
                item.shutdown() if isinstance(item, imaplib.IMAP4) else item.close()
            except OSError:
                pass


FD_LIMIT = 96


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE and /proc are Linux's")
def test_running_out_of_descriptors_neither_spins_nor_floods_the_log(tmp_path):
    """A bench limited to 96 open files, caps above that: 150 idle MLLP connections and a few HTTP clients
    leave it without descriptors for two seconds; the log says so a few times at most, and once the
    connections end it answers again."""
    port_file = tmp_path / "ports.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOCKBENCH_")},
           "MOCKBENCH_MLLP_MAX_CONNECTIONS": "1000", "MOCKBENCH_HTTP_MAX_CONNECTIONS": "1000"}
    stderr = open(tmp_path / "stderr", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--state", str(tmp_path / "s"), "--quiet",
                             "--http-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0",
                             "--port-file", str(port_file)], stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                            preexec_fn=_limit_files)
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "the bench did not start"
            time.sleep(0.05)
        ports = json.loads(port_file.read_text())
        assert requests.get(f"http://127.0.0.1:{ports['http']}/_bench/health", timeout=5).status_code == 200
        before = len((tmp_path / "stderr").read_bytes().splitlines())
        for _ in range(150):
            try:
                idle.append(socket.create_connection(("127.0.0.1", ports["mllp"]), timeout=2))
            except OSError:
                break  # the listen backlog is full too: the bench is surely out of descriptors
        waiting = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", ports["http"]), timeout=2)
            s.sendall(b"GET /_bench/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            waiting.append(s)
        cpu = _cpu_seconds(proc.pid)
        time.sleep(2)   # the shortage lasts; what the bench does meanwhile is measured just below
        spent = _cpu_seconds(proc.pid) - cpu
        lines = (tmp_path / "stderr").read_bytes().splitlines()[before:]
        assert len(lines) <= 20, f"{len(lines)} log lines in two seconds: {lines[:5]}"
        assert spent < 1.5, f"the bench burnt {spent:.2f} s of CPU in two seconds without descriptors"
        assert proc.poll() is None
        for s in idle:
            s.close()
        idle.clear()
        # Recovery: the waiting HTTP clients are answered, and new ones too.
        for s in waiting:
            s.settimeout(10)
            assert s.recv(1024).startswith(b"HTTP/1.1 200"), "a waiting HTTP client was not answered"
            s.close()
        assert requests.get(f"http://127.0.0.1:{ports['http']}/_bench/health", timeout=10).status_code == 200
        ack = _mllp_answers(ports["mllp"], time.monotonic() + 10)
        assert b"MSA|" in ack
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        stderr.close()


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
