"""MSS/UX.10 played with a real FHIR client (fhirpy), as a DPI searching the Annuaire Santé would: by RPPS
alone, by specialty and postal code, by organisation name and city. The scenario's steps pass."""

import pytest
from annuaire_fhir import KEY, validate
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome


def _telecoms(resources) -> dict[str, list[str]]:
    return {r["name"][0]["family"]: [t["value"] for t in r.get("telecom", [])] for r in resources}


@pytest.mark.scenario_play("mss-ux-10", "correct")
def test_mss_ux_10_with_fhirpy(fhir):
    client = SyncFHIRClient(fhir.base, extra_headers=dict(KEY))

    # 1. RPPS alone
    found = client.resources("Practitioner").search(identifier=fhir.pros["dr_bernard"]["rpps"]).fetch()
    assert _telecoms(found) == {"BERNARD": ["claire.bernard@medecin.mssante.fr"]}
    validate(found[0].serialize())

    # 2. specialty + postal code, with the practitioners included
    bundle = (client.resources("PractitionerRole")
              .search(specialty="SM26", **{"organization.address-postalcode": "69001"})
              .include("PractitionerRole", "practitioner").fetch_raw())
    validate(dict(bundle))
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert _telecoms(included) == {"LEFEVRE": ["paul.lefevre@medecin.mssante.fr"]}

    # 3. organisation name + city, one per page: fhirpy follows the next links
    roles = (client.resources("PractitionerRole")
             .search(**{"organization.name": "Maison de santé", "organization.address-city": "Bordeaux"})
             .limit(1).fetch_all())
    practitioners = [r.get("practitioner").to_resource() for r in roles]
    assert _telecoms(practitioners) == {"GARNIER": ["louis.garnier@medecin.mssante.fr"],
                                        "ROUX": ["emma.roux@infirmier.mssante.fr"]}

    steps = fhir.running.client.finish()
    assert [(s["id"], s["status"]) for s in steps] == [
        ("par_rpps", "passed"), ("par_specialite_code_postal", "passed"), ("par_organisation_ville", "passed")]


@pytest.mark.scenario_play("mss-ux-10", "mistake")
def test_mss_ux_10_searching_the_rpps_with_a_made_up_parameter_fails(fhir):
    """The DPI sends the RPPS as `rpps=`, which the Annuaire does not know (it is `identifier`): a 400
    OperationOutcome naming the parameter, and the first step fails on that refusal."""
    client = SyncFHIRClient(fhir.base, extra_headers=dict(KEY))
    with pytest.raises(OperationOutcome) as refused:
        client.resources("Practitioner").search(rpps=fhir.pros["dr_bernard"]["rpps"]).fetch()
    assert "rpps" in str(refused.value)
    steps = fhir.running.client.finish()
    assert steps[0]["id"] == "par_rpps" and steps[0]["status"] == "failed"
    assert steps[0]["reason"] == "the entry's verdict is refused (PARAMETER_UNKNOWN), accepted was expected"
    assert [s["status"] for s in steps[1:]] == ["failed", "failed"]


def test_fhirpy_reads_and_organizations(fhir):
    client = SyncFHIRClient(fhir.base, extra_headers=dict(KEY))
    orgs = client.resources("Organization").search(**{"address-city": "Lyon"}).fetch()
    assert [o["name"] for o in orgs] == ["Cabinet médical des Terreaux"]
    org = client.reference("Organization", orgs[0]["id"]).to_resource()
    assert org["identifier"][0]["system"] == "http://finess.sante.gouv.fr"
    assert len(client.resources("Practitioner").search(name="garnier").fetch()) == 1
