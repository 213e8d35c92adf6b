"""OIDC door throughput: complete authorization code flows per second (authorize with login_hint and PKCE S256,
token with client_secret_basic, userinfo), on the Pro Santé Connect issuer and the establishment's.

    python benchmarks/oidc.py [--quick] [--json FILE]

The bench runs as a separate process on loopback; the load comes from this process's threads, one keep-alive
HTTP connection each, one request in flight per connection. Each flow does the real work: client and redirect
checks, a code stored and consumed, an access and a refresh token, an ID token signed (RS256), the userinfo
claims built from the world, four journal entries. Reported, not asserted. mockbench only: the side-by-side
with panva's oidc-provider belongs to the harness (python -m benchmarks.harness).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_process import pct, run_workers, start_bench, stop_bench, write_json  # noqa: E402

WORLD = """\
id: bench-oidc
title: Banc OIDC
seed: 3
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals: [{id: dr, family_name: MARTIN, given_name: Jeanne, specialty: SM26, structure: chu}]
  patients: [{id: alice, sex: F}]
"""
# PSC's authorization endpoint is on the wallet base, apart from the issuer (as the discovery says)
ISSUERS = {"psc": ("/oidc/psc/auth/realms/esante-wallet", "/oidc/psc-wallet/auth",
                   "/protocol/openid-connect/token", "/protocol/openid-connect/userinfo"),
           "etab": ("/oidc/etab", "/oidc/etab/authorize", "/token", "/userinfo")}
BASIC = "Basic " + base64.b64encode(b"mockbench:mockbench-secret").decode()
REDIRECT = "http://127.0.0.1:8765/callback"


def start(tmp: Path) -> tuple[subprocess.Popen, dict]:
    return start_bench(tmp, WORLD)


def flow(conn: http.client.HTTPConnection, issuer: str) -> None:
    base, auth, token, userinfo = ISSUERS[issuer]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"client_id": "mockbench", "response_type": "code", "scope": "openid scope_all",
                       "redirect_uri": REDIRECT, "state": "s", "nonce": "n", "login_hint": "dr",
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    conn.request("GET", f"{auth}?{query}")
    response = conn.getresponse()
    response.read()
    if response.status != 302:
        raise SystemExit(f"authorize answered {response.status}")
    code = parse_qs(urlsplit(response.getheader("Location")).query)["code"][0]
    form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                      "code_verifier": verifier})
    conn.request("POST", base + token, body=form, headers={
        "Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"token answered {response.status}: {body[:200]!r}")
    access = json.loads(body)["access_token"]
    conn.request("GET", base + userinfo, headers={"Authorization": f"Bearer {access}"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"userinfo answered {response.status}")


def load(port: int, issuer: str, total: int, connections: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per = total // connections

    def worker(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(per):
            t0 = time.perf_counter()
            flow(conn, issuer)
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    elapsed = run_workers(worker, connections)
    return per * connections / elapsed, sorted(latencies)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    total = 80 if args.quick else 400
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, ports = start(Path(tmp))
        try:
            flow(http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=60), "psc")  # keys made here
            for issuer in ISSUERS:
                for connections in (1, 8):
                    rate, lat = load(ports["http"], issuer, total, connections)
                    results[f"code_flow_{issuer}_{connections}_conn"] = {
                        "flows_per_s": rate, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
                    print(f"{issuer}: complete code flow (authorize + token + userinfo), {connections} "
                          f"connection(s): {rate:,.0f} flows/s, p50 {pct(lat, 0.5):.1f} ms, "
                          f"p99 {pct(lat, 0.99):.1f} ms")
        finally:
            stop_bench(proc)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
