"""GET /_bench/mss/messages/{id}/xdm: what a mail's IHE_XDM.ZIP holds, as the dashboard shows it."""

import pytest
import requests
from kit.mss import send_xdm_mail as send
from kit.mss import xdm_package
from test_api import check

from mockbench.control.openapi import openapi_document

PATH = "/_bench/mss/messages/{message_id}/xdm"


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
