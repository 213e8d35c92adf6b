"""DMP door throughput: TD3.1 FindDocuments answering 10 entries (and 50), and TD2.1 of a 1 MB document.

    python benchmarks/dmp.py [--quick] [--json FILE]

The bench runs as a separate process on loopback; the load comes from this process's threads, one
keep-alive HTTP connection each, one request in flight per connection. Every request does the real work:
SOAP and VIHF parsing, access rules, the store, an access trace and a journal entry. Reported, not asserted.
The side-by-side with WireMock serving the same bytes canned is in the harness (python -m benchmarks.harness),
which reuses this file's scenario and messages.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from benchmarks.bench_process import pct, run_workers, start_bench, stop_bench, write_json  # noqa: E402
from mockbench.pki import ensure_pki  # noqa: E402
from mockbench.testing.messages import cda, find_documents, provide_and_register, vihf  # noqa: E402

WORLD = """\
id: bench-dmp
title: Banc DMP
seed: 2
world:
  structures: [{id: chu}]
  professionals: [{id: dr, family_name: MARTIN, given_name: Jeanne, structure: chu}]
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{structure: chu}]
      documents: [{DOCS}]
"""


def world(entries: int) -> str:
    """The scenario (YAML): Alice's DMP holding `entries` documents by Dr Martin, whose structure she authorized."""
    docs = ", ".join(f"{{id: d{i}, author: dr, text: '{'Résultat normal. ' * 20}'}}" for i in range(entries))
    return WORLD.replace("{DOCS}", docs)


def signed_vihf(state: Path, pro: dict, idnst: str, patient: dict) -> etree._Element:
    """A VIHF signed by the structure's seal certificate of the bench's own PKI (`pki/` in its state folder,
    made here first if the bench has not made it yet): the DMP door requires the signature."""
    ensure_pki(state / "pki")
    return vihf(pro, idnst, patient, signer=state / "pki")


def start(tmp: Path, entries: int) -> tuple[subprocess.Popen, dict]:
    return start_bench(tmp, world(entries))


def get(ports: dict, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/_bench{path}", timeout=30) as r:
        return json.loads(r.read())


def envelope(body: etree._Element, security: etree._Element, action: str) -> bytes:
    return f"""<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:Action>{action}</wsa:Action>
<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000003</wsa:MessageID>
{etree.tostring(security).decode()}</soap:Header><soap:Body>{etree.tostring(body).decode()}</soap:Body>
</soap:Envelope>""".encode()


def load(port: int, path: str, make_body, total: int, connections: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    sizes = []
    lock = threading.Lock()
    per = total // connections

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for i in range(per):
            body = make_body(offset * per + i)
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/soap+xml"})
            response = conn.getresponse()
            data = response.read()
            mine.append(time.perf_counter() - t0)
            if response.status != 200 or b"Failure" in data[:2000]:
                raise SystemExit(f"unexpected answer {response.status}: {data[:300]!r}")
            sizes.append(len(data))
        conn.close()
        with lock:
            latencies.extend(mine)

    elapsed = run_workers(worker, connections)
    return per * connections / elapsed, sorted(latencies), max(sizes)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    total = 200 if args.quick else 1000
    results = {}
    for entries in (10, 50):
        with tempfile.TemporaryDirectory() as tmp:
            proc, ports = start(Path(tmp), entries)
            try:
                patient, pro = get(ports, "/patients/alice"), get(ports, "/professionals")[0]
                idnst = get(ports, "/structures")[0]["idnst"]
                security = signed_vihf(Path(tmp) / "state", pro, idnst, patient)
                query = envelope(find_documents(patient), security, "urn:ihe:iti:2007:RegistryStoredQuery")
                for connections in (1, 8):
                    rate, lat, size = load(ports["http"], "/si-dmp-server/v2/services/registry",
                                           lambda _, q=query: q, total, connections)
                    key = f"TD3.1_{entries}_entries_{connections}_conn"
                    results[key] = {"rps": rate, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "bytes": size}
                    print(f"TD3.1, {entries} entries ({size / 1024:.0f} KiB), {connections} connection(s): "
                          f"{rate:,.0f} req/s, p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms")
                if entries == 10:
                    big = cda(patient, pro, "2.25.9", text="x" * 1_000_000)

                    def td21(i: int, patient=patient, pro=pro, big=big, security=security) -> bytes:
                        body, _ = provide_and_register(patient, pro, f"1.2.250.1.999.50.{i}", big)
                        return envelope(body, security, "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b")

                    n = 20 if args.quick else 100
                    rate, lat, _ = load(ports["http"], "/si-dmp-server/v2/services/repository", td21, n, 1)
                    results["TD2.1_1MB"] = {"docs_per_s": rate, "p50_ms": pct(lat, 0.5)}
                    print(f"TD2.1 of a {len(big) / 1e6:.1f} MB document (inline base64): {rate:,.1f} documents/s, "
                          f"p50 {pct(lat, 0.5):.0f} ms")
            finally:
                stop_bench(proc)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
