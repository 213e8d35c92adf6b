"""Helpers for the Annuaire door's tests: a GET that checks every answer parses as FHIR R4 (fhir.resources'
R4B models), and the world's people as the door names them."""

import requests
from fhir.resources.R4B import get_fhir_model_class

KEY = {"ESANTE-API-KEY": "mockbench"}


class Fhir:
    def __init__(self, running) -> None:
        self.running = running
        self.base = running.url + "/fhir/v1"
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

    def pro_ids(self, bundle: dict, mode: str = "match") -> list[str]:
        """The scenario ids of the professionals in a Practitioner or PractitionerRole bundle."""
        by_idnps = {p["idnps"]: p["id"] for p in self.pros.values()}
        return sorted(by_idnps[i.split("-")[0]] for i in self.ids(bundle, mode))

    def role(self, pro: str) -> str:
        p = self.pros[pro]
        return f"{p['idnps']}-{self.structures[p['structure']]['idnst']}"

    def org(self, structure: str) -> str:
        return self.structures[structure]["idnst"]


def validate(body: dict) -> None:
    """Parse with the FHIR models: a Bundle's entries are parsed as their own resource types."""
    model = get_fhir_model_class(body["resourceType"])
    model.model_validate(body)
