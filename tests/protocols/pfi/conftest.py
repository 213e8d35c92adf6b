"""Fixtures for the PFI door's tests."""

import pytest
from kit.dpi_listener import DpiListener, ack

WORLD = """\
id: pfi-test
title: Essai PFI
seed: 5
world:
  structures: [{id: chu, name: CHU de Test}, {id: clinique, name: Clinique}]
  professionals:
    - {id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}
    - {id: dr_b, family_name: PETIT, given_name: Paul, structure: chu}
    - {id: dr_c, family_name: ROUX, given_name: Claire, structure: clinique}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{structure: chu}, {structure: clinique}]
  mailboxes:   # the CHU's applicative mailbox, From of the PFI's mails (trans-cda-r2/mapping-mss.md)
    - {address: pfi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
"""


@pytest.fixture
def pfi_world(mockbench):
    """A loaded world and its people as dicts: patient, professionals (with structures' FINESS)."""
    mockbench.client.load_yaml(WORLD)
    patient = mockbench.client.patient("alice")
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    structures = {s["id"]: s for s in mockbench.client.call("GET", "/structures")}
    for p in pros.values():
        p["finess"] = structures[p["structure"]]["finess"]
    return {"patient": patient, "pros": pros, "bench": mockbench}


@pytest.fixture
def dpi_listener(mockbench):
    """A DPI listener, declared at run time (PUT /_bench/pfi/dpi); forgotten afterwards (DELETE)."""
    made: list[DpiListener] = []

    def start(answer=ack) -> DpiListener:
        listener = DpiListener(answer)
        made.append(listener)
        view = mockbench.client.set_dpi(listener.endpoint)
        assert view == {"mllp": listener.endpoint, "source": "control"}
        return listener

    yield start
    mockbench.client.call("DELETE", "/pfi/dpi")
    for listener in made:
        listener.close()
