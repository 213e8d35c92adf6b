"""The fault rules through the control API (issue 23), checked against its OpenAPI description: a malformed
rule is a 400 naming the field, rules are bounded, a rule is switched and deleted, the report lists the faults
that fired."""

import requests
from test_api import check

from mockbench.control.openapi import openapi_document
from mockbench.world.faults import MAX_RULES

SPEC = openapi_document()


def test_set_read_switch_delete(mockbench):
    u = mockbench.url + "/_bench"
    rule = check(SPEC, requests.post(f"{u}/faults", json={"id": "slow", "door": "dmp", "kind": "delay",
                                                          "seconds": "2s", "match": {"operation": "TD3.1"},
                                                          "probability": 0.5, "seed": 3}, timeout=5),
                 "/_bench/faults", "post")
    assert (rule["seconds"], rule["match"], rule["active"], rule["fired"]) == (2.0, {"operation": ["TD3.1"]}, True, 0)
    assert check(SPEC, requests.get(f"{u}/faults", timeout=5), "/_bench/faults") == [rule]
    off = check(SPEC, requests.patch(f"{u}/faults/slow", json={"enabled": False}, timeout=5),
                "/_bench/faults/{rule_id}", "patch")
    assert (off["enabled"], off["active"]) == (False, False)
    assert check(SPEC, requests.get(f"{u}/faults/slow", timeout=5), "/_bench/faults/{rule_id}") == off
    assert check(SPEC, requests.get(f"{u}/faults/fired", timeout=5), "/_bench/faults/fired") == []
    assert check(SPEC, requests.delete(f"{u}/faults/slow", timeout=5), "/_bench/faults/{rule_id}",
                 "delete") == {"deleted": 1}
    missing = requests.get(f"{u}/faults/slow", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "FAULT_RULE_UNKNOWN"
    ops = [e["operation"] for e in mockbench.client.journal(channel="control")]
    assert ops[-3:] == ["fault-set", "fault-off", "fault-delete"]


def test_a_malformed_rule_is_a_400_naming_the_field(mockbench):
    u = mockbench.url + "/_bench/faults"
    for body, field in [({"door": "dmp"}, "kind"), ({"door": "pfi", "kind": "ack_ar", "times": -1}, "times"),
                        ({"door": "mss", "kind": "smtp_reply", "stage": "QUIT"}, "stage"),
                        ({"door": "oidc", "kind": "delay", "until": "never"}, "until")]:
        r = requests.post(u, json=body, timeout=5)
        assert r.status_code == 400, body
        assert (r.json()["error"], r.json()["field"]) == ("FAULT_RULE_INVALID", field)
        assert r.json()["message"].startswith(field + ": ")
    r = requests.patch(u + "/x", json={"enabled": "yes"}, timeout=5)
    assert r.status_code == 400 and r.json()["message"].startswith("enabled")
    assert requests.post(u, data=b"[1]", headers={"Content-Type": "application/json"}, timeout=5).status_code == 400


def test_rules_are_bounded_and_delete_all(mockbench):
    u = mockbench.url + "/_bench/faults"
    for _ in range(MAX_RULES):
        assert requests.post(u, json={"door": "dmp", "kind": "http_503", "enabled": False}, timeout=5).ok
    r = requests.post(u, json={"door": "dmp", "kind": "http_503"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "FAULT_RULES_TOO_MANY"
    assert len(mockbench.client.faults()) == MAX_RULES
    assert check(SPEC, requests.delete(u, timeout=5), "/_bench/faults", "delete") == {"deleted": MAX_RULES}


def test_rules_follow_snapshots(mockbench):
    mockbench.client.set_fault(id="kept", door="annuaire", kind="http_503")
    mockbench.client.snapshot("with-fault")
    mockbench.client.call("DELETE", "/faults")
    assert mockbench.client.faults() == []
    mockbench.client.restore("with-fault")
    assert [r["id"] for r in mockbench.client.faults()] == ["kept"]


def test_the_report_lists_the_faults_that_fired(mockbench):
    mockbench.client.load("annuaire-429")
    r = requests.get(mockbench.url + "/fhir/v2/Organization", headers={"ESANTE-API-KEY": "mockbench"}, timeout=5)
    assert r.status_code == 429
    report = check(SPEC, requests.get(mockbench.url + "/_bench/report", timeout=10), "/_bench/report")
    assert [(f["rule"], f["door"], f["kind"], f["operation"]) for f in report["faults"]] == [
        ("quota", "annuaire", "http_429", "search:Organization")]
    assert [e["fault"] for e in report["timeline"] if e["channel"] == "annuaire"] == ["quota"]
    html = mockbench.client.report("html").decode("utf-8")
    assert "Pannes injectées" in html and "quota" in html and "search:Organization" in html
