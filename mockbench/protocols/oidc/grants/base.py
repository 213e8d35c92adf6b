"""A grant type of the token endpoint, as Authlib shapes them: a class per `grant_type` that the provider
registers (`Provider.register_grant`), each given the authenticated client and the exchange."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..exchange import Exchange
from ..profiles import Client, Profile

if TYPE_CHECKING:
    from ....world.world import World
    from ..provider import Provider


class Grant:
    """One grant type (RFC 6749 section 4, CIBA 10.1): `issue` checks the request's grant and answers the
    token response, or raises an OAuthError."""

    grant_type: ClassVar[str]

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    @property
    def world(self) -> World:
        return self.provider.world

    @property
    def profile(self) -> Profile:
        return self.provider.profile

    def issue(self, ex: Exchange, client: Client) -> dict:
        raise NotImplementedError
