"""The PFI door's message in process: CPU and instructions per MDM^T02 of the harness (benchmarks/pfi.py: 30 KiB
of HL7, a 22 KiB CDA) through `PfiDoor.handle`, no socket: parse, checks, the DMP submission, the journal, the
commit, the ACK. Each message is distinct (its control id and document id).

    .venv/bin/python -m benchmarks.mllp_inprocess [-n 1000]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out .venv/bin/python -m benchmarks.mllp_inprocess -n 200

Instruction counts (callgrind) repeat under load where times do not: run two counts and divide the difference
by the difference of -n (start-up cancels out). The background checkpoint thread is counted by callgrind; its
CPU is in the process time printed here.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="messages after the warm-up")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    from benchmarks import pfi
    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.protocols.pfi.door import PfiDoor
    from mockbench.scenarios.loader import parse

    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Config(state=Path(tmp) / "state", quiet=True))
        try:
            bench.scenarios.load(parse(pfi.WORLD))
            directory = bench.world.directory
            with bench.store.transaction() as tx:
                patient = directory.patient(tx, "alice").to_dict()
                pro = directory.professionals(tx)[0].to_dict()
                finess = directory.structures(tx)[0].finess
            b64 = base64.b64encode(pfi.make_cda(patient, pro)).decode()
            door = bench.door("pfi", PfiDoor)
            n = 0

            def one() -> None:
                nonlocal n
                n += 1
                ack = door.handle(pfi.message(n, patient, pro, finess, b64))
                if b"MSA|AA|" not in ack:
                    raise SystemExit(f"unexpected answer: {ack[:300]!r}")

            for _ in range(args.warmup):
                one()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.n):
                one()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{args.n} MDM^T02: {cpu / args.n * 1000:.3f} ms CPU, {wall / args.n * 1000:.3f} ms wall per "
                  f"message")
        finally:
            bench.close()


if __name__ == "__main__":
    main()
