"""No authentication in clear when TLS is offered (issue 17 point 8), as Dovecot and aiosmtpd do by default:
IMAP advertises LOGINDISABLED and refuses LOGIN before STARTTLS (RFC 3501 6.2.3, 11.1; NO [PRIVACYREQUIRED],
RFC 5530); SMTP advertises no AUTH before STARTTLS and answers AUTH with 538 5.7.11 (RFC 4954 4). AUTH EXTERNAL
is advertised only on a TLS connection (RFC 4422 appendix A: it uses the TLS client certificate). smtplib and
imaplib over real sockets."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import ssl

import pytest

from mockbench.pki import init_pki

WORLD = """\
id: clear-auth
title: Authentification en clair
world:
  structures: [{id: chu, name: CHU de Test}]
  mailboxes:
    - {address: dpi@chu-test.mssante.fr, type: APP, owner: chu, role: hospital}
"""
BOX = "dpi@chu-test.mssante.fr"


@pytest.fixture
def tls_bench(tmp_path, mockbench_factory):
    files = init_pki(tmp_path / "pki")
    running = mockbench_factory(tls_dir=tmp_path / "pki")
    running.client.load_yaml(WORLD)
    running.ca = str(files.ca_cert)
    return running


def logins(bench) -> list[dict]:
    return [e for e in bench.client.journal(channel="mss") if e["operation"] == "IMAP_LOGIN"]


def test_imap_advertises_logindisabled_and_refuses_login_before_starttls(tls_bench):
    """RFC 3501 6.2.3: LOGINDISABLED before STARTTLS; LOGIN and AUTHENTICATE PLAIN get NO; after STARTTLS
    the same login works."""
    conn = imaplib.IMAP4("localhost", tls_bench.ports["imap"], timeout=5)
    assert "LOGINDISABLED" in conn.capabilities and "STARTTLS" in conn.capabilities
    assert not any(c.startswith("AUTH=") for c in conn.capabilities)
    typ, data = conn._simple_command("LOGIN", BOX, "mockbench")
    assert typ == "NO" and b"[PRIVACYREQUIRED]" in data[0]
    plain = base64.b64encode(f"\0{BOX}\0mockbench".encode()).decode()
    typ, data = conn._simple_command("AUTHENTICATE", "PLAIN", plain)
    assert typ == "NO" and b"[PRIVACYREQUIRED]" in data[0]
    assert [e["code"] for e in logins(tls_bench)] == ["PRIVACY_REQUIRED", "PRIVACY_REQUIRED"]
    assert conn.starttls(ssl.create_default_context(cafile=tls_bench.ca))[0] == "OK"
    assert "LOGINDISABLED" not in conn.capabilities and "AUTH=PLAIN" in conn.capabilities
    assert conn.login(BOX, "mockbench")[0] == "OK"
    conn.logout()


def test_imap_clear_login_allowed_when_auth_require_tls_is_false(tmp_path, mockbench_factory):
    init_pki(tmp_path / "pki")
    running = mockbench_factory(tls_dir=tmp_path / "pki", doors={"mss": {"auth_require_tls": False}})
    running.client.load_yaml(WORLD)
    conn = imaplib.IMAP4("localhost", running.ports["imap"], timeout=5)
    assert "LOGINDISABLED" not in conn.capabilities and "AUTH=PLAIN" in conn.capabilities
    assert conn.login(BOX, "mockbench")[0] == "OK"
    conn.logout()


def test_imap_without_tls_keeps_password_login(mockbench):
    """No TLS configured: nothing to upgrade to, LOGIN stays (the bench on loopback)."""
    mockbench.client.load_yaml(WORLD)
    conn = imaplib.IMAP4("localhost", mockbench.ports["imap"], timeout=5)
    assert "LOGINDISABLED" not in conn.capabilities and "STARTTLS" not in conn.capabilities
    assert conn.login(BOX, "mockbench")[0] == "OK"
    conn.logout()


def test_smtp_refuses_auth_before_starttls(tls_bench):
    """RFC 4954 4 and aiosmtpd's auth_require_tls: no AUTH in EHLO before STARTTLS, AUTH answered 538."""
    with smtplib.SMTP("localhost", tls_bench.ports["smtp"], timeout=5) as client:
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth")
        plain = base64.b64encode(f"\0{BOX}\0mockbench".encode()).decode()
        code, text = client.docmd("AUTH", f"PLAIN {plain}")
        assert code == 538 and b"Encryption required" in text
        client.starttls(context=ssl.create_default_context(cafile=tls_bench.ca))
        client.ehlo()
        assert {"PLAIN", "EXTERNAL"} <= set(client.esmtp_features["auth"].split())
        assert client.login(BOX, "mockbench")[0] == 235


def test_smtp_auth_external_advertised_only_on_tls(mockbench):
    """Without TLS, EHLO offers the password and token mechanisms but not EXTERNAL (MSS/CONF.01: the
    applicative mailbox's certificate needs TLS)."""
    with smtplib.SMTP("localhost", mockbench.ports["smtp"], timeout=5) as client:
        client.ehlo()
        mechanisms = set(client.esmtp_features["auth"].split())
        assert "PLAIN" in mechanisms and "EXTERNAL" not in mechanisms


def test_smtp_clear_auth_allowed_when_auth_require_tls_is_false(tmp_path, mockbench_factory):
    init_pki(tmp_path / "pki")
    running = mockbench_factory(tls_dir=tmp_path / "pki", doors={"mss": {"auth_require_tls": False}})
    running.client.load_yaml(WORLD)
    with smtplib.SMTP("localhost", running.ports["smtp"], timeout=5) as client:
        client.ehlo()
        assert "EXTERNAL" not in client.esmtp_features["auth"].split()
        assert client.login(BOX, "mockbench")[0] == 235
