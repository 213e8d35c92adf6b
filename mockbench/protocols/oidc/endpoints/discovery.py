"""Discovery (OIDC Discovery 1.0, `/.well-known/openid-configuration`, and PSC's wallet variant) and the JWKS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ....world.model import Professional
from .. import claims as claims_mod
from ..exchange import Exchange, Result
from ..grants import CIBA_GRANT
from ..profiles import SIGNING_ALGS
from .base import Endpoint

if TYPE_CHECKING:
    from ..provider import Provider


def discovery_document(provider: Provider) -> dict:
    """OIDC Discovery 1.0 section 3, with the endpoints of RFC 7662, RFC 7009, RP-Initiated Logout and CIBA."""
    p = provider.profile
    methods = sorted({m for c in p.clients.values() for m in c.auth_methods} |
                     {"client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"})
    doc = {
        "issuer": provider.issuer,
        "authorization_endpoint": provider.url("authorize"),
        "token_endpoint": provider.url("token"),
        "userinfo_endpoint": provider.url("userinfo"),
        "jwks_uri": provider.url("jwks"),
        "end_session_endpoint": provider.url("logout"),
        "introspection_endpoint": provider.url("introspect"),
        "revocation_endpoint": provider.url("revoke"),
        "backchannel_authentication_endpoint": provider.url("ciba"),
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", CIBA_GRANT],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256", "plain"],
        "scopes_supported": list(p.scopes),
        "claims_supported": sorted(_claim_names(provider)),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "tls_client_certificate_bound_access_tokens": False,
        "userinfo_signing_alg_values_supported": list(SIGNING_ALGS),
    }
    if p.acr:
        doc["acr_values_supported"] = [p.acr]
    return doc


def _claim_names(provider: Provider) -> set[str]:
    sample = Professional(id="x", idnps="x", family_name="", given_name="")
    base = {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "azp", "sid", "at_hash"}
    maker = claims_mod.psc_userinfo if provider.profile.psc else claims_mod.standard_userinfo
    with provider.world.transaction() as tx:
        return base | set(maker(provider.world, tx, sample))


class Jwks(Endpoint):
    """The issuer's signing keys (RFC 7517), the world's (world/tokens.py); cached a minute by clients."""

    name = "jwks"
    journal = None      # fetched often, journaled only when a fault slows it (Provider.handle)

    def __call__(self, ex: Exchange) -> Result:
        return 200, self.world.tokens.jwks(ex.tx), {"Cache-Control": "max-age=60"}
