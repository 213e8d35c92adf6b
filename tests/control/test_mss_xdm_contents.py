"""GET /_bench/mss/messages/{id}/xdm: what a mail's IHE_XDM.ZIP holds, as the dashboard shows it."""

import base64

import pytest
import requests
from test_api import check

from mockbench.control.openapi import openapi_document
from mockbench.formats.cda import minimal_cda
from mockbench.formats.xdm import write_package

HOSPITAL = "dpi@chu-test.mssante.fr"
SENDER = "biolo@labo.mssante.fr"
PATH = "/_bench/mss/messages/{message_id}/xdm"


def xdm_package(patient: dict, unique_id: str, action: str | None = None) -> bytes:
    content = minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11502-2",
                          title="CR de microbiologie", author_idnps="810001234567", author_family="BIOLO",
                          author_given="Marc", patient_family=patient["family_name"],
                          patient_given=patient["given_name"], birth_date=patient["birth_date"], sex=patient["sex"],
                          effective_time="2026-11-20T10:00:00Z", text="Culture stérile.")
    cx = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    meta = {"unique_id": unique_id, "mime_type": "text/xml", "title": "CR de microbiologie", "type_code": "11502-2",
            "format_code": "urn:asip:ci-sis:2010", "source_patient_id": cx}
    return write_package([("DOC0001.XML", content, meta)],
                         submission_set={"unique_id": "2.25.4242", "source_id": "1.2.250.1.999", "content_type": "04"},
                         patient_id=cx, action=action)


def send(bench, package: bytes | None, subject: str = "XDM/1.0/DDM+CR de microbiologie") -> str:
    body = {"from": SENDER, "to": [HOSPITAL], "subject": subject,
            "package": base64.b64encode(package or b"not a zip").decode()}
    response = requests.post(bench.url + "/_bench/mss/send", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()[0]["id"]


@pytest.fixture(scope="module")
def spec():
    return openapi_document()


@pytest.mark.mockbench_scenario("mss-ux-05-bis-01")
def test_the_package_files_documents_and_findings(mockbench, spec):
    patient = mockbench.client.patient("dominique")
    message = send(mockbench, xdm_package(patient, "1.2.250.1.999.77.2", action="C"))
    body = check(spec, requests.get(f"{mockbench.url}/_bench/mss/messages/{message}/xdm", timeout=5), PATH)
    assert body["package"] == "IHE_XDM.ZIP" and body["size"] > 0 and body["error"] is None
    names = {f["name"] for f in body["files"]}
    assert {"IHE_XDM/SUBSET01/METADATA.XML", "IHE_XDM/SUBSET01/DOC0001.XML"} <= names
    [doc] = body["documents"]
    assert (doc["unique_id"], doc["title"], doc["type_code"], doc["action"]) == (
        "1.2.250.1.999.77.2", "CR de microbiologie", "11502-2", "C")
    assert doc["hash_ok"] and doc["size_ok"] and doc["path"] == "IHE_XDM/SUBSET01/DOC0001.XML"


@pytest.mark.mockbench_scenario("mss-ux-05-bis-01")
def test_a_broken_package_says_why_and_an_unknown_message_is_404(mockbench, spec):
    message = send(mockbench, None)
    body = check(spec, requests.get(f"{mockbench.url}/_bench/mss/messages/{message}/xdm", timeout=5), PATH)
    assert body["package"] == "IHE_XDM.ZIP" and body["documents"] == [] and body["files"] == []
    assert body["error"]["code"] == "XDM_NOT_ZIP"
    missing = requests.get(f"{mockbench.url}/_bench/mss/messages/nope/xdm", timeout=5)
    assert missing.status_code == 404 and check(spec, missing, PATH)["error"]
