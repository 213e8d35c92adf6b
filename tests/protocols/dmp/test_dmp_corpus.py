"""The ANS/GIE "DMP LPS" example requests (corpus `dmp-wire/`), sent over HTTP as published, answered like
their paired `*_response.xml`.

Identities: rather than rewriting the INS, the professional and the structure of every request, the test
loads a world built to carry the corpus's own: patient INS 207058575627097 (a valid NIR key, OID .10),
professional IDNPS 899900063480 (`check_digits: false`: the example's RPPS fails the Luhn check) and a
structure whose world id is the VIHF's Identifiant_Structure 499900063480001. `vihf.actor_for` tries that
value as a world id first, so the structure resolves without the fallback finding (no FINESS would do:
499900063480001 is "4" + 14 digits, and a FINESS has 9; a scenario gives no SIRET). The patient's DMP
authorizes the structure, so TD0.2 answers AUTORISATION VALIDE, as the example does, and TD0.3 AJOUT finds
the authorization already there (the example's answer says "Autorisation déjà présente").

Substitutions: the TD3.x requests name documents of the DMP the examples were recorded on. Each is rewritten
to the document that TD2.1 fed (read from the bench), and the test says which:
- TD3.2_request.xml: DocumentUniqueId 1.2.250.1.999.1.1.7898.1.995657292 -> TD2.1's uniqueId;
- TD3.3d_request.xml and TD3.3c_request.xml: targetObject urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e ->
  the entryUUID the bench assigned to TD2.1's entry.
Nothing else is edited; TD2.1_request.xml is the whole MTOM body (its HTTP Content-Type was not recorded:
the test builds it from the file's boundary and root Content-ID). Its envelope is SOAP 1.1 (a quirk of the
example): the bench answers in the request's SOAP version, where the example's answer is SOAP 1.2; the test
compares the Body's content, whichever the envelope.

Order: TD0.2, TD0.3 (AJOUT), TD2.1, TD0.4 (LASTDOC: the patient is listed once a document exists), TD1.6,
TD3.1, TD3.2, TD3.3d (Approved -> Archived), TD3.3c (the example goes Archived -> Deleted).

Out of scope (TD0.5, TD1.3a/b, TD1.4, TD1.5a/b/d, WS_INS2): a SOAP Fault DMPUnknownAction. TD1.3a has the
Action of TD0.2 (PRPA_IN201307UV02) with reasonCode CNSLT_DATA: the door refuses it by its reasonCode, and
journals it as TD1.3a.
"""

import email
import email.policy
from pathlib import Path

import pytest
import requests
from lxml import etree

from mockbench.testing.plugin import start_bench

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
HL7 = "urn:hl7-org:v3"
HAB = "urn:si-dmp-habilitations"
PAT = "urn:si-dmp-patients"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

INS, IDNPS, STRUCTURE = "207058575627097", "899900063480", "499900063480001"
CORPUS_DOCUMENT_ID = "1.2.250.1.999.1.1.7898.1.995657292"        # TD3.2's, a document of the original DMP
CORPUS_ENTRY_UUID = "urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e"  # TD3.3c/d's
TD21_BOUNDARY = "----=_Part_9_20030738.1554380517598"
TD21_CONTENT_TYPE = ('multipart/related; type="application/xop+xml"; start="<rootpart@soapui.org>"; '
                     f'start-info="application/soap+xml"; boundary="{TD21_BOUNDARY}"')

WORLD = f"""\
id: dmp-corpus-identities
title: The identities of the ANS DMP example messages
seed: 3
world:
  structures: [{{id: "{STRUCTURE}", name: CABINET DR LIBRE}}]
  professionals:
    - {{id: dr_libre, idnps: "{IDNPS}", check_digits: false, family_name: LIBRE, given_name: MAX,
       specialty: SM26, structure: "{STRUCTURE}"}}
  patients:
    - id: laurence
      ins: "{INS}"
      sex: F
      family_name: patb-quatre
      given_name: LAURENCE
      birth_date: "1907-05-25"
      authorizations: [{{structure: "{STRUCTURE}"}}]
"""

# name -> the service it is posted to; the bench has no patientsPDQ service, so TD0.5 goes to patients,
# where its Action (PRPA_IN201305UV02) is what is refused
OUT_OF_SCOPE = {
    "TD0.5": "patients",
    "TD1.3a": "patients",
    "TD1.3b": "patients",
    "TD1.4": "patients",
    "TD1.5a": "patientsSpecific",
    "TD1.5b": "patientsSpecific",
    "TD1.5d": "patientsSpecific",
    "WS_INS2": "patients",
}


@pytest.fixture
def wire(corpus: Path) -> Path:
    return corpus / "dmp-wire"


@pytest.fixture(scope="module")
def lenient(tmp_path_factory):
    """A bench with `check_signatures = false`, set on purpose: this file is about the examples' wire format,
    and their VIHF signatures cannot be trusted (two are unsigned; the signed ones chain to the IGC Santé test
    CA, which the bench does not hold, and their digests no longer match: test_vihf.py). The signature
    requirement itself is tested in test_dmp_vihf_wire.py; here each exchange carries its warning finding."""
    running = start_bench(tmp_path_factory.mktemp("lenient"), doors={"dmp": {"check_signatures": False}})
    yield running
    running.bench.close()


@pytest.fixture
def bench(lenient):
    lenient.bench.reset()
    lenient.client.load_yaml(WORLD)
    return lenient


def post(bench, service: str, data: bytes, content_type: str = "application/soap+xml") -> requests.Response:
    return requests.post(f"{bench.url}/si-dmp-server/v2/services/{service}", data=data,
                         headers={"Content-Type": content_type}, timeout=10)


def mime_parts(content_type: str, payload: bytes) -> list[tuple[str, bytes]]:
    """(Content-ID, bytes) of each part of a multipart/related body, read with the standard library."""
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + payload,
                                       policy=email.policy.compat32)
    assert message.is_multipart(), content_type
    return [((part["Content-ID"] or "").strip("<>"), part.get_payload(decode=True))
            for part in message.get_payload()]


def body_of(xml: bytes) -> etree._Element:
    """The first element of a SOAP 1.2 or 1.1 Body."""
    envelope = etree.fromstring(xml)
    body = envelope.find(f"{{{SOAP12}}}Body")
    if body is None:
        body = envelope.find(f"{{{SOAP11}}}Body")
    assert body is not None and len(body), xml[:300]
    return body[0]


def answer(response: requests.Response) -> tuple[etree._Element, dict[str, bytes]]:
    """The answer's body element and, for MTOM, its attachments by Content-ID."""
    content_type = response.headers["Content-Type"]
    if content_type.startswith("multipart/related"):
        (_root_id, root), *others = mime_parts(content_type, response.content)
        return body_of(root), dict(others)
    return body_of(response.content), {}


def subcode_of(fault: etree._Element) -> str:
    assert fault.tag == f"{{{SOAP12}}}Fault"
    return fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value").rpartition(":")[2]


def example(wire: Path, name: str) -> etree._Element:
    return body_of((wire / f"{name}_response.xml").read_bytes())


def texts(element: etree._Element, path: str) -> list[str]:
    return [e.text for e in element.iterfind(path)]


def attention(element: etree._Element, key: str) -> str | None:
    for line in element.iterfind(f"{{{HL7}}}attentionLine"):
        if line.find(f"{{{HL7}}}keyWordText").get("code") == key:
            return line.find(f"{{{HL7}}}value").get("code")
    return None


def last_journal(bench) -> dict:
    return bench.client.journal(channel="dmp")[-1]


def rules(entry: dict) -> set[str]:
    return {f["rule"] for f in entry["findings"]}


def test_corpus_requests_in_order(bench, wire):
    # TD0.2: existence test; the structure's authorization reads VALIDE
    response = post(bench, "patients", (wire / "TD0.2_request.xml").read_bytes())
    got, expected = answer(response)[0], example(wire, "TD0.2")
    assert response.status_code == 200 and got.tag == expected.tag == f"{{{HL7}}}PRPA_IN201308UV02"
    assert [a.get("typeCode") for a in got.iterfind(f"{{{HL7}}}acknowledgement")] == ["AA"]
    assert attention(got, "AUTORISATION") == attention(expected, "AUTORISATION") == "VALIDE"
    assert INS in [i.get("extension") for i in got.iterfind(f".//{{{HL7}}}patient/{{{HL7}}}id")]
    entry = last_journal(bench)
    assert (entry["operation"], entry["verdict"], entry["patient"]) == ("TD0.2", "accepted", "laurence")
    assert "VIHF/Authentification_Mode" in rules(entry)    # the examples' lower-case Authentification_mode

    # TD0.3 AJOUT
    response = post(bench, "habilitations", (wire / "TD0.3_request.xml").read_bytes())
    got, expected = answer(response)[0], example(wire, "TD0.3")
    assert got.tag == expected.tag == f"{{{HAB}}}setAuthorizationResponse"
    status = f"{{{HAB}}}output/{{{HAB}}}status"
    assert texts(got, status) == texts(expected, status) == ["DMPOk"]
    assert (last_journal(bench)["operation"], last_journal(bench)["verdict"]) == ("TD0.3", "accepted")

    # TD2.1: the MTOM body as published (SOAP 1.1 namespace inside MTOM; Document id documentME2 for the
    # ExtrinsicObject DocumentME2), a CDA and its XAdES signature
    raw = (wire / "TD2.1_request.xml").read_bytes()
    response = post(bench, "repository", raw, TD21_CONTENT_TYPE)
    got, expected = answer(response)[0], example(wire, "TD2.1")
    assert got.tag == expected.tag == f"{{{RS}}}RegistryResponse"
    assert got.get("status") == expected.get("status") == SUCCESS
    entry = last_journal(bench)
    assert (entry["operation"], entry["verdict"]) == ("TD2.1", "accepted")
    assert "DMP/XDS-DOCUMENT-ID" in rules(entry)             # documentME2 vs DocumentME2, noted
    fed = dict(mime_parts(TD21_CONTENT_TYPE, raw))["WS_DMP_TD2.1-DocumentME2.xml"]
    [document] = bench.client.documents("laurence")
    assert document["unique_id"] == entry["document"] == "1.2.250.1.999.1.1.7898.3.1622814651504"
    assert (document["status"], document["author"], document["author_structure"]) == \
        ("approved", "dr_libre", STRUCTURE)
    assert document["size"] == len(fed)

    # TD0.4 LASTDOC since 2010: the patient, who now has a document, is listed (as in the example)
    response = post(bench, "patientsSpecific", (wire / "TD0.4_request.xml").read_bytes())
    got, expected = answer(response)[0], example(wire, "TD0.4")
    assert got.tag == expected.tag == f"{{{PAT}}}patientListResponse"
    assert texts(got, f".//{{{PAT}}}status") == texts(expected, f".//{{{PAT}}}status") == ["DMPOk"]
    assert INS in texts(got, f".//{{{PAT}}}nationalId") and INS in texts(expected, f".//{{{PAT}}}nationalId")
    assert (last_journal(bench)["operation"], last_journal(bench)["verdict"]) == ("TD0.4", "accepted")

    # TD1.6 TOUTE: the professional is listed ACTIVE (TD0.3 AJOUT), as in the example
    response = post(bench, "habilitations", (wire / "TD1.6_request.xml").read_bytes())
    got, expected = answer(response)[0], example(wire, "TD1.6")
    assert got.tag == expected.tag == f"{{{HAB}}}listAuthorizationByPatientResponse"
    assert texts(got, f".//{{{HAB}}}status") == texts(expected, f".//{{{HAB}}}status") == ["DMPOk"]

    def listed(element):
        return {(i.findtext(f"{{{HAB}}}nationalId"), i.findtext(f"{{{HAB}}}mode"))
                for i in element.iterfind(f".//{{{HAB}}}listOfAuthorizationByPatient")}
    assert (IDNPS, "ACTIVE") in listed(got) and (IDNPS, "ACTIVE") in listed(expected)
    assert (last_journal(bench)["operation"], last_journal(bench)["verdict"]) == ("TD1.6", "accepted")

    # TD3.1 FindDocuments Approved: the document TD2.1 fed (its signature is not a document of its own)
    response = post(bench, "registry", (wire / "TD3.1_request.xml").read_bytes())
    got, expected = answer(response)[0], example(wire, "TD3.1")
    assert got.tag == expected.tag == f"{{{QUERY}}}AdhocQueryResponse"
    assert got.get("status") == expected.get("status") == SUCCESS
    [extrinsic] = got.iterfind(f".//{{{RIM}}}ExtrinsicObject")
    corpus_first = next(expected.iterfind(f".//{{{RIM}}}ExtrinsicObject"))
    assert extrinsic.get("objectType") == corpus_first.get("objectType")
    assert extrinsic.get("status") == corpus_first.get("status") == APPROVED
    uid = {e.get("identificationScheme"): e.get("value")
           for e in extrinsic.iterfind(f"{{{RIM}}}ExternalIdentifier")}
    assert uid[UNIQUE_ID] == document["unique_id"]
    entry_uuid = extrinsic.get("id")
    assert entry_uuid == document["entry_uuid"] and entry_uuid.startswith("urn:uuid:")
    assert (last_journal(bench)["operation"], last_journal(bench)["verdict"]) == ("TD3.1", "accepted")

    # TD3.2, with the substitution: the example's document id -> TD2.1's uniqueId. MTOM, the bytes fed.
    request = (wire / "TD3.2_request.xml").read_bytes()
    assert request.count(CORPUS_DOCUMENT_ID.encode()) == 1
    response = post(bench, "repository", request.replace(CORPUS_DOCUMENT_ID.encode(),
                                                         document["unique_id"].encode()))
    assert response.headers["Content-Type"].startswith("multipart/related")
    (got, attachments), expected = answer(response), example(wire, "TD3.2")
    assert got.tag == expected.tag == f"{{{XDS_B}}}RetrieveDocumentSetResponse"
    assert [r.get("status") for r in got.iterfind(f"{{{RS}}}RegistryResponse")] == [SUCCESS]
    [doc_response] = got.iterfind(f"{{{XDS_B}}}DocumentResponse")
    assert doc_response.findtext(f"{{{XDS_B}}}RepositoryUniqueId") == \
        expected.findtext(f".//{{{XDS_B}}}RepositoryUniqueId") == "1.2.250.1.213.4.1.1.1.2"
    assert doc_response.findtext(f"{{{XDS_B}}}DocumentUniqueId") == document["unique_id"]
    assert doc_response.findtext(f"{{{XDS_B}}}mimeType") == expected.findtext(f".//{{{XDS_B}}}mimeType")
    [include] = doc_response.iterfind(f"{{{XDS_B}}}Document/{{{XOP}}}Include")
    assert attachments[include.get("href")[len("cid:"):]] == fed
    entry = last_journal(bench)
    assert (entry["operation"], entry["verdict"], entry["document"]) == \
        ("TD3.2", "accepted", document["unique_id"])

    # TD3.3d then TD3.3c, with the substitution: the example's entryUUID -> the bench's
    for name, operation, status in (("TD3.3d", "TD3.3d", "archived"), ("TD3.3c", "TD3.3c", "deleted")):
        request = (wire / f"{name}_request.xml").read_bytes()
        assert request.count(CORPUS_ENTRY_UUID.encode()) == 1
        response = post(bench, "registry", request.replace(CORPUS_ENTRY_UUID.encode(), entry_uuid.encode()))
        got, expected = answer(response)[0], example(wire, name)
        assert got.tag == expected.tag == f"{{{RS}}}RegistryResponse", name
        assert got.get("status") == expected.get("status") == SUCCESS, name
        entry = last_journal(bench)
        assert (entry["operation"], entry["verdict"], entry["document"]) == \
            (operation, "accepted", document["unique_id"])
        assert bench.client.documents("laurence", history=True)[0]["status"] == status

    journal = [(e["operation"], e["verdict"]) for e in bench.client.journal(channel="dmp")]
    assert journal == [(op, "accepted") for op in ("TD0.2", "TD0.3", "TD2.1", "TD0.4", "TD1.6", "TD3.1",
                                                   "TD3.2", "TD3.3d", "TD3.3c")]


@pytest.mark.parametrize("name", sorted(OUT_OF_SCOPE))
def test_out_of_scope_requests_get_unknown_action(bench, wire, name):
    response = post(bench, OUT_OF_SCOPE[name], (wire / f"{name}_request.xml").read_bytes())
    assert response.status_code == 400
    assert subcode_of(body_of(response.content)) == "DMPUnknownAction"
    entry = last_journal(bench)
    assert (entry["verdict"], entry["code"]) == ("refused", "DMPUnknownAction")
    # TD1.3a reaches the door's TD0.2 route (same Action) and is refused by its reasonCode CNSLT_DATA
    assert entry["operation"] == ("TD1.3a" if name == "TD1.3a" else "UNKNOWN")
    assert bench.client.documents("laurence") == []


@pytest.mark.parametrize("name,service,old,new,subcode", [
    ("TD0.3", "habilitations", b"<action>AJOUT</action>", b"<action>AJOUTER</action>", "DMPInvalidAction"),
    ("TD0.2", "patients", b'code="TEST_EXST"', b'code="FERM"', "DMPInvalidRequest"),
    ("TD0.4", "patientsSpecific", b"<dateType>LASTDOC</dateType>", b"<dateType>HIER</dateType>",
     "DMPInvalidRequest"),
])
def test_malformed_td0_bodies_get_faults(bench, wire, name, service, old, new, subcode):
    """A corpus request with one field spoilt (stated in the parameters): a SOAP Fault naming the field, not
    an HTTP 500."""
    request = (wire / f"{name}_request.xml").read_bytes()
    assert request.count(old) == 1
    response = post(bench, service, request.replace(old, new))
    assert response.status_code == 400
    assert subcode_of(body_of(response.content)) == subcode
    entry = last_journal(bench)
    assert (entry["operation"], entry["verdict"], entry["code"]) == (name, "refused", subcode)
