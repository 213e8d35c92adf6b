"""The benchmark harness imports and parses its arguments (it is never run here: no network, no npm).

`make bench` is not part of `make test` nor of CI; these checks only keep its scripts from rotting.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import driver, install, procs, report, run  # noqa: E402


@pytest.mark.parametrize("name", ["core", "pfi", "dmp", "growth", "write_lock", "tx_share", "mllp_inprocess",
                                  "contents_once", "smtp_inprocess", "startup"])
def test_standalone_scripts_import_and_parse(name: str) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0


def test_quick_mode_is_scaled_down() -> None:
    args = run.parse_args(["--quick"])
    assert args.settings is run.QUICK and args.settings.mode == "quick"
    assert args.only is None and args.json is None and not args.no_install
    quick, full = run.QUICK, run.FULL
    assert quick.memory_requests == 10_000 and full.memory_requests == 100_000
    assert quick.startup_rounds >= 3 and quick.rounds >= 3  # a median of several rounds, even when quick
    assert quick.round_time_s < full.round_time_s and quick.startup_rounds < full.startup_rounds


def test_full_mode_and_options() -> None:
    args = run.parse_args(["--only", "soap, mllp", "--json", "out.json", "--no-install"])
    assert args.settings is run.FULL
    assert args.only == ["soap", "mllp"] and args.json == Path("out.json") and args.no_install


def test_unknown_figure_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run.parse_args(["--only", "imap"])
    assert exc.value.code == 2
    assert "unknown figure" in capsys.readouterr().err


def test_make_bench_passes_quick() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", "bench", "QUICK=1"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "-m benchmarks.harness --quick" in dry.stdout
    full = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "-m benchmarks.harness" in full.stdout and "--quick" not in full.stdout


def test_peers_live_in_the_ignored_folder() -> None:
    assert procs.BENCH_DIR == ROOT / ".bench"
    assert procs.NODE_DIR.is_relative_to(procs.BENCH_DIR) and procs.VENV_DIR.is_relative_to(procs.BENCH_DIR)
    assert ".bench/" in (ROOT / ".gitignore").read_text().split()
    assert set(install.NODE_PEERS) == {"wiremock", "mountebank", "maildev", "oidc-provider"}
    assert procs.OIDC_HOST.exists() and procs.OIDC_HOST.parent == ROOT / "benchmarks" / "harness"


def test_every_figure_is_measured() -> None:
    assert run.FIGURES[-2:] == ("oidc", "slow") and report.LATER == []
    assert all(hasattr(run.Harness, f"fig_{name}") for name in run.FIGURES)
    assert run.parse_args(["--only", "oidc"]).only == ["oidc"]
    assert run.QUICK.oidc_connections == (1,) and 8 in run.FULL.oidc_connections


def test_driver_builds_a_keep_alive_request() -> None:
    spec = run.http_spec(8080, "POST", "/_bench/reset", b"{}", {"Content-Type": "application/json"},
                         count=1, time_limit=1)
    raw = driver.http_request(spec)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /_bench/reset HTTP/1.1\r\n")
    assert b"Host: 127.0.0.1:8080" in head and b"Content-Length: 2" in head and body == b"{}"
    assert driver.HOST == "127.0.0.1"  # the load goes to loopback only, whatever the spec says


def test_oidc_flow_follows_redirects_with_its_own_cookies() -> None:
    """A fake server: authorize -> interaction (sets a cookie) -> resume (needs it) -> callback, token, userinfo."""
    import asyncio
    import json as _json
    from urllib.parse import parse_qs, urlsplit

    class Fake(driver.HttpConnection):
        def __init__(self) -> None:
            super().__init__(1)
            self.seen: list[str] = []

        async def exchange(self, request: bytes) -> tuple[int, bytes]:
            line, _, rest = request.partition(b"\r\n")
            path = line.split()[1].decode()
            self.seen.append(path)
            self.cookies, self.headers = [], {}
            if path.startswith("/auth?"):
                assert parse_qs(urlsplit(path).query)["code_challenge_method"] == ["S256"]
                self.headers = {"location": "http://127.0.0.1:1/interaction/u"}
                self.cookies = ["_i=abc; path=/; httponly"]
                return 303, b""
            if path == "/interaction/u":
                assert b"Cookie: _i=abc" in rest
                self.headers = {"location": "/auth/u"}
                return 303, b""
            if path == "/auth/u":
                self.headers = {"location": "http://127.0.0.1/callback?code=c1&state=s"}
                return 303, b""
            if path == "/token":
                assert b"code=c1" in rest and b"code_verifier=" in rest and b"Authorization: Basic " in rest
                return 200, _json.dumps({"access_token": "t"}).encode()
            assert path == "/me" and b"Authorization: Bearer t" in rest
            return 200, b"{}"

    conn = Fake()
    spec = {"port": 1, "authorize": "/auth", "token": "/token", "userinfo": "/me", "client_id": "mockbench",
            "client_secret": "mockbench-secret", "redirect_uri": "http://127.0.0.1/callback", "scope": "openid",
            "login_hint": "dr"}
    assert asyncio.run(driver.oidc_flow(conn, spec)) > 0
    assert [p.split("?")[0] for p in conn.seen] == ["/auth", "/interaction/u", "/auth/u", "/token", "/me"]


def test_table_shows_ratio_noise_and_missing_peers() -> None:
    rows = [
        report.Row("startup to ready", "WireMock", "s", "lower", run.stats([0.4, 0.5, 0.45]),
                   run.stats([0.9, 1.0, 0.8])),
        report.Row("SOAP TD3.1, 1 conn", "WireMock", "req/s", "higher", run.stats([200.0]), None,
                   note="not installed: npm install failed"),
    ]
    rows.append(report.Row(figure="a figure to come", peer="oidc-provider", unit="", better="", ours=None,
                           theirs=None, note="later: not measured yet"))
    meta = {"mode": "quick", "date": "2026-11-26", "duration_s": 1.0, "install_s": 0.0, "cpus": 2,
            "python": "3.11", "peers": {}, "load": "driver", "mode_note": "Quick mode."}
    text = report.table(rows, meta, {})
    assert "0.450 s ±11%" in text and "0.900 s ±11%" in text and "0.50 (better)" in text
    assert "not installed: npm install failed" in text
    assert "later: not measured yet" in text and "Quick mode." in text
    assert rows[0].to_dict()["ratio"] == pytest.approx(0.5)


def test_slow_client_figure_is_printed_under_the_table() -> None:
    slow = {"requests_per_round": 40, "alone": [{"p50_ms": 2.0, "stalled": 0}, {"p50_ms": 4.0, "stalled": 0}],
            "loaded": [{"idle": 500, "slowloris": 100, "p50_ms": 3.3, "stalled": 0},
                       {"idle": 500, "slowloris": 100, "p50_ms": 3.3, "stalled": 1}]}
    line = report.slow_notes(slow)
    assert "3.0 ms alone, 3.3 ms with 500 idle and 100 slowloris" in line and "(1.10x" in line
    assert "1 of 80 stalled" in line
    assert run.parse_args(["--only", "slow"]).only == ["slow"]


def test_smtp_data_is_dot_stuffed_and_ended() -> None:
    assert driver.smtp_data(b"Subject: x\r\n\r\n.hidden\r\nline\r\n") == \
        b"Subject: x\r\n\r\n..hidden\r\nline\r\n.\r\n"
