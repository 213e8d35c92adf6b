"""Another process holding the world's write lock past the wait (world/xlock.py `WriteLockTimeout`) is answered
on each door's own wire as a circumstantial refusal the client may retry, as a full disk is (test_disk_full.py):
HL7 ACK AR with ERR 207, SMTP 451 4.4.5, IMAP NO [UNAVAILABLE], a SOAP 1.2 Receiver fault, HTTP 503 with
Retry-After on the Annuaire, OIDC and the control API. It is logged once per episode and never as a traceback;
nothing refused is journaled, and the same request goes through once the lock is free.

The test holds the flock on `world.db.lock` itself (a descriptor of its own conflicts with the bench's, in one
process too) and gives the bench's lock a short wait instead of its 10 s.
"""

from __future__ import annotations

import fcntl
import imaplib
import logging
import os
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager

import hl7
import pytest
import requests
from hl7.client import MLLPClient
from kit.pfi import mdm
from reliability_helpers import PFI_WORLD
from test_disk_full import fault_code, soap_query

from mockbench.bench import Bench
from mockbench.config import Config
from mockbench.protocols.annuaire.door import PREFIX as FHIR
from mockbench.world import xlock

SENDER = "dr.martin@chu.mssante.fr"
WAIT = 0.3   # the bench's wait for the lock in these tests (seconds)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Iterator[Bench]:
    folder = tmp_path_factory.mktemp("busy")
    scenario = folder / "world.yaml"
    scenario.write_text(PFI_WORLD.replace("Jeanne, structure: chu}", f"Jeanne, structure: chu, mssante: {SENDER}}}"),
                        encoding="utf-8")
    bench = Bench(Config(state=folder / "state", scenario=str(scenario), http_port=0, mllp_port=0, smtp_port=0,
                         imap_port=0))
    bench.store._xlock.wait = WAIT
    bench.start()
    try:
        yield bench
    finally:
        bench.close()


@contextmanager
def lock_held(bench: Bench, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Another holder of the world's write lock for the block; then: the episode was logged once, without a
    traceback."""
    fd = os.open(xlock.lock_path(bench.store.path), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        caplog.clear()
        yield
    finally:
        os.close(fd)
    busy = [r for r in caplog.records if "write lock" in r.getMessage() and r.levelno >= logging.ERROR]
    assert len(busy) == 1, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def journal(bench: Bench, operation: str) -> list[dict]:
    entries = requests.get(f"{bench.url}/_bench/journal", timeout=10).json()
    return [e for e in entries if e["operation"] == operation]


def assert_free_again_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert len([r for r in caplog.records if "write lock is free again" in r.getMessage()]) == 1


def test_pfi_answers_ar_then_aa(bench, caplog):
    patient = requests.get(f"{bench.url}/_bench/patients/alice", timeout=10).json()
    dr_a = requests.get(f"{bench.url}/_bench/professionals", timeout=10).json()[0]
    dr_a["finess"] = requests.get(f"{bench.url}/_bench/structures", timeout=10).json()[0]["finess"]
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.4.1", control_id="BUSY1")
    with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
        client.socket.settimeout(10)
        with lock_held(bench, caplog):
            for _ in range(2):   # trans-cda-r2 profils-messages.md, MSA-1 AR: "raison circonstancielle"
                ack = hl7.parse(client.send_message(message).decode())
                assert (str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])) == ("AR", "BUSY1")
                assert str(ack.segment("ERR")[3][0][0]) == "207"
                assert str(ack.segment("MSH")[10]).startswith("MBBUSY")
                assert "write lock" in str(ack.segment("ERR")[8])
        assert journal(bench, "MDM^T02") == []
        ack = hl7.parse(client.send_message(message).decode())
        assert str(ack.segment("MSA")[1]) == "AA"
    assert_free_again_logged(caplog)
    assert [e["verdict"] for e in journal(bench, "MDM^T02")] == ["accepted"]


def test_smtp_answers_451_then_accepts(bench, caplog):
    mail = f"From: <{SENDER}>\r\nTo: <{SENDER}>\r\nSubject: essai\r\n\r\nBonjour\r\n".encode()
    with smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10) as smtp:
        smtp.login(SENDER, "mockbench")
        with lock_held(bench, caplog):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:   # RCPT opens a write transaction
                smtp.sendmail(SENDER, [SENDER], mail)
            ((code, text),) = refused.value.recipients.values()
            assert code == 451 and text.startswith(b"4.4.5")
            with smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10) as other, \
                    pytest.raises(smtplib.SMTPAuthenticationError) as auth:
                other.login(SENDER, "mockbench")   # AUTH is journaled: refused the same way
            assert auth.value.smtp_code == 451
        assert journal(bench, "SUBMIT") == []
        assert smtp.sendmail(SENDER, [SENDER], mail) == {}
    assert_free_again_logged(caplog)
    assert len(journal(bench, "SUBMIT")) == 1


def test_imap_answers_no_unavailable_then_logs_in(bench, caplog):
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=10)
    try:
        with lock_held(bench, caplog):
            with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\].*busy"):
                conn.login(SENDER, "mockbench")   # RFC 5530 3
        assert conn.login(SENDER, "mockbench")[0] == "OK"
    finally:
        conn.logout()
    assert_free_again_logged(caplog)


def test_dmp_answers_a_receiver_fault_then_the_usual_answer(bench, caplog):
    url = f"{bench.url}/si-dmp-server/v2/services/registry"
    headers = {"Content-Type": "application/soap+xml"}
    before = len(journal(bench, "UNKNOWN")) + len(journal(bench, "TD3.1"))
    with lock_held(bench, caplog):   # SOAP 1.2 part 1 5.4.6: Receiver, the same message may succeed later
        soap = requests.post(url, data=soap_query(), headers=headers, timeout=10)
        assert soap.status_code == 500 and fault_code(soap) == ("Receiver", "DMPBusy")
    assert len(journal(bench, "UNKNOWN")) + len(journal(bench, "TD3.1")) == before
    assert fault_code(requests.post(url, data=soap_query(), headers=headers, timeout=10))[0] == "Sender"
    assert_free_again_logged(caplog)


def test_annuaire_answers_503_with_retry_after(bench, caplog):
    url, headers = f"{bench.url}{FHIR}/v2/Practitioner", {"ESANTE-API-KEY": "mockbench"}
    with lock_held(bench, caplog):
        fhir = requests.get(url, headers=headers, timeout=10)
        assert (fhir.status_code, fhir.headers.get("Retry-After")) == (503, "10")
        issue = fhir.json()["issue"][0]
        assert issue["code"] == "transient" and issue["details"]["coding"][0]["code"] == "WORLD_BUSY"
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    assert_free_again_logged(caplog)


def test_oidc_answers_503_temporarily_unavailable(bench, caplog):
    def token() -> requests.Response:
        return requests.post(f"{bench.url}/oidc/etab/token", data={
            "grant_type": "authorization_code", "code": "x", "redirect_uri": "http://127.0.0.1/callback"},
            auth=("mockbench", "mockbench-secret"), timeout=10)

    with lock_held(bench, caplog):   # RFC 6749 4.1.2.1
        busy = token()
        assert (busy.status_code, busy.json()["error"], busy.headers.get("Retry-After")) == \
            (503, "temporarily_unavailable", "10")
    assert token().json()["error"] == "invalid_grant"   # the unknown code, answered as usual
    assert_free_again_logged(caplog)


def test_control_api_answers_503_with_retry_after(bench, caplog):
    url = f"{bench.url}/_bench/clock"
    with lock_held(bench, caplog):
        control = requests.post(url, json={"advance": "1s"}, timeout=10)
        assert (control.status_code, control.json()["error"], control.headers.get("Retry-After")) == \
            (503, "WORLD_BUSY", "10")
    assert requests.post(url, json={"advance": "1s"}, timeout=10).status_code == 200
    assert_free_again_logged(caplog)
