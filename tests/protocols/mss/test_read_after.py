"""`read_after`: a correspondent answers its MDN only once the virtual clock has moved that far."""

from __future__ import annotations

import email
import imaplib
import smtplib
import time
from email import policy

import pytest

from mockbench.testing.client import BenchHTTPError

JEANNE = "jeanne.martin@chu.mssante.fr"
DUPONT = "dr.dupont@ville.mssante.fr"
ROUX = "dr.roux@clinique.mssante.fr"
WORLD = f"""\
id: mss-read-after
title: Accusé de lecture différé
seed: 3
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {JEANNE}}}
  mailboxes:
    - {{address: {DUPONT}, role: correspondent, behaviour: {{on_receive: integrate, read_after: 2m}}}}
    - {{address: {ROUX}, role: correspondent, behaviour: {{on_receive: bounce}}}}
"""


@pytest.fixture
def bench(mockbench):
    mockbench.client.load_yaml(WORLD)
    return mockbench


def send(bench, to: str, subject: str = "Compte rendu") -> None:
    raw = (f"From: {JEANNE}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@dpi.test>"
           f"\r\nDisposition-Notification-To: {JEANNE}\r\n\r\nBonjour.\r\n").encode()
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
    client.login(JEANNE, "mockbench")
    client.sendmail(JEANNE, [to], raw)
    client.quit()


def inbox(bench) -> list[bytes]:
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)
    conn.login(JEANNE, "mockbench")
    conn.select("INBOX")
    typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
    conn.logout()
    return [d[1] for d in data if isinstance(d, tuple)]


def test_the_mdn_comes_only_after_read_after_on_the_virtual_clock(bench):
    send(bench, DUPONT, "Premier")
    assert inbox(bench) == []
    with bench.world.transaction() as tx:
        assert [p["mailbox"] for p in bench.world.mss.pending(tx)] == [DUPONT]
    bench.client.advance("1m")
    assert inbox(bench) == []
    send(bench, DUPONT, "Second")       # due one minute after the first
    bench.client.advance("61s")
    (first,) = inbox(bench)
    report = email.message_from_bytes(first, policy=policy.default)
    assert report.get_content_type() == "multipart/report" and report["In-Reply-To"] == "<Premier@dpi.test>"
    bench.client.advance("1m")
    assert len(inbox(bench)) == 2
    with bench.world.transaction() as tx:
        assert bench.world.mss.pending(tx) == []


def test_read_after_set_live_and_a_bounce_does_not_wait(bench):
    box = bench.client.call("PUT", f"/mss/mailboxes/{ROUX}/behaviour",
                            {"on_receive": "fail_integration", "error": "E1^Refus", "read_after": "30s"})
    assert box["behaviour"]["read_after"] == "30s"
    send(bench, ROUX, "Refus")
    assert inbox(bench) == []
    bench.client.advance("30s")
    (answer,) = inbox(bench)
    assert b"processed/Error: E1^Refus" in answer
    bench.client.call("PUT", f"/mss/mailboxes/{ROUX}/behaviour", {"on_receive": "bounce", "read_after": "1h"})
    send(bench, ROUX, "Rebond")
    assert len(inbox(bench)) == 2       # the operator's DSN is not a reader's answer: at once


def test_read_after_must_be_a_duration(bench):
    with pytest.raises(BenchHTTPError) as caught:
        bench.client.call("PUT", f"/mss/mailboxes/{DUPONT}/behaviour", {"read_after": "soon"})
    assert caught.value.status == 400


def test_a_scenario_refuses_a_bad_read_after(bench):
    with pytest.raises(BenchHTTPError) as caught:
        bench.client.load_yaml(WORLD.replace("read_after: 2m", "read_after: bientot"))
    assert "read_after" in str(caught.value.body)


def test_the_bench_ticker_sends_a_due_answer_without_any_request(bench):
    bench.client.call("PUT", f"/mss/mailboxes/{DUPONT}/behaviour", {"on_receive": "integrate", "read_after": "0.3"})
    send(bench, DUPONT, "Horloge")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with bench.world.store.transaction() as tx:   # the store itself: no tick hook runs here
            if tx.select("messages", mailbox=JEANNE):
                return
        time.sleep(0.1)
    raise AssertionError("the ticker did not send the MDN")
