"""A TD3.1 computed on a read snapshot, out of the write transaction that journals it (issue 21, point 3): its
answer, its journal entry and its access trace are what a serial execution gives, whatever another request
commits between the snapshot and that transaction. The interleavings are made deterministic by running the
other request's commit exactly there (a wrapper of the door's `_on_snapshot`)."""


import pytest
from kit.snapshot import spy_snapshots
from test_dmp_scenarios import search

from mockbench.world.model import Actor

SCENARIO = """\
id: snapshot-interleaving
title: Recherches pendant qu'un tiers agit
seed: 2055
world:
  structures:
    - {id: chu, name: CHU de Test}
    - {id: clinique, name: Clinique des Lilas}
  professionals:
    - {id: dr_martin, family_name: MARTIN, given_name: Jeanne, specialty: SM26, structure: chu}
    - {id: dr_tiers, family_name: BERNARD, given_name: Luc, specialty: SM26, structure: clinique}
  patients:
    - id: alice
      sex: F
      given_name: Alice
      authorizations: [{structure: chu}, {structure: clinique}]
      documents:
        - {id: cr_bio, type: 11502-2, author: dr_tiers, created: -5d}
        - {id: cr_radio, type: 18748-4, author: dr_tiers, created: -4d}
        - {id: cr_consult, type: 11488-4, author: dr_tiers, created: -3d}
    - id: leo
      sex: M
      given_name: Léo
      minor: true
      authorizations: [{structure: chu, status: VALIDE}]
      documents:
        - {id: cr_leo, type: 11502-2, author: dr_martin}
transitions:
  - id: tiers_agit
    say: La clinique supprime le CR d'imagerie et masque le CR de consultation
    when: {manual: true}
    do:
      - delete_document: {document: cr_radio, by: dr_tiers}
      - mask_document: {document: cr_consult, by: dr_tiers}
"""


@pytest.fixture
def spy(mockbench, monkeypatch):
    return spy_snapshots(mockbench.bench.doors["dmp"], monkeypatch, "_decide")


def _last(client, operation: str) -> dict:
    return [e for e in client.journal(channel="dmp") if e["operation"] == operation][-1]


def _actions(client, patient: str) -> list[tuple[str, str]]:
    return [(t["action"], t["actor"]) for t in client.traces(patient)]   # in the order of their seq


def test_a_search_on_a_snapshot_is_journaled_with_its_answer_and_its_trace(mockbench, spy):
    c = mockbench.client
    c.load_yaml(SCENARIO)
    before = _actions(c, "alice")
    response, seen = search(mockbench, "dr_martin", "alice")
    assert seen == ["cr_bio", "cr_consult", "cr_radio"]
    assert spy.snapshots == [True] and spy.runs == 1   # answered on the snapshot, not computed again
    entry = _last(c, "TD3.1")
    assert entry["response"].encode() == response.content and entry["verdict"] == "accepted"
    assert _actions(c, "alice")[len(before):] == [("consultation", "dr_martin")]


def test_a_change_committed_between_the_snapshot_and_the_journal_is_seen(mockbench, spy):
    """The third party's change commits after the snapshot, before the search's write transaction: in the serial
    order the change comes first, so the search must not show the deleted nor the masked document, and its
    journal entry and trace come after the change's."""
    c = mockbench.client
    c.load_yaml(SCENARIO)
    spy.between.append(lambda: mockbench.bench.scenarios.fire_manual("tiers_agit"))
    response, seen = search(mockbench, "dr_martin", "alice")
    assert seen == ["cr_bio"]
    assert spy.snapshots == [True] and spy.runs == 2   # the snapshot's answer was dropped, computed again
    entries = c.journal()
    transition = next(e for e in entries if e["operation"] == "transition")
    td31 = _last(c, "TD3.1")
    assert transition["seq"] < td31["seq"]
    assert td31["response"].encode() == response.content
    actions = _actions(c, "alice")
    assert actions[-1] == ("consultation", "dr_martin")
    assert [a for a, _ in actions[-3:-1]] == ["suppression", "masquage"]
    _, again = search(mockbench, "dr_martin", "alice")   # the same search made after: the same answer
    assert again == seen


def test_a_journaled_exchange_between_the_snapshot_and_the_journal_keeps_the_snapshot(mockbench, spy):
    """Another request that only journals and traces (another search) does not change what the snapshot read:
    its answer stands, and the journal and the traces keep the order of the write transactions."""
    c = mockbench.client
    c.load_yaml(SCENARIO)
    world = mockbench.world

    def other_search():
        with world.transaction() as tx:
            tiers = Actor(kind="professional", id="dr_tiers", structure="clinique")
            world.dmp.consulted(tx, actor=tiers, patient_id="alice")
            world.journal.append(tx, "dmp", "TD3.1", actor="dr_tiers", patient="alice", raw="another search")

    spy.between.append(other_search)
    response, seen = search(mockbench, "dr_martin", "alice")
    assert seen == ["cr_bio", "cr_consult", "cr_radio"]
    assert spy.snapshots == [True] and spy.runs == 1
    entries = [e for e in c.journal(channel="dmp") if e["operation"] == "TD3.1"]
    assert [e["raw"] == "another search" for e in entries[-2:]] == [True, False]
    assert entries[-1]["response"].encode() == response.content
    assert _actions(c, "alice")[-2:] == [("consultation", "dr_tiers"), ("consultation", "dr_martin")]


def test_the_search_that_fires_a_transition_does_not_see_it_the_next_one_does(mockbench, spy):
    """dmp-cda-dd-05: the third party acts after the first search (a journal hook in that search's write
    transaction); the first search's answer, computed on its snapshot, is without the change, the second's
    with it."""
    c = mockbench.client
    c.load("dmp-cda-dd-05")
    _, first = search(mockbench, "dr_martin", "alice")
    _, second = search(mockbench, "dr_martin", "alice")
    assert (first, second) == (["cr_bio", "cr_consult", "cr_radio"], ["cr_bio_v2"])
    assert spy.snapshots == [True, True] and spy.runs == 2
    ops = [e["operation"] for e in c.journal() if e["operation"] in ("TD3.1", "transition")]
    assert ops == ["TD3.1", "transition", "TD3.1"]


def test_a_secret_connection_that_starts_is_noted_by_the_write_transaction(mockbench, spy):
    """The first request with a minor's secret connection changes the patient (EX_0.1-1100): it cannot be
    answered on a snapshot, and is computed in the write transaction as before."""
    c = mockbench.client
    c.load_yaml(SCENARIO)
    from kit.dmp import find_documents, vihf
    from test_dmp_scenarios import post

    patient = c.patient("leo")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    idnst = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["idnst"]
    for _ in range(2):
        response = post(mockbench, "registry", find_documents(patient),
                        vihf(pro, idnst, patient, signer=mockbench, secret=True),
                        "urn:ihe:iti:2007:RegistryStoredQuery")
        assert response.ok and b"ExtrinsicObject" in response.content
    assert spy.snapshots == [False, True]   # the second request is in the connection: nothing to change
    assert c.patient("leo")["secret_connection"] is True
    notes = [f["message"] for e in c.journal(channel="dmp") for f in e["findings"] if f["rule"] == "DMP/EX_0.1-1100"]
    assert "opens a secret connection" in notes[0] and "acts in" in notes[1]


def test_one_process_computes_in_the_write_transaction(mockbench, spy, monkeypatch):
    """A world no other process shares gains nothing from the snapshot (its threads share one interpreter):
    the request is computed in the write transaction, as it always was."""
    c = mockbench.client
    c.load_yaml(SCENARIO)
    monkeypatch.setattr(mockbench.world.store, "shared", False)
    _, seen = search(mockbench, "dr_martin", "alice")
    assert seen == ["cr_bio", "cr_consult", "cr_radio"]
    assert spy.snapshots == [] and spy.runs == 1
