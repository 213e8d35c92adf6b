"""Opaque tokens on the virtual clock, and the signing keys (JWKS, sign/decode, rotation, kept by reset)."""

from __future__ import annotations

import base64
import json

import pytest

from mockbench.world.tokens import _hash


def _issue(world, **kwargs):
    kwargs.setdefault("professional", "dr-a")
    kwargs.setdefault("client_id", "dpi")
    with world.transaction() as tx:
        return world.tokens.issue(tx, **kwargs)


def _verify(world, token, **kwargs):
    with world.transaction() as tx:
        return world.tokens.verify(tx, token, **kwargs)


def _advance(world, seconds):
    with world.transaction() as tx:
        world.advance_clock(tx, seconds)


def test_issue_and_verify(cast, now):
    token = _issue(cast.world, scopes=["openid", "scope_all"], ttl=60, data={"sid": "s1"})
    row = _verify(cast.world, token)
    assert row == {"kind": "access", "professional": "dr-a", "client_id": "dpi", "scopes": ["openid", "scope_all"],
                   "issued_at": now, "expires_at": now + 60, "revoked": False, "data": {"sid": "s1"}}
    with cast.tx() as tx:
        stored = tx.conn.execute("SELECT token_hash, data FROM tokens").fetchall()
    assert stored[0][0] == _hash(token)
    assert token not in json.dumps([str(v) for v in stored])  # only the hash is kept


def test_issue_refusals(cast, refused):
    with refused("PROFESSIONAL_UNKNOWN"):
        _issue(cast.world, professional="dr-zz")
    with pytest.raises(ValueError):
        _issue(cast.world, kind="id")
    assert _verify(cast.world, _issue(cast.world, professional=""))["professional"] == ""


def test_token_expires_on_virtual_clock(cast, refused):
    token = _issue(cast.world, ttl=300)
    _advance(cast.world, 299)
    assert _verify(cast.world, token)["professional"] == "dr-a"
    _advance(cast.world, 1)
    with refused("TOKEN_EXPIRED"):
        _verify(cast.world, token)


def test_verify_refusals(cast, refused):
    access = _issue(cast.world, scopes=["openid"])
    refresh = _issue(cast.world, kind="refresh")
    with refused("TOKEN_INVALID"):
        _verify(cast.world, "garbage")
    with refused("TOKEN_INVALID"):
        _verify(cast.world, "")
    with refused("TOKEN_INVALID"):
        _verify(cast.world, refresh)  # a refresh token is not an access token
    with refused("TOKEN_INVALID"):
        _verify(cast.world, access, kind="refresh")
    with refused("TOKEN_INVALID") as info:
        _verify(cast.world, access, scope="scope_all")
    assert "scope_all" in info.value.message
    assert _verify(cast.world, access, scope="openid")["scopes"] == ["openid"]
    assert _verify(cast.world, refresh, kind="refresh")["kind"] == "refresh"


def test_revoke(cast, refused):
    token = _issue(cast.world)
    other = _issue(cast.world)
    with cast.tx() as tx:
        assert cast.world.tokens.revoke(tx, token) is True
        assert cast.world.tokens.revoke(tx, "unknown") is False
    with refused("TOKEN_REVOKED"):
        _verify(cast.world, token)
    assert _verify(cast.world, other)["revoked"] is False


def test_revoking_refresh_revokes_linked_access_tokens(cast, refused):
    refresh = _issue(cast.world, kind="refresh", ttl=3600)
    with cast.tx() as tx:
        link = {"refresh": cast.world.tokens.refresh_hash(refresh)}
    linked = [_issue(cast.world, data=link) for _ in range(2)]
    unlinked = _issue(cast.world, data={"refresh": "someone else"})
    with cast.tx() as tx:
        assert cast.world.tokens.revoke(tx, refresh) is True
    with refused("TOKEN_REVOKED"):
        _verify(cast.world, refresh, kind="refresh")
    for token in linked:
        with refused("TOKEN_REVOKED"):
            _verify(cast.world, token)
    assert _verify(cast.world, unlinked)["revoked"] is False


def test_revoking_access_leaves_refresh(cast):
    refresh = _issue(cast.world, kind="refresh")
    with cast.tx() as tx:
        access = cast.world.tokens.issue(tx, professional="dr-a", client_id="dpi",
                                         data={"refresh": cast.world.tokens.refresh_hash(refresh)})
        cast.world.tokens.revoke(tx, access)
    assert _verify(cast.world, refresh, kind="refresh")["revoked"] is False


def test_introspect(cast, now):
    access = _issue(cast.world, scopes=["openid", "scope_all"], ttl=120)
    refresh = _issue(cast.world, kind="refresh", client_id="other", ttl=600)
    with cast.tx() as tx:
        assert cast.world.tokens.introspect(tx, access) == {
            "active": True, "token_type": "access", "client_id": "dpi", "sub": "dr-a",
            "scope": "openid scope_all", "iat": int(now), "exp": int(now) + 120}
        assert cast.world.tokens.introspect(tx, refresh)["token_type"] == "refresh"
        assert cast.world.tokens.introspect(tx, "nope") == {"active": False}
    _advance(cast.world, 120)
    with cast.tx() as tx:
        assert cast.world.tokens.introspect(tx, access) == {"active": False}
        assert cast.world.tokens.introspect(tx, refresh)["active"] is True
        cast.world.tokens.revoke(tx, refresh)
        assert cast.world.tokens.introspect(tx, refresh) == {"active": False}


# --- Signing keys --------------------------------------------------------------------------------


def _jwks(world):
    with world.transaction() as tx:
        return world.tokens.jwks(tx)


def _header(token: str) -> dict:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def test_jwks_has_rs256_and_es256_public_keys(world):
    keys = _jwks(world)["keys"]
    assert sorted((k["alg"], k["kty"], k["use"]) for k in keys) == [("ES256", "EC", "sig"), ("RS256", "RSA", "sig")]
    for k in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(k), "a private member leaked into the JWKS"
        assert k["kid"].startswith(k["alg"].lower() + "-")
    assert _jwks(world) == {"keys": keys}  # made once, then kept


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_sign_decode_round_trip(world, alg, refused):
    claims = {"sub": "810000000017", "acr": "eidas1", "iat": 1}
    with world.transaction() as tx:
        token = world.tokens.sign(tx, claims, alg)
        assert world.tokens.decode(tx, token) == claims
        kid, _ = world.tokens.active_key(tx, alg)
    assert _header(token) == {"alg": alg, "kid": kid, "typ": "JWT"}
    head, body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"sub": "someone else"}).encode()).rstrip(b"=").decode()
    with refused("TOKEN_INVALID"), world.transaction() as tx:
        world.tokens.decode(tx, f"{head}.{forged}.{sig}")
    with refused("TOKEN_INVALID"), world.transaction() as tx:
        world.tokens.decode(tx, "not.a.jwt")


def test_token_from_another_world_does_not_verify(make_world, refused):
    one, two = make_world("one.db"), make_world("two.db")
    with one.transaction() as tx:
        token = one.tokens.sign(tx, {"sub": "x"})
    with refused("TOKEN_INVALID"), two.transaction() as tx:
        two.tokens.decode(tx, token)


def test_unknown_algorithm(world, refused):
    with refused("INVALID_REQUEST"), world.transaction() as tx:
        world.tokens.active_key(tx, "HS256")


def test_rotation_keeps_old_keys_for_the_grace_period(world, refused):
    with world.transaction() as tx:
        old_token = world.tokens.sign(tx, {"sub": "before"})
        old_kids = sorted(k["kid"] for k in world.tokens.jwks(tx)["keys"])
        new_kids = world.tokens.rotate(tx, grace=600)
    assert len(new_kids) == 2 and not set(new_kids) & set(old_kids)
    assert sorted(k["kid"] for k in _jwks(world)["keys"]) == sorted(old_kids + new_kids)
    with world.transaction() as tx:
        assert world.tokens.decode(tx, old_token) == {"sub": "before"}
        new_token = world.tokens.sign(tx, {"sub": "after"})
    assert _header(new_token)["kid"] in new_kids
    _advance(world, 599)
    assert len(_jwks(world)["keys"]) == 4
    _advance(world, 1)
    assert sorted(k["kid"] for k in _jwks(world)["keys"]) == sorted(new_kids)
    with refused("TOKEN_INVALID"), world.transaction() as tx:
        world.tokens.decode(tx, old_token)
    with world.transaction() as tx:
        assert world.tokens.decode(tx, new_token) == {"sub": "after"}
        assert len(world.tokens.rotate(tx, grace=0)) == 2
        assert len(world.tokens.jwks(tx)["keys"]) == 2  # a zero grace retires at once
        assert len(tx.meta_get("keep:signing-keys")) == 4  # the long-retired pair was pruned


def test_keys_survive_reset_and_reopening(world, make_world):
    _issue_free = _jwks(world)
    with world.transaction() as tx:
        token = world.tokens.sign(tx, {"sub": "x"}, "ES256")
        world.tokens.issue(tx, professional="", client_id="dpi")
        world.reset(tx)
    assert _jwks(world) == _issue_free
    with world.transaction() as tx:
        assert world.tokens.decode(tx, token) == {"sub": "x"}
        assert tx.count("tokens") == 0
    assert _jwks(make_world()) == _issue_free  # same file, new World


def test_long_expired_rows_are_purged_as_tokens_are_issued(cast, refused):
    from mockbench.world.tokens import PURGE_EVERY, PURGE_GRACE

    def rows():
        with cast.world.transaction() as tx:
            return tx.conn.execute("SELECT COUNT(*) FROM tokens WHERE ns = ?", (tx.ns,)).fetchone()[0]

    old = [_issue(cast.world, ttl=60) for _ in range(10)]
    before = rows()
    _advance(cast.world, 60 + PURGE_GRACE / 2)
    with refused("TOKEN_EXPIRED"):                                 # within the grace: still said expired
        _verify(cast.world, old[0])
    for _ in range(PURGE_EVERY):
        _issue(cast.world, ttl=60)
    assert rows() == before + PURGE_EVERY                         # nothing old enough to purge yet
    _advance(cast.world, 2 * PURGE_GRACE)
    fresh = [_issue(cast.world, ttl=3600) for _ in range(PURGE_EVERY)]
    assert rows() == PURGE_EVERY                                  # the 266 expired a day ago are gone
    assert _verify(cast.world, fresh[-1])["client_id"] == "dpi"
    with refused("TOKEN_INVALID"):
        _verify(cast.world, old[0])
