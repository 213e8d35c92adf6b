"""Writers in several processes on one world's file: the cross-process write lock (world/xlock.py, flock)
against SQLite's own busy handler, which sleeps and polls (issue 21 point 3).

Each process opens the store and runs small write transactions (a counter and a 1 KiB row, as a journal entry
would be) as fast as it can, with `--hold` ms of work inside each transaction (the part of a request that runs
under the lock); every transaction's wait for the lock is timed. Printed: transactions per second over all
processes, how evenly the processes got the lock (`fair`: the fewest transactions of a process over the most)
and the wait's p50, p99 and max, for each mode, the modes alternating `--rounds` times.

    .venv/bin/python -m benchmarks.write_lock --procs 2 --seconds 3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys, time
from pathlib import Path
from mockbench.world.store import Store

db, mode, seconds, hold, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])


class NoLock:   # SQLite's busy handler alone: BEGIN IMMEDIATE waits in sqlite3_busy_timeout's sleeps
    waits = 0
    def acquire(self): pass
    def release(self): pass
    def close(self): pass


store = Store(db)
if mode == "busy":
    store._xlock.close()
    store._xlock = NoLock()
while time.time() < start:
    time.sleep(0.001)
waits, end, row = [], start + seconds, {"x": "y" * 1000}
while time.time() < end:
    t0 = time.perf_counter()
    with store.transaction() as tx:
        waits.append(time.perf_counter() - t0)
        tx.put("mailraw", row, id=f"{len(waits)}-{t0}")
        tx.next_seq("bench")
        if hold:
            spin = time.perf_counter() + hold / 1000
            while time.perf_counter() < spin:
                pass
store.close()
print(json.dumps(waits))
"""


def _round(mode: str, procs: int, seconds: float, hold: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="mockbench-lock-") as tmp:
        db = Path(tmp) / "world.db"
        subprocess.run([sys.executable, "-c", "import sys; from mockbench.world.store import Store; "
                        "Store(__import__('pathlib').Path(sys.argv[1])).close()", str(db)], check=True)
        start = time.time() + 1.0
        children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(db), mode, str(seconds), str(hold),
                                      str(start)], stdout=subprocess.PIPE, text=True) for _ in range(procs)]
        waits: list[float] = []
        counts: list[int] = []
        for child in children:
            out, _ = child.communicate(timeout=seconds + 60)
            mine = json.loads(out)
            waits += mine
            counts.append(len(mine))
    waits.sort()
    return {"tps": len(waits) / seconds, "fair": min(counts) / max(counts), "p50": waits[len(waits) // 2] * 1000,
            "p99": waits[int(len(waits) * 0.99)] * 1000, "max": waits[-1] * 1000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--hold", type=float, default=0.5, help="ms of work inside each transaction")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {"flock": [], "busy": []}
    for _ in range(args.rounds):
        for mode in results:
            results[mode].append(_round(mode, args.procs, args.seconds, args.hold))
    for mode, rounds in results.items():
        line = ", ".join(f"{k} {statistics.median(r[k] for r in rounds):.2f} "
                         f"[{min(r[k] for r in rounds):.2f}-{max(r[k] for r in rounds):.2f}]"
                         for k in ("tps", "fair", "p50", "p99", "max"))
        print(f"{mode:5} ({args.procs} processes, hold {args.hold} ms): {line}  (tx/s; fewest/most transactions of a process; wait in ms; median [range])")


if __name__ == "__main__":
    main()
