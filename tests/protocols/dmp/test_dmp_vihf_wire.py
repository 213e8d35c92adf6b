"""The DMP door's VIHF, WS-Addressing and HTTPS rules (issue 14 points 4, 5, 6; issue 17 point 7), over real
sockets: zeep on the bench's own WSDLs for the transactions that pass, raw SOAP for the faults, TLS with and
without client certificates.

Sources:
- the VIHF: specs/trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP" (rows //Assertion/ds:Signature,
  //Assertion/Issuer, VIHF_Version, LPS_ID, and the three urn:oasis:names:tc:xacml:2.0:subject:role rows);
- WS-Addressing: IHE ITI TF-2x Appendix V (WS-Addressing required on IHE web services), W3C WS-Addressing
  1.0 SOAP Binding section 6.4.1 (InvalidAddressingHeader / ActionMismatch) and 6.4.2
  (MessageAddressingHeaderRequired), section 5.1 (the action parameter of application/soap+xml);
- HTTPS: DOMAIN.md "DMP" (TLS 1.2 mutual, ORG_AUTH_CLI certificate), OpenID Connect Discovery 1.0 section
  4.3 (the issuer is the URL the configuration was fetched from), RFC 8705 section 5 (mtls_endpoint_aliases).
"""

import json
import uuid
from pathlib import Path

import pytest
import requests
import zeep
from kit.dmp import WORLD, cda, find_documents, provide_and_register, vihf
from lxml import etree
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from mockbench.bench import Bench, BenchError
from mockbench.config import Config, load
from mockbench.pki import init_pki, signing_identity
from mockbench.testing import BenchClient, sign_vihf
from mockbench.testing.plugin import start_bench

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
TD31 = "urn:ihe:iti:2007:RegistryStoredQuery"
PREFIX = "/si-dmp-server/v2/services"


# --- helpers --------------------------------------------------------------------------------------------------

def people(client: BenchClient) -> tuple[dict, dict, str]:
    """(alice, dr_a, the CHU's IDNST) of kit.dmp.WORLD, as the door's callers see them."""
    pro = next(p for p in client.call("GET", "/professionals") if p["id"] == "dr_a")
    idnst = next(s for s in client.call("GET", "/structures") if s["id"] == "chu")["idnst"]
    return client.patient("alice"), pro, idnst


def envelope(body: etree._Element, security: etree._Element | None, *, action: str | None = TD31,
             message_id: str | None = "fresh", ns: str = SOAP12) -> bytes:
    header = ""
    if action is not None:
        header += f"<wsa:Action>{action}</wsa:Action>"
    if message_id is not None:
        header += f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
    if security is not None:
        header += etree.tostring(security).decode()
    return (f'<soap:Envelope xmlns:soap="{ns}" xmlns:wsa="{WSA}"><soap:Header>{header}</soap:Header>'
            f"<soap:Body>{etree.tostring(body).decode()}</soap:Body></soap:Envelope>").encode()


def post(url: str, data: bytes, content_type: str = "application/soap+xml; charset=utf-8", **kw) -> requests.Response:
    headers = {"Content-Type": content_type, **kw.pop("headers", {})}
    return requests.post(url, data=data, headers=headers, timeout=10, **kw)


def fault12(response: requests.Response) -> dict:
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault is not None, response.text
    values = [v.text for v in fault.iter(f"{{{SOAP12}}}Value")]
    return {"values": values, "reason": fault.findtext(f".//{{{SOAP12}}}Text"),
            "action": root.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action"),
            "problem": {etree.QName(e).localname: e.text for e in fault.iter(f"{{{WSA}}}*")}}


def last_dmp(client: BenchClient) -> dict:
    return client.journal(channel="dmp")[-1]


def rules(entry: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in entry["findings"]:
        out.setdefault(f["rule"], []).append(f["message"])
    return out


def set_attribute(security: etree._Element, name: str, value: str | None) -> etree._Element:
    """The VIHF with attribute `name` set to `value` (removed when None), before signing."""
    for attribute in security.iter(f"{{{SAML}}}Attribute"):
        if attribute.get("Name") == name:
            if value is None:
                attribute.getparent().remove(attribute)
            else:
                attribute.find(f"{{{SAML}}}AttributeValue").text = value
            return security
    raise AssertionError(f"no attribute {name}")


def zeep_client(url: str, service: str, session: requests.Session | None = None) -> tuple[zeep.Client, HistoryPlugin]:
    history = HistoryPlugin()
    transport = Transport(session=session) if session is not None else None
    return zeep.Client(f"{url}{PREFIX}/{service}?wsdl", plugins=[history], transport=transport), history


def zeep_td31(client: zeep.Client, history: HistoryPlugin, patient: dict, security: etree._Element) -> etree._Element:
    body = find_documents(patient)
    client.service.RegistryStoredQuery(_value_1=list(body), _attr_1=dict(body.attrib), _soapheaders=[security])
    return history.last_received["envelope"].find(f"{{{SOAP12}}}Body")[0]


@pytest.fixture
def world(mockbench):
    mockbench.client.load_yaml(WORLD)
    patient, pro, idnst = people(mockbench.client)
    return {"bench": mockbench, "client": mockbench.client, "patient": patient, "pro": pro, "idnst": idnst,
            "url": mockbench.url + PREFIX}


# --- point 4: the VIHF's signature ----------------------------------------------------------------------------

def test_signed_vihf_feeds_and_finds_through_zeep(world):
    """mapping.md, //Assertion/ds:Signature: signed by the structure's seal certificate of the bench's own PKI
    (mockbench.testing.sign_vihf, the documented way), the VIHF is trusted; its Issuer is the certificate's DN
    (row //Assertion/Issuer). A bench without --tls-dir has its PKI in its state folder."""
    bench, patient, pro = world["bench"], world["patient"], world["pro"]
    security = vihf(pro, world["idnst"], patient, signer=bench)
    issuer = security.find(f".//{{{SAML}}}Issuer").text
    assert f"OU={world['idnst']}" in issuer
    assert (bench.bench.state_dir / "pki" / "signing" / world["idnst"] / "org-sign.crt").is_file()
    repository, repo_history = zeep_client(bench.url, "repository")
    body, _ = provide_and_register(patient, pro, "1.2.250.1.999.4.1", cda(patient, pro, "1.2.250.1.999.4.1"))
    repository.service["ProvideAndRegisterDocumentSet-b"](_value_1=list(body), _attr_1=dict(body.attrib),
                                                          _soapheaders=[security])
    assert b"ResponseStatusType:Success" in etree.tostring(repo_history.last_received["envelope"])
    registry, history = zeep_client(bench.url, "registry")
    found = zeep_td31(registry, history, patient, security)
    assert len(found.findall(f".//{{{RIM}}}ExtrinsicObject")) == 1
    entry = last_dmp(world["client"])
    assert entry["verdict"] == "accepted" and not {"VIHF/Signature", "VIHF/Issuer"} & set(rules(entry))
    assert rules(entry)["VIHF/VIHF_Version"] == ["VIHF 3.0"]


def test_unsigned_vihf_is_refused_with_dmp_invalid_certificate(world):
    """mapping.md, //Assertion/ds:Signature: the signature is required; the real DMP's subcode for an
    untrusted token is DMPInvalidCertificate (it used to be an invented VIHFSignatureInvalid, and only with
    check_signatures)."""
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=None)
    response = post(f"{world['url']}/registry", envelope(find_documents(world["patient"]), security))
    fault = fault12(response)
    assert response.status_code == 400 and fault["values"] == ["soap:Sender", "dmp:DMPInvalidCertificate"]
    assert "the VIHF is not signed" in fault["reason"] and "mapping.md" in fault["reason"]
    entry = last_dmp(world["client"])
    assert (entry["verdict"], entry["code"]) == ("refused", "DMPInvalidCertificate")


def test_vihf_signed_by_an_untrusted_ca_or_altered_is_refused(world, tmp_path):
    other = init_pki(tmp_path / "elsewhere")
    stranger = vihf(world["pro"], world["idnst"], world["patient"],
                    signer=signing_identity(other.ca_cert.parent, world["idnst"]))
    response = post(f"{world['url']}/registry", envelope(find_documents(world["patient"]), stranger))
    assert fault12(response)["values"][1] == "dmp:DMPInvalidCertificate"
    assert "does not chain to the trusted CA" in fault12(response)["reason"]
    # signed by the bench's own PKI, then altered: the digest no longer matches
    altered = set_attribute(vihf(world["pro"], world["idnst"], world["patient"], signer=world["bench"]),
                            "Authentification_Mode", "DIRECTE")
    response = post(f"{world['url']}/registry", envelope(find_documents(world["patient"]), altered))
    assert fault12(response)["values"][1] == "dmp:DMPInvalidCertificate"
    assert "digest does not match" in fault12(response)["reason"]
    assert last_dmp(world["client"])["code"] == "DMPInvalidCertificate"


def test_signed_by_another_structures_seal_is_a_finding(world):
    """mapping.md, //Assertion/ds:Signature: the structure's own seal certificate signs. The clinique's seal on
    a VIHF of the CHU chains to the bench's CA (accepted) with a warning naming both."""
    clinique = next(s for s in world["client"].call("GET", "/structures") if s["id"] == "clinique")["idnst"]
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=None)
    registry, history = zeep_client(world["bench"].url, "registry")
    found = zeep_td31(registry, history, world["patient"], sign_vihf(security, world["bench"], structure=clinique))
    assert found.get("status").endswith("Success")
    messages = rules(last_dmp(world["client"]))["VIHF/Signature"]
    assert messages == [f"signed by the seal certificate of OU={clinique}, not of the VIHF's Identifiant_Structure "
                        f"{world['idnst']} (mapping.md: the structure's seal certificate signs)"]


def test_more_trust_anchors_by_configuration(mockbench_factory, tmp_path):
    """[doors.dmp] vihf_trust_anchors: a vendor's own test CA (e.g. the IGC Santé test chain) is trusted too."""
    other = init_pki(tmp_path / "vendor-ca")
    running = mockbench_factory(doors={"dmp": {"vihf_trust_anchors": [str(other.ca_cert)]}})
    running.client.load_yaml(WORLD)
    patient, pro, idnst = people(running.client)
    registry, history = zeep_client(running.url, "registry")
    for signer in (signing_identity(other.ca_cert.parent, idnst), running):   # the vendor's CA, the bench's own
        found = zeep_td31(registry, history, patient, vihf(pro, idnst, patient, signer=signer))
        assert found.get("status").endswith("Success")
    with pytest.raises(BenchError, match="vihf_trust_anchors: cannot read"):
        Bench(Config(http_port=0, mllp_port=0, smtp_port=0, imap_port=0, state=tmp_path / "bad",
                     doors={"dmp": {"vihf_trust_anchors": [str(tmp_path / "missing.pem")]}}))


def test_lenient_setting_turns_the_refusal_into_a_finding(mockbench_factory):
    """check_signatures = false (a DPI's first day): unsigned is accepted and journaled as a warning."""
    running = mockbench_factory(doors={"dmp": {"check_signatures": False}})
    running.client.load_yaml(WORLD)
    patient, pro, idnst = people(running.client)
    registry, history = zeep_client(running.url, "registry")
    found = zeep_td31(registry, history, patient, vihf(pro, idnst, patient, signer=None))
    assert found.get("status").endswith("Success")
    entry = last_dmp(running.client)
    assert entry["verdict"] == "accepted"
    assert any("the VIHF is not signed" in m and "check_signatures = false" in m for m in rules(entry)["VIHF/Signature"])
    assert next(f for f in entry["findings"] if f["rule"] == "VIHF/Signature")["severity"] == "warning"


def test_sign_vihf_accepts_bytes_and_replaces_a_signature(world):
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=None)
    once = sign_vihf(etree.tostring(security), world["bench"])
    twice = sign_vihf(once, world["bench"])
    assert isinstance(twice, bytes) and twice.count(b"SignatureValue>") == 2   # one element, open and close
    response = post(f"{world['url']}/registry", envelope(find_documents(world["patient"]), etree.fromstring(twice)))
    assert response.status_code == 200 and b"ResponseStatusType:Success" in response.content


# --- point 4: VIHF_Version, LPS_ID, roles ---------------------------------------------------------------------

@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_vihf_versions_3_and_4_are_accepted_and_journaled(world, version):
    """mapping.md, row VIHF_Version: Constante "4.0"; the ANS examples (corpus dmp-wire) carry 3.0."""
    security = set_attribute(vihf(world["pro"], world["idnst"], world["patient"], signer=None), "VIHF_Version",
                             version)
    registry, history = zeep_client(world["bench"].url, "registry")
    found = zeep_td31(registry, history, world["patient"], sign_vihf(security, world["bench"]))
    assert found.get("status").endswith("Success")
    assert rules(last_dmp(world["client"]))["VIHF/VIHF_Version"] == [f"VIHF {version}"]


def test_other_vihf_version_is_refused_naming_the_attribute(world):
    security = sign_vihf(set_attribute(vihf(world["pro"], world["idnst"], world["patient"], signer=None),
                                       "VIHF_Version", "2.0"), world["bench"])
    response = post(f"{world['url']}/registry", envelope(find_documents(world["patient"]), security))
    fault = fault12(response)
    assert response.status_code == 400 and fault["values"] == ["soap:Sender", "dmp:VIHFInvalidAttribute"]
    assert "VIHF_Version is '2.0'" in fault["reason"] and "3.0 or 4.0" in fault["reason"]
    assert last_dmp(world["client"])["code"] == "VIHFInvalidAttribute"


def test_lps_id_is_optional(world):
    """mapping.md, row LPS_ID: "Facultatif"."""
    security = sign_vihf(set_attribute(vihf(world["pro"], world["idnst"], world["patient"], signer=None),
                                       "LPS_ID", None), world["bench"])
    registry, history = zeep_client(world["bench"].url, "registry")
    assert zeep_td31(registry, history, world["patient"], security).get("status").endswith("Success")
    assert last_dmp(world["client"])["verdict"] == "accepted"


def test_a_doctor_without_the_second_role_is_a_finding(world):
    """mapping.md, role "2e occurrence uniquement et obligatoirement pour les médecins et pharmaciens": dr_a is
    a doctor (profession 10); with the builder's two roles no finding, without the second one accepted with
    the finding."""
    assert world["pro"].get("profession", "10") == "10"
    registry, history = zeep_client(world["bench"].url, "registry")
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=None)
    assert zeep_td31(registry, history, world["patient"], sign_vihf(security, world["bench"])).get(
        "status").endswith("Success")
    assert "VIHF/Role" not in rules(last_dmp(world["client"]))
    role = next(a for a in security.iter(f"{{{SAML}}}Attribute") if a.get("Name").endswith("subject:role"))
    role.remove(role[1])
    assert zeep_td31(registry, history, world["patient"], sign_vihf(security, world["bench"])).get(
        "status").endswith("Success")
    messages = rules(last_dmp(world["client"]))["VIHF/Role"]
    assert any("needs a second role occurrence from TRE_R01" in m for m in messages), messages


# --- point 5: WS-Addressing required --------------------------------------------------------------------------

@pytest.mark.parametrize(("missing", "header"), [("action", "wsa:Action"), ("message_id", "wsa:MessageID")])
def test_missing_addressing_header_is_message_addressing_header_required(world, missing, header):
    """IHE ITI TF-2x Appendix V; WS-Addressing 1.0 SOAP Binding 6.4.2: Sender, Subcode
    wsa:MessageAddressingHeaderRequired, detail wsa:ProblemHeaderQName, [action] .../addressing/fault. The
    Content-Type's action does not stand in for the missing header any more."""
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=world["bench"])
    data = envelope(find_documents(world["patient"]), security, **{missing: None})
    response = post(f"{world['url']}/registry", data, f'application/soap+xml; charset=utf-8; action="{TD31}"')
    fault = fault12(response)
    assert response.status_code == 400
    assert fault["values"] == ["soap:Sender", "wsa:MessageAddressingHeaderRequired"]
    assert fault["problem"]["ProblemHeaderQName"] == header
    assert fault["action"] == "http://www.w3.org/2005/08/addressing/fault"
    assert 'action="http://www.w3.org/2005/08/addressing/fault"' in response.headers["Content-Type"]
    entry = last_dmp(world["client"])
    assert (entry["verdict"], entry["code"]) == ("refused", "wsa:MessageAddressingHeaderRequired")


def test_content_type_action_that_disagrees_is_action_mismatch(world):
    """WS-Addressing 1.0 SOAP Binding 5.1 and 6.4.1: Subcode wsa:InvalidAddressingHeader, Subsubcode
    wsa:ActionMismatch, detail wsa:ProblemAction."""
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=world["bench"])
    data = envelope(find_documents(world["patient"]), security)
    response = post(f"{world['url']}/registry", data,
                    'application/soap+xml; action="urn:ihe:iti:2007:RetrieveDocumentSet"')
    fault = fault12(response)
    assert response.status_code == 400
    assert fault["values"] == ["soap:Sender", "wsa:InvalidAddressingHeader", "wsa:ActionMismatch"]
    assert fault["problem"]["ProblemAction"] == TD31
    assert last_dmp(world["client"])["code"] == "wsa:ActionMismatch"
    # the same action in both places is fine
    agreeing = post(f"{world['url']}/registry", data, f'application/soap+xml; action="{TD31}"')
    assert agreeing.status_code == 200 and b"ResponseStatusType:Success" in agreeing.content


def test_soap11_soapaction_that_disagrees_is_action_mismatch(world):
    """WS-Addressing 1.0 SOAP Binding 4.1 (SOAPAction) and 6.3: SOAP 1.1 faultcode wsa:ActionMismatch."""
    security = vihf(world["pro"], world["idnst"], world["patient"], signer=world["bench"])
    data = envelope(find_documents(world["patient"]), security, ns=SOAP11)
    response = post(f"{world['url']}/registry", data, "text/xml; charset=utf-8", headers={"SOAPAction": '"urn:x"'})
    assert response.status_code == 500
    assert etree.fromstring(response.content).findtext(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault/faultcode") == \
        "wsa:ActionMismatch"


# --- point 6: HTTPS advertises HTTPS; the plain-HTTP door with TLS on -------------------------------------------

@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A bench with --tls-dir: its PKI's CA is the VIHF trust anchor too (the same `mockbench pki init`)."""
    root = tmp_path_factory.mktemp("tls")
    files = init_pki(root / "pki")
    running = start_bench(root / "state", tls_dir=root / "pki", public_https_url=None)
    yield running, files
    running.bench.close()


@pytest.fixture
def tls_world(tls):
    running, files = tls
    running.bench.reset()
    running.client.load_yaml(WORLD)
    patient, pro, idnst = people(running.client)
    return running, files, patient, pro, idnst


def session(files, client: str | None = "org-auth-cli") -> requests.Session:
    s = requests.Session()
    s.trust_env = False     # else REQUESTS_CA_BUNDLE from the environment overrides `verify`
    s.verify = str(files.ca_cert)
    if client is not None:
        s.cert = tuple(str(p) for p in files.clients[client])
    return s


def wsdl_address(xml: bytes) -> str:
    return etree.fromstring(xml).find(f".//{{{WSDL}}}port/{{{WSDL_SOAP12}}}address").get("location")


def test_wsdl_on_the_https_port_advertises_https_and_zeep_calls_there(tls_world):
    running, files, patient, pro, idnst = tls_world
    https = f"https://127.0.0.1:{running.ports['https']}"
    assert running.bench.https_url == https
    assert wsdl_address(session(files).get(f"{https}{PREFIX}/registry?wsdl", timeout=10).content) == \
        f"{https}{PREFIX}/registry"
    # fetched on the HTTP port, the WSDL still names the HTTP port
    assert wsdl_address(requests.get(f"{running.url}{PREFIX}/registry?wsdl", timeout=10).content) == \
        f"{running.url}{PREFIX}/registry"
    # zeep, loading the WSDL over HTTPS with the structure's AUTH_CLI certificate, calls over HTTPS; the
    # VIHF is signed by the seal certificate of the same PKI (signing/<IDNST>/)
    security = vihf(pro, idnst, patient, signer=running)
    assert (files.ca_cert.parent / "signing" / idnst / "org-sign.crt").is_file()
    registry, history = zeep_client(https, "registry", session(files))
    assert zeep_td31(registry, history, patient, security).get("status").endswith("Success")
    # without a client certificate, the same WSDL-driven call meets the certificate check
    anonymous, _ = zeep_client(https, "registry", session(files, None))
    body = find_documents(patient)
    with pytest.raises(zeep.exceptions.Fault) as refused:
        anonymous.service.RegistryStoredQuery(_value_1=list(body), _attr_1=dict(body.attrib), _soapheaders=[security])
    assert "no client certificate" in refused.value.message
    assert last_dmp(running.client)["code"] == "DMPInvalidCertificate"


def test_plain_http_dmp_is_refused_when_tls_is_on(tls_world):
    """The real DMP has no plain-HTTP door (DOMAIN.md, "DMP": TLS 1.2 mutual only)."""
    running, _files, patient, pro, idnst = tls_world
    data = envelope(find_documents(patient), vihf(pro, idnst, patient, signer=running))
    response = post(f"{running.url}{PREFIX}/registry", data)
    fault = fault12(response)
    assert response.status_code == 403 and fault["values"] == ["soap:Sender", "dmp:DMPInvalidCertificate"]
    assert f"https://127.0.0.1:{running.ports['https']}{PREFIX}/registry" in fault["reason"]
    assert last_dmp(running.client)["code"] == "DMPInvalidCertificate"


def test_plain_http_dmp_accepted_with_a_finding_when_configured(tmp_path):
    files = init_pki(tmp_path / "pki")
    running = start_bench(tmp_path / "state", tls_dir=tmp_path / "pki", doors={"dmp": {"accept_plain_http": True}},
                          public_https_url="https://dmp.example.test:9443")
    try:
        running.client.load_yaml(WORLD)
        patient, pro, idnst = people(running.client)
        registry, history = zeep_client(running.url, "registry")
        found = zeep_td31(registry, history, patient, vihf(pro, idnst, patient, signer=running))
        assert found.get("status").endswith("Success")
        messages = rules(last_dmp(running.client))["DMP/TLS"]
        assert len(messages) == 1 and "https://dmp.example.test:9443" in messages[0]
        # --public-https-url is what the HTTPS port advertises
        https = f"https://127.0.0.1:{running.ports['https']}"
        assert wsdl_address(session(files).get(f"{https}{PREFIX}/patients?wsdl", timeout=10).content) == \
            f"https://dmp.example.test:9443{PREFIX}/patients"
    finally:
        running.bench.close()


def test_oidc_discovery_over_https_advertises_https_and_mtls_aliases(tls_world):
    running, files, *_ = tls_world
    https = f"https://127.0.0.1:{running.ports['https']}"
    discovery = "/oidc/psc/auth/realms/esante-wallet/.well-known/openid-configuration"
    over_https = session(files, None).get(https + discovery, timeout=10)
    over_http = requests.get(running.url + discovery, timeout=10)
    assert over_https.status_code == over_http.status_code == 200
    doc, plain = over_https.json(), over_http.json()
    assert doc["issuer"].startswith(https) and doc["token_endpoint"].startswith(https)
    assert plain["issuer"].startswith(running.url) and plain["token_endpoint"].startswith(running.url)
    for document in (doc, plain):   # RFC 8705 section 5: where to authenticate with a certificate
        aliases = document["mtls_endpoint_aliases"]
        assert aliases["token_endpoint"] == doc["token_endpoint"]
        assert all(url.startswith(https) for url in aliases.values())


def test_public_https_url_is_a_flag_and_a_setting(tmp_path):
    from mockbench.cli import build_parser

    args = build_parser().parse_args(["up", "--public-https-url", "https://dmp.example.test"])
    assert args.public_https_url == "https://dmp.example.test"
    config = load(None, env={"MOCKBENCH_PUBLIC_HTTPS_URL": "https://x.test:1/"})
    assert config.advertised_https_url(8443) == "https://x.test:1"
    assert Config(host="0.0.0.0").advertised_https_url(9443) == "https://127.0.0.1:9443"
    toml = tmp_path / "b.toml"
    toml.write_text(json.dumps({}).replace("{}", 'public_https_url = "https://t.test"'), encoding="utf-8")
    assert load(toml, env={}).public_https_url == "https://t.test"


def test_bench_without_tls_has_no_https_url(world):
    assert world["bench"].bench.https_url is None
    assert Path(world["bench"].bench.pki_dir) == world["bench"].bench.state_dir / "pki"
