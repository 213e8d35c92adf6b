"""Injected faults on the OIDC door (issue 23), through Authlib and requests over real sockets: the token
endpoint `temporarily_unavailable` (RFC 6749, 4.1.2.1 names the code) or a bare 503, and a slow JWKS; a
refused exchange issues no token."""

import time

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from oidc_helpers import CALLBACK, discover, login


def _tokens_issued(bench) -> int:
    return sum(1 for e in bench.client.journal(channel="oidc", operation="token") if e["verdict"] == "accepted")


def test_the_token_endpoint_temporarily_unavailable_then_the_login_succeeds(oidc_world):
    bench = oidc_world["bench"]
    bench.client.set_fault(id="psc-down", door="oidc", kind="temporarily_unavailable", times=1,
                           match={"operation": "token"})
    with pytest.raises(OAuthError) as caught:
        login(oidc_world["psc"], oidc_world["pros"]["dr_martin"]["idnps"])
    assert caught.value.error == "temporarily_unavailable"
    assert _tokens_issued(bench) == 0
    entry = bench.client.journal(channel="oidc", operation="token")[-1]
    assert (entry["fault"], entry["verdict"]) == ("psc-down", "error")
    _, _, token = login(oidc_world["psc"], oidc_world["pros"]["dr_martin"]["idnps"])
    assert token["access_token"] and _tokens_issued(bench) == 1


def test_503_on_the_token_endpoint(oidc_world):
    bench = oidc_world["bench"]
    bench.client.set_fault(door="oidc", kind="http_503", retry_after=2, match={"operation": "token"})
    meta = discover(oidc_world["psc"])
    r = requests.post(meta["token_endpoint"], data={"grant_type": "authorization_code", "code": "x",
                                                    "redirect_uri": CALLBACK},
                      auth=("mockbench", "mockbench-secret"), timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert requests.get(meta["jwks_uri"], timeout=5).status_code == 200   # the rest of the door answers


def test_a_slow_jwks(oidc_world):
    bench = oidc_world["bench"]
    meta = discover(oidc_world["psc"])
    bench.client.set_fault(door="oidc", kind="delay", seconds=1.0, match={"operation": "jwks"}, times=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(meta["jwks_uri"], timeout=0.3)
    assert time.monotonic() - started < 1.0
    keys = requests.get(meta["jwks_uri"], timeout=5).json()["keys"]
    assert keys
    slowed = [e for e in bench.client.journal(channel="oidc") if e.get("fault")]
    assert [(e["operation"], e["verdict"]) for e in slowed] == [("jwks", "accepted")]
