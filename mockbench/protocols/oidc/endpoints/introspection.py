"""Token introspection (RFC 7662) and revocation (RFC 7009), both for an authenticated client and about
this issuer's access and refresh tokens only."""

from __future__ import annotations

from ....world import errors
from ....world.model import Professional
from ....world.store import Tx
from ..clientauth import authenticate
from ..errors import InvalidRequest, UnauthorizedClient
from ..exchange import NO_STORE, Exchange, Result, token_hash
from ..issuance import subject
from .base import Endpoint


class _TokenManagement(Endpoint):
    def _token_row(self, tx: Tx, token: str) -> dict | None:
        row = tx.get("tokens", token_hash=token_hash(token or ""))
        if row is None or row.get("kind") not in ("access", "refresh") or \
                row.get("data", {}).get("issuer") != self.profile.name:
            return None
        return row


class Introspect(_TokenManagement):
    name = "introspect"
    journal = "introspect"

    def __call__(self, ex: Exchange) -> Result:
        tx = ex.tx
        client = authenticate(self.provider, ex, "introspect")
        token = ex.req.form.get("token", "")
        if not token:
            raise InvalidRequest("token is required (RFC 7662 section 2.1)")
        result = self.world.tokens.introspect(tx, token)
        row = self._token_row(tx, token)
        if not result["active"] or row is None:
            return 200, {"active": False}, dict(NO_STORE)
        pro = self.world.directory.professional(tx, row["professional"])
        ex.declare(actor=client.client_id)
        if self.profile.psc:
            try:
                return 200, self._psc_introspection(tx, token, row, pro), dict(NO_STORE)
            except errors.TokenInvalid:      # signed with a key retired since: no longer verifiable
                return 200, {"active": False}, dict(NO_STORE)
        result.update(sub=pro.idnps, username=pro.idnps, iss=self.issuer, aud=row["client_id"])
        if self.profile.acr:
            result["acr"] = self.profile.acr
        return 200, result, dict(NO_STORE)

    def _psc_introspection(self, tx: Tx, token: str, row: dict, pro: Professional) -> dict:
        """As PSC's introspection page says (industriels.esante.gouv.fr, "Pro Santé Connect - Introspection",
        "La réponse du serveur"): exp, iat, auth_time, jti, iss, sub, typ, azp, nonce; SubjectNameID only when
        the token introspected is the access token ("Le champ SubjectNameID")."""
        data = row.get("data", {})
        if row["kind"] == "access":
            claims = self.world.tokens.decode(tx, token)     # the access token's own claims
        else:
            claims = {"exp": int(row["expires_at"]), "iat": int(row["issued_at"]),
                      "auth_time": data.get("auth_time"), "jti": token_hash(token)[:36], "iss": self.issuer,
                      "sub": subject(self.provider, pro), "typ": "Refresh", "azp": row["client_id"],
                      "session_state": data.get("sid"), "sid": data.get("sid"), "scope": " ".join(row["scopes"])}
            if data.get("nonce"):
                claims["nonce"] = data["nonce"]
        return {**claims, "active": True, "client_id": row["client_id"], "username": pro.idnps,
                "token_type": "Bearer" if row["kind"] == "access" else "Refresh"}


class Revoke(_TokenManagement):
    name = "revoke"
    journal = "revoke"

    def __call__(self, ex: Exchange) -> Result:
        tx = ex.tx
        client = authenticate(self.provider, ex, "revoke")
        token = ex.req.form.get("token", "")
        if not token:
            raise InvalidRequest("token is required (RFC 7009 section 2.1)")
        row = self._token_row(tx, token)
        if row is not None:
            if row["client_id"] != client.client_id:
                raise UnauthorizedClient("the token was issued to another client (RFC 7009 section 2.1)")
            self.world.tokens.revoke(tx, token)
        return 200, "", dict(NO_STORE)
