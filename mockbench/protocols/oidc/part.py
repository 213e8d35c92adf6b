"""What an endpoint and a grant both are: a part of one issuer's provider, reading its world, profile, limits
and URLs through it (endpoints/base.py, grants/base.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .profiles import Limits, Profile

if TYPE_CHECKING:
    from ...world.world import World
    from .provider import Provider


class ProviderPart:
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
