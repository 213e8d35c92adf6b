"""Fixtures for the OIDC door's tests: a world with two professionals, and the issuers' URLs."""

import pytest
from oidc_helpers import ETAB, PSC, WORLD


@pytest.fixture
def oidc_world(mockbench):
    mockbench.client.load_yaml(WORLD)
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    return {"bench": mockbench, "pros": pros, "psc": mockbench.url + PSC, "etab": mockbench.url + ETAB}
