"""The served CapabilityStatement against the IG's (corpus specs/annuaire-v2/ig-fsh/
AsServerDPCapabilityStatement.fsh, read with the FSH reader of fsh.py): the same resources, profiles,
interactions, _include / _revinclude values and search parameters (name, type, definition, documentation),
parameter by parameter; and each declared parameter is accepted by the door, each other one refused."""

from urllib.parse import urlencode

import pytest
from fsh import read_instance


@pytest.fixture
def ig_capability(corpus) -> dict:
    return read_instance(corpus / "specs" / "annuaire-v2" / "ig-fsh" / "AsServerDPCapabilityStatement.fsh")


def _by_type(cs: dict) -> dict[str, dict]:
    return {r["type"]: r for r in cs["rest"][0]["resource"]}


def test_the_served_capability_statement_is_the_igs(fhir, ig_capability):
    served = fhir.get("/metadata")
    assert served["fhirVersion"] == ig_capability["fhirVersion"] == "4.0.1"
    assert served["format"] == ig_capability["format"]
    assert served["rest"][0]["mode"] == "server"
    ig, ours = _by_type(ig_capability), _by_type(served)
    assert list(ours) == list(ig)
    for kind, expected in ig.items():
        got = ours[kind]
        assert got["profile"] == expected["profile"], kind
        assert sorted(i["code"] for i in got["interaction"]) == sorted(i["code"] for i in expected["interaction"])
        for key in ("searchInclude", "searchRevInclude"):
            want = expected.get(key, [])
            assert got.get(key, []) == ([want] if isinstance(want, str) else want), (kind, key)
        assert [p["name"] for p in got["searchParam"]] == [p["name"] for p in expected["searchParam"]], kind
        for mine, theirs in zip(got["searchParam"], expected["searchParam"], strict=True):
            assert mine == {k: theirs[k] for k in ("name", "type", "definition", "documentation") if k in theirs}, \
                (kind, theirs["name"])


def test_every_declared_parameter_is_accepted_and_nothing_else(fhir, ig_capability):
    sample = {"date": "ge2000-01-01", "reference": "x", "token": "true", "string": "a", "uri": "http://x"}
    for kind, resource in _by_type(ig_capability).items():
        for p in resource["searchParam"]:
            fhir.get(f"/{kind}?{urlencode({p['name']: sample[p['type']]})}")   # Device has a `status`
        for value in resource.get("searchInclude", []):
            fhir.get(f"/{kind}", _include=value)
        revs = resource.get("searchRevInclude", [])
        for value in [revs] if isinstance(revs, str) else revs:
            fhir.get(f"/{kind}", _revinclude=value)
        declared = {p["name"] for p in resource["searchParam"]}
        for other in {"_id", "family", "role", "partof", "organization", "specialty", "_has", "_text"} - declared:
            body = fhir.get(f"/{kind}", status=400, **{other: "x"})
            assert body["issue"][0]["expression"] == [other]
        if not resource.get("searchInclude"):
            fhir.get(f"/{kind}", status=400, _include="*")
