"""A DPI files what it processed (issue 15, "The mailboxes, as a DPI uses them"): IMAP CREATE, COPY, APPEND
(RFC 3501 6.3.3, 6.4.7, 6.3.11), MOVE (RFC 6851), UIDPLUS (RFC 4315: APPENDUID, COPYUID, UID EXPUNGE) and
NAMESPACE (RFC 2342), advertised in CAPABILITY; played with imaplib and with IMAPClient (a second mainstream
client library, which reads the response codes itself) over real sockets."""

from __future__ import annotations

import imaplib
import re

import pytest
from imapclient import IMAPClient
from test_imap import HOSPITAL, WORLD, client, deliver, plain

FOLDER = "Traités"          # IMAPClient sends it in modified UTF-7 (RFC 3501 5.1.3), imaplib as given below
FOLDER_UTF7 = "Trait&AOk-s"


@pytest.fixture
def imap(mockbench):
    mockbench.client.load_yaml(WORLD)
    return mockbench


def test_capability_advertises_the_extensions(imap):
    conn = client(imap.bench)
    typ, data = conn.capability()
    caps = data[0].decode().split()
    assert {"NAMESPACE", "UIDPLUS", "MOVE"} <= set(caps)
    assert conn.namespace() == ("OK", [b'(("" "/")) NIL NIL'])
    conn.logout()


def test_imaplib_create_copy_move_append_and_uid_expunge(imap):
    uids = [deliver(imap.bench, plain(f"Courrier {n}")) for n in range(3)]
    conn = client(imap.bench)
    assert conn.create("Archives")[0] == "OK"
    typ, data = conn.create("Archives")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    typ, data = conn.list()
    assert data == [b'(\\HasNoChildren) "/" INBOX', b'(\\HasNoChildren) "/" Archives']
    conn.select("INBOX")
    # COPY keeps the original; COPYUID names the source and destination UIDs (RFC 4315 3)
    typ, data = conn._simple_command("UID", "COPY", str(uids[0]), "Archives")   # the tagged text: COPYUID
    match = re.search(rb"\[COPYUID (\d+) (\S+) (\S+)\]", data[0])
    assert typ == "OK" and match and match.group(2, 3) == (str(uids[0]).encode(), b"1"), data
    # MOVE (RFC 6851): the untagged OK [COPYUID], then EXPUNGE of its sequence number
    typ, data = conn.uid("MOVE", str(uids[1]), "Archives")
    assert typ == "OK"
    assert conn.untagged_responses.get("EXPUNGE") == [b"2"]
    typ, data = conn.uid("COPY", str(uids[2]), "Nulle-part")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    typ, data = conn.uid("SEARCH", None, "ALL")
    assert data == [f"{uids[0]} {uids[2]}".encode()]
    # APPEND with flags and a date, APPENDUID (RFC 4315 3)
    typ, data = conn.append("Archives", "(\\Seen)", '"25-Nov-2026 10:00:00 +0100"', plain("Copie envoyée"))
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ") and data[0].split()[2] == b"3]"
    typ, data = conn.append("Inexistant", None, None, plain("x"))
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    # UID EXPUNGE (RFC 4315 2.1) removes only the UIDs named, even if others are \Deleted
    conn.uid("STORE", f"{uids[0]},{uids[2]}", "+FLAGS", "(\\Deleted)")
    typ, data = conn.uid("EXPUNGE", str(uids[2]))
    assert typ == "OK"
    assert conn.uid("SEARCH", None, "ALL")[1] == [str(uids[0]).encode()]
    assert conn.select("Archives") == ("OK", [b"3"])
    typ, data = conn.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = [d[1] for d in data if isinstance(d, tuple)]
    assert subjects == [b"Subject: Courrier 0\r\n\r\n", b"Subject: Courrier 1\r\n\r\n",
                        b"Subject: Copie envoy\xc3\xa9e\r\n\r\n"]
    assert conn.status("Archives", "(MESSAGES UIDNEXT)") == ("OK", [b"Archives (MESSAGES 3 UIDNEXT 4)"])
    conn.close()
    assert conn.delete("INBOX")[0] == "NO"
    assert conn.delete("Archives")[0] == "OK" and conn.list()[1] == [b'(\\HasNoChildren) "/" INBOX']
    conn.logout()
    operations = [e["operation"] for e in imap.client.journal(channel="mss") if e["operation"].startswith("IMAP_")
                  and e["operation"] not in ("IMAP_LOGIN", "IMAP_FETCH", "IMAP_STORE")]
    assert operations == ["IMAP_CREATE", "IMAP_COPY", "IMAP_MOVE", "IMAP_APPEND", "IMAP_DELETE"]


def test_imapclient_files_processed_mail_into_a_folder(imap):
    """IMAPClient: the moves a DPI makes after integrating a document, with the library's own parsing of
    CAPABILITY, NAMESPACE, LIST, COPYUID / APPENDUID and MOVE."""
    uids = [deliver(imap.bench, plain(f"Compte rendu {n}")) for n in range(2)]
    with IMAPClient("127.0.0.1", port=imap.ports["imap"], ssl=False, timeout=5) as c:
        c.login(HOSPITAL, "mockbench")
        assert c.has_capability("MOVE") and c.has_capability("UIDPLUS") and c.has_capability("NAMESPACE")
        namespace = c.namespace()
        assert namespace.personal == (("", "/"),) and namespace.other is None and namespace.shared is None
        c.create_folder(FOLDER)
        c.create_folder(f"{FOLDER}/2026")
        names = [name for _, _, name in c.list_folders()]
        assert names == ["INBOX", FOLDER, f"{FOLDER}/2026"]
        assert [name for _, _, name in c.list_folders(pattern="%")] == ["INBOX", FOLDER]
        assert c.folder_exists(FOLDER) and not c.folder_exists("Autre")
        c.select_folder("INBOX")
        c.move([uids[0]], FOLDER)
        assert c.search() == [uids[1]]
        c.copy([uids[1]], f"{FOLDER}/2026")
        assert c.search() == [uids[1]]
        appended = c.append(FOLDER, plain("Accusé envoyé"), flags=[b"\\Seen"])
        assert appended.startswith(b"[APPENDUID ")
        status = c.folder_status(FOLDER, ["MESSAGES", "UNSEEN"])
        assert (status[b"MESSAGES"], status[b"UNSEEN"]) == (2, 1)
        c.select_folder(FOLDER, readonly=True)
        fetched = c.fetch(c.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "FLAGS"])
        assert [v[b"BODY[HEADER.FIELDS (SUBJECT)]"] for _, v in sorted(fetched.items())] == [
            b"Subject: Compte rendu 0\r\n\r\n", "Subject: Accusé envoyé\r\n\r\n".encode()]
        with pytest.raises(IMAPClient.Error):
            c.move([1], "INBOX")          # EXAMINE: read-only
    # the folder name went over the wire in modified UTF-7, as RFC 3501 5.1.3 asks
    with imap.world.transaction() as tx:
        assert imap.world.mss.folders(tx, HOSPITAL) == ["INBOX", FOLDER_UTF7, f"{FOLDER_UTF7}/2026"]
        assert {m.folder for m in imap.world.mss.messages(tx, HOSPITAL)} == {"INBOX", FOLDER_UTF7,
                                                                              f"{FOLDER_UTF7}/2026"}


def test_append_literal_bound_and_other_users_folders_stay_apart(imap):
    """APPEND's literal may carry a whole mail (up to ImapLimits.append_size), other literals stay small; a
    folder belongs to its mailbox."""
    big = plain("Gros", body="x" * 200_000 + "\r\n")
    conn = client(imap.bench)
    assert conn.create("Mine")[0] == "OK"
    assert conn.append("Mine", None, None, big)[0] == "OK"
    conn.logout()
    other = client(imap.bench, "service@chu.mssante.fr")
    typ, data = other.select("Mine")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    other.logout()
    with pytest.raises(imaplib.IMAP4.error):
        conn = client(imap.bench)
        conn.login("x" * 70_000, "y")   # a 70 KB user name: a literal over literal_size, refused
