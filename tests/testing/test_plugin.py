"""The pytest plugin as a vendor's QA engineer uses it: a pytest run in a subprocess, against a bench in this
process or one that runs in another process (remote mode), and what a failing test says."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kit.process import wait_for_port_file

STAT_CSV = "Mois;Type de document;Nombre d'envois;Nombre d'échecs\n2026-11;11488-4;3;0\n"


def pytest_run(tmp_path: Path, source: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    test = tmp_path / "test_vendor.py"
    test.write_text(source)
    # -p no:cacheprovider and a rootdir of its own: the run reads none of this project's configuration
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "-c", "/dev/null", str(test), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def remote_bench(tmp_path):
    """`mockbench up` in its own process, as a CI service would run it, with published ports."""
    port_file = tmp_path / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--http-port", "0", "--mllp-port", "0",
                             "--smtp-port", "0", "--imap-port", "0", "--port-file", str(port_file), "--quiet",
                             "--public-ports", "mllp=12575,smtp=12525"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = wait_for_port_file(proc, port_file, 30)
    yield f"http://127.0.0.1:{ports['http']}", ports
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)


REMOTE_TEST = '''
import pytest

@pytest.mark.mockbench_scenario("hidden-documents")
def test_loaded_on_the_remote_bench(mockbench):
    assert mockbench.remote
    assert [p["id"] for p in mockbench.client.patients()] == ["alice", "leo"]
    assert mockbench.ports["mllp"] == 12575 and mockbench.ports["smtp"] == 12525
    with pytest.raises(AttributeError, match="runs elsewhere"):
        mockbench.world

def test_reset_between_tests(mockbench):
    assert mockbench.client.patients() == []
    assert mockbench.client.health()["bound_ports"]["mllp"] != 12575
'''


@pytest.mark.slow
def test_remote_mode_drives_a_bench_in_another_process(tmp_path, remote_bench):
    url, ports = remote_bench
    run = pytest_run(tmp_path, REMOTE_TEST, "--mockbench-url", url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    import os
    run = pytest_run(tmp_path, REMOTE_TEST, env={**os.environ, "MOCKBENCH_URL": url})
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
def test_remote_mode_says_when_no_bench_answers(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # closed again: nothing listens there
    source = "def test_x(mockbench):\n    pass\n"
    run = pytest_run(tmp_path, source, "--mockbench-url", f"http://127.0.0.1:{port}", "--mockbench-wait", "0.5")
    assert run.returncode != 0
    assert f"--mockbench-url http://127.0.0.1:{port}: no bench answers" in run.stdout + run.stderr


FAILING_TEST = '''
import pytest

@pytest.mark.mockbench_scenario("dmp-conf-03-01")
def test_dpi_never_sent_anything(mockbench):
    mockbench.client.assert_steps_passed()

@pytest.mark.mockbench_scenario("dmp-conf-03-01")
def test_wait_names_what_was_seen(mockbench):
    from mockbench.testing.client import StepTimeout
    first = mockbench.client.steps()[0]["id"]
    with pytest.raises(StepTimeout) as caught:
        mockbench.client.wait_for_step(first, timeout=0.2)
    assert "still pending after 0.2 s" in str(caught.value)
    assert "non observée : attendu" in str(caught.value)
    assert mockbench.client.steps()[0]["status"] == "pending"   # waiting ended nothing
'''


@pytest.mark.slow
def test_a_failing_test_says_why_each_step_failed_and_keeps_the_evidence(tmp_path):
    reports = tmp_path / "evidence"
    run = pytest_run(tmp_path, FAILING_TEST, "--mockbench-reports", str(reports))
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "1 failed, 1 passed" in out
    assert "StepsNotPassed" in out and "steps of dmp-conf-03-01 did not pass" in out
    assert "not observed: expected" in out          # the reason with the nearest miss, in English
    assert "non observée : attendu : MDM^T02" in out   # and in French
    assert "[failed NOT_OBSERVED]" in out              # with its stable code
    written = list(reports.glob("*.html"))
    assert [p.name for p in written] == ["test_vendor.py_test_dpi_never_sent_anything.html"]
    assert f"evidence report of this test: {written[0]}" in out
    html = written[0].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "dmp-conf-03-01" in html


STRICT_TEST = f'''
import pytest

CSV = {STAT_CSV!r}

def _send_wrong_statistics(mockbench):
    from mockbench.testing.client import BenchHTTPError
    try:
        mockbench.client.call("POST", "/stat/check", raw=CSV.encode(), content_type="text/csv")
    except BenchHTTPError:
        pass

@pytest.mark.mockbench_strict
def test_strict_fails_on_error_findings(mockbench):
    _send_wrong_statistics(mockbench)

def test_lenient_by_default(mockbench):
    _send_wrong_statistics(mockbench)
'''


@pytest.mark.slow
def test_error_findings_fail_a_test_only_when_asked(tmp_path):
    run = pytest_run(tmp_path, STRICT_TEST)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout
    assert "error-severity conformance finding(s) on the bench" in run.stdout and "STAT/ES.01" in run.stdout
    run = pytest_run(tmp_path, STRICT_TEST, "--mockbench-fail-on-findings")
    assert "2 failed" in run.stdout, run.stdout
