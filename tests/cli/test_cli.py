"""The `mockbench` command, as a user types it."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kit.process import wait_for_port_file

from mockbench.cli import main
from mockbench.config import ConfigError, load


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_scenario_list_groups_by_requirement_family(capsys):
    code, out, _ = run(capsys, "scenario", "list")
    assert code == 0
    assert "DMP : dossier médical partagé\n" in out and "  hidden-documents " in out and "consent-withdrawal" in out


def test_scenario_show(capsys):
    code, out, _ = run(capsys, "scenario", "show", "dmp-authorization-withdrawn")
    assert code == 0
    assert "dmp-authorization-withdrawn: Autorisation retirée par le patient côté DMP" in out
    assert "retrait_chu (manuelle)" in out and "retrait_clinique (après 1 × TD3.1)" in out
    assert "1. acces_valide:" in out


def test_scenario_show_unknown(capsys):
    code, _, err = run(capsys, "scenario", "show", "nope")
    assert code == 1 and "no scenario nope; the catalogue has:" in err


def test_validate_reports_file_line_and_field(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("id: good\ntitle: Bon\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\ntitle: Mauvais\nworld:\n  patients:\n    - id: a\n      ins: '277076322082945'\n")
    code, out, err = run(capsys, "scenario", "validate", str(good), str(bad))
    assert code == 1
    assert f"{good}: ok (good)" in out
    assert f"{bad}:6: world.patients[0].ins: 277076322082945 is not a valid NIR, its key should be 10" in err


def test_validate_all_catalogue_files(capsys):
    files = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))
    code, out, _ = run(capsys, "scenario", "validate", *map(str, files))
    assert code == 0 and out.count(": ok (") == len(files) >= 3


def test_pki_init(capsys, tmp_path):
    code, out, _ = run(capsys, "pki", "init", str(tmp_path / "pki"))
    assert code == 0 and (tmp_path / "pki" / "server.crt").exists() and "--tls-dir" in out
    assert "PKCS#12 (.p12, password mockbench)" in out and (tmp_path / "pki" / "clients" / "org-auth-cli.p12").exists()
    code, _, err = run(capsys, "pki", "init", str(tmp_path / "pki"))
    assert code == 1 and "refusing to overwrite" in err
    # the CLI names its own flag, not the Python argument (issue 18 point 5)
    assert "add --force" in err and "overwrite=True" not in err
    assert run(capsys, "pki", "init", str(tmp_path / "pki"), "--force")[0] == 0


def test_status_and_reset_against_a_running_bench(capsys, mockbench):
    mockbench.client.load("hidden-documents")
    code, out, _ = run(capsys, "status", "--url", mockbench.url)
    assert code == 0 and "scenario: hidden-documents" in out and "… recherche_alice" in out
    code, out, _ = run(capsys, "reset", "--url", mockbench.url)
    assert code == 0 and mockbench.client.patients() == []


def test_status_without_a_bench(capsys):
    code, _, err = run(capsys, "status", "--url", "http://127.0.0.1:9")
    assert code == 1 and "no bench answers at http://127.0.0.1:9" in err


def test_help_texts_list_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("up", "scenario", "reset", "status", "pki"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["up", "--help"])
    out = capsys.readouterr().out
    for option in ("--state", "--reset", "--scenario", "--tls-dir", "--http-port", "--https-port", "--mllp-port",
                   "--smtp-port", "--imap-port", "--public-url", "--port-file", "--dpi-mllp", "--log-level",
                   "--quiet", "--config", "--host"):
        assert option in out


def test_config_precedence(tmp_path):
    file = tmp_path / "bench.toml"
    file.write_text('http_port = 9000\nsmtp_port = 9025\nlog_level = "DEBUG"\n')
    config = load(file, env={"MOCKBENCH_HTTP_PORT": "9100", "MOCKBENCH_QUIET": "yes"}, flags={"smtp_port": 0})
    assert (config.http_port, config.smtp_port, config.log_level, config.quiet) == (9100, 0, "DEBUG", True)


@pytest.mark.parametrize("text,message", [
    ("http_port = 'x'", "http_port: 'x' is not a valid int"),
    ("colour = 1", "unknown setting colour"),
    ("http_port = [", "not valid TOML"),
    ("http_port = 70000", "http_port: 70000 is not a valid int"),
    ("log_level = 'LOUD'", "log_level: 'LOUD' is not one of"),
    ("public_ports = 'mllp:12575'", "public_ports: 'mllp:12575' is not NAME=PORT"),
    ("public_ports = 'ftp=21'", "public_ports: 'ftp=21' is not NAME=PORT"),
    ("public_ports = 'http=0'", "public_ports: '0' is not a port number"),
])
def test_config_errors(tmp_path, text, message):
    file = tmp_path / "bench.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(file, env={})


@pytest.mark.slow
def test_up_prints_one_ready_line_and_stops_cleanly(tmp_path):
    port_file = tmp_path / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--http-port", "0", "--mllp-port", "0",
                             "--smtp-port", "0", "--imap-port", "0", "--port-file", str(port_file),
                             "--state", str(tmp_path / "s"), "--scenario", "hidden-documents"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = wait_for_port_file(proc, port_file, 20)["http"]
        line = proc.stdout.readline()
        assert line.startswith(f"mockbench ready at http://127.0.0.1:{port} (http={port} mllp=")
        assert f"state {tmp_path / 's'}" in line and "scenario hidden-documents" in line
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert "control load - accepted by mockbench" in proc.stderr.read()


# ephemeral ports: the defaults (8080, 2575...) may be taken, by a `make up` or a parallel test worker
FREE_PORTS = ["--http-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0"]


def test_up_refuses_a_scenario_over_a_world_without_reset(tmp_path, capsys):
    state = tmp_path / "s"
    from mockbench.bench import Bench
    from mockbench.config import Config
    Bench(Config(state=state)).close()
    code = main(["up", "--state", str(state), *FREE_PORTS, "--scenario", "hidden-documents"])
    assert code == 1 and "already holds a world" in capsys.readouterr().err


def test_up_with_a_bad_scenario_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\n")
    code = main(["up", "--state", str(tmp_path / "s"), *FREE_PORTS, "--scenario", str(bad)])
    assert code == 1 and "bad.yaml:1: (top): the field title is required" in capsys.readouterr().err
