"""Shared by the OIDC door's tests: the test world, the issuers' paths, and an Authlib login."""

import base64
import hashlib

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

WORLD = """
id: oidc-test
title: Monde de test OIDC
seed: 4242
world:
  structures:
    - {id: chu, name: CHU de Test, address: {line: 1 rue de la Paix, postal_code: "75002", city: Paris}}
  professionals:
    - {id: dr_martin, family_name: MARTIN, given_name: Jeanne, profession: "10", specialty: SM26, structure: chu}
    - {id: inf_durand, family_name: DURAND, given_name: Paul, profession: "60", structure: chu}
"""
PSC = "/oidc/psc/auth/realms/esante-wallet"
ETAB = "/oidc/etab"
CALLBACK = "http://127.0.0.1:53117/callback"   # any port: RFC 8252 loopback



def discover(issuer: str, wallet: bool = False) -> dict:
    path = "/.well-known/wallet-openid-configuration" if wallet else "/.well-known/openid-configuration"
    response = requests.get(issuer + path, timeout=10)
    assert response.status_code == 200
    return response.json()


def login(issuer: str, hint: str, *, scope="openid scope_all", method="S256", auth=None, nonce="n-0S6_WzA2Mj"):
    """Authorize non-interactively with login_hint and exchange the code; returns (session, meta, token)."""
    meta = discover(issuer)
    session = OAuth2Session("mockbench", "mockbench-secret", scope=scope, redirect_uri=CALLBACK,
                            code_challenge_method=method, token_endpoint_auth_method=auth or "client_secret_basic")
    verifier = generate_token(48)
    extra = {"code_challenge": verifier} if method == "plain" else {}   # Authlib only derives S256 itself
    uri, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                                  nonce=nonce, login_hint=hint, acr_values="eidas1", **extra)
    answer = requests.get(uri, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].startswith(CALLBACK)
    token = session.fetch_token(meta["token_endpoint"], authorization_response=answer.headers["Location"],
                                code_verifier=verifier)
    return session, meta, token


def id_claims(meta: dict, token: dict, nonce: str = "n-0S6_WzA2Mj") -> dict:
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, algorithms=meta["id_token_signing_alg_values_supported"]).claims
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]}, aud={"essential": True,
                          "value": "mockbench"}, nonce={"essential": True, "value": nonce},
                          exp={"essential": True}).validate(claims)
    # OIDC Core 3.1.3.6: at_hash is the left half of the access token's SHA-256
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return dict(claims)
