"""Injected faults on the MSSanté doors (issue 23), through smtplib and imaplib over real sockets: SMTP 421,
451 and 452 at the connection, MAIL, RCPT and DATA (RFC 5321, 4.2.3; trans-cda-r2/error-codes.md lists these
codes), IMAP BYE and NO on a command (RFC 3501, 7.1), a delayed MDN; nothing delivered when refused."""

from __future__ import annotations

import imaplib
import smtplib

import pytest

JEANNE = "jeanne.martin@chu.mssante.fr"
SECRETARIAT = "secretariat@chu.mssante.fr"
ANSWERS = "correspondant@clinique.mssante.fr"
WORLD = f"""\
id: mss-faults
title: Pannes MSSanté
seed: 7
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {JEANNE}}}
  mailboxes:
    - {{address: {SECRETARIAT}, type: ORG, owner: chu, role: hospital}}
    - address: {ANSWERS}
      role: correspondent
      behaviour: {{mdn: true}}
"""


def mail(to: str = SECRETARIAT, subject: str = "Compte rendu") -> bytes:
    return (f"From: {JEANNE}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@dpi>\r\n"
            f"Disposition-Notification-To: {JEANNE}\r\n\r\nBonjour.\r\n").encode()


@pytest.fixture
def bench(mockbench):
    mockbench.client.load_yaml(WORLD)
    return mockbench


def _delivered(bench, address: str = SECRETARIAT) -> int:
    with bench.world.transaction() as tx:
        return len(bench.world.mss.messages(tx, address))


def _client(bench) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
    client.ehlo("dpi.test")
    client.login(JEANNE, "mockbench")
    return client


@pytest.mark.parametrize("stage,code", [("MAIL", 451), ("RCPT", 452), ("DATA", 451), ("RCPT", 421)])
def test_a_transient_reply_at_a_stage_delivers_nothing_then_the_retry_goes_through(bench, stage, code):
    bench.client.set_fault(id="busy", door="mss", kind="smtp_reply", code=code, stage=stage, times=1)
    client = _client(bench)
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError,
                        smtplib.SMTPServerDisconnected)) as caught:
        client.sendmail(JEANNE, [SECRETARIAT], mail())
    error = caught.value
    seen = getattr(error, "smtp_code", None) or next(iter(getattr(error, "recipients", {}).values()), (None,))[0]
    if code == 421 and seen is None:   # smtplib reads the 421 and the close as a disconnection
        assert isinstance(error, smtplib.SMTPServerDisconnected)
    else:
        assert seen == code
    assert _delivered(bench) == 0
    entry = [e for e in bench.client.journal(channel="mss", operation="SUBMIT") if e.get("fault")]
    assert [(e["fault"], e["code"], e["verdict"]) for e in entry] == [("busy", f"FAULT_SMTP_{code}", "error")]
    client.close()
    client = _client(bench)
    assert client.sendmail(JEANNE, [SECRETARIAT], mail(subject="Encore")) == {}
    client.quit()
    assert _delivered(bench) == 1


def test_421_at_the_connection(bench):
    bench.client.set_fault(door="mss", kind="smtp_reply", code=421, stage="connect", times=1)
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
    assert caught.value.smtp_code == 421
    _client(bench).quit()   # the next connection is served


def test_a_connect_stage_reply_other_than_421_is_refused_naming_the_field(bench):
    from mockbench.testing.client import BenchHTTPError

    with pytest.raises(BenchHTTPError) as caught:
        bench.client.set_fault(door="mss", kind="smtp_reply", code=451, stage="connect")
    assert caught.value.status == 400 and caught.value.body["field"] == "code"


def test_imap_no_then_bye_on_a_command(bench):
    with bench.world.transaction() as tx:
        bench.world.mss.deliver(tx, "x@mssante.fr", [SECRETARIAT], mail())
    bench.client.set_fault(door="mss", kind="imap_no", match={"operation": "IMAP_SELECT"}, times=1)
    bench.client.set_fault(door="mss", kind="imap_bye", match={"operation": "IMAP_FETCH"}, times=1)
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)
    conn.login(SECRETARIAT, "mockbench")
    status, data = conn.select("INBOX")
    assert status == "NO" and b"UNAVAILABLE" in data[0]
    assert conn.select("INBOX")[0] == "OK"
    with pytest.raises(imaplib.IMAP4.abort):
        conn.fetch("1", "(FLAGS)")
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)   # a new connection is served
    conn.login(SECRETARIAT, "mockbench")
    conn.select("INBOX")
    status, data = conn.fetch("1", "(FLAGS)")
    assert status == "OK" and b"\\Seen" not in data[0]       # the refused FETCH changed nothing
    conn.logout()
    codes = [e["code"] for e in bench.client.journal(channel="mss") if e.get("fault")]
    assert codes == ["FAULT_IMAP_NO", "FAULT_IMAP_BYE"]


def test_a_delayed_mdn_waits_on_the_virtual_clock(bench):
    bench.client.set_fault(id="late", door="mss", kind="mdn_delay", seconds=60, match={"actor": ANSWERS})
    client = _client(bench)
    client.sendmail(JEANNE, [ANSWERS], mail(to=ANSWERS))
    client.quit()
    assert _delivered(bench, JEANNE) == 0
    bench.client.advance("61s")
    assert _delivered(bench, JEANNE) == 1
    assert [f["rule"] for f in bench.client.fired_faults()] == ["late"]


MARTIN = "jeanne.martin@chu-test.mssante.fr"
SECRETARIAT_TEST = "secretariat@chu-test.mssante.fr"


def _play_451(bench, queue: bool) -> list[dict]:
    bench.client.load("mss-451-queue")
    raw = (f"From: {MARTIN}\r\nTo: {SECRETARIAT_TEST}\r\nSubject: Compte rendu\r\nMessage-ID: <cr1@dpi>\r\n\r\n"
           "Bonjour.\r\n").encode()
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
    client.login(MARTIN, "mockbench")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        client.sendmail(MARTIN, [SECRETARIAT_TEST], raw)
    assert caught.value.recipients[SECRETARIAT_TEST][0] == 451
    client.quit()
    bench.client.advance("2m")              # the fault's window ends on the virtual clock
    if queue:
        client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
        client.login(MARTIN, "mockbench")
        assert client.sendmail(MARTIN, [SECRETARIAT_TEST], raw) == {}
        client.quit()
    return bench.client.finish()


@pytest.mark.scenario_play("mss-451-queue", "correct")
def test_mss_451_queue_played_correctly(mockbench):
    steps = _play_451(mockbench, queue=True)
    assert [s["status"] for s in steps] == ["passed", "passed", "passed"]


@pytest.mark.scenario_play("mss-451-queue", "mistake")
def test_mss_451_queue_a_dpi_that_loses_the_mail_fails(mockbench):
    steps = _play_451(mockbench, queue=False)
    assert [s["status"] for s in steps] == ["passed", "failed", "failed"]
    with mockbench.bench.world.transaction() as tx:
        assert mockbench.bench.world.mss.messages(tx, SECRETARIAT_TEST) == []


def test_network_faults_at_the_smtp_and_imap_connections(bench):
    import socket
    import time

    bench.client.set_fault(door="mss", kind="reset", match={"operation": "SMTP_CONNECT"}, times=1)
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
    bench.client.set_fault(door="mss", kind="timeout", seconds=30, match={"operation": "IMAP_CONNECT"}, times=1)
    started = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=1)
    assert time.monotonic() - started < 5
    bench.client.set_fault(door="mss", kind="trickle", seconds=0.5, match={"operation": "SMTP_CONNECT"}, times=1)
    started = time.monotonic()
    client = _client(bench)                       # every reply trickles: still a working session
    assert client.sendmail(JEANNE, [SECRETARIAT], mail()) == {}
    client.quit()
    assert time.monotonic() - started >= 0.5
    bench.client.set_fault(door="mss", kind="delay", seconds=0.5, match={"operation": "IMAP_CONNECT"}, times=1)
    started = time.monotonic()
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)
    assert time.monotonic() - started >= 0.5
    conn.login(SECRETARIAT, "mockbench")
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()
    codes = [(e["operation"], e["code"]) for e in bench.client.journal(channel="mss") if e.get("fault")]
    assert codes == [("SMTP_CONNECT", "FAULT_RESET"), ("IMAP_CONNECT", "FAULT_TIMEOUT"),
                     ("SMTP_CONNECT", "FAULT_TRICKLE"), ("IMAP_CONNECT", "FAULT_DELAY")]
