"""Fault rules in a scenario's YAML (issue 23): the `faults:` section and the `set_fault` action, validated with
the file, line and field; a transition that switches a fault; an injected outcome decides only a step that
names its rule."""

import pytest

from mockbench.scenarios.loader import parse
from mockbench.scenarios.schema import ScenarioInvalid

HEAD = """\
id: pannes
title: Pannes
world:
  structures: [{id: chu, name: CHU}]
  professionals: [{id: dr_a, structure: chu}]
  patients: [{id: alice, authorizations: [{structure: chu}]}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        parse(text, "pannes.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("rule,expected", [
    ("{door: mss, kind: smtp_reply, code: 550}", "pannes.yaml:8: faults[0].code: must be one of 421, 451, 452"),
    ("{door: pfi, kind: ack_ar, match: {patient: alice, operaton: MDM^T02}}", "pannes.yaml:8: faults[0].match.operaton"),
    ("{door: smtp, kind: reset}", "pannes.yaml:8: faults[0].door: 'smtp' is not a door"),
])
def test_a_malformed_rule_names_file_line_and_field(rule, expected):
    found = problems(HEAD + f"faults:\n  - {rule}\n")
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_field_s_own_line_is_named():
    text = HEAD + "faults:\n  - door: annuaire\n    kind: http_429\n    retry_after: soon\n"
    assert problems(text) == ["pannes.yaml:10: faults[0].retry_after: must be a whole number of seconds between 0 "
                              "and 86400"]


def test_set_fault_in_a_transition_is_validated_too():
    text = HEAD + ("transitions:\n  - id: t\n    when: {manual: true}\n    do:\n"
                   "      - set_fault: {door: dmp, kind: delay, seconds: 1000}\n")
    assert problems(text)[0].startswith("pannes.yaml:11: transitions[0].do[0].set_fault.seconds: must be between")


def test_faults_load_with_the_scenario_and_a_transition_switches_one(mockbench):
    mockbench.client.load_yaml(HEAD + """\
faults:
  - {id: ar, door: pfi, kind: ack_ar, enabled: false}
transitions:
  - id: panne
    when: {manual: true}
    do: [{set_fault: {id: ar, enabled: true}}, {set_fault: {id: lent, door: dmp, kind: delay, seconds: 2}}]
""")
    assert [(r["id"], r["active"]) for r in mockbench.client.faults()] == [("ar", False)]
    mockbench.client.fire("panne")
    assert [(r["id"], r["active"]) for r in mockbench.client.faults()] == [("ar", True), ("lent", True)]
    mockbench.client.reset()
    assert mockbench.client.faults() == []


def test_an_injected_outcome_decides_only_a_step_that_names_its_rule(mockbench):
    mockbench.client.load_yaml(HEAD + """\
faults:
  - {id: quota, door: annuaire, kind: http_429, times: 1}
steps:
  - id: recherche
    say: Le DPI cherche un correspondant et obtient la réponse
    expect: {channel: annuaire}
""")
    import requests
    base = mockbench.url + "/fhir/v2/Practitioner"
    assert requests.get(base, headers={"ESANTE-API-KEY": "mockbench"}, timeout=5).status_code == 429
    assert mockbench.client.steps()[0]["status"] == "pending"     # the injected 429 did not decide it
    assert requests.get(base, headers={"ESANTE-API-KEY": "mockbench"}, timeout=5).status_code == 200
    assert mockbench.client.steps()[0]["status"] == "passed"
