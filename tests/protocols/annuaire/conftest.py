"""Fixtures for the Annuaire door's tests: the mss-ux-10 world."""

import pytest
from annuaire_fhir import Fhir


@pytest.fixture
def fhir(mockbench) -> Fhir:
    mockbench.client.load("mss-ux-10")
    return Fhir(mockbench)
