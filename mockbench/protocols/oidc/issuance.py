"""What a successful grant answers: the token response (access, refresh and ID tokens) as each issuer shapes
it, and PSC's signed access token. The tokens themselves are the world's (world/tokens.py)."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from ...world.model import Professional
from ...world.store import Tx
from . import claims as claims_mod
from .exchange import b64url
from .profiles import Client

if TYPE_CHECKING:
    from .exchange import Exchange
    from .provider import Provider


def mint_tokens(provider: Provider, tx: Tx, client: Client, pro: Professional, scopes: list[str], *,
                nonce: str | None = None, sid: str | None = None, auth_time: int | None = None,
                refresh: str | None = None, auth_mode: str = "CARD", ex: Exchange | None = None) -> dict:
    """The token response. PSC (a Keycloak realm) answers a refresh with a new refresh token whose life
    slides (30 minutes, capped by the session's maximum) and adds `session_state`; its access token is a
    signed JWT (`_psc_access_token`). The establishment's provider keeps its refresh token and opaque
    access tokens. `ex`: the exchange, whose signatures made ahead and jti are used (Exchange.signatures)."""
    tokens = provider.world.tokens
    memo = ex.signatures if ex is not None else None
    jti = (ex.jti if ex is not None else "") or str(uuid.uuid4())
    now = int(provider.world.clock.timestamp())
    auth_time = auth_time or now
    data = {"issuer": provider.profile.name, "sid": sid, "auth_time": auth_time, "auth_mode": auth_mode}
    if nonce:
        data["nonce"] = nonce
    body: dict[str, Any] = {}
    if refresh is None or provider.profile.psc:
        refresh_ttl = provider.ttl("refresh")
        if provider.profile.session_max is not None:
            refresh_ttl = max(1.0, min(refresh_ttl, auth_time + provider.profile.session_max - now))
        refresh = tokens.issue(tx, professional=pro.id, client_id=client.client_id, scopes=scopes,
                               kind="refresh", ttl=refresh_ttl, data=data)
        body["refresh_token"] = refresh
        body["refresh_expires_in"] = int(refresh_ttl)
    access_ttl = provider.ttl("access")
    access_data = {**data, "refresh": tokens.refresh_hash(refresh)}
    value = _psc_access_token(provider, tx, client, pro, scopes, access_data, now, access_ttl, jti, memo) \
        if provider.profile.psc else None
    access = tokens.issue(tx, professional=pro.id, client_id=client.client_id, scopes=scopes, kind="access",
                          ttl=access_ttl, data=access_data, token=value)
    claims = {"iss": provider.issuer, "sub": subject(provider, pro), "aud": client.client_id,
              "azp": client.client_id, "iat": now, "exp": now + int(provider.ttl("id_token")),
              "auth_time": auth_time, "at_hash": b64url(hashlib.sha256(access.encode()).digest()[:16]),
              "preferred_username": pro.idnps if provider.profile.psc else pro.id,
              "given_name": pro.given_name, "family_name": pro.family_name}
    if sid:
        claims["sid"] = sid
    if nonce:
        claims["nonce"] = nonce
    if provider.profile.acr:
        claims["acr"] = provider.profile.acr
    if provider.profile.psc:
        claims.update(typ="ID", session_state=sid, SubjectNameID=pro.idnps)
        body["session_state"] = sid      # read by the ANS's CIBA proxy (psc-edc-proxy-esante)
    id_token = tokens.sign(tx, claims, client.id_token_alg, memo)
    return {"access_token": access, "token_type": "Bearer", "expires_in": int(access_ttl),
            "id_token": id_token, "scope": " ".join(scopes), **body}


def subject(provider: Provider, pro: Professional) -> str:
    """PSC's opaque sub (claims.psc_subject); the establishment's provider keys on the IDNPS."""
    return claims_mod.psc_subject(pro) if provider.profile.psc else pro.idnps


def _psc_access_token(provider: Provider, tx: Tx, client: Client, pro: Professional, scopes: list[str], data: dict,
                      now: int, ttl: float, jti: str, memo: dict[tuple[str, str, str], str] | None) -> str:
    """PSC's access token is a signed JWT, as the ANS's CIBA proxy reads it (ansforge/psc-edc-proxy-esante,
    SessionTests: `session_state`, `azp`, `typ` Bearer), with the claims that PSC's introspection page
    lists (industriels.esante.gouv.fr, "Pro Santé Connect - Introspection", "La réponse du serveur":
    exp, iat, auth_time, jti, iss, sub, typ, azp, nonce; SubjectNameID for an access token)."""
    claims = {"exp": now + int(ttl), "iat": now, "auth_time": data["auth_time"], "jti": jti,
              "iss": provider.issuer, "sub": subject(provider, pro), "typ": "Bearer", "azp": client.client_id,
              "session_state": data.get("sid"), "sid": data.get("sid"), "acr": provider.profile.acr,
              "scope": " ".join(scopes), "SubjectNameID": pro.idnps, "preferred_username": pro.idnps}
    if data.get("nonce"):
        claims["nonce"] = data["nonce"]
    return provider.world.tokens.sign(tx, claims, "RS256", memo)
