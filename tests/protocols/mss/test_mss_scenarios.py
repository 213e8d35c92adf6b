"""The MSSanté scenarios of the catalogue, played with smtplib and imaplib standing in for the DPI; the
workshop host's part (injecting the packages) is POST /_bench/mss/send."""

from __future__ import annotations

import base64
import email
import imaplib
import smtplib
import subprocess
import sys
from email import policy

import pytest
from test_mss_corpus import broken_package  # the same directory, on sys.path under pytest

from mockbench.formats.mime import header_summary, mdn
from mockbench.formats.xdm import ans_subject
from mockbench.pki import client_context, load_tls_files

DPI = "dpi@chu-test.mssante.fr"
BIOLO = "biolo@labo.mssante.fr"
ERRORS = "erreurs-integration@chu-test.mssante.fr"


def send(bench, package: bytes, subject: str, *, mdn_wanted: bool = False) -> dict:
    (row,) = bench.client.call("POST", "/mss/send", {"from": BIOLO, "to": [DPI], "subject": subject, "mdn": mdn_wanted,
                                                     "package": base64.b64encode(package).decode()})
    return row


def dpi_fetch_new(conn: imaplib.IMAP4) -> list[bytes]:
    """What a DPI does: the unseen messages, whole (BODY[] marks them seen)."""
    conn.select("INBOX")
    typ, data = conn.uid("SEARCH", None, "UNSEEN")
    uids = data[0].split()
    if not uids:
        return []
    typ, data = conn.uid("FETCH", b",".join(uids).decode(), "(BODY[])")
    assert typ == "OK"
    return [d[1] for d in data if isinstance(d, tuple)]


def dpi_imap(bench) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)
    conn.login(DPI, "mockbench")
    return conn


def dpi_smtp(bench) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=5)
    client.login(DPI, "mockbench")
    return client


def attachment(raw: bytes) -> bytes:
    message = email.message_from_bytes(raw, policy=policy.default)
    part = next(p for p in message.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP")
    return part.get_content()


@pytest.fixture
def tls_bench(mockbench_factory, tmp_path):
    """A bench with --tls-dir: the applicative mailbox's client certificate (clients/app-mailbox.crt)."""
    pki = tmp_path / "pki"
    subprocess.run([sys.executable, "-m", "mockbench", "pki", "init", str(pki)], check=True, capture_output=True,
                   timeout=60)
    running = mockbench_factory(tls_dir=pki)
    running.tls_files = load_tls_files(pki)
    return running


def dpi_imap_by_certificate(bench) -> imaplib.IMAP4:
    """MSS/CONF.01: the applicative mailbox is opened with its client certificate, STARTTLS then
    AUTHENTICATE EXTERNAL (RFC 4422 appendix A; the authorization identity left empty)."""
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)
    conn.starttls(ssl_context=client_context(bench.tls_files, "app-mailbox"))
    typ, _ = conn.authenticate("EXTERNAL", lambda challenge: b"")
    assert typ == "OK"
    return conn


def play_mss_ux_05_bis_01(bench, corpus, conn: imaplib.IMAP4, suffixes=("_V1", "_V2", "_V2_Delete")) -> list[dict]:
    subject = ans_subject("CR de biologie", "PAT-TROIS", "DOMINIQUE", "19790328")
    for suffix in suffixes:
        package = (corpus / "xdm" / f"BIO-CR-BIO_2024.01_Microbiologie{suffix}.zip").read_bytes()
        send(bench, package, subject)
        (raw,) = dpi_fetch_new(conn)
        assert attachment(raw) == package, suffix
    conn.logout()
    return bench.client.finish()


@pytest.mark.scenario_play("mss-ux-05-bis-01", "correct")
def test_mss_ux_05_bis_01_three_versions_read_in_order(tls_bench, corpus):
    tls_bench.client.load("mss-ux-05-bis-01")
    steps = play_mss_ux_05_bis_01(tls_bench, corpus, dpi_imap_by_certificate(tls_bench))
    assert [(s["id"], s["status"]) for s in steps] == [
        ("ouverture_certificat", "passed"), ("lecture_v1", "passed"), ("lecture_v2", "passed"),
        ("lecture_suppression", "passed")], steps
    # the three deliveries are on Dominique's timeline: the packages' patientId is hers
    assert len(tls_bench.client.journal(channel="mss", operation="DELIVER", patient="dominique")) == 3
    (login,) = tls_bench.client.journal(channel="mss", operation="IMAP_LOGIN")
    assert (login["actor"], login["raw"], login["findings"]) == (DPI, "AUTHENTICATE EXTERNAL", [])


@pytest.mark.scenario_play("mss-ux-05-bis-01", "mistake")
def test_mss_ux_05_bis_01_the_app_mailbox_opened_by_password(tls_bench, corpus):
    tls_bench.client.load("mss-ux-05-bis-01")
    conn = imaplib.IMAP4("127.0.0.1", tls_bench.ports["imap"], timeout=5)
    conn.starttls(ssl_context=client_context(tls_bench.tls_files))      # TLS, but no client certificate
    conn.login(DPI, "mockbench")
    steps = play_mss_ux_05_bis_01(tls_bench, corpus, conn)
    assert [s["status"] for s in steps] == ["failed", "passed", "passed", "passed"]
    assert steps[0]["reason"].startswith(f"finding MSS/CONF.01: the applicative mailbox {DPI} was opened with "
                                         "LOGIN and the password")


@pytest.mark.scenario_play("mss-ux-05-bis-01", "mistake")
def test_mss_ux_05_bis_01_a_version_never_read_fails(tls_bench, corpus):
    tls_bench.client.load("mss-ux-05-bis-01")
    steps = play_mss_ux_05_bis_01(tls_bench, corpus, dpi_imap_by_certificate(tls_bench), suffixes=("_V1",))
    assert [s["status"] for s in steps] == ["passed", "passed", "failed", "failed"]
    assert steps[2]["reason"].startswith("not observed: expected IMAP_FETCH on 1.2.250.1.213.1.1.1.55.2024.8.2")


def play_mss_ux_12(bench, *, copy_to_errors: bool, error: str | None = "E12^Empreinte du document incorrecte",
                   complete: bool = True):
    bench.client.load("mss-ux-12")
    send(bench, broken_package(), ans_subject("Lettre", "PAT-TROIS", "DOMINIQUE", "19790328"), mdn_wanted=True)
    conn = dpi_imap(bench)
    (raw,) = dpi_fetch_new(conn)
    conn.logout()
    original = header_summary(raw)
    assert original["Disposition-Notification-To"] == BIOLO
    # trans-cda-mss/struct-msg-mdn.md: Original-Recipient, and the original's attachments returned
    report = mdn(original=original, reporter=DPI, to=BIOLO, error=error, domain="chu-test.fr",
                 original_recipient=DPI if complete else None, returned=raw if complete else None)
    client = dpi_smtp(bench)
    client.sendmail(DPI, [BIOLO], report)
    if copy_to_errors:
        client.sendmail(DPI, [ERRORS], report)
    client.quit()
    return bench.client.finish()


@pytest.mark.scenario_play("mss-ux-12", "correct")
def test_mss_ux_12_error_mdn_and_copy(mockbench):
    steps = play_mss_ux_12(mockbench, copy_to_errors=True)
    assert [(s["id"], s["status"]) for s in steps] == [
        ("lecture", "passed"), ("mdn_erreur", "passed"), ("mdn_remis", "passed"), ("copie_boite_erreur", "passed")]
    (back,) = mockbench.client.call("GET", f"/mss/mailboxes/{BIOLO}/messages")
    assert back["subject"].startswith("[KO Intégration système !][E12] XDM/1.0/DDM+Lettre")


@pytest.mark.scenario_play("mss-ux-12", "mistake")
def test_mss_ux_12_forgetting_the_error_mailbox_fails_the_last_step(mockbench):
    steps = play_mss_ux_12(mockbench, copy_to_errors=False)
    assert [s["status"] for s in steps] == ["passed", "passed", "passed", "failed"]
    assert steps[-1]["reason"] == f"not observed: expected DELIVER with actor {ERRORS}; nothing close was received"


@pytest.mark.scenario_play("mss-ux-12", "mistake")
def test_mss_ux_12_an_error_mdn_without_original_recipient_nor_attachments_is_a_finding(mockbench):
    """trans-cda-mss/struct-msg-mdn.md: the error MDN names Original-Recipient and returns the original's
    attachments (IHE_XDM.ZIP): the same rules as the bench's own error MDNs."""
    steps = play_mss_ux_12(mockbench, copy_to_errors=True, complete=False)
    assert steps[1]["id"] == "mdn_erreur" and steps[1]["status"] == "failed"
    (submit,) = [e for e in mockbench.client.journal(channel="mss", operation="SUBMIT")][:1]
    messages = [f["message"] for f in submit["findings"] if f["rule"] == "MSS/UX.12"]
    assert any("no Original-Recipient" in m for m in messages)
    assert any("does not return the original's attachments (IHE_XDM.ZIP)" in m for m in messages)


@pytest.mark.scenario_play("mss-ux-12", "mistake")
def test_mss_ux_12_a_success_mdn_for_a_broken_package_is_a_finding(mockbench):
    steps = play_mss_ux_12(mockbench, copy_to_errors=True, error=None)
    assert steps[1]["id"] == "mdn_erreur" and steps[1]["status"] == "failed"
    assert "finding MSS/UX.12" in steps[1]["reason"] and "reports no error" in steps[1]["reason"]


@pytest.mark.parametrize(("disposition", "problem"), [
    ("processed", None),
    ("automatic-action/MDN-sent-automatically; processed/Error: E1^Refus", None),
    ("automatic-action/MDN-sent-automatically; displayed", None),
    ("traité", "is not action-mode/sending-mode"),
    ("", "no Disposition field"),
])
def test_the_door_reads_the_disposition(disposition, problem):
    from mockbench.formats.mime import read_mdn

    report = mdn(original={"Subject": "s", "Message-ID": "<o@t>"}, reporter=DPI, to=BIOLO)
    line = b"Disposition: automatic-action/MDN-sent-automatically; processed"
    raw = report.replace(line, f"Disposition: {disposition}".encode() if disposition else b"X-Nothing: 1") \
        if disposition != "processed" else report
    shape = read_mdn(raw)
    assert shape is not None and shape.original == "<o@t>"
    if problem is None:
        assert shape.problems == ()
    else:
        assert any(problem in p for p in shape.problems), shape.problems
    assert (shape.error == "E1^Refus") == ("Error" in disposition)
    assert read_mdn(b"Subject: x\r\n\r\nplain\r\n") is None
