"""Malformed MIME through the SMTP door: stored as sent, said in findings, the door keeps serving."""

import smtplib

WORLD = """\
id: malformed
title: MIME mal formé
world:
  structures: [{id: chu}]
  mailboxes:
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: sec@chu.mssante.fr, type: ORG, owner: chu, role: hospital}
"""
BROKEN = [
    # a zip part whose base64 is not base64, and a multipart never closed
    b'Subject: XDM/1.0/DDM\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
    b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"!!!notbase64\r\n--zz",
    b"\xff\xfe\x00no header block at all\r\n\r\n\x00\x01",          # binary junk
    b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter",   # a multipart without its boundary
]


def test_malformed_mime_is_stored_with_findings(mockbench):
    mockbench.client.load_yaml(WORLD)
    with smtplib.SMTP("127.0.0.1", mockbench.ports["smtp"], timeout=10) as smtp:
        smtp.login("dpi@chu.mssante.fr", "mockbench")
        for raw in BROKEN:
            assert smtp.sendmail("dpi@chu.mssante.fr", ["sec@chu.mssante.fr"], raw) == {}
    submits = [e for e in mockbench.client.journal(channel="mss") if e["operation"] == "SUBMIT"]
    assert [e["verdict"] for e in submits] == ["accepted"] * 3
    assert "not a readable zip archive" in submits[0]["findings"][0]["message"]
    stored = mockbench.client.call("GET", "/mss/mailboxes/sec@chu.mssante.fr/messages")
    assert len(stored) == 3
    import requests
    junk = requests.get(f"{mockbench.url}/_bench/mss/messages/{stored[1]['id']}", params={"raw": 1}, timeout=5)
    assert b"no header block at all" in junk.content
