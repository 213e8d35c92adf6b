"""The CIBA grant (CIBA Core 10.1, poll mode): the client polls the token endpoint with its auth_req_id; the
professional's answer is the one scripted for them (world/ciba.py): pending for some polls, then approve,
deny or never (expire). Polling faster than the interval is slow_down, which adds 5 s to it (section 11)."""

from __future__ import annotations

import secrets

from ..errors import AccessDenied, AuthorizationPending, ExpiredToken, InvalidGrant, SlowDown
from ..exchange import Exchange, token_hash
from ..issuance import mint_tokens
from ..profiles import Client
from .base import Grant

CIBA_GRANT = "urn:openid:params:grant-type:ciba"


class CibaGrant(Grant):
    grant_type = CIBA_GRANT

    def issue(self, ex: Exchange, client: Client) -> dict:
        tx, form = ex.tx, ex.req.form
        digest = token_hash(form.get("auth_req_id", ""))
        row = tx.get("tokens", token_hash=digest)
        if row is None or row.get("kind") != "oidc-ciba" or row["issuer"] != self.profile.name or \
                row["client_id"] != client.client_id:
            raise InvalidGrant("unknown auth_req_id")
        pro = self.world.directory.professional(tx, row["professional"])
        ex.declare(actor=pro.idnps)
        if row["done"]:
            raise InvalidGrant("the auth_req_id was already used")
        now = self.world.clock.timestamp()
        if now >= row["expires_at"]:
            raise ExpiredToken("the CIBA request expired before the professional answered")
        try:
            if row["last_poll"] is not None and now - row["last_poll"] < row["interval"]:
                row["interval"] += 5          # CIBA section 11: slow_down adds 5 s to every later interval
                raise SlowDown(f"poll at most every {row['interval']} s")
            row["polls"] += 1
            row["last_poll"] = now
            if row["outcome"] == "expire" or row["polls"] <= row["after_polls"]:
                raise AuthorizationPending("the professional has not answered yet")
            row["done"] = True
            if row["outcome"] == "deny":
                raise AccessDenied("the professional refused the request")
        except (SlowDown, AuthorizationPending) as exc:
            tx.put("tokens", row, token_hash=digest, kind="oidc-ciba")
            # A poll that waits is the protocol working: journaled as a CIBA poll, not as a refused token.
            ex.declare(operation="ciba", verdict="accepted", code=exc.error)
            raise
        except AccessDenied:
            tx.put("tokens", row, token_hash=digest, kind="oidc-ciba")
            raise
        tx.put("tokens", row, token_hash=digest, kind="oidc-ciba")
        return mint_tokens(self.provider, tx, client, pro, row["scopes"], sid=secrets.token_hex(8),
                           auth_time=int(now), auth_mode=row.get("channel") or "MOBILE")
