"""The catalogue's DMP scenarios played through the DMP door, as a DPI would."""

import pytest
import requests
from kit.dmp import existence_test, find_documents, retrieve, vihf
from lxml import etree

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
ALL = ("urn:oasis:names:tc:ebxml-regrep:StatusType:Approved", "urn:asip:ci-sis:2010:StatusType:Archived",
       "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated")


def post(mockbench, service: str, body, security, action: str) -> requests.Response:
    envelope = f"""<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:Action>{action}</wsa:Action>
<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000002</wsa:MessageID>
{etree.tostring(security).decode()}</soap:Header><soap:Body>{etree.tostring(body).decode()}</soap:Body></soap:Envelope>"""
    return requests.post(f"{mockbench.url}/si-dmp-server/v2/services/{service}", data=envelope.encode(),
                         headers={"Content-Type": "application/soap+xml"}, timeout=10)


def search(mockbench, pro_id: str, patient_id: str, statuses=ALL[:1]) -> tuple[requests.Response, list[str]]:
    c = mockbench.client
    patient = c.patient(patient_id)
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == pro_id)
    structure = next(s for s in c.call("GET", "/structures") if s["id"] == pro["structure"])
    response = post(mockbench, "registry", find_documents(patient, statuses=statuses),
                    vihf(pro, structure["idnst"], patient, signer=mockbench), "urn:ihe:iti:2007:RegistryStoredQuery")
    ids = [e.get("value") for e in etree.fromstring(response.content).iter(f"{{{RIM}}}ExternalIdentifier")
           if e.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"]
    names = {d["unique_id"]: d["id"] for d in c.documents(patient_id, history=True)}
    return response, sorted(names.get(i, i) for i in ids)


def all_passed_after_finish(client) -> None:
    client.finish()
    assert [(s["id"], s["status"], s["reason"]) for s in client.steps()] == \
        [(s["id"], "passed", None) for s in client.steps()]


@pytest.mark.scenario_play("hidden-documents", "correct")
def test_hidden_documents(mockbench):
    mockbench.client.load("hidden-documents")
    _, seen = search(mockbench, "dr_petit", "alice")
    assert seen == ["cr_consult", "cr_invisible"]            # cr_masque is masked to him
    _, seen = search(mockbench, "dr_martin", "alice")
    assert seen == ["cr_consult", "cr_invisible", "cr_masque"]
    _, seen = search(mockbench, "dr_martin", "leo")
    assert seen == ["cr_leo_visible", "cr_secret"]
    all_passed_after_finish(mockbench.client)


@pytest.mark.scenario_play("dmp-authorization-withdrawn", "correct")
def test_dmp_authorization_withdrawn(mockbench):
    c = mockbench.client
    c.load("dmp-authorization-withdrawn")
    assert search(mockbench, "dr_roux", "bernard")[0].content.count(b"DMPProfessionalBlocked") == 1
    _, seen = search(mockbench, "dr_durand", "bernard")       # the clinic's first search...
    assert seen == ["cr_bernard"]
    refused, _ = search(mockbench, "dr_durand", "bernard")    # ...fired the automatic withdrawal
    assert b"DMPAuthorizationWithdrawn" in refused.content
    # the CHU's DPI checks the authorization at each connection (TD0.2): still valid...
    patient, pro = c.patient("bernard"), next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    idnst = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["idnst"]
    answer = post(mockbench, "patients", existence_test(patient), vihf(pro, idnst, patient, signer=mockbench),
                  "urn:hl7-org:v3:PRPA_IN201307UV02")
    assert b'code="VALIDE"' in answer.content
    c.fire("retrait_chu")                                      # ...until Bernard withdraws it
    assert b"DMPAuthorizationWithdrawn" in search(mockbench, "dr_martin", "bernard")[0].content
    all_passed_after_finish(c)


@pytest.mark.scenario_play("deleted-versions", "correct")
def test_deleted_versions(mockbench):
    mockbench.client.load("deleted-versions")
    _, seen = search(mockbench, "dr_martin", "camille")
    assert seen == ["bio_v3"]
    _, seen = search(mockbench, "dr_martin", "camille", statuses=ALL)
    assert seen == ["bio_v1", "bio_v2", "bio_v3", "cr_archive"]   # never the deleted one
    all_passed_after_finish(mockbench.client)


@pytest.mark.scenario_play("dmp-cda-dd-05", "correct")
def test_dmp_cda_dd_05(mockbench):
    c = mockbench.client
    c.load("dmp-cda-dd-05")
    _, first = search(mockbench, "dr_martin", "alice")
    assert first == ["cr_bio", "cr_consult", "cr_radio"]
    _, second = search(mockbench, "dr_martin", "alice")
    assert second == ["cr_bio_v2"]                           # replaced, deleted, masked by the third party
    patient = c.patient("alice")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    structure = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")
    v2 = next(d for d in c.documents("alice") if d["id"] == "cr_bio_v2")
    response = post(mockbench, "repository", retrieve(v2["unique_id"]), vihf(pro, structure["idnst"], patient, signer=mockbench),
                    "urn:ihe:iti:2007:RetrieveDocumentSet")
    assert response.ok and v2["unique_id"].encode() in response.content
    all_passed_after_finish(c)
    transition = next(e for e in c.journal(channel="control") if e["operation"] == "transition")
    assert transition["verdict"] == "accepted"
