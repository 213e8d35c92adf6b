"""The OIDC door played by a real client library (Authlib): authorization code with PKCE, ID token checked
against the JWKS, userinfo, refresh, introspection, revocation, logout, on both issuers."""

import base64
import json
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
from oidc_helpers import discover, id_claims, login

from mockbench.control.openapi import SCHEMAS


def test_psc_discovery_both_paths_and_keys(oidc_world):
    wallet, standard = discover(oidc_world["psc"], wallet=True), discover(oidc_world["psc"])
    assert wallet == standard
    assert wallet["issuer"] == oidc_world["psc"]
    # specs/psc/mock_discovery_response.json: the authorization endpoint is on the wallet host, not the issuer
    assert wallet["authorization_endpoint"] == oidc_world["bench"].url + "/oidc/psc-wallet/auth"
    assert not wallet["authorization_endpoint"].startswith(wallet["issuer"])
    assert wallet["userinfo_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert wallet["token_endpoint"] == oidc_world["psc"] + "/protocol/openid-connect/token"
    assert wallet["backchannel_authentication_endpoint"].endswith("/protocol/openid-connect/ext/ciba/auth")
    assert wallet["acr_values_supported"] == ["eidas1"]
    assert {"S256", "plain"} <= set(wallet["code_challenge_methods_supported"])
    keys = requests.get(wallet["jwks_uri"], timeout=10).json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    assert all("d" not in k for k in keys)
    etab = discover(oidc_world["etab"])
    assert etab["issuer"] == oidc_world["etab"] and "acr_values_supported" not in etab


def test_issuer_never_from_host_header(oidc_world):
    meta = requests.get(oidc_world["etab"] + "/.well-known/openid-configuration",
                        headers={"Host": "evil.example"}, timeout=10).json()
    assert meta["issuer"] == oidc_world["etab"]


def test_psc_code_flow_with_authlib(oidc_world):
    martin = oidc_world["pros"]["dr_martin"]
    session, meta, token = login(oidc_world["psc"], martin["idnps"])
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    claims = id_claims(meta, token)
    assert claims["acr"] == "eidas1" and claims["aud"] == "mockbench"
    # specs/psc/sandbox_userinfo_2023-05-12.json: sub is opaque, the national id is SubjectNameID
    assert claims["sub"] != martin["idnps"] and claims["SubjectNameID"] == martin["idnps"]
    info = session.get(meta["userinfo_endpoint"], timeout=10).json()
    assert info["sub"] == claims["sub"]
    assert info["SubjectNameID"] == martin["idnps"] == info["preferred_username"]
    assert (info["given_name"], info["family_name"]) == ("Jeanne", "MARTIN")
    assert info["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"]
    assert info["SubjectOrganization"] == "CHU de Test"
    activity = info["SubjectRefPro"]["exercices"][0]["activities"][0]
    assert activity["raisonSocialeSite"] == "CHU de Test" and activity["numeroFinessSite"]
    assert activity["codePostal"] == "75002"
    assert info["SubjectRefPro"]["exercices"][0]["codeSavoirFaire"] == "SM26"
    assert info["Secteur_Activite"].endswith("^1.2.250.1.71.4.2.4")
    assert info["otherIds"][0]["identifiant"] == martin["idnps"]

    refreshed = session.refresh_token(meta["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]          # Keycloak answers a new one
    assert session.get(meta["userinfo_endpoint"], timeout=10).status_code == 200

    auth = ("mockbench", "mockbench-secret")
    seen = requests.post(meta["introspection_endpoint"], data={"token": refreshed["access_token"]}, auth=auth,
                         timeout=10).json()
    assert seen["active"] and seen["sub"] == claims["sub"] and seen["iss"] == meta["issuer"]
    assert seen["SubjectNameID"] == martin["idnps"]
    assert requests.post(meta["revocation_endpoint"], data={"token": refreshed["access_token"]}, auth=auth,
                         timeout=10).status_code == 200
    assert requests.post(meta["introspection_endpoint"], data={"token": refreshed["access_token"]}, auth=auth,
                         timeout=10).json() == {"active": False}

    out = requests.get(meta["end_session_endpoint"], params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:53117/logout",
        "state": "bye"}, allow_redirects=False, timeout=10)
    assert out.status_code == 302
    assert parse_qs(urlsplit(out.headers["Location"]).query) == {"state": ["bye"]}
    again = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token",
                                                        "refresh_token": refreshed["refresh_token"]},
                          auth=auth, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    ops = [(e["operation"], e["verdict"]) for e in oidc_world["bench"].client.journal(channel="oidc")]
    assert ops[:4] == [("authorize", "accepted"), ("token", "accepted"), ("userinfo", "accepted"),
                       ("refresh", "accepted")]
    assert ("introspect", "accepted") in ops and ("revoke", "accepted") in ops
    assert ("logout", "accepted") in ops and ops[-1] == ("refresh", "refused")


def test_etab_code_flow_plain_pkce_and_client_secret_post(oidc_world):
    session, meta, token = login(oidc_world["etab"], "inf_durand", scope="openid profile email",
                                 method="plain", auth="client_secret_post")
    claims = id_claims(meta, token)
    assert "acr" not in claims and claims["iss"] == oidc_world["etab"]
    info = session.get(meta["userinfo_endpoint"], timeout=10).json()
    assert info["preferred_username"] == "inf_durand" and info["organization"] == "CHU de Test"
    # a PSC token is not an establishment token
    _, psc_meta, psc_token = login(oidc_world["psc"], "dr_martin")
    cross = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {psc_token['access_token']}"},
                         timeout=10)
    assert cross.status_code == 401 and "invalid_token" in cross.headers["WWW-Authenticate"]


def test_login_page_lists_professionals_and_logs_in(oidc_world):
    meta = discover(oidc_world["psc"])
    params = {"client_id": "mockbench", "response_type": "code", "scope": "openid scope_all",
              "redirect_uri": "http://localhost:8000/callback", "state": "s1", "nonce": "n1"}
    page = requests.get(meta["authorization_endpoint"], params=params, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "MARTIN" in page.text and "DURAND" in page.text and "Se connecter" in page.text
    request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
    login_url = page.text.split('form method="post" action="')[1].split('"')[0]
    assert login_url == meta["authorization_endpoint"] + "/login"          # on the wallet base too
    wrong = requests.post(login_url, data={"request_id": request_id, "identifier": "nobody"},
                          allow_redirects=False, timeout=10)
    assert wrong.status_code == 200 and "Aucun professionnel" in wrong.text
    done = requests.post(login_url, data={"request_id": request_id, "identifier": "dr_martin"},
                         allow_redirects=False, timeout=10)
    assert done.status_code == 302
    query = parse_qs(urlsplit(done.headers["Location"]).query)
    assert query["state"] == ["s1"] and query["code"] and query["iss"] == [meta["issuer"]]
    entries = oidc_world["bench"].client.journal(channel="oidc", operation="login")
    assert [e["verdict"] for e in entries] == ["refused", "accepted"]
    assert entries[-1]["actor"] == oidc_world["pros"]["dr_martin"]["idnps"]


@pytest.mark.parametrize("issuer", ["psc", "etab"])
def test_key_rotation_keeps_old_tokens_valid(oidc_world, issuer):
    _, meta, token = login(oidc_world[issuer], "dr_martin")
    rotated = oidc_world["bench"].client.call("POST", "/oidc/keys/rotate")
    jsonschema.validate(rotated, SCHEMAS["KeysRotated"])
    new = rotated["kids"]
    keys = requests.get(meta["jwks_uri"], timeout=10).json()["keys"]
    assert len(keys) >= 4 and set(new) <= {k["kid"] for k in keys}   # keys outlive resets
    id_claims(meta, token)                      # signed with the previous key, still published
    _, _, fresh = login(oidc_world[issuer], "dr_martin")
    header = fresh["id_token"].split(".")[0]
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    assert kid in new
