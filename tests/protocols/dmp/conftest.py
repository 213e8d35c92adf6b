"""Fixtures for the DMP door's tests: a loaded world and its people as the door's callers see them."""

import pytest
from kit.dmp import WORLD


@pytest.fixture
def dmp_world(mockbench):
    mockbench.client.load_yaml(WORLD)
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    structures = {s["id"]: s for s in mockbench.client.call("GET", "/structures")}
    return {"bench": mockbench, "patient": mockbench.client.patient("alice"), "pros": pros,
            "structures": structures, "url": mockbench.url + "/si-dmp-server/v2/services"}
