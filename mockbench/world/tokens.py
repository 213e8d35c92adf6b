"""Access and refresh tokens, and the keys the OIDC door signs ID tokens with.

Tokens are opaque random strings bound to a professional, a client and scopes, with an expiry on the
virtual clock (so a test can move time past it). Only their SHA-256 is stored. The MSSanté door verifies
the bearer tokens that the OIDC door issued through this one service.

Signing keys (RS256 and ES256) are made on first use, not at start-up (an RSA key costs tens of
milliseconds), and kept across resets: a relying party that cached the JWKS must not see it change
because a test reset the world. Rotation publishes the new key at once and keeps the previous one in the
JWKS for a grace period, so tokens signed just before still verify.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from . import errors
from .store import Tx

if TYPE_CHECKING:
    from .world import World

KEYS_META = "keep:signing-keys"
ALGORITHMS = ("RS256", "ES256")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# joserfc is imported where it is used: it costs start-up time, and most runs sign nothing.
def _new_key(alg: str, kid: str) -> dict:
    from joserfc.jwk import ECKey, RSAKey

    key = RSAKey.generate_key(2048) if alg == "RS256" else ECKey.generate_key("P-256")
    data = key.as_dict(private=True)
    data.update(kid=kid, alg=alg, use="sig")
    return data


def _import(data: dict) -> Any:
    from joserfc.jwk import ECKey, RSAKey

    return (RSAKey if data["kty"] == "RSA" else ECKey).import_key(data)


PURGE_EVERY = 256          # issuances between two purges of long-expired rows
PURGE_GRACE = 86400.0      # an expired row is kept a day (virtual clock): "expired" rather than "unknown"


class Tokens:
    def __init__(self, world: World) -> None:
        self.world = world
        # Imported private keys by kid: importing an RSA key checks it (~60 ms); a kid's key never changes.
        self._imported: dict[str, Any] = {}
        self._issued = 0

    def purge_expired(self, tx: Tx) -> int:
        """Delete the rows of the `tokens` table (tokens, OIDC codes, logins, CIBA requests, JWT ids) that
        expired more than PURGE_GRACE ago, so that a long-running bench does not grow with them; how many."""
        cutoff = self.world.clock.timestamp() - PURGE_GRACE
        cursor = tx.conn.execute("DELETE FROM tokens WHERE ns = ? AND json_extract(data, '$.expires_at') < ?",
                                 (tx.ns, cutoff))
        return cursor.rowcount

    # Tokens -------------------------------------------------------------------------------------
    def issue(self, tx: Tx, *, professional: str, client_id: str, scopes: list[str] | tuple[str, ...] = (),
              kind: str = "access", ttl: float = 300.0, data: dict | None = None, token: str | None = None) -> str:
        """A new token (random unless `token` gives its value, e.g. a signed JWT), stored by its hash."""
        if kind not in ("access", "refresh"):
            raise ValueError("a token is an access or a refresh token")
        if professional:
            self.world.directory.professional(tx, professional)
        token = token or secrets.token_urlsafe(32)
        now = self.world.clock.timestamp()
        row = {"kind": kind, "professional": professional, "client_id": client_id, "scopes": list(scopes),
               "issued_at": now, "expires_at": now + ttl, "revoked": False, "data": data or {}}
        tx.put("tokens", row, token_hash=_hash(token), kind=kind)
        self._issued += 1
        if self._issued % PURGE_EVERY == 0:
            self.purge_expired(tx)
        return token

    def verify(self, tx: Tx, token: str, *, kind: str = "access", scope: str | None = None) -> dict:
        row = tx.get("tokens", token_hash=_hash(token or ""))
        if row is None or row["kind"] != kind:
            raise errors.TokenInvalid(f"unknown {kind} token")
        if row["revoked"]:
            raise errors.TokenRevoked(f"the {kind} token was revoked")
        if row["expires_at"] <= self.world.clock.timestamp():
            raise errors.TokenExpired(f"the {kind} token expired")
        if scope is not None and scope not in row["scopes"]:
            raise errors.TokenInvalid(f"the token lacks the scope {scope}")
        return row

    def revoke(self, tx: Tx, token: str) -> bool:
        """RFC 7009: revoking an unknown token is not an error. Revoking a refresh token also revokes the
        access tokens issued with it (bound through `data.refresh`)."""
        digest = _hash(token or "")
        row = tx.get("tokens", token_hash=digest)
        if row is None:
            return False
        row["revoked"] = True
        tx.put("tokens", row, token_hash=digest, kind=row["kind"])
        if row["kind"] == "refresh":
            linked = tx.conn.execute("SELECT token_hash, data FROM tokens WHERE ns = ? AND kind = 'access'",
                                     (tx.ns,)).fetchall()
            for other_hash, raw in linked:
                other = json.loads(raw)
                if other.get("data", {}).get("refresh") == digest and not other["revoked"]:
                    other["revoked"] = True
                    tx.put("tokens", other, token_hash=other_hash, kind="access")
        return True

    def revoke_hash(self, tx: Tx, token_hash: str) -> None:
        """Revoke the access or refresh token stored under `token_hash` (an OIDC code reused: the tokens
        issued with it), if it is one and still valid."""
        row = tx.get("tokens", token_hash=token_hash)
        if row is not None and row.get("kind") in ("access", "refresh") and not row["revoked"]:
            row["revoked"] = True
            tx.put("tokens", row, token_hash=token_hash, kind=row["kind"])

    def revoke_session(self, tx: Tx, issuer: str, sid: str) -> None:
        """OIDC RP-Initiated Logout: revoke every access and refresh token that `issuer` (an OIDC profile's
        name) issued in the session `sid`."""
        rows = tx.conn.execute("SELECT token_hash, data FROM tokens WHERE ns = ? AND kind IN ('access', 'refresh')",
                               (tx.ns,)).fetchall()
        for token_hash, raw in rows:
            data = json.loads(raw).get("data", {})
            if data.get("sid") == sid and data.get("issuer") == issuer:
                self.revoke_hash(tx, token_hash)

    def introspect(self, tx: Tx, token: str) -> dict[str, Any]:
        """RFC 7662 shape: {"active": false} for anything not valid now."""
        for kind in ("access", "refresh"):
            try:
                row = self.verify(tx, token, kind=kind)
            except errors.TokenInvalid:
                continue
            return {"active": True, "token_type": kind, "client_id": row["client_id"],
                    "sub": row["professional"], "scope": " ".join(row["scopes"]),
                    "iat": int(row["issued_at"]), "exp": int(row["expires_at"])}
        return {"active": False}

    def refresh_hash(self, token: str) -> str:
        return _hash(token)

    # Signing keys -------------------------------------------------------------------------------
    def _keys(self, tx: Tx) -> list[dict]:
        keys = tx.meta_get(KEYS_META)
        if not keys:
            now = self.world.clock.timestamp()
            keys = [{"jwk": _new_key(alg, f"{alg.lower()}-{secrets.token_hex(4)}"), "created": now,
                     "retire_at": None} for alg in ALGORITHMS]
            tx.meta_set(KEYS_META, keys)
        return keys

    def rotate(self, tx: Tx, *, grace: float = 86400.0) -> list[str]:
        """New active keys; the old ones stay published for `grace` seconds. Returns the new kids."""
        now = self.world.clock.timestamp()
        keys = [k for k in self._keys(tx) if k["retire_at"] is None or k["retire_at"] > now]
        for k in keys:
            if k["retire_at"] is None:
                k["retire_at"] = now + grace
        fresh: list[dict[str, Any]] = [{"jwk": _new_key(alg, f"{alg.lower()}-{secrets.token_hex(4)}"), "created": now,
                  "retire_at": None} for alg in ALGORITHMS]
        tx.meta_set(KEYS_META, fresh + keys)
        return [k["jwk"]["kid"] for k in fresh]

    def jwks(self, tx: Tx) -> dict:
        now = self.world.clock.timestamp()
        public = []
        for k in self._keys(tx):
            if k["retire_at"] is None or k["retire_at"] > now:
                data = self._key(k["jwk"]).as_dict(private=False)
                data.update(kid=k["jwk"]["kid"], alg=k["jwk"]["alg"], use="sig")
                public.append(data)
        return {"keys": public}

    def active_key(self, tx: Tx, alg: str = "RS256") -> tuple[str, Any]:
        if alg not in ALGORITHMS:
            raise errors.InvalidRequest(f"no signing key for {alg}; the bench signs with {', '.join(ALGORITHMS)}")
        for k in self._keys(tx):
            if k["retire_at"] is None and k["jwk"]["alg"] == alg:
                return k["jwk"]["kid"], self._key(k["jwk"])
        raise errors.InvalidRequest(f"no active {alg} key")  # unreachable: _keys always holds one per alg

    def _key(self, jwk: dict) -> Any:
        if jwk["kid"] not in self._imported:
            self._imported[jwk["kid"]] = _import(jwk)
        return self._imported[jwk["kid"]]

    def sign(self, tx: Tx, claims: dict, alg: str = "RS256", memo: dict[tuple[str, str, str], str] | None = None) -> str:
        """`memo`: signatures made earlier for the same request (a dry run, protocols/oidc/provider.py), keyed by
        what a JWT depends on (the key's id, the algorithm, the claims' exact JSON), used when all are the same."""
        from joserfc import jwt

        kid, key = self.active_key(tx, alg)
        if memo is None:
            return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key)
        mark = (kid, alg, json.dumps(claims, separators=(",", ":"), ensure_ascii=False))
        token = memo.get(mark)
        if token is None:
            token = memo[mark] = jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key)
        return token

    def decode(self, tx: Tx, token: str) -> dict:
        """Verify a JWT signed by one of the published keys; returns its claims."""
        from joserfc import jwt
        from joserfc.jwk import KeySet

        keyset = KeySet.import_key_set({"keys": self.jwks(tx)["keys"]})   # the literal: joserfc's TypedDict
        try:
            return dict(jwt.decode(token, keyset, algorithms=list(ALGORITHMS)).claims)
        except Exception as exc:  # joserfc raises several unrelated classes for a bad token
            raise errors.TokenInvalid(f"the JWT does not verify: {exc}") from None
