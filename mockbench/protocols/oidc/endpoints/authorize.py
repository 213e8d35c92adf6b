"""The authorization endpoint (OIDC Core 3.1.2, RFC 6749 section 4.1.1, PKCE RFC 7636 section 4.3) and the
login page behind it: a request names a registered client and redirect URI; its other faults are answered by a
redirect to that URI (RFC 6749 section 4.1.2.1). With a login_hint the professional is known at once; else the
login page (login.py) asks who, and its POST ends with the code's redirect."""

from __future__ import annotations

import secrets

from ....world import errors
from ....world.model import Professional
from ....world.store import Tx
from ..errors import (
    EndpointNotHere,
    InvalidRequest,
    InvalidScope,
    LoginRequired,
    OAuthError,
    RedirectRefusal,
    UnsupportedResponseType,
)
from ..exchange import HTML, Exchange, Result, redirect, token_hash, with_query
from ..login import render_login, render_message
from ..profiles import Client
from .base import Endpoint


class IssuerAuthorize(Endpoint):
    """The authorization path under PSC's issuer, where PSC does not serve it."""

    name = "issuer_authorize"
    journal = "authorize"

    def __call__(self, ex: Exchange) -> Result:
        """The authorization path under PSC's issuer: PSC serves it on the wallet host instead (see
        PSC_WALLET_ENDPOINTS), so a client that builds URLs from the issuer is refused and told where."""
        raise EndpointNotHere(f"{self.profile.title} has no authorization endpoint under its issuer: use the "
                              f"discovery's authorization_endpoint, {self.url('authorize')}")


class _Browser(Endpoint):
    """What the authorization endpoint and the login page share: the code's redirect, the login page."""

    def _code_redirect(self, tx: Tx, pending: dict, pro: Professional) -> str:
        code = secrets.token_urlsafe(32)
        now = self.world.clock.timestamp()
        row = {"kind": "oidc-code", "issuer": self.profile.name, **pending, "professional": pro.id,
               "auth_time": int(now), "sid": secrets.token_hex(8), "expires_at": now + self.limits.code_ttl,
               "used": False, "issued": []}
        tx.put("tokens", row, token_hash=token_hash(code), kind="oidc-code")
        return with_query(pending["redirect_uri"], {"code": code, "state": pending.get("state"),
                                                     "iss": self.issuer})

    def _login_page(self, tx: Tx, request_id: str, client: Client, error: str) -> str:
        pros = [(p.idnps, f"{p.given_name} {p.family_name}", p.id) for p in self.world.directory.professionals(tx)]
        return render_login(title=self.profile.title, action=self.url("login"), request_id=request_id,
                            client_id=client.client_id, professionals=pros, error=error)


class Authorize(_Browser):
    name = "authorize"
    journal = "authorize"

    def __call__(self, ex: Exchange) -> Result:
        tx, params = ex.tx, ex.req.params
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
            pending = self._check_authorization(client, params)
        except OAuthError as exc:
            raise RedirectRefusal(exc, redirect_uri, state) from None
        hint = params.get("login_hint", "").strip()
        if hint:
            try:
                pro = self.world.directory.professional(tx, hint)
            except errors.UnknownProfessional:
                raise RedirectRefusal(LoginRequired(f"login_hint {hint} is no professional of the world"),
                               redirect_uri, state) from None
            ex.declare(actor=pro.idnps)
            return redirect(self._code_redirect(tx, pending, pro))
        request_id = secrets.token_urlsafe(16)
        now = self.world.clock.timestamp()
        tx.put("tokens", {"kind": "oidc-login", "issuer": self.profile.name, "pending": pending,
                          "expires_at": now + self.limits.login_ttl},
               token_hash=token_hash(request_id), kind="oidc-login")
        return 200, self._login_page(tx, request_id, client, ""), dict(HTML)

    @staticmethod
    def _check_authorization(client: Client, params: dict[str, str]) -> dict:
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


class Login(_Browser):
    """The login page's POST: the professional picked or typed, then the code's redirect."""

    name = "login"
    journal = "login"

    def __call__(self, ex: Exchange) -> Result:
        tx, form = ex.tx, ex.req.form
        digest = token_hash(form.get("request_id", ""))
        row = tx.get("tokens", token_hash=digest)
        html = dict(HTML)
        if row is None or row.get("kind") != "oidc-login" or row["issuer"] != self.profile.name or \
                row["expires_at"] <= self.world.clock.timestamp():
            ex.declare(verdict="refused", code="invalid_request")
            return 400, render_message("Demande de connexion inconnue ou expirée",
                                       "Recommencez la connexion depuis le logiciel."), html
        pending = row["pending"]
        ex.declare(actor=pending["client_id"])
        key = (form.get("identifier") or form.get("professional") or "").strip()
        try:
            pro = self.world.directory.professional(tx, key) if key else None
        except errors.UnknownProfessional:
            pro = None
        client = self.profile.clients[pending["client_id"]]
        if pro is None:
            ex.declare(verdict="refused", code="login_required")
            message = f"Aucun professionnel ne porte l'identifiant « {key} »." if key else \
                "Choisissez un professionnel ou saisissez son identifiant."
            return 200, self._login_page(tx, form["request_id"], client, message), html
        tx.delete("tokens", token_hash=digest)
        ex.declare(actor=pro.idnps)
        return redirect(self._code_redirect(tx, pending, pro))
