"""The userinfo endpoint (OIDC Core 5.3): the claims of the professional a bearer access token names."""

from __future__ import annotations

from ....world import errors
from ....world.model import Professional
from .. import claims as claims_mod
from ..errors import InvalidToken
from ..exchange import NO_STORE, Exchange, Result
from .base import Endpoint


class Userinfo(Endpoint):
    name = "userinfo"
    journal = "userinfo"

    def _bearer(self, ex: Exchange) -> tuple[dict, Professional]:
        tx, req = ex.tx, ex.req
        auth = req.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else req.form.get("access_token", "")
        if not token:
            raise InvalidToken("no bearer token (Authorization: Bearer ...)")
        try:
            row = self.world.tokens.verify(tx, token, kind="access")
        except errors.TokenInvalid as exc:
            raise InvalidToken(exc.message) from None
        if row.get("data", {}).get("issuer") != self.profile.name:
            raise InvalidToken(f"the token was not issued by {self.profile.title}")
        pro = self.world.directory.professional(tx, row["professional"])
        ex.declare(actor=pro.idnps)
        return row, pro

    def __call__(self, ex: Exchange) -> Result:
        """Plain JSON, or a JWT signed with the client's `userinfo_signed_response_alg` (OIDC Core 5.3.2:
        `application/jwt`, with iss and aud; OIDC Dynamic Client Registration 2)."""
        tx = ex.tx
        row, pro = self._bearer(ex)
        if "openid" not in row["scopes"]:
            raise InvalidToken("the token lacks the openid scope")
        if self.profile.psc:
            info = claims_mod.psc_userinfo(self.world, tx, pro, row.get("data", {}).get("auth_mode", "CARD"))
        else:
            info = claims_mod.standard_userinfo(self.world, tx, pro)
        client = self.profile.clients.get(row["client_id"])
        if client is not None and client.userinfo_alg:
            signed = self.world.tokens.sign(tx, {**info, "iss": self.issuer, "aud": client.client_id},
                                            client.userinfo_alg)
            return 200, signed, {**NO_STORE, "Content-Type": "application/jwt"}
        return 200, info, dict(NO_STORE)
