"""`mockbench endpoints` and GET /_bench/endpoints (issue 18 point 4): what a DPI must be configured with,
read from a running bench with the command line, then each address, credential and certificate it gives
used by a real client (requests, a socket speaking MLLP, smtplib, imaplib) as a DPI would. Nothing compared
with a hard-coded URL: the values must agree with what the bench itself serves (its discovery documents, its
WSDLs, its ports)."""

from __future__ import annotations

import imaplib
import json
import smtplib
import ssl

import pytest
import requests
from kit.process import wait_for_port_file
from lxml import etree
from test_api import check

from mockbench.cli import main
from mockbench.control.openapi import openapi_document
from mockbench.pki import init_pki
from mockbench.testing import messages as m

WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"


@pytest.fixture(scope="module")
def spec():
    return openapi_document()


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["endpoints", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def soap_address(wsdl: bytes) -> str:
    return etree.fromstring(wsdl).find(f".//{{{WSDL}}}port/{{{WSDL_SOAP12}}}address").get("location")


@pytest.mark.mockbench_scenario("hidden-documents")
def test_the_text_names_every_door_and_the_world_in_french(mockbench, capsys):
    code, out, err = cli(capsys, "--url", mockbench.url)
    assert code == 0, err
    for heading in ("Configurer votre DPI", "DMP (SOAP 1.2", "Pro Santé Connect (OIDC)",
                    "Fournisseur d'identité de l'établissement (OIDC)", "Annuaire Santé (FHIR R4, API V2)",
                    "PFI (HL7 v2 sur MLLP)", "MSSanté (SMTP, IMAP)", "Certificats", "Identités du monde chargé"):
        assert heading in out, heading
    c = mockbench.client
    for patient in c.call("GET", "/patients"):
        assert f"{patient['ins']} ({patient['ins_oid']}) {patient['family_name']} {patient['given_name']}" in out
    for pro in c.call("GET", "/professionals"):
        assert f"IDNPS {pro['idnps']}, RPPS {pro['rpps']}" in out
    for structure in c.call("GET", "/structures"):
        assert f"FINESS {structure['finess']}" in out and f"IDNST {structure['idnst']}" in out
    assert f"127.0.0.1:{mockbench.ports['mllp']}" in out and f"127.0.0.1:{mockbench.ports['smtp']}" in out
    assert "ESANTE-API-KEY: mockbench" in out and "client_id=mockbench client_secret=mockbench-secret" in out


@pytest.mark.mockbench_scenario("hidden-documents")
def test_each_address_and_credential_of_the_json_works_without_tls(mockbench, capsys, spec):
    code, out, _ = cli(capsys, "--url", mockbench.url, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert check(spec, requests.get(mockbench.url + "/_bench/endpoints", timeout=10), "/_bench/endpoints") == doc
    assert mockbench.client.endpoints() == doc
    assert doc["tls"] is False and doc["scenario"] == "hidden-documents" and doc["urls"]["http"] == mockbench.url

    # DMP: each WSDL answers and names the service's own address, where a signed request succeeds
    for service in doc["dmp"]["services"]:
        wsdl = requests.get(service["wsdl"], timeout=10)
        assert wsdl.status_code == 200 and soap_address(wsdl.content) == service["http"]
        assert service["https"] is None
    ids = doc["identities"]
    patient = mockbench.client.patient(ids["patients"][0]["id"])
    pro = ids["professionals"][0]
    idnst = next(s["idnst"] for s in ids["structures"] if s["id"] == pro["structure"])
    assert idnst in [s["idnst"] for s in doc["certificates"]["signing"]]   # the seal to sign its VIHFs with
    registry = next(s for s in doc["dmp"]["services"] if s["service"] == "registry")
    found = requests.post(registry["http"], headers={"Content-Type": "application/soap+xml"}, timeout=10,
                          data=m.soap_envelope(m.find_documents(patient), m.vihf(pro, idnst, patient,
                                               signer=mockbench.bench), m.ACTIONS["TD3.1"]))
    assert found.status_code == 200 and b"ResponseStatusType:Success" in found.content

    # OIDC: the same endpoints as each issuer's discovery; the client's credentials are accepted
    for issuer in doc["oidc"]:
        urls = issuer["urls"]["http"]
        served = requests.get(urls["discovery"], timeout=10).json()
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                    "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"):
            assert served[key] == urls[key], key
        client = issuer["clients"][0]
        introspected = requests.post(urls["introspection_endpoint"], data={"token": "nothing"}, timeout=10,
                                     auth=(client["client_id"], client["client_secret"]))
        assert introspected.status_code == 200 and introspected.json() == {"active": False}

    # Annuaire: the header and key given open the API
    annuaire = doc["annuaire"]
    assert requests.get(annuaire["base"] + "/metadata", timeout=10).status_code == 401
    assert requests.get(annuaire["base"] + "/metadata", timeout=10,
                        headers={annuaire["api_key_header"]: annuaire["api_keys"][0]}).status_code == 200

    # PFI: an MDM to the MLLP address given is acknowledged
    structure = next(s for s in ids["structures"] if s["id"] == pro["structure"])
    ack = m.send_mllp((doc["pfi"]["host"], doc["pfi"]["port"]),
                      m.mdm("T02", patient, pro, "1.2.250.1.999.91.1", finess=structure["finess"]))
    assert b"MSA|AA|" in ack

    # MSSanté: a professional's mailbox opens with the password given, on SMTP and IMAP
    mss = doc["mss"]
    address = next(p["mssante"] for p in ids["professionals"] if p["mssante"])
    with smtplib.SMTP(mss["smtp"]["host"], mss["smtp"]["port"], timeout=10) as smtp:
        assert smtp.login(address, mss["password"])[0] == 235
    imap = imaplib.IMAP4(mss["imap"]["host"], mss["imap"]["port"], timeout=10)
    try:
        assert imap.login(address, mss["password"])[0] == "OK"
    finally:
        imap.logout()


def test_with_tls_the_https_addresses_and_the_certificates_to_use(mockbench_factory, tmp_path, capsys, spec):
    files = init_pki(tmp_path / "pki")
    running = mockbench_factory(tls_dir=tmp_path / "pki")
    running.client.load("mss-conf-01")   # its APP mailbox is the one clients/app-mailbox.crt names
    code, out, _ = cli(capsys, "--url", running.url, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["tls"] is True and doc["urls"]["https"] == f"https://127.0.0.1:{running.ports['https']}"
    cert = doc["certificates"]
    assert cert["ca"] == str(files.ca_cert) and cert["server"] == str(files.server_cert)
    clients = {c["name"]: c for c in cert["clients"]}
    assert set(clients) == {"org-auth-cli", "app-mailbox"} and clients["app-mailbox"]["email"] == \
        "dpi@chu-test.mssante.fr"
    assert all(c["p12"] and c["p12"].endswith(".p12") for c in cert["clients"]) and cert["p12_password"] == "mockbench"

    # the DMP over HTTPS with the client certificate listed; plain HTTP is refused and said so
    assert doc["dmp"]["plain_http_refused"] is True
    session = requests.Session()
    session.trust_env, session.verify = False, cert["ca"]
    session.cert = (clients["org-auth-cli"]["cert"], clients["org-auth-cli"]["key"])
    for service in doc["dmp"]["services"]:
        assert soap_address(session.get(service["wsdl_https"], timeout=10).content) == service["https"]
    psc = next(i for i in doc["oidc"] if i["name"] == "psc")["urls"]["https"]
    assert session.get(psc["discovery"], timeout=10).json()["token_endpoint"] == psc["token_endpoint"]
    assert session.get(doc["annuaire"]["base_https"] + "/metadata", timeout=10,
                       headers={"ESANTE-API-KEY": "mockbench"}).status_code == 200

    # MSSanté: STARTTLS, no authentication in clear; the APP mailbox opens with its certificate
    mss = doc["mss"]
    assert mss["smtp"]["starttls"] and not mss["smtp"]["auth_in_clear"] and not mss["imap"]["auth_in_clear"]
    context = ssl.create_default_context(cafile=cert["ca"])
    context.load_cert_chain(clients["app-mailbox"]["cert"], clients["app-mailbox"]["key"])
    with smtplib.SMTP(mss["smtp"]["host"], mss["smtp"]["port"], timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "EXTERNAL =")
        assert code == 235
    code, text, _ = cli(capsys, "--url", running.url)
    assert code == 0 and "STARTTLS" in text and "jamais en clair" in text and "HTTP simple refusé" in text
    assert "dpi@chu-test.mssante.fr (APP, chu, hospital)" in text and "app-mailbox.p12" in text


def test_published_ports_and_the_backchannel_host_are_what_is_given(mockbench_factory, capsys):
    running = mockbench_factory(public_ports="mllp=12575,smtp=12525,imap=11143",
                                backchannel_url="http://mockbench:8080")
    code, out, _ = cli(capsys, "--url", running.url, "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert (doc["pfi"]["host"], doc["pfi"]["port"]) == ("mockbench", 12575)
    assert (doc["mss"]["smtp"]["port"], doc["mss"]["imap"]["port"]) == (12525, 11143)
    assert doc["dmp"]["services"][0]["http"].startswith("http://mockbench:8080/")
    psc = doc["oidc"][0]["urls"]["http"]
    assert psc["issuer"].startswith(running.url) and psc["token_endpoint"].startswith("http://mockbench:8080/")


def test_the_control_token_is_required_where_the_bench_requires_it(mockbench_factory, capsys):
    running = mockbench_factory(control_token="s3cret")
    code, _, err = cli(capsys, "--url", running.url)
    assert code == 1 and "401" in err
    code, out, _ = cli(capsys, "--url", running.url, "--control-token", "s3cret")
    assert code == 0 and "Configurer votre DPI" in out


def test_no_bench_and_a_bad_format_say_so(capsys, mockbench):
    code, _, err = cli(capsys, "--url", "http://127.0.0.1:9")
    assert code == 1 and "no bench answers" in err
    bad = requests.get(mockbench.url + "/_bench/endpoints?format=xml", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_FORMAT"


@pytest.mark.slow
def test_two_processes_the_bench_in_a_container_like_setup_and_the_cli(tmp_path):
    """As an integrator meets it: `mockbench up` in its own process (TLS, bound beyond loopback with a token,
    names for the browser and for servers, published ports), then `mockbench endpoints` in another."""
    import os
    import signal
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "mockbench", "pki", "init", str(tmp_path / "pki"), "--host", "mockbench",
                    "--host", "127.0.0.1"], check=True, capture_output=True, timeout=60)
    ports = tmp_path / "ports.json"
    env = {**os.environ, "MOCKBENCH_CONTROL_TOKEN": "t0ken"}
    bench = subprocess.Popen(
        [sys.executable, "-m", "mockbench", "up", "--host", "0.0.0.0", "--tls-dir", str(tmp_path / "pki"),
         "--scenario", "mss-conf-01", "--reset", "--state", str(tmp_path / "state"), "--port-file", str(ports),
         "--http-port", "0", "--https-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0",
         "--public-url", "http://localhost:18080", "--backchannel-url", "http://mockbench:18080",
         "--public-ports", "mllp=12575,smtp=12525,imap=11143", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{wait_for_port_file(bench, ports, 30)['http']}"
        run = [sys.executable, "-m", "mockbench", "endpoints", "--url", url]
        refused = subprocess.run(run, capture_output=True, text=True, timeout=60, env=os.environ | {
            "MOCKBENCH_CONTROL_TOKEN": ""})
        assert refused.returncode == 1 and "401" in refused.stderr
        shown = subprocess.run([*run, "--control-token", "t0ken"], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout
        assert "scénario mss-conf-01, TLS activé" in text and "(jeton de contrôle exigé)" in text
        assert "URL publique (navigateur)    http://localhost:18080" in text
        assert "Canal arrière (serveurs)     http://mockbench:18080" in text
        assert "Envoi des messages du DPI    mockbench:12575" in text and "mockbench:12525 STARTTLS" in text
        assert "Émetteur (issuer) (HTTP)     http://localhost:18080/oidc/psc/auth/realms/esante-wallet" in text
        assert "Jeton (HTTP)                 http://mockbench:18080/oidc/psc/auth/realms/esante-wallet/protocol" \
            "/openid-connect/token" in text
        assert str(tmp_path / "pki" / "clients" / "org-auth-cli.p12") in text
        assert "dpi@chu-test.mssante.fr (APP, chu, hospital)" in text
        doc = json.loads(subprocess.run([*run, "--control-token", "t0ken", "--format", "json"], capture_output=True,
                                        text=True, timeout=60).stdout)
        assert doc["urls"]["backchannel"] == "http://mockbench:18080" and doc["tls"] is True
    finally:
        bench.send_signal(signal.SIGINT)
        bench.wait(timeout=15)
