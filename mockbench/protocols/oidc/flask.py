"""The Flask adapter of the OIDC door: one blueprint under /oidc that routes a path to an issuer's endpoint,
turns the Flask request into a `provider.Request` and the core's (status, body, headers) into a Response."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flask import Blueprint, Response, has_request_context, request

from ...world.ciba import set_ciba_script
from ...world.faults import Fired
from ..faults import render as render_network
from .provider import BACKCHANNEL_ENDPOINTS, Limits, Provider, Request, profiles_from_config

if TYPE_CHECKING:
    from ...bench import Bench

PREFIX = "/oidc"
# RFC 8705 section 5: the endpoints where a client authenticates with its certificate (tls_client_auth)
MTLS_ENDPOINTS = {"token_endpoint": "token", "introspection_endpoint": "introspect",
                  "revocation_endpoint": "revoke", "backchannel_authentication_endpoint": "ciba",
                  "userinfo_endpoint": "userinfo"}


# endpoint -> the operation its exchanges are journaled (and fault rules matched) under
JOURNAL_OPERATIONS = {"issuer_authorize": "authorize"}


def _over_https() -> bool:
    return has_request_context() and request.environ.get("wsgi.url_scheme") == "https"


class OidcDoor:
    name = "oidc"
    backchannel_endpoints = BACKCHANNEL_ENDPOINTS   # served on the back-channel base (endpoints, discovery)

    def __init__(self, bench: Bench, settings: dict | None = None, limits: Limits | None = None) -> None:
        self.bench = bench
        self.world = bench.world
        # The issuer's base is the one of the port the request came in on: discovery fetched over HTTPS
        # advertises HTTPS endpoints and an HTTPS issuer (OIDC Discovery 1.0 section 4.3: the issuer is the
        # URL the configuration was fetched from), and the tokens minted there carry that issuer.
        self.providers = {p.name: Provider(bench.world, p, self._base_url, limits, back_url=self._back_url)
                          for p in profiles_from_config(settings or {})}

    def _base_url(self) -> str:
        https = self.bench.https_url if _over_https() else None
        return https or self.bench.url

    def _back_url(self) -> str:
        return self.bench.backchannel_url(bool(_over_https() and self.bench.https_url)) or self.bench.url

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

    def blueprint(self) -> Blueprint:
        bp = Blueprint("oidc", __name__)
        bp.add_url_rule("/<path:path>", "endpoint", self._http, methods=["GET", "POST"])
        return bp

    def _http(self, path: str) -> Response:
        found = self.provider_for("/" + path)
        if found is None:
            return Response(json.dumps({"error": "not_found", "error_description": f"no OIDC endpoint at "
                                        f"{request.path}"}), status=404, content_type="application/json")
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
        if endpoint == "discovery" and isinstance(body, dict) and self.bench.https_url:
            # RFC 8705 section 5: where to authenticate with a client certificate (the HTTPS port)
            base = (self.bench.backchannel_url(True) or self.bench.https_url) + provider.profile.path
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
            body = {"error": "temporarily_unavailable", "error_description": fired.params["description"]}
            return fired, Response(json.dumps(body), status=400, content_type="application/json",
                                   headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
        if fired.kind == "http_503":
            response = Response("503 Service Unavailable\n", status=503, content_type="text/plain")
            if fired.get("retry_after") is not None:
                response.headers["Retry-After"] = str(fired.get("retry_after"))
            return fired, response
        return fired, Response(b"", status=500)   # reset, timeout: never sent (protocols/faults.py)
