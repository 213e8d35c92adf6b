"""The ANS XDM corpus through the MSSanté doors: smtplib sends every package of MOCKBENCH_CORPUS/xdm as an
MSSanté mail, imaplib fetches it back byte for byte; MDNs, success and error, come back to the sender."""

from __future__ import annotations

import email
import imaplib
import io
import smtplib
import zipfile
from email import policy
from email.message import Message

import pytest

from mockbench.formats import xmss
from mockbench.formats.cda import minimal_cda
from mockbench.formats.mime import xdm_mail
from mockbench.formats.xdm import ans_subject, read_package, write_package

IO = 10.0
DPI = "dpi@chu.mssante.fr"                   # the hospital's applicative mailbox, read by the DPI
JEANNE = "jeanne.martin@chu.mssante.fr"      # a hospital professional (PER) who sends
DUPONT = "dr.dupont@ville.mssante.fr"        # a correspondent who integrates and answers MDNs
ROUX = "dr.roux@clinique.mssante.fr"         # a correspondent whose integration fails
WORLD = f"""\
id: mss-corpus
title: Corpus XDM par MSSanté
seed: 9
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {JEANNE}}}
  mailboxes:
    - {{address: {DPI}, type: APP, owner: chu, role: hospital}}
    - {{address: {DUPONT}, role: correspondent, behaviour: {{on_receive: integrate, mdn: true}}}}
    - address: {ROUX}
      role: correspondent
      behaviour: {{on_receive: fail_integration, error: "E12^Document illisible"}}
"""


@pytest.fixture
def bench(mockbench):
    mockbench.client.load_yaml(WORLD)
    return mockbench


def smtp(bench, login: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=IO)
    client.ehlo("dpi.test")
    client.login(login, "mockbench")
    return client


def imap(bench, login: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=IO)
    conn.login(login, "mockbench")
    conn.select("INBOX")
    return conn


def fetch_all(conn: imaplib.IMAP4) -> list[bytes]:
    typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    return [d[1] for d in data if isinstance(d, tuple)]


def subject_of(package: bytes) -> str:
    cda = read_package(package).documents[0].cda
    label = cda.title or "Document"
    return ans_subject(label, cda.patient_family or "", cda.patient_first_given or cda.patient_given or "",
                       cda.birth_date or "")


def report_part(raw: bytes) -> tuple[Message, Message]:
    """The parsed report and its machine-readable part (message/disposition-notification)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "disposition-notification"
    parts = list(message.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    notification = next(p for p in parts if p.get_content_type() == "message/disposition-notification")
    return message, notification


def disposition(notification: Message) -> str:
    # The email package keeps a message/disposition-notification part as a list of header blocks.
    payload = notification.get_payload()
    blocks = payload if isinstance(payload, list) else [email.message_from_string(str(payload))]
    values = [b.get("Disposition") for b in blocks if b.get("Disposition")]
    assert values, "the report has no Disposition field"
    return str(values[0])


def test_every_corpus_package_goes_through_smtp_and_comes_back_identical_by_imap(bench, corpus):
    paths = sorted((corpus / "xdm").glob("*.zip"))
    assert len(paths) == 72
    sent: list[bytes] = []
    client = smtp(bench, JEANNE)
    for path in paths:
        package = path.read_bytes()
        # The X-MSS-* fields a compliant client writes (Référentiel socle MSSanté #2 ECO.2.4.1 to 2.4.3)
        headers = xmss.expected([d.cda for d in read_package(package).documents])
        raw = xdm_mail(sender=JEANNE, to=[DPI], subject=subject_of(package), package=package,
                       extra_headers={**headers, "X-MSS-NIL": "MOCKBENCH-TEST"})
        assert client.sendmail(JEANNE, [DPI], raw) == {}, path.name
        sent.append(raw)
    client.quit()
    submits = bench.client.journal(channel="mss", operation="SUBMIT")
    assert len(submits) == 72
    for path, entry in zip(paths, submits, strict=True):
        assert entry["verdict"] == "accepted", path.name
        assert entry["document"], path.name      # the first document's unique id
        # One exception in the corpus: the ANS newborn example names an INS whose NIR key is wrong
        # (2240275115835: key 12, not 55), which the DMP door refuses too. Otherwise no error finding, and only
        # ebrim's ANS quirks (warnings), if any.
        errors_found = [f for f in entry["findings"] if f["severity"] == "error"]
        if path.name == "SDM-MR_2025.01_nouveau-ne.zip":
            assert [f["rule"] for f in errors_found] == ["XDM/INS"] and "key should be 12" in errors_found[0]["message"]
            errors_found = []
        assert errors_found == [], (path.name, errors_found)
        assert not [f for f in entry["findings"] if f["rule"].startswith(("MSS/", "REF2/"))], path.name
    conn = imap(bench, DPI)
    fetched = fetch_all(conn)
    conn.logout()
    assert len(fetched) == 72
    for path, raw, back in zip(paths, sent, fetched, strict=True):
        assert back == raw, path.name
    assert len(bench.client.journal(channel="mss", operation="IMAP_FETCH")) == 72


def test_an_mdn_request_brings_back_an_rfc8098_report(bench, corpus):
    package = (corpus / "xdm" / "BIO-CR-BIO_2024.01_Microbiologie_V1.zip").read_bytes()
    raw = xdm_mail(sender=JEANNE, to=[DUPONT], subject=subject_of(package), package=package,
                   disposition_notification_to=JEANNE)
    client = smtp(bench, JEANNE)
    client.sendmail(JEANNE, [DUPONT], raw)
    client.quit()
    conn = imap(bench, JEANNE)
    (back,) = fetch_all(conn)
    conn.logout()
    message, notification = report_part(back)
    original_id = email.message_from_bytes(raw, policy=policy.default)["Message-ID"]
    assert message["In-Reply-To"] == original_id
    value = disposition(notification)
    assert value.startswith("automatic-action/MDN-sent-automatically;") and value.endswith("processed")
    assert "Error" not in value


def broken_package() -> bytes:
    """A package written by the XDM writer, then tampered: the CDA changed after METADATA.XML was written,
    so its hash and size no longer match."""
    cda = minimal_cda(unique_id="1.2.250.1.999.2.7", ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                      type_code="11488-4", title="Lettre de liaison", author_idnps="801234567897",
                      author_family="MARTIN", author_given="Jeanne", patient_family="PAT-TROIS",
                      patient_given="DOMINIQUE", birth_date="1979-03-28", sex="F",
                      effective_time="2024-01-04T15:05:27", text="Bonjour")
    package = write_package([("DOC0001.XML", cda, {"unique_id": "1.2.250.1.999.2.7", "title": "Lettre"})],
                            submission_set={"unique_id": "1.2.250.1.999.1.7", "source_id": "1.2.250.1.999",
                                            "content_type": "04"},
                            patient_id="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH")
    return tamper(package, "IHE_XDM/SUBSET01/DOC0001.XML", lambda b: b.replace(b"Bonjour", b"Bonsoir, tout"))


def tamper(package: bytes, member: str, change) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, change(data) if info.filename == member else data)
    return out.getvalue()


def test_a_broken_package_to_a_failing_correspondent_brings_back_its_error_mdn(bench):
    package = broken_package()
    doc = read_package(package).documents[0]
    assert not doc.hash_ok and not doc.size_ok
    subject = ans_subject("Lettre", "PAT-TROIS", "DOMINIQUE", "19790328")
    raw = xdm_mail(sender=JEANNE, to=[ROUX], subject=subject, package=package, disposition_notification_to=JEANNE)
    client = smtp(bench, JEANNE)
    client.sendmail(JEANNE, [ROUX], raw)
    client.quit()
    submit = bench.client.journal(channel="mss", operation="SUBMIT")[-1]
    assert submit["verdict"] == "accepted"    # the operator carries it; the finding says what is wrong
    assert any(f["severity"] == "error" for f in submit["findings"]), submit["findings"]
    conn = imap(bench, JEANNE)
    (back,) = fetch_all(conn)
    conn.logout()
    message, notification = report_part(back)
    assert str(message["Subject"]) == f"[KO Intégration système !][E12] {subject}"
    assert disposition(notification).endswith("processed/Error: E12^Document illisible")
