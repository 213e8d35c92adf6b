"""The control API through a real HTTP client on a bench started on free ports (the pytest plugin's
`mockbench` fixture), checked against its own OpenAPI description."""

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mockbench.control.openapi import openapi_document


@pytest.fixture(scope="module")
def spec():
    return openapi_document()


def schema_validator(spec, path: str, method: str, status: str = "200"):
    op = spec["paths"][path][method]
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(spec, DRAFT202012))
    return Draft202012Validator({"$ref": "urn:openapi#" + schema["$ref"][1:]} if "$ref" in schema else
                                _rebase(schema), registry=registry)


def _rebase(schema):
    if isinstance(schema, dict):
        return {k: ("urn:openapi" + v if k == "$ref" else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def check(spec, response, path, method="get"):
    status = str(response.status_code)
    assert status in spec["paths"][path][method]["responses"] or (status[0] == "4" and "4XX" in
                                                                     spec["paths"][path][method]["responses"])
    body = response.json()
    key = status if status in spec["paths"][path][method]["responses"] else "4XX"
    errors = sorted(schema_validator(spec, path, method, key).iter_errors(body), key=str)
    assert not errors, f"{method.upper()} {path}: {errors[0]}"
    return body


def test_the_openapi_document_is_valid(spec):
    validate(spec)


def test_every_route_is_described_and_every_description_routed(mockbench, spec):
    routed = set()
    for rule in mockbench.bench.app.url_map.iter_rules():
        if rule.rule.startswith("/_bench"):
            path = rule.rule.replace("<path:", "{").replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed.add((path, method.lower()))
    described = {(p, m) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    assert routed == described


def test_served_document_matches(mockbench, spec):
    served = requests.get(f"{mockbench.url}/_bench/openapi.json", timeout=5).json()
    assert served["paths"] == spec["paths"] and served["servers"] == [{"url": mockbench.url}]


@pytest.mark.mockbench_scenario("hidden-documents")
def test_every_read_answers_its_schema(mockbench, spec):
    u = mockbench.url + "/_bench"
    health = check(spec, requests.get(f"{u}/health", timeout=5), "/_bench/health")
    assert health["status"] == "ok" and health["scenario"] == "hidden-documents"
    assert health["ports"]["http"] == mockbench.ports["http"]
    patients = check(spec, requests.get(f"{u}/patients", timeout=5), "/_bench/patients")
    assert [p["id"] for p in patients] == ["alice", "leo"]
    assert patients[1]["minor"] is True and patients[1]["secret_connection"] is True
    alice = patients[0]
    assert check(spec, requests.get(f"{u}/patients/{alice['ins']}", timeout=5), "/_bench/patients/{key}") == alice
    docs = check(spec, requests.get(f"{u}/patients/alice/documents", timeout=5), "/_bench/patients/{key}/documents")
    assert {d["id"]: d["confidentiality"] for d in docs} == {
        "cr_consult": ["N"], "cr_masque": ["MASQUE_PS"], "cr_invisible": ["INVISIBLE_PATIENT"]}
    traces = check(spec, requests.get(f"{u}/patients/alice/traces", timeout=5), "/_bench/patients/{key}/traces")
    assert [t["action"] for t in traces] == ["autorisation", "alimentation", "alimentation", "alimentation",
                                             "invisibilisation"]
    auths = check(spec, requests.get(f"{u}/patients/alice/authorizations", timeout=5),
                  "/_bench/patients/{key}/authorizations")
    assert [(a["subject"], a["status"]) for a in auths] == [("chu", "VALIDE")]
    doc = check(spec, requests.get(f"{u}/documents/cr_masque", timeout=5), "/_bench/documents/{key}")
    content = requests.get(f"{u}/documents/cr_masque/content", timeout=5)
    assert content.status_code == 200 and len(content.content) == doc["size"]
    import hashlib
    assert hashlib.sha1(content.content).hexdigest().upper() == doc["hash"]
    pros = check(spec, requests.get(f"{u}/professionals", timeout=5), "/_bench/professionals")
    assert [p["idnps"][:1] for p in pros] == ["8", "8"]
    structures = check(spec, requests.get(f"{u}/structures", timeout=5), "/_bench/structures")
    assert structures[0]["idnst"] == "1" + structures[0]["finess"]
    catalogue = check(spec, requests.get(f"{u}/scenarios", timeout=5), "/_bench/scenarios")
    assert {"hidden-documents", "consent-withdrawal", "deleted-versions"} <= {s["id"] for s in catalogue}
    check(spec, requests.get(f"{u}/scenarios/deleted-versions", timeout=5), "/_bench/scenarios/{scenario_id}")
    check(spec, requests.get(f"{u}/scenario", timeout=5), "/_bench/scenario")
    journal = check(spec, requests.get(f"{u}/journal", timeout=5), "/_bench/journal")
    assert [(e["channel"], e["operation"]) for e in journal] == [("control", "load")]
    steps = check(spec, requests.get(f"{u}/steps", timeout=5), "/_bench/steps")
    assert [s["status"] for s in steps] == ["pending", "pending"]
    check(spec, requests.get(f"{u}/findings", timeout=5), "/_bench/findings")
    check(spec, requests.get(f"{u}/transitions", timeout=5), "/_bench/transitions")
    check(spec, requests.get(f"{u}/clock", timeout=5), "/_bench/clock")


@pytest.mark.mockbench_scenario("dmp-authorization-withdrawn")
def test_changes_answer_their_schema(mockbench, spec):
    u = mockbench.url + "/_bench"
    fired = check(spec, requests.post(f"{u}/transitions/retrait_chu", timeout=5),
                  "/_bench/transitions/{transition_id}", "post")
    assert fired["fired"] is True and fired["actions"] == ["withdraw_authorization bernard chu"]
    auths = requests.get(f"{u}/patients/bernard/authorizations", timeout=5).json()
    assert {a["subject"]: a["status"] for a in auths}["chu"] == "NON_EXISTE"
    clock = check(spec, requests.post(f"{u}/clock", json={"advance": "1h30m"}, timeout=5), "/_bench/clock", "post")
    assert clock["offset"] == 5400
    done = check(spec, requests.post(f"{u}/world/actions", timeout=5, json={"actions": [
        {"mask_document": {"document": "cr_bernard", "by": "patient"}},
        {"close_dmp": {"patient": "bernard", "reason": "décès"}}]}), "/_bench/world/actions", "post")
    assert done["done"] == ["mask_document cr_bernard", "close_dmp bernard"]
    assert requests.get(f"{u}/patients/bernard", timeout=5).json()["dmp"] == "closed"
    finished = check(spec, requests.post(f"{u}/steps/finish", timeout=5), "/_bench/steps/finish", "post")
    assert [s["status"] for s in finished] == ["failed", "failed"]
    ops = [e["operation"] for e in requests.get(f"{u}/journal", params={"channel": "control"}, timeout=5).json()]
    assert ops == ["load", "transition", "clock", "action"]
    loaded = check(spec, requests.post(f"{u}/scenarios/deleted-versions", timeout=5),
                   "/_bench/scenarios/{scenario_id}", "post")
    assert loaded["patients"] == ["camille"] and loaded["scenario"] == "deleted-versions"
    check(spec, requests.post(f"{u}/reset", timeout=5), "/_bench/reset", "post")
    assert requests.get(f"{u}/patients", timeout=5).json() == []


def test_actions_are_all_or_nothing(mockbench):
    c = mockbench.client
    c.load("hidden-documents")
    from mockbench.testing import BenchHTTPError
    with pytest.raises(BenchHTTPError) as info:
        c.actions({"mask_document": {"document": "cr_consult"}}, {"delete_document": {"document": "nope"}})
    assert info.value.status == 404 and info.value.code == "DOCUMENT_UNKNOWN"
    assert {d["id"]: d["confidentiality"] for d in c.documents("alice")}["cr_consult"] == ["N"]


def test_uploaded_scenario(mockbench):
    loaded = mockbench.client.load_yaml("id: mine\ntitle: Le mien\nworld:\n  patients: [{id: zoe}]\n")
    assert loaded["patients"] == ["zoe"] and loaded["scenario"] == "mine"


@pytest.mark.parametrize("method,path,body,status,code", [
    ("get", "/nope", None, 404, "NOT_FOUND"),
    ("post", "/health", None, 405, "METHOD_NOT_ALLOWED"),
    ("get", "/patients/nobody", None, 404, "PATIENT_UNKNOWN"),
    ("get", "/patients/nobody/documents", None, 404, "PATIENT_UNKNOWN"),
    ("get", "/documents/nothing", None, 404, "DOCUMENT_UNKNOWN"),
    ("post", "/scenarios/nope", None, 404, "SCENARIO_UNKNOWN"),
    ("get", "/scenarios/nope", None, 404, "SCENARIO_UNKNOWN"),
    ("post", "/transitions/nope", None, 404, "TRANSITION_UNKNOWN"),
    ("post", "/clock", {"advance": "soon"}, 400, "INVALID_PARAMETER"),
    ("post", "/clock", {}, 400, "INVALID_PARAMETER"),
    ("post", "/clock", {"advance": -5}, 400, "INVALID_PARAMETER"),
    ("get", "/journal?channel=fax", None, 400, "INVALID_PARAMETER"),
    ("get", "/journal?since=x", None, 400, "INVALID_PARAMETER"),
    ("get", "/journal?limit=0", None, 400, "INVALID_PARAMETER"),
    ("post", "/world/actions", {"actions": [{"fly": {}}]}, 400, "INVALID_ACTIONS"),
    ("post", "/world/actions", {"nothing": 1}, 400, "INVALID_ACTIONS"),
    ("post", "/world/actions", "[1, 2", 400, "INVALID_JSON"),
    ("post", "/scenarios", "id: [", 400, "SCENARIO_INVALID"),
    ("post", "/scenarios", "", 400, "EMPTY_BODY"),
])
def test_errors_are_json_with_a_code(mockbench, spec, method, path, body, status, code):
    url = f"{mockbench.url}/_bench{path}"
    if isinstance(body, str):
        kind = "application/yaml" if path == "/scenarios" else "application/json"  # a body says its type
        response = requests.request(method, url, data=body.encode(), headers={"Content-Type": kind}, timeout=5)
    else:
        response = requests.request(method, url, json=body, timeout=5)
    assert response.status_code == status
    data = response.json()
    assert data["error"] == code and data["message"]


def test_journal_filters(mockbench):
    bench = mockbench.bench
    mockbench.client.load("hidden-documents")
    with bench.world.transaction() as tx:
        for op, patient in (("TD3.1", "alice"), ("TD3.2", "alice"), ("TD3.1", "leo")):
            bench.world.journal.append(tx, "dmp", op, patient=patient)
    j = mockbench.client.journal
    assert [e["operation"] for e in j(channel="dmp")] == ["TD3.1", "TD3.2", "TD3.1"]
    assert [e["patient"] for e in j(operation="TD3.1")] == ["alice", "leo"]
    assert [e["operation"] for e in j(patient="alice")] == ["TD3.1", "TD3.2"]
    first = j()[1]["seq"]
    assert [e["seq"] for e in j(since=first)] == [first + 1, first + 2]
    assert len(j(limit=2)) == 2


def test_findings_group_the_journal(mockbench):
    bench = mockbench.bench
    f = {"rule": "DMP/CONF.12", "severity": "warning", "message": "no FINESS in PRT-8.10"}
    with bench.world.transaction() as tx:
        a = bench.world.journal.append(tx, "pfi", "MDM^T02", findings=[f])
        b = bench.world.journal.append(tx, "pfi", "MDM^T10", findings=[f])
    assert mockbench.client.call("GET", "/findings") == [{**f, "entries": [a["seq"], b["seq"]]}]


def test_snapshot_and_restore(mockbench, spec):
    c, u = mockbench.client, mockbench.url + "/_bench"
    c.load("dmp-authorization-withdrawn")
    check(spec, requests.post(f"{u}/snapshots/setup", timeout=5), "/_bench/snapshots/{name}", "post")
    c.fire("retrait_chu")
    c.advance("2h")
    c.reset()
    restored = check(spec, requests.post(f"{u}/snapshots/setup/restore", timeout=5),
                     "/_bench/snapshots/{name}/restore", "post")
    assert restored == {"status": "restored", "snapshot": "setup"}
    assert [p["id"] for p in c.patients()] == ["bernard"]
    assert {a["subject"]: a["status"] for a in mockbench.client.call("GET", "/patients/bernard/authorizations")} \
        ["chu"] == "VALIDE"
    assert c.call("GET", "/clock")["offset"] == 0
    assert "setup" in check(spec, requests.get(f"{u}/snapshots", timeout=5), "/_bench/snapshots")
    missing = requests.post(f"{u}/snapshots/nope/restore", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "SNAPSHOT_UNKNOWN"


def test_mss_mailboxes_send_and_read(mockbench, spec):
    import base64
    u = mockbench.url + "/_bench"
    mockbench.client.load_yaml("""\
id: mss
title: Messageries
world:
  structures: [{id: chu}]
  professionals: [{id: dr_a, structure: chu, mssante: jeanne.martin@chu.mssante.fr}]
  mailboxes:
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: dr.roux@clinique.mssante.fr, type: PER, role: correspondent}
""")
    boxes = check(spec, requests.get(f"{u}/mss/mailboxes", timeout=5), "/_bench/mss/mailboxes")
    assert [(b["address"], b["role"]) for b in boxes] == [("dpi@chu.mssante.fr", "hospital"),
                                                          ("dr.roux@clinique.mssante.fr", "correspondent")]
    set_to = check(spec, requests.put(f"{u}/mss/mailboxes/dr.roux@clinique.mssante.fr/behaviour", timeout=5,
                                      json={"on_receive": "fail_integration", "error": "E1^Illisible"}),
                   "/_bench/mss/mailboxes/{address}/behaviour", "put")
    assert set_to["behaviour"] == {"on_receive": "fail_integration", "error": "E1^Illisible"}
    package = b"PK\x05\x06" + b"\x00" * 18
    sent = check(spec, requests.post(f"{u}/mss/send", timeout=5, json={
        "from": "dpi@chu.mssante.fr", "to": ["dr.roux@clinique.mssante.fr"], "mdn": True,
        "package": base64.b64encode(package).decode(), "subject": "XDM/1.0/DDM+CR"}), "/_bench/mss/send", "post")
    assert sent[0]["mailbox"] == "dr.roux@clinique.mssante.fr" and sent[0]["uid"] == 1
    back = check(spec, requests.get(f"{u}/mss/mailboxes/dpi@chu.mssante.fr/messages", timeout=5),
                 "/_bench/mss/mailboxes/{address}/messages")
    assert back[0]["subject"] == "[KO Intégration système !][E1] XDM/1.0/DDM+CR"
    parsed = check(spec, requests.get(f"{u}/mss/messages/{sent[0]['id']}", timeout=5),
                   "/_bench/mss/messages/{message_id}")
    assert [p["filename"] for p in parsed["parts"]] == [None, "IHE_XDM.ZIP"] and parsed["parts"][1]["size"] == 22
    raw = requests.get(f"{u}/mss/messages/{sent[0]['id']}", params={"raw": 1}, timeout=5)
    assert raw.headers["Content-Type"] == "message/rfc822" and len(raw.content) == sent[0]["size"]
    refused = requests.post(f"{u}/mss/send", json={"from": "dpi@chu.mssante.fr", "to": ["x@nowhere.mssante.fr"],
                                                   "package": "UEs="}, timeout=5)
    assert refused.status_code == 404 and refused.json()["error"] == "MAILBOX_UNKNOWN"
