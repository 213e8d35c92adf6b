"""The Annuaire's requests answered on a read snapshot, out of the write transaction that journals them (issue 21,
point 3): the answer and its journal entry are what a serial execution gives, whatever another request commits
between the snapshot and that transaction (run exactly there by a wrapper of the door's `_on_snapshot`)."""

import dataclasses
import json

import pytest
from annuaire_fhir import IDNPS
from kit.snapshot import spy_snapshots

NEW_IDNPS = "3NOUVEAU01"   # a local IDNPS ("3" + a local id): no check digit


@pytest.fixture
def spy(fhir, monkeypatch):
    return spy_snapshots(fhir.running.bench.doors["annuaire"], monkeypatch, "_answer")


def _add_professional(world) -> None:
    with world.transaction() as tx:
        some = world.directory.professionals(tx)[0]
        world.directory.add_professional(tx, dataclasses.replace(some, id="dr_nouveau", idnps=NEW_IDNPS, rpps=None),
                                         check_digits=False)


def _last_entry(fhir) -> dict:
    return [e for e in fhir.running.client.journal(channel="annuaire")][-1]


def test_a_search_is_answered_on_the_snapshot_and_journaled_with_its_answer(fhir, spy):
    bundle = fhir.get("/Practitioner", identifier=f"{IDNPS}|{NEW_IDNPS}")
    assert bundle["total"] == 0
    assert spy.snapshots == [True] and spy.runs == 1
    entry = _last_entry(fhir)
    assert entry["operation"] == "search:Practitioner" and json.loads(entry["response"]) == bundle


def test_a_professional_added_between_the_snapshot_and_the_journal_is_found(fhir, spy):
    """Added after the snapshot, committed before the search's write transaction: in the serial order the
    addition comes first, so the search finds the professional."""
    spy.between.append(lambda: _add_professional(fhir.running.world))
    bundle = fhir.get("/Practitioner", identifier=f"{IDNPS}|{NEW_IDNPS}")
    assert bundle["total"] == 1
    assert spy.snapshots == [True] and spy.runs == 2   # the snapshot's answer dropped, answered again
    assert json.loads(_last_entry(fhir)["response"]) == bundle


def test_a_journaled_exchange_between_the_snapshot_and_the_journal_keeps_the_snapshot(fhir, spy):
    world = fhir.running.world

    def other_exchange():
        with world.transaction() as tx:
            world.journal.append(tx, "annuaire", "search:Organization", actor="mockbench", raw="another search")

    spy.between.append(other_exchange)
    bundle = fhir.get("/Practitioner", identifier=f"{IDNPS}|{NEW_IDNPS}")
    assert bundle["total"] == 0
    assert spy.snapshots == [True] and spy.runs == 1
    entries = fhir.running.client.journal(channel="annuaire")
    assert entries[-2]["raw"] == "another search" and json.loads(entries[-1]["response"]) == bundle


def test_a_refusal_is_answered_on_the_snapshot_too(fhir, spy):
    body = fhir.get("/Practitioner", status=401, headers={"ESANTE-API-KEY": "wrong"})
    assert body["resourceType"] == "OperationOutcome"
    assert spy.snapshots == [True] and spy.runs == 1
    entry = _last_entry(fhir)
    assert (entry["verdict"], entry["code"], entry["actor"]) == ("refused", "UNAUTHORIZED", "")
