"""Requests through the HTTP application in this process, without sockets: CPU and instruction counts per
request that a loaded machine does not blur (issue 21 points 1 and 2).

    .venv/bin/python -m benchmarks.inprocess [--only soap,fhir,oidc] [-n 200]
    MOCKBENCH_CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \
        .venv/bin/python -m benchmarks.inprocess --only soap -n 100

A bench (Bench, no ports) with the world of benchmarks/dmp.py; each figure calls the WSGI application
`n` times with a prepared environ, after 20 warm-up calls, and checks every answer's status. Prints the
CPU time per request (process time). Under callgrind with MOCKBENCH_CALLGRIND=1, only the measured loop is
instrumented (callgrind_control switches it on and off): "Collected" divided by N is the instructions per
request.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARM_UP = 20


def _environ(method: str, path: str, body: bytes = b"", content_type: str = "", query: str = "",
             headers: dict[str, str] | None = None) -> Callable[[], dict]:
    base = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if body:
        base["CONTENT_LENGTH"] = str(len(body))
        base["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        base["HTTP_" + name.upper().replace("-", "_")] = value

    def make() -> dict:
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(body)
        return env
    return make


def _call(app: Any, environ: dict) -> tuple[str, bytes]:
    status: list[str] = []

    def start_response(s: str, headers: list, exc_info: Any = None) -> None:
        status.append(s)
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return status[0], body


def soap(bench: Any, tmp: Path) -> Callable[[], None]:
    from benchmarks.dmp import envelope, signed_vihf
    from mockbench.testing.messages import find_documents

    patient = _json(bench, "/_bench/patients/alice")
    pro = _json(bench, "/_bench/professionals")[0]
    idnst = _json(bench, "/_bench/structures")[0]["idnst"]
    security = signed_vihf(bench.state_dir, pro, idnst, patient)
    query = envelope(find_documents(patient), security, "urn:ihe:iti:2007:RegistryStoredQuery")
    return _once(bench, _environ("POST", "/si-dmp-server/v2/services/registry", query, "application/soap+xml"))


def fhir(bench: Any, tmp: Path) -> Callable[[], None]:
    pro = _json(bench, "/_bench/professionals")[0]
    return _once(bench, _environ("GET", "/fhir/v2/Practitioner", query=f"identifier={pro['idnps']}",
                                 headers={"ESANTE-API-KEY": _api_key(bench)}))


def _once(bench: Any, make: Callable[[], dict]) -> Callable[[], None]:
    def one() -> None:
        status, body = _call(bench.app, make())
        if not status.startswith("200"):
            raise SystemExit(f"{status} {body[:300]!r}")
    return one


def oidc(bench: Any, tmp: Path) -> Callable[[], None]:
    """A whole code flow on Pro Santé Connect (authorize, token, userinfo), as benchmarks/oidc.py runs it."""
    import base64
    import hashlib
    import json
    import secrets
    from urllib.parse import parse_qs, urlencode, urlsplit

    from benchmarks.oidc import BASIC, ISSUERS, REDIRECT

    base, auth, token, userinfo = ISSUERS["psc"]

    def one() -> None:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"client_id": "mockbench", "response_type": "code", "scope": "openid scope_all",
                           "redirect_uri": REDIRECT, "state": "s", "nonce": "n", "login_hint": "dr",
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        status, headers = _call_headers(bench.app, _environ("GET", auth, query=query)())
        if not status.startswith("302"):
            raise SystemExit(f"authorize: {status}")
        code = parse_qs(urlsplit(headers["Location"]).query)["code"][0]
        form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                          "code_verifier": verifier}).encode()
        status, body = _call(bench.app, _environ("POST", base + token, form, "application/x-www-form-urlencoded",
                                                 headers={"Authorization": BASIC})())
        if not status.startswith("200"):
            raise SystemExit(f"token: {status} {body[:200]!r}")
        access = json.loads(body)["access_token"]
        status, body = _call(bench.app, _environ("GET", base + userinfo,
                                                 headers={"Authorization": f"Bearer {access}"})())
        if not status.startswith("200"):
            raise SystemExit(f"userinfo: {status}")
    return one


def _call_headers(app: Any, environ: dict) -> tuple[str, dict]:
    got: dict = {}

    def start_response(s: str, headers: list, exc_info: Any = None) -> None:
        got["status"], got["headers"] = s, dict(headers)
    result = app(environ, start_response)
    b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return got["status"], got["headers"]


def _api_key(bench: Any) -> str:
    keys = getattr(bench.annuaire, "api_keys", None) or ["mockbench"]
    return sorted(keys)[0]


def _json(bench: Any, path: str) -> Any:
    import json

    status, body = _call(bench.app, _environ("GET", path)())
    if not status.startswith("200"):
        raise SystemExit(f"{path}: {status} {body[:200]!r}")
    return json.loads(body)


FIGURES = {"soap": soap, "fhir": fhir, "oidc": oidc}


def _callgrind(on: bool) -> None:
    """Under `valgrind --tool=callgrind --instr-atstart=no`, instrument only the measured loop."""
    if os.environ.get("MOCKBENCH_CALLGRIND"):
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], check=True,
                       stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="requests per figure (0: set up and warm up only)")
    parser.add_argument("--only", default=",".join(FIGURES))
    parser.add_argument("--shared", action="store_true", help="the world as a process of several sharing it "
                        "opens it (Store.shared: reads computed on a snapshot, issue 21 point 3)")
    args = parser.parse_args(argv)
    from benchmarks.dmp import world
    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.scenarios.loader import parse

    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Config(state=Path(tmp) / "state", quiet=True))
        bench.world.store.shared = args.shared
        try:
            bench.scenarios.load(parse(world(10)))
            for name in args.only.split(","):
                one = FIGURES[name](bench, Path(tmp))
                for _ in range(WARM_UP):
                    one()
                _callgrind(True)
                t0 = time.process_time()
                for _ in range(args.n):
                    one()
                cpu_s = time.process_time() - t0
                _callgrind(False)
                if args.n:
                    cpu = cpu_s / args.n * 1000
                    print(f"{name}: {args.n} requests, {cpu:.3f} ms CPU per request")
        finally:
            bench.close()


if __name__ == "__main__":
    main()
