#!/usr/bin/env python3
"""Core performance figures of the bench, with the bench as a separate process.

    python benchmarks/core.py [--quick] [--json FILE]

(a) ready: time from spawning `python -m mockbench up ... --scenario hidden-documents` to its port file
    (the readiness signal), median, min and max of N runs (5 with --quick, 15 otherwise);
(b) reset: POST /_bench/reset timed by the client (200 calls), and Bench.reset() timed in-process (500 calls);
(c) memory: resident set size of the idle bench after start, and of a bench whose journal (bounded to 10,000
    entries) receives 100,000 entries of 2,000 bytes, sampled every 10,000 entries.

It reports against the targets (ready < 0.5 s, reset < 5 ms, memory flat once the journal is full) and never
fails on them. Everything listens on 127.0.0.1 and every wait is bounded. Run it with the project's Python
(.venv/bin/python), which has mockbench and psutil installed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

try:
    import psutil
except ImportError:  # pragma: no cover - told to the user
    sys.exit("benchmarks/core.py needs psutil: run it with .venv/bin/python (make install)")

READY_TIMEOUT = 20.0      # seconds for a port file to appear
STOP_TIMEOUT = 10.0       # seconds for a bench to exit after SIGTERM
HTTP_TIMEOUT = 5.0        # seconds per HTTP call
JOURNAL_TIMEOUT = 240.0   # seconds for the 100,000-entry journal run

TARGET_READY_S = 0.5
TARGET_RESET_MS = 5.0
FLAT_TOLERANCE = 0.05     # RSS at 100k entries within 5 % of RSS at 30k: flat

JOURNAL_ENTRIES = 100_000
JOURNAL_MAX = 10_000
JOURNAL_SAMPLE_EVERY = 10_000
HTTP_RESETS = 200
INPROCESS_RESETS = 500

SCENARIO = "hidden-documents"
MIB = 1024 * 1024


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a bench process: none of the caller's MOCKBENCH_* settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKBENCH_")}
    env.update(extra)
    return env


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# A bench process ---------------------------------------------------------------------------------------
class BenchProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port_file = workdir / "ports.json"
        self.argv = [sys.executable, "-m", "mockbench", "up", "--host", "127.0.0.1",
                     "--http-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0",
                     "--port-file", str(self.port_file), "--state", str(workdir / "state"),
                     "--scenario", SCENARIO]
        self.proc: subprocess.Popen | None = None
        self._err = None
        self.ports: dict[str, int] = {}

    def start(self) -> float:
        """Spawn the bench; return the seconds until its port file exists."""
        self._err = open(self.workdir / "stderr", "wb")  # the bench's log; closed in stop()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=self._err,
                                     cwd=self.workdir, env=child_env())
        deadline = t0 + READY_TIMEOUT
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bench exited with {self.proc.returncode} before it was ready: "
                                   f"{self.stderr()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no port file after {READY_TIMEOUT} s: {self.stderr()}")
            time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        self.ports = json.loads(self.port_file.read_text(encoding="utf-8"))
        return elapsed

    def stderr(self) -> str:
        path = self.workdir / "stderr"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> int | None:
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        elif self.proc is not None:
            code = self.proc.returncode
        if self._err is not None:
            self._err.close()
            self._err = None
        return code


class Client:
    """One keep-alive HTTP connection to the bench, reopened if the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)

    def call(self, method: str, path: str) -> bytes:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=b"" if method == "POST" else None)
                response = self.conn.getresponse()
                body = response.read()
                if response.status >= 400:
                    raise RuntimeError(f"{method} {path}: {response.status} {body[:200]!r}")
                return body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def summary(values: list[float], scale: float = 1.0) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered) * scale, "min": ordered[0] * scale,
            "max": ordered[-1] * scale, "p95": p95 * scale, "n": len(ordered)}


# (a) ready ---------------------------------------------------------------------------------------------
def measure_ready(runs: int, root: Path) -> dict:
    times, exit_codes = [], []
    for i in range(runs):
        bench = BenchProcess(Path(tempfile.mkdtemp(prefix=f"ready{i}-", dir=root)))
        try:
            times.append(bench.start())
        finally:
            exit_codes.append(bench.stop())
    log(f"ready: {runs} runs, median {statistics.median(times) * 1000:.0f} ms")
    return {**summary(times), "unit": "s", "exit_codes_on_sigterm": exit_codes}


# (b) reset over HTTP, and (c) idle memory of the same process -------------------------------------------
def measure_http(root: Path) -> dict:
    bench = BenchProcess(Path(tempfile.mkdtemp(prefix="http-", dir=root)))
    try:
        bench.start()
        client = Client(bench.ports["http"])
        client.call("GET", "/_bench/health")
        time.sleep(0.5)  # let start-up settle before sampling the idle process
        idle_rss = psutil.Process(bench.proc.pid).memory_info().rss
        for _ in range(5):
            client.call("POST", "/_bench/reset")  # warm-up
        times = []
        for _ in range(HTTP_RESETS):
            t0 = time.perf_counter()
            client.call("POST", "/_bench/reset")
            times.append(time.perf_counter() - t0)
        after_rss = psutil.Process(bench.proc.pid).memory_info().rss
        client.close()
    finally:
        bench.stop()
    log(f"reset over HTTP: median {statistics.median(times) * 1000:.2f} ms")
    return {"reset_http_ms": {**summary(times, 1000), "unit": "ms"},
            "idle_rss_mib": idle_rss / MIB, "rss_after_resets_mib": after_rss / MIB}


# (b) reset in-process ----------------------------------------------------------------------------------
def measure_inprocess_reset() -> dict:
    from mockbench.bench import Bench
    from mockbench.config import Config

    bench = Bench(Config(host="127.0.0.1", http_port=0, mllp_port=0, smtp_port=0, imap_port=0))
    try:
        bench.start()
        for _ in range(5):
            bench.reset()  # warm-up
        times = []
        for _ in range(INPROCESS_RESETS):
            t0 = time.perf_counter()
            bench.reset()
            times.append(time.perf_counter() - t0)
    finally:
        bench.close()
    log(f"reset in-process: median {statistics.median(times) * 1000:.2f} ms")
    return {**summary(times, 1000), "unit": "ms"}


# (c) memory with a full journal ------------------------------------------------------------------------
JOURNAL_CHILD = textwrap.dedent("""
    import json, sys, time
    import psutil
    from mockbench.bench import Bench
    from mockbench.config import load

    total, every = int(sys.argv[1]), int(sys.argv[2])
    config = load(flags={"host": "127.0.0.1", "http_port": 0, "mllp_port": 0, "smtp_port": 0,
                         "imap_port": 0})
    me = psutil.Process()
    bench = Bench(config)
    bench.start()
    world, journal = bench.world, bench.world.journal

    def db_bytes():
        return sum(p.stat().st_size for p in bench.state_dir.glob("world.db*"))

    def sample(n):
        with world.transaction() as tx:
            stats = journal.stats(tx)
        print(json.dumps({"entries": n, "rss": me.memory_info().rss, "elapsed": time.perf_counter() - t0,
                          "journal": stats, "db_bytes": db_bytes()}), flush=True)

    t0 = time.perf_counter()
    sample(0)
    raw = b"x" * 2000
    try:
        for i in range(1, total + 1):
            with world.transaction() as tx:
                journal.append(tx, "dmp", "TD3.1", raw=raw)
            if i % every == 0:
                sample(i)
        print(json.dumps({"max_entries": config.journal_max_entries}), flush=True)
    finally:
        bench.close()
""")


def measure_journal_memory() -> dict:
    argv = [sys.executable, "-c", JOURNAL_CHILD, str(JOURNAL_ENTRIES), str(JOURNAL_SAMPLE_EVERY)]
    env = child_env(MOCKBENCH_JOURNAL_MAX_ENTRIES=str(JOURNAL_MAX))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=JOURNAL_TIMEOUT, env=env,
                                cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the journal run did not finish in {JOURNAL_TIMEOUT} s") from None
    if result.returncode != 0:
        raise RuntimeError(f"the journal run failed ({result.returncode}): {result.stderr[-2000:]}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    series = [line for line in lines if "entries" in line]
    max_entries = next((line["max_entries"] for line in lines if "max_entries" in line), None)
    by_n = {s["entries"]: s for s in series}
    at_30k, at_100k = by_n[30_000]["rss"], by_n[JOURNAL_ENTRIES]["rss"]
    growth = (at_100k - at_30k) / at_30k
    total_s = series[-1]["elapsed"]
    log(f"journal: {JOURNAL_ENTRIES} entries in {total_s:.1f} s, RSS {at_30k / MIB:.1f} -> {at_100k / MIB:.1f} MiB")
    return {
        "journal_max_entries": max_entries,
        "series": [{"entries": s["entries"], "rss_mib": round(s["rss"] / MIB, 2),
                    "elapsed_s": round(s["elapsed"], 2), "journal_count": s["journal"]["count"],
                    "journal_dropped": s["journal"]["dropped"], "db_mib": round(s["db_bytes"] / MIB, 2)}
                   for s in series],
        "rss_30k_mib": at_30k / MIB,
        "rss_100k_mib": at_100k / MIB,
        "growth_30k_to_100k": growth,
        "flat": growth <= FLAT_TOLERANCE,
        "appends_per_s": JOURNAL_ENTRIES / total_s,
    }


# Report ------------------------------------------------------------------------------------------------
def table(results: dict) -> str:
    ready, http, inproc, mem = (results["ready_s"], results["http"]["reset_http_ms"], results["reset_inprocess_ms"],
                                results["journal_memory"])

    def yes(ok: bool) -> str:
        return "yes" if ok else "NO"

    rows = [
        ("figure", "value", "target", "met"),
        (f"ready (spawn -> port file), {ready['n']} runs",
         f"median {ready['median']:.3f} s (min {ready['min']:.3f}, max {ready['max']:.3f})",
         f"< {TARGET_READY_S} s", yes(ready["median"] < TARGET_READY_S)),
        (f"reset, POST /_bench/reset x{http['n']} (client)",
         f"median {http['median']:.2f} ms (p95 {http['p95']:.2f}, max {http['max']:.2f})",
         f"< {TARGET_RESET_MS:g} ms", yes(http["median"] < TARGET_RESET_MS)),
        (f"reset, Bench.reset() x{inproc['n']} (in-process)",
         f"median {inproc['median']:.2f} ms (p95 {inproc['p95']:.2f}, max {inproc['max']:.2f})",
         f"< {TARGET_RESET_MS:g} ms", yes(inproc["median"] < TARGET_RESET_MS)),
        ("RSS, idle bench after start", f"{results['http']['idle_rss_mib']:.1f} MiB", "-", "-"),
        (f"RSS, journal max {mem['journal_max_entries']}: 30k -> 100k entries",
         f"{mem['rss_30k_mib']:.1f} -> {mem['rss_100k_mib']:.1f} MiB ({mem['growth_30k_to_100k']:+.1%})",
         f"flat (<= {FLAT_TOLERANCE:.0%})", yes(mem["flat"])),
        ("journal appends (1 per transaction)", f"{mem['appends_per_s']:.0f} /s", "-", "-"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("RSS series (entries: RSS MiB, journal count, dropped, db MiB):")
    for s in mem["series"]:
        lines.append(f"  {s['entries']:>7}: {s['rss_mib']:7.1f}  {s['journal_count']:>6}  "
                     f"{s['journal_dropped']:>6}  {s['db_mib']:7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 start-up runs instead of 15 (under a minute)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="mockbench-bench-"))
    try:
        results = {
            "ready_s": measure_ready(5 if args.quick else 15, root),
            "http": measure_http(root),
            "reset_inprocess_ms": measure_inprocess_reset(),
            "journal_memory": measure_journal_memory(),
        }
    except RuntimeError as exc:
        print(f"benchmarks/core.py: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["meta"] = {
        "mode": "quick" if args.quick else "full", "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(), "scenario": SCENARIO,
        "duration_s": round(time.perf_counter() - started, 1),
        "targets": {"ready_s": TARGET_READY_S, "reset_ms": TARGET_RESET_MS, "flat_tolerance": FLAT_TOLERANCE},
    }
    print(table(results))
    print(f"\n({results['meta']['mode']} run, {results['meta']['duration_s']} s, Python "
          f"{results['meta']['python']}, {results['meta']['cpus']} CPUs)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
