"""A prototype, not a user option: one world served by one process, then by two (issue 21, point 3), the modes
alternating. Each process is a whole bench on the same state folder and its own HTTP port; the second opens the
world as a worker would (`Store.shared`, `World.primary = False`), the first as the primary (`Store.shared` too,
so that its doors compute their reads on a snapshot). The load: `--connections` keep-alive connections from
this process, spread evenly over the processes' ports, each sending the same request as fast as it answers
for `--seconds`.

    .venv/bin/python -m benchmarks.two_processes [--only soap,fhir,oidc] [--seconds 5] [--rounds 3] [--connections 8]

`oidc` is a whole code flow on Pro Santé Connect per iteration (authorize, token, userinfo: three requests), as
benchmarks/inprocess.py runs it; its rate counts requests.

Printed for each round: requests per second, and the servers' CPU per request (user + system time of the
server processes from /proc, over the requests they answered). On a machine that runs other jobs, a second
process also takes a larger share of the CPUs from them: the CPU per request is the figure that other load
does not inflate; the rate is the one a user sees.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = """
import sys
from pathlib import Path
from mockbench.bench import Bench
from mockbench.config import Config

state, port_file, role = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if role == "worker":   # the state folder's lock keeps a second bench out: a worker is let in (prototype only)
    import mockbench.bench

    class Shared:
        def __init__(self, state_dir): pass
        def record_pid(self): pass
        def release(self): pass

    mockbench.bench.StateLock = Shared
bench = Bench(Config(state=state, http_port=0, mllp_port=0, smtp_port=0, imap_port=0, port_file=port_file,
                     quiet=True, log_level="WARNING"))
bench.world.store.shared = role != "single"
bench.world.primary = role != "worker"
bench.start()
sys.stdin.read()   # until the parent closes it
bench.close()
"""


def _start(state: Path, role: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / f"ports-{role}.json"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(state), str(port_file), role], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the {role} bench did not start")
        time.sleep(0.02)
    return proc, json.loads(port_file.read_text())["http"]


def _stop(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_bench{path}", timeout=30) as r:
        return json.loads(r.read())


def _request(name: str, port: int, state: Path) -> tuple[str, str, bytes, dict]:
    """(method, path, body, headers) of the figure's request, as benchmarks/inprocess.py makes it."""
    if name == "oidc":
        return "FLOW", "", b"", {}
    if name == "soap":
        from benchmarks.dmp import envelope, signed_vihf
        from mockbench.testing.messages import find_documents

        patient, pro = _get(port, "/patients/alice"), _get(port, "/professionals")[0]
        idnst = _get(port, "/structures")[0]["idnst"]
        body = envelope(find_documents(patient), signed_vihf(state, pro, idnst, patient),
                        "urn:ihe:iti:2007:RegistryStoredQuery")
        return "POST", "/si-dmp-server/v2/services/registry", body, {"Content-Type": "application/soap+xml"}
    pro = _get(port, "/professionals")[0]
    keys = _get(port, "/endpoints").get("annuaire", {}).get("api_keys") or ["mockbench"]
    return "GET", f"/fhir/v2/Practitioner?identifier={pro['idnps']}", b"", {"ESANTE-API-KEY": keys[0]}


def _load(ports: list[int], request: tuple[str, str, bytes, dict], connections: int, seconds: float) -> int:
    method, path, body, headers = request
    counts = [0] * connections
    end = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[i % len(ports)], timeout=60)
        while time.monotonic() < end:
            if method == "FLOW":
                _code_flow(conn)
                counts[i] += 3
                continue
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise SystemExit(f"unexpected answer {response.status}: {data[:300]!r}")
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def _code_flow(conn: http.client.HTTPConnection) -> None:
    """Authorize (login_hint, PKCE), token, userinfo on Pro Santé Connect, as benchmarks/inprocess.py's oidc."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlencode, urlsplit

    from benchmarks.oidc import BASIC, ISSUERS, REDIRECT

    base, auth, token, userinfo = ISSUERS["psc"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"client_id": "mockbench", "response_type": "code", "scope": "openid scope_all",
                       "redirect_uri": REDIRECT, "state": "s", "nonce": "n", "login_hint": "dr",
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    conn.request("GET", f"{auth}?{query}")
    response = conn.getresponse()
    response.read()
    if response.status != 302:
        raise SystemExit(f"authorize: {response.status}")
    code = parse_qs(urlsplit(response.getheader("Location") or "").query)["code"][0]
    form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                      "code_verifier": verifier}).encode()
    conn.request("POST", base + token, body=form, headers={"Authorization": BASIC,
                                                           "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"token: {response.status} {data[:200]!r}")
    access = json.loads(data)["access_token"]
    conn.request("GET", base + userinfo, headers={"Authorization": f"Bearer {access}"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"userinfo: {response.status}")


def _round(name: str, processes: int, args: argparse.Namespace) -> tuple[float, float]:
    from benchmarks.dmp import world

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        state = tmp / "state"
        primary, port = _start(state, "single" if processes == 1 else "primary", tmp)
        procs, ports = [primary], [port]
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/_bench/scenarios", method="POST",
                                         data=world(10).encode(), headers={"Content-Type": "application/yaml"})
            urllib.request.urlopen(req, timeout=600).read()
            request = _request(name, port, state)   # makes the PKI (the VIHF's signer) before the worker starts
            if processes == 2:
                worker, worker_port = _start(state, "worker", tmp)
                procs.append(worker)
                ports.append(worker_port)
            _load(ports, request, args.connections, 1.0)   # warm-up
            cpu0 = sum(_cpu(p.pid) for p in procs)
            t0 = time.monotonic()
            n = _load(ports, request, args.connections, args.seconds)
            elapsed = time.monotonic() - t0
            cpu = sum(_cpu(p.pid) for p in procs) - cpu0
        finally:
            for p in reversed(procs):
                _stop(p)
    return n / elapsed, cpu / n * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--only", default="soap,fhir")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    for name in args.only.split(","):
        for r in range(args.rounds):
            for processes in ((1, 2) if r % 2 == 0 else (2, 1)):
                rate, cpu = _round(name, processes, args)
                print(f"{name}, round {r + 1}, {processes} process(es), {args.connections} connections: "
                      f"{rate:,.0f} req/s, {cpu:.2f} ms CPU a request", flush=True)


if __name__ == "__main__":
    main()
