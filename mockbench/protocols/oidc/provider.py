"""The OIDC core: an issuer (`Provider`) that routes a path to one of its endpoints and answers a request with
(status, body, headers). No Flask here (door.py adapts it).

The endpoints (endpoints/) and the token endpoint's grant types (grants/) are classes the provider registers,
as Authlib's authorization server does; each is called with an `Exchange` (exchange.py): the transaction, the
request, and what the exchange's journal entry will say, passed explicitly rather than left in the
transaction. Each failure is an `OAuthError` (errors.py) with a stable `error` string and a status;
`Provider.handle` is the one place that turns them (and unexpected exceptions, as `server_error`) into a
response and journals the exchange. Codes, pending logins and CIBA requests live in the world store (the
`tokens` table, kinds `oidc-code`, `oidc-login`, `oidc-ciba`, `oidc-jti`): two benches never share them and a
restarted bench keeps them. Access and refresh tokens and the signing keys are the world's token service
(world/tokens.py), which the MSSanté door also checks.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...world import errors
from ...world.store import UNAVAILABLE
from .endpoints import ENDPOINTS, Endpoint, discovery_document
from .endpoints.ciba import BINDING_MESSAGE, CIBA_CHANNELS, ciba_script
from .errors import (
    AccessDenied,
    AuthorizationPending,
    EndpointNotHere,
    ExpiredToken,
    InvalidBindingMessage,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    LoginRequired,
    OAuthError,
    RedirectRefusal,
    ServerError,
    SlowDown,
    UnauthorizedClient,
    UnknownUserId,
    UnsupportedGrantType,
    UnsupportedResponseType,
    from_world,
)
from .exchange import NO_STORE, Exchange, Request, Result, answer_text, masked, redirect, with_query
from .grants import CIBA_GRANT, GRANTS, Grant
from .issuance import subject
from .profiles import (
    AUTH_METHODS,
    BACKCHANNEL_ENDPOINTS,
    DEFAULT_CLIENT,
    ETAB_ENDPOINTS,
    PSC_ACCESS_TTL,
    PSC_ENDPOINTS,
    PSC_REFRESH_TTL,
    PSC_SESSION_MAX,
    PSC_WALLET_ENDPOINTS,
    PSC_WALLET_PATH,
    SIGNING_ALGS,
    Client,
    Limits,
    Profile,
    profiles_from_config,
)

if TYPE_CHECKING:
    from ...world.model import Professional
    from ...world.world import World

log = logging.getLogger("mockbench.oidc")

# What the door and the tests import from here (the modules above are where each is defined).
__all__ = [
    "AUTH_METHODS", "BACKCHANNEL_ENDPOINTS", "BINDING_MESSAGE", "CIBA_CHANNELS", "CIBA_GRANT", "DEFAULT_CLIENT",
    "ETAB_ENDPOINTS", "NO_STORE", "PSC_ACCESS_TTL", "PSC_ENDPOINTS", "PSC_REFRESH_TTL", "PSC_SESSION_MAX",
    "PSC_WALLET_ENDPOINTS", "PSC_WALLET_PATH", "SIGNING_ALGS", "AccessDenied", "AuthorizationPending", "Client",
    "EndpointNotHere", "Exchange", "ExpiredToken", "InvalidBindingMessage", "InvalidClient", "InvalidGrant",
    "InvalidRequest", "InvalidScope", "InvalidToken", "Limits", "LoginRequired", "OAuthError", "Profile",
    "Provider", "Request", "Result", "ServerError", "SlowDown", "UnauthorizedClient", "UnknownUserId",
    "UnsupportedGrantType", "UnsupportedResponseType", "ciba_script", "from_world", "profiles_from_config",
]


class Provider:
    """One issuer (PSC or the establishment's provider): its URLs, its registered endpoints and grants."""

    def __init__(self, world: World, profile: Profile, base_url: Callable[[], str],
                 limits: Limits | None = None, *, back_url: Callable[[], str] | None = None) -> None:
        self.world = world
        self.profile = profile
        self._base_url = base_url            # the bench's URL (--public-url or the bound address)
        self._back_url = back_url or base_url   # what servers call (--backchannel-url), issue 18 point 5
        self.limits = limits or Limits()
        self.endpoints: dict[str, Endpoint] = {}
        self.grants: dict[str, Grant] = {}
        for endpoint in ENDPOINTS:
            self.register_endpoint(endpoint)
        for grant in GRANTS:
            self.register_grant(grant)

    def register_endpoint(self, cls: type[Endpoint]) -> None:
        self.endpoints[cls.name] = cls(self)

    def register_grant(self, cls: type[Grant]) -> None:
        self.grants[cls.grant_type] = cls(self)

    # URLs ---------------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self._base_url() + self.profile.path

    @property
    def wallet(self) -> str:
        """The base of the endpoints served apart from the issuer (PSC's wallet host)."""
        return self.profile.wallet_url or self._base_url() + self.profile.wallet_path

    def url(self, endpoint: str) -> str:
        if endpoint in self.profile.wallet_endpoints:
            return self.wallet + self.profile.wallet_endpoints[endpoint]
        if endpoint in BACKCHANNEL_ENDPOINTS:   # called by the client's server, not through the browser
            return self._back_url() + self.profile.path + self.profile.endpoints[endpoint]
        return self.issuer + self.profile.endpoints[endpoint]

    def route(self, subpath: str) -> str | None:
        """The endpoint name for a path under the issuer, or None."""
        if subpath in self.profile.discovery:
            return "discovery"
        for name, path in self.profile.endpoints.items():
            if path == subpath:
                return name
        return None

    def route_wallet(self, subpath: str) -> str | None:
        """The endpoint name for a path under the wallet base, or None."""
        for name, path in self.profile.wallet_endpoints.items():
            if path == subpath:
                return name
        return None

    def ttl(self, kind: str) -> float:
        """access, refresh or id_token lifetime: the profile's, else the door's Limits."""
        own = getattr(self.profile, f"{kind}_ttl")
        return float(own if own is not None else getattr(self.limits, f"{kind}_ttl"))

    def subject(self, pro: Professional) -> str:
        """The `sub` this issuer gives a professional (issuance.subject)."""
        return subject(self, pro)

    def discovery(self) -> dict:
        return discovery_document(self)

    # Dispatch -----------------------------------------------------------------------------------
    def handle(self, endpoint: str, req: Request, *, fault: str | None = None) -> Result:
        """`fault`: the id of a fault rule that slows this exchange (world/faults.py), marked on its entry."""
        if endpoint == "discovery":
            return 200, self.discovery(), {}
        handler = self.endpoints[endpoint]
        journal_op = handler.journal
        if fault is not None and journal_op is None:
            journal_op = endpoint   # a slowed JWKS is journaled, so that the fault it met is seen
        signatures, jti = self._ahead(handler, req) if handler.speculative and self.world.store.shared else (None, "")
        with self.world.transaction() as tx:
            ex = Exchange(tx, req, actor=req.params.get("client_id", ""), signatures=signatures, jti=jti)
            status, body, headers, verdict = self._answer(handler, ex)
            if journal_op is not None:
                self.world.journal.append(
                    tx, "oidc", ex.operation or journal_op, actor=ex.actor or "", verdict=ex.verdict or verdict,
                    code=ex.code, raw=f"{self.profile.name} {req.method} {endpoint} {masked(req.params)}",
                    fault=fault, response=answer_text(status, body, headers))
        return status, body, headers

    def _ahead(self, handler: Endpoint, req: Request) -> tuple[dict[tuple[str, str, str], str], str]:
        """The signatures of a request made ahead, out of the write transaction (issue 21, point 3): the endpoint
        runs on a snapshot with its writes dropped, only to fill the memo that WorldTokens.sign keeps, keyed by
        the key's id, the algorithm and the claims' exact JSON. The request itself then runs in the write
        transaction as always, and takes a signature from the memo only when it signs the same claims with the
        same key (RS256 is deterministic: the same JWT): a world that changed meanwhile changes the claims, and
        that signature is made there. The dry run's answer, errors included, is dropped."""
        signatures: dict[tuple[str, str, str], str] = {}
        jti = str(uuid.uuid4())
        try:
            with self.world.read_snapshot(dry=True) as tx:
                handler(Exchange(tx, req, actor=req.params.get("client_id", ""), signatures=signatures, jti=jti))
        except Exception:   # nothing of the dry run is kept but its signatures
            pass
        return signatures, jti

    def _answer(self, handler: Endpoint, ex: Exchange) -> tuple[int, object, dict[str, str], str]:
        """(status, body, headers, verdict) of the endpoint's answer, its refusal or its failure; a refusal's
        error code is declared on the exchange. Refusals keep what the handler wrote (a reused code revokes
        its tokens, a CIBA poll counts); an unexpected failure undoes it (tx.savepoint, not a SAVEPOINT of our
        own: the transaction's memo of meta values is undone with it)."""
        try:
            with ex.tx.savepoint():
                try:
                    status, body, headers = handler(ex)
                    return status, body, headers, "accepted"
                except RedirectRefusal as refusal:
                    exc = refusal.error
                    ex.code = exc.error
                    return (*redirect(with_query(refusal.redirect_uri, {
                        "error": exc.error, "error_description": exc.description or None,
                        "state": refusal.state, "iss": self.issuer})), "refused")
                except (OAuthError, errors.WorldError) as exc:
                    err = exc if isinstance(exc, OAuthError) else from_world(exc)
                    ex.code = err.error
                    return (*self._error(err, ex.req), "error" if err.status >= 500 else "refused")
        except UNAVAILABLE:
            raise   # nothing can be stored, the journal entry neither: the app answers 507 or 503 (errors.py)
        except Exception:  # the one place where an unexpected failure becomes server_error
            log.exception("OIDC %s %s failed", self.profile.name, handler.name)
            ex.code = "server_error"
            return (*self._error(ServerError("the bench failed; see its log"), ex.req), "error")

    def _error(self, err: OAuthError, req: Request) -> Result:
        headers = dict(NO_STORE)
        if isinstance(err, InvalidToken):
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{err.description}"'
        elif isinstance(err, InvalidClient) and req.headers.get("authorization", "").lower().startswith("basic"):
            headers["WWW-Authenticate"] = f'Basic realm="{self.issuer}"'
        return err.status, err.body(), headers
