"""Front-channel and back-channel addresses (issue 18 point 5), as Keycloak's hostname options separate them:
a browser on the host reaches the bench as `--public-url`, a DPI in a sibling container as
`--backchannel-url`. Discovery keeps the issuer and the authorization endpoint (the browser's) on the public
URL and advertises what a server calls itself (token, userinfo, JWKS, introspection, revocation, CIBA: OIDC
Core 3.1.3.1, 5.3; RFC 7662, 7009; CIBA 7.1) and the DMP WSDLs' soap:address on the back-channel base.

Here both names reach the same bench (localhost for the browser, 127.0.0.1 for the server), so that each
advertised address is called by a real client."""

from __future__ import annotations

import socket

import pytest
import requests
from lxml import etree

from mockbench.bench import Bench
from mockbench.config import Config, ConfigError, load
from mockbench.pki import init_pki
from mockbench.testing import BenchClient
from mockbench.testing import messages as m
from mockbench.testing.plugin import RunningBench, start_bench

WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
PSC = "/oidc/psc/auth/realms/esante-wallet"
BACK = ("token_endpoint", "userinfo_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint",
        "backchannel_authentication_endpoint")
WORLD = """\
id: backchannel
title: Canal arrière
seed: 2
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals: [{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}]
  patients: [{id: alice, sex: F, family_name: DURAND, given_name: Alice, birth_date: "1980-05-04",
              authorizations: [{structure: chu}]}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_names(tmp_path):
    port = free_port()
    bench = Bench(Config(http_port=port, https_port=0, mllp_port=0, smtp_port=0, imap_port=0,
                         state=tmp_path / "state", public_url=f"http://localhost:{port}",
                         backchannel_url=f"http://127.0.0.1:{port}"))
    bench.start()
    yield RunningBench(bench, BenchClient(bench.url)), f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    bench.close()


def test_discovery_puts_the_browser_on_the_public_url_and_the_server_on_the_backchannel(two_names):
    running, front, back = two_names
    for issuer in (PSC, "/oidc/etab"):
        doc = requests.get(back + issuer + "/.well-known/openid-configuration", timeout=10).json()
        assert doc["issuer"] == front + issuer       # the iss of every token: one value for both sides
        assert doc["end_session_endpoint"].startswith(front + issuer)
        for name in BACK:
            assert doc[name].startswith(back + issuer + "/"), (name, doc[name])
        # what the server is told to call answers there: the JWKS, and the token endpoint's OAuth error
        assert requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
        refused = requests.post(doc["token_endpoint"], data={"grant_type": "authorization_code", "code": "x"},
                                timeout=10)
        assert refused.status_code in (400, 401) and "error" in refused.json()
    psc = requests.get(back + PSC + "/.well-known/openid-configuration", timeout=10).json()
    assert psc["authorization_endpoint"] == front + "/oidc/psc-wallet/auth"   # the wallet, in the browser


def test_the_wsdl_names_the_backchannel_address_and_the_dmp_answers_there(two_names):
    running, _front, back = two_names
    running.client.load_yaml(WORLD)
    wsdl = requests.get(back + m.DMP_SERVICES + "/registry?wsdl", timeout=10).content
    address = etree.fromstring(wsdl).find(f".//{{{WSDL}}}port/{{{WSDL_SOAP12}}}address").get("location")
    assert address == back + m.DMP_SERVICES + "/registry"
    patient = running.client.patient("alice")
    pro = running.client.call("GET", "/professionals")[0]
    idnst = running.client.call("GET", "/structures")[0]["idnst"]
    answer = requests.post(address, timeout=10, headers={"Content-Type": "application/soap+xml"},
                           data=m.soap_envelope(m.find_documents(patient),
                                                m.vihf(pro, idnst, patient, signer=running.bench),
                                                m.ACTIONS["TD3.1"]))
    assert answer.status_code == 200 and b"ResponseStatusType:Success" in answer.content


def test_without_a_backchannel_url_every_address_is_the_public_one(mockbench):
    doc = requests.get(mockbench.url + PSC + "/.well-known/openid-configuration", timeout=10).json()
    assert all(doc[name].startswith(mockbench.url + PSC) for name in BACK)


def test_over_https_the_backchannel_https_url_is_advertised(tmp_path):
    files = init_pki(tmp_path / "pki", hosts=("localhost", "127.0.0.1", "mockbench"))
    running = start_bench(tmp_path / "state", tls_dir=tmp_path / "pki",
                          backchannel_https_url="https://mockbench:9443")
    try:
        https = f"https://127.0.0.1:{running.ports['https']}"
        session = requests.Session()
        session.trust_env, session.verify = False, str(files.ca_cert)
        session.cert = tuple(str(p) for p in files.clients["org-auth-cli"])
        doc = session.get(https + PSC + "/.well-known/openid-configuration", timeout=10).json()
        assert doc["issuer"] == https + PSC and doc["token_endpoint"] == "https://mockbench:9443" + PSC + \
            "/protocol/openid-connect/token"
        assert doc["mtls_endpoint_aliases"]["token_endpoint"] == doc["token_endpoint"]
        wsdl = session.get(https + m.DMP_SERVICES + "/registry?wsdl", timeout=10).content
        assert etree.fromstring(wsdl).find(f".//{{{WSDL}}}port/{{{WSDL_SOAP12}}}address").get("location") == \
            "https://mockbench:9443" + m.DMP_SERVICES + "/registry"
    finally:
        running.bench.close()


def test_backchannel_urls_are_flags_settings_and_checked(tmp_path):
    from mockbench.cli import build_parser

    args = build_parser().parse_args(["up", "--backchannel-url", "http://mockbench:8080",
                                      "--backchannel-https-url", "https://mockbench:8443"])
    assert (args.backchannel_url, args.backchannel_https_url) == ("http://mockbench:8080", "https://mockbench:8443")
    assert load(env={"MOCKBENCH_BACKCHANNEL_URL": "http://dpi-net:8080"}).backchannel_url == "http://dpi-net:8080"
    with pytest.raises(ConfigError, match="backchannel_url: 'mockbench:8080' is not a base URL"):
        load(env={"MOCKBENCH_BACKCHANNEL_URL": "mockbench:8080"})


def test_the_backchannel_name_is_an_allowed_host_of_the_control_api(tmp_path):
    """A DPI's container runs `mockbench endpoints --url http://mockbench:8080`: its Host is accepted."""
    running = start_bench(tmp_path / "state", backchannel_url="http://mockbench:8080")
    try:
        health = running.url + "/_bench/health"
        assert requests.get(health, headers={"Host": "mockbench:8080"}, timeout=10).status_code == 200
        refused = requests.get(health, headers={"Host": "elsewhere.example:8080"}, timeout=10)
        assert refused.status_code == 403 and refused.json()["error"] == "HOST_NOT_ALLOWED"
    finally:
        running.bench.close()
