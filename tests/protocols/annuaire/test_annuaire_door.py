"""The Annuaire door (API V2) over HTTP: the V2 model, each kind of search parameter, AND/OR, token forms,
paging by `_page?id=`, includes, `_elements`, errors, lenient handling, /fhir/v1 gone, the journal.

Sources (corpus specs/annuaire-v2/): resources_practitioner.md §3-4, resources_practitioner-role.md §3-4,
resources_organization.md §3-4, advanced_common-search-params.md, advanced_modifying-search-results.md,
use-case_uc-call-type.md §1 (paging), use-case_uc-bal-mss.md (mailboxes), getting-started_api-basics.md,
changelog.md (V1 retired), ig-fsh/ (the profiles).
"""

import re
from datetime import datetime, timedelta

import pytest
import requests
from annuaire_fhir import IDNPS, KEY, Fhir, next_link

from mockbench.bench import BenchError

PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
CATEGORY = "https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle"
SECTOR = "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
ID_TYPE = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
ALL_PROS = ["dr_bernard", "dr_garnier", "dr_lefevre", "dr_martin", "ide_roux"]


def test_health_lists_the_door(mockbench):
    assert mockbench.client.health()["doors"]["annuaire"] == "up"


# The V2 model ----------------------------------------------------------------------------------------------
def test_practitioner_has_the_v2_shape(fhir):
    """ig-fsh/AsDpPractitionerProfile.fsh, PP16DP-Practitioner.fsh: opaque id, fr-core identifier types and
    systems, profession / category / specialty on qualification, MSSanté address as AsMailboxMSSProfile."""
    p = fhir.pros["dr_lefevre"]
    found = fhir.get("/Practitioner", identifier=p["rpps"])
    assert found["total"] == 1
    practitioner = found["entry"][0]["resource"]
    assert re.fullmatch(r"003-\d+-\d+", practitioner["id"]) and p["rpps"] not in practitioner["id"]
    assert practitioner["meta"]["profile"] == [
        "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-practitioner|1.2.0-snapshot-2",
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner|2.2.0"]
    assert [(i["system"], i["type"]["coding"][0], i["value"]) for i in practitioner["identifier"]] == [
        (IDNPS, {"system": ID_TYPE, "code": "IDNPS"}, p["idnps"]),
        ("https://rpps.esante.gouv.fr", {"system": ID_TYPE, "code": "RPPS"}, p["rpps"])]
    assert practitioner["name"] == [{"use": "usual", "family": "LEFEVRE", "given": ["Paul"]}]
    assert [q["code"]["coding"] for q in practitioner["qualification"]] == [
        [{"system": PROFESSION, "code": "10"}, {"system": CATEGORY, "code": "C"}],
        [{"system": SPECIALTY, "code": "SM26"}, {"system": "https://mos.esante.gouv.fr/NOS/TRE_R04-TypeSavoirFaire"
                                                "/FHIR/TRE-R04-TypeSavoirFaire", "code": "S"}]]
    [telecom] = practitioner["telecom"]
    assert telecom["system"] == "email" and telecom["value"] == "paul.lefevre@medecin.mssante.fr"
    email_type, metadata = telecom["extension"]
    assert email_type == {"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type",
                          "valueCoding": {"system": "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/"
                                                    "TRE-R256-TypeMessagerie", "code": "MSSANTE"}}
    assert metadata["extension"][0]["valueCodeableConcept"]["coding"] == [
        {"system": "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL", "code": "PER"}]


def test_practitioner_role_has_role_codes_and_no_specialty(fhir):
    """ig-fsh/AsDpPractitionerRoleProfile.fsh: identifier[idSituationExercice], code slices, specialty 0..0."""
    pid = fhir.practitioner_id("dr_garnier")
    role = fhir.get("/PractitionerRole", practitioner=pid)["entry"][0]["resource"]
    assert "specialty" not in role
    assert role["identifier"][0]["system"] == "https://rpps.esante.gouv.fr"
    assert [c["coding"][0]["code"] for c in role["code"]] == ["GENR01", "L", "FON-AU"]   # a cabinet: libéral
    assert role["organization"]["reference"] == f"Organization/{fhir.org_id('cab_bordeaux')}"
    martin = fhir.get("/PractitionerRole", practitioner=f"Practitioner/{fhir.practitioner_id('dr_martin')}")
    assert [c["coding"][0]["code"] for c in martin["entry"][0]["resource"]["code"]] == ["GENR01", "S", "FON-AU"]


def test_eg_and_ej_are_two_organizations_tied_by_partof(fhir):
    """AsOrganizationProfile.fsh `partOf` (EG -> EJ); resources_organization.md §4.1 `_include=Organization:partof`,
    §4.5 `type=GEOGRAPHICAL-ENTITY` / `LEGAL-ENTITY`."""
    chu = fhir.structures["chu"]
    eg = fhir.get("/Organization", identifier=f"https://finess.esante.gouv.fr|{chu['finess']}",
                  _include="Organization:partof")
    [org] = fhir.resources(eg)
    [ej] = fhir.resources(eg, "include")
    assert org["partOf"] == {"reference": f"Organization/{ej['id']}"}
    assert [i["type"]["coding"][0]["code"] for i in org["identifier"]] == ["IDNST", "FINEG"]
    assert ("https://finess.esante.gouv.fr", chu["finess_ej"], "FINEJ") in \
        [(i["system"], i["value"], i["type"]["coding"][0]["code"]) for i in ej["identifier"]]
    assert ej["type"][0]["coding"][0]["code"] == "LEGAL-ENTITY"
    assert fhir.ids(fhir.get("/Organization", type="LEGAL-ENTITY")) == [ej["id"]]
    assert fhir.get("/Organization", type="GEOGRAPHICAL-ENTITY")["total"] == 3
    assert fhir.ids(fhir.get("/Organization", partof=ej["id"])) == [org["id"]]
    assert fhir.ids(fhir.get("/Organization", _id=org["id"], _include="*"), "include") == [ej["id"]]


# Searches ------------------------------------------------------------------------------------------------
def test_tokens_take_code_system_code_bar_code_and_system_bar(fhir):
    """advanced_common-search-params.md §3: `system|`, `code`, `system|code`; `|code` has no system."""
    rpps = fhir.pros["dr_lefevre"]["rpps"]
    assert fhir.pro_ids(fhir.get("/Practitioner", identifier=f"https://rpps.esante.gouv.fr|{rpps}")) == \
        ["dr_lefevre"]
    assert fhir.get("/Practitioner", identifier=f"http://rpps.fr|{rpps}")["total"] == 0       # V1's system
    assert fhir.get("/Practitioner", identifier=f"|{rpps}")["total"] == 0
    assert fhir.get("/Practitioner", identifier="https://rpps.esante.gouv.fr|")["total"] == 5
    assert fhir.get("/Organization", identifier="https://finess.esante.gouv.fr|")["total"] == 4
    assert fhir.get("/Practitioner", active="|true")["total"] == 5                             # no system
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"qualification-code": "60"})) == ["ide_roux"]
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"qualification-code": f"{SPECIALTY}|SM04"})) == ["dr_bernard"]
    assert fhir.get("/Practitioner", **{"qualification-code": f"{PROFESSION}|SM04"})["total"] == 0
    assert fhir.get("/Practitioner", **{"identifier-type": f"{ID_TYPE}|RPPS"})["total"] == 5


def test_strings_and_modifiers(fhir):
    """advanced_common-search-params.md §2 (case and accents ignored; :contains anywhere, :exact as written);
    the CapabilityStatement's `text` modifier on name / family / given."""
    assert fhir.pro_ids(fhir.get("/Practitioner", family="lef")) == ["dr_lefevre"]
    assert fhir.pro_ids(fhir.get("/Practitioner", given="claire")) == ["dr_bernard"]
    assert fhir.get("/Practitioner", **{"family:exact": "lefevre"})["total"] == 0
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"family:exact": "LEFEVRE"})) == ["dr_lefevre"]
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:contains": "rn"})) == ["dr_bernard", "dr_garnier"]
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:text": "paul"})) == ["dr_lefevre"]
    assert fhir.get("/Organization", **{"name:exact": "cabinet médical des terreaux"})["total"] == 0
    assert fhir.get("/Organization", **{"name:exact": "Cabinet médical des Terreaux"})["total"] == 1
    assert fhir.ids(fhir.get("/Organization", **{"address-postalcode": "75"})) == [fhir.org_id("chu")]
    assert fhir.ids(fhir.get("/Organization", **{"address-city": "LYON"})) == [fhir.org_id("cab_lyon")]
    assert fhir.ids(fhir.get("/Organization", **{"address-line:contains": "terreaux"})) == [fhir.org_id("cab_lyon")]
    assert fhir.ids(fhir.get("/Organization", address="bordeaux")) == [fhir.org_id("cab_bordeaux")]
    assert fhir.ids(fhir.get("/Organization", identifier="23982597990748")) == [fhir.org_id("cab_lyon")]


def test_and_or(fhir):
    """advanced_common-search-params.md §7: repeating is AND, commas are OR (`\\,` a comma in a value)."""
    r = fhir.get("/Organization?name:contains=maison,terreaux")
    assert sorted(fhir.ids(r)) == sorted([fhir.org_id("cab_bordeaux"), fhir.org_id("cab_lyon")])
    r = fhir.get("/Organization?name:contains=maison&name:contains=chartrons")
    assert fhir.ids(r) == [fhir.org_id("cab_bordeaux")]
    r = fhir.get("/Practitioner?qualification-code=SM26,SM04&family=b")
    assert fhir.pro_ids(r) == ["dr_bernard"]


def test_mailboxes_per_resource(fhir):
    """use-case_uc-bal-mss.md §1: `mailbox-mss:contains=%40` on Practitioner, PractitionerRole, Organization."""
    assert fhir.get("/Practitioner", **{"mailbox-mss:contains": "@"})["total"] == 5
    assert fhir.get("/PractitionerRole", **{"mailbox-mss:contains": "@medecin.mssante.fr"})["total"] == 3
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"mailbox-mss": "emma.roux@infirmier.mssante.fr"})) == \
        ["ide_roux"]
    assert fhir.get("/Organization", **{"mailbox-mss:contains": "@"})["total"] == 0


def test_last_updated_prefixes(fhir):
    """advanced_common-search-params.md §4: prefixes and precisions."""
    stamp = fhir.get("/Practitioner", _count="1")["entry"][0]["resource"]["meta"]["lastUpdated"]
    now = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    yesterday, tomorrow = (now - timedelta(days=1)).date(), (now + timedelta(days=1)).date()
    for value, total in [(f"gt{yesterday}", 5), (f"ge{now.date()}", 5), (f"lt{yesterday}", 0), (f"le{tomorrow}", 5),
                         (str(now.year), 5), (f"eq{tomorrow}", 0), (f"ne{tomorrow}", 5), (f"sa{yesterday}", 5),
                         (f"eb{yesterday}", 0), (f"eq{stamp}", 5), (f"gt{stamp}", 0)]:
        assert fhir.get("/Practitioner", _lastUpdated=value)["total"] == total, value
    assert fhir.get(f"/Practitioner?_lastUpdated=gt{yesterday}&_lastUpdated=lt{yesterday}")["total"] == 0


def test_includes_and_revincludes(fhir):
    """resources_practitioner-role.md §4.1 (`_include=*`), use-case_uc-call-type.md §3 (the table)."""
    bundle = fhir.get("/PractitionerRole", practitioner=fhir.practitioner_id("dr_garnier"), _include="*")
    assert sorted(r["resourceType"] for r in fhir.resources(bundle, "include")) == ["Organization", "Practitioner"]
    bundle = fhir.get("/Organization", **{"address-city": "lyon", "_revinclude": "PractitionerRole:organization"})
    assert fhir.role_pros(bundle, "include") == ["dr_bernard", "dr_lefevre"]
    bundle = fhir.get("/Practitioner", family="martin", _revinclude="PractitionerRole:practitioner")
    assert len(fhir.resources(bundle, "include", "PractitionerRole")) == 1
    assert fhir.get("/Organization", _revinclude="HealthcareService:organization")["total"] == 4


def test_device_and_healthcare_service_are_served_empty(fhir):
    """The world holds no EML nor activité de soins: the searches are valid and find nothing."""
    assert fhir.get("/Device", type="https://mos.esante.gouv.fr/NOS/TRE_R272-EquipementMaterielLourd/FHIR/"
                    "TRE-R272-EquipementMaterielLourd|05602")["total"] == 0
    assert fhir.get("/HealthcareService", _include="*", active="true")["total"] == 0
    assert fhir.get("/Device/002-4247117", status=404)["issue"][0]["code"] == "not-found"


def test_elements_subsets_with_the_subsetted_tag(fhir):
    """advanced_modifying-search-results.md §5."""
    bundle = fhir.get("/Practitioner", identifier=fhir.pros["dr_martin"]["rpps"], _elements="name")
    resource = bundle["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "identifier", "active", "name"}
    assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"


# Paging -------------------------------------------------------------------------------------------------------
def test_paging_follows_opaque_next_links_without_previous(fhir):
    """use-case_uc-call-type.md §1: `next` is `[base]/_page?id=...`, beside `self`; no `previous`."""
    page = fhir.get("/Practitioner", _count="2")
    assert page["total"] == 5 and len(page["entry"]) == 2
    seen, pages = fhir.pro_ids(page), 1
    while (url := next_link(page)):
        assert re.fullmatch(re.escape(fhir.base) + r"/_page\?id=[A-Za-z0-9_-]+", url)
        assert "previous" not in [link["relation"] for link in page["link"]]
        page = fhir.get(url)
        seen += fhir.pro_ids(page)
        pages += 1
    assert pages == 3 and sorted(seen) == ALL_PROS
    assert "total" not in fhir.get("/Practitioner", _total="none")
    empty = fhir.get("/Practitioner", _count="0")
    assert empty["total"] == 5 and "entry" not in empty
    assert len(fhir.get("/Practitioner", _count="50000")["entry"]) == 5          # served as at most 10000
    entries = fhir.running.client.journal(channel="annuaire")
    assert [e["operation"] for e in entries[:3]] == ["search:Practitioner"] * 3


def test_a_forged_or_foreign_page_id_is_gone(fhir):
    url = next_link(fhir.get("/Practitioner", _count="2"))
    token = url.split("=", 1)[1]
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert fhir.get(f"/_page?id={forged}", status=410)["issue"][0]["expression"] == ["id"]
    assert fhir.get("/_page", status=400)["issue"][0]["expression"] == ["id"]


# Errors, lenient handling, V1 -----------------------------------------------------------------------------------
def _issue(body: dict) -> dict:
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


@pytest.mark.parametrize("kind, params, named", [
    ("Practitioner", {"colour": "blue"}, "colour"),
    ("Practitioner", {"name:sounds-like": "x"}, "name:sounds-like"),
    ("Practitioner", {"mailbox-mss:text": "x"}, "mailbox-mss:text"),     # contains and exact only
    ("Practitioner", {"identifier:of-type": "x"}, "identifier:of-type"),  # announced, not yet served
    ("Practitioner", {"_count": "many"}, "_count"),
    ("Practitioner", {"_lastUpdated": "yesterday"}, "_lastUpdated"),
    ("Practitioner", {"active": "maybe"}, "active"),
    ("Practitioner", {"_total": "all"}, "_total"),
    ("Practitioner", {"_include": "PractitionerRole:practitioner"}, "_include"),
    ("Practitioner", {"_sort": "family"}, "_sort"),
    ("Practitioner", {"_offset": "10"}, "_offset"),
    ("Practitioner", {"identifier": ""}, "identifier"),
    ("PractitionerRole", {"specialty": "SM26"}, "specialty"),            # V1's parameter, gone in V2
    ("PractitionerRole", {"organization.name": "x"}, "organization.name"),  # no chains declared
    ("PractitionerRole", {"_include": "PractitionerRole:practitioner:iterate"}, "_include"),
    ("Organization", {"_revinclude": "Organization:partof"}, "_revinclude"),  # declared as _include only
    ("Practitioner", {"family:given": "x"}, "family:given"),   # only name's :family / :given are answered
    ("PractitionerRole", {"name:family": "x"}, "name:family"),  # V2's PractitionerRole has no name
])
def test_bad_parameters_give_400_naming_them(fhir, kind, params, named):
    issue = _issue(fhir.get(f"/{kind}", status=400, **params))
    assert named in issue["diagnostics"] and issue["expression"] == [named]


def test_revinclude_partof_cites_the_capability_statement(fhir):
    """advanced_modifying-search-results.md §4 shows `Organization?_revinclude=Organization:partof`, the IG's
    CapabilityStatement (ig-fsh/AsServerDPCapabilityStatement.fsh) declares Organization:partof as an _include
    only, and no report shows the real server answering it: 400, saying so; the _include answers what the
    example's comment describes (the EG with the EJ they belong to)."""
    issue = _issue(fhir.get("/Organization", status=400, _revinclude="Organization:partof"))
    assert "CapabilityStatement" in issue["diagnostics"]
    assert "Organization:partof is declared as _include there" in issue["diagnostics"]
    bundle = fhir.get("/Organization", _include="Organization:partof", type="GEOGRAPHICAL-ENTITY")
    [ej] = fhir.resources(bundle, "include")
    assert ej["name"] == "CHU de Test"
    # and the EG of an EJ, with the declared `partof` parameter
    egs = fhir.resources(fhir.get("/Organization", partof=f"Organization/{ej['id']}"))
    assert [eg["partOf"]["reference"] for eg in egs] == [f"Organization/{ej['id']}"]


def test_name_family_and_given_are_answered_as_the_real_server_does(fhir):
    """resources_practitioner.md §4.3 searches `name:family=MASI&name:given=BRUNO`, modifiers the IG's
    CapabilityStatement does not declare on `name` (only contains, exact, text). The real V2 answers it and
    ignores the modifier: any part of the name, from its start, satisfies it (ansforge/annuaire-sante-fhir-
    documentation issue #398: a given name, or BUI for BUISSON, satisfies name:family), as HAPI FHIR's
    StringParam treats a qualifier it does not know. The bench does the same and warns on the journal entry."""
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:family": "LEFEVRE", "name:given": "PAUL"})) == \
        ["dr_lefevre"]
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:family": "paul"})) == ["dr_lefevre"]   # a given name
    assert fhir.pro_ids(fhir.get("/Practitioner", **{"name:given": "lef"})) == ["dr_lefevre"]     # a family start
    assert fhir.get("/Practitioner", family="paul")["total"] == 0           # the declared family= stays family
    fhir.get("/Practitioner", family="lefevre")
    entries = fhir.running.client.journal(channel="annuaire")
    assert [[(f["rule"], f["severity"]) for f in e.get("findings") or []] for e in entries] == [
        [("ANNUAIRE/CAPABILITY", "warning")] * 2, [("ANNUAIRE/CAPABILITY", "warning")],
        [("ANNUAIRE/CAPABILITY", "warning")], [], []]
    assert "name:family" in entries[0]["findings"][0]["message"] and \
        "CapabilityStatement" in entries[0]["findings"][0]["message"]
    [found] = [f for f in fhir.running.client.findings() if f["rule"] == "ANNUAIRE/CAPABILITY"
               and f["message"].startswith("Practitioner?name:family=")]
    assert found["entries"] == [entries[0]["seq"], entries[1]["seq"]]


def test_lenient_handling_ignores_unknown_parameters(fhir):
    """FHIR R4 http.html#search: `Prefer: handling=lenient`; malformed known ones are still errors."""
    lenient = {**KEY, "Prefer": "handling=lenient"}
    bundle = fhir.get("/Practitioner", headers=lenient, colour="blue", family="garnier", **{"family:soundex": "x"})
    assert fhir.pro_ids(bundle) == ["dr_garnier"]
    assert next(link["url"] for link in bundle["link"] if link["relation"] == "self").endswith(
        "/Practitioner?family=garnier")
    fhir.get("/Practitioner", status=400, headers=lenient, active="maybe")
    page = fhir.get("/Practitioner", headers=lenient, colour="blue", _count="4")
    assert len(fhir.get(next_link(page))["entry"]) == 1       # the continuation keeps the handling


def test_v1_is_gone(fhir):
    """changelog.md: V1 decommissioned in July 2026; getting-started_api-basics.md: 410 Gone."""
    for method, path in [("GET", "/fhir/v1/Practitioner?identifier=1"), ("GET", "/fhir/v1/metadata"),
                         ("POST", "/fhir/v1/Practitioner/_search")]:
        r = requests.request(method, fhir.running.url + path, headers=KEY, timeout=10)
        assert r.status_code == 410
        issue = _issue(r.json())
        assert "/fhir/v2" in issue["diagnostics"] and "identifiers" in issue["diagnostics"]
    entries = fhir.running.client.journal(channel="annuaire")
    assert {(e["operation"], e["verdict"], e["code"]) for e in entries} == {("v1", "refused", "API_VERSION_GONE")}


def test_post_search(fhir):
    """getting-started_api-basics.md: POST [type]/_search."""
    r = requests.post(f"{fhir.base}/Practitioner/_search", data={"family": "roux"}, headers=KEY, timeout=10)
    assert r.status_code == 200 and r.json()["total"] == 1


def test_api_key(fhir):
    assert _issue(fhir.get("/Practitioner", status=401, headers=None))["code"] == "login"
    assert _issue(fhir.get("/metadata", status=401, headers={"ESANTE-API-KEY": "wrong"}))["code"] == "login"
    entries = fhir.running.client.journal(channel="annuaire")
    assert [(e["operation"], e["verdict"], e["code"]) for e in entries] == [
        ("search:Practitioner", "refused", "UNAUTHORIZED"), ("read:CapabilityStatement", "refused", "UNAUTHORIZED")]


def test_no_setting_brings_v1_back(mockbench_factory):
    """changelog.md: V1 retired; the corpus documents it only by its differences from V2
    (getting-started_nouveautes.md): `[doors.annuaire] v1` is refused at start, saying why; so is a setting the
    door does not know (it would otherwise be silently ignored)."""
    with pytest.raises(BenchError, match=r"\[doors.annuaire\] v1: the bench serves no API V1.*410 Gone"):
        mockbench_factory(doors={"annuaire": {"v1": True}})
    with pytest.raises(BenchError, match=r"\[doors.annuaire\] unknown setting version; settings: api_keys"):
        mockbench_factory(doors={"annuaire": {"version": "v1"}})
    with pytest.raises(BenchError, match="api_keys must be a list of strings"):
        mockbench_factory(doors={"annuaire": {"api_keys": "k1"}})


def test_configured_keys(mockbench_factory):
    other = mockbench_factory(doors={"annuaire": {"api_keys": ["k1", "k2"]}})
    url = other.url + "/fhir/v2/Practitioner"
    assert requests.get(url, headers=KEY, timeout=10).status_code == 401
    assert requests.get(url, headers={"ESANTE-API-KEY": "k2"}, timeout=10).json()["total"] == 0


def test_read_by_id_and_404(fhir):
    pid = fhir.practitioner_id("dr_martin")
    assert fhir.get(f"/Practitioner/{pid}")["identifier"][0]["value"] == fhir.pros["dr_martin"]["idnps"]
    assert fhir.get(f"/Practitioner/{fhir.pros['dr_martin']['idnps']}", status=404)   # not the national id
    role = fhir.get("/PractitionerRole", practitioner=pid)["entry"][0]["resource"]
    assert fhir.get(f"/PractitionerRole/{role['id']}") == role
    assert _issue(fhir.get("/Patient", status=404))["code"] == "not-supported"
    assert _issue(fhir.get("/Practitioner/a/b", status=404))["code"] == "not-supported"
    r = requests.put(f"{fhir.base}/Practitioner/{pid}", json={}, headers=KEY, timeout=10)
    assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome"


def test_journal_entries(fhir):
    fhir.get("/Practitioner", **{"qualification-code": "SM26"})
    fhir.get(f"/Organization/{fhir.org_id('chu')}")
    fhir.get("/Practitioner", status=400, colour="blue")
    fhir.get("/metadata")
    entries = fhir.running.client.journal(channel="annuaire")
    assert [(e["operation"], e["verdict"], e["code"], e["actor"]) for e in entries] == [
        ("search:Practitioner", "accepted", None, "mockbench"),
        ("search:Organization", "accepted", None, "mockbench"),     # org_id() looks the id up
        ("read:Organization", "accepted", None, "mockbench"),
        ("search:Practitioner", "refused", "PARAMETER_UNKNOWN", "mockbench"),
        ("read:CapabilityStatement", "accepted", None, "mockbench"),
    ]
    assert entries[0]["raw"] == "/fhir/v2/Practitioner?qualification-code=SM26"


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
    assert org["telecom"][0]["extension"][1]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "ORG"


@pytest.mark.parametrize("query", ["name=%00", "identifier=%7C%7C%7C", "name=%F0%9F%A9%BA", "_count=" + "9" * 400,
                                   "_lastUpdated=ge9999-99-99", "role=a%5C,b", "_elements=" + "a," * 5000,
                                   "organization.organization.name=x", "name:exact:contains=x",
                                   "identifier=" + ",".join(["x"] * 500)])
def test_hostile_queries_never_fail_the_bench(fhir, query):
    r = requests.get(f"{fhir.base}/PractitionerRole?{query}", headers=KEY, timeout=10)
    assert r.status_code in (200, 400) and r.json()["resourceType"] in ("Bundle", "OperationOutcome")
    r = requests.get(f"{fhir.base}/_page?id={'A' * 20000}", headers=KEY, timeout=10)
    assert r.status_code == 410
