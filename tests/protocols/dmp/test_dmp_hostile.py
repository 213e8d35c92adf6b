"""The DMP door against hostile and broken requests, over real HTTP: each refusal is a precise SOAP fault (or,
for an XDS transaction the world refuses, a RegistryResponse Failure with the right RegistryError), is
journaled on channel dmp as refused with its stable code, and leaves the bench serving. Last, a fuzz test
of mutated TD3.1 envelopes through `DmpDoor.handle`."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kit.dmp import cda, find_documents, provide_and_register, retrieve, update_status, vihf
from lxml import etree

from mockbench.protocols.dmp.door import DmpDoor
from mockbench.protocols.dmp.soap import SoapLimits

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SOAP_XML = "application/soap+xml"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
TD21 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
TD31 = "urn:ihe:iti:2007:RegistryStoredQuery"
TD32 = "urn:ihe:iti:2007:RetrieveDocumentSet"
TD33 = "urn:ihe:iti:2010:UpdateDocumentSet"
MESSAGE_ID = "urn:uuid:00000000-0000-4000-8000-0000000000aa"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"

WORLD = """\
id: dmp-hostile
title: DMP hostile
seed: 11
world:
  structures: [{id: chu, name: CHU de Test}, {id: clinique, name: Clinique}]
  professionals:
    - {id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}
    - {id: dr_c, family_name: ROUX, given_name: Claire, structure: clinique}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{structure: chu}, {structure: clinique}]
      documents:
        - {id: cr_a, author: dr_a}
    - id: bob
      sex: M
      family_name: BERNARD
      given_name: Bob
      birth_date: "1975-02-03"
      dmp: closed
      authorizations: [{structure: chu}]
    - id: carol
      sex: F
      family_name: LEROY
      given_name: Carol
      birth_date: "1990-07-08"
      authorizations: [{structure: chu}]
"""


@pytest.fixture
def w(mockbench):
    """The hostile world: people as the door's callers see them, and helpers bound to the bench."""
    mockbench.client.load_yaml(WORLD)
    client = mockbench.client
    pros = {p["id"]: p for p in client.call("GET", "/professionals")}
    structures = {s["id"]: s["idnst"] for s in client.call("GET", "/structures")}
    patients = {key: client.patient(key) for key in ("alice", "bob", "carol")}
    return World(mockbench, pros, structures, patients)


class World:
    def __init__(self, running, pros: dict, structures: dict, patients: dict) -> None:
        self.running, self.pros, self.structures, self.patients = running, pros, structures, patients
        self.services = running.url + "/si-dmp-server/v2/services"

    def security(self, pro: str = "dr_a", patient: str = "alice", **kw) -> etree._Element:
        person = self.pros[pro]
        return vihf(person, self.structures[person["structure"]], self.patients[patient], signer=self.running, **kw)

    def td31(self, action: str | None = TD31, *, security: etree._Element | None = None, **kw) -> bytes:
        """A FindDocuments envelope on alice by dr_a (or with `security`), under `action`."""
        security = self.security() if security is None else security
        return envelope(find_documents(self.patients["alice"]), security, action, **kw)

    def journal(self) -> list[dict]:
        return self.running.client.journal(channel="dmp")

    def assert_refused(self, code: str, operation: str | None = None) -> dict:
        last = self.journal()[-1]
        assert (last["verdict"], last["code"]) == ("refused", code), last
        if operation is not None:
            assert last["operation"] == operation, last
        return last

    def assert_serving(self) -> None:
        """A valid TD3.1 still gets Success."""
        before = len(self.journal())
        response = post(f"{self.services}/registry", self.td31())
        assert response.status_code == 200, response.text
        status, codes = xds_result(response)
        assert (status, codes) == (SUCCESS, [])
        last = self.journal()[-1]
        assert len(self.journal()) == before + 1
        assert (last["operation"], last["verdict"]) == ("TD3.1", "accepted")


# Messages ---------------------------------------------------------------------------------------------------

def envelope(body: etree._Element | str | None, security: etree._Element | None, action: str | None, *,
             ns: str = SOAP12) -> bytes:
    """A SOAP envelope with WS-A Action (left out when None) and MessageID, and the VIHF when given."""
    body_xml = body if isinstance(body, str) else etree.tostring(body).decode() if body is not None else ""
    action_xml = f"<wsa:Action>{action}</wsa:Action>" if action is not None else ""
    security_xml = etree.tostring(security).decode() if security is not None else ""
    return (f'<soap:Envelope xmlns:soap="{ns}" xmlns:wsa="{WSA}"><soap:Header>{action_xml}'
            f"<wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>{security_xml}</soap:Header>"
            f"<soap:Body>{body_xml}</soap:Body></soap:Envelope>").encode()


def post(url: str, data: bytes, content_type: str = SOAP_XML, **headers: str) -> requests.Response:
    return requests.post(url, data=data, headers={"Content-Type": content_type, **headers}, timeout=10)


def mtom(envelope_xml: bytes, parts: dict[str, bytes], *, boundary: str = "MIME_hostile",
         start: str = "<root@hostile>", root_id: str = "root@hostile") -> tuple[str, bytes]:
    """(Content-Type, body) of an MTOM package: the envelope as root part, then `parts` by Content-ID."""
    out = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"{SOAP_XML}\"\r\n"
           f"Content-Transfer-Encoding: binary\r\nContent-ID: <{root_id}>\r\n\r\n").encode() + envelope_xml
    for cid, data in parts.items():
        out += (f"\r\n--{boundary}\r\nContent-Type: text/xml\r\nContent-Transfer-Encoding: binary\r\n"
                f"Content-ID: <{cid}>\r\n\r\n").encode() + data
    out += f"\r\n--{boundary}--\r\n".encode()
    content_type = (f'multipart/related; type="application/xop+xml"; start="{start}"; '
                    f'start-info="{SOAP_XML}"; boundary="{boundary}"')
    return content_type, out


def root_part(content_type: str, payload: bytes) -> bytes:
    """The XML of an answer: the body itself, or the root part of an MTOM package."""
    if not content_type.startswith("multipart/related"):
        return payload
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    first = payload.split(b"--" + boundary)[1]
    return first.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")


def answer(response: requests.Response) -> etree._Element:
    return etree.fromstring(root_part(response.headers["Content-Type"], response.content))


def fault12(response: requests.Response) -> tuple[str, str, str]:
    """(Code, Subcode, Reason) of a SOAP 1.2 Fault."""
    assert response.headers["Content-Type"].startswith(("application/soap+xml", "multipart/related"))
    fault = answer(response).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault is not None, response.text
    return (fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value"),
            fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value"),
            fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text"))


def fault11(response: requests.Response) -> tuple[str, str]:
    """(faultcode, faultstring) of a SOAP 1.1 Fault."""
    assert response.headers["Content-Type"].startswith("text/xml")
    fault = answer(response).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultcode"), fault.findtext("faultstring")


def xds_result(response: requests.Response) -> tuple[str, list[str]]:
    """(status, RegistryError codes) of a RegistryResponse, AdhocQueryResponse or RetrieveDocument answer."""
    content = answer(response).find(f"{{{SOAP12}}}Body")[0]
    status_holder = content if content.get("status") else content.find(f"{{{RS}}}RegistryResponse")
    return status_holder.get("status"), [e.get("errorCode") for e in content.iter(f"{{{RS}}}RegistryError")]


def assert_fault(response: requests.Response, status: int, code: str, subcode: str, *reason_parts: str
                 ) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    got_code, got_subcode, reason = fault12(response)
    assert (got_code, got_subcode) == (f"soap:{code}", f"dmp:{subcode}"), reason
    for part in reason_parts:
        assert part in reason, reason
    return reason


def drop_attribute(security: etree._Element, name: str) -> etree._Element:
    for attribute in security.iter(f"{{{SAML}}}Attribute"):
        if attribute.get("Name") == name:
            attribute.getparent().remove(attribute)
            return security
    raise AssertionError(f"no attribute {name}")


def set_slot(body: etree._Element, name: str, value: str) -> etree._Element:
    rim = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
    for slot in body.iter(f"{{{rim}}}Slot"):
        if slot.get("name") == name:
            slot.find(f"{{{rim}}}ValueList/{{{rim}}}Value").text = value
            return body
    raise AssertionError(f"no slot {name}")


# Routing ----------------------------------------------------------------------------------------------------

def test_unknown_action(w):
    response = post(f"{w.services}/registry", w.td31("urn:example:NoSuchOperation"))
    assert_fault(response, 400, "Sender", "DMPUnknownAction", "urn:example:NoSuchOperation")
    assert answer(response).findtext(f"{{{SOAP12}}}Header/{{{WSA}}}RelatesTo") == MESSAGE_ID
    w.assert_refused("DMPUnknownAction", "UNKNOWN")
    w.assert_serving()


def test_action_posted_to_the_wrong_service(w):
    response = post(f"{w.services}/repository", w.td31())
    assert_fault(response, 400, "Sender", "DMPWrongService", "/si-dmp-server/v2/services/registry")
    w.assert_refused("DMPWrongService", "TD3.1")
    w.assert_serving()


def test_unknown_service_path(w):
    response = post(f"{w.services}/nothing", w.td31())
    assert_fault(response, 404, "Sender", "DMPUnknownService", "nothing", "registry")
    w.assert_refused("DMPUnknownService")
    w.assert_serving()


@pytest.mark.parametrize("method,path,status,subcode", [
    ("POST", "/si-dmp-server/v2/nothing", 404, "DMPNotFound"),
    ("POST", "/si-dmp-server/v2/services/registry/extra", 404, "DMPNotFound"),
    ("PUT", "/si-dmp-server/v2/services/registry", 405, "DMPMethodNotAllowed"),
    ("DELETE", "/si-dmp-server/v2/services/repository", 405, "DMPMethodNotAllowed"),
])
def test_routing_errors_under_the_dmp_prefix_are_soap_faults(w, method, path, status, subcode):
    """Werkzeug's own 404/405, answered by the app's handler on the SOAP wire (not journaled)."""
    response = requests.request(method, w.running.url + path, data=b"<x/>", timeout=10,
                                headers={"Content-Type": SOAP_XML})
    assert_fault(response, status, "Sender", subcode, path)
    w.assert_serving()


def test_get_without_wsdl_is_a_clear_404(w):
    response = requests.get(f"{w.services}/registry", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "?wsdl" in response.text and "POST SOAP 1.2" in response.text
    unknown = requests.get(f"{w.services}/nothing?wsdl", timeout=10)
    assert unknown.status_code == 404 and "unknown service nothing" in unknown.text
    w.assert_serving()


# Envelope and XML -------------------------------------------------------------------------------------------

def test_soap11_envelope_as_soap12_media_type_is_a_version_mismatch(w):
    data = w.td31(ns=SOAP11)
    response = post(f"{w.services}/registry", data)
    assert response.status_code == 500
    faultcode, faultstring = fault11(response)       # SOAP 1.2 Part 1 appendix A: answered in SOAP 1.1
    assert faultcode == "soap:VersionMismatch"
    assert faultstring.startswith("DMPVersionMismatch: ") and "text/xml" in faultstring
    upgrade = answer(response).find(f"{{{SOAP11}}}Header/{{{SOAP12}}}Upgrade")
    assert upgrade is not None and len(upgrade) == 2
    w.assert_refused("DMPVersionMismatch")
    w.assert_serving()


def test_soap11_request_gets_a_soap11_fault(w):
    data = w.td31("urn:example:Nope", ns=SOAP11)
    response = post(f"{w.services}/registry", data, "text/xml; charset=utf-8")
    faultcode, faultstring = fault11(response)
    assert faultcode == "soap:Client" and faultstring.startswith("DMPUnknownAction: ")
    assert answer(response).find(f"{{{SOAP12}}}Body") is None
    # WS-I Basic Profile 1.1 R1126 (SOAP 1.1 section 6.2): a SOAP 1.1 Fault travels with HTTP 500.
    assert response.status_code == 500
    w.assert_refused("DMPUnknownAction")
    w.assert_serving()


@pytest.mark.parametrize("data", [
    b"<soap:Envelope xmlns:soap='http://www.w3.org/2003/05/soap-envelope'><soap:Body>",
    b"\x00\x01garbage",
    b"<a><b></a>",
    b"<?xml version='1.0' encoding='no-such-charset'?><a/>",
], ids=["truncated", "binary", "mismatched", "bad-encoding"])
def test_malformed_xml(w, data):
    response = post(f"{w.services}/registry", data)
    assert_fault(response, 400, "Sender", "DMPMalformedXML", "not acceptable XML")
    w.assert_refused("DMPMalformedXML")
    w.assert_serving()


def test_doctype_is_refused(w):
    data = b'<?xml version="1.0"?><!DOCTYPE Envelope []>' + w.td31()
    response = post(f"{w.services}/registry", data)
    reason = assert_fault(response, 400, "Sender", "DMPMalformedXML")
    assert "DOCTYPE" in reason or "DTD" in reason
    w.assert_refused("DMPMalformedXML")
    w.assert_serving()


def test_xxe_file_entity_is_never_read(w, tmp_path):
    secret = f"SECRET-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(secret)
    data = (f'<?xml version="1.0"?><!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "{path.as_uri()}">]>'.encode()
            + envelope("<x>&xxe;</x>", w.security(), "&xxe;"))
    for service, status, code in (("registry", 400, "DMPMalformedXML"),
                                  ("nothing", 404, "DMPUnknownService")):
        response = post(f"{w.services}/{service}", data)
        assert response.status_code == status and fault12(response)[1] == f"dmp:{code}"
        assert secret.encode() not in response.content
        w.assert_refused(code)
    assert secret not in json.dumps(w.journal())
    w.assert_serving()


def test_billion_laughs_is_refused_quickly(w):
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    data = (f'<?xml version="1.0"?><!DOCTYPE soap:Envelope [{entities}]>'.encode()
            + envelope("<x>&lol9;</x>", w.security(), TD31))
    started = time.monotonic()
    response = post(f"{w.services}/registry", data)
    assert time.monotonic() - started < 2.0
    assert_fault(response, 400, "Sender", "DMPMalformedXML")
    assert len(response.content) < 10_000
    w.assert_refused("DMPMalformedXML")
    w.assert_serving()


def test_body_past_the_size_limit(w):
    door = DmpDoor(w.running.bench.context, limits=SoapLimits(max_body_bytes=10_000),
                   trust_anchors=w.running.bench.vihf_trust_anchors)
    valid = w.td31()
    assert len(valid) < 10_000
    status, content_type, payload = door.handle("registry", SOAP_XML, valid)
    assert status == 200 and b"ResponseStatusType:Success" in payload
    padded = valid.replace(b"<soap:Body>", b"<soap:Body><!--" + b"x" * 10_000 + b"-->")
    status, content_type, payload = door.handle("registry", SOAP_XML, padded)
    assert status == 400 and content_type.startswith("application/soap+xml")
    fault = etree.fromstring(payload).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault.findtext(f".//{{{SOAP12}}}Subcode/{{{SOAP12}}}Value") == "dmp:DMPTooLarge"
    assert "10000" in fault.findtext(f".//{{{SOAP12}}}Text")
    w.assert_refused("DMPTooLarge")
    w.assert_serving()


def test_body_past_the_app_limit_gets_a_soap_fault(w):
    """A Content-Length past the app's MAX_CONTENT_LENGTH: refused unread, on the SOAP wire."""
    url = urlsplit(w.services)
    head = (f"POST {url.path}/registry HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {SOAP_XML}\r\n"
            f"Content-Length: {65 * 1024 * 1024}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(head + b"<soap:Envelope/>")
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 413 " in status_line, raw[:500]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"application/soap+xml" in headers.lower()
    fault = etree.fromstring(body).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault.findtext(f".//{{{SOAP12}}}Subcode/{{{SOAP12}}}Value") == "dmp:DMPTooLarge"
    w.assert_serving()


# MTOM -------------------------------------------------------------------------------------------------------

def td21_mtom(w, href: str = "cid:doc1@hostile", **package) -> tuple[str, bytes]:
    patient, pro = w.patients["alice"], w.pros["dr_a"]
    uid = f"1.2.250.1.999.77.{uuid.uuid4().int % 10**9}"
    content = cda(patient, pro, uid)
    body, _ = provide_and_register(patient, pro, uid, content, inline=False)
    document = body.find("{urn:ihe:iti:xds-b:2007}Document")
    etree.SubElement(document, "{http://www.w3.org/2004/08/xop/include}Include", href=href)
    return mtom(envelope(body, w.security(), TD21), {"doc1@hostile": content}, **package)


def test_mtom_package_that_works(w):
    content_type, data = td21_mtom(w)
    response = post(f"{w.services}/repository", data, content_type)
    assert response.status_code == 200 and xds_result(response) == (SUCCESS, [])


@pytest.mark.parametrize("breakage,reason", [
    ("no boundary", "no boundary parameter"),
    ("root missing", "the start parameter names as the root"),
    ("part missing", "names no MIME part"),
    ("wrong boundary", "does not match the body"),
    ("truncated", "truncated"),
])
def test_broken_mtom_package(w, breakage, reason):
    if breakage == "part missing":
        content_type, data = td21_mtom(w, href="cid:elsewhere@hostile")
    elif breakage == "root missing":
        content_type, data = td21_mtom(w, start="<nowhere@hostile>")
    else:
        content_type, data = td21_mtom(w)
        if breakage == "no boundary":
            content_type = re.sub(r'; boundary="[^"]+"', "", content_type)
        elif breakage == "wrong boundary":
            content_type = content_type.replace("MIME_hostile", "MIME_other")
        else:
            data = data[: data.rindex(b"--MIME_hostile--")]
    response = post(f"{w.services}/repository", data, content_type)
    assert_fault(response, 400, "Sender", "DMPMtomError", reason)
    w.assert_refused("DMPMtomError", "TD2.1" if breakage == "part missing" else "UNKNOWN")
    fed = [d["unique_id"] for d in w.running.client.documents("alice")]
    assert not [uid for uid in fed if uid.startswith("1.2.250.1.999.77.")]
    w.assert_serving()


# WS-Addressing and VIHF -------------------------------------------------------------------------------------

def test_missing_action(w):
    """IHE ITI TF-2x Appendix V (WS-Addressing required); WS-Addressing 1.0 SOAP Binding section 6.4.2."""
    response = post(f"{w.services}/registry", w.td31(None))
    assert response.status_code == 400
    assert fault12(response)[:2] == ("soap:Sender", "wsa:MessageAddressingHeaderRequired")
    assert "WS-Addressing Action" in fault12(response)[2]
    w.assert_refused("wsa:MessageAddressingHeaderRequired")
    w.assert_serving()


def test_missing_security(w):
    response = post(f"{w.services}/registry", envelope(find_documents(w.patients["alice"]), None, TD31))
    assert_fault(response, 400, "Sender", "VIHFMissing", "wsse:Security")
    w.assert_refused("VIHFMissing", "TD3.1")
    w.assert_serving()


@pytest.mark.parametrize("attribute", ["VIHF_Version", "Authentification_Mode", RESOURCE_ID, PURPOSE,
                                       "Identifiant_Structure", "LPS_ID_HOMOLOGATION_DMP"])
def test_missing_vihf_attribute_is_named(w, attribute):
    response = post(f"{w.services}/registry", w.td31(security=drop_attribute(w.security(), attribute)))
    reason = assert_fault(response, 400, "Sender", "VIHFMissingAttribute")
    assert reason.startswith(f"{attribute} is missing"), reason
    w.assert_refused("VIHFMissingAttribute", "TD3.1")
    w.assert_serving()


def test_unknown_professional(w):
    stranger = {**w.pros["dr_a"], "idnps": "810000000009"}
    response = post(f"{w.services}/registry",
                    w.td31(security=vihf(stranger, w.structures["chu"], w.patients["alice"], signer=w.running)))
    assert_fault(response, 400, "Sender", "VIHFUnknownProfessional", "810000000009")
    w.assert_refused("VIHFUnknownProfessional", "TD3.1")
    w.assert_serving()


# World refusals on XDS transactions: RegistryResponse Failure -----------------------------------------------

def xds(w, service: str, body: etree._Element, action: str, security: etree._Element | None = None,
        ) -> tuple[str, list[str]]:
    security = w.security() if security is None else security
    response = post(f"{w.services}/{service}", envelope(body, security, action))
    assert response.status_code == 200, response.text
    return xds_result(response)


def test_query_patient_differs_from_the_vihf_patient(w):
    result = xds(w, "registry", find_documents(w.patients["carol"]), TD31)
    assert result == (FAILURE, ["XDSPatientIdDoesNotMatch"])
    w.assert_refused("XDSPatientIdDoesNotMatch", "TD3.1")
    w.assert_serving()


def test_bris_de_glace_needs_direct_authentication(w):
    security = w.security(mode="bris_de_glace", authentication="INDIRECTE")
    assert xds(w, "registry", find_documents(w.patients["alice"]), TD31, security) == (
        FAILURE, ["DMPAccessModeRefused"])
    w.assert_refused("ACCESS_MODE_REFUSED", "TD3.1")
    w.assert_serving()


@pytest.mark.parametrize("slot,value,code,world_code", [
    ("hash", hashlib.sha1(b"other bytes").hexdigest(), "XDSNonIdenticalHash", "HASH_MISMATCH"),
    ("size", "7", "XDSNonIdenticalSize", "SIZE_MISMATCH"),
])
def test_td21_hash_and_size_must_match_the_bytes(w, slot, value, code, world_code):
    patient, pro = w.patients["alice"], w.pros["dr_a"]
    uid = "1.2.250.1.999.78.1"
    body, _ = provide_and_register(patient, pro, uid, cda(patient, pro, uid))
    assert xds(w, "repository", set_slot(body, slot, value), TD21) == (FAILURE, [code])
    w.assert_refused(world_code, "TD2.1")
    assert uid not in {d["unique_id"] for d in w.running.client.documents("alice")}
    w.assert_serving()


def test_td21_masked_and_invisible_to_the_patient(w):
    patient, pro = w.patients["alice"], w.pros["dr_a"]
    uid = "1.2.250.1.999.78.2"
    body, _ = provide_and_register(patient, pro, uid, cda(patient, pro, uid),
                                   confidentiality=("MASQUE_PS", "INVISIBLE_PATIENT"))
    assert xds(w, "repository", body, TD21) == (FAILURE, ["XDSRegistryMetadataError"])
    w.assert_refused("CONFIDENTIALITY_CONFLICT", "TD2.1")
    w.assert_serving()


def test_td21_replacing_an_unknown_entry(w):
    """IHE ITI TF-3 4.2.4.1, Table 4.2.4.1-2: a registry that cannot resolve an entryUUID reference of the
    submission (here the RPLC association's target, ITI TF-2 3.42.4.1.3.5) answers
    UnresolvedReferenceException; XDSDocumentUniqueIdError is the Retrieve Document Set's error."""
    patient, pro = w.patients["alice"], w.pros["dr_a"]
    uid = "1.2.250.1.999.78.3"
    target = f"urn:uuid:{uuid.uuid4()}"
    body, _ = provide_and_register(patient, pro, uid, cda(patient, pro, uid), replaces_entry=target)
    response = post(f"{w.services}/repository", envelope(body, w.security(), TD21))
    assert xds_result(response) == (FAILURE, ["UnresolvedReferenceException"])
    error = answer(response).find(f".//{{{RS}}}RegistryError")
    assert error.get("location") == target and target in error.get("codeContext")
    w.assert_refused("UnresolvedReferenceException", "TD2.1")
    assert uid not in {d["unique_id"] for d in w.running.client.documents("alice")}
    w.assert_serving()


def test_td32_with_an_entry_uuid_is_answered_mtom(w):
    entry_uuid = next(d["entry_uuid"] for d in w.running.client.documents("alice"))
    response = post(f"{w.services}/repository", envelope(retrieve(entry_uuid), w.security(), TD32))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/related")
    assert 'type="application/xop+xml"' in response.headers["Content-Type"]
    assert xds_result(response) == (FAILURE, ["XDSDocumentUniqueIdError"])
    w.assert_refused("XDSDocumentUniqueIdError", "TD3.2")
    w.assert_serving()


def test_td33c_by_another_structure_than_the_author(w):
    doc = next(d for d in w.running.client.documents("alice"))
    security = w.security("dr_c")
    update = update_status(w.patients["alice"], doc["entry_uuid"], APPROVED, DELETED)
    result = xds(w, "registry", update, TD33, security)
    assert result == (FAILURE, ["DMPNotAuthor"])
    w.assert_refused("NOT_AUTHOR", "TD3.3c")   # a refused deletion is journaled as the TD3.3c it was
    assert next(d for d in w.running.client.documents("alice"))["status"] == "approved"
    w.assert_serving()


def test_closed_dmp(w):
    result = xds(w, "registry", find_documents(w.patients["bob"]), TD31, w.security(patient="bob"))
    assert result == (FAILURE, ["DMPDmpClosed"])
    w.assert_refused("DMP_CLOSED", "TD3.1")
    w.assert_serving()


def test_withdrawn_authorization(w):
    w.running.client.actions({"withdraw_authorization": {"patient": "carol", "structure": "chu"}})
    result = xds(w, "registry", find_documents(w.patients["carol"]), TD31, w.security(patient="carol"))
    assert result == (FAILURE, ["DMPAuthorizationWithdrawn"])
    w.assert_refused("AUTHORIZATION_WITHDRAWN", "TD3.1")
    w.assert_serving()


# Fuzz -------------------------------------------------------------------------------------------------------

POSITION = st.integers(0, 10**6)
HOSTILE_TEXT = st.one_of(st.sampled_from(["", "&amp;", "&lt;x&gt;", "]]&gt;", "urn:uuid:", "'", "^^^&amp;",
                                          "9" * 200, "&#x10FFFF;", "\u00e9\u20ac"]),
                         st.text(max_size=20).map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;")))
MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), POSITION, st.integers(1, 255)),  # a byte XORed
    st.tuples(st.just("truncate"), POSITION, st.just("")),
    st.tuples(st.just("insert"), POSITION, st.sampled_from(["<", "&", "]]>", "<!--", "&#0;", "\x00", "\xff",
                                                           "</soap:Body>", "<![CDATA[", "\r\n--"])),
    st.tuples(st.just("text"), POSITION, HOSTILE_TEXT),       # a text node replaced, still well-formed
    st.tuples(st.just("attribute"), POSITION, HOSTILE_TEXT),  # an attribute value replaced
    st.tuples(st.just("drop"), POSITION, st.just("")),        # an element removed
)
TEXT_NODE = re.compile(rb">([^<>]+)<")
ATTRIBUTE_VALUE = re.compile(rb'="([^"]*)"')


def mutate(data: bytes, kind: str, at: int, value: str) -> bytes:
    if kind in ("text", "attribute"):
        found = list((TEXT_NODE if kind == "text" else ATTRIBUTE_VALUE).finditer(data))
        if not found:
            return data
        match = found[at % len(found)]
        return data[:match.start(1)] + value.replace('"', "&quot;").encode("utf-8", "surrogatepass") + \
            data[match.end(1):]
    if kind == "drop":
        try:
            root = etree.fromstring(data)
        except etree.XMLSyntaxError:
            return data
        elements = [e for e in root.iter() if e is not root and isinstance(e.tag, str)]
        if elements:
            victim = elements[at % len(elements)]
            victim.getparent().remove(victim)
        return etree.tostring(root)
    at %= len(data) + 1
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ value]) + data[at + 1:] if at < len(data) else data + b"\xff"
    if kind == "truncate":
        return data[:at]
    return data[:at] + value.encode("utf-8", "surrogatepass") + data[at:]


@pytest.fixture
def fuzz_target(w):
    valid = w.td31()
    status, _, payload = w.running.bench.dmp.handle("registry", SOAP_XML, valid)
    assert status == 200 and b"ResponseStatusType:Success" in payload
    return w.running.bench.dmp, valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3),
       content_type=st.sampled_from([SOAP_XML, SOAP_XML + "; charset=utf-8", "text/xml"]))
def test_mutated_td31_envelopes_always_get_an_xml_answer(fuzz_target, mutations, content_type):
    """Never an exception, always a status of the SOAP HTTP binding and an envelope lxml parses."""
    door, data = fuzz_target
    for kind, at, value in mutations:
        data = mutate(data, kind, at, value)
    status, out_type, payload = door.handle("registry", content_type, data)
    assert status in (200, 400, 404, 415, 500)
    event(f"HTTP {status}")
    root = etree.fromstring(root_part(out_type, payload))
    assert etree.QName(root).localname == "Envelope"
    if status == 200:
        assert root.find(f"{{{SOAP12}}}Body/{{{QUERY}}}AdhocQueryResponse") is not None
    else:
        assert any(root.find(f".//{{{ns}}}Fault") is not None for ns in (SOAP12, SOAP11))
