"""The SSI/IE.31 rule (checks/verification.py) on mails delivered to the outside catch-all mailbox."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.checks import verification

TO = "alice.durand@exemple.fr"


def mail(text: str, *, to: str = TO, html: str | None = None, attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "dpi@chu.mssante.fr", to, "Vérification de votre adresse"
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    if attachment:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="CR.pdf")
    return bytes(message)


def rules(findings: list[dict]) -> list[tuple[str, str]]:
    return [(f["rule"], f["severity"]) for f in findings]


def deliver(world, raw: bytes, to: list[str] | None = None) -> list[dict]:
    with world.transaction() as tx:
        (message, *_) = world.mss.deliver(tx, "dpi@chu.mssante.fr", to or [TO], raw)
    return message.findings


@pytest.mark.parametrize(("text", "code"), [
    ("Votre code de vérification : 482913.", "482913"),
    ("Code : 482 913 (valable 10 minutes)", "482913"),
    ("Saisissez le code suivant dans le DPI :\nAB7-K9Q2", "AB7K9Q2"),
])
def test_codes_are_read_after_the_word_code(text, code):
    secrets = verification.read_secrets(verification.read_mail(mail(text)), [TO])
    assert secrets.codes == (code,) and secrets.links == ()


def test_a_unique_link_needs_a_token_that_is_not_the_address():
    token = "q1V8cT0mZ3xW9rB2nL7kP4sD"
    raw = mail("Confirmez votre adresse.", html=f'<a href="https://dpi.test/v?t={token}&amp;lang=fr">ici</a> '
               f'ou <a href="https://dpi.test/v?email={TO}">là</a>')
    secrets = verification.read_secrets(verification.read_mail(raw), [TO])
    assert secrets.links == (f"https://dpi.test/v?t={token}&lang=fr",)
    assert secrets.weak_links == (f"https://dpi.test/v?email={TO}",)


def test_a_mail_to_the_outside_without_code_or_link_is_a_finding(cast):
    findings = deliver(cast.world, mail("Bonjour, votre adresse a été enregistrée."))
    assert rules(findings) == [("SSI/IE.31", "error")]
    assert "neither a verification code nor a unique link" in findings[0]["message"]


def test_a_sound_verification_is_recorded_as_evidence(cast):
    findings = deliver(cast.world, mail("Votre code de vérification : 731904."))
    assert findings == [{"rule": "MSS/OUTSIDE", "severity": "info",
                         "message": f"verification of {TO} by code 731904",
                         "message_fr": f"vérification de {TO} par le code 731904"}]


def test_a_short_code_several_addresses_attachments_and_an_ins_are_findings(cast):
    ins = cast.world.directory.patient
    with cast.world.transaction() as tx:
        alice_ins = ins(tx, "alice").ins
    findings = deliver(cast.world, mail(f"Code : 4821. Patient {alice_ins}.", attachment=b"%PDF-1.4"),
                       to=[TO, "autre@exemple.fr"])
    messages = [f["message"] for f in findings]
    assert rules(findings) == [("SSI/IE.31", "warning"), ("SSI/IE.31", "warning"), ("SSI/IE.31", "error"),
                               ("SSI/IE.31", "error")]
    assert "4 characters" in messages[0] and "several addresses" in messages[1]
    assert "attachment (CR.pdf)" in messages[2] and alice_ins in messages[3]


def test_a_code_or_link_sent_twice_is_a_finding_on_the_second(cast):
    assert rules(deliver(cast.world, mail("Code de vérification : 550123"))) == [("MSS/OUTSIDE", "info")]
    second = deliver(cast.world, mail("Code de vérification : 550123", to="b@exemple.fr"), to=["b@exemple.fr"])
    assert rules(second) == [("SSI/IE.31", "error")]
    assert second[0]["message"].startswith(f"the code 550123 was already sent to {TO} at ")


def test_a_reset_forgets_the_secrets(cast):
    deliver(cast.world, mail("Code de vérification : 123456"))
    with cast.world.transaction() as tx:
        cast.world.reset(tx)
    assert deliver(cast.world, mail("Code de vérification : 123456")) == [
        {"rule": "MSS/OUTSIDE", "severity": "info", "message": f"verification of {TO} by code 123456",
         "message_fr": f"vérification de {TO} par le code 123456"}]


def test_an_http_link_is_a_warning(cast):
    findings = deliver(cast.world, mail("Confirmez : http://dpi.chu-test.fr/v/Zk3q9LmP0aB7xY2wR5tU"))
    assert rules(findings) == [("SSI/IE.31", "warning")] and "is not https" in findings[0]["message"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(lambda t: ("Subject: x\r\nContent-Type: text/html; "
                                                                     "charset=x-unknown\r\n\r\n" + t).encode()))
def test_any_mail_is_read_without_failing(data):
    mail_text = verification.read_mail(data)
    secrets = verification.read_secrets(mail_text, [TO])
    assert all(isinstance(c, str) and c for c in secrets.codes)


@given(sex=st.sampled_from("12"), year=st.integers(0, 99), month=st.integers(1, 12),
       department=st.sampled_from(["01", "75", "2A", "2B", "99"]), commune=st.integers(1, 999),
       order=st.integers(1, 999))
def test_an_ins_is_seen_in_a_mail_wherever_the_patient_was_born(sex, year, month, department, commune, order):
    """SSI/IE.31 names an INS in a verification mail: Corsican NIRs (department 2A/2B, the letter in the
    seventh character) are INS too (it missed them: the letter was looked for in the sixth)."""
    from mockbench.world.identity import check_nir, nir_key

    body = f"{sex}{year:02d}{month:02d}{department}{commune:03d}{order:03d}"
    nir = body + f"{nir_key(body):02d}"
    check_nir(nir)
    assert verification._NIR.findall(f"Patient {nir}, né le ...") == [nir]
    assert verification._NIR.findall(f"ref X{nir}9") == []   # inside a longer token: not an INS
