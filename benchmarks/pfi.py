"""PFI door throughput: MDM^T02 with a 30 KB CDA, each ACK awaited, on one connection and on eight.

    python benchmarks/pfi.py [--quick] [--json FILE]

The bench runs as a separate process on loopback; the load comes from this process (asyncio, one frame in
flight per connection). Every message does the real work: parse, check, one DMP submission committed,
two journal entries, the ACK. Reported, not asserted; the target is 1,000 messages/s on one connection.
The side-by-side with a mountebank TCP imposter is in the harness (python -m benchmarks.harness), which
reuses this file's scenario and message.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_process import start_bench, stop_bench, write_json  # noqa: E402
from mockbench.formats.cda import minimal_cda  # noqa: E402
from mockbench.protocols.pfi.mllp import MllpClient  # noqa: E402

WORLD = """\
id: bench-pfi
title: Banc PFI
seed: 1
world:
  structures: [{id: chu}]
  professionals: [{id: dr, structure: chu}]
  patients: [{id: alice, sex: F, family_name: DURAND, given_name: Alice, birth_date: "1980-05-04",
              authorizations: [{structure: chu}]}]
"""





def http(ports: dict, method: str, path: str, body: bytes | None = None,
         content_type: str = "application/yaml") -> dict:
    # a control call with a body says its type (the control API refuses others: README, Security)
    headers = {"Content-Type": content_type} if body is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/_bench{path}", data=body, method=method,
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def make_cda(patient: dict, pro: dict) -> bytes:
    """The CDA every message carries: 22 KiB, 30 KiB once in base64."""
    return minimal_cda(unique_id="2.25.1", ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11488-4",
                       title="CR", author_idnps=pro["idnps"], author_family="X", author_given="Y",
                       patient_family="DURAND", patient_given="Alice", birth_date="1980-05-04", sex="F",
                       effective_time="2026-11-20T10:00:00Z", text="x" * 21_000)


def message(i: int | str, patient: dict, pro: dict, finess: str, cda_b64: str) -> bytes:
    uid = f"1.2.250.1.999.77.{i}"
    lines = [
        f"MSH|^~\\&|DPI|CHU|PFI|CHU|20261120100000||MDM^T02^MDM_T02|M{i}|P|2.6|||||FRA|UNICODE UTF-8",
        "EVN||20261120100000",
        f"PID|||{patient['ins']}^^^ASIP-SANTE-INS-NIR&{patient['ins_oid']}&ISO^INS||DURAND^Alice||19800504|F",
        "PV1|1|I", "ORC|NW|", "OBR|1|||11488-4^CR^LN",
        f"TXA|1|11488-4|TEXT|20261120100000||||||||{uid}^CHU",
        f"OBX|1|ED|11488-4^CR^LN||^text^XML^Base64^{cda_b64}||||||F",
        f"PRT||UC||SB^^participation|{pro['idnps']}^X^Y^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|||"
        f"CHU^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^{finess}",
        "OBX|2|CWE|DESTDMP^Destinataire DMP^MetaDMPMSS||Y^^expandedYes-NoIndicator||||||F",
    ]
    return ("\r".join(lines) + "\r").encode()


async def run_connections(port: int, messages: list[bytes], connections: int) -> float:
    chunks = [messages[i::connections] for i in range(connections)]

    async def one(batch: list[bytes]) -> None:
        async with MllpClient() as client:
            await client.connect("127.0.0.1", port)
            for m in batch:
                ack = await client.send(m, timeout=30)
                if b"MSA|AA|" not in ack:
                    raise SystemExit(f"unexpected answer: {ack[:200]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return len(messages) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    count, rounds = (300, 3) if args.quick else (2000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        proc, ports = start_bench(Path(tmp))
        try:
            http(ports, "POST", "/scenarios", WORLD.encode())
            patient = http(ports, "GET", "/patients/alice")
            pro = http(ports, "GET", "/professionals")[0]
            finess = http(ports, "GET", "/structures")[0]["finess"]
            cda = make_cda(patient, pro)
            b64 = base64.b64encode(cda).decode()
            results = {}
            n = 0
            for connections in (1, 8):
                rates = []
                for _ in range(rounds):
                    batch = [message(n + i, patient, pro, finess, b64) for i in range(count)]
                    n += count
                    rates.append(asyncio.run(run_connections(ports["mllp"], batch, connections)))
                results[connections] = rates
            size = len(batch[0])
        finally:
            stop_bench(proc)
    print(f"MDM^T02 of {size / 1024:.0f} KiB (CDA {len(cda) / 1024:.0f} KiB), ACK awaited, {count} messages x "
          f"{rounds} rounds, {os.cpu_count()} CPUs")
    table = {}
    for connections, rates in results.items():
        med = statistics.median(rates)
        spread = (max(rates) - min(rates)) / med * 100
        table[f"{connections}_connection"] = {"median": med, "min": min(rates), "max": max(rates)}
        target = " (target >= 1000)" if connections == 1 else ""
        print(f"  {connections} connection(s): median {med:,.0f} msg/s (min {min(rates):,.0f}, max "
              f"{max(rates):,.0f}, spread {spread:.0f}%){target}")
    write_json(args.json, {"message_bytes": size, "rates": table})


if __name__ == "__main__":
    main()
