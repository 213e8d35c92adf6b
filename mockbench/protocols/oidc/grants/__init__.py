"""The token endpoint's grant types, one class each (Authlib's shape): the provider registers `GRANTS` in this
order. Neither client credentials nor token exchange is served: PSC and the establishment's provider are
used with these three."""

from __future__ import annotations

from .authorization_code import AuthorizationCodeGrant
from .base import Grant
from .ciba import CIBA_GRANT, CibaGrant
from .refresh_token import RefreshTokenGrant

GRANTS: tuple[type[Grant], ...] = (AuthorizationCodeGrant, RefreshTokenGrant, CibaGrant)

__all__ = ["CIBA_GRANT", "GRANTS", "AuthorizationCodeGrant", "CibaGrant", "Grant", "RefreshTokenGrant"]
