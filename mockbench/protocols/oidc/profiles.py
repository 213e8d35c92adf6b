"""An issuer's configuration: its clients (`Client`), its paths and lifetimes (`Profile`), the door's limits
(`Limits`), and `profiles_from_config`, which reads `[doors.oidc]` into the two issuers the bench serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict
from urllib.parse import urlsplit

from ...world.clock import parse_duration

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "none")
SIGNING_ALGS = ("RS256", "ES256")             # the world's signing keys (world/tokens.py)


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


class Lifetimes(TypedDict):
    """A profile's lifetimes in seconds (None: the door's Limits)."""

    access_ttl: float | None
    refresh_ttl: float | None
    id_token_ttl: float | None
    session_max: float | None


def _lifetimes(name: str, own: dict, defaults: Lifetimes) -> Lifetimes:
    """`access_token_lifetime`, `refresh_token_lifetime`, `id_token_lifetime`, `session_lifetime` (30s, 2m...)."""
    out = defaults.copy()
    for key, attr in (("access_token_lifetime", "access_ttl"), ("refresh_token_lifetime", "refresh_ttl"),
                      ("id_token_lifetime", "id_token_ttl"), ("session_lifetime", "session_max")):
        if key in own:
            try:
                value = parse_duration(own[key])
            except ValueError as exc:
                raise ValueError(f"{name}.{key}: {exc}") from None
            if value <= 0:
                raise ValueError(f"{name}.{key} must be positive")
            out[attr] = value   # type: ignore[literal-required]  # attr is one of Lifetimes' keys, listed above
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
