"""`mockbench up` as a separate process for the standalone figure scripts: free ports, a state folder of its
own, ready when its port file exists, optionally loaded with a scenario."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_bench(tmp: Path, scenario: str | None = None, *, timeout: float = 30.0,
                load_timeout: float = 600.0) -> tuple[subprocess.Popen, dict]:
    port_file = tmp / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--http-port", "0", "--mllp-port", "0",
                             "--smtp-port", "0", "--imap-port", "0", "--state", str(tmp / "state"),
                             "--port-file", str(port_file), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the bench did not start")
        time.sleep(0.02)
    ports = json.loads(port_file.read_text())
    if scenario is not None:
        req = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/_bench/scenarios", method="POST",
                                     data=scenario.encode(), headers={"Content-Type": "application/yaml"})
        urllib.request.urlopen(req, timeout=load_timeout).read()
    return proc, ports


def stop_bench(proc: subprocess.Popen) -> None:
    """SIGTERM, as a user's Ctrl-C would: the bench closes its doors and exits."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_workers(worker, connections: int) -> float:
    """Run `worker(i)` on `connections` threads at once; the seconds until the last one ended."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    """The p-quantile (0..1) of sorted durations in seconds, in milliseconds."""
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def write_json(path: Path | None, data: object) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
