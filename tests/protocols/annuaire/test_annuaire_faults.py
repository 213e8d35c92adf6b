"""Injected faults on the Annuaire door (issue 23), through fhirpy and requests over real sockets: 429 with
Retry-After and 503, each with an OperationOutcome [annuaire-v2/getting-started_api-basics.md, "Codes d'état
HTTP"], a reset and a slow answer; the bench keeps serving its other doors."""

import time

import pytest
import requests
from annuaire_fhir import KEY, validate
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome


def test_429_with_retry_after_then_the_search_answers(fhir):
    fhir.running.client.set_fault(id="quota", door="annuaire", kind="http_429", retry_after=3, times=2,
                                  match={"operation": "search:Practitioner"})
    r = requests.get(fhir.base + "/Practitioner", headers=KEY, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    body = r.json()
    validate(body)
    assert body["issue"][0]["code"] == "throttled"
    client = SyncFHIRClient(fhir.base, extra_headers=dict(KEY))
    with pytest.raises(OperationOutcome):
        client.resources("Practitioner").search(identifier=fhir.pros["dr_bernard"]["rpps"]).fetch()
    # another operation is not throttled, and after two the rule is spent
    assert fhir.get("/Organization")["resourceType"] == "Bundle"
    found = client.resources("Practitioner").search(identifier=fhir.pros["dr_bernard"]["rpps"]).fetch()
    assert len(found) == 1
    entries = fhir.running.client.journal(channel="annuaire")
    assert [(e["operation"], e.get("fault"), e["code"]) for e in entries[:2]] == [
        ("search:Practitioner", "quota", "FAULT_HTTP_429"), ("search:Practitioner", "quota", "FAULT_HTTP_429")]
    assert all("fault" not in e for e in entries[2:])


def test_503_and_reset_and_delay(fhir):
    client = fhir.running.client
    client.set_fault(door="annuaire", kind="http_503", times=1)
    r = requests.get(fhir.base + "/Organization", headers=KEY, timeout=5)
    assert r.status_code == 503 and r.json()["issue"][0]["code"] == "transient"
    client.set_fault(door="annuaire", kind="reset", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(fhir.base + "/Organization", headers=KEY, timeout=5)
    client.set_fault(door="annuaire", kind="delay", seconds=0.8, times=1)
    started = time.monotonic()
    assert fhir.get("/Organization")["resourceType"] == "Bundle"
    assert time.monotonic() - started >= 0.8
    # the control API and the other doors were served all along
    assert client.health()["status"] == "ok"
    assert [f["kind"] for f in client.fired_faults()] == ["http_503", "reset", "delay"]


def _play_429(mockbench, keeps_working: bool) -> list[dict]:
    import smtplib

    mockbench.client.load("annuaire-429")
    base = mockbench.url + "/fhir/v2"
    r = requests.get(base + "/Practitioner", params={"name": "MARTIN"}, headers=KEY, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    if keeps_working:
        martin, secretariat = "jeanne.martin@chu-test.mssante.fr", "secretariat@chu-test.mssante.fr"
        with smtplib.SMTP("127.0.0.1", mockbench.ports["smtp"], timeout=5) as smtp:
            smtp.login(martin, "mockbench")
            smtp.sendmail(martin, [secretariat], f"From: {martin}\r\nTo: {secretariat}\r\nSubject: CR\r\n\r\nx\r\n")
    mockbench.client.advance("60s")          # the Retry-After, on the bench's virtual clock
    r = requests.get(base + "/Practitioner", params={"name": "MARTIN"}, headers=KEY, timeout=5)
    assert r.status_code == 200
    return mockbench.client.finish()


@pytest.mark.scenario_play("annuaire-429", "correct")
def test_annuaire_429_played_correctly(mockbench):
    assert [s["status"] for s in _play_429(mockbench, True)] == ["passed", "passed", "passed"]


@pytest.mark.scenario_play("annuaire-429", "mistake")
def test_annuaire_429_a_dpi_that_waits_on_the_directory_fails(mockbench):
    steps = _play_429(mockbench, False)
    assert [s["status"] for s in steps] == ["passed", "failed", "failed"]
