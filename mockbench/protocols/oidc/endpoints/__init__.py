"""An issuer's endpoints, one class each (Authlib's shape), in modules of their own: discovery and JWKS,
authorization and login, token, userinfo, introspection and revocation, end session, CIBA's backchannel
authentication. The provider registers `ENDPOINTS`."""

from __future__ import annotations

from .authorize import Authorize, IssuerAuthorize, Login
from .base import Endpoint
from .ciba import Backchannel
from .discovery import Jwks, discovery_document
from .end_session import Logout
from .introspection import Introspect, Revoke
from .token import Token
from .userinfo import Userinfo

ENDPOINTS: tuple[type[Endpoint], ...] = (Authorize, Login, Token, Userinfo, Jwks, Logout, Introspect, Revoke,
                                         Backchannel, IssuerAuthorize)

__all__ = ["ENDPOINTS", "Authorize", "Backchannel", "Endpoint", "Introspect", "IssuerAuthorize", "Jwks", "Login",
           "Logout", "Revoke", "Token", "Userinfo", "discovery_document"]
