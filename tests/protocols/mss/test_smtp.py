"""The MSSanté SMTP door through real sockets: smtplib for what a DPI does, raw sockets for hostile senders.

Each case checks the reply, what the world stored (bytes identical) and the journal entries on channel mss."""

from __future__ import annotations

import base64
import smtplib
import socket
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from kit.wait import wait_for

from mockbench.pki import ClientSpec, client_context, init_pki
from mockbench.protocols.mss import errors as status
from mockbench.protocols.mss.content import count_header_fields
from mockbench.protocols.mss.smtp import MssSettings, SmtpDoor, SmtpLimits
from mockbench.world import errors
from mockbench.world.mss import OUTSIDE_MAILBOX

IO = 5.0
JEANNE = "jeanne.martin@chu.mssante.fr"     # dr_a's PER mailbox (chu)
PAUL = "paul.petit@clinique.mssante.fr"     # dr_b's PER mailbox (clinique)
SECRETARIAT = "secretariat@chu.mssante.fr"  # ORG, chu
DPI = "dpi@chu.mssante.fr"                  # APP, chu
ROUX = "dr.roux@clinique.mssante.fr"        # a correspondent whose integration fails
WORLD = f"""\
id: mss-smtp
title: Essai SMTP MSSanté
seed: 7
world:
  structures: [{{id: chu, name: CHU de Test}}, {{id: clinique, name: Clinique}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {JEANNE}}}
    - {{id: dr_b, family_name: PETIT, given_name: Paul, structure: clinique, mssante: {PAUL}}}
  mailboxes:
    - {{address: {SECRETARIAT}, type: ORG, owner: chu, role: hospital}}
    - {{address: {DPI}, type: APP, owner: chu, role: hospital}}
    - address: {ROUX}
      role: correspondent
      behaviour: {{on_receive: fail_integration, error: "E12^Document illisible"}}
"""


def mail(sender: str, to: str, subject: str = "Compte rendu", body: str = "Bonjour.", **headers: str) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: {make_msgid(domain='dpi.test')}",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()), "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


@pytest.fixture
def bench(mockbench):
    mockbench.client.load_yaml(WORLD)
    return mockbench


@pytest.fixture
def smtp(bench) -> Iterator[Callable[..., smtplib.SMTP]]:
    opened: list[smtplib.SMTP] = []

    def connect(login: str | None = None, port: int | None = None) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", port or bench.ports["smtp"], timeout=IO)
        opened.append(client)
        client.ehlo("dpi.test")
        if login:
            client.login(login, "mockbench")
        return client

    yield connect
    for client in opened:
        try:
            client.close()
        except OSError:
            pass


def messages(bench, address: str) -> list:
    with bench.world.transaction() as tx:
        return bench.world.mss.messages(tx, address)


def raw_of(bench, message_id: str) -> bytes:
    with bench.world.transaction() as tx:
        return bench.world.mss.raw(tx, message_id)


def journal(bench, **filters) -> list[dict]:
    return bench.client.journal(channel="mss", **filters)


def token_for(bench, professional: str) -> str:
    with bench.world.transaction() as tx:
        return bench.world.tokens.issue(tx, professional=professional, client_id="dpi", scopes=["openid"])


def xoauth2(user: str, token: str) -> Callable[..., str]:
    return lambda challenge=None: f"user={user}\x01auth=Bearer {token}\x01\x01" if challenge is None else ""


# -- submission ------------------------------------------------------------------------------------------

def test_plain_login_delivers_bytes_identical_and_journals(bench, smtp):
    raw = mail(JEANNE, SECRETARIAT)
    client = smtp(JEANNE)
    assert client.sendmail(JEANNE, [SECRETARIAT], raw) == {}
    stored = messages(bench, SECRETARIAT)
    assert len(stored) == 1 and stored[0].sender == JEANNE
    assert raw_of(bench, stored[0].id) == raw
    auth = journal(bench, operation="SMTP_AUTH")
    assert [(e["actor"], e["verdict"]) for e in auth] == [(JEANNE, "accepted")]
    submit = journal(bench, operation="SUBMIT")
    assert [(e["actor"], e["verdict"], e["direction"]) for e in submit] == [(JEANNE, "accepted", "in")]
    assert submit[0]["size"] == len(raw)
    deliver = journal(bench, operation="DELIVER")
    assert [(e["actor"], e["direction"]) for e in deliver] == [(SECRETARIAT, "out")]


def test_unknown_mssante_recipient_is_550_and_journaled(bench, smtp):
    client = smtp(JEANNE)
    client.mail(JEANNE)
    code, text = client.rcpt("nobody@chu.mssante.fr")
    assert code == 550
    assert b"5.1.1 nobody@chu.mssante.fr is not an MSSante mailbox of this world" in text
    refused = journal(bench, operation="SUBMIT")[-1]
    assert refused["verdict"] == "refused" and refused["code"] == "MAILBOX_UNKNOWN"
    # the session goes on: a known recipient is still accepted
    assert client.rcpt(SECRETARIAT)[0] == 250


def test_without_auth_is_530(bench, smtp):
    client = smtp()
    code, text = client.mail(JEANNE)
    assert code == 530 and b"5.7.0" in text
    assert journal(bench, operation="SUBMIT")[-1]["code"] == "AUTH_REQUIRED"


def test_wrong_password_is_535(bench, smtp):
    client = smtp()
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        client.login(JEANNE, "nope")
    assert caught.value.smtp_code == 535
    entry = journal(bench, operation="SMTP_AUTH")[-1]
    assert entry["verdict"] == "refused" and entry["code"] == "PASSWORD_WRONG"


def test_mail_from_not_the_authenticated_mailbox_is_553(bench, smtp):
    client = smtp(JEANNE)
    code, text = client.mail(PAUL)
    assert code == 553
    assert f"<{PAUL}> is not the authenticated mailbox <{JEANNE}>".encode() in text
    assert journal(bench, operation="SUBMIT")[-1]["code"] == "SENDER_MISMATCH"
    assert client.mail(JEANNE)[0] == 250


def test_mail_to_a_non_mssante_domain_lands_in_the_outside_mailbox(bench, smtp):
    raw = mail(JEANNE, "someone@gmail.com", subject="Votre code")
    smtp(JEANNE).sendmail(JEANNE, ["someone@gmail.com"], raw)
    outside = messages(bench, OUTSIDE_MAILBOX)
    assert len(outside) == 1 and raw_of(bench, outside[0].id) == raw


def test_failed_integration_answers_an_error_mdn_to_the_sender(bench, smtp):
    raw = mail(JEANNE, ROUX, subject="XDM/1.0/DDM+CR DURAND Alice 19800504", Disposition_Notification_To=JEANNE)
    smtp(JEANNE).sendmail(JEANNE, [ROUX], raw)
    (mdn,) = messages(bench, JEANNE)
    report = raw_of(bench, mdn.id)
    assert b"disposition-notification" in report and b"E12" in report
    # the subject announced XDM and no package came: a finding on the SUBMIT entry, the mail still accepted
    submit = journal(bench, operation="SUBMIT")[-1]
    assert submit["verdict"] == "accepted"
    assert any(f["rule"] == "MSS/XDM" for f in submit["findings"])


def test_a_broken_xdm_package_is_a_finding(bench, smtp):
    zipped = base64.encodebytes(b"PK\x03\x04 this is not a zip").decode()
    boundary = "b0undary"
    raw = "\r\n".join([f"From: {JEANNE}", f"To: {SECRETARIAT}", "Subject: XDM/1.0/DDM+CR", "MIME-Version: 1.0",
                       f'Content-Type: multipart/mixed; boundary="{boundary}"', "", f"--{boundary}",
                       "Content-Type: text/plain", "", "Bonjour", f"--{boundary}",
                       'Content-Type: application/zip; name="IHE_XDM.ZIP"', "Content-Transfer-Encoding: base64",
                       'Content-Disposition: attachment; filename="IHE_XDM.ZIP"', "", zipped.strip(),
                       f"--{boundary}--", ""]).encode()
    smtp(JEANNE).sendmail(JEANNE, [SECRETARIAT], raw)
    submit = journal(bench, operation="SUBMIT")[-1]
    assert submit["verdict"] == "accepted"
    # the broken package, and the missing X-MSS-NIL (Référentiel socle MSSanté #2 ECO.2.4.3)
    assert [f["rule"] for f in submit["findings"]] == ["XDM/XDM_NOT_ZIP", "REF2/ECO.2.4.3"]
    assert messages(bench, SECRETARIAT)[0].findings == submit["findings"]


def test_a_valid_xdm_package_has_no_findings_and_names_its_document(bench, smtp):
    from mockbench.formats.cda import minimal_cda
    from mockbench.formats.mime import xdm_mail
    from mockbench.formats.xdm import write_package

    cda = minimal_cda(unique_id="1.2.250.1.999.2.1", ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                      type_code="11488-4", title="Lettre", author_idnps="801234567897", author_family="MARTIN",
                      author_given="Paul", patient_family="PAT-TROIS", patient_given="DOMINIQUE",
                      birth_date="1979-03-28", sex="F", effective_time="2024-01-04T15:05:27", text="Bonjour")
    package = write_package([("DOC0001.XML", cda, {"unique_id": "1.2.250.1.999.2.1", "title": "Lettre"})],
                            submission_set={"unique_id": "1.2.250.1.999.1.1", "source_id": "1.2.250.1.999",
                                            "content_type": "04"},
                            patient_id="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH")
    raw = xdm_mail(sender=JEANNE, to=[SECRETARIAT], subject="XDM/1.0/DDM+Lettre PAT-TROIS DOMINIQUE 19790328",
                   package=package, extra_headers={"X-MSS-CODECDA": "11488-4", "X-MSS-INS": "O",
                                                   "X-MSS-NIL": "MOCKBENCH-TEST"})
    smtp(JEANNE).sendmail(JEANNE, [SECRETARIAT], raw)
    submit = journal(bench, operation="SUBMIT")[-1]
    assert submit["verdict"] == "accepted" and submit["document"] == "1.2.250.1.999.2.1"
    assert not [f for f in submit["findings"] if f["severity"] == "error" or f["rule"].startswith("REF2/")]
    deliver = journal(bench, operation="DELIVER")[-1]
    for entry in (submit, deliver):   # the package's patient (not one of this world's, so no scenario id)
        assert (entry["patient"], entry["patient_ins"]) == (None, "279035121518989")
    assert raw_of(bench, messages(bench, SECRETARIAT)[0].id) == raw


# -- tokens ----------------------------------------------------------------------------------------------

def test_xoauth2_for_own_per_and_structure_org_mailbox(bench, smtp):
    token = token_for(bench, "dr_a")
    client = smtp()
    assert client.auth("XOAUTH2", xoauth2(JEANNE, token))[0] == 235
    assert client.sendmail(JEANNE, [SECRETARIAT], mail(JEANNE, SECRETARIAT)) == {}
    org = smtp()
    assert org.auth("XOAUTH2", xoauth2(SECRETARIAT, token))[0] == 235


def test_xoauth2_refused_for_another_professionals_mailbox(bench, smtp):
    token = token_for(bench, "dr_a")
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        smtp().auth("XOAUTH2", xoauth2(PAUL, token))
    assert caught.value.smtp_code == 535
    entry = journal(bench, operation="SMTP_AUTH")[-1]
    assert entry["verdict"] == "refused" and entry["code"] == "TOKEN_NOT_OWNER"


def test_token_refused_for_an_app_mailbox(bench, smtp):
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp().auth("XOAUTH2", xoauth2(DPI, token_for(bench, "dr_a")))
    assert journal(bench, operation="SMTP_AUTH")[-1]["code"] == "AUTH_MECHANISM_REFUSED"


def test_expired_token_refused(bench, smtp):
    token = token_for(bench, "dr_a")
    bench.client.advance("10m")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp().auth("XOAUTH2", xoauth2(JEANNE, token))
    assert journal(bench, operation="SMTP_AUTH")[-1]["code"] == errors.TokenExpired.code


def test_oauthbearer(bench, smtp):
    token = token_for(bench, "dr_b")
    client = smtp()
    response = f"n,a={PAUL},\x01host=127.0.0.1\x01auth=Bearer {token}\x01\x01"
    assert client.auth("OAUTHBEARER", lambda challenge=None: response if challenge is None else "\x01")[0] == 235
    assert client.mail(PAUL)[0] == 250


# -- certificates ----------------------------------------------------------------------------------------

def test_client_certificate_for_app_mailbox_only(mockbench_factory, tmp_path):
    files = init_pki(tmp_path / "pki", clients=[ClientSpec(name="app", common_name=DPI, email=DPI),
                                               ClientSpec(name="org", common_name="Secretariat", email=SECRETARIAT)])
    running = mockbench_factory(tls_dir=tmp_path / "pki")
    running.client.load_yaml(WORLD)
    port = running.ports["smtp"]

    def external(name: str) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", port, timeout=IO)
        client.starttls(context=client_context(files, name))
        client.ehlo("dpi.test")
        return client

    app = external("app")
    assert app.auth("EXTERNAL", lambda challenge=None: "")[0] == 235
    assert app.sendmail(DPI, [SECRETARIAT], mail(DPI, SECRETARIAT)) == {}
    app.quit()
    org = external("org")
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        org.auth("EXTERNAL", lambda challenge=None: "")
    assert b"APP" in caught.value.smtp_error and b"MSS/CONF.01" in caught.value.smtp_error
    org.quit()
    auth = running.client.journal(channel="mss", operation="SMTP_AUTH")
    assert [(e["actor"], e["verdict"], e["code"]) for e in auth] == [
        (DPI, "accepted", None), (SECRETARIAT, "refused", "CERTIFICATE_NOT_ALLOWED")]


# -- limits and hostile senders ----------------------------------------------------------------------------

@pytest.fixture
def limited_door(bench) -> Iterator[Callable[..., int]]:
    doors: list[SmtpDoor] = []

    def start(**limits: int) -> int:
        door = SmtpDoor(bench.bench.context, MssSettings(port=0, limits=SmtpLimits(**limits)))
        doors.append(door)
        return door.start()["smtp"]

    yield start
    for door in doors:
        door.stop()


def test_over_size_is_552_after_reading_to_the_end(bench, smtp, limited_door):
    client = smtp(JEANNE, port=limited_door(data_size=2000))
    assert client.mail(JEANNE)[0] == 250
    assert client.rcpt(SECRETARIAT)[0] == 250
    code, text = client.data(mail(JEANNE, SECRETARIAT, body="x" * 900 + "\r\n" + "y" * 900 + "\r\n" + "z" * 900))
    assert code == 552 and b"5.3.4" in text
    assert messages(bench, SECRETARIAT) == []
    assert journal(bench, operation="SUBMIT")[-1]["code"] == "SIZE_EXCEEDED"
    # in sync: the next message on the same connection goes through
    assert client.sendmail(JEANNE, [SECRETARIAT], mail(JEANNE, SECRETARIAT)) == {}


def test_plain_login_turned_off(bench, limited_door):
    door = SmtpDoor(bench.bench.context, MssSettings(port=0, password=None))
    port = door.start()["smtp"]
    try:
        client = smtplib.SMTP("127.0.0.1", port, timeout=IO)
        client.ehlo("dpi.test")
        assert "PLAIN" not in client.esmtp_features["auth"] and "XOAUTH2" in client.esmtp_features["auth"]
        code, _ = client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{JEANNE}\0mockbench".encode()).decode())
        assert code == 504
        client.close()
    finally:
        door.stop()


def test_a_missing_aiosmtpd_fails_at_start_not_at_the_first_connection(bench, monkeypatch):
    # The door imports aiosmtpd at its first connection (issue 21 point 5); a broken install is still told at start.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiosmtpd" else real(name, *a))
    with pytest.raises(RuntimeError, match="aiosmtpd"):
        SmtpDoor(bench.bench.context, MssSettings(port=0))


def test_an_unexpected_error_is_451_journaled_and_the_session_goes_on(bench, smtp, monkeypatch):
    client = smtp(JEANNE)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bench.world.mss, "deliver", broken)
    client.mail(JEANNE)
    client.rcpt(SECRETARIAT)
    code, text = client.data(mail(JEANNE, SECRETARIAT))
    assert code == 451 and b"4.3.0" in text
    entry = journal(bench, operation="SUBMIT")[-1]
    assert entry["verdict"] == "error" and "disk on fire" in entry["findings"][0]["message"]
    monkeypatch.undo()
    assert client.sendmail(JEANNE, [SECRETARIAT], mail(JEANNE, SECRETARIAT)) == {}


class Raw:
    """A line-oriented SMTP client over a raw socket, for what smtplib refuses to send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO)
        self.buffer = b""
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        while True:
            lines = self.buffer.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":
                    self.buffer = b"\r\n".join(lines[i + 1:])
                    return b"\r\n".join(lines[:i + 1])
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def cmd(self, line: str | bytes) -> bytes:
        self.sock.sendall((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def login(self, address: str) -> None:
        assert self.cmd("EHLO raw.test").startswith(b"250")
        token = base64.b64encode(f"\0{address}\0mockbench".encode()).decode()
        assert self.cmd(f"AUTH PLAIN {token}").startswith(b"235")

    def envelope(self, sender: str, to: str) -> None:
        assert self.cmd(f"MAIL FROM:<{sender}>").startswith(b"250")
        assert self.cmd(f"RCPT TO:<{to}>").startswith(b"250")
        assert self.cmd("DATA").startswith(b"354")


def test_line_past_the_rfc_limit_is_500_and_the_session_goes_on(bench):
    client = Raw(bench.ports["smtp"])
    client.login(JEANNE)
    client.envelope(JEANNE, SECRETARIAT)
    answer = client.cmd(b"Subject: long\r\n\r\n" + b"a" * 5000 + b"\r\n.")
    assert answer.startswith(b"500 5.5.2")
    assert messages(bench, SECRETARIAT) == []
    assert journal(bench, operation="SUBMIT")[-1]["code"] == "LINE_TOO_LONG"
    client.envelope(JEANNE, SECRETARIAT)
    assert client.cmd(b"Subject: ok\r\n\r\nfine\r\n.").startswith(b"250")
    assert client.cmd(b"A" * 600).startswith(b"500 5.5.2 Command line too long")
    assert client.cmd(b"NOOP " + b"A" * 5000).startswith(b"500 5.5.2 Command line too long")
    # RFC 4954 section 4: an AUTH line may reach 12288 octets (a token in the initial response), not more
    assert client.cmd(b"AUTH XOAUTH2 " + b"A" * 12300).startswith(b"500 5.5.2 Command line too long")
    assert client.cmd("NOOP").startswith(b"250")


def test_client_stopping_mid_data_stores_nothing(bench):
    client = Raw(bench.ports["smtp"])
    client.login(JEANNE)
    client.envelope(JEANNE, SECRETARIAT)
    client.sock.sendall(b"Subject: half\r\n\r\nthe first half of a mess")
    client.sock.close()
    # the end marker: the door has seen the connection end (its cap released), so it is done with the half
    # message; nothing after that can store it
    assert wait_for(lambda: bench.bench.smtp.cap.active == 0), "the door still counts an open SMTP connection"
    assert messages(bench, SECRETARIAT) == []
    assert not any(e["verdict"] == "accepted" for e in journal(bench, operation="SUBMIT"))
    # the door still serves
    fresh = Raw(bench.ports["smtp"])
    fresh.login(JEANNE)
    fresh.envelope(JEANNE, SECRETARIAT)
    assert fresh.cmd(b"Subject: ok\r\n\r\nfine\r\n.").startswith(b"250")


def test_header_flood_is_552_and_the_session_goes_on(bench):
    client = Raw(bench.ports["smtp"])
    client.login(JEANNE)
    client.envelope(JEANNE, SECRETARIAT)
    flood = b"".join(b"X-Flood-%d: v\r\n" % i for i in range(20_000))
    answer = client.cmd(flood + b"Subject: flood\r\n\r\nbody\r\n.")
    assert answer.startswith(b"552 5.3.4 More than 1000 header fields")
    assert journal(bench, operation="SUBMIT")[-1]["code"] == "HEADER_FLOOD"
    client.envelope(JEANNE, SECRETARIAT)
    assert client.cmd(b"Subject: ok\r\n\r\nfine\r\n.").startswith(b"250")
    assert len(messages(bench, SECRETARIAT)) == 1


def test_count_header_fields_ignores_continuations_and_the_body():
    raw = b"A: 1\r\n  continued\r\nB: 2\r\n\r\nC: body\r\n"
    assert count_header_fields(raw, 10) == 2


# -- the status table and the bench ----------------------------------------------------------------------

def test_every_world_error_maps_to_an_smtp_status():
    for cls in errors.all_error_classes():
        st = status.status_for(cls())
        assert 400 <= st.code < 600, cls
    assert status.status_for(errors.UnknownMailbox()) is status.MAILBOX_UNKNOWN
    assert status.status_for(errors.TokenExpired()) is status.AUTH_INVALID


def test_settings_from_config():
    s = MssSettings.from_config("127.0.0.1", 0, {"plain_login": False, "data_size": 1000})
    assert s.password is None and s.limits.data_size == 1000
    with pytest.raises(ValueError, match="unknown settings"):
        MssSettings.from_config("127.0.0.1", 0, {"nope": 1})


def test_health_lists_the_mss_door(bench):
    assert bench.client.health()["doors"]["mss"] == "up"
    assert "smtp" in bench.ports


def test_x_mss_headers_are_checked_on_what_the_dpi_submits(bench, smtp):
    """Référentiel socle MSSanté #2 ECO.2.4.1 (X-MSS-CODECDA = the CDA's code), ECO.2.4.2 (X-MSS-INS O only
    for a qualified INS), ECO.2.4.3 (X-MSS-NIL on every mail): findings on the SUBMIT, the mail delivered."""
    from mockbench.formats.cda import minimal_cda
    from mockbench.formats.mime import xdm_mail
    from mockbench.formats.xdm import write_package

    def package(ins: str):
        cda = minimal_cda(unique_id="1.2.250.1.999.3.1", ins=ins, ins_oid="1.2.250.1.213.1.4.10", type_code="11488-4",
                          title="Lettre", author_idnps="801234567897", author_family="MARTIN", author_given="Paul",
                          patient_family="PAT-TROIS", patient_given="DOMINIQUE", birth_date="1979-03-28", sex="F",
                          effective_time="2024-01-04T15:05:27", text="Bonjour")
        return write_package([("DOC0001.XML", cda, {"unique_id": "1.2.250.1.999.3.1", "title": "Lettre"})],
                             submission_set={"unique_id": "1.2.250.1.999.1.3", "source_id": "1.2.250.1.999",
                                             "content_type": "04"},
                             patient_id=f"{ins}^^^&1.2.250.1.213.1.4.10&ISO^NH")

    def submit(pkg, headers):
        raw = xdm_mail(sender=JEANNE, to=[SECRETARIAT], subject="XDM/1.0/DDM+Lettre PAT-TROIS DOMINIQUE 28/03/1979",
                       package=pkg, extra_headers=headers)
        smtp(JEANNE).sendmail(JEANNE, [SECRETARIAT], raw)
        entry = journal(bench, operation="SUBMIT")[-1]
        assert entry["verdict"] == "accepted"
        return {f["rule"]: f for f in entry["findings"] if f["rule"].startswith(("REF2/", "XDM/INS"))}

    good = package("279035121518989")
    assert submit(good, {"X-MSS-CODECDA": "11488-4", "X-MSS-INS": "O", "X-MSS-NIL": "LPS-42"}) == {}
    found = submit(good, {"X-MSS-CODECDA": "34133-9", "X-MSS-INS": "N"})
    assert set(found) == {"REF2/ECO.2.4.1", "REF2/ECO.2.4.2", "REF2/ECO.2.4.3"}
    assert "11488-4" in found["REF2/ECO.2.4.1"]["message"] and "O was expected" in found["REF2/ECO.2.4.2"]["message"]
    assert found["REF2/ECO.2.4.3"]["severity"] == "warning"
    assert set(submit(good, {"X-MSS-NIL": "LPS-42"})) == {"REF2/ECO.2.4.1", "REF2/ECO.2.4.2"}
    # a mail without a CDA must not carry X-MSS-CODECDA / X-MSS-INS
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = JEANNE, SECRETARIAT, "Bonjour"
    message["X-MSS-CODECDA"], message["X-MSS-INS"], message["X-MSS-NIL"] = "11488-4", "O", "LPS-42"
    message.set_content("Bonjour")
    smtp(JEANNE).sendmail(JEANNE, [SECRETARIAT], bytes(message))
    rules = [f["rule"] for f in journal(bench, operation="SUBMIT")[-1]["findings"]]
    assert rules == ["REF2/ECO.2.4.1", "REF2/ECO.2.4.2"]
    # issue 15: an INS whose NIR key is wrong is the DMP door's error, a finding here (key of 2790351215189: 89)
    found = submit(package("279035121518912"), {"X-MSS-CODECDA": "11488-4", "X-MSS-INS": "O", "X-MSS-NIL": "L"})
    assert "its key should be 89" in found["XDM/INS"]["message"] and found["XDM/INS"]["severity"] == "error"


def test_x_mss_mes_is_fin_and_for_a_patient(bench, smtp):
    """trans-cda-r2/mapping-mss.md (SMTP "X-MSS-MES") and Référentiel socle MSSanté #2 ECO.2.2.8: the one value
    is FIN, in a mail to a patient (<INS>@patient.mssante.fr)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = JEANNE, SECRETARIAT, "Bonjour"
    message["X-MSS-MES"], message["X-MSS-NIL"] = "fin", "LPS-42"
    message.set_content("Bonjour")
    smtp(JEANNE).sendmail(JEANNE, [SECRETARIAT], bytes(message))
    found = [(f["rule"], f["severity"]) for f in journal(bench, operation="SUBMIT")[-1]["findings"]]
    assert found == [("REF2/ECO.2.2.8", "error"), ("REF2/ECO.2.2.8", "warning")]


def test_rcpt_waiting_for_the_store_leaves_other_sessions_served(bench, smtp):
    """RCPT's mailbox look-up runs in a worker thread, like DATA's submission: while another writer holds the
    store (here the test, as another session's delivery would), the event loop still greets and answers the
    other sessions, and the waiting RCPT is answered once the store is free."""
    import threading

    world = bench.bench.world
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with world.transaction():
            held.set()
            release.wait(60)

    first = smtp(JEANNE)
    first.mail(JEANNE)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(IO)
        first.putcmd("rcpt", f"TO:<{DPI}>")      # its look-up waits for the store
        second = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=IO)
        try:
            assert second.ehlo("dpi.test")[0] == 250   # answered while the store is held
            assert second.noop()[0] == 250
        finally:
            second.close()
    finally:
        release.set()
        holder.join(IO)
    assert first.getreply()[0] == 250
    assert first.data(mail(JEANNE, DPI))[0] == 250
