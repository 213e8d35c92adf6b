"""The end-session endpoint (OIDC RP-Initiated Logout 1.0): the session of the id_token_hint ends (its tokens
are revoked), then the browser goes back to a registered post-logout URI or sees a page saying so."""

from __future__ import annotations

from ....world import errors
from ..errors import InvalidRequest
from ..exchange import HTML, Exchange, Result, redirect, with_query
from ..login import render_message
from .base import Endpoint


class Logout(Endpoint):
    name = "logout"
    journal = "logout"

    def __call__(self, ex: Exchange) -> Result:
        """OIDC RP-Initiated Logout 1.0: id_token_hint, post_logout_redirect_uri, state, client_id."""
        tx, params = ex.tx, ex.req.params
        hint = params.get("id_token_hint")
        client_id = params.get("client_id")
        sid = None
        if hint:
            try:
                claims = self.world.tokens.decode(tx, hint)
            except errors.TokenInvalid:
                raise InvalidRequest("id_token_hint is not signed by a key of this bench") from None
            if claims.get("iss") != self.issuer:
                raise InvalidRequest(f"id_token_hint was issued by {claims.get('iss')}, not {self.issuer}")
            if client_id and client_id != claims.get("aud"):
                raise InvalidRequest("client_id differs from the id_token_hint's audience")
            client_id = client_id or claims.get("aud")
            sid = claims.get("sid")
            ex.declare(actor=claims.get("SubjectNameID") or claims.get("sub", ""))
        uri = params.get("post_logout_redirect_uri")
        if uri:
            client = self.profile.clients.get(client_id or "")
            if client is None:
                raise InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id")
            if not client.allows_redirect(uri, client.post_logout_redirect_uris):
                raise InvalidRequest(f"post_logout_redirect_uri {uri} is not registered for {client.client_id}")
        if sid:
            self.world.tokens.revoke_session(tx, self.profile.name, sid)
        if uri:
            return redirect(with_query(uri, {"state": params.get("state")}))
        return 200, render_message("Vous êtes déconnecté", f"Session {self.profile.title} terminée."), \
            dict(HTML)
