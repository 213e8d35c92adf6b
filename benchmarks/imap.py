"""IMAP FETCH of 1,000 messages from one mailbox (the MSSanté door's IMAP figure).

    python benchmarks/imap.py [--quick] [--json FILE]

The bench runs as a separate process on loopback. 1,000 MSSanté mails (an XDM package of a few KB each)
are delivered through `POST /_bench/mss/send`; imaplib then logs in, selects the mailbox and fetches them:
once as one `UID FETCH 1:* (BODY.PEEK[])`, and once one message per command. Reported, not asserted.
"""

from __future__ import annotations

import argparse
import base64
import imaplib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_process import start_bench, stop_bench, write_json  # noqa: E402

MAILBOX = "dpi@chu.mssante.fr"
WORLD = f"""\
id: bench-imap
title: Banc IMAP
world:
  structures: [{{id: chu}}]
  professionals: [{{id: dr_a, structure: chu, mssante: jeanne.martin@chu.mssante.fr}}]
  mailboxes: [{{address: {MAILBOX}, type: APP, owner: chu, role: hospital}}]
"""


def start(tmp: Path) -> tuple[subprocess.Popen, dict]:
    return start_bench(tmp)


def post(ports: dict, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/_bench{path}", data=body, method="POST",
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from mockbench.formats.cda import minimal_cda
    from mockbench.formats.xdm import write_package

    cda = minimal_cda(unique_id="2.25.77", ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                      type_code="11488-4", title="CR", author_idnps="801234567897", author_family="MARTIN",
                      author_given="Jeanne", patient_family="DURAND", patient_given="Alice",
                      birth_date="1980-05-04", sex="F", effective_time="2026-11-20T10:00:00Z", text="x" * 2000)
    package = write_package([("DOC0001.XML", cda, {"unique_id": "2.25.77"})],
                            submission_set={"unique_id": "2.25.78", "source_id": "1.2.250.1.999",
                                            "content_type": "04"},
                            patient_id="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH")
    send = json.dumps({"from": "jeanne.martin@chu.mssante.fr", "to": [MAILBOX], "subject": "XDM/1.0/DDM+CR",
                       "package": base64.b64encode(package).decode()}).encode()
    rounds = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        proc, ports = start(Path(tmp))
        try:
            post(ports, "/scenarios", WORLD.encode(), "application/yaml")
            t0 = time.perf_counter()
            for _ in range(1000):
                post(ports, "/mss/send", send)
            load_s = time.perf_counter() - t0
            bulk, single = [], []
            for _ in range(rounds):
                imap = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=60)
                imap.login(MAILBOX, "mockbench")
                imap.select("INBOX", readonly=True)
                t0 = time.perf_counter()
                status, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
                bulk.append(time.perf_counter() - t0)
                fetched = sum(1 for item in data if isinstance(item, tuple))
                assert status == "OK" and fetched == 1000, (status, fetched)
                t0 = time.perf_counter()
                for uid in range(1, 1001):
                    imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
                single.append(time.perf_counter() - t0)
                imap.logout()
        finally:
            stop_bench(proc)
    size = len(send)
    result = {"messages": 1000, "message_bytes_json": size, "deliver_1000_s": load_s,
              "bulk_fetch_s": statistics.median(bulk), "one_by_one_s": statistics.median(single)}
    print(f"delivering 1,000 mails through POST /_bench/mss/send: {load_s:.1f} s")
    print(f"UID FETCH 1:* (BODY.PEEK[]) of 1,000 messages: median {result['bulk_fetch_s'] * 1000:.0f} ms "
          f"(min {min(bulk) * 1000:.0f}, max {max(bulk) * 1000:.0f}, {rounds} rounds)")
    print(f"1,000 UID FETCH, one message each: median {result['one_by_one_s']:.2f} s "
          f"({1000 / result['one_by_one_s']:,.0f} fetches/s)")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
