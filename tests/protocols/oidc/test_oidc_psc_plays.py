"""Catalogue scenarios psc-02-session and psc-08-ciba-refus played by a scripted DPI over real sockets:
Authlib's OAuth2Session for the authorization code flow and the refresh (RFC 6749 §6), requests for
userinfo (RFC 6750), the RP-initiated logout and CIBA in poll mode (OpenID CIBA Core 1.0 §7, §10, §11); the
virtual clock moved through the control API."""

import pytest
import requests
from oidc_helpers import PSC, login

AUTH = ("mockbench", "mockbench-secret")
CIBA_GRANT = "urn:openid:params:grant-type:ciba"


def bearer(meta: dict, access_token: str) -> requests.Response:
    return requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def play_session(mockbench, *, refresh: bool) -> dict:
    c = mockbench.client
    c.load("psc-02-session")
    idnps = c.call("GET", "/professionals")[0]["idnps"]
    psc = mockbench.url + PSC
    session, meta, token = login(psc, idnps)
    assert bearer(meta, token["access_token"]).json()["SubjectNameID"] == idnps
    c.advance("121s")                                 # the access token lives 120 s
    expired = bearer(meta, token["access_token"])
    assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    if refresh:
        token = session.refresh_token(meta["token_endpoint"])
    else:                                             # the mistake: the professional logs in again
        session, meta, token = login(psc, idnps)
    assert bearer(meta, token["access_token"]).status_code == 200
    out = requests.get(meta["end_session_endpoint"], params={"id_token_hint": token["id_token"]}, timeout=10)
    assert out.status_code == 200
    # The session is over: its refresh token no longer works (the logout revoked it).
    after = requests.post(meta["token_endpoint"], auth=AUTH, timeout=10,
                          data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    return {s["id"]: s for s in c.finish()}


@pytest.mark.scenario_play("psc-02-session", "correct")
def test_psc_02_session_refreshed_then_logged_out(mockbench):
    steps = play_session(mockbench, refresh=True)
    assert all(s["status"] == "passed" for s in steps.values()), steps


@pytest.mark.scenario_play("psc-02-session", "mistake")
def test_psc_02_session_a_new_login_instead_of_a_refresh(mockbench):
    """The mistake: at expiry the DPI sends the professional through a new login instead of refreshing."""
    steps = play_session(mockbench, refresh=False)
    assert [k for k, s in steps.items() if s["status"] == "failed"] == [
        "rafraichissement", "userinfo_nouveau_jeton", "deconnexion"]
    assert steps["rafraichissement"]["reason_code"] == "NOT_OBSERVED"
    assert steps["rafraichissement"]["reason"].startswith("not observed: expected refresh with actor dr_martin")


# --- psc-08-ciba-refus ---------------------------------------------------------------------------------

def ciba(psc: str, idnps: str) -> dict:
    answer = requests.post(psc + "/protocol/openid-connect/ext/ciba/auth", auth=AUTH, timeout=10, data={
        "scope": "openid scope_all", "acr_values": "eidas1", "login_hint": idnps, "binding_message": "42",
        "channel": "MOBILE"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def poll_until_answered(mockbench, psc: str, started: dict, *, give_up_when_pending: bool = False) -> dict:
    """Poll the token endpoint at the interval CIBA asks for until an answer other than authorization_pending;
    the waits pass on the virtual clock."""
    for _ in range(100):
        answer = requests.post(psc + "/protocol/openid-connect/token", auth=AUTH, timeout=10,
                               data={"grant_type": CIBA_GRANT, "auth_req_id": started["auth_req_id"]})
        body = answer.json()
        if body.get("error") != "authorization_pending" or give_up_when_pending:
            return body
        mockbench.client.advance(f"{started['interval']}s")
    raise AssertionError("never answered")


def play_ciba(mockbench, *, give_up_when_pending: bool = False) -> dict:
    c = mockbench.client
    c.load("psc-08-ciba-refus")
    pros = {p["id"]: p["idnps"] for p in c.call("GET", "/professionals")}
    psc = mockbench.url + PSC
    denied = poll_until_answered(mockbench, psc, ciba(psc, pros["dr_martin"]), give_up_when_pending=give_up_when_pending)
    started = ciba(psc, pros["dr_petit"])
    assert started["expires_in"] == 60
    expired = poll_until_answered(mockbench, psc, started, give_up_when_pending=give_up_when_pending)
    if not give_up_when_pending:
        assert denied["error"] == "access_denied" and expired["error"] == "expired_token"
    ciba(psc, pros["dr_petit"])                       # the DPI offers a new request
    return {s["id"]: s for s in c.finish()}


@pytest.mark.scenario_play("psc-08-ciba-refus", "correct")
def test_psc_08_ciba_denied_then_expired(mockbench):
    steps = play_ciba(mockbench)
    assert all(s["status"] == "passed" for s in steps.values()), steps


@pytest.mark.scenario_play("psc-08-ciba-refus", "mistake")
def test_psc_08_ciba_a_dpi_that_takes_pending_for_a_refusal(mockbench):
    """The mistake: the DPI stops at the first authorization_pending, as if the professional had refused: it
    never learns the real answers."""
    steps = play_ciba(mockbench, give_up_when_pending=True)
    assert steps["demande_martin"]["status"] == "passed"
    assert steps["refus_martin"]["status"] == "failed" and steps["refus_martin"]["reason_code"] == "NOT_OBSERVED"
    assert "expected token with actor dr_martin" in steps["refus_martin"]["reason"]
