"""Normal clients' latency on the HTTP port while idle and slowloris connections are open (issue 17 point 9).

    .venv/bin/python benchmarks/slow_clients.py [--idle 500] [--slowloris 100] [--requests 40] [--json F]

A bench in its own process (bench_process.start_bench); for each load (none, idle connections that never
send a byte, slowloris connections that send a header line every second and never end their request, and
both at once), `--requests` GET /_bench/health are timed one after the other, each on a new connection, with
a 15 s timeout (a request that times out counts as 15 s and is counted as stalled). Prints p50 and p95 in
milliseconds and the stalled count per load.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_process import pct, start_bench, stop_bench, write_json  # noqa: E402

TIMEOUT = 15.0
IDLE = 500        # the figure (issue 21 point 2): 500 idle and 100 slowloris connections
SLOWLORIS = 100


def _request(port: int) -> float:
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.settimeout(TIMEOUT)
            s.sendall(b"GET /_bench/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            return TIMEOUT
    except OSError:
        return TIMEOUT
    return time.perf_counter() - t0


class Load:
    """Idle and slowloris connections, kept open (and the slowloris ones fed) by one thread."""

    def __init__(self, port: int, idle: int, slowloris: int) -> None:
        self.socks: list[socket.socket] = []
        self.slow: list[socket.socket] = []
        for _ in range(idle):
            self.socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(slowloris):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /_bench/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.slow.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        n = 0
        while not self._stop.wait(1.0):
            n += 1
            for s in list(self.slow):
                try:
                    s.sendall(f"X-Slow-{n}: a\r\n".encode())
                except OSError:
                    self.slow.remove(s)   # the server closed it: a bound that works

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks + self.slow:
            s.close()


def measure(port: int, idle: int, slowloris: int, requests: int) -> dict:
    load = Load(port, idle, slowloris)
    time.sleep(1.0)  # the connections are accepted and, where the server hands them to workers, held
    try:
        samples = sorted(_request(port) for _ in range(requests))
    finally:
        load.close()
    return {"idle": idle, "slowloris": slowloris, "p50_ms": round(pct(samples, 0.5), 1),
            "p95_ms": round(pct(samples, 0.95), 1), "stalled": sum(1 for s in samples if s >= TIMEOUT)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=IDLE)
    parser.add_argument("--slowloris", type=int, default=SLOWLORIS)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, ports = start_bench(Path(tmp))
        try:
            rows = [measure(ports["http"], i, s, args.requests)
                    for i, s in ((0, 0), (args.idle, 0), (0, args.slowloris), (args.idle, args.slowloris))]
        finally:
            stop_bench(proc)
    print(f"{'idle':>5} {'slowloris':>9} {'p50 ms':>8} {'p95 ms':>8} {'stalled':>8}")
    for r in rows:
        print(f"{r['idle']:>5} {r['slowloris']:>9} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['stalled']:>8}")
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
