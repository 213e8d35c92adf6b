"""The refresh token grant (RFC 6749 section 6): the refresh token of this client and issuer, scopes no wider
than the original ones, within the session's maximum (PSC: the transport-security IG's "Cas d'erreur 1b")."""

from __future__ import annotations

from ..errors import InvalidGrant, InvalidScope
from ..exchange import Exchange
from ..issuance import mint_tokens
from ..profiles import Client
from .base import Grant


class RefreshTokenGrant(Grant):
    grant_type = "refresh_token"

    def issue(self, ex: Exchange, client: Client) -> dict:
        tx, form = ex.tx, ex.req.form
        # Journaled as `refresh`, not `token`: a scenario tells a session kept alive from a new login (PSC.02).
        ex.declare(operation="refresh")
        token = form.get("refresh_token", "")
        row = self.world.tokens.verify(tx, token, kind="refresh")   # TokenInvalid -> invalid_grant
        data = row.get("data", {})
        if data.get("issuer") != self.profile.name or row["client_id"] != client.client_id:
            raise InvalidGrant("the refresh token was issued to another client or by another issuer")
        pro = self.world.directory.professional(tx, row["professional"])
        ex.declare(actor=pro.idnps)
        scopes = form.get("scope", "").split() or row["scopes"]
        if not set(scopes) <= set(row["scopes"]):
            raise InvalidScope("a refresh cannot widen the scopes")
        if self.profile.session_max is not None and data.get("auth_time") is not None and \
                self.world.clock.timestamp() >= data["auth_time"] + self.profile.session_max:
            # the IG's "Cas d'erreur 1b": past the session's maximum the professional logs in again
            raise InvalidGrant("Session not active: the session is older than its maximum; authenticate again")
        return mint_tokens(self.provider, tx, client, pro, scopes, sid=data.get("sid"),
                           auth_time=data.get("auth_time"), refresh=token, auth_mode=data.get("auth_mode", "CARD"), ex=ex)
