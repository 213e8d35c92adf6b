"""MSS/UX.10 and the V2 documentation's example searches played with a real FHIR client (fhirpy), as a DPI
searching the Annuaire Santé V2 would: every answer parsed by fhir.resources (R4B models), pages followed
through their `next` links.

Sources (corpus specs/annuaire-v2/): resources_practitioner.md §4, resources_practitioner-role.md §4,
resources_organization.md §4, advanced_common-search-params.md §2-7, advanced_modifying-search-results.md,
use-case_uc-bal-mss.md §1-2, use-case_uc-call-type.md §1-4.
"""

import pytest
from annuaire_fhir import KEY, validate
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
R38 = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
R09 = "https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle"
R02 = "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"


def _client(fhir) -> SyncFHIRClient:
    return SyncFHIRClient(fhir.base, extra_headers=dict(KEY))


def _telecoms(resources) -> dict[str, list[str]]:
    return {r["name"][0]["family"]: [t["value"] for t in r.get("telecom", [])] for r in resources}


def _raw(client, kind: str, **params) -> dict:
    bundle = dict(client.resources(kind).search(**params).fetch_raw())
    validate(bundle)
    return bundle


@pytest.mark.scenario_play("mss-ux-10", "correct")
def test_mss_ux_10_with_fhirpy(fhir):
    client = _client(fhir)

    # 1. RPPS alone (resources_practitioner.md §4.2)
    found = client.resources("Practitioner").search(identifier=fhir.pros["dr_bernard"]["rpps"]).fetch()
    assert _telecoms(found) == {"BERNARD": ["claire.bernard@medecin.mssante.fr"]}
    validate(found[0].serialize())

    # 2. specialty (on Practitioner.qualification in V2, §4.7) and postal code (the Organization, with its
    # PractitionerRoles revincluded, use-case_uc-call-type.md §4): the DPI intersects the two
    gps = client.resources("Practitioner").search(**{"qualification-code": f"{R38}|SM26"}).fetch_all()
    bundle = _raw(client, "Organization", **{"address-postalcode": "69001",
                                             "_revinclude": "PractitionerRole:organization"})
    in_69001 = {e["resource"]["practitioner"]["reference"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "PractitionerRole"}
    assert _telecoms([p for p in gps if f"Practitioner/{p['id']}" in in_69001]) == \
        {"LEFEVRE": ["paul.lefevre@medecin.mssante.fr"]}

    # 3. organisation name + city, then the practitioners of its roles, one per page through `next`
    bundle = _raw(client, "Organization", name="Maison de santé", **{"address-city": "Bordeaux",
                                                                      "_revinclude": "PractitionerRole:organization"})
    roles = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "PractitionerRole"]
    ids = ",".join(r["practitioner"]["reference"].split("/")[1] for r in roles)
    practitioners = client.resources("Practitioner").search(_id=ids).limit(1).fetch_all()
    assert _telecoms(practitioners) == {"GARNIER": ["louis.garnier@medecin.mssante.fr"],
                                        "ROUX": ["emma.roux@infirmier.mssante.fr"]}

    steps = fhir.running.client.finish()
    assert [(s["id"], s["status"]) for s in steps] == [
        ("par_rpps", "passed"), ("par_specialite_code_postal", "passed"), ("par_organisation_ville", "passed")]


@pytest.mark.scenario_play("mss-ux-10", "mistake")
def test_mss_ux_10_searching_the_rpps_with_a_made_up_parameter_fails(fhir):
    """The DPI sends the RPPS as `rpps=`, which the Annuaire does not know (it is `identifier`): a 400
    OperationOutcome naming the parameter, and the first step fails on that refusal."""
    client = _client(fhir)
    with pytest.raises(OperationOutcome) as refused:
        client.resources("Practitioner").search(rpps=fhir.pros["dr_bernard"]["rpps"]).fetch()
    assert "rpps" in str(refused.value)
    steps = fhir.running.client.finish()
    assert steps[0]["id"] == "par_rpps" and steps[0]["status"] == "failed"
    assert steps[0]["reason"] == "the entry's verdict is refused (PARAMETER_UNKNOWN), accepted was expected"
    assert [s["status"] for s in steps[1:]] == ["failed", "failed"]


def test_mss_ux_10_with_the_v1_specialty_search_is_refused(fhir):
    """A DPI still searching as on the retired V1 (`PractitionerRole?specialty=`, chained
    `organization.address-postalcode`) gets 400s naming the parameter."""
    client = _client(fhir)
    for params, named in [({"specialty": "SM26"}, "specialty"),
                          ({"organization.address-postalcode": "69001"}, "organization.address-postalcode")]:
        with pytest.raises(OperationOutcome) as refused:
            client.resources("PractitionerRole").search(**params).fetch()
        assert named in str(refused.value)


def test_the_documentation_examples(fhir):
    """The V2 documentation's example searches, each answering as its comment says on the mss-ux-10 world."""
    client = _client(fhir)
    everyone = ["BERNARD", "GARNIER", "LEFEVRE", "MARTIN", "ROUX"]

    def families(kind="Practitioner", **params):
        return sorted(r["name"][0]["family"] for r in client.resources(kind).search(**params).fetch_all())

    # resources_practitioner.md §4.1-4.8
    assert families() == everyone
    bundle = _raw(client, "Practitioner", _revinclude="PractitionerRole:practitioner")
    assert sorted(e["resource"]["resourceType"] for e in bundle["entry"]).count("PractitionerRole") == 5
    assert families(identifier=fhir.pros["dr_garnier"]["rpps"]) == ["GARNIER"]
    assert families(identifier=f"{fhir.pros['dr_garnier']['idnps']},{fhir.pros['ide_roux']['idnps']}") == \
        ["GARNIER", "ROUX"]
    assert families(_id=fhir.practitioner_id("dr_martin")) == ["MARTIN"]
    assert families(family="GARNIER", given="LOUIS") == ["GARNIER"]
    # §4.3's own form, outside the CapabilityStatement: served as the real V2 serves it, the modifier ignored
    # (ansforge/annuaire-sante-fhir-documentation issue #398), so the given name alone satisfies name:family
    assert families(**{"name:family": "GARNIER", "name:given": "LOUIS"}) == ["GARNIER"]
    assert families(**{"name:family": "LOUIS"}) == ["GARNIER"]
    assert families(active="true") == everyone
    assert families(_lastUpdated="ge2024-08-30") == everyone
    assert families(**{"qualification-code": "60"}) == ["ROUX"]
    assert families(**{"qualification-code": f"{G15}|10"}) == ["BERNARD", "GARNIER", "LEFEVRE", "MARTIN"]
    assert families(**{"qualification-code": "SM04"}) == ["BERNARD"]
    assert families(**{"qualification-code": f"{R38}|SM26"}) == ["GARNIER", "LEFEVRE", "MARTIN"]
    assert families(**{"qualification-code": f"{R09}|C"}) == everyone
    # advanced_modifying-search-results.md §5
    [p] = client.resources("Practitioner").search(identifier=fhir.pros["dr_martin"]["rpps"]).elements("name") \
        .fetch()
    assert "telecom" not in p and p["meta"]["tag"][0]["code"] == "SUBSETTED"

    # resources_practitioner-role.md §4.1-4.5
    for include, kinds in [("PractitionerRole:organization", {"Organization"}),
                           ("PractitionerRole:practitioner", {"Practitioner"}),
                           ("*", {"Organization", "Practitioner"})]:
        bundle = _raw(client, "PractitionerRole", _include=include)
        assert {e["resource"]["resourceType"] for e in bundle["entry"] if e["search"]["mode"] == "include"} == kinds
    role = client.resources("PractitionerRole").search(active="true").limit(1).fetch()[0]
    assert client.resources("PractitionerRole").search(_id=role["id"]).fetch()[0]["id"] == role["id"]
    assert client.resources("PractitionerRole").search(identifier=role["identifier"][0]["value"]).fetch()[0][
        "id"] == role["id"]
    assert client.resources("PractitionerRole").search(
        role="https://mos.esante.gouv.fr/NOS/TRE_R85-RolePriseCharge/FHIR/TRE-R85-RolePriseCharge|318").fetch() == []
    assert len(client.resources("PractitionerRole").search(**{"mailbox-mss:contains": "mssante.fr"}).fetch()) == 5

    # resources_organization.md §4.1-4.7
    def names(**params):
        return sorted(r["name"] for r in client.resources("Organization").search(**params).fetch_all())

    assert len(names()) == 4                                    # 3 EG and the CHU's EJ
    assert names(**{"name:contains": "maison,cabinet"}) == ["Cabinet médical des Terreaux",
                                                             "Maison de santé des Chartrons"]
    chu = fhir.structures["chu"]
    assert names(identifier=chu["idnst"]) == ["CHU de Test"]
    assert names(identifier=f"https://finess.esante.gouv.fr|{chu['finess']}") == ["CHU de Test"]
    assert len(names(_lastUpdated="ge2025-08-05")) == 4
    assert names(type="LEGAL-ENTITY") == ["CHU de Test"]         # the CHU's EJ
    assert names(type=f"{R02}|SA07") == ["Cabinet médical des Terreaux", "Maison de santé des Chartrons"]
    assert names(**{"address-postalcode": "75014", "address-city": "PARIS"}) == ["CHU de Test"]
    assert names(**{"data-information-system": "FINESS"}) == names()
    # use-case_uc-bal-mss.md §2: a sector and at least one MSSanté mailbox
    assert names(type=f"{R02}|SA07", **{"mailbox-mss:contains": "@"}) == []

    # Device and HealthcareService (resources_device.md, resources_healthcare-service.md): none in a world
    assert client.resources("Device").search(_include="Device:organization").fetch() == []
    assert client.resources("HealthcareService").search(
        _profile="https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
                 "as-dp-healthcareservice-social-equipment").fetch() == []


def test_fetch_all_pages_through_next_links(fhir):
    """use-case_uc-call-type.md §1: a full synchronisation follows `next` to the last page."""
    client = _client(fhir)
    pages = list(client.resources("PractitionerRole").search(_include="*").limit(2).fetch_raw()["link"])
    assert [link["relation"] for link in pages] == ["next", "self"]
    roles = client.resources("PractitionerRole").limit(2).fetch_all()
    assert len(roles) == 5 and len({r["id"] for r in roles}) == 5
    for r in roles:
        validate(r.serialize())
