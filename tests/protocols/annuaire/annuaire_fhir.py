"""Helpers for the Annuaire door's tests: a GET that checks every answer parses as FHIR R4 (fhir.resources'
R4B models: fhir.resources >= 7 holds R4-compatible models only as R4B, its root package being R5), and the
world's people as the door names them (opaque V2 ids, found back through their national identifiers)."""

import requests
from fhir.resources.R4B import get_fhir_model_class

KEY = {"ESANTE-API-KEY": "mockbench"}
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
IDNST = "urn:oid:1.2.250.1.71.4.2.2"


class Fhir:
    def __init__(self, running) -> None:
        self.running = running
        self.base = running.url + "/fhir/v2"
        pros = running.client.call("GET", "/professionals")
        self.pros = {p["id"]: p for p in pros}
        self.structures = {s["id"]: s for s in running.client.call("GET", "/structures")}

    def get(self, path: str, status: int = 200, headers: dict | None = KEY, **params) -> dict:
        url = path if path.startswith("http") else self.base + path
        r = requests.get(url, params=params or None, headers=headers, timeout=10)
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"].startswith("application/fhir+json")
        body = r.json()
        validate(body)
        return body

    def ids(self, bundle: dict, mode: str = "match") -> list[str]:
        return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]

    def resources(self, bundle: dict, mode: str = "match", kind: str | None = None) -> list[dict]:
        return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode
                and (kind is None or e["resource"]["resourceType"] == kind)]

    def pro_ids(self, bundle: dict, mode: str = "match") -> list[str]:
        """The scenario ids of the professionals of a Practitioner bundle (by their IDNPS)."""
        by_idnps = {p["idnps"]: p["id"] for p in self.pros.values()}
        return sorted(by_idnps[_value(r, IDNPS)] for r in self.resources(bundle, mode, "Practitioner"))

    def practitioner_id(self, pro: str) -> str:
        bundle = self.get("/Practitioner", identifier=f"{IDNPS}|{self.pros[pro]['idnps']}")
        return bundle["entry"][0]["resource"]["id"]

    def org_id(self, structure: str) -> str:
        bundle = self.get("/Organization", identifier=f"{IDNST}|{self.structures[structure]['idnst']}")
        return bundle["entry"][0]["resource"]["id"]

    def role_pros(self, bundle: dict, mode: str = "match") -> list[str]:
        """The scenario ids of the professionals of the PractitionerRoles of a bundle."""
        by_id = {self.practitioner_id(p): p for p in self.pros}
        return sorted(by_id[r["practitioner"]["reference"].split("/")[1]]
                      for r in self.resources(bundle, mode, "PractitionerRole"))


def _value(resource: dict, system: str) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == system)


def next_link(bundle: dict) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def validate(body: dict) -> None:
    """Parse with the FHIR models: a Bundle's entries are parsed as their own resource types."""
    model = get_fhir_model_class(body["resourceType"])
    model.model_validate(body)
