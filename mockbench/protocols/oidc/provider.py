"""The OIDC core: an issuer's endpoints as plain functions from a request to (status, body, headers).

No Flask here (flask.py adapts it). Each failure is an `OAuthError` subclass with a stable `error` string and
a status; `Provider.handle` is the one place that turns them (and unexpected exceptions, as `server_error`)
into a response and journals the exchange. Codes, pending logins and CIBA requests live in the world store
(the `tokens` table, kinds `oidc-code`, `oidc-login`, `oidc-ciba`, `oidc-jti`): two benches never share them
and a restarted bench keeps them. Access and refresh tokens and the signing keys are the world's token
service (world/tokens.py), which the MSSanté door also checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ...world import errors
from ...world.ciba import scripted_ciba
from ...world.clock import parse_duration
from ...world.model import Professional
from ...world.store import StorageFull, Tx
from . import claims as claims_mod
from .login import render_login, render_message

if TYPE_CHECKING:
    from ...world.world import World

log = logging.getLogger("mockbench.oidc")

Result = tuple[int, Any, dict[str, str]]      # body: dict (JSON), str (HTML) or "" (empty)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "none")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SIGNING_ALGS = ("RS256", "ES256")             # the world's signing keys (world/tokens.py)
CIBA_CHANNELS = ("CARD", "MOBILE")
# Keycloak's BackchannelAuthenticationEndpoint (keycloak/keycloak, services/src/main/java/org/keycloak/protocol/
# oidc/grants/ciba/endpoints/BackchannelAuthenticationEndpoint.java, BINDING_MESSAGE_VALIDATION): PSC is a
# Keycloak realm (specs/psc/mock_discovery_response.json), so its binding_message rule is this one.
BINDING_MESSAGE = re.compile(r"[a-zA-Z0-9\-._+/!?#]{1,50}")


# Errors ---------------------------------------------------------------------------------------------
class OAuthError(Exception):
    """RFC 6749 section 5.2 / OIDC Core 3.1.2.6 / CIBA 11: a stable `error` and a default status."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str = "") -> None:
        self.description = description
        super().__init__(description or self.error)

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description} if self.description \
            else {"error": self.error}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class LoginRequired(OAuthError):
    error = "login_required"


class InvalidToken(OAuthError):
    """RFC 6750 section 3.1: a bearer token that is unknown, expired or revoked."""

    error = "invalid_token"
    status = 401


class UnknownUserId(OAuthError):
    error = "unknown_user_id"


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class InvalidBindingMessage(OAuthError):
    """CIBA Core section 13: the binding_message is invalid or unacceptable."""

    error = "invalid_binding_message"


class EndpointNotHere(OAuthError):
    """A well-known endpoint asked for at a path where this issuer does not serve it."""

    error = "invalid_request"
    status = 404


def from_world(exc: errors.WorldError) -> OAuthError:
    """The OIDC wire form of every world error (STYLE.md: each door maps them all)."""
    if isinstance(exc, errors.TokenInvalid):
        return InvalidGrant(exc.message)
    if isinstance(exc, errors.UnknownProfessional):
        return LoginRequired(exc.message)
    if isinstance(exc, errors.NotFound | errors.InvalidRequest):
        return InvalidRequest(exc.message)
    return ServerError(f"{exc.code}: {exc.message}")


class _Refusal(Exception):
    """An OAuthError to answer as a redirect to a verified redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None) -> None:
        self.error, self.redirect_uri, self.state = error, redirect_uri, state


# Configuration --------------------------------------------------------------------------------------
@dataclass
class Client:
    client_id: str
    client_secret: str = ""
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    jwks: dict | None = None                   # public keys for private_key_jwt
    id_token_alg: str = "RS256"
    tls_subject_dn: str = ""                   # RFC 8705 tls_client_auth_subject_dn (RFC 4514 form)
    userinfo_alg: str = ""                     # userinfo_signed_response_alg: "" answers plain JSON

    @classmethod
    def from_config(cls, data: dict) -> Client:
        if not data.get("client_id"):
            raise ValueError("an OIDC client needs a client_id")
        methods = data.get("token_endpoint_auth_methods") or data.get("token_endpoint_auth_method") or (
            ["client_secret_basic", "client_secret_post"] + (["private_key_jwt"] if data.get("jwks") else [])
            if data.get("client_secret") else ["none"])
        if isinstance(methods, str):
            methods = [methods]
        unknown = [m for m in methods if m not in AUTH_METHODS]
        if unknown:
            raise ValueError(f"OIDC client {data['client_id']}: unknown auth method {unknown[0]} "
                             f"(known: {', '.join(AUTH_METHODS)})")
        if "tls_client_auth" in methods and not data.get("tls_client_auth_subject_dn"):
            raise ValueError(f"OIDC client {data['client_id']}: tls_client_auth needs tls_client_auth_subject_dn")
        for key in ("id_token_signed_response_alg", "userinfo_signed_response_alg"):
            if data.get(key, "RS256") not in SIGNING_ALGS:
                raise ValueError(f"OIDC client {data['client_id']}: {key} must be one of {', '.join(SIGNING_ALGS)}")
        return cls(client_id=data["client_id"], client_secret=data.get("client_secret", ""),
                   redirect_uris=list(data.get("redirect_uris", [])),
                   post_logout_redirect_uris=list(data.get("post_logout_redirect_uris", [])),
                   auth_methods=tuple(methods), jwks=data.get("jwks"),
                   id_token_alg=data.get("id_token_signed_response_alg", "RS256"),
                   tls_subject_dn=data.get("tls_client_auth_subject_dn", ""),
                   userinfo_alg=data.get("userinfo_signed_response_alg", ""))

    @property
    def public(self) -> bool:
        return self.auth_methods == ("none",)

    def allows_redirect(self, uri: str, registered: list[str] | None = None) -> bool:
        """Exact match, except the port of an http loopback URI (RFC 8252 section 7.3)."""
        registered = self.redirect_uris if registered is None else registered
        if uri in registered:
            return True
        try:
            got = urlsplit(uri)
            got.port  # noqa: B018 (a malformed port raises)
        except ValueError:
            return False
        if got.scheme != "http" or got.hostname not in LOOPBACK_HOSTS or "@" in got.netloc:
            return False
        for reg in registered:
            r = urlsplit(reg)
            if (r.scheme, r.hostname, r.path, r.query) == (got.scheme, got.hostname, got.path, got.query):
                return True
        return False


DEFAULT_CLIENT = {
    "client_id": "mockbench", "client_secret": "mockbench-secret",
    "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"],
    "post_logout_redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback",
                                  "http://127.0.0.1/logout", "http://localhost/logout",
                                  "http://127.0.0.1/", "http://localhost/"],
}


@dataclass
class Limits:
    code_ttl: float = 60.0          # RFC 6749 section 4.1.2: a maximum lifetime of 10 minutes is recommended
    login_ttl: float = 600.0        # a pending login page
    access_ttl: float = 300.0       # the establishment's defaults; PSC's come with its Profile
    refresh_ttl: float = 1800.0
    id_token_ttl: float = 300.0
    ciba_expires_in: float = 120.0  # CIBA section 7.3
    ciba_interval: int = 5          # CIBA section 7.3: default 5 s
    assertion_max_age: float = 300.0


@dataclass
class Profile:
    """One issuer: its path under the bench URL, its endpoint paths and its clients."""

    name: str                         # psc or etab
    path: str                         # e.g. /oidc/etab
    title: str
    endpoints: dict[str, str]         # endpoint name -> path under `path`
    clients: dict[str, Client]
    psc: bool = False
    discovery: tuple[str, ...] = ("/.well-known/openid-configuration",)
    acr: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email", "offline_access")
    # Endpoints served under another base than the issuer (PSC's wallet host): name -> path under wallet_path
    wallet_endpoints: dict[str, str] = field(default_factory=dict)
    wallet_path: str = ""             # the bench path serving them, e.g. /oidc/psc-wallet
    wallet_url: str = ""              # their advertised base; "" = the bench's URL + wallet_path
    # Lifetimes in seconds; None = the door's Limits
    access_ttl: float | None = None
    refresh_ttl: float | None = None
    id_token_ttl: float | None = None
    session_max: float | None = None  # after auth_time, no refresh (the SSO session's maximum)


PSC_ENDPOINTS = {
    # Not served here: PSC's authorization endpoint is on the wallet host (PSC_WALLET_ENDPOINTS). The path
    # answers 404 so that a client that builds it from the issuer fails as it would in production.
    "issuer_authorize": "/protocol/openid-connect/auth",
    "token": "/protocol/openid-connect/token", "userinfo": "/protocol/openid-connect/userinfo",
    "jwks": "/protocol/openid-connect/certs", "logout": "/protocol/openid-connect/logout",
    "introspect": "/protocol/openid-connect/token/introspect", "revoke": "/protocol/openid-connect/revoke",
    "ciba": "/protocol/openid-connect/ext/ciba/auth",
}
# specs/psc/mock_discovery_response.json and the CIBA page's endpoint table (industriels.esante.gouv.fr,
# "Pro Santé Connect - CIBA", "Les endpoints de ProSantéConnect"): authorization_endpoint is
# https://wallet.bas.psc.esante.gouv.fr/auth while the issuer is https://auth.bas.psc.esante.gouv.fr/auth/realms/
# esante-wallet. On the bench the wallet is another base (configurable, default /oidc/psc-wallet).
# The endpoints a relying party's server calls directly (OIDC Core 3.1.3, 5.3; RFC 7662, 7009; CIBA 7), which
# discovery advertises on the back-channel base; authorize, login and logout go through the browser.
BACKCHANNEL_ENDPOINTS = frozenset({"token", "userinfo", "jwks", "introspect", "revoke", "ciba"})
PSC_WALLET_PATH = "/oidc/psc-wallet"
PSC_WALLET_ENDPOINTS = {"authorize": "/auth", "login": "/auth/login"}
# The transport-security IG (ansforge/IG-securisation-transport-api-rest, input/pagecontent/
# api_prosanteconnectee_web_erreurs.md, "Cas d'erreur 1a" and "1b"): PSC's access token (the subject_token)
# lives 2 minutes, its refresh token 30 minutes, the session 4 hours at most.
PSC_ACCESS_TTL = 120.0
PSC_REFRESH_TTL = 1800.0
PSC_SESSION_MAX = 4 * 3600.0
ETAB_ENDPOINTS = {
    "authorize": "/authorize", "login": "/login", "token": "/token", "userinfo": "/userinfo", "jwks": "/jwks",
    "logout": "/logout", "introspect": "/introspect", "revoke": "/revoke", "ciba": "/ciba",
}


def _lifetimes(name: str, own: dict, defaults: dict[str, float | None]) -> dict[str, float | None]:
    """`access_token_lifetime`, `refresh_token_lifetime`, `id_token_lifetime`, `session_lifetime` (30s, 2m...)."""
    out = dict(defaults)
    for key, attr in (("access_token_lifetime", "access_ttl"), ("refresh_token_lifetime", "refresh_ttl"),
                      ("id_token_lifetime", "id_token_ttl"), ("session_lifetime", "session_max")):
        if key in own:
            try:
                out[attr] = parse_duration(own[key])
            except ValueError as exc:
                raise ValueError(f"{name}.{key}: {exc}") from None
            if out[attr] <= 0:
                raise ValueError(f"{name}.{key} must be positive")
    return out


def _wallet_url(own: dict) -> tuple[str, str]:
    """(advertised wallet base, bench path serving it) from `[doors.oidc.psc] wallet_url`."""
    url = str(own.get("wallet_url", "") or "").rstrip("/")
    if not url:
        return "", PSC_WALLET_PATH
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"psc.wallet_url {url!r} must be an absolute http(s) URL without query")
    if not parts.path.startswith("/oidc/") or parts.path.startswith("/oidc/psc/") or \
            parts.path.startswith("/oidc/etab"):
        raise ValueError(f"psc.wallet_url {url!r}: its path must be under /oidc/ (the bench serves it there) "
                         "and apart from the issuers' paths, e.g. http://wallet.localhost:8080/oidc/psc-wallet")
    return url, parts.path


def profiles_from_config(settings: dict) -> list[Profile]:
    """`[doors.oidc]`: `default_client = false` drops the `mockbench` client; `[[doors.oidc.psc.clients]]`
    and `[[doors.oidc.etab.clients]]` add clients (client_id, client_secret, redirect_uris,
    post_logout_redirect_uris, token_endpoint_auth_method(s), jwks, id_token_signed_response_alg,
    userinfo_signed_response_alg). `[doors.oidc.psc] wallet_url` moves PSC's authorization endpoint; both
    issuers take `access_token_lifetime`, `refresh_token_lifetime`, `id_token_lifetime`, `session_lifetime`."""
    out = []
    for name, path, title, endpoints, psc in (
            ("psc", "/oidc/psc/auth/realms/esante-wallet", "Pro Santé Connect", PSC_ENDPOINTS, True),
            ("etab", "/oidc/etab", "Fournisseur d'identité de l'établissement", ETAB_ENDPOINTS, False)):
        own = settings.get(name, {}) or {}
        clients: dict[str, Client] = {}
        if settings.get("default_client", True) and own.get("default_client", True):
            clients["mockbench"] = Client.from_config(DEFAULT_CLIENT)
        for c in own.get("clients", []):
            client = Client.from_config(c)
            clients[client.client_id] = client
        if psc:
            wallet_url, wallet_path = _wallet_url(own)
            out.append(Profile(name, path, title, endpoints, clients, psc=True, acr="eidas1",
                               discovery=("/.well-known/wallet-openid-configuration",
                                          "/.well-known/openid-configuration"),
                               scopes=("openid", "scope_all", "offline_access"),
                               wallet_endpoints=dict(PSC_WALLET_ENDPOINTS), wallet_path=wallet_path,
                               wallet_url=wallet_url,
                               **_lifetimes(name, own, {"access_ttl": PSC_ACCESS_TTL, "refresh_ttl": PSC_REFRESH_TTL,
                                                        "id_token_ttl": PSC_ACCESS_TTL,
                                                        "session_max": PSC_SESSION_MAX})))
        else:
            out.append(Profile(name, path, title, endpoints, clients,
                               **_lifetimes(name, own, {"access_ttl": None, "refresh_ttl": None,
                                                        "id_token_ttl": None, "session_max": None})))
    return out


@dataclass
class Request:
    """What the core needs from an HTTP request. `headers` keys are lower case."""

    method: str
    args: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    client_cert: str | None = None             # PEM of the TLS client certificate (HTTPS port only)

    @property
    def params(self) -> dict[str, str]:
        return {**self.args, **self.form}


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _redirect(uri: str) -> Result:
    return 302, "", {"Location": uri, **NO_STORE}


def _answer_text(status: int, body: Any, headers: dict[str, str]) -> str:
    """The answer as the journal keeps it: the status, a redirect's Location, the body (JSON or HTML)."""
    lines = [f"HTTP {status}"]
    if headers.get("Location"):
        lines.append(f"Location: {headers['Location']}")
    if body not in ("", None):
        lines.append("")
        lines.append(json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else str(body))
    return "\n".join(lines)


def _masked(params: dict[str, str]) -> str:
    hidden = ("client_secret", "code_verifier", "client_assertion", "password")
    return urlencode({k: ("***" if k in hidden else v) for k, v in params.items()})


# The core -------------------------------------------------------------------------------------------
class Provider:
    def __init__(self, world: World, profile: Profile, base_url: Callable[[], str],
                 limits: Limits | None = None, *, back_url: Callable[[], str] | None = None) -> None:
        self.world = world
        self.profile = profile
        self._base_url = base_url            # the bench's URL (--public-url or the bound address)
        self._back_url = back_url or base_url   # what servers call (--backchannel-url), issue 18 point 5
        self.limits = limits or Limits()
        self.handlers: dict[str, Callable[[Tx, Request], Result]] = {
            "authorize": self.authorize, "login": self.login, "token": self.token, "userinfo": self.userinfo,
            "jwks": self.jwks, "logout": self.logout, "introspect": self.introspect, "revoke": self.revoke,
            "ciba": self.ciba, "issuer_authorize": self.issuer_authorize,
        }

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

    # Dispatch -----------------------------------------------------------------------------------
    def handle(self, endpoint: str, req: Request, *, fault: str | None = None) -> Result:
        """`fault`: the id of a fault rule that slows this exchange (world/faults.py), marked on its entry."""
        if endpoint == "discovery":
            return 200, self.discovery(), {}
        journal_op = {"jwks": None, "login": "login", "issuer_authorize": "authorize"}.get(endpoint, endpoint)
        if fault is not None and journal_op is None:
            journal_op = endpoint   # a slowed JWKS is journaled, so that the fault it met is seen
        with self.world.transaction() as tx:
            tx.scratch["oidc"] = {"actor": req.params.get("client_id", ""), "code": None}
            # Refusals keep what the handler wrote (a reused code revokes its tokens, a CIBA poll counts);
            # an unexpected failure undoes it.
            # (tx.savepoint, not a SAVEPOINT of our own: the transaction's memo of meta values is undone with it)
            try:
                with tx.savepoint():
                    try:
                        status, body, headers = self.handlers[endpoint](tx, req)
                        verdict = "accepted"
                    except _Refusal as refusal:
                        exc = refusal.error
                        status, body, headers = _redirect(_with_query(refusal.redirect_uri, {
                            "error": exc.error, "error_description": exc.description or None,
                            "state": refusal.state, "iss": self.issuer}))
                        verdict, tx.scratch["oidc"]["code"] = "refused", exc.error
                    except (OAuthError, errors.WorldError) as exc:
                        err = exc if isinstance(exc, OAuthError) else from_world(exc)
                        status, body, headers = self._error(err, req)
                        verdict = "error" if err.status >= 500 else "refused"
                        tx.scratch["oidc"]["code"] = err.error
            except StorageFull:
                raise   # nothing can be stored, the journal entry neither: the app answers 507
            except Exception:  # the one place where an unexpected failure becomes server_error
                log.exception("OIDC %s %s failed", self.profile.name, endpoint)
                status, body, headers = self._error(ServerError("the bench failed; see its log"), req)
                verdict, tx.scratch["oidc"]["code"] = "error", "server_error"
            info = tx.scratch.pop("oidc")
            if journal_op is not None:
                self.world.journal.append(
                    tx, "oidc", info.get("operation", journal_op), actor=info.get("actor") or "",
                    verdict=info.get("verdict", verdict), code=info.get("code"),
                    raw=f"{self.profile.name} {req.method} {endpoint} {_masked(req.params)}", fault=fault,
                    response=_answer_text(status, body, headers))
        return status, body, headers

    def _error(self, err: OAuthError, req: Request) -> Result:
        headers = dict(NO_STORE)
        if isinstance(err, InvalidToken):
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{err.description}"'
        elif isinstance(err, InvalidClient) and req.headers.get("authorization", "").lower().startswith("basic"):
            headers["WWW-Authenticate"] = f'Basic realm="{self.issuer}"'
        return err.status, err.body(), headers

    @staticmethod
    def _note(tx: Tx, **info: Any) -> None:
        tx.scratch["oidc"].update(info)

    # Discovery and keys -------------------------------------------------------------------------
    def discovery(self) -> dict:
        p = self.profile
        methods = sorted({m for c in p.clients.values() for m in c.auth_methods} |
                         {"client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"})
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "userinfo_endpoint": self.url("userinfo"),
            "jwks_uri": self.url("jwks"),
            "end_session_endpoint": self.url("logout"),
            "introspection_endpoint": self.url("introspect"),
            "revocation_endpoint": self.url("revoke"),
            "backchannel_authentication_endpoint": self.url("ciba"),
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
            "claims_supported": sorted(self._claim_names()),
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "tls_client_certificate_bound_access_tokens": False,
            "userinfo_signing_alg_values_supported": list(SIGNING_ALGS),
        }
        if p.acr:
            doc["acr_values_supported"] = [p.acr]
        return doc

    def _claim_names(self) -> set[str]:
        sample = Professional(id="x", idnps="x", family_name="", given_name="")
        base = {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "azp", "sid", "at_hash"}
        maker = claims_mod.psc_userinfo if self.profile.psc else claims_mod.standard_userinfo
        with self.world.transaction() as tx:
            return base | set(maker(self.world, tx, sample))

    def jwks(self, tx: Tx, req: Request) -> Result:
        return 200, self.world.tokens.jwks(tx), {"Cache-Control": "max-age=60"}

    # Authorization endpoint and login page ------------------------------------------------------
    def issuer_authorize(self, tx: Tx, req: Request) -> Result:
        """The authorization path under PSC's issuer: PSC serves it on the wallet host instead (see
        PSC_WALLET_ENDPOINTS), so a client that builds URLs from the issuer is refused and told where."""
        raise EndpointNotHere(f"{self.profile.title} has no authorization endpoint under its issuer: use the "
                              f"discovery's authorization_endpoint, {self.url('authorize')}")

    def authorize(self, tx: Tx, req: Request) -> Result:
        params = req.params
        client = self.profile.clients.get(params.get("client_id", ""))
        if client is None:
            raise InvalidRequest(f"unknown client_id {params.get('client_id', '')!r} for {self.profile.title}")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            raise InvalidRequest("redirect_uri is required (OIDC Core 3.1.2.1)")
        if not client.allows_redirect(redirect_uri):
            raise InvalidRequest(f"redirect_uri {redirect_uri} is not registered for client {client.client_id} "
                                 f"(registered: {', '.join(client.redirect_uris)}; only a loopback URI's port "
                                 "may differ)")
        state = params.get("state")
        try:
            pending = self._check_authorization(tx, client, params)
        except OAuthError as exc:
            raise _Refusal(exc, redirect_uri, state) from None
        hint = params.get("login_hint", "").strip()
        if hint:
            try:
                pro = self.world.directory.professional(tx, hint)
            except errors.UnknownProfessional:
                raise _Refusal(LoginRequired(f"login_hint {hint} is no professional of the world"),
                               redirect_uri, state) from None
            self._note(tx, actor=pro.idnps)
            return _redirect(self._code_redirect(tx, pending, pro))
        request_id = secrets.token_urlsafe(16)
        now = self.world.clock.timestamp()
        tx.put("tokens", {"kind": "oidc-login", "issuer": self.profile.name, "pending": pending,
                          "expires_at": now + self.limits.login_ttl}, token_hash=_hash(request_id), kind="oidc-login")
        return 200, self._login_page(tx, request_id, client, ""), {"Content-Type": "text/html; charset=utf-8"}

    def _check_authorization(self, tx: Tx, client: Client, params: dict[str, str]) -> dict:
        if params.get("response_type") != "code":
            raise UnsupportedResponseType("only response_type=code is served (authorization code flow)")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            raise InvalidScope("scope must contain openid")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method") or ("plain" if challenge else None)
        if method is not None and method not in ("S256", "plain"):
            raise InvalidRequest(f"code_challenge_method {method} is not supported (S256, plain)")
        if challenge is None and params.get("code_challenge_method"):
            raise InvalidRequest("code_challenge_method without code_challenge")
        if client.public and not challenge:
            raise InvalidRequest("a public client must send a PKCE code_challenge (RFC 7636)")
        if challenge is not None and not 43 <= len(challenge) <= 128:
            raise InvalidRequest("code_challenge must be 43 to 128 characters (RFC 7636 section 4.2)")
        return {"client_id": client.client_id, "redirect_uri": params["redirect_uri"], "scopes": scopes,
                "state": params.get("state"), "nonce": params.get("nonce"), "code_challenge": challenge,
                "code_challenge_method": method, "acr_values": params.get("acr_values")}

    def _code_redirect(self, tx: Tx, pending: dict, pro: Professional) -> str:
        code = secrets.token_urlsafe(32)
        now = self.world.clock.timestamp()
        row = {"kind": "oidc-code", "issuer": self.profile.name, **pending, "professional": pro.id,
               "auth_time": int(now), "sid": secrets.token_hex(8), "expires_at": now + self.limits.code_ttl,
               "used": False, "issued": []}
        tx.put("tokens", row, token_hash=_hash(code), kind="oidc-code")
        return _with_query(pending["redirect_uri"], {"code": code, "state": pending.get("state"),
                                                     "iss": self.issuer})

    def _login_page(self, tx: Tx, request_id: str, client: Client, error: str) -> str:
        pros = [(p.idnps, f"{p.given_name} {p.family_name}", p.id) for p in self.world.directory.professionals(tx)]
        return render_login(title=self.profile.title, action=self.url("login"), request_id=request_id,
                            client_id=client.client_id, professionals=pros, error=error)

    def login(self, tx: Tx, req: Request) -> Result:
        form = req.form
        digest = _hash(form.get("request_id", ""))
        row = tx.get("tokens", token_hash=digest)
        html = {"Content-Type": "text/html; charset=utf-8"}
        if row is None or row.get("kind") != "oidc-login" or row["issuer"] != self.profile.name or \
                row["expires_at"] <= self.world.clock.timestamp():
            self._note(tx, verdict="refused", code="invalid_request")
            return 400, render_message("Demande de connexion inconnue ou expirée",
                                       "Recommencez la connexion depuis le logiciel."), html
        pending = row["pending"]
        self._note(tx, actor=pending["client_id"])
        key = (form.get("identifier") or form.get("professional") or "").strip()
        try:
            pro = self.world.directory.professional(tx, key) if key else None
        except errors.UnknownProfessional:
            pro = None
        client = self.profile.clients[pending["client_id"]]
        if pro is None:
            self._note(tx, verdict="refused", code="login_required")
            message = f"Aucun professionnel ne porte l'identifiant « {key} »." if key else \
                "Choisissez un professionnel ou saisissez son identifiant."
            return 200, self._login_page(tx, form["request_id"], client, message), html
        tx.delete("tokens", token_hash=digest)
        self._note(tx, actor=pro.idnps)
        return _redirect(self._code_redirect(tx, pending, pro))

    # Client authentication ----------------------------------------------------------------------
    def _authenticate(self, tx: Tx, req: Request, endpoint: str) -> Client:
        form = req.form
        auth = req.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
                client_id, _, secret = decoded.partition(":")
                client_id, secret = unquote(client_id), unquote(secret)
            except (ValueError, UnicodeDecodeError):
                raise InvalidClient("the Basic credentials are not base64 of client_id:secret") from None
            method = "client_secret_basic"
        elif form.get("client_assertion"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
            client_id, secret, method = self._assertion_client(form["client_assertion"]), "", "private_key_jwt"
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
        elif form.get("client_id"):
            client_id, secret, method = form["client_id"], "", "none"
        else:
            raise InvalidClient("no client authentication (client_secret_basic, client_secret_post or "
                                "private_key_jwt)")
        self._note(tx, actor=client_id)
        client = self.profile.clients.get(client_id)
        if client is None:
            raise InvalidClient(f"unknown client {client_id}")
        if method == "none" and "tls_client_auth" in client.auth_methods:
            method = "tls_client_auth"
            self._verify_certificate(client, req.client_cert)
        if method not in client.auth_methods:
            raise InvalidClient(f"client {client_id} authenticates with {', '.join(client.auth_methods)}, "
                                f"not {method}")
        if method.startswith("client_secret") and not hmac.compare_digest(secret.encode(),
                                                                          client.client_secret.encode()):
            raise InvalidClient(f"wrong client secret for {client_id}")
        if method == "private_key_jwt":
            self._verify_assertion(tx, client, form["client_assertion"], endpoint)
        return client

    @staticmethod
    def _verify_certificate(client: Client, pem: str | None) -> None:
        """RFC 8705 section 2.1.2: the certificate's subject DN must be the registered one. The TLS layer
        already checked that the bench's CA issued it."""
        from cryptography import x509

        if not pem:
            raise InvalidClient(f"client {client.client_id} authenticates with tls_client_auth: present its "
                                "certificate on the HTTPS port")
        subject = x509.load_pem_x509_certificate(pem.encode()).subject
        wanted = x509.Name.from_rfc4514_string(client.tls_subject_dn)
        if subject != wanted:
            raise InvalidClient(f"the client certificate's subject {subject.rfc4514_string()} is not "
                                f"{client.tls_subject_dn}")

    @staticmethod
    def _assertion_client(assertion: str) -> str:
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims.get("sub") or claims.get("iss") or "")
        except (IndexError, ValueError):
            raise InvalidClient("client_assertion is not a JWT") from None

    def _verify_assertion(self, tx: Tx, client: Client, assertion: str, endpoint: str) -> None:
        """RFC 7523 section 3 and OIDC Core 9: iss = sub = client_id, aud the endpoint or the issuer, exp."""
        from joserfc import jwt
        from joserfc.jwk import KeySet

        if not client.jwks:
            raise InvalidClient(f"client {client.client_id} has no registered keys (jwks) for private_key_jwt")
        try:
            claims = jwt.decode(assertion, KeySet.import_key_set(client.jwks), algorithms=["RS256", "ES256",
                                                                                          "PS256"]).claims
        except Exception as exc:   # joserfc raises several unrelated classes
            raise InvalidClient(f"client_assertion is not signed by a key of client {client.client_id}: "
                                f"{exc}") from None
        now = self.world.clock.timestamp()
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise InvalidClient("client_assertion iss and sub must be the client_id")
        if not {self.url(endpoint), self.url("token"), self.issuer} & set(auds):
            raise InvalidClient(f"client_assertion aud must be {self.url('token')} or {self.issuer}")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now or exp > now + 3600:
            raise InvalidClient("client_assertion exp is missing, past, or more than an hour ahead")
        jti = claims.get("jti")
        if not jti:
            raise InvalidClient("client_assertion needs a jti")
        digest = _hash(f"{client.client_id}:{jti}")
        if tx.get("tokens", token_hash=digest):
            raise InvalidClient("client_assertion jti already used (replay)")
        tx.put("tokens", {"kind": "oidc-jti", "expires_at": exp}, token_hash=digest, kind="oidc-jti")

    # Token endpoint -----------------------------------------------------------------------------
    def token(self, tx: Tx, req: Request) -> Result:
        if req.method != "POST":
            raise InvalidRequest("the token endpoint takes POST")
        grant = req.form.get("grant_type", "")
        client = self._authenticate(tx, req, "token")
        if grant == "authorization_code":
            body = self._code_grant(tx, client, req.form)
        elif grant == "refresh_token":
            body = self._refresh_grant(tx, client, req.form)
        elif grant == CIBA_GRANT:
            body = self._ciba_grant(tx, client, req.form)
        else:
            raise UnsupportedGrantType(f"grant_type {grant!r}: authorization_code, refresh_token or {CIBA_GRANT}")
        return 200, body, dict(NO_STORE)

    def _code_grant(self, tx: Tx, client: Client, form: dict[str, str]) -> dict:
        code = form.get("code", "")
        digest = _hash(code)
        row = tx.get("tokens", token_hash=digest)
        if not code or row is None or row.get("kind") != "oidc-code" or row["issuer"] != self.profile.name:
            raise InvalidGrant("unknown authorization code")
        pro = self.world.directory.professional(tx, row["professional"])
        self._note(tx, actor=pro.idnps)
        if row["client_id"] != client.client_id:
            raise InvalidGrant("the code was issued to another client")
        if row["used"]:
            # RFC 6749 section 4.1.2: a code used twice revokes the tokens issued with it.
            for token_hash in row["issued"]:
                self._revoke_hash(tx, token_hash)
            row["issued"] = []
            tx.put("tokens", row, token_hash=digest, kind="oidc-code")
            raise InvalidGrant("the authorization code was already used; its tokens are revoked")
        if row["expires_at"] <= self.world.clock.timestamp():
            raise InvalidGrant("the authorization code expired")
        if form.get("redirect_uri", "") != row["redirect_uri"]:
            raise InvalidGrant("redirect_uri differs from the authorization request's")
        challenge = row.get("code_challenge")
        verifier = form.get("code_verifier")
        if challenge:
            if not verifier:
                raise InvalidGrant("code_verifier is missing (the authorization request had a code_challenge)")
            computed = _b64url(hashlib.sha256(verifier.encode()).digest()) \
                if row["code_challenge_method"] == "S256" else verifier
            if not hmac.compare_digest(computed, challenge):
                raise InvalidGrant("code_verifier does not match the code_challenge")
        elif verifier:
            raise InvalidGrant("code_verifier sent but the authorization request had no code_challenge")
        row["used"] = True
        body = self._tokens(tx, client, pro, row["scopes"], nonce=row.get("nonce"), sid=row["sid"],
                            auth_time=row["auth_time"])
        row["issued"] = [_hash(body["access_token"])] + ([_hash(body["refresh_token"])]
                                                          if "refresh_token" in body else [])
        tx.put("tokens", row, token_hash=digest, kind="oidc-code")
        return body

    def _refresh_grant(self, tx: Tx, client: Client, form: dict[str, str]) -> dict:
        # Journaled as `refresh`, not `token`: a scenario tells a session kept alive from a new login (PSC.02).
        self._note(tx, operation="refresh")
        token = form.get("refresh_token", "")
        row = self.world.tokens.verify(tx, token, kind="refresh")   # TokenInvalid -> invalid_grant
        data = row.get("data", {})
        if data.get("issuer") != self.profile.name or row["client_id"] != client.client_id:
            raise InvalidGrant("the refresh token was issued to another client or by another issuer")
        pro = self.world.directory.professional(tx, row["professional"])
        self._note(tx, actor=pro.idnps)
        scopes = form.get("scope", "").split() or row["scopes"]
        if not set(scopes) <= set(row["scopes"]):
            raise InvalidScope("a refresh cannot widen the scopes")
        if self.profile.session_max is not None and data.get("auth_time") is not None and \
                self.world.clock.timestamp() >= data["auth_time"] + self.profile.session_max:
            # the IG's "Cas d'erreur 1b": past the session's maximum the professional logs in again
            raise InvalidGrant("Session not active: the session is older than its maximum; authenticate again")
        return self._tokens(tx, client, pro, scopes, sid=data.get("sid"), auth_time=data.get("auth_time"),
                            refresh=token, auth_mode=data.get("auth_mode", "CARD"))

    def _tokens(self, tx: Tx, client: Client, pro: Professional, scopes: list[str], *, nonce: str | None = None,
                sid: str | None = None, auth_time: int | None = None, refresh: str | None = None,
                auth_mode: str = "CARD") -> dict:
        """The token response. PSC (a Keycloak realm) answers a refresh with a new refresh token whose life
        slides (30 minutes, capped by the session's maximum) and adds `session_state`; its access token is a
        signed JWT (`_psc_access_token`). The establishment's provider keeps its refresh token and opaque
        access tokens."""
        tokens = self.world.tokens
        now = int(self.world.clock.timestamp())
        auth_time = auth_time or now
        data = {"issuer": self.profile.name, "sid": sid, "auth_time": auth_time, "auth_mode": auth_mode}
        if nonce:
            data["nonce"] = nonce
        body: dict[str, Any] = {}
        if refresh is None or self.profile.psc:
            refresh_ttl = self.ttl("refresh")
            if self.profile.session_max is not None:
                refresh_ttl = max(1.0, min(refresh_ttl, auth_time + self.profile.session_max - now))
            refresh = tokens.issue(tx, professional=pro.id, client_id=client.client_id, scopes=scopes,
                                   kind="refresh", ttl=refresh_ttl, data=data)
            body["refresh_token"] = refresh
            body["refresh_expires_in"] = int(refresh_ttl)
        access_ttl = self.ttl("access")
        access_data = {**data, "refresh": tokens.refresh_hash(refresh)}
        value = self._psc_access_token(tx, client, pro, scopes, access_data, now, access_ttl) \
            if self.profile.psc else None
        access = tokens.issue(tx, professional=pro.id, client_id=client.client_id, scopes=scopes, kind="access",
                              ttl=access_ttl, data=access_data, token=value)
        claims = {"iss": self.issuer, "sub": self._subject(pro), "aud": client.client_id,
                  "azp": client.client_id, "iat": now, "exp": now + int(self.ttl("id_token")),
                  "auth_time": auth_time, "at_hash": _b64url(hashlib.sha256(access.encode()).digest()[:16]),
                  "preferred_username": pro.idnps if self.profile.psc else pro.id,
                  "given_name": pro.given_name, "family_name": pro.family_name}
        if sid:
            claims["sid"] = sid
        if nonce:
            claims["nonce"] = nonce
        if self.profile.acr:
            claims["acr"] = self.profile.acr
        if self.profile.psc:
            claims.update(typ="ID", session_state=sid, SubjectNameID=pro.idnps)
            body["session_state"] = sid      # read by the ANS's CIBA proxy (psc-edc-proxy-esante)
        id_token = tokens.sign(tx, claims, client.id_token_alg)
        return {"access_token": access, "token_type": "Bearer", "expires_in": int(access_ttl),
                "id_token": id_token, "scope": " ".join(scopes), **body}

    def _subject(self, pro: Professional) -> str:
        """PSC's opaque sub (claims.psc_subject); the establishment's provider keys on the IDNPS."""
        return claims_mod.psc_subject(pro) if self.profile.psc else pro.idnps

    def _psc_access_token(self, tx: Tx, client: Client, pro: Professional, scopes: list[str], data: dict,
                          now: int, ttl: float) -> str:
        """PSC's access token is a signed JWT, as the ANS's CIBA proxy reads it (ansforge/psc-edc-proxy-esante,
        SessionTests: `session_state`, `azp`, `typ` Bearer), with the claims that PSC's introspection page
        lists (industriels.esante.gouv.fr, "Pro Santé Connect - Introspection", "La réponse du serveur":
        exp, iat, auth_time, jti, iss, sub, typ, azp, nonce; SubjectNameID for an access token)."""
        claims = {"exp": now + int(ttl), "iat": now, "auth_time": data["auth_time"], "jti": str(uuid.uuid4()),
                  "iss": self.issuer, "sub": self._subject(pro), "typ": "Bearer", "azp": client.client_id,
                  "session_state": data.get("sid"), "sid": data.get("sid"), "acr": self.profile.acr,
                  "scope": " ".join(scopes), "SubjectNameID": pro.idnps, "preferred_username": pro.idnps}
        if data.get("nonce"):
            claims["nonce"] = data["nonce"]
        return self.world.tokens.sign(tx, claims, "RS256")

    def _revoke_hash(self, tx: Tx, token_hash: str) -> None:
        row = tx.get("tokens", token_hash=token_hash)
        if row is not None and row.get("kind") in ("access", "refresh") and not row["revoked"]:
            row["revoked"] = True
            tx.put("tokens", row, token_hash=token_hash, kind=row["kind"])

    # Userinfo -----------------------------------------------------------------------------------
    def _bearer(self, tx: Tx, req: Request) -> tuple[dict, Professional]:
        auth = req.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else req.form.get("access_token", "")
        if not token:
            raise InvalidToken("no bearer token (Authorization: Bearer ...)")
        try:
            row = self.world.tokens.verify(tx, token, kind="access")
        except errors.TokenInvalid as exc:
            raise InvalidToken(exc.message) from None
        if row.get("data", {}).get("issuer") != self.profile.name:
            raise InvalidToken(f"the token was not issued by {self.profile.title}")
        pro = self.world.directory.professional(tx, row["professional"])
        self._note(tx, actor=pro.idnps)
        return row, pro

    def userinfo(self, tx: Tx, req: Request) -> Result:
        """Plain JSON, or a JWT signed with the client's `userinfo_signed_response_alg` (OIDC Core 5.3.2:
        `application/jwt`, with iss and aud; OIDC Dynamic Client Registration 2)."""
        row, pro = self._bearer(tx, req)
        if "openid" not in row["scopes"]:
            raise InvalidToken("the token lacks the openid scope")
        if self.profile.psc:
            info = claims_mod.psc_userinfo(self.world, tx, pro, row.get("data", {}).get("auth_mode", "CARD"))
        else:
            info = claims_mod.standard_userinfo(self.world, tx, pro)
        client = self.profile.clients.get(row["client_id"])
        if client is not None and client.userinfo_alg:
            signed = self.world.tokens.sign(tx, {**info, "iss": self.issuer, "aud": client.client_id},
                                            client.userinfo_alg)
            return 200, signed, {**NO_STORE, "Content-Type": "application/jwt"}
        return 200, info, dict(NO_STORE)

    # Introspection and revocation ---------------------------------------------------------------
    def _token_row(self, tx: Tx, token: str) -> dict | None:
        row = tx.get("tokens", token_hash=_hash(token or ""))
        if row is None or row.get("kind") not in ("access", "refresh") or \
                row.get("data", {}).get("issuer") != self.profile.name:
            return None
        return row

    def introspect(self, tx: Tx, req: Request) -> Result:
        client = self._authenticate(tx, req, "introspect")
        token = req.form.get("token", "")
        if not token:
            raise InvalidRequest("token is required (RFC 7662 section 2.1)")
        result = self.world.tokens.introspect(tx, token)
        row = self._token_row(tx, token)
        if not result["active"] or row is None:
            return 200, {"active": False}, dict(NO_STORE)
        pro = self.world.directory.professional(tx, row["professional"])
        self._note(tx, actor=client.client_id)
        if self.profile.psc:
            try:
                return 200, self._psc_introspection(tx, token, row, pro), dict(NO_STORE)
            except errors.TokenInvalid:      # signed with a key retired since: no longer verifiable
                return 200, {"active": False}, dict(NO_STORE)
        result.update(sub=pro.idnps, username=pro.idnps, iss=self.issuer, aud=row["client_id"])
        if self.profile.acr:
            result["acr"] = self.profile.acr
        return 200, result, dict(NO_STORE)

    def _psc_introspection(self, tx: Tx, token: str, row: dict, pro: Professional) -> dict:
        """As PSC's introspection page says (industriels.esante.gouv.fr, "Pro Santé Connect - Introspection",
        "La réponse du serveur"): exp, iat, auth_time, jti, iss, sub, typ, azp, nonce; SubjectNameID only when
        the token introspected is the access token ("Le champ SubjectNameID")."""
        data = row.get("data", {})
        if row["kind"] == "access":
            claims = self.world.tokens.decode(tx, token)     # the access token's own claims
        else:
            claims = {"exp": int(row["expires_at"]), "iat": int(row["issued_at"]),
                      "auth_time": data.get("auth_time"), "jti": _hash(token)[:36], "iss": self.issuer,
                      "sub": self._subject(pro), "typ": "Refresh", "azp": row["client_id"],
                      "session_state": data.get("sid"), "sid": data.get("sid"), "scope": " ".join(row["scopes"])}
            if data.get("nonce"):
                claims["nonce"] = data["nonce"]
        return {**claims, "active": True, "client_id": row["client_id"], "username": pro.idnps,
                "token_type": "Bearer" if row["kind"] == "access" else "Refresh"}

    def revoke(self, tx: Tx, req: Request) -> Result:
        client = self._authenticate(tx, req, "revoke")
        token = req.form.get("token", "")
        if not token:
            raise InvalidRequest("token is required (RFC 7009 section 2.1)")
        row = self._token_row(tx, token)
        if row is not None:
            if row["client_id"] != client.client_id:
                raise UnauthorizedClient("the token was issued to another client (RFC 7009 section 2.1)")
            self.world.tokens.revoke(tx, token)
        return 200, "", dict(NO_STORE)

    # End session --------------------------------------------------------------------------------
    def logout(self, tx: Tx, req: Request) -> Result:
        """OIDC RP-Initiated Logout 1.0: id_token_hint, post_logout_redirect_uri, state, client_id."""
        params = req.params
        hint = params.get("id_token_hint")
        client_id = params.get("client_id")
        sid = None
        if hint:
            try:
                claims = self.world.tokens.decode(tx, hint)
            except errors.TokenInvalid:
                raise InvalidRequest("id_token_hint is not signed by a key of this bench") from None
            if claims.get("iss") != self.issuer:
                raise InvalidRequest(f"id_token_hint was issued by {claims.get('iss')}, not {self.issuer}")
            if client_id and client_id != claims.get("aud"):
                raise InvalidRequest("client_id differs from the id_token_hint's audience")
            client_id = client_id or claims.get("aud")
            sid = claims.get("sid")
            self._note(tx, actor=claims.get("SubjectNameID") or claims.get("sub", ""))
        uri = params.get("post_logout_redirect_uri")
        if uri:
            client = self.profile.clients.get(client_id or "")
            if client is None:
                raise InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id")
            if not client.allows_redirect(uri, client.post_logout_redirect_uris):
                raise InvalidRequest(f"post_logout_redirect_uri {uri} is not registered for {client.client_id}")
        if sid:
            self._end_session(tx, sid)
        if uri:
            return _redirect(_with_query(uri, {"state": params.get("state")}))
        return 200, render_message("Vous êtes déconnecté", f"Session {self.profile.title} terminée."), \
            {"Content-Type": "text/html; charset=utf-8"}

    def _end_session(self, tx: Tx, sid: str) -> None:
        rows = tx.conn.execute("SELECT token_hash, data FROM tokens WHERE ns = ? AND kind IN ('access', 'refresh')",
                               (tx.ns,)).fetchall()
        for token_hash, raw in rows:
            data = json.loads(raw).get("data", {})
            if data.get("sid") == sid and data.get("issuer") == self.profile.name:
                self._revoke_hash(tx, token_hash)

    # CIBA (poll mode) ---------------------------------------------------------------------------
    def ciba(self, tx: Tx, req: Request) -> Result:
        client = self._authenticate(tx, req, "ciba")
        form = req.form
        if self.profile.psc:
            pro, channel = self._psc_ciba_request(tx, form)
        else:
            pro, channel = self._generic_ciba_request(tx, form), ""
        scopes = form.get("scope", "").split()
        message = form.get("binding_message", "")
        script = ciba_script(tx, pro.id, self.limits)
        auth_req_id = secrets.token_urlsafe(32)
        now = self.world.clock.timestamp()
        row = {"kind": "oidc-ciba", "issuer": self.profile.name, "client_id": client.client_id,
               "professional": pro.id, "scopes": scopes, "binding_message": message,
               "channel": channel, "outcome": script["outcome"],
               "after_polls": script["after_polls"], "polls": 0, "last_poll": None,
               "interval": script["interval"], "expires_at": now + script["expires_in"], "done": False}
        tx.put("tokens", row, token_hash=_hash(auth_req_id), kind="oidc-ciba")
        return 200, {"auth_req_id": auth_req_id, "expires_in": int(script["expires_in"]),
                     "interval": script["interval"]}, dict(NO_STORE)

    def _generic_ciba_request(self, tx: Tx, form: dict[str, str]) -> Professional:
        """CIBA Core 7.1 and 13 (the establishment's provider)."""
        scopes = form.get("scope", "").split()
        if "openid" not in scopes:
            raise InvalidScope("scope must contain openid")
        hint = form.get("login_hint", "").strip()
        if not hint:
            raise InvalidRequest("login_hint (the professional's IDNPS) is required; login_hint_token and "
                                 "id_token_hint are not served")
        try:
            pro = self.world.directory.professional(tx, hint)
        except errors.UnknownProfessional:
            raise UnknownUserId(f"no professional {hint}") from None
        self._note(tx, actor=pro.idnps)
        if len(form.get("binding_message", "")) > 64:
            raise InvalidBindingMessage("binding_message is limited to 64 characters here")
        return pro

    def _psc_ciba_request(self, tx: Tx, form: dict[str, str]) -> tuple[Professional, str]:
        """PSC's CIBA request, from three sources of unequal weight (the README's OIDC section lists them):
        - Keycloak's checks, in its order and words (PSC is a Keycloak realm, specs/psc/mock_discovery_response
          .json; BackchannelAuthenticationEndpoint: `missing parameter : login_hint`, `missing parameter :
          scope`, `invalid user`, the binding_message pattern with `invalid_binding_message`);
        - what the ANS's own CIBA client always sends (ansforge/psc-edc-proxy-esante, PSCSessionService.
          cibaAuthentication: scope `openid scope_all`, `acr_values=eidas1`, a binding_message, a `channel`
          custom parameter) and requires from its own callers (model/Connection.validate: bindingMessage
          present, channel CARD or MOBILE), the two means the CIBA page names (industriels.esante.gouv.fr,
          "Pro Santé Connect - CIBA", "A propos de l'utilisation de CIBA": the CPx card through CPS-Gestion,
          the e-CPS). PSC's page has a table of the request's parameters ("Paramètre | Obligatoire |
          Valeur") that no copy reachable from here reproduces: that PSC refuses a request without them, and
          with which error, is the bench's reading, answered with CIBA Core 13's codes (`invalid_scope`,
          `invalid_binding_message`, `invalid_request`)."""
        if "login_hint" not in form:
            raise InvalidRequest("missing parameter : login_hint")
        if "scope" not in form:
            raise InvalidRequest("missing parameter : scope")
        hint = form["login_hint"].strip()
        try:
            pro = self.world.directory.professional(tx, hint) if hint else None
        except errors.UnknownProfessional:
            pro = None
        if pro is None:
            raise InvalidRequest(f"invalid user: login_hint {hint!r} is no professional's national id")
        self._note(tx, actor=pro.idnps)
        scopes = form["scope"].split()
        if not {"openid", "scope_all"} <= set(scopes):
            raise InvalidScope(f"Invalid scopes: {form['scope']} (Pro Santé Connect's CIBA takes "
                               "scope=openid scope_all)")
        message = form.get("binding_message")
        if not message:
            raise InvalidBindingMessage("binding_message is required: the code shown to the professional on "
                                        "the card reader or the e-CPS")
        if not BINDING_MESSAGE.fullmatch(message):
            raise InvalidBindingMessage("the binding_message value has to be max 50 characters in length and must "
                                        "contain only basic plain-text characters without spaces")
        acr = form.get("acr_values", "").split()
        if acr != ["eidas1"]:
            raise InvalidRequest(f"acr_values must be eidas1, not {form.get('acr_values', '')!r}")
        channel = form.get("channel", "")
        if channel not in CIBA_CHANNELS:
            raise InvalidRequest(f"channel must be CARD (CPS card) or MOBILE (e-CPS), not {channel!r}"
                                 if channel else "missing parameter : channel (CARD or MOBILE)")
        return pro, channel

    def _ciba_grant(self, tx: Tx, client: Client, form: dict[str, str]) -> dict:
        digest = _hash(form.get("auth_req_id", ""))
        row = tx.get("tokens", token_hash=digest)
        if row is None or row.get("kind") != "oidc-ciba" or row["issuer"] != self.profile.name or \
                row["client_id"] != client.client_id:
            raise InvalidGrant("unknown auth_req_id")
        pro = self.world.directory.professional(tx, row["professional"])
        self._note(tx, actor=pro.idnps)
        if row["done"]:
            raise InvalidGrant("the auth_req_id was already used")
        now = self.world.clock.timestamp()
        if now >= row["expires_at"]:
            raise ExpiredToken("the CIBA request expired before the professional answered")
        try:
            if row["last_poll"] is not None and now - row["last_poll"] < row["interval"]:
                row["interval"] += 5          # CIBA section 11: slow_down adds 5 s to every later interval
                raise SlowDown(f"poll at most every {row['interval']} s")
            row["polls"] += 1
            row["last_poll"] = now
            if row["outcome"] == "expire" or row["polls"] <= row["after_polls"]:
                raise AuthorizationPending("the professional has not answered yet")
            row["done"] = True
            if row["outcome"] == "deny":
                raise AccessDenied("the professional refused the request")
        except (SlowDown, AuthorizationPending) as exc:
            tx.put("tokens", row, token_hash=digest, kind="oidc-ciba")
            # A poll that waits is the protocol working: journaled as a CIBA poll, not as a refused token.
            self._note(tx, operation="ciba", verdict="accepted", code=exc.error)
            raise
        except AccessDenied:
            tx.put("tokens", row, token_hash=digest, kind="oidc-ciba")
            raise
        tx.put("tokens", row, token_hash=digest, kind="oidc-ciba")
        return self._tokens(tx, client, pro, row["scopes"], sid=secrets.token_hex(8), auth_time=int(now),
                            auth_mode=row.get("channel") or "MOBILE")


# Scripted CIBA outcomes (the control API's PUT /_bench/oidc/ciba/{idnps}) ---------------------------
def ciba_script(tx: Tx, professional_id: str, limits: Limits | None = None) -> dict:
    limits = limits or Limits()
    script = {"outcome": "approve", "after_polls": 1, "expires_in": limits.ciba_expires_in,
              "interval": limits.ciba_interval}
    script.update(scripted_ciba(tx, professional_id))
    return script
