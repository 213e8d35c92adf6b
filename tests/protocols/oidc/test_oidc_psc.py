"""Pro Santé Connect as it answers, checked through Authlib and joserfc against the sources:

- specs/psc/sandbox_userinfo_2023-05-12.json (a real sandbox userinfo): opaque `sub`, SubjectNameID,
  structure ids `F`/`R` with `ancienIdentifiantDeLaStructure`, the other claims;
- specs/psc/mock_discovery_response.json (a realm's discovery): the authorization endpoint on the wallet host;
- the transport-security IG (ansforge/IG-securisation-transport-api-rest, api_prosanteconnectee_web_erreurs.md,
  "Cas d'erreur 1a/1b"): access token 2 minutes, refresh token 30 minutes, session 4 hours;
- PSC's introspection page (industriels.esante.gouv.fr, "Pro Santé Connect - Introspection");
- PSC's CIBA as the ANS's proxy sends it (ansforge/psc-edc-proxy-esante, PSCSessionService, Connection) and
  Keycloak's CIBA endpoint (BackchannelAuthenticationEndpoint) checks it.
"""

import base64
import json
import os
import re
from pathlib import Path

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet
from oidc_helpers import CALLBACK, PSC, WORLD, discover, id_claims, login

from mockbench.protocols.oidc.provider import profiles_from_config

AUTH = ("mockbench", "mockbench-secret")
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
SAMPLE = "specs/psc/sandbox_userinfo_2023-05-12.json"


def sample() -> dict:
    corpus = os.environ.get("MOCKBENCH_CORPUS")
    if not corpus or not (Path(corpus) / SAMPLE).exists():
        pytest.skip("the ANS corpus (MOCKBENCH_CORPUS) is not available")
    return json.loads((Path(corpus) / SAMPLE).read_text(encoding="utf-8"))


def keys(meta: dict) -> KeySet:
    return KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())


def ciba(psc: str, hint: str, **extra) -> requests.Response:
    form = {"scope": "openid scope_all", "acr_values": "eidas1", "login_hint": hint, "binding_message": "42",
            "channel": "MOBILE", **extra}
    return requests.post(psc + "/protocol/openid-connect/ext/ciba/auth", auth=AUTH, timeout=10,
                         data={k: v for k, v in form.items() if v is not None})


# sub, SubjectNameID and the userinfo's shape -------------------------------------------------------
def test_sub_is_opaque_stable_and_per_professional(oidc_world):
    pros = oidc_world["pros"]
    _, meta, first = login(oidc_world["psc"], pros["dr_martin"]["idnps"])
    _, _, second = login(oidc_world["psc"], "dr_martin")
    _, _, other = login(oidc_world["psc"], pros["inf_durand"]["idnps"])
    sub = id_claims(meta, first)["sub"]
    assert re.fullmatch(r"f:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:" + pros["dr_martin"]["idnps"],
                        sub), sub
    assert id_claims(meta, second)["sub"] == sub                 # stable for the professional
    assert id_claims(meta, other)["sub"] not in (sub, pros["inf_durand"]["idnps"])
    bench = oidc_world["bench"]
    bench.client.reset()
    bench.client.load_yaml(WORLD)
    _, _, after_reset = login(oidc_world["psc"], "dr_martin")
    assert id_claims(meta, after_reset)["sub"] == sub             # and across a reset


def test_userinfo_has_the_sandbox_sample_shape(oidc_world):
    real = sample()
    martin = oidc_world["pros"]["dr_martin"]
    session, meta, _ = login(oidc_world["psc"], martin["idnps"])
    info = session.get(meta["userinfo_endpoint"], timeout=10).json()
    assert set(info) == set(real)
    assert set(info["SubjectRefPro"]) == set(real["SubjectRefPro"])
    exercise, real_exercise = info["SubjectRefPro"]["exercices"][0], real["SubjectRefPro"]["exercices"][0]
    assert set(exercise) == set(real_exercise)
    activity = exercise["activities"][0]
    assert list(activity) == list(real_exercise["activities"][0])          # every field, in the same order
    assert len(info["otherIds"]) == len(real["otherIds"]) == 1
    assert info["otherIds"][0] == {"identifiant": martin["idnps"], "origine": "RPPS", "qualite": 1}
    assert (info["SubjectNameID"], info["preferred_username"]) == (martin["idnps"], martin["idnps"])
    assert info["sub"].endswith(":" + martin["idnps"]) and info["sub"] != martin["idnps"]
    assert info["PSI_Locale"] == real["PSI_Locale"] and info["authMode"] == "CARD"
    # an establishment: F + FINESS, the old id 1 + FINESS, as the sample's hospital activity
    structure = next(s for s in oidc_world["bench"].client.call("GET", "/structures") if s["id"] == "chu")
    assert activity["numeroFinessSite"] == structure["finess"]
    assert activity["identifiantTechniqueDeLaStructure"] == "F" + structure["finess"] == info["SubjectOrganizationID"]
    assert activity["ancienIdentifiantDeLaStructure"] == "1" + structure["finess"]
    assert (activity["codeModeExercice"], activity["codeSecteurDactivite"]) == ("S", "SA01")
    assert (activity["numeroVoie"], activity["codeTypeDeVoie"], activity["libelleVoie"]) == ("1", "R", "de la Paix")
    assert activity["autoriteDenregistrement"] == "CNOM/CNOM/ARS"
    assert exercise["codeCiviliteDexercice"] == "DR" and exercise["codeSavoirFaire"] == "SM26"


def test_a_practice_has_an_r_identifier(mockbench):
    mockbench.client.load_yaml(WORLD.replace("  professionals:\n", "  professionals:\n"
                                             "    - {id: dr_libre, family_name: LIBRE, given_name: Anne}\n"))
    pro = next(p for p in mockbench.client.call("GET", "/professionals") if p["id"] == "dr_libre")
    session, meta, _ = login(mockbench.url + PSC, pro["idnps"])
    info = session.get(meta["userinfo_endpoint"], timeout=10).json()
    activity = info["SubjectRefPro"]["exercices"][0]["activities"][0]
    assert re.fullmatch(r"R\d{6}", activity["identifiantTechniqueDeLaStructure"])
    assert info["SubjectOrganizationID"] == activity["identifiantTechniqueDeLaStructure"]
    # the sample's practice: old id 4 + RPPS + rank (499700427885006 for RPPS 99700427885)
    assert activity["ancienIdentifiantDeLaStructure"] == "4" + pro["idnps"][1:] + "001"
    assert (activity["codeModeExercice"], activity["codeSecteurDactivite"]) == ("L", "SA07")
    assert info["Secteur_Activite"] == "SA07^1.2.250.1.71.4.2.4"


# Access token, introspection, lifetimes on the virtual clock ---------------------------------------
def test_access_token_is_a_signed_jwt_and_introspection_answers_as_psc(oidc_world):
    martin = oidc_world["pros"]["dr_martin"]
    _, meta, token = login(oidc_world["psc"], martin["idnps"], nonce="n-psc")
    id_token = id_claims(meta, token, nonce="n-psc")
    access = jwt.decode(token["access_token"], keys(meta)).claims
    assert (access["typ"], access["azp"], access["iss"]) == ("Bearer", "mockbench", meta["issuer"])
    assert access["session_state"] == token["session_state"] == id_token["session_state"] == id_token["sid"]
    assert access["exp"] - access["iat"] == 120 == token["expires_in"]
    assert access["sub"] == id_token["sub"] and access["SubjectNameID"] == martin["idnps"]

    seen = requests.post(meta["introspection_endpoint"], data={"token": token["access_token"]}, auth=AUTH,
                         timeout=10).json()
    for name in ("exp", "iat", "auth_time", "jti", "iss", "sub", "typ", "azp", "nonce"):   # the page's list
        assert name in seen, name
    assert seen["active"] is True and seen["SubjectNameID"] == martin["idnps"] and seen["typ"] == "Bearer"
    assert (seen["jti"], seen["nonce"], seen["azp"]) == (access["jti"], "n-psc", "mockbench")
    refresh = requests.post(meta["introspection_endpoint"], data={"token": token["refresh_token"]}, auth=AUTH,
                            timeout=10).json()
    # "Le champ SubjectNameID": only when the access token is introspected
    assert refresh["active"] is True and refresh["typ"] == "Refresh" and "SubjectNameID" not in refresh
    assert refresh["sub"] == access["sub"] and refresh["exp"] - refresh["iat"] == 1800
    entry = oidc_world["bench"].client.journal(channel="oidc", operation="introspect")[-1]
    assert (entry["verdict"], entry["actor"]) == ("accepted", "mockbench")


def test_lifetimes_follow_the_virtual_clock(oidc_world):
    bench = oidc_world["bench"]
    session, meta, token = login(oidc_world["psc"], "dr_martin")
    assert (token["expires_in"], token["refresh_expires_in"]) == (120, 1800)
    bench.client.advance("119s")
    assert session.get(meta["userinfo_endpoint"], timeout=10).status_code == 200
    bench.client.advance("2s")                                    # 121 s: the access token is dead
    late = session.get(meta["userinfo_endpoint"], timeout=10)
    assert late.status_code == 401 and "expired" in late.json()["error_description"]
    assert requests.post(meta["introspection_endpoint"], data={"token": token["access_token"]}, auth=AUTH,
                         timeout=10).json() == {"active": False}
    entry = bench.client.journal(channel="oidc", operation="userinfo")[-1]
    assert (entry["verdict"], entry["code"]) == ("refused", "invalid_token")

    # the refresh token's 30 minutes slide with each refresh, up to the session's 4 hours
    current = token["refresh_token"]
    for _ in range(9):                                          # 9 x 25 min = 3 h 45
        bench.client.advance("25m")
        fresh = session.refresh_token(meta["token_endpoint"], refresh_token=current)
        assert fresh["refresh_token"] != current and fresh["expires_in"] == 120
        current = fresh["refresh_token"]
    assert fresh["refresh_expires_in"] < 1800                    # capped by the session's end
    bench.client.advance("16m")                                  # 4 h 01 after the login
    over = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": current},
                         auth=AUTH, timeout=10)
    assert over.status_code == 400 and over.json()["error"] == "invalid_grant"

    _, _, again = login(oidc_world["psc"], "dr_martin")
    bench.client.advance("1801s")                                # 30 min idle: the refresh token is dead
    idle = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token",
                                                       "refresh_token": again["refresh_token"]},
                         auth=AUTH, timeout=10)
    assert idle.status_code == 400 and "expired" in idle.json()["error_description"]
    entry = bench.client.journal(channel="oidc", operation="refresh")[-1]
    assert (entry["verdict"], entry["code"]) == ("refused", "invalid_grant")


# The wallet base -----------------------------------------------------------------------------------
def test_a_client_that_builds_the_authorization_url_from_the_issuer_fails(oidc_world):
    built = requests.get(oidc_world["psc"] + "/protocol/openid-connect/auth", timeout=10, params={
        "client_id": "mockbench", "response_type": "code", "scope": "openid scope_all", "redirect_uri": CALLBACK,
        "login_hint": "dr_martin"}, allow_redirects=False)
    assert built.status_code == 404 and built.json()["error"] == "invalid_request"
    assert discover(oidc_world["psc"])["authorization_endpoint"] in built.json()["error_description"]
    entry = oidc_world["bench"].client.journal(channel="oidc", operation="authorize")[-1]
    assert (entry["verdict"], entry["code"]) == ("refused", "invalid_request")
    login(oidc_world["psc"], "dr_martin")                         # the discovery's endpoint still serves


def test_wallet_url_is_configurable(mockbench_factory):
    running = mockbench_factory(doors={"oidc": {"psc": {"wallet_url": "http://wallet.localhost:8443/oidc/e-cps"}}})
    running.client.load_yaml(WORLD)
    meta = discover(running.url + PSC)
    assert meta["authorization_endpoint"] == "http://wallet.localhost:8443/oidc/e-cps/auth"
    served = requests.get(running.url + "/oidc/e-cps/auth", allow_redirects=False, timeout=10, params={
        "client_id": "mockbench", "response_type": "code", "scope": "openid scope_all", "redirect_uri": CALLBACK,
        "login_hint": "dr_martin", "code_challenge": "c" * 43, "code_challenge_method": "plain"})
    assert served.status_code == 302 and "code=" in served.headers["Location"]
    assert requests.get(running.url + "/oidc/psc-wallet/auth", timeout=10).status_code == 404


@pytest.mark.parametrize("url", ["wallet.localhost/oidc/w", "http://wallet.localhost/elsewhere",
                                 "http://wallet.localhost/oidc/psc/auth", "http://wallet.localhost/oidc/w?x=1"])
def test_a_wallet_url_the_bench_cannot_serve_is_refused(url):
    with pytest.raises(ValueError, match="wallet_url"):
        profiles_from_config({"psc": {"wallet_url": url}})


def test_lifetimes_are_configurable_and_checked():
    psc, etab = profiles_from_config({"etab": {"access_token_lifetime": "10m"}})
    assert (psc.access_ttl, psc.refresh_ttl, psc.session_max) == (120.0, 1800.0, 14400.0)
    assert (etab.access_ttl, etab.refresh_ttl) == (600.0, None)
    with pytest.raises(ValueError, match="access_token_lifetime"):
        profiles_from_config({"psc": {"access_token_lifetime": "soon"}})


# Signed userinfo ------------------------------------------------------------------------------------
def test_userinfo_signed_when_the_client_registration_asks(mockbench_factory):
    running = mockbench_factory(doors={"oidc": {"psc": {"clients": [{
        "client_id": "dpi-signed", "client_secret": "s3cret", "redirect_uris": [CALLBACK],
        "userinfo_signed_response_alg": "ES256"}]}}})
    running.client.load_yaml(WORLD)
    meta = discover(running.url + PSC)
    session = OAuth2Session("dpi-signed", "s3cret", scope="openid scope_all", redirect_uri=CALLBACK,
                            code_challenge_method="S256")
    verifier = "v" * 48
    uri, _ = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                              login_hint="dr_martin", acr_values="eidas1", nonce="n")
    answer = requests.get(uri, allow_redirects=False, timeout=10)
    session.fetch_token(meta["token_endpoint"], authorization_response=answer.headers["Location"],
                        code_verifier=verifier)
    response = session.get(meta["userinfo_endpoint"], timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/jwt"
    token = jwt.decode(response.text, keys(meta))
    assert token.header["alg"] == "ES256"
    assert (token.claims["iss"], token.claims["aud"]) == (meta["issuer"], "dpi-signed")
    assert token.claims["SubjectNameID"] and token.claims["sub"].startswith("f:")
    # the default client did not ask: plain JSON
    plain_session, plain_meta, _ = login(running.url + PSC, "dr_martin")
    with pytest.raises(ValueError, match="userinfo_signed_response_alg"):
        profiles_from_config({"psc": {"clients": [{"client_id": "x", "userinfo_signed_response_alg": "HS256"}]}})
    assert plain_session.get(plain_meta["userinfo_endpoint"], timeout=10).json()["SubjectNameID"]


# CIBA: what PSC requires -------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "error", "words"), [
    # Keycloak's BackchannelAuthenticationEndpoint (PSC is a Keycloak realm), its codes and words
    ({"login_hint": None}, "invalid_request", "missing parameter : login_hint"),
    ({"scope": None}, "invalid_request", "missing parameter : scope"),
    ({"login_hint": "899999999999"}, "invalid_request", "invalid user"),
    ({"binding_message": "deux mots"}, "invalid_binding_message", "max 50 characters"),
    ({"binding_message": "x" * 51}, "invalid_binding_message", "max 50 characters"),
    # what the ANS's CIBA client always sends (psc-edc-proxy-esante PSCSessionService) and requires of its own
    # callers (Connection.validate): PSC's answer to their absence is not in any text found, the codes are
    # CIBA Core 13's
    ({"scope": "openid"}, "invalid_scope", "scope_all"),
    ({"binding_message": None}, "invalid_binding_message", "required"),
    ({"acr_values": None}, "invalid_request", "eidas1"),
    ({"acr_values": "eidas2"}, "invalid_request", "eidas1"),
    ({"channel": None}, "invalid_request", "missing parameter : channel"),
    ({"channel": "SMS"}, "invalid_request", "CARD"),
])
def test_ciba_request_refusals(oidc_world, change, error, words):
    idnps = oidc_world["pros"]["dr_martin"]["idnps"]
    refused = ciba(oidc_world["psc"], idnps, **change)
    assert refused.status_code == 400 and refused.json()["error"] == error
    assert words in refused.json()["error_description"]
    entry = oidc_world["bench"].client.journal(channel="oidc", operation="ciba")[-1]
    assert (entry["verdict"], entry["code"]) == ("refused", error)
    assert ciba(oidc_world["psc"], idnps).status_code == 200      # the bench keeps serving


@pytest.mark.parametrize("channel", ["CARD", "MOBILE"])
def test_ciba_channel_is_the_userinfo_auth_mode(oidc_world, channel):
    bench, psc = oidc_world["bench"], oidc_world["psc"]
    bench.client.call("PUT", "/oidc/ciba/dr_martin", {"outcome": "approve", "after_polls": 0})
    started = ciba(psc, "dr_martin", channel=channel, binding_message="A7-9")
    assert started.status_code == 200 and started.json()["expires_in"] == 120
    tokens = requests.post(psc + "/protocol/openid-connect/token", auth=AUTH, timeout=10,
                           data={"grant_type": CIBA_GRANT, "auth_req_id": started.json()["auth_req_id"]}).json()
    meta = discover(psc)
    assert jwt.decode(tokens["access_token"], keys(meta)).claims["session_state"] == tokens["session_state"]
    info = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"},
                        timeout=10).json()
    assert info["authMode"] == channel


def test_the_establishment_provider_stays_generic(oidc_world):
    """CIBA Core 13 on /oidc/etab: unknown_user_id, invalid_binding_message; sub is the IDNPS there."""
    etab = oidc_world["etab"]
    martin = oidc_world["pros"]["dr_martin"]

    def etab_ciba(**form):
        return requests.post(etab + "/ciba", auth=AUTH, timeout=10, data={"scope": "openid", **form})

    assert etab_ciba(login_hint="nobody").json()["error"] == "unknown_user_id"
    assert etab_ciba(login_hint="dr_martin", binding_message="x" * 65).json()["error"] == "invalid_binding_message"
    assert etab_ciba(login_hint="dr_martin").status_code == 200            # no channel, acr or scope_all needed
    _, meta, token = login(etab, "dr_martin", scope="openid profile")
    assert id_claims(meta, token)["sub"] == martin["idnps"] and token["expires_in"] == 300
    assert token["access_token"].count(".") == 0                          # opaque
    assert discover(etab)["authorization_endpoint"] == etab + "/authorize"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.text(min_size=0, max_size=60))
def test_binding_message_rule_is_keycloaks(oidc_world, message):
    """Keycloak's BINDING_MESSAGE_VALIDATION, ^[a-zA-Z0-9-._+/!?#]{1,50}$, through the core (no HTTP)."""
    from mockbench.protocols.oidc.provider import Request

    provider = oidc_world["bench"].bench.oidc.providers["psc"]
    idnps = oidc_world["pros"]["dr_martin"]["idnps"]
    basic = "Basic " + base64.b64encode(b"mockbench:mockbench-secret").decode()
    status, body, _ = provider.handle("ciba", Request("POST", headers={"authorization": basic}, form={
        "scope": "openid scope_all", "acr_values": "eidas1", "login_hint": idnps, "channel": "CARD",
        "binding_message": message}))
    valid = re.fullmatch(r"[a-zA-Z0-9\-._+/!?#]{1,50}", message) is not None
    assert (status == 200) is valid, (message, body)
    if not valid:
        assert body["error"] == "invalid_binding_message"
