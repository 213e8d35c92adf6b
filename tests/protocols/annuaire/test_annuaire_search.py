"""The search module without HTTP: parsing a query into criteria and matching them over a directory."""

import pytest

from mockbench.protocols.annuaire.resources import Directory
from mockbench.protocols.annuaire.search import SearchError, parse, search
from mockbench.world.model import Mailbox, Professional, Structure

CREATED = "2026-03-01T10:00:00.000Z"


@pytest.fixture
def directory() -> Directory:
    structures = [Structure(id="chu", finess="750000001", idnst="1750000001", name="Hôpital Saint-Éloi",
                            address={"postal_code": "34000", "city": "Montpellier"}),
                  Structure(id="cab", finess="690000001", idnst="1690000001", name="Cabinet, Dupont & Fils",
                            address={"postal_code": "69001", "city": "Lyon"}, directory_only=True)]
    pros = [Professional(id="a", idnps="810000000001", rpps="10000000001", family_name="ÉLOI", given_name="Zoé",
                         specialty="SM26", structure="chu", mssante="zoe.eloi@chu.mssante.fr"),
            Professional(id="b", idnps="810000000002", rpps="10000000002", family_name="DUPONT", given_name="Luc",
                         profession="21", structure="cab")]
    return Directory.build(CREATED, pros, structures, [Mailbox(address="luc@cab.mssante.fr", owner="b")])


def ids(rows) -> list[str]:
    return [getattr(r, "id", None) or r[0].id for r in rows]


def test_strings_ignore_case_and_accents_unless_exact(directory):
    assert ids(search(directory, parse("Practitioner", [("name", "eloi")]))) == ["a"]
    assert ids(search(directory, parse("Practitioner", [("name:exact", "ÉLOI")]))) == ["a"]
    assert ids(search(directory, parse("Practitioner", [("name:exact", "ELOI")]))) == []
    assert ids(search(directory, parse("Organization", [("name:contains", "saint-eloi")]))) == ["chu"]


def test_escaped_comma_is_not_or(directory):
    assert ids(search(directory, parse("Organization", [("name", "Cabinet\\, Dupont")]))) == ["cab"]
    assert ids(search(directory, parse("Organization", [("name", "Cabinet,Hôpital")]))) == ["chu", "cab"]


def test_tokens_with_and_without_system(directory):
    assert ids(search(directory, parse("Practitioner", [("identifier", "http://rpps.fr|10000000002")]))) == ["b"]
    assert ids(search(directory, parse("Practitioner", [("identifier", "|10000000002")]))) == []  # no system
    assert ids(search(directory, parse("PractitionerRole", [("role", "21")]))) == ["b"]
    assert ids(search(directory, parse("PractitionerRole", [("role", "10,21"), ("specialty", "SM26")]))) == ["a"]


def test_mailboxes_of_the_world_are_searchable(directory):
    assert ids(search(directory, parse("Practitioner", [("mailbox-mss", "luc@cab.mssante.fr")]))) == ["b"]


@pytest.mark.parametrize("value, expected", [("2026", 2), ("2026-03", 2), ("2026-02", 0), ("gt2026-03-01", 0),
                                             ("ge2026-03-01", 2), ("lt2026-03-01T10:00:00Z", 0),
                                             ("le2026-03-01T10:00:00Z", 2), ("eq2026-03-01T10:00:00.000Z", 2)])
def test_date_precision_and_prefixes(directory, value, expected):
    assert len(search(directory, parse("Practitioner", [("_lastUpdated", value)]))) == expected


def test_errors_name_the_parameter():
    with pytest.raises(SearchError) as caught:
        parse("Organization", [("address-line", "rue")])
    assert (caught.value.code, caught.value.parameter) == ("PARAMETER_NOT_SEARCHABLE", "address-line")
    with pytest.raises(SearchError) as caught:
        parse("PractitionerRole", [("specialty.name", "x")])
    assert caught.value.parameter == "specialty.name"
    with pytest.raises(SearchError) as caught:
        parse("Practitioner", [("_count", "1"), ("_count", "2")])
    assert caught.value.parameter == "_count"
