"""CIBA in poll mode, with outcomes scripted through the control API, and the catalogue's OIDC scenarios."""

import jsonschema
import pytest
import requests
from oidc_helpers import ETAB, PSC, id_claims, login

from mockbench.control.openapi import SCHEMAS

AUTH = ("mockbench", "mockbench-secret")
CIBA_GRANT = "urn:openid:params:grant-type:ciba"


def ciba(issuer: str, hint: str, **extra) -> requests.Response:
    return requests.post(issuer + "/protocol/openid-connect/ext/ciba/auth", auth=AUTH, timeout=10, data={
        "scope": "openid scope_all", "acr_values": "eidas1", "login_hint": hint, "binding_message": "42",
        "channel": "MOBILE", **extra})


def poll(issuer: str, auth_req_id: str) -> requests.Response:
    return requests.post(issuer + "/protocol/openid-connect/token", auth=AUTH, timeout=10,
                         data={"grant_type": CIBA_GRANT, "auth_req_id": auth_req_id})


def script(bench, key: str, body: dict) -> dict:
    result = bench.client.call("PUT", f"/oidc/ciba/{key}", body)
    jsonschema.validate(body, SCHEMAS["CibaScript"])
    jsonschema.validate(result, SCHEMAS["CibaScripted"])
    return result


def test_ciba_pending_slow_down_then_tokens(oidc_world):
    bench, psc = oidc_world["bench"], oidc_world["psc"]
    idnps = oidc_world["pros"]["dr_martin"]["idnps"]
    assert script(bench, idnps, {"outcome": "approve", "after_polls": 2})["professional"] == "dr_martin"
    started = ciba(psc, idnps)
    assert started.status_code == 200
    body = started.json()
    assert body["interval"] == 5 and body["expires_in"] == 120
    req_id = body["auth_req_id"]
    assert poll(psc, req_id).json()["error"] == "authorization_pending"
    assert poll(psc, req_id).json()["error"] == "slow_down"            # polled again at once
    bench.client.advance("10s")
    assert poll(psc, req_id).json()["error"] == "authorization_pending"
    bench.client.advance("10s")
    tokens = poll(psc, req_id)
    assert tokens.status_code == 200, tokens.text
    meta = requests.get(psc + "/.well-known/openid-configuration", timeout=10).json()
    assert tokens.json()["id_token"] and tokens.json()["refresh_token"]
    userinfo = requests.get(meta["userinfo_endpoint"], timeout=10,
                            headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert userinfo.json()["SubjectNameID"] == idnps
    again = poll(psc, req_id)
    assert again.json()["error"] == "invalid_grant"
    ops = [(e["operation"], e["code"]) for e in bench.client.journal(channel="oidc")]
    assert ops[:5] == [("ciba", None), ("ciba", "authorization_pending"), ("ciba", "slow_down"),
                       ("ciba", "authorization_pending"), ("token", None)]


def test_ciba_deny_expire_and_unknown_user(oidc_world):
    bench, psc = oidc_world["bench"], oidc_world["psc"]
    script(bench, "dr_martin", {"outcome": "deny", "after_polls": 0})
    denied = poll(psc, ciba(psc, oidc_world["pros"]["dr_martin"]["idnps"]).json()["auth_req_id"])
    assert denied.status_code == 403 and denied.json()["error"] == "access_denied"
    entry = bench.client.journal(channel="oidc", operation="token")[-1]
    assert (entry["verdict"], entry["code"]) == ("refused", "access_denied")

    script(bench, "inf_durand", {"outcome": "expire", "expires_in": "30s"})
    started = ciba(psc, "inf_durand").json()
    assert started["expires_in"] == 30
    assert poll(psc, started["auth_req_id"]).json()["error"] == "authorization_pending"
    bench.client.advance("31s")
    assert poll(psc, started["auth_req_id"]).json()["error"] == "expired_token"

    # Keycloak's answer for a login_hint naming nobody (BackchannelAuthenticationEndpoint.resolveUser)
    unknown = ciba(psc, "81234567890")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"
    assert unknown.json()["error_description"].startswith("invalid user")
    assert bench.client.journal(channel="oidc", operation="ciba")[-1]["code"] == "invalid_request"


def test_ciba_script_refusals(oidc_world):

    bench = oidc_world["bench"]
    for body, status in (({"outcome": "maybe"}, 400), ({"after_polls": -1}, 400), ({"colour": 1}, 400)):
        response = requests.put(bench.url + "/_bench/oidc/ciba/dr_martin", json=body, timeout=10)
        assert response.status_code == status and response.json()["error"]
    assert requests.put(bench.url + "/_bench/oidc/ciba/nobody", json={}, timeout=10).status_code == 404


def play_psc_01_ciba(mockbench, *, read_userinfo: bool) -> list[dict]:
    psc = mockbench.url + PSC
    idnps = next(p["idnps"] for p in mockbench.client.call("GET", "/professionals"))
    session, meta, token = login(psc, idnps)
    assert id_claims(meta, token)["acr"] == "eidas1"
    if read_userinfo:
        assert session.get(meta["userinfo_endpoint"], timeout=10).json()["SubjectNameID"] == idnps
    req_id = ciba(psc, idnps).json()["auth_req_id"]
    assert poll(psc, req_id).json()["error"] == "authorization_pending"
    mockbench.client.advance("5s")
    assert poll(psc, req_id).status_code == 200
    return mockbench.client.finish()


@pytest.mark.scenario_play("psc-01-ciba", "correct")
@pytest.mark.mockbench_scenario("psc-01-ciba")
def test_scenario_psc_01_ciba(mockbench):
    steps = play_psc_01_ciba(mockbench, read_userinfo=True)
    assert [(s["id"], s["status"]) for s in steps] == [
        ("code_autorisation", "passed"), ("userinfo", "passed"), ("ciba_demande", "passed"),
        ("ciba_jetons", "passed")], steps


@pytest.mark.scenario_play("psc-01-ciba", "mistake")
@pytest.mark.mockbench_scenario("psc-01-ciba")
def test_scenario_psc_01_ciba_identifying_by_the_id_token_alone_fails(mockbench):
    """The DPI trusts the ID token's sub and never reads userinfo (SubjectNameID): the userinfo step fails,
    and the steps after it are never decided."""
    steps = play_psc_01_ciba(mockbench, read_userinfo=False)
    assert [(s["id"], s["status"]) for s in steps] == [
        ("code_autorisation", "passed"), ("userinfo", "failed"), ("ciba_demande", "failed"),
        ("ciba_jetons", "failed")], steps
    assert steps[1]["reason"].startswith("not observed: expected userinfo with actor dr_martin; nearest: ")


def play_ssi_iam_80(mockbench, issuers: tuple[str, ...]) -> list[dict]:
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    for issuer, who, scope in ((PSC, "dr_martin", "openid scope_all"), (ETAB, "inf_durand", "openid profile")):
        if issuer not in issuers:
            continue
        session, meta, token = login(mockbench.url + issuer, pros[who]["idnps"], scope=scope)
        info = session.get(meta["userinfo_endpoint"], timeout=10).json()
        # PSC names the professional in SubjectNameID (its sub is opaque); the establishment's provider in sub
        assert info["SubjectNameID" if issuer == PSC else "sub"] == pros[who]["idnps"]
    return mockbench.client.finish()


@pytest.mark.scenario_play("ssi-iam-80", "correct")
@pytest.mark.mockbench_scenario("ssi-iam-80")
def test_scenario_ssi_iam_80(mockbench):
    steps = play_ssi_iam_80(mockbench, (PSC, ETAB))
    assert [s["status"] for s in steps] == ["passed"] * 4, steps   # the four steps, not just none failing


@pytest.mark.scenario_play("ssi-iam-80", "mistake")
@pytest.mark.mockbench_scenario("ssi-iam-80")
def test_scenario_ssi_iam_80_a_single_provider_fails(mockbench):
    """The DPI has only Pro Santé Connect configured: the establishment's provider is never used."""
    steps = play_ssi_iam_80(mockbench, (PSC,))
    assert [s["status"] for s in steps] == ["passed", "passed", "failed", "failed"], steps
    assert steps[2]["reason"] == "not observed: expected token with actor inf_durand; nothing close was received"


def test_ciba_outcomes_from_the_scenario(mockbench):
    from mockbench.scenarios.docs import EXAMPLES

    mockbench.client.load_yaml(dict(EXAMPLES)["Pro Santé Connect CIBA"])
    psc = mockbench.url + PSC
    denied = poll(psc, ciba(psc, "dr_martin").json()["auth_req_id"])
    assert denied.json()["error"] == "access_denied"
    started = ciba(psc, "dr_petit").json()
    assert started["expires_in"] == 120
    for _ in range(2):
        assert poll(psc, started["auth_req_id"]).json()["error"] == "authorization_pending"
        mockbench.client.advance("5s")
    assert poll(psc, started["auth_req_id"]).status_code == 200
    assert [s["status"] for s in mockbench.client.steps()] == ["passed", "passed"]
