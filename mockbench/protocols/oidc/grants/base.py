"""A grant type of the token endpoint, as Authlib shapes them: a class per `grant_type` that the provider
registers (`Provider.register_grant`), each given the authenticated client and the exchange."""

from __future__ import annotations

from typing import ClassVar

from ..exchange import Exchange
from ..part import ProviderPart
from ..profiles import Client


class Grant(ProviderPart):
    """One grant type (RFC 6749 section 4, CIBA 10.1): `issue` checks the request's grant and answers the
    token response, or raises an OAuthError."""

    grant_type: ClassVar[str]

    def issue(self, ex: Exchange, client: Client) -> dict:
        raise NotImplementedError
