"""SSI/IE.31 played end to end: smtplib stands in for the DPI sending verification mails to addresses
outside MSSanté (they land in the catch-all mailbox), once correctly and once reusing its code."""

from __future__ import annotations

import secrets
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from mockbench.world.mss import OUTSIDE_MAILBOX

DPI = "dpi@chu-test.mssante.fr"
ALICE = "alice.durand@exemple.fr"
JEANNE = "jeanne.martin@exemple.fr"


def verification_mail(to: str, *, code: str | None = None, link: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = DPI, to
    message["Subject"] = "CHU de Test : vérification de votre adresse électronique"
    message["Message-ID"] = make_msgid(domain="chu-test.fr")
    lines = ["Bonjour,", "", "Vous avez indiqué cette adresse au CHU de Test."]
    if code:
        lines.append(f"Votre code de vérification : {code} (valable 15 minutes).")
    if link:
        lines.append(f"Pour confirmer votre adresse, suivez ce lien : {link}")
    message.set_content("\n".join(lines))
    if link:
        message.add_alternative(f'<p>Pour confirmer votre adresse, <a href="{link}">cliquez ici</a>.</p>',
                                subtype="html")
    return bytes(message)


def dpi_sends(bench, *mails: tuple[str, bytes]) -> None:
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10)
    client.login(DPI, "mockbench")
    for to, raw in mails:
        assert client.sendmail(DPI, [to], raw) == {}
    client.quit()


@pytest.mark.scenario_play("ssi-ie-31", "correct")
def test_ssi_ie_31_a_code_then_a_unique_link(mockbench):
    mockbench.client.load("ssi-ie-31")
    code = f"{secrets.randbelow(10**6):06d}"
    link = f"https://dpi.chu-test.fr/verifier-adresse/{secrets.token_urlsafe(24)}"
    dpi_sends(mockbench, (ALICE, verification_mail(ALICE, code=code)), (JEANNE, verification_mail(JEANNE, link=link)))
    steps = mockbench.client.finish()
    assert [(s["id"], s["status"]) for s in steps] == [
        ("verification_patient", "passed"), ("verification_utilisateur", "passed")], steps
    received = mockbench.client.call("GET", f"/mss/mailboxes/{OUTSIDE_MAILBOX}/messages")
    assert [m["recipients"] for m in received] == [[ALICE], [JEANNE]]
    evidence = [f["message"] for m in received for f in m["findings"] if f["rule"] == "MSS/OUTSIDE"]
    assert evidence == [f"verification of {ALICE} by code {code}", f"verification of {JEANNE} by link {link}"]


@pytest.mark.scenario_play("ssi-ie-31", "mistake")
def test_ssi_ie_31_the_same_code_twice_fails_the_second_verification(mockbench):
    mockbench.client.load("ssi-ie-31")
    dpi_sends(mockbench, (ALICE, verification_mail(ALICE, code="482913")),
              (JEANNE, verification_mail(JEANNE, code="482913")))
    first, second = mockbench.client.finish()
    assert first["status"] == "passed"
    assert second["status"] == "failed"
    assert second["reason"].startswith(f"finding SSI/IE.31: the code 482913 was already sent to {ALICE} at ")


def test_ssi_ie_31_a_link_that_only_names_the_address_is_no_proof(mockbench):
    mockbench.client.load("ssi-ie-31")
    link = f"https://dpi.chu-test.fr/verifier?adresse={ALICE}"
    dpi_sends(mockbench, (ALICE, verification_mail(ALICE, link=link)))
    step = mockbench.client.finish()[0]
    assert step["status"] == "failed"
    assert "carries neither a verification code nor a unique link" in step["reason"]
    assert "carries no unguessable token" in step["reason"]
    (submit,) = mockbench.client.journal(channel="mss", operation="SUBMIT")
    assert [f["rule"] for f in submit["findings"] if not f["rule"].startswith("REF2/")] == ["SSI/IE.31"]
