"""GET /_bench/findings with the advisor's rules, checked against the OpenAPI description (the journal's
findings may carry `related`)."""

import requests
from test_api import check  # the same directory, on sys.path under pytest

from mockbench.control.openapi import openapi_document
from mockbench.world.model import Actor


def test_findings_and_journal_answer_their_schema(mockbench):
    mockbench.client.load_yaml("""\
id: advisor-api
title: Constatations
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals: [{id: dr_a, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}], consent: {consultation: INC}}]
""")
    world = mockbench.bench.world
    actor = Actor(kind="professional", id="dr_a", structure="chu")
    with world.transaction() as tx:
        doc = world.dmp.submit(tx, actor, "alice", {"type_code": "11488-4", "title": "CR", "creation_time": "2026-11-20T10:00:00Z"}, b"cr")
        fed = world.journal.append(tx, "dmp", "TD2.1", actor="dr_a", patient="alice", document=doc.unique_id)
        consent: list[dict] = []
        world.dmp.find(tx, actor, "alice", findings=consent)
        found = world.journal.append(tx, "dmp", "TD3.1", actor="dr_a", patient="alice", findings=consent)
    assert [f["rule"] for f in found["findings"]] == ["DMP/CONSENT", "EX_3.1-2030"]
    assert found["findings"][1]["related"] == [fed["seq"]]
    spec, url = openapi_document(), mockbench.url + "/_bench"
    body = check(spec, requests.get(f"{url}/findings", timeout=5), "/_bench/findings")
    assert {f["rule"]: f["entries"] for f in body} == {
        "DMP/CONSENT": [found["seq"]], "EX_3.1-2030": [fed["seq"], found["seq"]], "DMP/CONF.14": [fed["seq"],
                                                                                                  found["seq"]]}
    check(spec, requests.get(f"{url}/journal", timeout=5), "/_bench/journal")
