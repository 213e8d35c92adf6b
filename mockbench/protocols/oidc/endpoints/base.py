"""An endpoint of an issuer, as Authlib shapes them: a class per endpoint that the provider registers
(`Provider.register_endpoint`), called with the exchange (the transaction, the request, what the journal entry
will say) and answering (status, body, headers) or raising an OAuthError."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..exchange import Exchange, Result
from ..profiles import Limits, Profile

if TYPE_CHECKING:
    from ....world.world import World
    from ..provider import Provider


class Endpoint:
    name: ClassVar[str]                      # the endpoint's name in Profile.endpoints / wallet_endpoints
    # the operation its exchanges are journaled (and fault rules matched) under; None: not journaled
    journal: ClassVar[str | None]

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    @property
    def world(self) -> World:
        return self.provider.world

    @property
    def profile(self) -> Profile:
        return self.provider.profile

    @property
    def limits(self) -> Limits:
        return self.provider.limits

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def url(self, endpoint: str) -> str:
        return self.provider.url(endpoint)

    def __call__(self, ex: Exchange) -> Result:
        raise NotImplementedError
