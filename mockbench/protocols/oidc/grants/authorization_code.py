"""The authorization code grant (RFC 6749 section 4.1.3) with PKCE (RFC 7636 section 4.6): a code is used
once (a second use revokes the tokens issued with it, section 4.1.2), by its client, before it expires, with
the authorization request's redirect_uri and the verifier of its code_challenge."""

from __future__ import annotations

import hashlib
import hmac

from ..errors import InvalidGrant
from ..exchange import Exchange, b64url, token_hash
from ..issuance import mint_tokens
from ..profiles import Client
from .base import Grant


class AuthorizationCodeGrant(Grant):
    grant_type = "authorization_code"

    def issue(self, ex: Exchange, client: Client) -> dict:
        tx, form = ex.tx, ex.req.form
        code = form.get("code", "")
        digest = token_hash(code)
        row = tx.get("tokens", token_hash=digest)
        if not code or row is None or row.get("kind") != "oidc-code" or row["issuer"] != self.profile.name:
            raise InvalidGrant("unknown authorization code")
        pro = self.world.directory.professional(tx, row["professional"])
        ex.declare(actor=pro.idnps)
        if row["client_id"] != client.client_id:
            raise InvalidGrant("the code was issued to another client")
        if row["used"]:
            # RFC 6749 section 4.1.2: a code used twice revokes the tokens issued with it.
            for issued in row["issued"]:
                self.world.tokens.revoke_hash(tx, issued)
            row["issued"] = []
            tx.put("tokens", row, token_hash=digest, kind="oidc-code")
            raise InvalidGrant("the authorization code was already used; its tokens are revoked")
        if row["expires_at"] <= self.world.clock.timestamp():
            raise InvalidGrant("the authorization code expired")
        if form.get("redirect_uri", "") != row["redirect_uri"]:
            raise InvalidGrant("redirect_uri differs from the authorization request's")
        challenge = row.get("code_challenge")
        verifier = form.get("code_verifier")
        if challenge:
            if not verifier:
                raise InvalidGrant("code_verifier is missing (the authorization request had a code_challenge)")
            computed = b64url(hashlib.sha256(verifier.encode()).digest()) \
                if row["code_challenge_method"] == "S256" else verifier
            if not hmac.compare_digest(computed, challenge):
                raise InvalidGrant("code_verifier does not match the code_challenge")
        elif verifier:
            raise InvalidGrant("code_verifier sent but the authorization request had no code_challenge")
        row["used"] = True
        body = mint_tokens(self.provider, tx, client, pro, row["scopes"], nonce=row.get("nonce"), sid=row["sid"],
                           auth_time=row["auth_time"], ex=ex)
        row["issued"] = [token_hash(body["access_token"])] + ([token_hash(body["refresh_token"])]
                                                          if "refresh_token" in body else [])
        tx.put("tokens", row, token_hash=digest, kind="oidc-code")
        return body
