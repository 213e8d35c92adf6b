"""The SMTP door's submission in process, no socket: CPU per mail of `SmtpDoor.submit` (the XDM check, the
delivery, the journal, the commit) on the harness's MSSanté mail (benchmarks/mss.py).

    .venv/bin/python -m benchmarks.smtp_inprocess [--mails 300] [--profile]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out .venv/bin/python -m benchmarks.smtp_inprocess --mails 50

Instruction counts (callgrind) repeat under load where times do not; divide by --mails (after the warm-up).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from benchmarks import mss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="cProfile the loop, top 30 by cumulative time")
    args = parser.parse_args(argv)

    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.protocols.mss.smtp import SmtpDoor

    with tempfile.TemporaryDirectory() as tmp, Bench(Config(state=Path(tmp) / "state")) as bench:
        scenario = Path(tmp) / "bench-mss.yaml"
        scenario.write_text(mss.WORLD)
        bench.load_scenario(str(scenario))
        door = next(d for d in bench.doors if isinstance(d, SmtpDoor))
        raw = mss.message()
        for _ in range(args.warmup):
            reply = door.submit(mss.SENDER, [mss.RECIPIENT], raw)
        assert reply.startswith("250"), reply
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(args.mails):
            door.submit(mss.SENDER, [mss.RECIPIENT], raw)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.mails} mails of {len(raw):,} bytes: {cpu / args.mails * 1000:.2f} ms CPU, "
              f"{wall / args.mails * 1000:.2f} ms wall per mail")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
