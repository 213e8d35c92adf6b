"""Issue 17 point 6: the control API and the dashboard are not open to whoever reaches the port.

A bench given a control token (or bound beyond loopback, which makes one) requires it for the control API and
the dashboard; the Host header is checked (DNS rebinding); a state-changing call from another site's page, or
with a form's content type, is refused even on loopback. The doors on the same port are not affected. The
CLI, the runner and the pytest plugin pass the token.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from mockbench.bench import Bench
from mockbench.config import Config
from mockbench.control.security import COOKIE, TOKEN_FILE

TOKEN = "jeton-de-test-0123456789"
FREE = dict(http_port=0, https_port=0, mllp_port=0, smtp_port=0, imap_port=0)


def patient_count(bench) -> int:
    with bench.world.transaction() as tx:
        return len(bench.world.directory.patients(tx))


@pytest.fixture
def guarded(mockbench_factory):
    running = mockbench_factory(control_token=TOKEN)
    running.client.load("hidden-documents")
    return running


# The token ---------------------------------------------------------------------------------------------------
def test_a_bench_beyond_loopback_makes_a_token_and_keeps_it_for_local_clients(tmp_path):
    bench = Bench(Config(**FREE, host="0.0.0.0", state=tmp_path / "s"))  # not started: nothing listens
    try:
        assert bench.control_token and len(bench.control_token) >= 24
        path = tmp_path / "s" / TOKEN_FILE
        assert path.read_text().strip() == bench.control_token and path.stat().st_mode & 0o077 == 0
        bench.ports["http"] = 8080
        assert f"/?token={bench.control_token}" in bench.ready_line()
    finally:
        bench.close()
    loopback = Bench(Config(**FREE, state=tmp_path / "s"))
    try:
        assert loopback.control_token is None and not (tmp_path / "s" / TOKEN_FILE).exists()
    finally:
        loopback.close()


def test_the_control_api_requires_the_token(guarded):
    url = guarded.url + "/_bench"
    refused = requests.get(f"{url}/patients", timeout=5)
    assert refused.status_code == 401 and refused.json()["error"] == "TOKEN_REQUIRED"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.post(f"{url}/reset", headers={"Authorization": "Bearer nope"}, json={}, timeout=5)
    assert wrong.status_code == 401 and patient_count(guarded.bench) > 0
    ok = requests.get(f"{url}/patients", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()
    # Liveness without the token, and nothing else.
    assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    assert "ports" in guarded.client.health()   # the plugin's client carries the token


def test_the_dashboard_asks_for_the_token_then_keeps_it_in_a_strict_cookie(guarded):
    page = requests.get(guarded.url + "/", timeout=5)
    assert page.status_code == 401 and 'name="token"' in page.text and "dashboard.js" not in page.text
    assert requests.get(guarded.url + "/?token=nope", timeout=5).status_code == 401
    session = requests.Session()
    login = session.get(guarded.url + f"/?token={TOKEN}", allow_redirects=False, timeout=5)
    assert login.status_code == 303 and login.headers["Location"].endswith("/")
    cookie = login.headers["Set-Cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "dashboard.js" in session.get(guarded.url + "/", timeout=5).text
    assert session.get(guarded.url + "/_bench/patients", timeout=5).status_code == 200
    assert requests.get(guarded.url + "/_dashboard/dashboard.js", timeout=5).status_code == 200


# Host header (DNS rebinding) --------------------------------------------------------------------------------
def test_a_foreign_host_name_is_refused_but_the_doors_answer_it(mockbench):
    url = mockbench.url
    port = mockbench.ports["http"]
    rebound = requests.get(f"{url}/_bench/patients", headers={"Host": f"attacker.example:{port}"}, timeout=5)
    assert rebound.status_code == 403 and rebound.json()["error"] == "HOST_NOT_ALLOWED"
    assert requests.get(url + "/", headers={"Host": "attacker.example"}, timeout=5).status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "bench.localhost", f"[::1]:{port}"):
        assert requests.get(f"{url}/_bench/patients", headers={"Host": host}, timeout=5).status_code == 200, host
    # The doors' own wires: a WSDL and the FHIR metadata, whatever the Host.
    wsdl = requests.get(f"{url}/si-dmp-server/v2/services/repository?wsdl",
                        headers={"Host": "dmp.example"}, timeout=5)
    assert wsdl.status_code == 200 and b"definitions" in wsdl.content
    fhir = requests.get(f"{url}/fhir/v1/metadata", headers={"Host": "annuaire.example"}, timeout=5)
    assert "HOST_NOT_ALLOWED" not in fhir.text


def test_allowed_hosts_and_public_url_add_names(mockbench_factory):
    running = mockbench_factory(allowed_hosts="bench.lan, other.lan", public_url="http://public.example:9000")
    for host in ("bench.lan", "other.lan:80", "public.example:9000"):
        response = requests.get(f"http://127.0.0.1:{running.ports['http']}/_bench/patients", headers={"Host": host},
                                timeout=5)
        assert response.status_code == 200, host


# Cross-site requests ----------------------------------------------------------------------------------------
def test_a_cross_origin_state_change_is_refused_even_on_loopback(mockbench):
    mockbench.client.load("hidden-documents")
    url = mockbench.url + "/_bench"
    for headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        refused = requests.post(f"{url}/reset", headers={**headers, "Content-Type": "application/json"},
                                data=b"{}", timeout=5)
        assert refused.status_code == 403 and refused.json()["error"] == "CROSS_ORIGIN", headers
    assert patient_count(mockbench.bench) > 0
    for kind in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"):
        refused = requests.post(f"{url}/scenarios", headers={"Content-Type": kind}, data=b"id: x", timeout=5)
        assert refused.status_code == 415 and refused.json()["error"] == "UNSUPPORTED_MEDIA_TYPE", kind
    assert requests.post(f"{url}/scenarios/dmp-ux-15", data=b"", timeout=5).status_code == 200  # curl -X POST
    same = requests.post(f"{url}/reset", headers={"Origin": mockbench.url}, json={}, timeout=5)
    assert same.status_code == 200 and patient_count(mockbench.bench) == 0


class _HostilePage(http.server.BaseHTTPRequestHandler):
    """A page on another origin that posts to the bench as a browser lets any page: no preflight."""

    bench_url = ""

    def do_GET(self):  # noqa: N802 - http.server's name
        script = (f'fetch("{self.bench_url}/_bench/reset", {{method: "POST", mode: "no-cors", body: "{{}}"}})'
                  f'.finally(() => fetch("{self.bench_url}/_bench/scenarios/dmp-ux-15", {{method: "POST", '
                  'mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: ""}))'
                  '.finally(() => { document.title = "done"; });')
        body = f"<!DOCTYPE html><title>page</title><script>{script}</script>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_a_hostile_page_in_a_browser_cannot_reset_the_world(mockbench, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))   # the pages' browser set-up, whatever the import mode
    from test_security_pages import start_browser
    mockbench.client.load("hidden-documents")
    handler = type("Page", (_HostilePage,), {"bench_url": mockbench.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver = start_browser(tmp_path)
        try:
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
            WebDriverWait(driver, 10).until(lambda d: d.title == "done")  # both posts were answered
        finally:
            driver.quit()
    finally:
        server.shutdown()
        server.server_close()
    assert patient_count(mockbench.bench) > 0, "a page of another site reset the world"
    with mockbench.bench.world.transaction() as tx:
        assert mockbench.bench.scenarios.loaded(tx)["id"] == "hidden-documents"



# Clients pass the token ------------------------------------------------------------------------------------
def test_cli_commands_pass_the_token(guarded, capsys, tmp_path, monkeypatch):
    from mockbench.cli import main

    monkeypatch.delenv("MOCKBENCH_CONTROL_TOKEN", raising=False)
    assert main(["status", "--url", guarded.url]) == 1
    assert "401" in capsys.readouterr().err
    assert main(["status", "--url", guarded.url, "--control-token", TOKEN]) == 0
    assert "scenario: hidden-documents" in capsys.readouterr().out
    out = tmp_path / "r.json"
    assert main(["report", "--url", guarded.url, "--format", "json", "--out", str(out),
                 "--control-token", TOKEN]) == 0 and out.read_text().startswith("{")
    monkeypatch.setenv("MOCKBENCH_CONTROL_TOKEN", TOKEN)   # read when the parser is built
    assert main(["reset", "--url", guarded.url]) == 0 and patient_count(guarded.bench) == 0
    assert main(["scenario", "run", "dmp-ux-15", "--url", guarded.url, "--timeout", "0.2", "--no-report"]) in (0, 1)
    with guarded.bench.world.transaction() as tx:
        assert guarded.bench.scenarios.loaded(tx)["id"] == "dmp-ux-15"


def test_up_beyond_loopback_prints_the_token_link(tmp_path):
    """`mockbench up --control-token` in a subprocess: the ready line gives the dashboard's token link."""
    port_file = tmp_path / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--state", str(tmp_path / "s"),
                             "--control-token", TOKEN, "--http-port", "0", "--mllp-port", "0", "--smtp-port", "0",
                             "--imap-port", "0", "--port-file", str(port_file), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("mockbench ready at") and f"/?token={TOKEN}" in line
        assert (tmp_path / "s" / TOKEN_FILE).read_text().strip() == TOKEN
    finally:
        proc.terminate()
        proc.wait(timeout=10)
