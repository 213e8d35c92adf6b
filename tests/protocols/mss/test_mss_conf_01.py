"""MSS/CONF.01 played end to end: smtplib stands in for the DPI, with the client certificate that
`mockbench pki init` makes for the applicative mailbox, and a Pro Santé Connect token (Authlib, code flow)
for the personal mailbox."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from mockbench.pki import client_context, load_tls_files

APP = "dpi@chu-test.mssante.fr"
JEANNE = "jeanne.martin@chu-test.mssante.fr"
BIOLO = "biolo@labo.mssante.fr"
PSC = "/oidc/psc/auth/realms/esante-wallet"
CALLBACK = "http://127.0.0.1:53117/callback"


@pytest.fixture
def bench(mockbench_factory, tmp_path):
    pki = tmp_path / "pki"
    subprocess.run([sys.executable, "-m", "mockbench", "pki", "init", str(pki)], check=True, capture_output=True,
                   timeout=60)
    running = mockbench_factory(tls_dir=pki)
    running.client.load("mss-conf-01")
    running.tls_files = load_tls_files(pki)
    return running


def note(sender: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, BIOLO, subject
    message["Message-ID"] = make_msgid(domain="dpi.test")
    message.set_content("Bonjour, veuillez trouver ci-joint les informations demandées.")
    return bytes(message)


def psc_token(bench, hint: str) -> str:
    """What the DPI does for the user: Pro Santé Connect's code flow with PKCE, non-interactive here."""
    issuer = bench.url + PSC
    meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session("mockbench", "mockbench-secret", scope="openid scope_all", redirect_uri=CALLBACK,
                            code_challenge_method="S256")
    verifier = generate_token(48)
    uri, _ = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                              login_hint=hint, acr_values="eidas1", nonce=generate_token(16))
    answer = requests.get(uri, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    token = session.fetch_token(meta["token_endpoint"], authorization_response=answer.headers["Location"],
                                code_verifier=verifier)
    return token["access_token"]


def xoauth2(user: str, token: str):
    return lambda challenge=None: f"user={user}\x01auth=Bearer {token}\x01\x01" if challenge is None else ""


def smtp_tls(bench) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10)
    client.starttls(context=client_context(bench.tls_files, "app-mailbox"))
    client.ehlo("dpi.test")
    return client


def send_as_app(bench, *, with_certificate: bool) -> None:
    client = smtp_tls(bench)
    if with_certificate:
        assert client.auth("EXTERNAL", lambda challenge=None: "")[0] == 235
    else:
        client.login(APP, "mockbench")
    assert client.sendmail(APP, [BIOLO], note(APP, "Résultats disponibles")) == {}
    client.quit()


@pytest.mark.scenario_play("mss-conf-01", "correct")
def test_mss_conf_01_certificate_for_the_app_mailbox_token_for_the_personal_one(bench):
    send_as_app(bench, with_certificate=True)
    client = smtp_tls(bench)
    assert client.auth("XOAUTH2", xoauth2(JEANNE, psc_token(bench, "dr_martin")))[0] == 235
    assert client.sendmail(JEANNE, [BIOLO], note(JEANNE, "Courrier de la Dr Martin")) == {}
    client.quit()
    steps = bench.client.finish()
    assert [(s["id"], s["status"]) for s in steps] == [
        ("certificat_boite_applicative", "passed"), ("envoi_applicatif", "passed"),
        ("jeton_boite_personnelle", "passed"), ("envoi_personnel", "passed")], steps
    auth = bench.client.journal(channel="mss", operation="SMTP_AUTH")
    assert [(e["actor"], e["raw"]) for e in auth] == [(APP, "EXTERNAL"), (JEANNE, "XOAUTH2")]


@pytest.mark.scenario_play("mss-conf-01", "mistake")
def test_mss_conf_01_the_establishment_certificate_on_a_personal_mailbox_fails(bench):
    send_as_app(bench, with_certificate=True)
    client = smtp_tls(bench)
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:   # authzid: the personal mailbox
        client.auth("EXTERNAL", lambda challenge=None: JEANNE if challenge is None else "")
    assert refused.value.smtp_code == 535 and b"MSS/CONF.01" in refused.value.smtp_error
    client.quit()
    steps = {s["id"]: s for s in bench.client.finish()}
    step = steps["jeton_boite_personnelle"]
    assert step["status"] == "failed"
    assert step["reason"].startswith("the entry's verdict is refused (CERTIFICATE_NOT_ALLOWED), accepted was "
                                     "expected; finding MSS/CONF.01:")
    assert f"{JEANNE} is PER" in step["reason"]
    assert steps["envoi_personnel"]["status"] == "failed"


def test_mss_conf_01_the_bench_password_on_the_app_mailbox_fails_the_first_step(bench):
    send_as_app(bench, with_certificate=False)
    step = bench.client.finish()[0]
    assert step["status"] == "failed"
    assert step["reason"].startswith(f"finding MSS/CONF.01: the applicative mailbox {APP} authenticated with ")
    assert "AUTH EXTERNAL" in step["reason"]


# --- The structure's own certificate (issue 15: "the DMP's certificate may be reused") ----------------------

STRUCTURE_WORLD = """\
id: app-structure-cert
title: Boîte applicative ouverte par le certificat de la structure
world:
  structures:
    - {id: chu, name: CHU de Test, finess: "010000024"}
    - {id: labo, name: Laboratoire}
  mailboxes:
    - {address: dpi@chu-test.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: automate@labo.mssante.fr, type: APP, owner: labo, role: hospital}
"""


def test_the_structure_s_org_auth_cli_certificate_opens_its_applicative_mailbox(bench):
    """MSS/CONF.01: the structure's ORG_AUTH_CLI-style certificate (no email SAN; OU its IDNST 1010000024, the
    one a DPI holds for the DMP) opens that structure's APP mailbox, named as the authorization identity;
    not another structure's, not without an authorization identity. SMTP AUTH EXTERNAL (smtplib) and IMAP
    AUTHENTICATE EXTERNAL (imaplib), both after STARTTLS."""
    import base64
    import imaplib

    bench.client.load_yaml(STRUCTURE_WORLD)
    context = client_context(bench.tls_files, "org-auth-cli")
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10)
    client.starttls(context=context)
    client.ehlo("dpi.test")
    assert "EXTERNAL" in client.esmtp_features["auth"].split()
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:        # another structure's mailbox
        client.auth("EXTERNAL", lambda challenge=None: "automate@labo.mssante.fr" if challenge is None else "")
    assert b"does not own automate@labo.mssante.fr" in refused.value.smtp_error
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:        # no authorization identity
        client.auth("EXTERNAL", lambda challenge=None: "")
    assert b"names no mailbox" in refused.value.smtp_error
    assert client.auth("EXTERNAL", lambda challenge=None: APP if challenge is None else "")[0] == 235
    assert client.sendmail(APP, [BIOLO.replace("biolo@labo", "automate@labo")], note(APP, "Résultats")) == {}
    client.quit()
    auth = bench.client.journal(channel="mss", operation="SMTP_AUTH")
    assert [(e["verdict"], e["code"]) for e in auth] == [
        ("refused", "CERTIFICATE_NOT_OWNER"), ("refused", "CERTIFICATE_NO_EMAIL"), ("accepted", None)]
    assert not [f for f in auth[-1]["findings"] if f["rule"] == "MSS/CONF.01"]   # a certificate: no warning

    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=10)
    assert "AUTH=EXTERNAL" not in conn.capabilities                       # only on TLS
    conn.starttls(context)
    assert "AUTH=EXTERNAL" in conn.capabilities
    assert conn.authenticate("EXTERNAL", lambda challenge: APP.encode())[0] == "OK"
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()
    conn = imaplib.IMAP4("127.0.0.1", bench.ports["imap"], timeout=10)
    conn.starttls(context)
    typ, data = conn._simple_command("AUTHENTICATE", "EXTERNAL",
                                     base64.b64encode(b"automate@labo.mssante.fr").decode())
    assert typ == "NO" and b"does not own" in data[0]
    conn.logout()
