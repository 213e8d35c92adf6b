"""Worlds of 100,000 (issue 21, point 6): what a large world costs the control API, reset, the journal and the
Annuaire's FHIR directory. mockbench alone (no peer has these), reported, not asserted.

    python benchmarks/growth.py [--quick] [--patients N] [--professionals N] [--json FILE]

The bench runs as a separate process on loopback (`mockbench up`, free ports, its own state folder); the
world is a scenario of a few lines posted to /_bench/scenarios: `world.generate` with N patients, N
professionals and N/100 structures. Then, each from this process over one keep-alive HTTP connection:

- the control API's lists: a page of 100 patients at the start and at the end (`?offset=&limit=`, with the
  total), and the whole list at once (the bare array, as before pagination);
- the Annuaire (FHIR, /fhir/v2): a practitioner read by id, searches by identifier, by family name, by
  name (`:contains`), and the roles of one practitioner, each after a first search built the directory;
- reset at that size: `POST /_bench/reset` right after the load (the old rows are then deleted in the
  background), the latency of small requests meanwhile, and resets of the emptied world;
- the journal: `GET /_bench/findings` once M entries are journaled, and the slowest of M small journaled
  requests (`POST /_bench/clock {"advance": "0s"}`) with the journal bounded to M/2 entries, so that the trim
  runs often during the run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_process import write_json  # noqa: E402

KEY = {"ESANTE-API-KEY": "mockbench"}


def start(tmp: Path, env: dict | None = None):
    import os
    import subprocess

    port_file = tmp / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--http-port", "0", "--mllp-port", "0",
                             "--smtp-port", "0", "--imap-port", "0", "--state", str(tmp / "state"),
                             "--port-file", str(port_file), "--quiet"], cwd=ROOT,
                            env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the bench did not start")
        time.sleep(0.02)
    return proc, json.loads(port_file.read_text())


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except Exception:
        proc.kill()


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - t0
        if response.status >= 400:
            raise SystemExit(f"{method} {path}: {response.status} {data[:300]!r}")
        return elapsed, data

    def timed(self, path: str, n: int, headers: dict | None = None, method: str = "GET",
              first: bool = False) -> dict:
        """n calls; with `first`, one call before them, reported apart (an index built on first use)."""
        before = self.call(method, path, headers=headers)[0] if first else None
        times = sorted(self.call(method, path, headers=headers)[0] for _ in range(n))
        out = {"median_ms": statistics.median(times) * 1000, "max_ms": times[-1] * 1000, "n": n}
        if before is not None:
            out["first_ms"] = before * 1000
        return out


def fmt(d: dict) -> str:
    return f"median {d['median_ms']:.1f} ms, max {d['max_ms']:.1f} ms ({d['n']} calls)"


def world_figures(port: int, patients: int, professionals: int, rounds: int, out: dict, say=print) -> None:
    c = Client(port)
    scenario = (f"id: growth\ntitle: Grand monde\nseed: 5\nworld:\n  generate: {{structures: {max(1, professionals // 100)}, "
                f"professionals: {professionals}, patients: {patients}}}\n")
    seconds, _ = c.call("POST", "/_bench/scenarios", scenario.encode(), {"Content-Type": "application/yaml"})
    out["load_s"] = seconds
    say(f"load: world.generate with {patients:,} patients, {professionals:,} professionals "
          f"({len(scenario)} bytes of YAML): {seconds:.1f} s")

    for label, path in (("first page", "/_bench/patients?offset=0&limit=100"),
                        ("last page", f"/_bench/patients?offset={patients - 100}&limit=100"),
                        ("professionals page", "/_bench/professionals?offset=0&limit=100")):
        out[f"list_{label}"] = r = c.timed(path, rounds)
        say(f"GET {path}: {fmt(r)}")
    elapsed, data = c.call("GET", "/_bench/patients")
    out["list_bare_ms"] = elapsed * 1000
    say(f"GET /_bench/patients (every patient, the bare array): {elapsed * 1000:.0f} ms, {len(data) / 1e6:.1f} MB")

    _, page = c.call("GET", f"/_bench/professionals?offset={professionals // 2}&limit=1")
    pro = json.loads(page)["items"][0]
    elapsed, data = c.call("GET", f"/fhir/v2/Practitioner?identifier={pro['idnps']}", headers=KEY)
    out["fhir_first_ms"] = elapsed * 1000
    say(f"FHIR: the first search (the directory index built): {elapsed * 1000:.0f} ms")
    bundle = json.loads(data)
    practitioner = next(e["resource"]["id"] for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Practitioner")
    family = pro["family_name"]
    for label, path in (
            ("read by id", f"/fhir/v2/Practitioner/{practitioner}"),
            ("search by identifier", f"/fhir/v2/Practitioner?identifier={pro['idnps']}"),
            ("search by family", f"/fhir/v2/Practitioner?family={family}"),
            ("search by name:contains", f"/fhir/v2/Practitioner?name:contains={family[:4]}"),
            ("roles of a practitioner", f"/fhir/v2/PractitionerRole?practitioner=Practitioner/{practitioner}")):
        out[f"fhir_{label}"] = r = c.timed(path, rounds, KEY, first=True)
        say(f"FHIR {label} ({path.split('?')[0]}): first call {r['first_ms']:.0f} ms (its index built), then "
            f"{fmt(r)}")

    # Reset at that size, then small requests while the old rows are deleted in the background.
    elapsed, _ = c.call("POST", "/_bench/reset")
    out["reset_full_ms"] = elapsed * 1000
    say(f"POST /_bench/reset of that world: {elapsed * 1000:.1f} ms")
    lat = []
    t_end = time.perf_counter() + 5
    while time.perf_counter() < t_end:
        lat.append(c.call("GET", "/_bench/patients?limit=1")[0])
    lat.sort()
    out["during_reap"] = {"median_ms": statistics.median(lat) * 1000, "max_ms": lat[-1] * 1000, "n": len(lat),
                          "p99_ms": lat[int(len(lat) * 0.99)] * 1000}
    say(f"  small requests in the 5 s after it (old rows deleted meanwhile): {fmt(out['during_reap'])}, "
          f"p99 {out['during_reap']['p99_ms']:.1f} ms")
    out["reset_empty"] = r = c.timed("/_bench/reset", rounds, method="POST")
    say(f"POST /_bench/reset of the emptied world: {fmt(r)}")


def journal_figures(tmp: Path, entries: int, rounds: int, out: dict, say=print) -> None:
    proc, ports = start(tmp, {"MOCKBENCH_JOURNAL_MAX_ENTRIES": str(entries // 2)})
    try:
        lat: list[float] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            c = Client(ports["http"])
            mine = [c.call("POST", "/_bench/clock", b'{"advance": "0s"}',
                           {"Content-Type": "application/json"})[0] for _ in range(n)]
            with lock:
                lat.extend(mine)

        threads = [threading.Thread(target=worker, args=(entries // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lat.sort()
        out["journaled"] = {"median_ms": statistics.median(lat) * 1000, "max_ms": lat[-1] * 1000, "n": len(lat),
                            "p9999_ms": lat[int(len(lat) * 0.9999)] * 1000}
        say(f"{len(lat):,} journaled requests (4 connections), journal bounded to {entries // 2:,} entries: "
              f"{fmt(out['journaled'])}, p99.99 {out['journaled']['p9999_ms']:.1f} ms")
        c = Client(ports["http"])
        out["findings"] = r = c.timed("/_bench/findings", rounds)
        say(f"GET /_bench/findings over a journal of {entries // 2:,} entries or so: {fmt(r)}")
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 of each, fewer calls")
    parser.add_argument("--patients", type=int)
    parser.add_argument("--professionals", type=int)
    parser.add_argument("--journal", type=int, help="journaled requests (default 40,000; quick 10,000)")
    parser.add_argument("--only", default="world,journal")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else 100_000
    rounds = 5 if args.quick else 20
    journal = args.journal or (10_000 if args.quick else 40_000)
    results: dict = {"patients": args.patients or n, "professionals": args.professionals or n, "journal": journal}
    with tempfile.TemporaryDirectory() as tmp:
        if "world" in args.only:
            proc, ports = start(Path(tmp) / "w")
            try:
                world_figures(ports["http"], results["patients"], results["professionals"], rounds, results)
            finally:
                stop(proc)
        if "journal" in args.only:
            journal_figures(Path(tmp) / "j", journal, rounds, results)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
