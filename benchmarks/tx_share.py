"""How much of a request runs inside the world's write transaction, which processes sharing one world take in
turn (issue 21 point 3): on two cores, a share `s` bounds what a second process can give to 1 / (s + (1-s)/2).

    .venv/bin/python -m benchmarks.tx_share [--only soap,fhir,oidc] [-n 300] [--rounds 3] [--shared]

The requests of benchmarks/inprocess.py (the WSGI application called in this process, no sockets: the HTTP
server's own time, outside the transaction, is not counted, so the share of a request served over a socket
is lower). Each outermost `Store.transaction` is timed from asking for the lock to the end of its commit. The
times are the CPU time of the thread that serves the requests (`time.thread_time`), so that the other jobs of a
loaded machine do not blur the share; the background threads (checkpoints) are not counted. `--shared` opens the
world as a process of several sharing it would (`Store.shared`): the doors then compute their reads on a
snapshot, out of the write transaction.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-n", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="soap,fhir,oidc")
    parser.add_argument("--shared", action="store_true", help="the world as several processes share it")
    args = parser.parse_args(argv)
    from benchmarks import inprocess
    from benchmarks.dmp import world
    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.scenarios.loader import parse
    from mockbench.world.store import Store

    inside = [0.0]
    plain = Store.transaction

    @contextmanager
    def timed(self: Store, ns: str | None = None) -> Iterator[Any]:
        outer = not self.in_transaction()
        t0 = time.thread_time()
        try:
            with plain(self, ns) as tx:
                yield tx
        finally:
            if outer:
                inside[0] += time.thread_time() - t0

    Store.transaction = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(Config(state=Path(tmp) / "state", quiet=True))
            bench.world.store.shared = args.shared
            try:
                bench.scenarios.load(parse(world(10)))
                for name in args.only.split(","):
                    one = inprocess.FIGURES[name](bench, Path(tmp))
                    for _ in range(inprocess.WARM_UP):
                        one()
                    for _ in range(args.rounds):
                        inside[0] = 0.0
                        t0 = time.thread_time()
                        for _ in range(args.n):
                            one()
                        total = time.thread_time() - t0
                        share = inside[0] / total
                        print(f"{name}: {total / args.n * 1000:.3f} ms CPU a request, {inside[0] / args.n * 1000:.3f} ms "
                              f"inside the write transaction ({share:.0%}; two processes at most "
                              f"{1 / (share + (1 - share) / 2):.2f}x)")
            finally:
                bench.close()
    finally:
        Store.transaction = plain  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
