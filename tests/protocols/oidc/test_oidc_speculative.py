"""A token request in a world shared by several processes (issue 21, point 3): its signatures are made ahead, by
a dry run on a snapshot, out of the write transaction; the request itself runs there as always and takes a
signature only when it signs the same claims with the same key. Over real sockets, with Authlib."""

import joserfc.jwt
import pytest
import requests
from joserfc import jws
from oidc_helpers import id_claims, login

from mockbench.protocols.oidc.provider import Provider


@pytest.fixture
def signing(oidc_world, monkeypatch):
    """Each JWT signed, as whether the store was inside its write transaction then."""
    store = oidc_world["bench"].world.store
    signed: list[bool] = []
    encode = joserfc.jwt.encode

    def spied(*args, **kwargs):
        signed.append(store.in_transaction())
        return encode(*args, **kwargs)

    monkeypatch.setattr(joserfc.jwt, "encode", spied)
    return signed


def _kid(token: str) -> str:
    return jws.extract_compact(token.encode()).headers()["kid"]


def _keys_made(oidc_world, signing) -> None:
    """A first login makes the issuer's signing keys (a dry run's would be dropped: it signs with keys of its own,
    which the write transaction's claims never match)."""
    login(oidc_world["psc"], "dr_martin")
    signing.clear()


def test_shared_world_signs_before_the_write_transaction(oidc_world, signing, monkeypatch):
    monkeypatch.setattr(oidc_world["bench"].world.store, "shared", True)
    _keys_made(oidc_world, signing)
    session, meta, token = login(oidc_world["psc"], "dr_martin")
    assert signing == [False, False]   # PSC's access token and the ID token, both made by the dry run
    claims = id_claims(meta, token)   # signature, iss, aud, nonce, exp and at_hash of the access token
    assert claims["preferred_username"] == oidc_world["pros"]["dr_martin"]["idnps"]
    info = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"},
                        timeout=10)
    assert info.status_code == 200   # the access token the answer carries is the one the world stored
    journal = [e for e in oidc_world["bench"].client.journal(channel="oidc") if e["operation"] == "token"]
    assert token["id_token"] in journal[-1]["response"]


def test_a_key_rotated_after_the_dry_run_is_the_key_that_signs(oidc_world, signing, monkeypatch):
    """The keys change between the dry run and the write transaction: the memo's signatures are for the old key,
    so the write transaction signs with the new one, as a serial execution would."""
    world = oidc_world["bench"].world
    monkeypatch.setattr(world.store, "shared", True)
    _keys_made(oidc_world, signing)
    ahead, rotated = Provider._ahead, []

    def then_rotate(self, handler, req):
        made = ahead(self, handler, req)
        with world.transaction() as tx:
            rotated.extend(world.tokens.rotate(tx))
        return made

    monkeypatch.setattr(Provider, "_ahead", then_rotate)
    _, meta, token = login(oidc_world["psc"], "dr_martin")
    assert signing == [False, False, True, True]   # the dry run's two, then the write transaction's two
    assert _kid(token["id_token"]) in rotated and _kid(token["access_token"]) in rotated
    id_claims(meta, token)


def test_one_process_signs_in_the_write_transaction(oidc_world, signing, monkeypatch):
    monkeypatch.setattr(oidc_world["bench"].world.store, "shared", False)
    _keys_made(oidc_world, signing)
    _, meta, token = login(oidc_world["psc"], "dr_martin")
    assert signing == [True, True]
    id_claims(meta, token)
