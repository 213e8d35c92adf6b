"""The OIDC door's entry point and its Flask adapter: one blueprint under /oidc that routes a path to an
issuer's endpoint, turns the Flask request into a `provider.Request` and the core's (status, body, headers)
into a Response. The door's own error answers are in errors.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, has_request_context, request

from ...world.ciba import set_ciba_script
from ...world.faults import Fired
from ..context import DoorConfigError, DoorContext, HttpDoor
from ..faults import render as render_network
from . import errors
from .provider import BACKCHANNEL_ENDPOINTS, Limits, Provider, Request, profiles_from_config

if TYPE_CHECKING:
    from ...config import Config

PREFIX = "/oidc"
# RFC 8705 section 5: the endpoints where a client authenticates with its certificate (tls_client_auth)
MTLS_ENDPOINTS = {"token_endpoint": "token", "introspection_endpoint": "introspect",
                  "revocation_endpoint": "revoke", "backchannel_authentication_endpoint": "ciba",
                  "userinfo_endpoint": "userinfo"}


# endpoint -> the operation its exchanges are journaled (and fault rules matched) under
JOURNAL_OPERATIONS = {"issuer_authorize": "authorize"}


def _over_https() -> bool:
    return has_request_context() and request.environ.get("wsgi.url_scheme") == "https"


def build(context: DoorContext, config: Config) -> OidcDoor:
    """The door from `[doors.oidc]`: its issuers, clients and professionals (provider.profiles_from_config)."""
    try:
        return OidcDoor(context, config.doors.get("oidc", {}))
    except ValueError as exc:
        raise DoorConfigError(f"[doors.oidc] {exc}") from None


class OidcDoor(HttpDoor):
    name = "oidc"
    prefix = PREFIX
    backchannel_endpoints = BACKCHANNEL_ENDPOINTS   # served on the back-channel base (endpoints, discovery)

    def __init__(self, context: DoorContext, settings: dict | None = None, limits: Limits | None = None) -> None:
        super().__init__(context)
        # The issuer's base is the one of the port the request came in on: discovery fetched over HTTPS
        # advertises HTTPS endpoints and an HTTPS issuer (OIDC Discovery 1.0 section 4.3: the issuer is the
        # URL the configuration was fetched from), and the tokens minted there carry that issuer.
        self.providers = {p.name: Provider(self.world, p, self._base_url, limits, back_url=self._back_url)
                          for p in profiles_from_config(settings or {})}

    def _base_url(self) -> str:
        https = self.urls.https_url if _over_https() else None
        return https or self.urls.url

    def _back_url(self) -> str:
        return self.urls.backchannel_url(bool(_over_https() and self.urls.https_url)) or self.urls.url

    def provider_for(self, path: str) -> tuple[Provider, str] | None:
        """The provider and endpoint name for a path under /oidc (an issuer's, or PSC's wallet base)."""
        for provider in self.providers.values():
            base = provider.profile.path[len(PREFIX):]
            if path.startswith(base):
                endpoint = provider.route(path[len(base):])
                if endpoint is not None:
                    return provider, endpoint
            wallet = provider.profile.wallet_path[len(PREFIX):]
            if wallet and path.startswith(wallet):
                endpoint = provider.route_wallet(path[len(wallet):])
                if endpoint is not None:
                    return provider, endpoint
        return None

    def script_ciba(self, key: str, body: dict) -> dict:
        with self.world.transaction() as tx:
            result = set_ciba_script(self.world, tx, key, body)
            self.world.journal.append(tx, "control", "oidc-ciba", actor="control",
                                      raw=json.dumps({"professional": key, **body}))
        return result

    def rotate_keys(self, grace: float = 86400.0) -> dict:
        with self.world.transaction() as tx:
            kids = self.world.tokens.rotate(tx, grace=grace)
            self.world.journal.append(tx, "control", "oidc-rotate", actor="control", raw=" ".join(kids))
        return {"kids": kids, "grace": grace}

    def endpoints(self) -> list[dict[str, Any]]:
        """Its section of /_bench/endpoints: each issuer's endpoints on each port (the browser's on the public
        base, the back-channel ones on the back-channel base), scopes, acr and clients."""
        urls = self.urls
        out = []
        for provider in self.providers.values():
            p = provider.profile
            sides = {"http": (urls.url, urls.backchannel_url(False) or urls.url)}
            if urls.https_url:
                sides["https"] = (urls.https_url, urls.backchannel_url(True) or urls.https_url)
            found: dict[str, dict] = {}
            for side, (front, back) in sides.items():
                issuer = front + p.path
                wallet = p.wallet_url or front + p.wallet_path

                def url(endpoint: str, issuer: str = issuer, wallet: str = wallet, back: str = back,
                        p: Any = p) -> str:
                    if endpoint in p.wallet_endpoints:
                        return wallet + p.wallet_endpoints[endpoint]
                    if endpoint in BACKCHANNEL_ENDPOINTS:
                        return back + p.path + p.endpoints[endpoint]
                    return issuer + p.endpoints[endpoint]

                found[side] = {
                    "issuer": issuer, "discovery": issuer + p.discovery[-1],
                    "authorization_endpoint": url("authorize"), "token_endpoint": url("token"),
                    "userinfo_endpoint": url("userinfo"), "jwks_uri": url("jwks"),
                    "introspection_endpoint": url("introspect"), "revocation_endpoint": url("revoke"),
                    "end_session_endpoint": url("logout"), "backchannel_authentication_endpoint": url("ciba"),
                }
            out.append({
                "name": p.name, "title": p.title, "urls": found, "scopes": list(p.scopes), "acr": p.acr,
                "clients": [{"client_id": c.client_id, "client_secret": c.client_secret or None,
                             "redirect_uris": list(c.redirect_uris), "auth_methods": list(c.auth_methods)}
                            for c in p.clients.values()],
            })
        return out

    def blueprint(self) -> Blueprint:
        bp = Blueprint("oidc", __name__)
        bp.add_url_rule("/<path:path>", "endpoint", self._http, methods=["GET", "POST"])
        return bp

    def _http(self, path: str) -> Response:
        found = self.provider_for("/" + path)
        if found is None:
            text, status = errors.not_found(request.path)
            return Response(text, status=status, content_type=errors.JSON)
        provider, endpoint = found
        req = Request(method=request.method, args=request.args.to_dict(),
                      form=request.form.to_dict() if request.method == "POST" else {},
                      headers={k.lower(): v for k, v in request.headers.items()},
                      client_cert=request.environ.get("SSL_CLIENT_CERT")
                      if request.environ.get("wsgi.url_scheme") == "https" else None)
        fired, injected = self._fault(endpoint, req)
        if injected is not None:
            return render_network(self.world.faults, fired, injected, request.environ)
        status, body, headers = provider.handle(endpoint, req, fault=fired.rule if fired else None)
        https_url = self.urls.https_url
        if endpoint == "discovery" and isinstance(body, dict) and https_url:
            # RFC 8705 section 5: where to authenticate with a client certificate (the HTTPS port)
            base = (self.urls.backchannel_url(True) or https_url) + provider.profile.path
            body["mtls_endpoint_aliases"] = {key: base + provider.profile.endpoints[name]
                                             for key, name in MTLS_ENDPOINTS.items()
                                             if name in provider.profile.endpoints}
        if isinstance(body, dict):
            response = Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                                content_type="application/json")
        else:
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            response = Response(body, status=status, headers=headers)
        return render_network(self.world.faults, fired, response, request.environ)

    def _fault(self, endpoint: str, req: Request) -> tuple[Fired | None, Response | None]:
        """The fault rule met by this exchange (world/faults.py), asked before the provider acts; a refusing one
        is journaled here (nothing applied) and answered: `temporarily_unavailable` as an OAuth error response
        (the code is RFC 6749's, 4.1.2.1; its form and 400 status those of 5.2, so that a client reads the code:
        on every endpoint, the authorization endpoint included, without a redirect), `http_503` a bare 503
        (RFC 9110, 15.6.4); reset and timeout get no answer. `delay` on `jwks` is the slow JWKS."""
        if not self.world.faults.armed("oidc"):
            return None, None
        operation = JOURNAL_OPERATIONS.get(endpoint, endpoint)
        actor = req.params.get("client_id", "")
        with self.world.transaction() as tx:
            fired = self.world.faults.decide(tx, "oidc", operation, actor=actor)
            if fired is None or not fired.refusing:
                return fired, None
            self.world.journal.append(tx, "oidc", operation, actor=actor, verdict="error",
                                      code=f"FAULT_{fired.kind.upper()}", fault=fired.rule,
                                      raw=f"{req.method} {endpoint} (injected fault {fired.rule})")
        if fired.kind == "temporarily_unavailable":
            text, status = errors.temporarily_unavailable(fired.params["description"])
            return fired, Response(text, status=status, content_type=errors.JSON, headers=dict(errors.NO_STORE))
        if fired.kind == "http_503":
            response = Response("503 Service Unavailable\n", status=errors.HTTP_503, content_type="text/plain")
            if fired.get("retry_after") is not None:
                response.headers["Retry-After"] = str(fired.get("retry_after"))
            return fired, response
        return fired, Response(b"", status=500)   # reset, timeout: never sent (protocols/faults.py)
