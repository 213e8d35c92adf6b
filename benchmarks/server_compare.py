"""cheroot (what serves the HTTP ports, mockbench/http_server.py) against granian, side by side on TD3.1
(issue 21 point 2): the same bench application, the same world, the same load process, alternating rounds.

    .venv/bin/pip install 'granian>=2.8,<2.9'    # not a dependency of mockbench: for this measurement only
    .venv/bin/python -m benchmarks.server_compare [--rounds 4] [--seconds 3] [--threads 8]

Each server is a process of its own serving one bench's WSGI application on plain HTTP: cheroot through
mockbench's HttpServer (its selector front, 32 workers), granian with one worker process (the world's clock,
timers and event streams live in one process) and `--threads` blocking threads. The load is the harness's
driver (benchmarks/harness/driver.py); the servers' CPU is their process trees' user + system time. Only
the HTTP port: granian does not hand the client certificate to a WSGI application (emmett-framework/granian
issue 788), which the DMP door needs on HTTPS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench(state: Path) -> Any:
    from mockbench.bench import Bench
    from mockbench.config import Config

    return Bench(Config(state=state, quiet=True))


def granian_app() -> Any:
    """granian's factory (`--factory benchmarks.server_compare:granian_app`): the bench, in granian's worker."""
    return _bench(Path(os.environ["MOCKBENCH_COMPARE_STATE"])).app


def serve_cheroot(state: Path, port: int) -> None:
    import socket

    from mockbench.http_server import HttpServer

    bench = _bench(state)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = HttpServer(sock, bench.app, ssl_context=None, name="http")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()
    bench.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-cheroot", nargs=2, metavar=("STATE", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8, help="granian's blocking threads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.serve_cheroot:
        serve_cheroot(Path(args.serve_cheroot[0]), int(args.serve_cheroot[1]))
        return 0
    from benchmarks import dmp
    from benchmarks.harness.procs import Server, free_port
    from benchmarks.harness.run import call, call_json, drive, http_spec

    work = Path(tempfile.mkdtemp(prefix="server-compare-"))
    servers: dict[str, Server] = {}
    try:
        for name in ("cheroot", "granian"):
            port = free_port()
            state = work / name / "state"
            state.mkdir(parents=True)
            if name == "cheroot":
                argv_ = [sys.executable, "-m", "benchmarks.server_compare", "--serve-cheroot", str(state), str(port)]
            else:
                argv_ = [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                         "--port", str(port), "--workers", "1", "--blocking-threads", str(args.threads),
                         "--no-ws", "--log-level", "warning", "--factory", "benchmarks.server_compare:granian_app"]
            env = {**os.environ, "MOCKBENCH_COMPARE_STATE": str(state), "PYTHONPATH": str(ROOT)}

            def probe(port: int = port) -> bool:
                try:
                    return call(port, "GET", "/_bench/health", timeout=2)[0] == 200
                except OSError:
                    return False
            server = Server(name, argv_, work / name, {"http": port}, probe, env=env)
            server.start(timeout=60)
            servers[name] = server
        queries = {}
        for name, server in servers.items():
            port = server.ports["http"]
            call_json(port, "POST", "/_bench/scenarios", dmp.world(10).encode())
            patient = call_json(port, "GET", "/_bench/patients/alice")
            pro = call_json(port, "GET", "/_bench/professionals")[0]
            idnst = call_json(port, "GET", "/_bench/structures")[0]["idnst"]
            queries[name] = dmp.envelope(dmp.find_documents(patient), dmp.signed_vihf(
                work / name / "state", pro, idnst, patient), "urn:ihe:iti:2007:RegistryStoredQuery")
        path, headers = "/si-dmp-server/v2/services/registry", {"Content-Type": "application/soap+xml"}
        results: dict[str, Any] = {}
        for conns in (1, 8):
            rows: dict[str, dict[str, list[float]]] = {n: {"rate": [], "p50_ms": [], "cpu_ms": []} for n in servers}
            for name, server in servers.items():   # untimed warm-up
                drive(http_spec(server.ports["http"], "POST", path, queries[name], headers, count=10**6, warmup=0,
                                time_limit=1.0, connections=conns))
            for r in range(args.rounds):
                order = list(servers.items()) if r % 2 == 0 else list(reversed(servers.items()))
                for name, server in order:
                    before = server.cpu_seconds()
                    out = drive(http_spec(server.ports["http"], "POST", path, queries[name], headers, count=10**6,
                                          warmup=5, time_limit=args.seconds, connections=conns))
                    handled = out["done"] + out["errors"] + 5
                    rows[name]["rate"].append(out["rate"])
                    rows[name]["p50_ms"].append(out["p50_ms"])
                    rows[name]["cpu_ms"].append((server.cpu_seconds() - before) / handled * 1000)
                    if out["errors"]:
                        print(f"{name}: {out['errors']} errors, first {out['first_error']}", file=sys.stderr)
            results[f"{conns}_conn"] = rows
            for name, row in rows.items():
                print(f"TD3.1, {conns} conn, {name:8}: {statistics.median(row['rate']):7,.0f} req/s "
                      f"(rounds {', '.join(f'{v:,.0f}' for v in row['rate'])}), p50 "
                      f"{statistics.median(row['p50_ms']):.2f} ms, server CPU {statistics.median(row['cpu_ms']):.2f} "
                      "ms per request")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
