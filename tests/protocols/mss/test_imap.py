"""The IMAP door with imaplib (and a raw socket for IDLE and hostile input) over real sockets."""

from __future__ import annotations

import base64
import imaplib
import io
import re
import socket
import time
import zipfile
from email.message import EmailMessage

import pytest

from mockbench.protocols.mss.imap_wire import tokenize

HOSPITAL = "dpi@chu.mssante.fr"
DR_A = "jeanne.martin@chu.mssante.fr"
SENDER = "expediteur@mssante.fr"

WORLD = f"""\
id: imap-test
title: Essai IMAP
seed: 7
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {DR_A}}}
    - {{id: dr_b, family_name: PETIT, given_name: Paul, structure: chu, mssante: paul.petit@chu.mssante.fr}}
  mailboxes:
    - {{address: {HOSPITAL}, type: APP, owner: chu, role: hospital}}
    - {{address: service@chu.mssante.fr, type: ORG, owner: chu, role: hospital}}
"""


def plain(subject: str, body: str = "Bonjour,\r\nCordialement\r\n") -> bytes:
    return (f"From: {SENDER}\r\nTo: {HOSPITAL}\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}"
            f"@test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n{body}").encode()


def with_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("IHE_XDM/SUBSET01/DOC0001.XML", b"<ClinicalDocument/>" + bytes(range(256)))
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = HOSPITAL
    msg["Subject"] = "Compte rendu XDM"
    msg["Message-ID"] = "<xdm@test>"
    msg.set_content("Veuillez trouver le document.\n")
    msg.add_attachment(archive.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg.as_bytes().replace(b"\n", b"\r\n")


LATIN1 = (b"From: " + SENDER.encode() + b"\r\nSubject: =?iso-8859-1?q?R=E9sultat?=\r\n"
          b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
          b"R\xe9sultat normal.\r\n\r\n\r\n")


@pytest.fixture
def imap(mockbench):
    mockbench.client.load_yaml(WORLD)
    return mockbench


def deliver(bench, raw: bytes, to: str = HOSPITAL) -> int:
    with bench.world.transaction() as tx:
        return bench.world.mss.deliver(tx, SENDER, [to], raw)[0].uid


def client(bench, login: str | None = HOSPITAL) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=5)
    if login:
        conn.login(login, "mockbench")
    return conn


def parse(data: bytes) -> list:
    return tokenize(data.decode("utf-8", "replace"), [])


def test_fetch_gives_back_the_delivered_bytes(imap):
    raws = [plain("Premier"), with_zip(), LATIN1]
    uids = [deliver(imap.bench, r) for r in raws]
    conn = client(imap.bench)
    typ, data = conn.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    typ, data = conn.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    fetched = [d for d in data if isinstance(d, tuple)]
    assert len(fetched) == 3
    for (meta, body), uid, raw in zip(fetched, uids, raws, strict=True):
        assert body == raw
        assert f"UID {uid}".encode() in meta and f"RFC822.SIZE {len(raw)}".encode() in meta
    # BODY.PEEK did not mark them seen; sections and partials
    typ, data = conn.uid("FETCH", str(uids[1]), "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[2]<0.10>)")
    flat = b"".join(p if isinstance(p, bytes) else p[0] + p[1] for p in data)
    assert b"FLAGS ()" in flat and b"Subject: Compte rendu XDM\r\n\r\n" in flat and b"BODY[2]<0> {10}" in flat
    typ, data = conn.uid("FETCH", str(uids[1]), "(BODY.PEEK[2])")
    attachment = base64.b64decode(data[0][1])
    assert zipfile.ZipFile(io.BytesIO(attachment)).namelist() == ["IHE_XDM/SUBSET01/DOC0001.XML"]
    conn.logout()


def test_bodystructure_and_envelope(imap):
    deliver(imap.bench, plain("Simple"))
    deliver(imap.bench, with_zip())
    conn = client(imap.bench)
    conn.select("INBOX")
    typ, data = conn.fetch("1:2", "(BODYSTRUCTURE ENVELOPE INTERNALDATE)")
    assert typ == "OK" and len(data) == 2
    first = parse(data[0])
    assert first[0] == "1" and first[1][0] == "BODYSTRUCTURE"
    assert [s.upper() for s in first[1][1][:2]] == ["TEXT", "PLAIN"]
    second = parse(data[1])[1]
    structure = second[second.index("BODYSTRUCTURE") + 1]
    assert structure[2].upper() == "MIXED"
    text, attachment = structure[0], structure[1]
    assert [text[0].upper(), text[1].upper()] == ["TEXT", "PLAIN"]
    assert [attachment[0].upper(), attachment[1].upper(), attachment[5].upper()] == ["APPLICATION", "ZIP", "BASE64"]
    assert attachment[8][0].upper() == "ATTACHMENT" and "IHE_XDM.ZIP" in attachment[8][1]
    env = second[second.index("ENVELOPE") + 1]
    assert env[1] == "Compte rendu XDM" and env[2][0][2:] == ["expediteur", "mssante.fr"]
    assert re.fullmatch(r"\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000", second[second.index("INTERNALDATE") + 1])


def test_search_store_and_seen(imap):
    uids = [deliver(imap.bench, plain(f"Message {i}")) for i in range(3)]
    conn = client(imap.bench)
    conn.select("INBOX")
    assert conn.search(None, "UNSEEN") == ("OK", [b"1 2 3"])
    assert conn.search(None, "SEEN") == ("OK", [b""])
    typ, data = conn.uid("STORE", str(uids[1]), "+FLAGS", "(\\Seen \\Flagged)")
    assert typ == "OK" and b"\\Seen" in data[0]
    assert conn.search(None, "SEEN") == ("OK", [b"2"])
    assert conn.uid("SEARCH", None, "UNSEEN") == ("OK", [f"{uids[0]} {uids[2]}".encode()])
    assert conn.search(None, "HEADER", "SUBJECT", "\"message 2\"") == ("OK", [b"3"])
    assert conn.uid("SEARCH", None, f"UID {uids[2]}:*") == ("OK", [str(uids[2]).encode()])
    assert conn.search(None, "NOT", "SEEN", "2:3") == ("OK", [b"3"])
    # a non-peek BODY[] sets \Seen, in the world too
    typ, data = conn.fetch("1", "(BODY[])")
    assert b"\\Seen" in data[0][0] or b"\\Seen" in data[1]
    typ, data = conn.store("2", "-FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK" and data == [None]
    with imap.bench.world.transaction() as tx:
        flags = {m.uid: m.flags for m in imap.bench.world.mss.messages(tx, HOSPITAL)}
    assert flags == {uids[0]: ["\\Seen"], uids[1]: ["\\Seen"], uids[2]: []}
    with pytest.raises(imaplib.IMAP4.error, match="cannot be stored"):
        conn.store("1", "+FLAGS", "(\\Recent)")
    conn.logout()


def test_store_deleted_then_expunge(imap):
    uids = [deliver(imap.bench, plain(f"Message {i}")) for i in range(3)]
    conn = client(imap.bench)
    conn.select("INBOX")
    conn.store("2", "+FLAGS", "(\\Deleted)")
    typ, data = conn.expunge()
    assert typ == "OK" and data == [b"2"]
    typ, data = conn.uid("SEARCH", None, "ALL")
    assert data == [f"{uids[0]} {uids[2]}".encode()]
    with imap.bench.world.transaction() as tx:
        assert [m.uid for m in imap.bench.world.mss.messages(tx, HOSPITAL)] == [uids[0], uids[2]]
    conn.uid("STORE", str(uids[2]), "+FLAGS", "(\\Deleted)")
    conn.close()   # CLOSE expunges too
    typ, data = conn.select("INBOX")
    assert data == [b"1"]
    status = conn.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)")
    assert status == ("OK", [f"INBOX (MESSAGES 1 UIDNEXT {uids[2] + 1} UNSEEN 1)".encode()])
    conn.logout()


def test_login_refusals_and_journal(imap):
    conn = client(imap.bench, login=None)
    with pytest.raises(imaplib.IMAP4.error, match="wrong password"):
        conn.login(HOSPITAL, "nope")
    with pytest.raises(imaplib.IMAP4.error, match="no mailbox"):
        conn.login("nobody@chu.mssante.fr", "mockbench")
    with pytest.raises(imaplib.IMAP4.error, match="no mailbox"):
        conn.login("someone@gmail.com", "mockbench")
    conn.login(HOSPITAL, "mockbench")
    assert conn.list() == ("OK", [b'(\\HasNoChildren) "/" INBOX'])
    typ, data = conn.select("Archives")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    deliver(imap.bench, plain("Journal"))
    conn.select("INBOX")
    conn.fetch("1", "(BODY.PEEK[])")
    conn.store("1", "+FLAGS", "(\\Seen)")
    conn.logout()
    entries = imap.client.journal(channel="mss")
    logins = [(e["actor"], e["verdict"], e["code"]) for e in entries if e["operation"] == "IMAP_LOGIN"]
    assert logins == [(HOSPITAL, "refused", "PASSWORD_WRONG"), ("nobody@chu.mssante.fr", "refused", "MAILBOX_UNKNOWN"),
                      ("someone@gmail.com", "refused", "MAILBOX_UNKNOWN"), (HOSPITAL, "accepted", None)]
    fetches = [e for e in entries if e["operation"] == "IMAP_FETCH"]
    assert len(fetches) == 1 and fetches[0]["actor"] == HOSPITAL and fetches[0]["ref"] == "<Journal@test>"
    assert any(e["operation"] == "IMAP_STORE" and "\\Seen" in e["raw"] for e in entries)
    assert all("mockbench" not in e["raw"] for e in entries if e["operation"] == "IMAP_LOGIN")


def test_authenticate_xoauth2_and_plain(imap):
    with imap.bench.world.transaction() as tx:
        token_a = imap.bench.world.tokens.issue(tx, professional="dr_a", client_id="dpi", scopes=["openid"])
        token_b = imap.bench.world.tokens.issue(tx, professional="dr_b", client_id="dpi", scopes=["openid"])
    deliver(imap.bench, plain("Pour Jeanne"), to=DR_A)

    def xoauth2(address: str, token: str):
        return lambda _: f"user={address}\x01auth=Bearer {token}\x01\x01".encode()

    conn = client(imap.bench, login=None)
    typ, _ = conn.authenticate("XOAUTH2", xoauth2(DR_A, token_a))
    assert typ == "OK"
    assert conn.select("INBOX") == ("OK", [b"1"])
    conn.logout()
    for address, token, reason in [(DR_A, token_b, "does not own"), (DR_A, "forged", "unknown access token"),
                                   (HOSPITAL, token_a, "APP")]:
        conn = client(imap.bench, login=None)
        with pytest.raises(imaplib.IMAP4.error, match=reason):
            conn.authenticate("XOAUTH2", xoauth2(address, token))
        conn.logout()
    conn = client(imap.bench, login=None)   # ORG: any member of the structure
    assert conn.authenticate("XOAUTH2", xoauth2("service@chu.mssante.fr", token_b))[0] == "OK"
    conn.logout()
    conn = client(imap.bench, login=None)
    assert conn.authenticate("PLAIN", lambda _: f"\x00{HOSPITAL}\x00mockbench".encode())[0] == "OK"
    conn.logout()
    codes = [e["code"] for e in imap.client.journal(channel="mss") if e["operation"] == "IMAP_LOGIN"]
    assert codes == [None, "TOKEN_NOT_OWNER", "TOKEN_INVALID", "AUTH_MECHANISM_REFUSED", None, None]


class Raw:
    """A bare IMAP connection, for IDLE and for what imaplib would not send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        assert self.line().startswith(b"* OK")

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def close(self) -> None:
        self.sock.close()


def test_idle_sees_new_mail(imap):
    deliver(imap.bench, plain("Avant"))
    raw = Raw(imap.bench.ports["imap"])
    raw.send(f"a1 LOGIN {HOSPITAL} mockbench\r\na2 SELECT INBOX\r\n".encode())
    raw.until(b"a2")
    raw.send(b"a3 IDLE\r\n")
    assert raw.line().startswith(b"+")
    t0 = time.monotonic()
    deliver(imap.bench, plain("Pendant"))
    assert raw.line() == b"* 2 EXISTS"
    assert time.monotonic() - t0 < 2.0   # the MAIL_DELIVERED event wakes it at once; the poll is the fallback
    raw.send(b"DONE\r\n")
    assert raw.line().startswith(b"a3 OK")
    raw.send(b"a4 UID FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    assert b"Subject: Pendant" in b"\r\n".join(raw.until(b"a4"))
    raw.close()


def test_hostile_input(imap):
    raw = Raw(imap.bench.ports["imap"])
    raw.send(b"a1 NOOP " + b"x" * 20_000 + b"\r\na2 NOOP\r\n")
    assert raw.line().startswith(b"* BAD line too long")
    assert raw.line().startswith(b"a2 OK")                 # still in sync after the long line
    raw.send(b"a3 LOGIN {100000000}\r\n")
    assert re.match(rb"a3 BAD literal of 100000000 octets refused", raw.line())
    raw.send(b"\xff\xfe\x00garbage\r\n")
    assert raw.line().startswith(b"* BAD")
    raw.send(b"a4 FETCH 1:* (FLAGS)\r\n")
    assert raw.line().startswith(b"a4 NO FETCH is not allowed before authentication")
    raw.send(b"a5 LOGIN (unbalanced\r\n")
    assert raw.line().startswith(b"a5 BAD")
    raw.send(b"a6 FROBNICATE\r\n")
    assert raw.line().startswith(b"a6 BAD unknown command FROBNICATE")
    raw.send(f"a7 LOGIN {{{len(HOSPITAL)}}}\r\n".encode())
    assert raw.line().startswith(b"+")
    raw.send(HOSPITAL.encode() + b" mockbench\r\n")
    assert raw.line().startswith(b"a7 OK")
    raw.send(b"a8 SELECT INBOX\r\n")
    raw.until(b"a8")
    for tag, command in [(b"b1", b"FETCH 99 (FLAGS)"), (b"b2", b"FETCH 1 (NONSENSE)"), (b"b3", b"STORE 1 ADDFLAGS x"),
                         (b"b4", b"FETCH 0:1 FLAGS"), (b"b5", b"SEARCH NONSENSE")]:
        raw.send(tag + b" " + command + b"\r\n")
        assert raw.until(tag)[-1].startswith(tag + b" BAD"), command
    raw.send(b"z1 NOOP\r\n" + b"x BAD\r\n" * 25)
    lines = []
    while True:
        try:
            lines.append(raw.line())
        except ConnectionError:
            break
    assert lines[0].startswith(b"z1 OK") and lines[-1] == b"* BYE too many bad commands"
    raw.close()
    conn = client(imap.bench)    # the door is still up
    conn.logout()


def test_two_sessions_see_each_others_changes(imap):
    uids = [deliver(imap.bench, plain(f"Message {i}")) for i in range(2)]
    reader, cleaner = client(imap.bench), client(imap.bench)
    assert reader.select("INBOX", readonly=True) == ("OK", [b"2"])
    typ, data = reader.store("1", "+FLAGS", "(\\Deleted)")
    assert typ == "NO" and b"read-only" in data[0]
    cleaner.select("INBOX")
    cleaner.uid("STORE", str(uids[0]), "+FLAGS", "(\\Deleted)")
    cleaner.expunge()
    deliver(imap.bench, plain("Message 2"))
    typ, _ = reader.noop()
    assert reader.untagged_responses.get("EXPUNGE") == [b"1"] and reader.untagged_responses.get("EXISTS")[-1] == b"2"
    assert reader.uid("SEARCH", None, "ALL") == ("OK", [f"{uids[1]} {uids[1] + 1}".encode()])
    reader.logout()
    cleaner.logout()


def test_starttls(tmp_path, mockbench_factory):
    import ssl

    from mockbench.pki import init_pki

    files = init_pki(tmp_path / "pki")
    running = mockbench_factory(tls_dir=tmp_path / "pki")
    running.client.load_yaml(WORLD)
    conn = imaplib.IMAP4("localhost", running.ports["imap"], timeout=5)
    assert "STARTTLS" in conn.capabilities
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    assert conn.starttls(context)[0] == "OK"
    assert "STARTTLS" not in conn.capabilities
    conn.login(HOSPITAL, "mockbench")
    assert conn.select("INBOX") == ("OK", [b"0"])
    conn.logout()
