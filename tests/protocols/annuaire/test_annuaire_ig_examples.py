"""The Annuaire IG's own public-data examples (corpus specs/annuaire-v2/ig-fsh/PP16DP-*.fsh, PP19DP-*.fsh),
seeded into a world as a scenario would write them, are served with the shape their FSH gives, element by
element (fsh.py reads the FSH as SUSHI would turn it into JSON).

One documented difference: the examples' PractitionerRole references name `Practitioner/3719500` and
`Organization/481677` while those instances' ids are `3719500DP` and `481677DP` (the examples were made
from files that had no DP suffix); the bench serves references that resolve, so the test adds the suffix
before comparing."""

import json

import pytest
from annuaire_fhir import Fhir
from fsh import read_instance

WORLD = """\
id: annuaire-ig-dp
title: Les exemples PP16DP et PP19DP du guide d'implémentation de l'Annuaire Santé
world:
  structures:
    - id: pharmacie_nolot
      finess: "580008803"
      name: PHARMACIE NOLOT
      address: {line: ""}
      directory_only: true
      annuaire:
        id: 481677DP
        kind: LEGAL-ENTITY
        rpps_rang: F58000880311022013
        sector: SA33
        opened: "2019-09-02"
        meta: {versionId: "0.1", lastUpdated: "2019-09-02T01:00:00.000+01:00"}
    - id: ch_eure_seine
      finess: "754567860"
      check_digits: false
      name: CH EURE-SEINE
      address: {postal_code: "75014", city: PARIS}
      annuaire:
        id: 158480DP
        rpps_rang: F754567860
        sector: SA01
        opened: "2019-06-01"
        phone: "0450636363"
        fax: "0450455933"
        address: {insee: "75114", houseNumber: "96", streetNameType: R, streetNameBase: DIDOT}
        meta: {versionId: "0.1", lastUpdated: "2019-09-01T01:00:00.000+01:00"}
    - id: cabinet_saint_antoine
      name: CABINET SAINT ANTOINE
      address: {line: ""}
      directory_only: true
      annuaire:
        id: 548812DP
        kind: LEGAL-ENTITY
        idnst: "410005531586003"
        finess_listed: false
        rpps_rang: https://rppsrang.esante.gouv.fr
        alias: CABINET DE GROUPE
        sector: SA08
        opened: "2019-04-01"
        meta: {versionId: "0.1", lastUpdated: "2019-09-01T01:00:00.000+01:00"}
  professionals:
    - id: pp16
      idnps: "810102727017"
      rpps: "10102727017"
      check_digits: false
      family_name: CHATELIER
      given_name: David
      profession: "21"
      structure: pharmacie_nolot
      mssante: davidchatelier@xxx.mssante.fr
      directory_only: true
      annuaire:
        id: 3719500DP
        prefix: M
        degrees: [{code: DE01}]
        mailbox_rank: 1
        mailbox_metadata: false
        meta: {versionId: "0.1", lastUpdated: "2019-08-31T01:00:00.000+01:00"}
        roles:
          - {structure: pharmacie_nolot, id: 5015602DP, identifier: "1001500032", mode: L,
             meta: {versionId: "0.1", lastUpdated: "2019-08-31T01:00:00.000+01:00"}}
    - id: pp19
      idnps: "810003461033"
      rpps: "10003461033"
      check_digits: false
      family_name: Saucier
      given_name: Arthur
      structure: ch_eure_seine
      mssante: jeromebonnet@pro.mssante.fr
      directory_only: true
      annuaire:
        id: 334081DP
        prefix: M
        degrees: [{code: DE05}]
        mailbox_metadata: false
        meta: {versionId: "0.1", lastUpdated: "2019-09-05T01:00:00.000+01:00"}
        roles:
          - {structure: cabinet_saint_antoine, id: 1738459DP, identifier: "1010399870", mode: L,
             meta: {versionId: "0.1", lastUpdated: "2019-09-05T01:00:00.000+01:00"}}
          - {structure: ch_eure_seine, id: 1578230DP, identifier: F58000880311022013, mode: S,
             meta: {versionId: "0.1", lastUpdated: "2019-09-05T01:00:00.000+01:00"}}
"""
EXAMPLES = ["PP16DP-Organization", "PP16DP-Practitioner", "PP16DP-PractitionerRole", "PP19DP-Organization-EG-CH",
            "PP19DP-Organization-EJ-Cab", "PP19DP-Practitioner", "PP19DP-PractitionerRole-Lib",
            "PP19DP-PractitionerRole-Sal"]


@pytest.fixture
def ig_world(mockbench) -> Fhir:
    mockbench.client.load_yaml(WORLD)
    return Fhir(mockbench)


def _canonical(value):
    """Lists compared whatever their order (SUSHI orders slices by the profile, the rules may not)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _resolvable(expected: dict) -> dict:
    for key in ("practitioner", "organization"):
        if key in expected and not expected[key]["reference"].endswith("DP"):
            expected[key] = {"reference": expected[key]["reference"] + "DP"}
    return expected


@pytest.mark.parametrize("name", EXAMPLES)
def test_ig_example_is_served_as_its_fsh(ig_world, corpus, name):
    expected = _resolvable(read_instance(corpus / "specs" / "annuaire-v2" / "ig-fsh" / f"{name}.fsh"))
    served = ig_world.get(f"/{expected['resourceType']}/{expected['id']}")
    assert _canonical(served) == _canonical(expected)


def test_ig_examples_are_searchable_as_the_documentation_says(ig_world):
    f = ig_world
    assert f.ids(f.get("/Practitioner", identifier="10102727017")) == ["3719500DP"]
    assert f.ids(f.get("/Practitioner", **{"qualification-code": "DE05"})) == ["334081DP"]
    assert f.ids(f.get("/Practitioner", _lastUpdated="lt2019-09-01")) == ["3719500DP"]
    bundle = f.get("/PractitionerRole", practitioner="334081DP", _include="PractitionerRole:organization")
    assert sorted(f.ids(bundle)) == ["1578230DP", "1738459DP"]
    assert sorted(f.ids(bundle, "include")) == ["158480DP", "548812DP"]
    assert f.ids(f.get("/PractitionerRole", role="S")) == ["1578230DP"]
    assert f.ids(f.get("/PractitionerRole", identifier="https://rpps.esante.gouv.fr|1010399870")) == ["1738459DP"]
    assert sorted(f.ids(f.get("/Organization", type="LEGAL-ENTITY"))) == ["481677DP", "548812DP"]
    assert f.ids(f.get("/Organization", identifier="https://rppsrang.esante.gouv.fr|F754567860")) == ["158480DP"]
    assert f.ids(f.get("/Organization", **{"address-line": "96 R DIDOT"})) == ["158480DP"]
    assert f.ids(f.get("/Organization", name="cabinet de groupe")) == ["548812DP"]      # the alias
    assert f.get("/Organization", identifier="https://finess.esante.gouv.fr|")["total"] == 2
