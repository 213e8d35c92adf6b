"""The token endpoint (RFC 6749 section 3.2): the client authenticates (clientauth.py), then the grant its
`grant_type` names (grants/) answers."""

from __future__ import annotations

from ..clientauth import authenticate
from ..errors import InvalidRequest, UnsupportedGrantType
from ..exchange import NO_STORE, Exchange, Result
from ..grants import CIBA_GRANT
from .base import Endpoint


class Token(Endpoint):
    name = "token"
    journal = "token"
    speculative = True

    def __call__(self, ex: Exchange) -> Result:
        req = ex.req
        if req.method != "POST":
            raise InvalidRequest("the token endpoint takes POST")
        grant_type = req.form.get("grant_type", "")
        client = authenticate(self.provider, ex, "token")
        grant = self.provider.grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType(f"grant_type {grant_type!r}: authorization_code, refresh_token or "
                                       f"{CIBA_GRANT}")
        return 200, grant.issue(ex, client), dict(NO_STORE)
