"""`mockbench scenario run`, against a running bench: as a CI job runs it (no terminal) and as a workshop host
types into it (a real pseudo-terminal)."""

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
from kit.pfi import mdm
from kit.pfi import send_raw as send_hl7

from mockbench.runner import Control, RunError, Runner

CLOCK_AND_TRANSITION = """
id: runner-check
title: Déroulé piloté depuis le terminal
requirement: DMP/TD0.2
world:
  structures: [{id: chu}]
  professionals: [{id: dr_a, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}]}]
transitions:
  - id: retrait
    say: Le patient retire l'autorisation du CHU
    when: {manual: true}
    do: [{set_authorization: {patient: alice, structure: chu, status: NON_EXISTE}}]
steps:
  - id: retrait_vu
    say: Le retrait est joué
    expect: {channel: control, operation: transition}
    then: {authorization: {patient: alice, structure: chu, status: NON_EXISTE}}
  - id: horloge
    say: L'horloge avance
    expect: {channel: control, operation: clock}
"""


def conf_03_01_messages(client) -> tuple[bytes, bytes]:
    patient = client.patient("alice")
    pro = client.call("GET", "/professionals")[0]
    finess = client.call("GET", "/structures")[0]["finess"]
    uid = "1.2.250.1.999.42.1"
    return mdm("T02", patient, pro, finess, uid, control_id="R1"), mdm("T04", patient, pro, finess, uid,
                                                                        control_id="R2")


def test_a_ci_run_shows_each_step_as_it_is_decided_and_exits_0(mockbench):
    proc = subprocess.Popen([sys.executable, "-m", "mockbench.cli", "scenario", "run", "dmp-conf-03-01",
                             "--url", mockbench.url, "--timeout", "30", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("dmp-conf-03-01 — Supprimer un document du DMP")
        lines = [proc.stdout.readline() for _ in range(4)]
        assert all(line.startswith("  … ") for line in lines), lines
        send_hl7(mockbench.ports["mllp"], *conf_03_01_messages(mockbench.client))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.count("✔") == 4 and "[réussie]" in out
    assert "4/4 étapes réussies" in out


def test_a_run_that_times_out_names_the_nearest_miss_and_exits_1(mockbench):
    mockbench.client.load("dmp-conf-03-01")
    c = mockbench.client
    t02, _ = conf_03_01_messages(c)
    out = io.StringIO()
    runner = Runner(Control(mockbench.url), "dmp-conf-03-01", out=out, poll=0.05)
    runner.load()
    patient, pro = c.patient("alice"), c.call("GET", "/professionals")[0]
    t10 = mdm("T10", patient, pro, c.call("GET", "/structures")[0]["finess"], "1.2.250.1.999.42.2",
              "1.2.250.1.999.42.1", control_id="R3")   # a replacement where a deletion was due
    send_hl7(mockbench.ports["mllp"], t02, t10)
    assert runner.run(timeout=0.5) == 1
    text = out.getvalue()
    assert "✔ 1." in text and "✔ 2." in text
    assert "✘ 3. " in text
    assert ("non observée : attendu : MDM^T04 ou ORU^R01 pour alice ; le plus proche : échange n° " in text
            and "MDM^T10 pour alice sur 1.2.250.1.999.42.2 à " in text), text
    assert "délai dépassé" in text and "2/4 étapes réussies" in text


def test_typed_commands_fire_transitions_and_move_the_clock(mockbench, tmp_path):
    scenario = tmp_path / "runner-check.yaml"
    scenario.write_text(CLOCK_AND_TRANSITION)
    out = io.StringIO()
    runner = Runner(Control(mockbench.url), str(scenario), out=out, poll=0.05)
    runner.load()
    runner.refresh()
    assert runner.command("7") is False and "pas de transition manuelle n° 7 (1 au total)" in out.getvalue()
    assert runner.command("t nope") is False and "refusé : POST /_bench/transitions/nope: 404" in out.getvalue()
    assert runner.command("1") is False and "transition retrait déclenchée" in out.getvalue()
    assert runner.command("+5m") is False and "horloge avancée de 5m" in out.getvalue()
    assert runner.command("+bogus") is False and "refusé : POST /_bench/clock: 400" in out.getvalue()
    assert runner.command("zzz") is False and "commande inconnue « zzz »" in out.getvalue()
    assert runner.command("q") is True
    assert runner.run(timeout=5) == 0
    assert [s["status"] for s in mockbench.client.steps()] == ["passed", "passed"]


def test_attach_watches_the_loaded_scenario_without_reloading(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    t02, t04 = conf_03_01_messages(c)
    send_hl7(mockbench.ports["mllp"], t02)
    runner = Runner(Control(mockbench.url), "dmp-conf-03-01", out=io.StringIO(), poll=0.05)
    runner.attach()
    threading.Timer(0.3, send_hl7, (mockbench.ports["mllp"], t04)).start()
    assert runner.run(timeout=10) == 0
    with pytest.raises(RunError, match="the bench plays dmp-conf-03-01, not hidden-documents"):
        Runner(Control(mockbench.url), "hidden-documents").attach()


def test_no_bench_is_a_clear_error(capsys):
    from mockbench.cli import main

    code = main(["scenario", "run", "hidden-documents", "--url", "http://127.0.0.1:9", "--no-report"])
    assert code == 1
    assert "no bench answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_unknown_scenario_is_refused_by_the_bench(mockbench, capsys):
    from mockbench.cli import main

    code = main(["scenario", "run", "nope", "--url", mockbench.url, "--no-report"])
    assert code == 1 and "POST /_bench/scenarios/nope: 404" in capsys.readouterr().err


def read_until(fd: int, needle: str, timeout: float = 20) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} never shown; the terminal shows:\n{seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen.decode("utf-8", "replace")


def test_in_a_terminal_the_host_fires_a_transition_by_its_number(mockbench, tmp_path):
    scenario = tmp_path / "runner-check.yaml"
    scenario.write_text(CLOCK_AND_TRANSITION)
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "mockbench.cli", "scenario", "run", str(scenario),
                             "--url", mockbench.url, "--timeout", "30", "--no-report"],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    try:
        screen = read_until(controller, "[1] retrait (à déclencher)")
        assert "\x1b[" in screen  # drawn in colour, redrawn in place
        os.write(controller, b"1\n")
        read_until(controller, "transition retrait déclenchée")
        os.write(controller, b"+30s\n")
        screen = read_until(controller, "2/2 étapes réussies")
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        os.close(controller)
    assert "horloge avancée de 30s" in screen


def test_a_finished_run_leaves_the_evidence_report(mockbench, tmp_path):
    out = tmp_path / "preuve.html"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench.cli", "scenario", "run", "dmp-conf-03-01",
                             "--url", mockbench.url, "--timeout", "30", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        send_hl7(mockbench.ports["mllp"], *conf_03_01_messages(mockbench.client))
        stdout, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"rapport : {out}" in stdout
    html = out.read_text(encoding="utf-8")
    assert "dmp-conf-03-01" in html and "MDM^T04" in html


def test_ctrl_c_finishes_the_run_and_leaves_a_report(mockbench, tmp_path):
    out = tmp_path / "preuve.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench.cli", "scenario", "run", "dmp-conf-03-01",
                             "--url", mockbench.url, "--format", "json", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(5):
            proc.stdout.readline()     # the title and the four pending steps: the run is watching
        proc.send_signal(signal.SIGINT)
        stdout, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "interrompu" in stdout and "0/4 étapes réussies" in stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["scenario"]["id"] == "dmp-conf-03-01"
    assert {s["status"] for s in mockbench.client.steps()} == {"failed"}


LONG_SAYS = """
id: runner-wide
title: Un déroulé dont les textes sont plus longs qu'une ligne de terminal de quatre-vingts colonnes
requirement: DMP/TD0.2
world:
  structures: [{id: chu}]
  professionals: [{id: dr_a, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}]}]
transitions:
  - id: retrait
    say: Le patient retire l'autorisation d'accès du centre hospitalier universitaire depuis son espace personnel en ligne
    when: {manual: true}
    do: [{set_authorization: {patient: alice, structure: chu, status: NON_EXISTE}}]
steps:
  - id: retrait_vu
    say: Le retrait de l'autorisation est joué par le tiers et le DPI en est informé à la prochaine consultation du dossier
    expect: {channel: control, operation: transition}
  - id: horloge
    say: L'horloge du banc avance d'une demi-minute pendant que l'animateur de l'atelier commente la suite du déroulé
    expect: {channel: control, operation: clock}
"""


class Terminal:
    """A real pseudo-terminal of a given size, its output read into a terminal emulator (pyte), so that a
    test sees the screen as the workshop host does."""

    def __init__(self, argv: list[str], columns: int, rows: int) -> None:
        import fcntl
        import struct
        import termios

        import pyte

        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True,
                                     env={**os.environ, "TERM": "xterm", "COLUMNS": "", "LINES": ""})
        os.close(terminal)

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())

    def wait_for(self, predicate, what: str, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = [line.rstrip() for line in self.screen.display]
            if predicate(lines):
                return lines
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what} never shown; the screen shows:\n" + "\n".join(lines))
            ready, _, _ = select.select([self.controller], [], [], min(left, 0.2))
            if ready:
                try:
                    self.stream.feed(os.read(self.controller, 65536))
                except OSError:
                    pass

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.controller)


def whole(lines: list[str]) -> bool:
    """The block is drawn once: its title on one row and every step on one row, no leftovers of a former
    drawing above or below."""
    text = "\n".join(lines)
    return (sum("runner-wide — " in line for line in lines) == 1 and text.count("1. Le retrait") == 1
            and text.count("2. L'horloge") == 1 and text.count("transitions :") == 1)


@pytest.mark.parametrize("columns,rows", [(80, 40), (200, 50)])
def test_the_screen_stays_whole_at_any_width_while_the_host_types(mockbench, tmp_path, columns, rows):
    scenario = tmp_path / "runner-wide.yaml"
    scenario.write_text(LONG_SAYS)
    term = Terminal([sys.executable, "-m", "mockbench.cli", "scenario", "run", str(scenario), "--url",
                     mockbench.url, "--timeout", "60", "--no-report"], columns, rows)
    try:
        lines = term.wait_for(lambda ls: any("[1] retrait (à déclencher)" in line for line in ls), "the block")
        assert whole(lines)
        assert all(len(line) < columns for line in lines)     # wrapped by the runner, never by the terminal
        term.type("zz")                                          # half a command: shown, nothing redrawn over it
        lines = term.wait_for(lambda ls: ls[-1].startswith("> zz") or "> zz" in ls, "the typed text")
        assert whole(lines)
        term.type("z\r")
        lines = term.wait_for(lambda ls: "commande inconnue « zzz »" in "\n".join(ls), "the unknown command")
        assert whole(lines)
        term.type("1\r")
        lines = term.wait_for(lambda ls: "transition retrait déclenchée" in "\n".join(ls)
                              and "✔ 1." in "\n".join(ls), "the fired transition")
        assert whole(lines) and "commande inconnue « zzz »" in "\n".join(lines)   # earlier messages kept
        term.type("+30s\r")
        assert term.proc.wait(timeout=20) == 0
        lines = term.wait_for(lambda ls: "2/2 étapes réussies" in "\n".join(ls), "the end of the run")
        assert "✔ 2." in "\n".join(lines)
    finally:
        term.close()


def test_junit_results_one_testcase_per_step(mockbench, tmp_path):
    from junitparser import Failure, JUnitXml

    junit = tmp_path / "steps.xml"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench.cli", "scenario", "run", "dmp-conf-03-01",
                             "--url", mockbench.url, "--timeout", "30", "--no-report", "--junit", str(junit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        t02, _ = conf_03_01_messages(mockbench.client)
        send_hl7(mockbench.ports["mllp"], t02)   # the feed, never the deletion
        mockbench.client.wait_for_step(mockbench.client.steps()[1]["id"])
        proc.send_signal(signal.SIGINT)
        stdout, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert f"résultats JUnit : {junit}" in stdout
    xml = JUnitXml.fromfile(str(junit))
    suite = next(iter(xml))
    assert suite.name == "dmp-conf-03-01" and suite.tests == 4 and suite.failures == 2
    cases = list(suite)
    steps = mockbench.client.steps()
    assert [c.name.split(" — ")[0] for c in cases] == [s["id"] for s in steps]
    assert all(c.classname == "mockbench.dmp-conf-03-01" for c in cases)
    assert [c.is_passed for c in cases] == [True, True, False, False]
    failure = cases[2].result[0]
    assert isinstance(failure, Failure) and failure.type == "NOT_OBSERVED"
    assert failure.message.startswith("non observée : attendu : MDM^T04 ou ORU^R01 pour alice")
    assert "not observed: expected MDM^T04 or ORU^R01 for alice" in failure.text   # the English reason too
    assert {p.name: p.value for p in suite.properties()}["requirement"] == "DMP/CONF.03"
