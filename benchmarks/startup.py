"""Start to ready in alternating pairs, and each door's first request after ready (issue 21, point 5).

    .venv/bin/python -m benchmarks.startup --tree before=/tmp/main-copy --tree after=. [-n 12] [--first]

Each `--tree NAME=DIR` is a folder holding a `mockbench` package (a checkout, or `git archive main mockbench`
unpacked): its code runs with this interpreter and these packages, `python -m mockbench` from that folder.
Each start is `mockbench up --scenario hidden-documents --quiet` on free ports, as the harness's `startup to
ready` row starts it: compiled first (`compileall`), without PYTHONDONTWRITEBYTECODE, ready when the port file
exists. Wall time from spawn to the port file; CPU is the child's user + system time at that moment (/proc),
which this machine's load moves less than wall time. The trees take turns, each pair in the other order.

With `--first`: after ready (and 0.3 s), an SMTP connection and EHLO, twice, then GET /_bench/status, twice:
what a first request waits for what a start left to it.
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("MOCKBENCH_")}


def _smtp(port: int) -> float:
    t = time.perf_counter()
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.ehlo()
    elapsed = time.perf_counter() - t
    client.quit()
    return elapsed


def _http(port: int) -> float:
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_bench/status")
    conn.getresponse().read()
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def start_once(tree: Path, first: bool) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="mockbench-startup-"))
    port_file = work / "ports.json"
    argv = [sys.executable, "-m", "mockbench", "up", "--host", "127.0.0.1", "--http-port", "0", "--mllp-port", "0",
            "--smtp-port", "0", "--imap-port", "0", "--port-file", str(port_file), "--state", str(work / "state"),
            "--quiet", "--scenario", "hidden-documents"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=tree, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not port_file.exists():
            if proc.poll() is not None:
                raise SystemExit(f"{tree}: mockbench up ended: {proc.stderr.read().decode() if proc.stderr else ''}")
            if time.perf_counter() - t0 > READY_TIMEOUT:
                raise SystemExit(f"{tree}: not ready after {READY_TIMEOUT} s")
            time.sleep(0.002)
        out = {"wall": time.perf_counter() - t0}
        with open(f"/proc/{proc.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu"] = (int(fields[11]) + int(fields[12])) / TICK
        if first:
            ports = json.loads(port_file.read_text(encoding="utf-8"))
            time.sleep(0.3)
            out["smtp 1st"], out["smtp 2nd"] = _smtp(ports["smtp"]), _smtp(ports["smtp"])
            out["http 1st"], out["http 2nd"] = _http(ports["http"]), _http(ports["http"])
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=DIR, a folder holding mockbench/")
    parser.add_argument("-n", type=int, default=12, help="starts per tree")
    parser.add_argument("--first", action="store_true", help="also time each door's first requests after ready")
    args = parser.parse_args(argv)
    trees = {name: Path(path).resolve() for name, _, path in (t.partition("=") for t in args.tree)}
    for name, tree in trees.items():
        if not (tree / "mockbench" / "__init__.py").is_file():
            parser.error(f"{name}: no mockbench package in {tree}")
        compileall.compile_dir(str(tree / "mockbench"), quiet=1)
        start_once(tree, False)   # untimed: whatever a first start writes or warms
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    order = list(trees.items())
    for i in range(args.n):
        for name, tree in order if i % 2 == 0 else order[::-1]:
            results[name].append(start_once(tree, args.first))
    for name, runs in results.items():
        parts = []
        for key in runs[0]:
            values = sorted(r[key] for r in runs)
            scale, unit = (1, "s") if key in ("wall", "cpu") else (1000, "ms")
            parts.append(f"{key} {statistics.median(values) * scale:.3g} {unit} "
                         f"({values[0] * scale:.3g} to {values[-1] * scale:.3g})")
        print(f"{name}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
