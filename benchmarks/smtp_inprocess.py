"""The SMTP door's submission in process: CPU per mail of `SmtpDoor.submit` (the XDM check, the delivery, the
journal, the commit) on the harness's MSSanté mail (benchmarks/mss.py); with --wire, through the door's socket
too (the SMTP door alone started on a free port, smtplib on one connection in this process: aiosmtpd, the
DATA read and the hand-off to the worker thread included, and smtplib's own cost).

    .venv/bin/python -m benchmarks.smtp_inprocess [--mails 300] [--wire] [--profile]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out .venv/bin/python -m benchmarks.smtp_inprocess --mails 50

Instruction counts (callgrind) repeat under load where times do not; divide by --mails (after the warm-up).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import smtplib
import tempfile
import time
from pathlib import Path

from benchmarks import mss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--wire", action="store_true", help="through the SMTP door's socket, with smtplib")
    parser.add_argument("--profile", action="store_true", help="cProfile the loop, top 30 by cumulative time")
    args = parser.parse_args(argv)

    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.protocols.mss.door import MssDoor

    with tempfile.TemporaryDirectory() as tmp, Bench(Config(
            state=Path(tmp) / "state", http_port=0, https_port=0, mllp_port=0, smtp_port=0, imap_port=0)) as bench:
        scenario = Path(tmp) / "bench-mss.yaml"
        scenario.write_text(mss.WORLD)
        bench.load_scenario(str(scenario))
        door = bench.door("mss", MssDoor).smtp
        raw = mss.message()
        client = None
        if args.wire:
            client = smtplib.SMTP("127.0.0.1", door.start()["smtp"], timeout=30)
            client.ehlo()
            client.login(mss.SENDER, "mockbench")

        # The bytes smtplib's data() writes (line ends and dots quoted), made once: its two regular expressions
        # over the whole mail would otherwise count in this process as much as parts of the server.
        stuffed = re.sub(rb"(?m)^\.", b"..", raw)
        stuffed += (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"

        def send() -> str:
            if client is None:
                return door.submit(mss.SENDER, [mss.RECIPIENT], raw)
            if client.mail(mss.SENDER)[0] != 250 or client.rcpt(mss.RECIPIENT)[0] != 250:
                return "refused"
            client.putcmd("data")
            if client.getreply()[0] != 354:
                return "refused"
            client.send(stuffed)
            code, text = client.getreply()
            return f"{code} {text.decode()}"

        for _ in range(args.warmup):
            reply = send()
        assert reply.startswith("250"), reply
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(args.mails):
            send()
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.mails} mails of {len(raw):,} bytes: {cpu / args.mails * 1000:.2f} ms CPU, "
              f"{wall / args.mails * 1000:.2f} ms wall per mail")
        if client is not None:
            client.quit()
            door.stop()
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
