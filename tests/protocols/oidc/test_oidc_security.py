"""Refusals: each answered with the right OAuth error and journaled on the `oidc` channel."""

import base64
import hashlib
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from oidc_helpers import CALLBACK, ETAB, PSC, WORLD

AUTH = ("mockbench", "mockbench-secret")
VERIFIER = "v" * 50


def challenge(verifier: str = VERIFIER) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize(issuer: str, **overrides) -> requests.Response:
    meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    params = {"client_id": "mockbench", "response_type": "code", "scope": "openid", "redirect_uri": CALLBACK,
              "state": "st", "nonce": "nn", "login_hint": "dr_martin", "code_challenge": challenge(),
              "code_challenge_method": "S256", **overrides}
    return requests.get(meta["authorization_endpoint"], params={k: v for k, v in params.items() if v is not None},
                        allow_redirects=False, timeout=10)


def code_of(response: requests.Response) -> str:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def exchange(issuer: str, code: str, *, verifier: str = VERIFIER, auth=AUTH, redirect_uri=CALLBACK, **extra):
    return requests.post(issuer + "/protocol/openid-connect/token" if "esante" in issuer else issuer + "/token",
                         data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                               "code_verifier": verifier, **extra}, auth=auth, timeout=10)


def last(bench, operation: str) -> dict:
    return bench.client.journal(channel="oidc", operation=operation)[-1]


@pytest.fixture
def psc(oidc_world):
    return oidc_world["psc"]


def test_code_used_twice_revokes_its_tokens(oidc_world, psc):
    code = code_of(authorize(psc))
    first = exchange(psc, code)
    assert first.status_code == 200
    second = exchange(psc, code)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert "already used" in second.json()["error_description"]
    userinfo = requests.get(psc + "/protocol/openid-connect/userinfo",
                            headers={"Authorization": f"Bearer {first.json()['access_token']}"}, timeout=10)
    assert userinfo.status_code == 401 and userinfo.json()["error"] == "invalid_token"
    entry = last(oidc_world["bench"], "token")
    assert (entry["verdict"], entry["code"]) == ("refused", "invalid_grant")
    assert entry["actor"] == oidc_world["pros"]["dr_martin"]["idnps"]


def test_code_verifier_that_does_not_match(oidc_world, psc):
    response = exchange(psc, code_of(authorize(psc)), verifier="w" * 50)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert last(oidc_world["bench"], "token")["code"] == "invalid_grant"


def test_plain_pkce(oidc_world, psc):
    """RFC 7636 4.6: with `plain` the verifier must equal the challenge itself."""
    code = code_of(authorize(psc, code_challenge=VERIFIER, code_challenge_method="plain"))
    response = exchange(psc, code)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer" and tokens["access_token"] and tokens["id_token"]
    entry = last(oidc_world["bench"], "token")
    assert (entry["verdict"], entry["actor"]) == ("accepted", oidc_world["pros"]["dr_martin"]["idnps"])
    # the S256 form of the verifier is not the plain challenge: refused
    code = code_of(authorize(psc, code_challenge=VERIFIER, code_challenge_method="plain"))
    refused = exchange(psc, code, verifier=challenge())
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:53117/callback/", "http://127.0.0.1:53117/other",
                                 "https://127.0.0.1/callback", "http://example.org/callback"])
def test_redirect_uri_not_registered_exactly(oidc_world, psc, uri):
    response = authorize(psc, redirect_uri=uri)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "Location" not in response.headers              # never redirect to an unverified URI
    entry = last(oidc_world["bench"], "authorize")
    assert (entry["verdict"], entry["code"]) == ("refused", "invalid_request")


def test_loopback_redirect_any_port_and_ipv6_refused_unless_registered(oidc_world, psc):
    assert authorize(psc, redirect_uri="http://localhost:61000/callback").status_code == 302
    assert authorize(psc, redirect_uri="http://[::1]:61000/callback").status_code == 400


def test_redirectable_errors_go_back_to_the_client(oidc_world, psc):
    response = authorize(psc, response_type="token")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["unsupported_response_type"] and query["state"] == ["st"]
    response = authorize(psc, login_hint="nobody")
    assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == ["login_required"]
    response = authorize(psc, scope="profile")
    assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == ["invalid_scope"]


def test_expired_code_and_expired_token(oidc_world, psc):
    bench = oidc_world["bench"]
    code = code_of(authorize(psc))
    bench.client.advance("61s")
    response = exchange(psc, code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "expired" in response.json()["error_description"]
    token = exchange(psc, code_of(authorize(psc))).json()
    bench.client.advance("301s")
    userinfo = requests.get(psc + "/protocol/openid-connect/userinfo",
                            headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
    assert userinfo.status_code == 401 and "invalid_token" in userinfo.headers["WWW-Authenticate"]
    assert "expired" in userinfo.json()["error_description"]
    entry = last(bench, "userinfo")
    assert (entry["verdict"], entry["code"]) == ("refused", "invalid_token")


def test_wrong_client_secret(oidc_world, psc):
    response = exchange(psc, code_of(authorize(psc)), auth=("mockbench", "wrong"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    post = exchange(psc, code_of(authorize(psc)), auth=None, client_id="mockbench", client_secret="wrong")
    assert post.status_code == 401 and post.json()["error"] == "invalid_client"
    entry = last(oidc_world["bench"], "token")
    assert (entry["verdict"], entry["code"], entry["actor"]) == ("refused", "invalid_client", "mockbench")


def test_id_token_hint_signed_by_unknown_key(oidc_world, psc):
    forged = jwt.encode({"alg": "RS256", "kid": "rs256-forged"}, {"iss": psc, "aud": "mockbench", "sub": "x"},
                        RSAKey.generate_key(2048))
    response = requests.get(psc + "/protocol/openid-connect/logout", params={
        "id_token_hint": forged, "post_logout_redirect_uri": "http://127.0.0.1/logout"}, allow_redirects=False,
        timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert last(oidc_world["bench"], "logout")["code"] == "invalid_request"


def test_logout_redirect_must_be_registered(oidc_world, psc):
    token = exchange(psc, code_of(authorize(psc))).json()
    response = requests.get(psc + "/protocol/openid-connect/logout", params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://evil.example/"},
        allow_redirects=False, timeout=10)
    assert response.status_code == 400
    plain = requests.get(psc + "/protocol/openid-connect/logout", params={"id_token_hint": token["id_token"]},
                         timeout=10)
    assert plain.status_code == 200 and "déconnecté" in plain.text


def test_revoke_refresh_revokes_access_and_unsupported_grant(oidc_world, psc):
    token = exchange(psc, code_of(authorize(psc))).json()
    base = psc + "/protocol/openid-connect"
    assert requests.post(base + "/revoke", data={"token": token["refresh_token"]}, auth=AUTH,
                         timeout=10).status_code == 200
    assert requests.get(base + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"},
                        timeout=10).status_code == 401
    bad = requests.post(base + "/token", data={"grant_type": "password"}, auth=AUTH, timeout=10)
    assert bad.json()["error"] == "unsupported_grant_type"


# Configured clients: private_key_jwt, a public client, ES256 ID tokens ------------------------------
def test_configured_clients(mockbench_factory):
    key = RSAKey.generate_key(2048, parameters={"kid": "dpi-1"})
    settings = {"oidc": {"default_client": False, "etab": {"clients": [
        {"client_id": "dpi-jwt", "token_endpoint_auth_method": "private_key_jwt",
         "redirect_uris": ["https://dpi.example/cb"], "id_token_signed_response_alg": "ES256",
         "jwks": {"keys": [key.as_dict(private=False)]}},
        {"client_id": "dpi-public", "redirect_uris": ["http://127.0.0.1/cb"]}]}}}
    running = mockbench_factory(doors=settings)
    running.client.load_yaml(WORLD)
    etab = running.url + ETAB

    def go(client_id, redirect):
        return code_of(requests.get(etab + "/authorize", params={
            "client_id": client_id, "response_type": "code", "scope": "openid", "redirect_uri": redirect,
            "login_hint": "dr_martin", "code_challenge": challenge(), "code_challenge_method": "S256"},
            allow_redirects=False, timeout=10))

    def assertion(signing_key, jti=None):
        now = int(time.time())
        return jwt.encode({"alg": "RS256", "kid": "dpi-1"}, {
            "iss": "dpi-jwt", "sub": "dpi-jwt", "aud": etab + "/token", "exp": now + 60, "iat": now,
            "jti": jti or str(uuid.uuid4())}, signing_key)

    form = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    jti = str(uuid.uuid4())
    good = exchange(etab, go("dpi-jwt", "https://dpi.example/cb"), auth=None, redirect_uri="https://dpi.example/cb",
                    client_assertion=assertion(key, jti), **form)
    assert good.status_code == 200, good.text
    assert jwt.decode(good.json()["id_token"], _etab_keys(etab)).header["alg"] == "ES256"
    replay = exchange(etab, go("dpi-jwt", "https://dpi.example/cb"), auth=None,
                      redirect_uri="https://dpi.example/cb", client_assertion=assertion(key, jti), **form)
    assert replay.status_code == 401 and "replay" in replay.json()["error_description"]
    unknown = exchange(etab, go("dpi-jwt", "https://dpi.example/cb"), auth=None,
                       redirect_uri="https://dpi.example/cb",
                       client_assertion=assertion(RSAKey.generate_key(2048)), **form)
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    assert "not signed by a key" in unknown.json()["error_description"]

    public = exchange(etab, go("dpi-public", "http://127.0.0.1:9999/cb"), auth=None,
                      redirect_uri="http://127.0.0.1:9999/cb", client_id="dpi-public")
    assert public.status_code == 200 and public.json()["refresh_token"]
    no_pkce = requests.get(etab + "/authorize", params={
        "client_id": "dpi-public", "response_type": "code", "scope": "openid", "redirect_uri": "http://127.0.0.1/cb",
        "login_hint": "dr_martin"}, allow_redirects=False, timeout=10)
    assert parse_qs(urlsplit(no_pkce.headers["Location"]).query)["error"] == ["invalid_request"]
    # the default client is off
    assert requests.get(etab + "/authorize", params={"client_id": "mockbench"}, timeout=10).status_code == 400
    assert requests.get(running.url + "/oidc/psc-wallet/auth", params={"client_id": "mockbench"},
                        timeout=10).status_code == 400


def _etab_keys(etab: str):
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(requests.get(etab + "/jwks", timeout=10).json())


def test_every_world_error_has_an_oauth_form():
    from mockbench.protocols.oidc.provider import OAuthError, from_world
    from mockbench.world.errors import all_error_classes

    for cls in all_error_classes():
        err = from_world(cls())
        assert isinstance(err, OAuthError) and err.error and 400 <= err.status < 600, cls


def test_core_without_flask(oidc_world):
    """The core answers (status, body, headers) with no HTTP in between."""
    from mockbench.protocols.oidc.provider import Request

    provider = oidc_world["bench"].bench.oidc.providers["psc"]
    status, body, headers = provider.handle("token", Request("POST", form={"grant_type": "authorization_code",
                                                                           "code": "nope"},
                                                             headers={}))
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = provider.handle("discovery", Request("GET"))
    assert status == 200 and body["issuer"] == provider.issuer


def test_tls_client_auth_on_the_https_port(tmp_path):
    import ssl
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    from cryptography import x509

    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.pki import client_context, init_pki

    files = init_pki(tmp_path / "pki")
    cert_path = files.clients["org-auth-cli"][0]
    subject = x509.load_pem_x509_certificate(cert_path.read_bytes()).subject.rfc4514_string()
    doors = {"oidc": {"etab": {"clients": [{"client_id": "dpi-mtls", "token_endpoint_auth_method": "tls_client_auth",
                                            "tls_client_auth_subject_dn": subject,
                                            "redirect_uris": ["http://127.0.0.1/cb"]}]}}}
    config = Config(http_port=0, mllp_port=0, https_port=0, smtp_port=0, imap_port=0, state=tmp_path / "s", tls_dir=tmp_path / "pki",
                    doors=doors)
    with Bench(config) as bench:
        bench.load_scenario("ssi-iam-80")
        etab = bench.url + ETAB
        https = f"https://localhost:{bench.ports['https']}{ETAB}/token"

        def token(context: ssl.SSLContext | None, url: str = https):
            code = code_of(requests.get(etab + "/authorize", params={
                "client_id": "dpi-mtls", "response_type": "code", "scope": "openid", "login_hint": "dr_martin",
                "redirect_uri": "http://127.0.0.1/cb"}, allow_redirects=False, timeout=10))
            body = urlencode({"grant_type": "authorization_code", "code": code, "client_id": "dpi-mtls",
                              "redirect_uri": "http://127.0.0.1/cb"}).encode()
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body), context=context,
                                            timeout=10) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        status, body = token(client_context(files, "org-auth-cli"))
        assert status == 200 and b"id_token" in body
        status, body = token(client_context(files))                        # no certificate
        assert status == 401 and b"invalid_client" in body
        status, body = token(client_context(files, "app-mailbox"))         # another subject
        assert status == 401 and b"is not" in body
        status, body = token(None, etab + "/token")                        # plain HTTP
        assert status == 401 and b"HTTPS port" in body


def test_codes_survive_a_restart_and_are_not_shared_between_benches(tmp_path, mockbench_factory):
    from mockbench.bench import Bench
    from mockbench.config import Config

    def config():
        return Config(http_port=0, mllp_port=0, smtp_port=0, imap_port=0, state=tmp_path / "s")

    with Bench(config()) as first:
        first.load_scenario("ssi-iam-80")
        code = code_of(authorize(first.url + PSC))
    other = mockbench_factory()
    other.client.load("ssi-iam-80")
    assert exchange(other.url + PSC, code).json()["error"] == "invalid_grant"
    with Bench(config()) as again:                                   # same state folder: resumed
        assert exchange(again.url + PSC, code).status_code == 200
