"""The Annuaire door over HTTP: each search parameter, AND/OR, paging, includes, errors, the journal."""

from datetime import datetime, timedelta

import pytest
import requests
from annuaire_fhir import KEY, Fhir

from mockbench.protocols.annuaire.search import PARAMS

PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
ALL_PROS = ["dr_bernard", "dr_garnier", "dr_lefevre", "dr_martin", "ide_roux"]


def test_health_lists_the_door(mockbench):
    assert mockbench.client.health()["doors"]["annuaire"] == "up"


# Practitioner ------------------------------------------------------------------------------------
def test_practitioner_by_rpps_gives_the_mssante_address(fhir):
    rpps = fhir.pros["dr_lefevre"]["rpps"]
    for value in (rpps, f"http://rpps.fr|{rpps}"):
        bundle = fhir.get("/Practitioner", identifier=value)
        assert bundle["total"] == 1 and fhir.pro_ids(bundle) == ["dr_lefevre"]
    practitioner = bundle["entry"][0]["resource"]
    assert [t["value"] for t in practitioner["telecom"]] == ["paul.lefevre@medecin.mssante.fr"]
    assert practitioner["name"][0] == {"use": "usual", "family": "LEFEVRE", "given": ["Paul"]}
    idnps = fhir.pros["dr_lefevre"]["idnps"]
    assert fhir.pro_ids(fhir.get("/Practitioner", identifier=f"urn:oid:1.2.250.1.71.4.2.1|{idnps}")) == \
        ["dr_lefevre"]
    assert fhir.get("/Practitioner", identifier=f"http://finess.sante.gouv.fr|{rpps}")["total"] == 0


def test_practitioner_name_modifiers(fhir):
    assert fhir.pro_ids(fhir.get("/Practitioner", name="lef")) == ["dr_lefevre"]        # starts with, any case
    assert fhir.pro_ids(fhir.get("/Practitioner", name="claire")) == ["dr_bernard"]     # given name too
    assert fhir.get("/Practitioner", **{"name:exact": "lefevre"})["total"] == 0
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:exact": "LEFEVRE"})) == ["dr_lefevre"]
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:contains": "rn"})) == ["dr_bernard", "dr_garnier"]


def test_practitioner_mailbox_active_id(fhir):
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"mailbox-mss": "emma.roux@infirmier.mssante.fr"})) == \
        ["ide_roux"]
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"mailbox-mss:contains": "@medecin."})) == \
        ["dr_bernard", "dr_garnier", "dr_lefevre"]
    assert fhir.get("/Practitioner", active="true")["total"] == 5
    assert fhir.get("/Practitioner", active="false")["total"] == 0
    assert fhir.pro_ids(fhir.get("/Practitioner", _id=fhir.pros["dr_martin"]["idnps"])) == ["dr_martin"]


def test_last_updated_prefixes(fhir):
    stamp = fhir.get("/Practitioner", _count="1")["entry"][0]["resource"]["meta"]["lastUpdated"]
    now = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    yesterday, tomorrow = (now - timedelta(days=1)).date(), (now + timedelta(days=1)).date()
    assert fhir.get("/Practitioner", _lastUpdated=f"gt{yesterday}")["total"] == 5
    assert fhir.get("/Practitioner", _lastUpdated=f"ge{now.date()}")["total"] == 5
    assert fhir.get("/Practitioner", _lastUpdated=f"lt{yesterday}")["total"] == 0
    assert fhir.get("/Practitioner", _lastUpdated=f"le{tomorrow}")["total"] == 5
    assert fhir.get("/Practitioner", _lastUpdated=str(now.year))["total"] == 5           # eq by default
    assert fhir.get("/Practitioner", _lastUpdated=f"eq{tomorrow}")["total"] == 0
    assert fhir.get("/Practitioner", _lastUpdated=f"eq{stamp}")["total"] == 5              # an instant
    assert fhir.get("/Practitioner", _lastUpdated=f"gt{stamp}")["total"] == 0
    r = fhir.get(f"/Practitioner?_lastUpdated=gt{yesterday}&_lastUpdated=lt{yesterday}")
    assert r["total"] == 0                                                          # AND


# PractitionerRole ------------------------------------------------------------------------------------
def test_role_specialty_organization_practitioner(fhir):
    assert fhir.pro_ids(fhir.get("/PractitionerRole", role="60")) == ["ide_roux"]
    assert fhir.pro_ids(fhir.get("/PractitionerRole", role=f"{PROFESSION}|10")) == ALL_PROS[:4]
    assert fhir.get("/PractitionerRole", role="http://example.org|10")["total"] == 0
    assert fhir.get("/PractitionerRole", role="C")["total"] == 5                         # category, TRE-R09
    assert fhir.pro_ids(fhir.get("/PractitionerRole", specialty=f"{SPECIALTY}|SM26")) == \
        ["dr_garnier", "dr_lefevre", "dr_martin"]
    lyon = fhir.org("cab_lyon")
    assert fhir.pro_ids(fhir.get("/PractitionerRole", organization=lyon)) == ["dr_bernard", "dr_lefevre"]
    assert fhir.pro_ids(fhir.get("/PractitionerRole", organization=f"Organization/{lyon}")) == \
        ["dr_bernard", "dr_lefevre"]
    garnier = fhir.pros["dr_garnier"]["idnps"]
    assert fhir.pro_ids(fhir.get("/PractitionerRole", practitioner=f"Practitioner/{garnier}")) == ["dr_garnier"]
    bundle = fhir.get("/PractitionerRole", practitioner=garnier, active="true")
    role = bundle["entry"][0]["resource"]
    assert role["specialty"][0]["coding"][0] == {"system": SPECIALTY, "code": "SM26",
                                                 "display": "Qualifié en Médecine Générale"}
    assert role["organization"]["reference"] == f"Organization/{fhir.org('cab_bordeaux')}"


def test_role_and_or(fhir):
    bundle = fhir.get("/PractitionerRole", specialty="SM26,SM04")                        # OR
    assert fhir.pro_ids(bundle) == ["dr_bernard", "dr_garnier", "dr_lefevre", "dr_martin"]
    r = fhir.get(f"/PractitionerRole?specialty=SM26,SM04&organization={fhir.org('cab_lyon')}"
                     f"&role=10")                                # AND
    assert fhir.pro_ids(r) == ["dr_bernard", "dr_lefevre"]
    r = fhir.get("/Practitioner?name=paul&name=lef")
    assert fhir.pro_ids(r) == ["dr_lefevre"]
    r = fhir.get("/Practitioner?name=paul&name=claire")
    assert r["total"] == 0


def test_role_chains_and_include(fhir):
    bundle = fhir.get("/PractitionerRole", specialty="SM26", **{
        "organization.address-postalcode": "69001", "_include": "PractitionerRole:practitioner"})
    assert fhir.pro_ids(bundle) == ["dr_lefevre"]
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [(r["resourceType"], r["telecom"][0]["value"]) for r in included] == \
        [("Practitioner", "paul.lefevre@medecin.mssante.fr")]
    r = fhir.get("/PractitionerRole?organization.name=maison&organization.address-city=bordeaux"
                     "&_include=PractitionerRole:practitioner&_include=PractitionerRole:organization")
    bundle = r
    assert fhir.pro_ids(bundle) == ["dr_garnier", "ide_roux"]
    assert sorted(e["resource"]["resourceType"] for e in bundle["entry"] if e["search"]["mode"] == "include") \
        == ["Organization", "Practitioner", "Practitioner"]                                 # the clinic once
    assert fhir.pro_ids(fhir.get("/PractitionerRole", **{"practitioner.name": "roux"})) == ["ide_roux"]


# Organization, HealthcareService ---------------------------------------------------------------------------
def test_organization_parameters(fhir):
    s = fhir.structures
    assert fhir.ids(fhir.get("/Organization", name="cabinet")) == [s["cab_lyon"]["idnst"]]
    assert fhir.ids(fhir.get("/Organization", **{"name:contains": "chartrons"})) == [s["cab_bordeaux"]["idnst"]]
    assert fhir.get("/Organization", **{"name:exact": "cabinet médical des terreaux"})["total"] == 0
    assert fhir.get("/Organization", **{"name:exact": "Cabinet médical des Terreaux"})["total"] == 1
    assert fhir.ids(fhir.get("/Organization", identifier=f"http://finess.sante.gouv.fr|{s['chu']['finess']}")) \
        == [s["chu"]["idnst"]]
    assert fhir.ids(fhir.get("/Organization", identifier="23982597990748")) == [s["cab_lyon"]["idnst"]]
    assert fhir.ids(fhir.get("/Organization", identifier="https://sirene.fr|23982597990748")) == \
        [s["cab_lyon"]["idnst"]]
    assert fhir.ids(fhir.get("/Organization", **{"address-postalcode": "75"})) == [s["chu"]["idnst"]]
    assert fhir.ids(fhir.get("/Organization", **{"address-city": "LYON"})) == [s["cab_lyon"]["idnst"]]
    assert fhir.get("/Organization", type="SA07")["total"] == 2
    assert fhir.get("/Organization", type="SA01", active="true")["total"] == 1
    org = fhir.get(f"/Organization/{s['chu']['idnst']}")
    assert org["address"][0] == {"use": "work", "type": "both", "line": ["1 rue de la Santé"], "city": "Paris",
                                 "postalCode": "75014", "country": "FR"}


def test_healthcare_service(fhir):
    org = fhir.org("chu")
    bundle = fhir.get("/HealthcareService", organization=org, _include="HealthcareService:organization")
    assert fhir.ids(bundle) == [f"hs-{org}"] and fhir.ids(bundle, "include") == [org]
    assert fhir.get(f"/HealthcareService/hs-{org}")["providedBy"]["reference"] == f"Organization/{org}"
    assert fhir.get("/HealthcareService", name="maison")["total"] == 1


def test_revinclude(fhir):
    bundle = fhir.get("/Organization", **{"address-city": "lyon", "_revinclude": "PractitionerRole:organization"})
    assert fhir.pro_ids(bundle, "include") == ["dr_bernard", "dr_lefevre"]
    bundle = fhir.get("/Practitioner", name="martin", _revinclude="PractitionerRole:practitioner")
    assert fhir.ids(bundle, "include") == [fhir.role("dr_martin")]


# Paging, totals ----------------------------------------------------------------------------------------
def test_paging_follows_next_links(fhir):
    page = fhir.get("/Practitioner", _count="2")
    assert page["total"] == 5 and len(page["entry"]) == 2
    seen = fhir.pro_ids(page)
    pages = 1
    while (nxt := [link["url"] for link in page["link"] if link["relation"] == "next"]):
        page = fhir.get(nxt[0])
        seen += fhir.pro_ids(page)
        pages += 1
    assert pages == 3 and sorted(seen) == ALL_PROS
    assert any(link["relation"] == "previous" for link in page["link"])
    assert "total" not in fhir.get("/Practitioner", _total="none")
    empty = fhir.get("/Practitioner", _count="0")
    assert empty["total"] == 5 and "entry" not in empty


# Errors --------------------------------------------------------------------------------------------
def _issue(body: dict) -> dict:
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


@pytest.mark.parametrize("params, named", [
    ({"colour": "blue"}, "colour"),
    ({"name:sounds-like": "x"}, "name:sounds-like"),
    ({"_count": "many"}, "_count"),
    ({"_count": "5000"}, "_count"),
    ({"_lastUpdated": "yesterday"}, "_lastUpdated"),
    ({"_lastUpdated": "sa2024-01-01"}, "_lastUpdated"),
    ({"active": "maybe"}, "active"),
    ({"_total": "all"}, "_total"),
    ({"_include": "Practitioner:organization"}, "_include"),
    ({"identifier": ""}, "identifier"),
])
def test_bad_parameters_give_400_naming_them(fhir, params, named):
    issue = _issue(fhir.get("/Practitioner", status=400, **params))
    assert named in issue["diagnostics"] and issue["expression"] == [named]


@pytest.mark.parametrize("street", ["address", "address-line"])
def test_street_is_not_searchable(fhir, street):
    issue = _issue(fhir.get("/Organization", status=400, **{street: "rue de la Santé"}))
    assert issue["expression"] == [street] and "street is not searchable" in issue["diagnostics"]


def test_api_key(fhir):
    assert _issue(fhir.get("/Practitioner", status=401, headers=None))["code"] == "login"
    assert _issue(fhir.get("/metadata", status=401, headers={"ESANTE-API-KEY": "wrong"}))["code"] == "login"
    entries = fhir.running.client.journal(channel="annuaire")
    assert [(e["operation"], e["verdict"], e["code"]) for e in entries] == [
        ("search:Practitioner", "refused", "UNAUTHORIZED"), ("read:CapabilityStatement", "refused", "UNAUTHORIZED")]


def test_configured_keys(mockbench_factory):
    other = mockbench_factory(doors={"annuaire": {"api_keys": ["k1", "k2"]}})
    url = other.url + "/fhir/v1/Practitioner"
    assert requests.get(url, headers=KEY, timeout=10).status_code == 401
    assert requests.get(url, headers={"ESANTE-API-KEY": "k2"}, timeout=10).json()["total"] == 0


def test_read_by_id_and_404(fhir):
    idnps = fhir.pros["dr_martin"]["idnps"]
    assert fhir.get(f"/Practitioner/{idnps}")["identifier"][0]["value"] == idnps
    assert fhir.get(f"/PractitionerRole/{fhir.role('dr_martin')}")["practitioner"]["reference"] == \
        f"Practitioner/{idnps}"
    issue = _issue(fhir.get("/Practitioner/810000000000", status=404))
    assert issue["code"] == "not-found"
    assert _issue(fhir.get("/Device", status=404))["code"] == "not-supported"
    assert _issue(fhir.get("/Practitioner/a/b", status=404))["code"] == "not-supported"


def test_journal_entries(fhir):
    fhir.get("/PractitionerRole", specialty="SM26")
    fhir.get(f"/Organization/{fhir.org('chu')}")
    fhir.get("/Practitioner", status=400, colour="blue")
    fhir.get("/metadata")
    entries = fhir.running.client.journal(channel="annuaire")
    assert [(e["operation"], e["verdict"], e["code"], e["actor"]) for e in entries] == [
        ("search:PractitionerRole", "accepted", None, "mockbench"),
        ("read:Organization", "accepted", None, "mockbench"),
        ("search:Practitioner", "refused", "PARAMETER_UNKNOWN", "mockbench"),
        ("read:CapabilityStatement", "accepted", None, "mockbench"),
    ]
    assert entries[0]["raw"] == "/fhir/v1/PractitionerRole?specialty=SM26"


def test_capability_statement_lists_exactly_the_parameters(fhir):
    cs = fhir.get("/metadata")
    served = {r["type"]: {p["name"] for p in r["searchParam"]} for r in cs["rest"][0]["resource"]}
    assert served == {kind: set(params) for kind, params in PARAMS.items()}
    role = next(r for r in cs["rest"][0]["resource"] if r["type"] == "PractitionerRole")
    assert role["searchInclude"] == ["PractitionerRole:practitioner", "PractitionerRole:organization"]
    # every parameter it lists is accepted
    for r in cs["rest"][0]["resource"]:
        for p in r["searchParam"]:
            value = {"date": "ge2000-01-01", "reference": "x"}.get(p["type"], "true")
            fhir.get(f"/{r['type']}", **{p["name"]: value})


def test_hospital_mailboxes_are_on_practitioner_and_organization(mockbench):
    mockbench.client.load_yaml("""\
id: annuaire-boites
title: Boîtes
world:
  structures: [{id: chu}]
  professionals: [{id: dr_martin, structure: chu, mssante: jeanne.martin@chu.mssante.fr}]
  mailboxes:
    - {address: j.martin.cardio@chu.mssante.fr, owner: dr_martin}
    - {address: secretariat@chu.mssante.fr, type: ORG, owner: chu}
""")
    fhir = Fhir(mockbench)
    pro = fhir.get("/Practitioner", **{"mailbox-mss": "j.martin.cardio@chu.mssante.fr"})["entry"][0]["resource"]
    assert [t["value"] for t in pro["telecom"]] == ["jeanne.martin@chu.mssante.fr", "j.martin.cardio@chu.mssante.fr"]
    org = fhir.get("/Organization", **{"mailbox-mss": "secretariat@chu.mssante.fr"})["entry"][0]["resource"]
    assert org["telecom"][0]["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "ORG"


@pytest.mark.parametrize("query", ["name=%00", "identifier=%7C%7C%7C", "name=%F0%9F%A9%BA", "_count=" + "9" * 400,
                                   "_lastUpdated=ge9999-99-99", "specialty=a%5C,b", "_offset=" + "1" * 50,
                                   "organization.organization.name=x", "name:exact:contains=x"])
def test_hostile_queries_never_fail_the_bench(fhir, query):
    r = requests.get(f"{fhir.base}/PractitionerRole?{query}", headers=KEY, timeout=10)
    assert r.status_code in (200, 400) and r.json()["resourceType"] in ("Bundle", "OperationOutcome")
