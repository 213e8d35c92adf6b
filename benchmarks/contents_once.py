"""What storing a large content in SQLite costs, the WAL's copy and the checkpoint's second copy included
(issue 21 point 4: "large contents written once"), for the SMTP door's mail and the PFI door's message.

    .venv/bin/python -m benchmarks.contents_once [--door smtp,mllp] [--rounds 3] [-n 300]

Each round runs the in-process loop (benchmarks/smtp_inprocess.py --wire, benchmarks/mllp_inprocess.py) once
per way of storing the contents of `mailraw` and `contents` above 4 KiB, each in a fresh process, in turn:

    inline   as mockbench stores them: a row, written into the WAL, then copied into the file by the checkpoint
    none     not stored at all (a 32-byte row instead): the bound of what any storage outside the WAL can save
    files    one file per content (created, written, renamed) before the row, as a blob folder would
    append   appended to one file kept open (one write), the row keeping its offset: the cheapest outside store
    page8k, page16k, page64k   inline, in a new database of larger pages (fewer WAL frames per content)

and prints per request the loop's CPU (all threads: the checkpoint thread included) with its user and system
parts, and the checkpoint thread's own CPU over the whole run (warm-up included: checkpoints follow the bytes
written, which the requests alone write). The ways other than `inline` are measurement stand-ins only: nothing
reads the contents back, nothing collects them. Findings: benchmarks/README.md, SMTP section, "Large contents
written once, measured".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LARGE = 4096
WAYS = ("inline", "none", "files", "append")
PAGES = {"page8k": 8192, "page16k": 16384, "page64k": 65536}   # inline, in a new file of larger pages


def _child(way: str, door: str, n: int) -> dict:
    from mockbench.world import store

    checkpoint = {"cpu": 0.0, "requests": 0}
    run, request, put = store.Checkpointer._run, store.Checkpointer.request, store.Tx.put

    def timed_run(self: store.Checkpointer) -> None:
        t0 = time.thread_time()
        try:
            run(self)
        finally:
            checkpoint["cpu"] += time.thread_time() - t0

    def counted_request(self: store.Checkpointer) -> None:
        checkpoint["requests"] += 1
        request(self)

    folder = Path(tempfile.mkdtemp(prefix="mockbench-blobs-"))
    pack: list[int] = []   # the append way's file descriptor

    def put_other(self: store.Tx, table: str, data: dict | bytes, **keys: Any) -> None:
        if table in ("mailraw", "contents") and isinstance(data, bytes) and len(data) > LARGE:
            if way == "append":
                if not pack:
                    pack.append(os.open(folder / "pack", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
                offset = os.lseek(pack[0], 0, os.SEEK_END)
                os.write(pack[0], data)
                data = str(offset).encode()
            elif way == "files":
                name = uuid.uuid4().hex
                fd = os.open(folder / f"{name}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                os.rename(folder / f"{name}.tmp", folder / name)
                data = name.encode()
            else:
                data = b"x" * 32
        put(self, table, data, **keys)

    store.Checkpointer._run = timed_run  # type: ignore[method-assign]
    store.Checkpointer.request = counted_request  # type: ignore[method-assign]
    if way in PAGES:
        open_store = store.Store._open

        def open_paged(self: store.Store) -> None:
            self._conn.execute(f"PRAGMA page_size = {PAGES[way]}")   # before WAL and the first table
            open_store(self)

        store.Store._open = open_paged  # type: ignore[method-assign]
    elif way != "inline":
        store.Tx.put = put_other  # type: ignore[method-assign]
    # The loops call time.process_time() twice, at their start and end: the process's user and system times
    # are read at the same moments.
    usage: list[Any] = []
    process_time = time.process_time

    def marked() -> float:
        usage.append(resource.getrusage(resource.RUSAGE_SELF))
        return process_time()

    time.process_time = marked
    lines: list[str] = []
    try:
        if door == "smtp":
            from benchmarks import smtp_inprocess
            run_loop = lambda: smtp_inprocess.main(["--wire", "--mails", str(n), "--warmup", "20"])  # noqa: E731
        else:
            from benchmarks import mllp_inprocess
            run_loop = lambda: mllp_inprocess.main(["-n", str(n), "--warmup", "20"])  # noqa: E731
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_loop()
        lines = out.getvalue().splitlines()
    finally:
        time.process_time = process_time
        for fd in pack:
            os.close(fd)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    before, after = usage[0], usage[-1]
    loop_cpu = float(lines[-1].split(": ")[1].split(" ms CPU")[0])   # "...: 5.21 ms CPU, 9.57 ms wall ..."
    return {"way": way, "door": door, "cpu_ms": loop_cpu,
            "user_ms": (after.ru_utime - before.ru_utime) * 1000 / n,
            "sys_ms": (after.ru_stime - before.ru_stime) * 1000 / n,
            "checkpoint_ms": checkpoint["cpu"] * 1000 / (n + 20), "checkpoints": checkpoint["requests"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--door", default="smtp,mllp", help="smtp, mllp or both")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"among {', '.join((*WAYS, *PAGES))}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=300, help="requests per run, after 20 of warm-up")
    parser.add_argument("--child", nargs=2, metavar=("WAY", "DOOR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.n)))
        return
    ways = args.ways.split(",")
    for door in args.door.split(","):
        print(f"{door}: per request; cpu, user and sys the loop's (all threads), the checkpoint thread's "
              "over the whole run (n + 20)")
        for r in range(args.rounds):
            # alternate the order from one round to the next: the second of two runs tends to be faster
            for way in (ways if r % 2 == 0 else ways[::-1]):
                done = subprocess.run([sys.executable, "-m", "benchmarks.contents_once", "-n", str(args.n),
                                       "--child", way, door], cwd=ROOT, capture_output=True, text=True,
                                      timeout=1200, check=True)
                m = json.loads(done.stdout.splitlines()[-1])
                print(f"  round {r + 1} {way:7} cpu {m['cpu_ms']:.3f} ms  user {m['user_ms']:.3f}  "
                      f"sys {m['sys_ms']:.3f}  checkpoint thread {m['checkpoint_ms']:.3f} ms "
                      f"({m['checkpoints']} checkpoints)", flush=True)


if __name__ == "__main__":
    main()
