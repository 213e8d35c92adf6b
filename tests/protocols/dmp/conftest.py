"""Fixtures for the DMP door's tests: a loaded world and its people as the door's callers see them."""

import pytest

WORLD = """\
id: dmp-test
title: Essai DMP
seed: 9
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
      authorizations: [{structure: chu}]
      documents:
        - {id: cr_masque, author: dr_b, confidentiality: [MASQUE_PS]}
"""


@pytest.fixture
def dmp_world(mockbench):
    mockbench.client.load_yaml(WORLD)
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    structures = {s["id"]: s for s in mockbench.client.call("GET", "/structures")}
    return {"bench": mockbench, "patient": mockbench.client.patient("alice"), "pros": pros,
            "structures": structures, "url": mockbench.url + "/si-dmp-server/v2/services"}
