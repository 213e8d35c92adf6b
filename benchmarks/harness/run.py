"""mockbench side by side with its peers: the same work at both, measured in the same run.

    python -m benchmarks.harness [--quick] [--json FILE] [--only FIGURE,...] [--no-install]

Installs the peers into .bench/ (ignored) if they are missing, starts mockbench and each peer on loopback,
drives the same work at both from a separate load process (benchmarks/harness/driver.py), alternating
between them round by round, and prints one table: for each figure, mockbench's median, the peer's, and
their ratio, with the spread of the rounds. The table also goes to JSON (benchmarks/results/, ignored).
Every server is stopped at the end, failure or not. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import install, procs
from .procs import HOST, MIB, ROOT, Server, Unavailable
from .report import LATER, Row, table

FIGURES = ("startup", "idle", "memory", "reset", "growth", "soap", "mllp", "smtp", "oidc", "slow")
RESULTS_DIR = ROOT / "benchmarks" / "results"
DRIVER_SLACK = 60.0  # seconds a driver may take beyond its own time limit (start-up, warm-up)


@dataclass(frozen=True)
class Settings:
    """How much of everything: --quick (under two minutes) or the full run (under fifteen)."""

    mode: str
    startup_rounds: int
    settle_s: float                # idle time before sampling the idle RSS
    memory_requests: int           # requests that land in the journal, for the memory figure
    memory_chunks: int             # RSS sampled after each chunk; chunks alternate mockbench / WireMock
    memory_connections: int
    reset_rounds: int
    reset_calls: int               # per round, after one untimed call
    rounds: int                    # SOAP and MLLP throughput rounds, alternating
    soap_count: int
    mllp_count: int
    round_time_s: float            # a throughput round stops at its count or after this long
    warmup_s: float                # an untimed round per system before the SOAP and MLLP rounds
    connections: tuple[int, ...]
    oidc_connections: tuple[int, ...]  # the OIDC code flows: one connection when quick, one and eight in full


QUICK = Settings("quick", startup_rounds=3, settle_s=2.0, memory_requests=10_000, memory_chunks=5,
                 memory_connections=8, reset_rounds=3, reset_calls=30, rounds=3, soap_count=3_000, mllp_count=3_000,
                 round_time_s=1.5, warmup_s=1.0, connections=(1, 8),
                 oidc_connections=(1,))
FULL = Settings("full", startup_rounds=7, settle_s=5.0, memory_requests=100_000, memory_chunks=10,
                memory_connections=8, reset_rounds=5, reset_calls=100, rounds=5, soap_count=5_000,
                mllp_count=5_000, round_time_s=5.0, warmup_s=3.0, connections=(1, 8),
                oidc_connections=(1, 8))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds, 10,000 requests for the memory figure instead of 100,000 (< 2 min)")
    parser.add_argument("--json", type=Path, help="write the table here (default: benchmarks/results/"
                                                  "harness-MODE-TIMESTAMP.json)")
    parser.add_argument("--only", type=lambda s: [f.strip() for f in s.split(",") if f.strip()], default=None,
                        help=f"a comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument("--no-install", action="store_true", help="use the peers found in .bench/, install none")
    args = parser.parse_args(argv)
    if args.only:
        unknown = sorted(set(args.only) - set(FIGURES))
        if unknown:
            parser.error(f"unknown figure(s) {', '.join(unknown)}; choose among {', '.join(FIGURES)}")
    args.settings = QUICK if args.quick else FULL
    return args


def stats(samples: list[float]) -> dict | None:
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples),
            "samples": [round(s, 6) for s in samples]}


# Talking to the servers --------------------------------------------------------------------------------
def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 60.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def call_json(port: int, method: str, path: str, body: object = None, expect: tuple[int, ...] = (200, 201)):
    data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    status, _, payload = call(port, method, path, data, {"Content-Type": "application/json"})
    if status not in expect:
        raise RuntimeError(f"{method} {path} on port {port}: {status} {payload[:300]!r}")
    return json.loads(payload) if payload else None


class DriverFailed(Exception):
    pass


def drive(spec: dict) -> dict:
    """Run one bounded load in a separate process (benchmarks/harness/driver.py); return its figures."""
    try:
        result = subprocess.run([sys.executable, "-m", "benchmarks.harness.driver"], input=json.dumps(spec),
                                capture_output=True, text=True, cwd=ROOT,
                                timeout=float(spec["time_limit"]) + DRIVER_SLACK)
    except subprocess.TimeoutExpired:
        raise DriverFailed(f"the load process did not finish within {spec['time_limit'] + DRIVER_SLACK:.0f} s") \
            from None
    if result.returncode != 0:
        raise DriverFailed(f"the load process failed: {' '.join(result.stderr.split()[-40:])}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    if not out["done"]:
        raise DriverFailed(f"no request succeeded: {out['first_error']}")
    return out


def http_spec(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None, **bounds) -> dict:
    return {"kind": "http", "port": port, "method": method, "path": path, "headers": headers or {},
            "body_b64": base64.b64encode(body).decode(), **bounds}


# The run -------------------------------------------------------------------------------------------------
class Harness:
    def __init__(self, settings: Settings, install_status: dict[str, str | None], workroot: Path) -> None:
        self.s = settings
        self.root = workroot
        self.rows: list[Row] = []
        self.details: dict[str, object] = {}
        self.servers: list[Server] = []       # every server started, stopped in close()
        self.session: dict[str, Server] = {}  # the long-lived ones: idle memory, memory, reset, SOAP, MLLP
        self.missing: dict[str, str] = {}     # peer -> why it has no figures
        self.driver_errors: list[str] = []
        self.mllp_next = 0
        package_of = {"WireMock": "wiremock", "mountebank": "mountebank", "MailDev": "maildev", "moto": "moto",
                      "oidc-provider": "oidc-provider"}
        for peer, package in package_of.items():
            why = install_status.get(package)
            if why:
                self.missing[peer] = why if why.startswith("not installed") else f"not installed: {why}"

    # helpers
    def server(self, factory: Callable[[Path], Server], tag: str) -> Server:
        workdir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=self.root))
        server = factory(workdir)
        self.servers.append(server)
        return server

    def rss_mib(self) -> dict[str, float | None]:
        """Each long-lived server's RSS now (None for one that died)."""
        found: dict[str, float | None] = {}
        for name, server in self.session.items():
            try:
                found[name] = round(server.rss() / MIB, 1)
            except Unavailable:
                found[name] = None
        return found

    def close(self) -> None:
        for server in self.servers:
            server.stop()

    def add(self, figure: str, peer: str, unit: str, better: str, ours: list[float] | None,
            theirs: list[float] | None, note: str | None = None, detail: str = "") -> None:
        self.rows.append(Row(figure=figure, peer=peer, unit=unit, better=better, ours=stats(ours or []),
                             theirs=stats(theirs or []), note=note, detail=detail))

    def drive(self, spec: dict, what: str) -> dict:
        out = drive(spec)
        if out["errors"]:
            self.driver_errors.append(f"{what}: {out['errors']} failed request(s), first: {out['first_error']}")
        return out

    # (1) start-up to ready -------------------------------------------------------------------------------
    def fig_startup(self) -> None:
        # the package's bytecode written first, as an install has it (procs.child_env): no round pays for it
        compileall.compile_dir(str(ROOT / "mockbench"), quiet=1)
        systems: list[tuple[str, Callable[[Path], Server]]] = [("mockbench", procs.mockbench)]
        systems += [(peer, factory) for peer, factory in procs.PEERS.items() if peer not in self.missing]
        times: dict[str, list[float]] = {name: [] for name, _ in systems}
        failed: dict[str, str] = {}
        for r in range(self.s.startup_rounds):
            shift = r % len(systems)  # each round starts with another system: drift spreads over all of them
            for name, factory in systems[shift:] + systems[:shift]:
                if name in failed:
                    continue
                server = None
                try:
                    server = self.server(factory, f"startup-{name}")
                    times[name].append(server.start())
                except Unavailable as exc:
                    failed[name] = str(exc)
                finally:
                    if server is not None:
                        server.stop()
            log(f"startup round {r + 1}/{self.s.startup_rounds}: " +
                ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items() if t))
        self.details["startup_s"] = times
        ours = times["mockbench"]
        for peer in procs.PEERS:
            note = failed.get("mockbench") or self.missing.get(peer) or failed.get(peer)
            self.add("startup to ready", peer, "s", "lower", ours, times.get(peer), note,
                     detail="spawn -> port file (mockbench) / first answer (peer)")

    # the long-lived servers --------------------------------------------------------------------------------
    def start_session(self) -> None:
        bench = self.server(procs.mockbench, "session-mockbench")
        bench.start()  # mockbench not starting is fatal: there is nothing to compare
        self.session["mockbench"] = bench
        for peer, factory in procs.PEERS.items():
            if peer in self.missing:
                continue
            try:
                server = self.server(factory, f"session-{peer}")
                server.start()
                self.session[peer] = server
            except Unavailable as exc:
                self.missing[peer] = f"did not start: {exc}"
        log("session: " + ", ".join(f"{n} {s.ports}" for n, s in self.session.items()))

    # (2) idle memory -------------------------------------------------------------------------------------
    def fig_idle(self) -> None:
        time.sleep(self.s.settle_s)
        rss = self.rss_mib()
        self.details["idle_rss_mib"] = rss
        for peer in procs.PEERS:
            note = self.missing.get(peer) or (f"{peer} died" if peer in rss and rss[peer] is None else None)
            self.add("idle RSS (process tree)", peer, "MiB", "lower", [rss["mockbench"]],
                     [rss[peer]] if rss.get(peer) is not None else None, note,
                     detail=f"{self.s.settle_s:g} s after ready, mockbench with scenario hidden-documents")

    # (3) memory after N journaled requests -------------------------------------------------------------------
    def fig_memory(self) -> None:
        n, chunks = self.s.memory_requests, self.s.memory_chunks
        label = f"RSS after {n:,} requests"
        bench, wm = self.session["mockbench"], self.session.get("WireMock")
        body = json.dumps({"advance": "0s"}).encode()
        headers = {"Content-Type": "application/json"}
        targets = {"mockbench": (bench, "/_bench/clock")}
        if wm is not None:
            call_json(wm.ports["http"], "POST", "/__admin/mappings", {
                "request": {"method": "POST", "url": "/bench/clock"},
                "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                             "body": json.dumps({"now": "2026-11-25T10:00:00.000000+00:00", "offset": 0.0})}})
            targets["WireMock"] = (wm, "/bench/clock")
        heap = [jvm_live_heap_mib(wm.proc.pid)] if wm is not None else []  # before the baseline: GC shrinks
        series = {name: [{"requests": 0, "rss_mib": server.rss() / MIB}] for name, (server, _) in targets.items()}
        rates: dict[str, list[float]] = {name: [] for name in targets}
        done = dict.fromkeys(targets, 0)
        per_chunk = n // chunks
        for c in range(chunks):
            order = list(targets.items()) if c % 2 == 0 else list(reversed(targets.items()))
            for name, (server, path) in order:
                out = self.drive(http_spec(server.ports["http"], "POST", path, body, headers, count=per_chunk,
                                           time_limit=240.0, connections=self.s.memory_connections),
                                 f"memory {name}")
                done[name] += out["done"]
                rates[name].append(out["rate"])
                series[name].append({"requests": done[name], "rss_mib": server.rss() / MIB})
            log(f"memory chunk {c + 1}/{chunks}: " +
                ", ".join(f"{k} {v[-1]['rss_mib']:.1f} MiB after {v[-1]['requests']:,}" for k, v in series.items()))
        health = call_json(bench.ports["http"], "GET", "/_bench/health")
        journals = {"mockbench": health["journal"]}
        if wm is not None:
            meta = call_json(wm.ports["http"], "GET", "/__admin/requests?limit=1")
            journals["WireMock"] = {"count": meta.get("meta", {}).get("total")}
        if wm is not None:
            heap.append(jvm_live_heap_mib(wm.proc.pid))
        self.details["memory"] = {"series": series, "journal": journals, "requests": done,
                                  "wiremock_live_heap_mib": heap}
        ours = series["mockbench"]
        theirs = series.get("WireMock")
        self.add(label, "WireMock", "MiB", "lower", [ours[-1]["rss_mib"]], [theirs[-1]["rss_mib"]] if theirs else None,
                 self.missing.get("WireMock"), detail="mockbench: POST /_bench/clock (journaled); WireMock: a stub")
        self.add(f"RSS growth over {n:,} requests", "WireMock", "MiB", "lower",
                 [ours[-1]["rss_mib"] - ours[0]["rss_mib"]],
                 [theirs[-1]["rss_mib"] - theirs[0]["rss_mib"]] if theirs else None, self.missing.get("WireMock"))
        self.add(f"small journaled request, {self.s.memory_connections} conn", "WireMock", "req/s", "higher",
                 rates["mockbench"], rates.get("WireMock"), self.missing.get("WireMock"),
                 detail="the memory figure's chunks, each a round")

    # (10) slow clients ------------------------------------------------------------------------------------------
    def fig_slow(self) -> None:
        """Normal clients while slow ones hold connections (issue 21 point 2): mockbench alone (benchmarks/
        slow_clients.py), on the session's bench; rounds alternate no load and 500 idle + 100 slowloris
        connections open; printed under the table."""
        from benchmarks import slow_clients

        port = self.session["mockbench"].ports["http"]
        quick = self.s is not FULL
        rounds, requests = (3, 40) if quick else (5, 100)
        alone: list[dict] = []
        loaded: list[dict] = []
        for r in range(rounds):
            order = [(alone, 0, 0), (loaded, slow_clients.IDLE, slow_clients.SLOWLORIS)]
            for into, idle, slowloris in (order if r % 2 == 0 else order[::-1]):
                into.append(slow_clients.measure(port, idle, slowloris, requests))
        self.details["slow_clients"] = {"alone": alone, "loaded": loaded, "requests_per_round": requests}

    # (4) reset ---------------------------------------------------------------------------------------------
    RESETS = {"mockbench": ("POST", "/_bench/reset"), "WireMock": ("POST", "/__admin/reset"),
              "moto": ("POST", "/moto-api/reset"), "mountebank": ("DELETE", "/imposters")}

    def fig_growth(self) -> None:
        """Worlds of 100,000 (issue 21, point 6): mockbench alone, on benches of its own (benchmarks/growth.py);
        its figures are printed under the table."""
        from benchmarks import growth

        quick = self.s is not FULL
        n, journal = (10_000, 10_000) if quick else (100_000, 40_000)
        results: dict = {"patients": n, "professionals": n, "journal": journal}
        workdir = self.root / "growth"
        proc, ports = growth.start(workdir / "world")
        try:
            growth.world_figures(ports["http"], n, n, 5 if quick else 20, results, say=log)
        finally:
            growth.stop(proc)
        growth.journal_figures(workdir / "journal", journal, 5 if quick else 20, results, say=log)
        self.details["growth"] = results

    def fig_reset(self) -> None:
        present = [name for name in self.RESETS if name in self.session]
        medians: dict[str, list[float]] = {name: [] for name in present}
        for r in range(self.s.reset_rounds):
            shift = r % len(present)
            for name in present[shift:] + present[:shift]:
                method, path = self.RESETS[name]
                out = self.drive(http_spec(self.session[name].ports["http"], method, path, count=self.s.reset_calls,
                                           warmup=1, time_limit=60.0), f"reset {name}")
                medians[name].append(out["p50_ms"])
        self.details["reset_p50_ms"] = medians
        for peer in ("WireMock", "mountebank", "moto"):
            method, path = self.RESETS[peer]
            self.add("reset", peer, "ms", "lower", medians["mockbench"], medians.get(peer),
                     self.missing.get(peer), detail=f"POST /_bench/reset vs {method} {path}, "
                                                    f"median of {self.s.reset_calls} per round")

    # (5) the DMP door: SOAP TD3.1 -----------------------------------------------------------------------------
    def fig_soap(self) -> None:
        from benchmarks import dmp

        bench, wm = self.session["mockbench"], self.session.get("WireMock")
        port = bench.ports["http"]
        call_json(port, "POST", "/_bench/scenarios", dmp.world(10).encode())
        patient = call_json(port, "GET", "/_bench/patients/alice")
        pro = call_json(port, "GET", "/_bench/professionals")[0]
        idnst = call_json(port, "GET", "/_bench/structures")[0]["idnst"]
        query = dmp.envelope(dmp.find_documents(patient), dmp.signed_vihf(bench.workdir / "state", pro, idnst, patient),
                             "urn:ihe:iti:2007:RegistryStoredQuery")
        path = "/si-dmp-server/v2/services/registry"
        headers = {"Content-Type": "application/soap+xml"}
        status, answer_headers, answer = call(port, "POST", path, query, headers)
        if status != 200 or b"Failure" in answer[:2000]:
            raise RuntimeError(f"mockbench did not answer TD3.1: {status} {answer[:300]!r}")
        size = f"{len(answer) / 1024:.0f} KiB"
        targets = {"mockbench": port}
        if wm is not None:  # WireMock serves the very bytes mockbench answered
            call_json(wm.ports["http"], "POST", "/__admin/mappings", {
                "request": {"method": "POST", "url": path},
                "response": {"status": 200, "base64Body": base64.b64encode(answer).decode(),
                             "headers": {"Content-Type": answer_headers.get("content-type", "")}}})
            targets["WireMock"] = wm.ports["http"]
        self.details["soap"] = {"request_bytes": len(query), "answer_bytes": len(answer),
                                "content_type": answer_headers.get("content-type")}
        self._throughput("soap", targets, lambda p, conns: http_spec(
            p, "POST", path, query, headers, count=self.s.soap_count, warmup=5, time_limit=self.s.round_time_s,
            connections=conns), f"SOAP TD3.1, 10 entries ({size})", "req/s", "WireMock")
        if wm is not None:  # what WireMock's journal now holds: every request, and every 54 KiB answer
            self.details["soap"]["wiremock_rss_mib"] = wm.rss() / MIB
            self.details["soap"]["wiremock_live_heap_mib"] = jvm_live_heap_mib(wm.proc.pid)

    # (6) the PFI door: MLLP MDM^T02 ---------------------------------------------------------------------------
    def fig_mllp(self) -> None:
        from benchmarks import pfi

        bench, mb = self.session["mockbench"], self.session.get("mountebank")
        port = bench.ports["http"]
        call_json(port, "POST", "/_bench/scenarios", pfi.WORLD.encode())
        patient = call_json(port, "GET", "/_bench/patients/alice")
        pro = call_json(port, "GET", "/_bench/professionals")[0]
        finess = call_json(port, "GET", "/_bench/structures")[0]["finess"]
        b64 = base64.b64encode(pfi.make_cda(patient, pro)).decode()
        template = pfi.message("@@N@@", patient, pro, finess, b64)
        ack = mllp_exchange(bench.ports["mllp"], template.replace(b"@@N@@", b"999999999"))
        if b"MSA|AA|" not in ack:
            raise RuntimeError(f"mockbench did not accept the MDM^T02: {ack[:300]!r}")
        size = f"{len(template) / 1024:.0f} KiB"
        targets = {"mockbench": bench.ports["mllp"]}
        if mb is not None:  # a TCP imposter answering mockbench's own ACK once the frame's FS CR arrived
            imposter_port = procs.free_port()
            call_json(mb.ports["http"], "POST", "/imposters", {
                "port": imposter_port, "host": HOST, "protocol": "tcp", "mode": "binary", "recordRequests": False,
                "endOfRequestResolver": {"inject": "function (requestData) { var n = requestData.length; "
                                                   "return n >= 2 && requestData[n - 2] === 0x1c && "
                                                   "requestData[n - 1] === 0x0d; }"},
                "stubs": [{"responses": [{"is": {"data": base64.b64encode(b"\x0b" + ack + b"\x1c\r").decode()}}]}]})
            targets["mountebank"] = imposter_port
        self.details["mllp"] = {"message_bytes": len(template), "ack_bytes": len(ack)}

        def spec(p: int, conns: int) -> dict:
            first = self.mllp_next
            self.mllp_next += self.s.mllp_count + 5
            return {"kind": "mllp", "port": p, "template_b64": base64.b64encode(template).decode(), "first": first,
                    "count": self.s.mllp_count, "warmup": 5, "time_limit": self.s.round_time_s,
                    "connections": conns, "expect": "MSA|AA|"}

        self._throughput("mllp", targets, spec, f"MLLP MDM^T02 ({size}), ACK awaited", "msg/s", "mountebank")

    # (7) the MSSanté door: SMTP with an XDM package ----------------------------------------------------------
    def fig_smtp(self) -> None:
        import smtplib

        from benchmarks import mss

        bench, md = self.session["mockbench"], self.session.get("MailDev")
        port = bench.ports["http"]
        call_json(port, "POST", "/_bench/scenarios", mss.WORLD.encode())
        message = mss.message()
        client = smtplib.SMTP(HOST, bench.ports["smtp"], timeout=30)   # once, checked: accepted, no XDM error
        client.login(mss.SENDER, "mockbench")
        client.sendmail(mss.SENDER, [mss.RECIPIENT], message)
        client.quit()
        submit = call_json(port, "GET", "/_bench/journal?channel=mss&operation=SUBMIT")[-1]
        bad = [f for f in submit["findings"] if f["severity"] == "error"]
        if submit["verdict"] != "accepted" or bad or not submit["document"]:
            raise RuntimeError(f"mockbench did not take the XDM mail cleanly: {submit['verdict']} {bad}")
        targets = {"mockbench": bench.ports["smtp"]}
        if md is not None:
            targets["MailDev"] = md.ports["smtp"]
        size = f"{len(message) / 1000:.0f} KB mail, {mss.PACKAGE_BYTES / 1000:.0f} KB IHE_XDM.ZIP"
        self.details["smtp"] = {"message_bytes": len(message), "package_bytes": mss.PACKAGE_BYTES}
        login = {"mockbench": [mss.SENDER, "mockbench"], "MailDev": None}

        def spec(p: int, conns: int) -> dict:
            name = "mockbench" if p == bench.ports["smtp"] else "MailDev"
            return {"kind": "smtp", "port": p, "message_b64": base64.b64encode(message).decode(),
                    "mail_from": mss.SENDER, "rcpt_to": mss.RECIPIENT, "login": login[name],
                    "count": self.s.soap_count, "warmup": 3, "time_limit": self.s.round_time_s, "connections": conns}

        self._throughput("smtp", targets, spec, f"SMTP MSSanté mail ({size}), 250 awaited", "msg/s", "MailDev",
                         connections=(1,))

    # (8) the OIDC door: complete authorization code flows ----------------------------------------------------
    def fig_oidc(self) -> None:
        from benchmarks import oidc

        bench = self.session["mockbench"]
        port = bench.ports["http"]
        call_json(port, "POST", "/_bench/scenarios", oidc.WORLD.encode())
        login_hint = call_json(port, "GET", "/_bench/professionals")[0]["id"]
        base, authorize, token, userinfo = oidc.ISSUERS["psc"]
        common = {"kind": "oidc", "client_id": "mockbench", "client_secret": "mockbench-secret",
                  "redirect_uri": "http://127.0.0.1/callback", "login_hint": login_hint}
        flows = {"mockbench": {**common, "port": port, "authorize": authorize, "token": base + token,
                               "userinfo": base + userinfo, "scope": "openid scope_all"}}
        peer = "oidc-provider"
        if peer not in self.missing:
            try:
                server = self.server(procs.oidc_provider, "oidc-provider")
                server.start()
                self.session[peer] = server
                flows[peer] = {**common, "port": server.ports["http"], "authorize": "/auth", "token": "/token",
                               "userinfo": "/me", "scope": "openid profile"}
            except Unavailable as exc:
                self.missing[peer] = f"did not start: {exc}"
        for name, flow in flows.items():  # one flow each, checked, before any timing
            out = drive({**flow, "count": 1, "time_limit": 30.0})
            if out["errors"]:
                raise RuntimeError(f"{name}: the code flow failed: {out['first_error']}")
        self.details["oidc"] = {"login_hint": login_hint, "mockbench_issuer": base,
                                "scope": {n: f["scope"] for n, f in flows.items()}}
        by_port = {f["port"]: f for f in flows.values()}
        self._throughput("oidc", {n: f["port"] for n, f in flows.items()}, lambda p, conns: {
            **by_port[p], "count": self.s.soap_count, "warmup": 5, "time_limit": self.s.round_time_s,
            "connections": conns}, "OIDC code flow (authorize, PKCE S256 -> code -> token -> userinfo)", "flow/s",
            peer, connections=self.s.oidc_connections)

    def _throughput(self, key: str, targets: dict[str, int], make_spec: Callable[[int, int], dict], label: str,
                    unit: str, peer: str, connections: tuple[int, ...] | None = None) -> None:
        results: dict[str, dict[str, list]] = {}
        served = dict.fromkeys(targets, 0)
        for name, port in targets.items():  # untimed: warms caches and the JVM's JIT before the rounds
            warm = {**make_spec(port, max(connections or self.s.connections)), "time_limit": self.s.warmup_s,
                    "warmup": 0}
            out = self.drive(warm, f"{key} {name} warm-up")
            served[name] += out["done"] + out["errors"]
        for conns in connections or self.s.connections:
            rates: dict[str, list[float]] = {name: [] for name in targets}
            p50: dict[str, list[float]] = {name: [] for name in targets}
            cpu: dict[str, list[float]] = {name: [] for name in targets}         # server, ms per request
            load_cpu: dict[str, list[float]] = {name: [] for name in targets}    # load process, ms per request
            for r in range(self.s.rounds):
                order = list(targets.items()) if r % 2 == 0 else list(reversed(targets.items()))
                for name, port in order:
                    server = self.session[name]
                    spec = make_spec(port, conns)
                    before = server.cpu_seconds()
                    out = self.drive(spec, f"{key} {name} {conns} conn")
                    handled = out["done"] + out["errors"] + spec.get("warmup", 0)
                    served[name] += handled
                    cpu[name].append((server.cpu_seconds() - before) / handled * 1000)
                    load_cpu[name].append(out["cpu_s"] / out["done"] * 1000)
                    rates[name].append(out["rate"])
                    p50[name].append(out["p50_ms"])
            log(f"{key}, {conns} connection(s): " +
                ", ".join(f"{n} {statistics.median(v):,.0f} {unit}" for n, v in rates.items()))
            results[f"{conns}_conn"] = {"rate": rates, "p50_ms": p50, "server_cpu_ms_per_request": cpu,
                                        "load_cpu_ms_per_request": load_cpu}
            self.add(f"{label}, {conns} conn", peer, unit, "higher", rates["mockbench"], rates.get(peer),
                     self.missing.get(peer))
            if conns == 1:
                self.add(f"{label}, 1 conn, p50 latency", peer, "ms", "lower", p50["mockbench"], p50.get(peer),
                         self.missing.get(peer))
        self.details[key] = {**self.details.get(key, {}), "rounds": results, "requests_served": served}


def jvm_live_heap_mib(pid: int) -> float | None:
    """The JVM's heap in use right after a full GC (jcmd GC.run, then GC.heap_info): what it retains."""
    if shutil.which("jcmd") is None:
        return None
    try:
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, text=True, timeout=60, check=True)
        info = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60,
                              check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"heap\s+total \d+K, used (\d+)K", info)
    return int(found.group(1)) / 1024 if found else None


def mllp_exchange(port: int, message: bytes, timeout: float = 30.0) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(b"\x0b" + message + b"\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"the MLLP connection closed before the ACK: {data[:200]!r}")
            data += chunk
    return data[1:-2]


def figure_failed(harness: Harness, figure: str, exc: Exception) -> None:
    """A figure that failed midway (a server died, a load failed): a row says so, the run goes on."""
    log(f"{figure} failed: {exc}")
    why = f"{type(exc).__name__}: {exc}"
    harness.details.setdefault("failures", {})[figure] = why
    harness.rows.append(Row(figure=f"{figure} (figure failed)", peer="-", unit="", better="", ours=None,
                            theirs=None, note=f"failed: {' '.join(why.split())[:300]}"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s: Settings = args.settings
    wanted = args.only or list(FIGURES)
    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")

    def stop_on_signal(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the finally below: every server is stopped

    signal.signal(signal.SIGTERM, stop_on_signal)
    if args.no_install:
        status = {p: None if (procs.NODE_MODULES / p / "package.json").exists() else "not installed"
                  for p in install.NODE_PEERS}
        status["moto"] = None if (procs.VENV_DIR / "bin" / "moto_server").exists() else "not installed"
    else:
        status = install.ensure_peers(log)
    install_s = time.perf_counter() - started
    log("peers: " + ", ".join(f"{p} {'ok' if not why else why}" for p, why in status.items()) +
        f" ({install_s:.1f} s)")
    workroot = Path(tempfile.mkdtemp(prefix="mockbench-harness-"))
    harness = Harness(s, status, workroot)
    timings: dict[str, float] = {}
    try:
        if "startup" in wanted:
            t0 = time.perf_counter()
            harness.fig_startup()
            timings["startup"] = time.perf_counter() - t0
        if set(wanted) - {"startup"}:
            harness.start_session()
            for name in FIGURES[1:]:
                if name not in wanted:
                    continue
                t1 = time.perf_counter()
                try:
                    getattr(harness, f"fig_{name}")()
                except Exception as exc:  # any failure: a row says so, and the next figure runs
                    figure_failed(harness, name, exc)
                timings[name] = time.perf_counter() - t1
                harness.details.setdefault("rss_after_mib", {})[name] = harness.rss_mib()
    except Unavailable as exc:
        log(f"mockbench itself did not start: {exc}")
        return 1
    finally:
        harness.close()
        shutil.rmtree(workroot, ignore_errors=True)
    for name, why in LATER:
        harness.rows.append(Row(figure=name, peer=why[0], unit="", better="", ours=None, theirs=None,
                                note=why[1]))
    duration = time.perf_counter() - started
    meta = {
        "mode": s.mode, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "duration_s": round(duration, 1),
        "install_s": round(install_s, 1), "figure_s": {k: round(v, 1) for k, v in timings.items()},
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "peers": install.versions(), "settings": s.__dict__,
        "load": "benchmarks/harness/driver.py (Python asyncio, a separate process); wrk "
                + (f"found at {shutil.which('wrk')} but not used" if shutil.which("wrk") else "not installed"),
        "driver_errors": harness.driver_errors,
        "mode_note": None if s is FULL else (
            f"Quick mode: the memory figure sends {s.memory_requests:,} requests, not {FULL.memory_requests:,}; "
            f"{s.startup_rounds} start-ups per system, not {FULL.startup_rounds}; {s.rounds} throughput rounds of "
            f"{s.round_time_s:g} s, not {FULL.rounds} of {FULL.round_time_s:g} s."),
    }
    text = table(harness.rows, meta, harness.details)
    print(text)
    out = args.json or RESULTS_DIR / f"harness-{s.mode}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": [r.to_dict() for r in harness.rows],
                               "details": harness.details, "table": text}, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out.relative_to(ROOT) if out.is_absolute() and out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
