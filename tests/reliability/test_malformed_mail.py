"""Issue 17, point 12: a mail whose `Message-ID: <>`, `From: "` or `To: "` breaks Python's mail parser was
answered 451 (try again later), so a client retried it forever. An operator's MTA carries such a mail as it
is (it checks the envelope, not the content's fields): the bench delivers it (250) with a finding naming the
field and its RFC 5322 section, and every way to read it back (IMAP, the control API) still works."""

from __future__ import annotations

import imaplib
import smtplib

import pytest

SENDER, RECIPIENT = "dpi@chu-test.mssante.fr", "erreurs-integration@chu-test.mssante.fr"


@pytest.mark.parametrize("field,line", [
    ("Message-ID", b"Message-ID: <>"),
    ("From", b'From: "'),
    ("To", b'To: "'),
])
def test_a_mail_with_an_unparseable_field_is_delivered_with_a_finding(mockbench, field, line):
    client = mockbench.client
    client.load("mss-ux-12")
    headers = {b"From": f"From: <{SENDER}>".encode(), b"To": f"To: <{RECIPIENT}>".encode(),
               b"Message-ID": b"Message-ID: <m1@chu-test.mssante.fr>"}
    headers[field.encode()] = line
    raw = b"\r\n".join([*headers.values(), b"Subject: essai", b"", b"Bonjour", b""])
    with smtplib.SMTP("127.0.0.1", mockbench.bench.ports["smtp"], timeout=10) as smtp:
        smtp.login(SENDER, "mockbench")
        refused = smtp.sendmail(SENDER, [RECIPIENT], raw)   # raises on any 4xx/5xx to DATA
    assert refused == {}
    [submit] = [e for e in client.journal(channel="mss", operation="SUBMIT") if e["raw"] == raw.decode()]
    assert submit["verdict"] == "accepted"
    problems = [f for f in submit["findings"] if f["rule"] == "MIME/HEADER"]
    assert len(problems) == 1 and f"the {field} field cannot be parsed (RFC 5322 3.6." in problems[0]["message"]
    messages = client.call("GET", f"/mss/mailboxes/{RECIPIENT}/messages")
    assert len(messages) == 1
    stored = messages[0]
    assert client.call("GET", f"/mss/messages/{stored['id']}?raw=1") == raw
    assert client.call("GET", f"/mss/messages/{stored['id']}")["parts"]
    assert client.call("GET", f"/mss/messages/{stored['id']}/xdm")["package"] is None
    imap = imaplib.IMAP4("127.0.0.1", mockbench.bench.ports["imap"], timeout=10)
    try:
        imap.login(RECIPIENT, "mockbench")
        assert imap.select("INBOX")[0] == "OK"
        status, data = imap.fetch("1", "(ENVELOPE BODY.PEEK[])")
        assert status == "OK"
        assert raw in b"".join(part[1] for part in data if isinstance(part, tuple))
    finally:
        imap.logout()
